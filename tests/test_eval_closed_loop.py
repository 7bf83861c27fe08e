"""The closed-loop evaluator: drivers by spec, rendering the requested (shifted) rig, crashes, artefacts."""

from __future__ import annotations

import json
import pickle
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from riskdistill.contracts.agent import Action, AgentInput, SensorRequest
from riskdistill.evaluation.bench2drive_io import metric_comfort
from riskdistill.evaluation.closed_loop import evaluate_suite
from riskdistill.evaluation.drivers import StudentDriverFactory, make_driver_factory
from riskdistill.evaluation.generalisation import EvalVariant
from riskdistill.evaluation.leaderboard import INFRACTION_KEYS, load_checkpoint_json
from riskdistill.geometry import BevGrid
from riskdistill.sim.env import DrivingEnv
from riskdistill.sim.events import RouteEnd
from riskdistill.sim.suites import RouteSpec, Suite

SHORT = RouteSpec(route_id="short_accident", scenario="Accident", seed=3, layout={"family": "straight"})
SEEN: list[dict] = []  # what the camera driver observed (workers=1: same process)


def suite(*routes: RouteSpec) -> Suite:
    return Suite(name="test", routes=list(routes))


# ------------------------------------------------------------------------------------------ test drivers
class RaisingDriver:
    sensors = SensorRequest()

    def __init__(self, after_steps: int):
        self.after_steps = after_steps
        self.steps = 0

    def reset(self) -> None:
        self.steps = 0

    def act(self, agent_input: AgentInput) -> Action:
        self.steps += 1
        if self.steps > self.after_steps:
            raise RuntimeError("the network exploded")
        return Action(waypoints_ego=np.array([[2.0 * (k + 1), 0.0] for k in range(6)]))


def make_raising_driver() -> RaisingDriver:
    return RaisingDriver(after_steps=20)


def make_unbuildable_driver() -> RaisingDriver:
    raise OSError("checkpoint file is corrupt")


class EnvBreakingDriver(RaisingDriver):
    """A privileged driver (it opts in to being handed the environment) that breaks the simulation."""

    privileged = True

    def __init__(self, env: DrivingEnv):
        super().__init__(after_steps=10**6)
        self.env = env

    def act(self, agent_input: AgentInput) -> Action:
        if self.steps == 5:
            self.env.instance.script = None  # the simulation itself fails on the next step
        return super().act(agent_input)


GRID = BevGrid(x_min_m=-8.0, x_max_m=24.0, y_min_m=-16.0, y_max_m=16.0, resolution_m=1.0)


class CameraDriver:
    """Follows the target point at ~6 m/s; predicts a risk map that is 0.8 in a block 10-14 m ahead."""

    sensors = SensorRequest("bench2drive", (32, 88))
    grid = GRID

    def reset(self) -> None:
        self.last_outputs: dict[str, np.ndarray] = {}

    def act(self, agent_input: AgentInput) -> Action:
        if len(SEEN) < 3:
            SEEN.append(
                {
                    "shape": agent_input.images.shape,
                    "names": agent_input.camera_names,
                    "black": [bool((img == 0).all()) for img in agent_input.images],
                    "valid": agent_input.extras["camera_valid"].tolist(),
                    "z": agent_input.T_ego_from_cam[:, 2, 3].tolist(),
                    "fx": agent_input.K[:, 0, 0].tolist(),
                }
            )
        tp = agent_input.target_point_ego / np.linalg.norm(agent_input.target_point_ego)
        risk = np.zeros((1, *GRID.shape), dtype=np.float32)
        r0, _ = GRID.metric_to_cell([14.0, 0.0])
        r1, _ = GRID.metric_to_cell([10.0, 0.0])
        risk[0, r0 : r1 + 1, :] = 0.8
        self.last_outputs = {"risk": risk}
        return Action(waypoints_ego=np.outer(np.arange(1, 7) * 3.0, tp))


def make_camera_driver() -> CameraDriver:
    return CameraDriver()


def spec(name: str) -> str:
    return f"{__name__}:{name}"


# ------------------------------------------------------------------------------------------ tests
def test_driver_specs_and_picklable_factories(tmp_path: Path) -> None:
    from riskdistill.sim.expert import ExpertDriver

    assert make_driver_factory("expert") is ExpertDriver
    assert make_driver_factory(spec("make_raising_driver")) is make_raising_driver
    with pytest.raises(ValueError, match="valid drivers"):
        make_driver_factory("robot")
    with pytest.raises(ValueError, match=r"no model\.safetensors"):
        make_driver_factory(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps({"model": {}, "data": {"rig": "nuscenes"}}))
    f = make_driver_factory(str(tmp_path))
    assert isinstance(f, StudentDriverFactory) and f.checkpoint_rig() == "nuscenes"
    assert pickle.loads(pickle.dumps(f)) == f
    assert make_driver_factory(str(tmp_path), rig="bench2drive").checkpoint_rig() == "bench2drive"
    # a training run's config: the rig comes from its data set's manifest
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text(json.dumps({"rig": {"name": "nuscenes", "cameras": []}}))
    (tmp_path / "config.json").write_text(json.dumps({"model": {}, "data": {"root": str(tmp_path / "data")}}))
    assert make_driver_factory(str(tmp_path)).checkpoint_rig() == "nuscenes"


def test_expert_results_have_the_leaderboard_structure_and_route_artefacts(tmp_path: Path) -> None:
    results, summary = evaluate_suite(suite(SHORT), "expert", tmp_path, workers=1, show_progress=False)
    assert results[0].route_end is RouteEnd.COMPLETED
    data = json.loads((tmp_path / "results.json").read_text())
    cp = data["_checkpoint"]
    assert set(cp) == {"global_record", "progress", "records"} and cp["progress"] == [1, 1]
    assert data["entry_status"] == "Finished" and data["eligible"] is True and len(data["values"]) == 15
    rec = load_checkpoint_json(tmp_path / "results.json")[0]
    assert rec["route_id"] == "RouteScenario_0_rep0" and rec["route_name"] == "short_accident"
    assert rec["town_name"] == "RiskDistill_straight" and rec["save_name"] == "short_accident"
    # one min-speed message per checkpoint: completed without an infraction is "Completed", as in Bench2Drive
    assert rec["status"] == "Completed" and len(rec["infractions"]["min_speed_infractions"]) >= 18
    assert rec["num_infractions"] == len(rec["infractions"]["min_speed_infractions"])
    assert set(rec["infractions"]) == set(INFRACTION_KEYS)
    assert set(rec["scores"]) == {"score_route", "score_penalty", "score_composed"}
    assert rec["scores"]["score_penalty"] == 1.0 and rec["scores"]["score_route"] > 95.0
    assert rec["scores"]["score_composed"] == pytest.approx(rec["scores"]["score_route"])
    assert set(rec["meta"]) == {"route_length", "duration_game", "duration_system"}

    doc = json.loads((tmp_path / "routes" / "short_accident.json").read_text())
    traj = doc["trajectory"]
    assert np.allclose(np.diff(traj["time_s"]), 0.5)
    assert len(traj["x_m"]) == len(traj["time_s"]) and traj["time_s"][-1] <= doc["duration_game_s"]
    assert doc["status"] == "Completed" and doc["error"] is None and doc["variant"]["rig_shift"] is None
    assert "metric_info" not in doc and doc["leaderboard_id"] == "RouteScenario_0_rep0"
    assert doc["spec"] == SHORT.to_dict()
    assert doc["path_risk"] is None  # the expert predicts no risk
    assert summary["variant"]["scenarios"] == "all"
    assert summary["driving_score"] == pytest.approx(rec["scores"]["score_route"], abs=1e-5)
    assert not (tmp_path / "risk_outcome.json").exists()
    # the folder Bench2Drive's tools read: the checkpoint alone in json/, a metric_info.json per save_name
    b2d = tmp_path / "bench2drive"
    assert [p.name for p in (b2d / "json").iterdir()] == ["results.json"]
    assert json.loads((b2d / "json" / "results.json").read_text()) == data
    info = json.loads((b2d / "metric" / "short_accident" / "metric_info.json").read_text())
    assert len(info) == round(doc["duration_game_s"] / 0.1) + 1  # every 0.1 s step from t = 0
    first = info["0"]
    assert set(first) == {
        "acceleration",
        "angular_velocity",
        "forward_vector",
        "right_vector",
        "location",
        "rotation",
    }
    assert summary["comfortness"] == pytest.approx(100.0 * metric_comfort(info))
    assert summary["efficiency"] == pytest.approx(results[0].efficiency)
    route_xml = ET.parse(b2d / "routes.xml").getroot().findall("route")
    assert [(r.get("id"), r.get("name"), r.get("town")) for r in route_xml] == [
        ("0", "short_accident", "RiskDistill_straight")
    ]
    # resuming with another variant is refused instead of mixing results
    with pytest.raises(ValueError, match="other settings"):
        evaluate_suite(
            suite(SHORT), "expert", tmp_path, show_progress=False, variant=EvalVariant(rig_shift="yaw+5deg")
        )


def test_crashes_score_zero_and_never_abort_the_suite(tmp_path: Path) -> None:
    broken_layout = RouteSpec(
        route_id="broken", scenario="Accident", seed=3, layout={"family": "straight", "bogus": 1}
    )
    routes = suite(SHORT, broken_layout)
    _, summary = evaluate_suite(routes, spec("make_raising_driver"), tmp_path / "a", show_progress=False)
    docs = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "a" / "routes").glob("*.json")}
    assert docs["short_accident"]["status"] == "Failed - Agent crashed"
    assert "the network exploded" in docs["short_accident"]["error"]
    assert docs["short_accident"]["scores"]["score_composed"] == 0.0
    assert docs["short_accident"]["route_completion_measured_pct"] > 0.0  # it drove 2 s before crashing
    assert len(docs["short_accident"]["plans"]["time_s"]) == 4  # plans every 0.5 s for 2 s
    assert docs["broken"]["status"] == "Failed - Simulation crashed" and "bogus" in docs["broken"]["error"]
    assert summary["driving_score"] == 0.0 and summary["n_evaluated"] == 2
    records = load_checkpoint_json(tmp_path / "a" / "results.json")
    assert [r["status"] for r in records] == ["Failed - Agent crashed", "Failed - Simulation crashed"]
    # a route that never ran still has a metric_info.json Bench2Drive's tool can read (3 standing samples)
    info = json.loads((tmp_path / "a" / "bench2drive" / "metric" / "broken" / "metric_info.json").read_text())
    assert len(info) == 3 and info["0"]["location"] == [0.0, 0.0, 0.0]

    evaluate_suite(suite(SHORT), spec("make_unbuildable_driver"), tmp_path / "b", show_progress=False)
    doc = json.loads((tmp_path / "b" / "routes" / "short_accident.json").read_text())
    assert doc["status"] == "Failed - Agent crashed" and "corrupt" in doc["error"]

    evaluate_suite(suite(SHORT), spec("EnvBreakingDriver"), tmp_path / "c", show_progress=False)
    doc = json.loads((tmp_path / "c" / "routes" / "short_accident.json").read_text())
    assert doc["status"] == "Failed - Simulation crashed" and doc["scores"]["score_composed"] == 0.0


def test_camera_driver_gets_the_shifted_rig_and_path_risk_is_recorded(tmp_path: Path) -> None:
    SEEN.clear()
    variant = EvalVariant(rig_shift="height+0.3,res-0.5,drop-CAM_BACK")
    _, summary = evaluate_suite(
        suite(SHORT), spec("make_camera_driver"), tmp_path, show_progress=False, variant=variant
    )
    seen = SEEN[0]
    assert seen["shape"] == (6, 32, 88, 3)  # rendered at 16x44, upsampled to the requested size
    back = seen["names"].index("CAM_BACK")
    assert seen["black"][back] and not any(b for i, b in enumerate(seen["black"]) if i != back)
    assert seen["valid"] == [i != back for i in range(6)]
    assert np.allclose(seen["z"], 1.9)  # 1.6 m + 0.3 m
    assert np.allclose(seen["fx"], 88 / (2 * np.tan(np.radians(np.array([70, 70, 70, 110, 70, 70]) / 2))))
    doc = json.loads((tmp_path / "routes" / "short_accident.json").read_text())
    risk = doc["path_risk"]
    assert len(risk["time_s"]) == len(risk["risk"]) > 10
    assert np.allclose(risk["risk"], 0.8)  # the block 10-14 m ahead lies on every plan
    assert doc["variant"]["rig_shift"] == "height+0.3,res-0.5,drop-CAM_BACK"
    assert summary["variant"] == variant.to_dict()
    assert (tmp_path / "risk_outcome.json").exists()
