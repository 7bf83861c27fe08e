"""Each recipe of docs/howto.md followed on a throwaway plug-in: copy one neighbour, register it, use it.

The plug-ins live in this file (a user's would live in their own module, imported before use, e.g. from
the package's ``__init__``); they are removed from the registries afterwards.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from typer.testing import CliRunner

from riskdistill.cli.main import app
from riskdistill.config import StrictConfig
from riskdistill.contracts.agent import Action, AgentInput, SensorRequest
from riskdistill.contracts.batch import Observation, Targets
from riskdistill.data.storage import FrameRecord, RecordedDataset, annotation_fields
from riskdistill.geometry import BevGrid
from riskdistill.models.heads import HeadConfig
from riskdistill.registry import Registry
from riskdistill.sim.suites import RouteSpec, Suite
from riskdistill.teacher.schema import FrameLabel, ObjectRisk, Provenance

runner = CliRunner()


@pytest.fixture
def registered() -> Iterator[list[tuple[Registry, str]]]:
    """Plug-ins a test registers are removed again afterwards (the registries are process-wide)."""
    added: list[tuple[Registry, str]] = []
    yield added
    for reg, name in added:
        reg._items.pop(name, None)


@pytest.fixture(scope="module")
def data_copy(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("howto") / "data"
    shutil.copytree(tiny_dataset, root)
    return root


# ------------------------------------------------------------------------------------------ a head
class HeadingHeadConfig(HeadConfig):
    """Copied from ``heads/occupancy.py``: ``enabled`` and ``weight`` come from ``HeadConfig``."""

    hidden: int = 16


def test_recipe_add_a_head(registered: list) -> None:
    """A head predicting the future headings, registered and turned on by config: the student runs it,
    adds its loss, and its gradient reaches the shared BEV."""
    from riskdistill.models import build_student, student_config
    from riskdistill.models.heads import HEADS, Head, register_head
    from test_models import make_obs, make_targets

    @register_head
    class HeadingHead(Head):
        name: ClassVar[str] = "heading"
        config_cls: ClassVar[type] = HeadingHeadConfig
        target_names: ClassVar[tuple[str, ...]] = ("future_trajectory",)
        target_fields: ClassVar[tuple[str, ...]] = ("future_yaw",)
        output_keys: ClassVar[tuple[str, ...]] = ("heading",)

        def __init__(self, cfg: HeadingHeadConfig, bev_channels: int, bev_hw: Any, grid: BevGrid):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(bev_channels, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 6))

        def forward(self, bev: torch.Tensor, obs: Observation) -> dict[str, torch.Tensor]:
            return {"heading": self.net(bev.mean(dim=(-2, -1)))}  # [B, 6]

        def loss(self, outputs: dict, targets: Targets, step: int | None = None) -> torch.Tensor:
            self.require(outputs, targets)
            return F.l1_loss(outputs["heading"], targets.future_yaw)

        def metrics(self, outputs: dict, targets: Targets) -> dict[str, float]:
            return {"heading_l1_rad": float(F.l1_loss(outputs["heading"], targets.future_yaw))}

    registered.append((HEADS, "heading"))
    torch.manual_seed(0)
    student = build_student(student_config("tiny", heads={"heading": {"hidden": 8}}))
    assert "heading" in student.heads
    targets = make_targets(2)
    targets.future_yaw = torch.zeros(2, 6)
    out = student(make_obs(2))
    assert out["heading"].shape == (2, 6)
    losses = student.losses(out, targets)
    assert "heading" in losses and torch.isfinite(losses["total"])
    losses["heading"].backward()
    assert float(student.bev_encoder.parameters().__next__().grad.abs().sum()) > 0
    assert "heading_l1_rad" in student.metrics(out, targets)


# ------------------------------------------------------------------------------------------ a teacher
class NearestConfig(StrictConfig):
    """Copied from ``teacher/controls.py``: a config with a stable hash."""

    score: float = 0.9

    def config_hash(self) -> str:
        return f"nearest-{self.score}"


class NearestTeacher:
    """The nearest actor is the risky one."""

    kind = "nearest"

    def __init__(self, config: NearestConfig):
        self.config = config

    def label(self, frame: FrameRecord) -> FrameLabel:
        a = annotation_fields(frame, ("actor_id", "actor_center_ego"), "nearest teacher")
        ids = np.asarray(a["actor_id"]).reshape(-1)
        objects = []
        if len(ids):
            k = int(np.argmin(np.linalg.norm(np.asarray(a["actor_center_ego"])[:, :2], axis=1)))
            objects = [
                ObjectRisk(object_id=int(ids[k]), cls="car", risk=self.config.score, rank=1, reason="near")
            ]
        return FrameLabel(
            frame_id=frame.frame_id,
            objects=objects,
            frame_risk=self.config.score if objects else 0.0,
            summary="nearest actor",
            provenance=Provenance(teacher="control", config_hash=self.config.config_hash()),
        )


def make_nearest_teacher(config: dict[str, Any], detector: dict[str, Any] | None = None) -> NearestTeacher:
    return NearestTeacher(NearestConfig.from_dict(config))


def test_recipe_add_a_teacher(registered: list, data_copy: Path, tmp_path: Path) -> None:
    from riskdistill.contracts.labels import risk_map_path
    from riskdistill.teacher.build import TEACHERS

    TEACHERS.add("nearest", make_nearest_teacher)
    registered.append((TEACHERS, "nearest"))
    cfg = tmp_path / "nearest.json"
    cfg.write_text(json.dumps({"score": 0.8}))
    out = tmp_path / "labels"
    res = runner.invoke(
        app, ["label", "--data", str(data_copy), "--teacher", "nearest", "--teacher-config", str(cfg),
              "--out", str(out), "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    frame = RecordedDataset(data_copy)[0]
    m = np.load(risk_map_path(out, frame.frame_id))
    assert m.max() == pytest.approx(0.8, abs=1e-3)
    assert json.loads((out / "labelling.json").read_text())["teacher"] == "nearest"


# ------------------------------------------------------------------------------------------ a VLM backend
class RulesBackendConfig(StrictConfig):
    """Copied from ``backends/openai.py``: ``type`` is the registry name."""

    type: Literal["rules"] = "rules"
    risk: float = 0.6


class RulesBackend:
    """Answers every request with the first listed object at a fixed risk (a stand-in for a model)."""

    name = "rules"

    def __init__(self, config: RulesBackendConfig, decoding: Any):
        self.config = config

    @property
    def model_id(self) -> str:
        return "rules"

    @property
    def model_revision(self) -> str:
        return "1"

    def generate(self, requests: list) -> list[str]:
        out = []
        for r in requests:
            ids = r.json_schema["properties"]["objects"]["items"]["properties"]["id"]["enum"]
            objects = [{"id": ids[0], "risk": self.config.risk, "reason": "first listed"}] if ids else []
            out.append(json.dumps({"objects": objects, "summary": "rules"}))
        return out

    def decoding_params(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


def test_recipe_add_a_vlm_backend(registered: list, data_copy: Path) -> None:
    from riskdistill.teacher.build import make_teacher
    from riskdistill.teacher.vlm.backends import BACKENDS, BackendPlugin

    BACKENDS.add("rules", BackendPlugin(RulesBackendConfig, RulesBackend))
    registered.append((BACKENDS, "rules"))
    teacher = make_teacher("vlm", {"backend": {"type": "rules", "risk": 0.7}, "include_unseen": True})
    ds = RecordedDataset(data_copy)
    label = next(lab for lab in (teacher.label(ds[i]) for i in range(len(ds))) if lab.objects)
    assert label.objects[0].risk == pytest.approx(0.7) and label.provenance.model_id == "rules"


# ------------------------------------------------------------------------------------------ a data adapter
def test_recipe_add_a_data_adapter(registered: list, data_copy: Path, tmp_path: Path) -> None:
    """An importer registered under a source name is what ``riskdistill data import <source>`` runs."""
    from riskdistill.data.adapters import IMPORTERS, ImportRequest, ImportResult
    from riskdistill.data.storage import validate_dataset

    seen: list[ImportRequest] = []

    @IMPORTERS.register("copy")
    def import_copy(path: Path, out_dir: Path, request: ImportRequest) -> ImportResult:
        seen.append(request)
        shutil.copytree(path, out_dir)
        ds = RecordedDataset(out_dir)
        routes = sorted(set(ds.table.column("route_id").to_pylist()))
        return ImportResult(out_dir, len(routes), len(ds), imported=routes)

    registered.append((IMPORTERS, "copy"))
    out = tmp_path / "imported"
    res = runner.invoke(app, ["data", "import", "copy", str(data_copy), "--out", str(out), "--every", "2"])
    assert res.exit_code == 0, res.output
    assert seen[0].every_n_steps == 2 and validate_dataset(out) == []
    res = runner.invoke(app, ["data", "import", "nope", str(data_copy), "--out", str(out)])
    assert res.exit_code == 2 and "copy" in res.output and "bench2drive" in res.output


# ------------------------------------------------------------------------------------------ a scenario
def test_recipe_add_a_scenario(registered: list) -> None:
    """Copied from a family file: a parked car on a straight road; the expert drives it."""
    from riskdistill.sim.env import DrivingEnv
    from riskdistill.sim.events import RouteEnd
    from riskdistill.sim.expert import ExpertDriver
    from riskdistill.sim.rollout import run_route
    from riskdistill.sim.scenarios import REGISTRY, build_scenario
    from riskdistill.sim.scenarios.base import BuildContext, ScenarioType, register_scenario
    from riskdistill.types import Ability

    @register_scenario
    class QuietRoad(ScenarioType):
        name = "QuietRoad"
        abilities = (Ability.OVERTAKING,)
        families = ("straight",)
        summary = "An empty straight road."
        background_density = 0.0

        def populate(self, ctx: BuildContext) -> None:
            road = ctx.layout.roads["main"]
            ctx.set_route([road.forward_lane_ids[0]], 10.0, None)

    registered.append((REGISTRY, "QuietRoad"))
    inst = build_scenario("QuietRoad", 1)
    log = run_route(inst, ExpertDriver, env=DrivingEnv(), max_steps=2000)
    assert log.end == RouteEnd.COMPLETED
    assert not [e for e in log.events if e.kind.value.startswith("collisions")]


# ------------------------------------------------------------------------------------------ a metric
def test_recipe_add_a_metric(tmp_path: Path) -> None:
    """A metric is a pure ``compute_*`` function over the route files of a closed-loop folder."""
    from riskdistill.evaluation.closed_loop import evaluate_suite
    from riskdistill.evaluation.results import load_route_docs

    def compute_mean_speed_mps(docs: list[dict]) -> float:
        speeds = [v for d in docs if d["trajectory"] for v in d["trajectory"]["speed_mps"]]
        return float(np.mean(speeds)) if speeds else 0.0

    spec = RouteSpec(route_id="r", scenario="Accident", seed=3, layout={"family": "straight"})
    evaluate_suite(Suite(name="one", routes=[spec]), "expert", tmp_path, show_progress=False)
    assert 2.0 < compute_mean_speed_mps(load_route_docs(tmp_path)) < 20.0


# ------------------------------------------------------------------------------------------ your own driver
class KeepLaneDriver:
    """Follows the target point at 5 m/s. It sees only what it asked for: no cameras here."""

    sensors = SensorRequest()

    def reset(self) -> None:
        self.seen: list[str] = []

    def act(self, agent_input: AgentInput) -> Action:
        self.seen.append(type(agent_input).__name__)
        tp = agent_input.target_point_ego / max(float(np.linalg.norm(agent_input.target_point_ego)), 1e-6)
        return Action(waypoints_ego=np.outer(np.arange(1, 7) * 2.5, tp))


def make_keep_lane_driver() -> KeepLaneDriver:
    return KeepLaneDriver()


def test_recipe_your_own_driver(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    res = runner.invoke(
        app, ["eval", "closed-loop", "--suite", "bench", "--limit", "1", "--workers", "1",
              "--driver", f"{__name__}:make_keep_lane_driver", "--out", str(out), "--route-timeout", "20"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(next((out / "routes").glob("*.json")).read_text())
    assert doc["route_completion_pct"] > 0 and doc["error"] is None
