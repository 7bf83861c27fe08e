"""The planner's path + target-speed outputs, their labels (the expert's own plan) and the controller's
ceiling on that plan representation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from riskdistill.contracts.plan import waypoints_from_path_speed
from riskdistill.models import build_student, student_config
from riskdistill.models.heads.planning import speed_from_logits, two_hot
from test_models import make_obs, make_targets

torch.set_num_threads(1)
BINS = torch.tensor([0.0, 1.0, 2.0, 4.0, 8.0])


def test_two_hot_labels_interpolate_between_neighbouring_bins() -> None:
    soft = two_hot(torch.tensor([0.0, 3.0, 8.0, 11.0, -1.0]), BINS)
    assert torch.allclose(soft.sum(-1), torch.ones(5))
    assert soft[0, 0] == 1.0 and soft[2, 4] == 1.0 and soft[3, 4] == 1.0 and soft[4, 0] == 1.0
    assert torch.allclose(soft[1], torch.tensor([0.0, 0.0, 0.5, 0.5, 0.0]))
    assert torch.allclose((soft * BINS).sum(-1)[:3], torch.tensor([0.0, 3.0, 8.0]))


def test_a_likely_stop_is_never_averaged_into_a_creep() -> None:
    stop = torch.log(torch.tensor([[0.55, 0.05, 0.05, 0.05, 0.3]]))
    go = torch.log(torch.tensor([[0.45, 0.05, 0.05, 0.05, 0.4]]))
    assert speed_from_logits(stop, BINS).item() == 0.0
    assert speed_from_logits(go, BINS).item() > 4.0  # the moving bins alone decide the speed


def test_waypoints_follow_the_path_at_the_speed() -> None:
    path = np.stack([np.arange(1, 21, dtype=float), np.zeros(20)], axis=1)
    wp = waypoints_from_path_speed(path, 4.0)
    np.testing.assert_allclose(wp[:, 0], [2, 4, 6, 8, 10, 12]) and np.testing.assert_allclose(wp[:, 1], 0)
    np.testing.assert_allclose(waypoints_from_path_speed(path, 0.0), 0.0)
    np.testing.assert_allclose(waypoints_from_path_speed(path, 100.0)[-1], [20.0, 0.0])  # held at the end
    bend = np.stack([np.zeros(10), np.arange(1, 11, dtype=float)], axis=1)  # straight to the left
    np.testing.assert_allclose(waypoints_from_path_speed(bend, 2.0)[0], [0.0, 1.0])


def test_path_speed_planner_trains_on_the_expert_plan_and_drives_with_it() -> None:
    torch.manual_seed(0)
    cfg = student_config(
        "tiny",
        heads={
            "risk": {"enabled": False},
            "planning": {"path_points": 20, "speed_bins_mps": [0, 2, 4, 8], "ego_inputs": ["speed_mps"]},
        },
    )
    student = build_student(cfg).train()
    obs, targets = make_obs(2), make_targets(2)
    targets.plan_path = torch.stack([torch.arange(1, 21).float(), torch.zeros(20)], -1)[None].repeat(2, 1, 1)
    targets.plan_speed_mps = torch.tensor([0.0, 5.0])
    targets.plan_valid = torch.tensor([True, True])
    out = student(obs)
    assert out["path"].shape == (2, 20, 2) and out["speed_logits"].shape == (2, 4)
    loss = student.losses(out, targets)["planning"]
    loss.backward()
    head = student.heads["planning"]
    assert head.path_out.weight.grad.abs().sum() > 0 and head.speed_out.weight.grad.abs().sum() > 0
    plan = student.plan(out)
    assert plan.shape == (2, 6, 2) and torch.isfinite(plan).all()
    m = student.metrics(out, targets)
    assert {"path_l2_m", "speed_mae_mps", "stop_accuracy"} <= set(m)
    # frames without an expert plan (older or imported data) train the waypoints only
    targets.plan_valid = torch.tensor([False, False])
    only_wp = student.losses(student(obs), targets)["planning"]
    cfg_wp = student_config("tiny", heads={"risk": {"enabled": False}})
    assert torch.isfinite(only_wp) and "path" not in build_student(cfg_wp)(obs)
    # the planner reads only the ego inputs it is configured with: the other columns change nothing
    student.eval()
    with torch.no_grad():
        a = student(obs)["path"]
        obs.ego_state[:, 1:] = 5.0
        torch.testing.assert_close(student(obs)["path"], a)


def test_unknown_ego_input_and_bad_bins_are_config_errors() -> None:
    from riskdistill.config import ConfigError

    with pytest.raises(ConfigError, match="unknown ego input"):
        student_config("tiny", heads={"planning": {"ego_inputs": ["odometer"]}})
    with pytest.raises(ConfigError, match="start at 0 and increase"):
        student_config("tiny", heads={"planning": {"speed_bins_mps": [1, 2]}})


# ------------------------------------------------------------------------------------------ image aux
def test_image_labels_pool_small_things_so_they_survive() -> None:
    from riskdistill.data.image_labels import image_labels
    from riskdistill.types import ActorClass

    inst = -np.ones((1, 8, 8), dtype=np.int32)
    inst[0, 0, 0] = 2  # one pedestrian pixel in the top-left 4x4 block
    inst[0, 1:4, 1:4] = 1  # a car filling most of it
    inst[0, 5, 5] = 0  # the ego's own body counts as background
    depth = np.full((1, 8, 8), np.inf, dtype=np.float32)
    depth[0, 1, 1] = 7.0
    cls = np.array([ActorClass.CAR, ActorClass.CAR, ActorClass.PEDESTRIAN])
    out = image_labels(inst, depth, cls, stride=4)
    assert out["image_semantics"].tolist() == [[[2, 0], [0, 0]]]  # vulnerable wins the block
    assert out["image_depth_m"][0, 0, 0] == 7.0 and out["image_depth_m"][0, 1, 1] == 80.0  # sky = the cap


def test_image_aux_head_trains_the_backbone_and_costs_nothing_at_inference() -> None:
    from riskdistill.models.heads.image_aux import pool_labels

    sem = torch.zeros(1, 8, 8, dtype=torch.long)
    sem[0, 7, 7] = 2
    pooled, near = pool_labels(sem, torch.full((1, 8, 8), 30.0), (2, 2))
    assert pooled.tolist() == [[[0, 0], [0, 2]]] and float(near.max()) == 30.0

    torch.manual_seed(0)
    cfg = student_config("tiny", heads={"risk": {"enabled": False}, "image_aux": {}})
    student = build_student(cfg).train()
    obs, targets = make_obs(2), make_targets(2)
    n = obs.images.shape[1]
    targets.image_semantics = torch.randint(0, 4, (2, n, 16, 44))
    targets.image_depth_m = torch.rand(2, n, 16, 44) * 60
    targets.image_valid = torch.tensor([[True], [True]])
    out = student(obs)
    assert out["image_logits"].shape[:3] == (2, n, 4)
    loss = student.losses(out, targets)["image_aux"]
    loss.backward()
    assert float(next(student.backbone.parameters()).grad.abs().sum()) > 0  # it reaches the backbone
    student.eval()
    with torch.no_grad():
        out = student(obs)
        assert "image_logits" not in out  # training only ...
        losses = student.losses(out, targets)  # ... so validation has no loss for it, and does not fail
    assert "image_aux" not in losses and {"planning", "total"} <= losses.keys()


# ------------------------------------------------------------------------------------------ init weights
def _shipped_weights() -> list[str]:
    from importlib import resources

    return sorted(p.stem for p in Path(str(resources.files("riskdistill") / "weights")).glob("*.safetensors"))


@pytest.mark.parametrize("name", _shipped_weights())
def test_every_shipped_weights_file_has_a_card_and_fits_the_cpu_student(name: str) -> None:
    """Every ``builtin:<name>`` (the sim backbone, the 64x176 and 128x352 students) has a provenance card and
    loads, tensor for tensor, into a cpu student, carrying trained weights, not a fresh initialisation."""
    import json

    from safetensors import safe_open

    from riskdistill.models.io import load_init_weights, resolve_init_weights

    path = resolve_init_weights(f"builtin:{name}")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["name"] == name
    assert {"use", "tensors", "trained_by", "data", "code_commit", "date"} <= card.keys()
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["preset"] == "cpu"
        keys = sorted(f.keys())
    torch.manual_seed(0)
    prior = card.get("waypoint_prior", "kinematic_arc")  # a card says it where a planner was trained
    assert ("waypoint_prior" in card) == any(k.startswith("heads.planning.out.") for k in keys)
    student = build_student(student_config("cpu", heads={"planning": {"waypoint_prior": prior}}))
    fresh = {k: v.clone() for k, v in student.state_dict().items()}
    prefixes = tuple(sorted({k.split(".")[0] + "." for k in keys}))
    assert load_init_weights(student, f"builtin:{name}", prefixes) == keys
    changed = [k for k in keys if k.endswith("weight") and not torch.equal(student.state_dict()[k], fresh[k])]
    assert len(changed) > 20


def test_the_shipped_sim_backbone_holds_the_backbone_only() -> None:
    """``builtin:cpu_sim_backbone`` (what the probes start from) copies the image backbone, nothing else."""
    from riskdistill.experiment.config import SIM_BACKBONE
    from riskdistill.models.io import load_init_weights

    copied = load_init_weights(build_student(student_config("cpu")), SIM_BACKBONE)
    assert len(copied) > 50 and all(k.startswith("backbone.") for k in copied)


def test_init_weights_start_the_backbone_from_a_file(tmp_path) -> None:
    from riskdistill.models.io import load_init_weights, save_init_weights

    torch.manual_seed(0)
    a = build_student(student_config("tiny"))
    torch.manual_seed(1)
    b = build_student(student_config("tiny"))
    path = save_init_weights(a, tmp_path / "bb.safetensors")
    before = {k: v.clone() for k, v in b.state_dict().items()}
    copied = load_init_weights(b, str(path))
    assert copied and all(k.startswith("backbone.") for k in copied)
    for k, v in b.state_dict().items():
        if k in copied:
            torch.testing.assert_close(v, a.state_dict()[k].half().to(v.dtype))
        else:
            assert torch.equal(v, before[k]), k  # everything else is left alone
    other = build_student(student_config("tiny", channels=32, view={"n_heads": 4}))
    with pytest.raises(ValueError, match="shape mismatches"):
        load_init_weights(other, str(path))
    with pytest.raises(FileNotFoundError, match="no shipped weights 'nope'"):
        load_init_weights(b, "builtin:nope")
    # wider prefixes: a whole trained student but its RiskHead (fine-tuning with a fresh head)
    wide = ("backbone.", "view_transform.", "bev_encoder.", "heads.planning.")
    whole = save_init_weights(a, tmp_path / "whole.safetensors", prefixes=wide)
    copied = load_init_weights(b, str(whole), wide)
    assert {k.split(".")[0] for k in copied} == {"backbone", "view_transform", "bev_encoder", "heads"}
    assert not any(k.startswith("heads.risk.") for k in copied)


def test_init_weights_refuse_a_waypoint_layer_trained_with_another_prior(tmp_path) -> None:
    """A waypoint output layer trained without the kinematic-arc prior outputs a whole plan; copied into a
    student with the prior it would be read as a correction (a second plan on top of the arc). It is refused
    with both values named, and ``!heads.planning.out.`` leaves it out so the correction starts at zero."""
    from riskdistill.evaluation.open_loop import compute_baseline_plans
    from riskdistill.models.io import load_init_weights, save_init_weights, split_prefixes

    def tiny(prior: str) -> torch.nn.Module:
        return build_student(student_config("tiny", heads={"planning": {"waypoint_prior": prior}}))

    torch.manual_seed(0)
    whole = tiny("none")
    with torch.no_grad():
        whole.heads.planning.out.bias.fill_(0.5)  # a trained layer: not zero
    path = save_init_weights(whole, tmp_path / "plan.safetensors", prefixes=("backbone.", "heads.planning."))
    with pytest.raises(ValueError, match=r"waypoint_prior 'none', this student has 'kinematic_arc'"):
        load_init_weights(tiny("kinematic_arc"), str(path), ("backbone.", "heads.planning."))
    assert load_init_weights(tiny("none"), str(path), ("heads.planning.",))  # the same prior: copied
    student = tiny("kinematic_arc").eval()
    copied = load_init_weights(student, str(path), ("backbone.", "heads.planning.", "!heads.planning.out."))
    assert any(k.startswith("heads.planning.layers.") for k in copied)
    assert not any(k.startswith("heads.planning.out.") for k in copied)
    obs = make_obs(2)
    with torch.no_grad():
        wp = student(obs)["waypoints"].numpy()
    arc = compute_baseline_plans(obs.ego_state.numpy(), obs.target_point.numpy())["kinematic_arc"]
    np.testing.assert_allclose(wp, arc, rtol=1e-5, atol=1e-4)  # the correction still starts at zero
    # a checkpoint folder says its prior in config.json: refused the same way
    from riskdistill.models.io import save_student

    folder = save_student(whole, tmp_path / "ckpt")
    with pytest.raises(ValueError, match="waypoint_prior 'none'"):
        load_init_weights(tiny("kinematic_arc"), str(folder / "model.safetensors"), ("heads.planning.",))
    assert split_prefixes(["a.", "!a.b."]) == (("a.",), ("a.b.",))
    # a provenance card beside the file says the prior too; a broken card is named, not trusted
    bare = tmp_path / "bare.safetensors"
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(path)), str(bare), metadata={"format": "pt", "preset": "tiny"})
    assert load_init_weights(tiny("kinematic_arc"), str(bare), ("heads.planning.",))  # nothing says: copied
    bare.with_suffix(".json").write_text('{"waypoint_prior": "none"}')
    with pytest.raises(ValueError, match="waypoint_prior 'none'"):
        load_init_weights(tiny("kinematic_arc"), str(bare), ("heads.planning.",))
    bare.with_suffix(".json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bare\.json"):
        load_init_weights(tiny("kinematic_arc"), str(bare), ("heads.planning.",))


def test_a_path_speed_planner_exports_to_onnx_with_its_driving_outputs(tmp_path) -> None:
    from riskdistill.models.export import driving_outputs, export_onnx, onnx_parity

    torch.manual_seed(0)
    heads = {"risk": {"enabled": True}, "planning": {"path_points": 20, "speed_bins_mps": [0, 2, 4, 8]}}
    student = build_student(student_config("tiny", heads=heads)).eval()
    assert driving_outputs(student, True) == ["waypoints", "path", "speed_logits", "risk"]
    path = export_onnx(student, tmp_path / "s.onnx", True, make_obs(2))
    rows = onnx_parity(student, path, [make_obs(1), make_obs(3)], True)
    assert all(v < 1e-3 for r in rows for k, v in r.items() if k.endswith("diff"))
    assert {"path_max_abs_diff", "speed_logits_max_abs_diff"} <= set(rows[0])


def test_waypoints_can_be_a_learned_correction_to_the_kinematic_arc() -> None:
    from riskdistill.evaluation.open_loop import compute_baseline_plans

    torch.manual_seed(0)
    cfg = student_config(
        "tiny", heads={"risk": {"enabled": False}, "planning": {"waypoint_prior": "kinematic_arc"}}
    )
    student = build_student(cfg).eval()
    obs = make_obs(3)
    with torch.no_grad():
        wp = student(obs)["waypoints"].numpy()
    arc = compute_baseline_plans(obs.ego_state.numpy(), obs.target_point.numpy())["kinematic_arc"]
    np.testing.assert_allclose(wp, arc, atol=1e-5)  # the correction starts at zero: the physics prior itself


def test_the_shipped_sim_student_is_what_the_study_fine_tunes() -> None:
    """``builtin:cpu_sim_student`` holds every trained tensor of a cpu student but the RiskHead's: the
    study's (and the demo's) fine-tuning overrides copy all of it into a student with a fresh RiskHead."""
    from riskdistill.experiment.config import SIM_STUDENT, experiment_config
    from riskdistill.models.io import load_init_weights
    from riskdistill.training.config import load_train_config

    cfg = experiment_config("study")
    assert f"init_weights={SIM_STUDENT}" in cfg.train.overrides
    assert experiment_config("demo").train.overrides == cfg.train.overrides  # the same recipe, smaller budget
    base = {"data": {"root": "unused"}, "model": {"preset": "cpu"}, "risk_targets": "teacher"}
    tcfg = load_train_config(None, cfg.train.overrides, base=base)
    assert tcfg.model.heads.risk.enabled
    torch.manual_seed(0)
    student = build_student(tcfg.model)
    fresh = {k: v.clone() for k, v in student.state_dict().items()}
    copied = load_init_weights(student, tcfg.init_weights, tuple(tcfg.init_weights_prefixes))
    not_copied = sorted(set(fresh) - set(copied))
    assert not_copied and all(k.startswith("heads.risk.") for k in not_copied)  # only the RiskHead is fresh
    assert any(k.startswith("heads.planning.") for k in copied)
    state = student.state_dict()
    assert sum(not torch.equal(state[k], fresh[k]) for k in copied if k.endswith("weight")) > 50
