"""Registry-wide contracts: every registered plug-in of every kind keeps its interface. A plug-in added by
copying a neighbour is checked here without touching this file."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

from riskdistill.contracts.rig import load_rig, resize_rig
from riskdistill.data.adapters import IMPORTERS
from riskdistill.data.storage import RecordedDataset
from riskdistill.data.targets import TARGET_BUILDERS, make_target
from riskdistill.geometry import BevGrid
from riskdistill.models import build_student, student_config
from riskdistill.models.heads import HEADS
from riskdistill.models.view_transforms import VIEW_TRANSFORMS, ViewTransformConfig, build_view_transform
from riskdistill.registry import Registry
from riskdistill.sim.scenarios import REGISTRY as SCENARIOS
from riskdistill.sim.scenarios import ScenarioError, build_scenario
from riskdistill.teacher.vlm.backends import BACKENDS, backend_config
from riskdistill.types import Ability
from test_models import make_obs, make_targets

torch.set_num_threads(1)


def test_registry_mechanism() -> None:
    reg: Registry[type] = Registry("widget")

    @reg.register
    class A:
        name = "a"

    @reg.register("b")
    def make_b() -> str:
        return "b"

    assert reg.get("a") is A and reg["b"] is make_b and "a" in reg and reg.names() == ["a", "b"]
    assert reg.register(A) is A  # registering the same object again is harmless
    with pytest.raises(ValueError, match=r"widget 'a' is already registered"):
        reg.add("a", make_b)
    with pytest.raises(ValueError, match=r"unknown widget 'c'; valid widgets: \['a', 'b'\]"):
        reg.get("c")
    with pytest.raises(TypeError, match="no 'name' attribute"):
        reg.register(make_b)
    strict = Registry("scenario type", error=ScenarioError)
    with pytest.raises(ScenarioError, match="unknown scenario type"):
        strict.get("x")


# ------------------------------------------------------------------------------------------ heads
@pytest.mark.parametrize("name", HEADS.names())
def test_every_head_builds_predicts_and_trains(name: str) -> None:
    """Enabled alone next to the planner (which every student has): its outputs, a finite loss whose
    gradient reaches its parameters, and metrics."""
    torch.manual_seed(0)
    heads = {h: {"enabled": h in ("planning", name)} for h in ("occupancy", "risk")}
    cfg = student_config("tiny", heads={**heads, name: {"enabled": True}})
    student = build_student(cfg).train()
    head = student.heads[name]
    assert head.name == name and isinstance(cfg.heads.root[name], head.config_cls)
    obs, targets = make_obs(2), make_targets(2)
    out = student(obs, with_risk=True) if head.optional_at_inference else student(obs)
    for key in head.output_keys:
        assert key in out and out[key].shape[0] == 2 and torch.isfinite(out[key]).all(), key
    loss = head.loss(out, targets)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in head.parameters() if p.requires_grad]
    assert grads and any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    metrics = head.metrics(out, targets)
    assert metrics and all(np.isfinite(v) for v in metrics.values())
    assert set(head.target_names) <= set(cfg.target_names) and set(head.target_names) <= set(TARGET_BUILDERS)


# ------------------------------------------------------------------------------------------ view transforms
@pytest.mark.parametrize("name", VIEW_TRANSFORMS.names())
def test_every_view_transform_maps_camera_features_to_the_bev(name: str) -> None:
    torch.manual_seed(0)
    grid = BevGrid.preset("tiny")
    cfg = ViewTransformConfig(type=name, bev_hw=(16, 16), n_heads=4)
    vt = build_view_transform(cfg, 32, grid)
    assert vt.name == name
    rig = resize_rig(load_rig("bench2drive"), 64, 176)
    n = len(rig.cameras)
    feats = torch.rand(2, n, 32, 8, 22, requires_grad=True)
    K = torch.tensor(rig.K(), dtype=torch.float32)[None].repeat(2, 1, 1, 1)
    T = torch.tensor(rig.T_ego_from_cam(), dtype=torch.float32)[None].repeat(2, 1, 1, 1)
    valid = torch.ones(2, n, dtype=torch.bool)
    bev = vt(feats, K, T, valid, (64, 176))
    assert bev.shape == (2, 32, 16, 16) and torch.isfinite(bev).all()
    bev.sum().backward()
    assert float(feats.grad.abs().sum()) > 0  # the cameras reach the BEV


# ------------------------------------------------------------------------------------------ target builders
@pytest.fixture(scope="module")
def labelled(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_training_support import make_labelled_copy

    return make_labelled_copy(tiny_dataset, tmp_path_factory)


@pytest.mark.parametrize("name", TARGET_BUILDERS.names())
def test_every_target_builder_fills_targets_fields(name: str, labelled: Path) -> None:
    from dataclasses import fields

    from riskdistill.contracts.batch import Targets
    from riskdistill.contracts.labels import default_label_dir

    kwargs = (
        {"label_dir": default_label_dir(labelled)}
        if "label_dir" in inspect.signature(TARGET_BUILDERS.get(name)).parameters
        else {}
    )
    builder = make_target(name, **kwargs)
    assert builder.name == name
    out = builder.build(RecordedDataset(labelled)[2], BevGrid.preset("tiny"))
    valid = {f.name for f in fields(Targets)}
    assert out and set(out) <= valid, sorted(out)
    assert all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in out.values())


# ------------------------------------------------------------------------------------------ VLM backends
@pytest.mark.parametrize("name", BACKENDS.names())
def test_every_vlm_backend_has_a_typed_config_and_the_backend_interface(name: str) -> None:
    plugin = BACKENDS.get(name)
    field = plugin.config_cls.model_fields["type"]
    assert field.default == name  # the config's type is the registry name
    required = {k for k, f in plugin.config_cls.model_fields.items() if f.is_required()}
    example = {"type": name, **{k: "x" for k in required}}
    cfg = backend_config(example)
    assert isinstance(cfg, plugin.config_cls) and cfg.to_dict()["type"] == name
    for attr in ("generate", "decoding_params", "close"):
        assert callable(getattr(plugin.backend_cls, attr, None)), f"{name} backend lacks {attr}()"
    with pytest.raises(ValueError, match="valid VLM backends"):
        backend_config({"type": f"{name}-typo"})


# ------------------------------------------------------------------------------------------ importers
@pytest.mark.parametrize("name", IMPORTERS.names())
def test_every_importer_takes_a_path_an_output_folder_and_a_request(name: str, tmp_path: Path) -> None:
    from riskdistill.data.adapters import ImportRequest
    from riskdistill.data.storage import DataError

    fn = IMPORTERS.get(name)
    assert list(inspect.signature(fn).parameters) == ["path", "out_dir", "request"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises((DataError, ValueError, ImportError, OSError)):  # nothing to import: a clear error
        fn(empty, tmp_path / "out", ImportRequest())
    assert not (tmp_path / "out" / "manifest.json").exists()


# ------------------------------------------------------------------------------------------ scenarios
@pytest.mark.parametrize("name", SCENARIOS.names())
def test_every_scenario_type_declares_itself_and_builds(name: str) -> None:
    cls = SCENARIOS.get(name)
    assert cls.name == name and cls.summary and cls.families
    assert cls.abilities and all(isinstance(a, Ability) for a in cls.abilities)
    inst = build_scenario(name, 0)
    assert inst.scenario_type == name and inst.route.length_m > 20.0
    assert inst.world.actors.n >= 1 and inst.route_timeout_s > 0
    assert inst.params["layout"]["family"] == cls.families[0]


def test_registries_are_copies_of_one_mechanism() -> None:
    from riskdistill.teacher.build import TEACHERS

    for reg in (HEADS, VIEW_TRANSFORMS, TARGET_BUILDERS, TEACHERS, BACKENDS, IMPORTERS, SCENARIOS):
        assert isinstance(reg, Registry) and len(reg) >= 2, reg
