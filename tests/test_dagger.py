"""DAgger-style recording (sim/dagger.py): a learner drives, the expert's plan from where the car is stays
the label; who drove is recorded, driven futures the learner steered are not labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import TINY_EVERY, TINY_HW, make_tiny_suite
from riskdistill.contracts.agent import Action, AgentInput, Controls, SensorRequest
from riskdistill.data import RecordedDataset, record_suite, validate_dataset
from riskdistill.data import format as fmt
from riskdistill.io import load_json
from riskdistill.sim.dagger import DaggerDriver, DaggerFactory
from riskdistill.sim.env import DrivingEnv
from riskdistill.sim.expert import ExpertDriver
from riskdistill.sim.rollout import run_route
from riskdistill.sim.scenarios import build_scenario
from riskdistill.sim.suites import Suite

STEPS = 120


class Swerver:
    """A learner that sees no camera and drifts left at a steady 6 m/s: nothing like the expert."""

    sensors = SensorRequest()

    def reset(self) -> None:
        self.calls = 0

    def act(self, agent_input: AgentInput) -> Action:
        self.calls += 1
        throttle = 0.4 if agent_input.ego.speed_mps < 6.0 else 0.0
        return Action(controls=Controls(throttle=throttle, steer=0.15, brake=0.0))


def _route():
    spec = make_tiny_suite().routes[0]
    return build_scenario(spec.scenario, spec.seed, spec.layout)


class _Who:
    """Observer: who drove each step, the executed steering, the expert's plan being there."""

    def __init__(self) -> None:
        self.expert: list[bool] = []
        self.steer: list[float] = []
        self.planned: list[bool] = []

    def on_start(self, env, driver) -> None:
        self.driver = driver

    def on_step(self, env, inp, action) -> None:
        self.expert.append(self.driver.expert_in_control)
        self.steer.append(action.controls.steer)
        self.planned.append(self.driver.last_plan_path_world is not None)


def _drive(share: float, seed: int = 0) -> tuple[_Who, list[float]]:
    who = _Who()
    log = run_route(
        _route(), DaggerFactory(Swerver, share, segment_s=2.0, seed=seed), observers=[who], max_steps=STEPS
    )
    return who, list(log.x_m)


def test_the_learner_drives_and_the_expert_plans_every_step() -> None:
    who, _ = _drive(0.0)
    assert not any(who.expert) and all(who.planned) and len(who.steer) > 50
    assert all(s == pytest.approx(0.15) for s in who.steer)  # the learner's action is the one executed


def test_expert_share_one_drives_exactly_like_the_expert() -> None:
    who, xs = _drive(1.0)
    assert all(who.expert)
    expert_log = run_route(_route(), ExpertDriver, max_steps=STEPS)
    assert np.allclose(xs, expert_log.x_m)


def test_segments_are_drawn_per_seed_and_reproducible() -> None:
    who_a, xs_a = _drive(0.5, seed=3)
    who_b, xs_b = _drive(0.5, seed=3)
    assert who_a.expert == who_b.expert and xs_a == xs_b
    assert 0 < sum(who_a.expert) < STEPS  # both drove
    switches = sum(a != b for a, b in zip(who_a.expert, who_a.expert[1:], strict=False))
    assert switches <= STEPS // 20  # whole 2 s segments (20 steps), not step by step
    who_c, _ = _drive(0.5, seed=4)
    assert who_c.expert != who_a.expert


def test_a_privileged_learner_or_a_bad_share_is_refused() -> None:
    with pytest.raises(ValueError, match="observations only"):
        DaggerFactory(ExpertDriver)
    with pytest.raises(ValueError, match="expert_share"):
        DaggerFactory(Swerver, expert_share=1.5)
    env = DrivingEnv()
    assert isinstance(DaggerFactory(Swerver)(env), DaggerDriver)


def _record(out: Path, **kw):
    suite = Suite(name="tiny1", description="one route", routes=make_tiny_suite().routes[:1])
    return record_suite(
        suite,
        "bench2drive",
        out,
        image_hw=TINY_HW,
        every_n_steps=TINY_EVERY,
        workers=1,
        show_progress=False,
        max_steps=STEPS,
        **kw,
    )


def test_a_dagger_recording_labels_the_learners_states_with_the_expert_plan(tmp_path: Path) -> None:
    res = _record(tmp_path / "d", learner=Swerver, learner_name="swerver v1", expert_share=0.0)
    assert res.failed == [] and validate_dataset(tmp_path / "d") == []
    settings = load_json(tmp_path / "d" / fmt.RECORDING)["settings"]
    assert settings["dagger_learner"] == "swerver v1" and settings["dagger_expert_share"] == 0.0
    ds = RecordedDataset(tmp_path / "d")
    anns = [ds.frame(i).annotation for i in range(len(ds))]
    assert all(not bool(a["expert_in_control"]) for a in anns)
    assert not any(a["future_valid"].any() for a in anns)  # the learner's driven future is no label
    # the expert's plan is there, and it steers back towards the route the learner drifts off
    lateral = [float(a["expert_path_ego"][9, 1]) for a in anns]
    assert all(np.isfinite(lateral)) and lateral[-1] < lateral[0] - 0.5

    _record(tmp_path / "e")  # the same route driven by the expert (longer: the learner's ends early)
    last = len(ds) - 1
    e_frame = RecordedDataset(tmp_path / "e").frame(last)
    assert "expert_in_control" not in e_frame.annotation and e_frame.annotation["future_valid"].any()
    d_pose, e_pose = ds.frame(last).ego_pose_world, e_frame.ego_pose_world
    assert np.hypot(*(d_pose[:2] - e_pose[:2])) > 2.0  # other states than the expert's


def test_a_resumed_recording_keeps_its_learner(tmp_path: Path) -> None:
    _record(tmp_path / "d", learner=Swerver, learner_name="swerver v1")
    with pytest.raises(ValueError, match=r"settings\.dagger_learner 'swerver v1' != 'swerver v2'"):
        _record(tmp_path / "d", learner=Swerver, learner_name="swerver v2")
    with pytest.raises(ValueError, match="learner_name"):
        _record(tmp_path / "x", learner=Swerver)
    # a recording written before the DAgger settings existed still resumes (their defaults)
    _record(tmp_path / "old")
    path = tmp_path / "old" / fmt.RECORDING
    doc = load_json(path)
    for key in ("dagger_learner", "dagger_expert_share", "dagger_segment_s"):
        del doc["settings"][key]
    path.write_text(json.dumps(doc))
    assert _record(tmp_path / "old").skipped == ["r0"]


def test_cli_records_with_a_student_checkpoint(tmp_path: Path) -> None:
    from riskdistill.cli.main import app
    from riskdistill.models import build_student, save_student, student_config

    cfg = student_config("tiny", image_hw=TINY_HW)
    ckpt = save_student(build_student(cfg), tmp_path / "student")
    suite = tmp_path / "suite.json"
    suite.write_text(
        json.dumps(Suite(name="one", description="", routes=make_tiny_suite().routes[:1]).to_dict())
    )
    args = [
        "sim",
        "record",
        "--suite",
        str(suite),
        "--out",
        str(tmp_path / "d"),
        "--workers",
        "1",
        "--image-h",
        str(TINY_HW[0]),
        "--image-w",
        str(TINY_HW[1]),
        "--every",
        "5",
        "--max-steps",
        "40",
        "--dagger",
        str(ckpt),
        "--dagger-expert-share",
        "0.5",
        "--dagger-takeover-s",
        "3",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    settings = load_json(tmp_path / "d" / fmt.RECORDING)["settings"]
    assert str(ckpt.resolve()) in settings["dagger_learner"] and "sha256" in settings["dagger_learner"]
    assert settings["dagger_takeover_s"] == 3.0
    assert RecordedDataset(tmp_path / "d").frame(0).annotation["expert_in_control"].dtype == bool
    bad = CliRunner().invoke(app, [*args[:-6], "--dagger", str(tmp_path)])
    assert bad.exit_code != 0 and "not a checkpoint folder" in bad.output


# ------------------------------------------------------------------- training on expert + DAgger data
@pytest.fixture(scope="session")
def labelled_dataset(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_training_support import make_labelled_copy

    return make_labelled_copy(tiny_dataset, tmp_path_factory)


def test_training_reads_the_expert_and_the_dagger_recording_together(
    labelled_dataset: Path, tmp_path: Path
) -> None:
    from riskdistill.geometry import BevGrid
    from riskdistill.models import build_student
    from riskdistill.training import load_checkpoint, train
    from riskdistill.training.data import MultiRootDataset, build_datasets
    from test_training_support import micro_config, write_oracle_labels

    dagger = tmp_path / "dagger"
    record_suite(
        make_tiny_suite(),
        "bench2drive",
        dagger,
        image_hw=TINY_HW,
        every_n_steps=TINY_EVERY,
        workers=1,
        show_progress=False,
        max_steps=STEPS,
        learner=Swerver,
        learner_name="swerver v1",
        expert_share=0.5,
    )
    write_oracle_labels(dagger)
    cfg = micro_config(labelled_dataset, data={"extra_roots": [str(dagger)], "val_fraction": 0.5})
    student = build_student(cfg.model)
    train_ds, val_ds = build_datasets(cfg, student.target_names, BevGrid.preset("tiny"))
    assert isinstance(train_ds, MultiRootDataset) and isinstance(val_ds, MultiRootDataset)
    assert (
        [d.root for d in train_ds.datasets] == [d.root for d in val_ds.datasets] == [labelled_dataset, dagger]
    )
    n_expert, n_dagger = len(RecordedDataset(labelled_dataset)), len(RecordedDataset(dagger))
    assert len(train_ds) + len(val_ds or []) == n_expert + n_dagger
    sides = {}
    for part, ds in (("train", train_ds), ("val", val_ds)):
        for d in ds.datasets:
            for r in d.route_ids:
                sides.setdefault(r, set()).add(part)
    assert sides and all(len(s) == 1 for s in sides.values())  # a route is on one side in both recordings
    sample = train_ds[len(train_ds) - 1]  # a DAgger frame, with its own risk map
    assert sample is not None

    run = tmp_path / "run"
    train(micro_config(labelled_dataset, data={"extra_roots": [str(dagger)]}, max_steps=2), run)
    sig = load_checkpoint(run / "checkpoints" / "final").trainer.data
    assert sig["extra_roots"][0]["n_frames"] == n_dagger

    other_rig = tmp_path / "nuscenes"
    record_suite(
        Suite(name="one", description="", routes=make_tiny_suite().routes[:1]),
        "nuscenes",
        other_rig,
        image_hw=TINY_HW,
        every_n_steps=TINY_EVERY,
        workers=1,
        show_progress=False,
        max_steps=30,
    )
    with pytest.raises(ValueError, match=r"data\.extra_roots: .*nuscenes was recorded with rig 'nuscenes'"):
        build_datasets(
            micro_config(labelled_dataset, data={"extra_roots": [str(other_rig)]}),
            student.target_names,
            BevGrid.preset("tiny"),
        )


class StandStill:
    """A learner that brakes from the first step: stuck wherever it is."""

    sensors = SensorRequest()

    def reset(self) -> None:
        pass

    def act(self, agent_input: AgentInput) -> Action:
        return Action(controls=Controls(throttle=0.0, steer=0.0, brake=1.0))


def test_a_stuck_learner_hands_the_expert_a_segment_after_takeover_after_s() -> None:
    def drive(takeover: float | None) -> tuple[_Who, list[float]]:
        who = _Who()
        factory = DaggerFactory(StandStill, 0.0, segment_s=2.0, takeover_after_s=takeover)
        log = run_route(_route(), factory, observers=[who], max_steps=STEPS)
        return who, list(log.x_m)

    stuck, xs_stuck = drive(None)
    assert not any(stuck.expert) and max(xs_stuck) - min(xs_stuck) < 0.5  # never moves, never helped
    helped, xs_helped = drive(1.0)
    first = helped.expert.index(True)
    assert 9 <= first <= 11  # stood still 1 s (10 steps at 10 Hz) while the expert would go
    assert all(helped.expert[first : first + 20])  # then the expert drives a whole 2 s segment
    assert helped.driver.takeovers >= 2 and not all(helped.expert)  # the learner gets the car back
    assert max(xs_helped) - min(xs_helped) > 2.0  # the expert drove it on
    with pytest.raises(ValueError, match="takeover_after_s"):
        DaggerFactory(StandStill, takeover_after_s=0.0)
