"""The Bench2Drive / CARLA leaderboard agent: a recorded route exported as a Bench2Drive clip is delivered to
the agent as CARLA would (BGRA cameras, GNSS, IMU, speedometer, the route as a GPS global plan) and the
agent's plan equals the student's plan on the native path; CARLA's own transform maths (the ``carla`` client
package from PyPI, no server) checks the sensor mounting."""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_HW, make_tiny_suite
from riskdistill.agents.carla_agent import RiskdistillAgent, get_entry_point, resolve_agent_config
from riskdistill.agents.carla_convert import (
    GeoReference,
    camera_transform_carla,
    compass_from_yaw,
    yaw_from_compass,
)
from riskdistill.agents.carla_route import RouteTracker, announce_commands
from riskdistill.agents.replay import raw_route_commands, replay_clip, route_global_plan
from riskdistill.config import ConfigError
from riskdistill.data import RecordedDataset
from riskdistill.data.adapters import export_bench2drive_clip
from riskdistill.data.adapters.bench2drive import (
    _R_FLU_FROM_OPENCV,
    _UE4_FROM_OPENCV,
    _rpy_deg_from_R,
    _T_carla_ego_from_our_ego,
)

carla = pytest.importorskip("carla")  # the CARLA client from PyPI: types and transform maths only

AGENT_FILE = Path(__file__).resolve().parents[1] / "src" / "riskdistill" / "agents" / "bench2drive_agent.py"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random student whose checkpoint names its rig, as a training run writes it."""
    import torch

    from riskdistill.models import build_student, save_student, student_config

    torch.manual_seed(3)
    out = tmp_path_factory.mktemp("ckpt") / "student"
    save_student(build_student(student_config("tiny")), out, extra_config={"rig": "bench2drive"})
    return out


@pytest.fixture(scope="module")
def clip(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bench2drive_clip(tiny_dataset, "r0", tmp_path_factory.mktemp("clip") / "r0")


def _instance(route_id: str):
    from riskdistill.sim.scenarios import build_scenario

    spec = next(r for r in make_tiny_suite().routes if r.route_id == route_id)
    return build_scenario(spec.scenario, spec.seed, spec.layout)


def _carla_matrix(spec: dict) -> np.ndarray:
    t = carla.Transform(
        carla.Location(x=spec["x"], y=spec["y"], z=spec["z"]),
        carla.Rotation(pitch=spec["pitch"], yaw=spec["yaw"], roll=spec["roll"]),
    )
    return np.array(t.get_matrix())


# ------------------------------------------------------------------------------------------ conversions
def test_geo_reference_round_trip_and_recovery() -> None:
    geo = GeoReference(49.0, 8.0)  # the geo-reference of most CARLA towns
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-2000, 2000, 50), rng.uniform(-2000, 2000, 50)
    lat, lon = geo.to_gps(x, y)
    xb, yb = geo.to_world(lat, lon)
    assert np.abs(xb - x).max() < 1e-6 and np.abs(yb - y).max() < 1e-6
    # north (CARLA -y) raises the latitude, east (+x) the longitude
    assert geo.to_gps(0.0, -100.0)[0] > geo.lat_ref and geo.to_gps(100.0, 0.0)[1] > geo.lon_ref
    got = GeoReference.from_pair(float(lat[0]), float(lon[0]), float(x[0]), float(y[0]))
    assert abs(got.lat_ref - 49.0) < 1e-9 and abs(got.lon_ref - 8.0) < 1e-9
    xr, yr = got.to_world(lat, lon)
    assert np.abs(xr - x).max() < 1e-4 and np.abs(yr - y).max() < 1e-4
    with pytest.raises(ValueError, match="no geo-reference"):
        GeoReference.from_pair(float("nan"), 8.0, 0.0, 0.0)


def test_compass_convention() -> None:
    # compass 0 = north = CARLA -y = our +y (yaw 90 deg); compass 90 deg = east = +x (yaw 0)
    assert yaw_from_compass(0.0) == pytest.approx(math.pi / 2)
    assert yaw_from_compass(math.pi / 2) == pytest.approx(0.0, abs=1e-12)
    for yaw in np.linspace(-3.1, 3.1, 13):
        assert yaw_from_compass(compass_from_yaw(float(yaw))) == pytest.approx(float(yaw))


def test_camera_mounting_matches_carla_transform_maths() -> None:
    """Our extrinsics -> CARLA sensor transform; CARLA's own matrix of that transform is the camera's pose
    (UE4 camera axes -> CARLA vehicle frame) that our extrinsics imply, for arbitrary yaw, pitch and roll."""
    from riskdistill.geometry import T_ego_from_cam_from_pose

    rng = np.random.default_rng(1)
    d = 1.45
    for _ in range(25):
        x, y, z = rng.uniform(-2, 2), rng.uniform(-1, 1), rng.uniform(0.5, 2)
        yaw, pitch, roll = rng.uniform(-np.pi, np.pi), rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.5)
        T = T_ego_from_cam_from_pose(x, y, z, yaw, pitch, roll).matrix()
        spec = camera_transform_carla(T, d)
        expected = _T_carla_ego_from_our_ego(d) @ T @ np.linalg.inv(_UE4_FROM_OPENCV)
        np.testing.assert_allclose(_carla_matrix(spec), expected, atol=2e-5)
        # our angles, CARLA's signs: yaw and pitch flip (y right, pitch up), the location mirrors y
        assert spec["yaw"] == pytest.approx(-math.degrees(yaw), abs=1e-6)
        assert spec["pitch"] == pytest.approx(-math.degrees(pitch), abs=1e-6)
        assert (spec["x"], spec["y"], spec["z"]) == pytest.approx((x - d, -y, z))
        # the Bench2Drive exporter writes the same angles in each camera's "rotation" [roll, pitch, yaw]
        exported = _rpy_deg_from_R(T[:3, :3] @ _R_FLU_FROM_OPENCV.T)
        assert exported == pytest.approx([spec["roll"], spec["pitch"], spec["yaw"]], abs=1e-6)


def test_sensor_specs_match_the_exported_clip(checkpoint: Path, clip: Path) -> None:
    """The agent asks CARLA for the cameras the data was recorded with: CARLA's matrix of each requested
    transform is the clip's ``cam2ego`` and the field of view / size are the clip's."""
    agent = RiskdistillAgent()
    agent.setup(str(checkpoint))
    specs = agent.sensors()
    anno = json.loads(gzip.decompress(next((clip / "anno").glob("*.json.gz")).read_bytes()))
    cams = [s for s in specs if s["type"] == "sensor.camera.rgb"]
    assert [s["id"] for s in cams] == list(anno["sensors"])
    for s in cams:
        a = anno["sensors"][s["id"]]
        np.testing.assert_allclose(_carla_matrix(s), np.asarray(a["cam2ego"]), atol=2e-5)
        assert (s["width"], s["height"]) == (a["image_size_x"], a["image_size_y"]) == (TINY_HW[1], TINY_HW[0])
        assert s["fov"] == pytest.approx(a["fov"], abs=1e-6)
    # what Bench2Drive's evaluator accepts (agent_wrapper.validate_sensor_configuration, SENSORS track)
    ids = [s["id"] for s in specs]
    assert len(ids) == len(set(ids))
    allowed = {"sensor.camera.rgb": 8, "sensor.other.gnss": 1, "sensor.other.imu": 1, "sensor.speedometer": 1}
    for kind, limit in allowed.items():
        assert 1 <= sum(s["type"] == kind for s in specs) <= limit
    assert all(s["type"] in allowed for s in specs)
    assert all(math.sqrt(s["x"] ** 2 + s["y"] ** 2 + s["z"] ** 2) <= 3.0 for s in specs if "x" in s)


# ------------------------------------------------------------------------------------------ route
def test_route_commands_as_the_environment_announces_them() -> None:
    """The global plan's per-point options, announced by the agent, are the commands our routes give."""
    from riskdistill.sim.route import plan_route
    from riskdistill.sim.scenarios import REGISTRY, build_scenario

    maps = []
    for name in REGISTRY.names():
        inst = build_scenario(name, 0)
        raw = raw_route_commands(inst.route, inst.world.map)
        np.testing.assert_array_equal(
            announce_commands(inst.route.path.s, raw), inst.route.commands, err_msg=name
        )
        maps.append(inst.world.map)
    # scenario routes keep their lane: lane changes on routes planned across neighbouring lanes
    changes = 0
    for road_map in maps:
        for lane in road_map.lanes.values():
            for nb in (lane.left_neighbor, lane.right_neighbor):
                if nb is None or lane.length_m < 60 or changes >= 6:
                    continue
                route = plan_route(road_map, [lane.id, nb])
                raw = raw_route_commands(route, road_map)
                assert np.isin(raw, [5, 6]).any()
                np.testing.assert_array_equal(announce_commands(route.path.s, raw), route.commands)
                changes += 1
    assert changes >= 2  # lane changes are covered, not only turns


def test_route_tracker_is_monotonic_and_ignores_far_positions() -> None:
    pts = np.stack([np.linspace(0, 100, 201), np.zeros(201)], axis=1)
    tr = RouteTracker(pts, [4] * 201)
    target, cmd = tr.update(np.array([10.0, 0.5]))
    assert tr.progress_m == pytest.approx(10.0) and target == pytest.approx([30.0, 0.0]) and int(cmd) == 4
    tr.update(np.array([8.0, 0.0]))  # backwards: progress stays
    assert tr.progress_m == pytest.approx(10.0)
    tr.update(np.array([15.0, 6.0]))  # 6 m off the route: not counted
    assert tr.progress_m == pytest.approx(10.0)
    tr.update(np.array([95.0, 10.0]))  # far beyond the 12 m window and off the route: not counted
    assert tr.progress_m == pytest.approx(10.0)
    target, _ = tr.update(np.array([18.0, 1.0]))
    assert tr.progress_m == pytest.approx(18.0) and target == pytest.approx([38.0, 0.0])
    target, _ = RouteTracker(pts, [4] * 201).update(np.array([99.0, 0.0]))
    assert target == pytest.approx([100.0, 0.0])  # clamped at the route's end


# ------------------------------------------------------------------------------------------ the replay
def test_replayed_route_plans_equal_the_native_path(checkpoint: Path, clip: Path, tiny_dataset: Path) -> None:
    """CARLA-style inputs through the agent give the student's own plan: same images, calibration, ego state,
    target point and command as the recorded frame (the native path), hence the same waypoints."""
    from riskdistill.models import StudentDriver, load_student

    geo = GeoReference(49.0, 8.0)
    inst = _instance("r0")
    plan_gps, plan_world = route_global_plan(inst.route, inst.world.map, geo)
    agent = RiskdistillAgent("localhost", 2000, False)
    agent.set_global_plan(plan_gps, plan_world)
    agent.setup(f"{checkpoint}+RouteScenario_0_rep0_Town01_r0")  # Bench2Drive appends +<save name>
    assert agent.save_name == "RouteScenario_0_rep0_Town01_r0" and agent.rig_name == "bench2drive"

    ds = RecordedDataset(tiny_dataset)
    frames = {ds.frame(i).step: ds.frame(i) for i in range(len(ds)) if ds.frame(i).route_id == "r0"}
    native = StudentDriver(load_student(checkpoint), "bench2drive", TINY_HW)
    compared, max_diff = 0, 0.0
    for step, control in replay_clip(agent, clip, geo):
        rec, ai = frames[step], agent.last_input
        assert isinstance(control, carla.VehicleControl)
        assert control.steer == pytest.approx(-agent.last_controls.steer, abs=1e-6)  # CARLA steers right
        assert (control.throttle, control.brake) == pytest.approx(
            (agent.last_controls.throttle, agent.last_controls.brake), abs=1e-6
        )
        # the sensor conversion: our frames, our ego state
        np.testing.assert_array_equal(ai.images, rec.images)
        assert ai.camera_names == rec.camera_names
        np.testing.assert_allclose(ai.K, rec.annotation["K"], atol=1e-4)
        np.testing.assert_allclose(ai.T_ego_from_cam, rec.annotation["T_ego_from_cam"], atol=1e-5)
        assert ai.ego.speed_mps == pytest.approx(rec.ego.speed_mps, abs=1e-9)
        assert ai.ego.accel_mps2 == pytest.approx(rec.ego.accel_mps2, abs=1e-6)
        assert ai.ego.yaw_rate_radps == pytest.approx(rec.ego.yaw_rate_radps, abs=1e-6)
        # the native path: the recorded frame, with the steering the agent commanded (CARLA has no sensor);
        # both drivers see every frame, so they plan on the same ones (plan_every_steps) and hold alike
        native_input = rec.to_agent_input()
        native_input.ego = dataclasses.replace(native_input.ego, steer=ai.ego.steer)
        if step == 0:
            # the built-in env's first observation uses the route start (the rear axle) before its first
            # progress update; the agent projects the vehicle centre at once, as CARLA routes start there
            native_input.target_point_ego = ai.target_point_ego
            native.act(native_input)
            continue
        np.testing.assert_allclose(
            ai.target_point_ego, rec.target_point_ego, atol=1e-3, err_msg=f"step {step}"
        )
        assert ai.command == rec.command, step
        want = native.act(native_input).waypoints_ego
        np.testing.assert_allclose(agent.last_plan, want, atol=1e-4, err_msg=f"step {step}")
        max_diff = max(max_diff, float(np.abs(agent.last_plan - want).max()))
        compared += 1
    assert compared == len(frames) - 1 >= 5
    assert max_diff < 1e-4
    assert "risk" in agent.driver.last_outputs  # the RiskHead ran (its map is there for a user)
    agent.destroy()


def test_nan_compass_keeps_the_last_heading(checkpoint: Path, clip: Path) -> None:
    from riskdistill.agents.replay import clip_input_data

    geo = GeoReference()
    agent = RiskdistillAgent()
    agent.setup(str(checkpoint))
    path = sorted((clip / "anno").glob("*.json.gz"))[1]
    anno = json.loads(gzip.decompress(path.read_bytes()))
    data = clip_input_data(anno, clip, path.name[:5], geo)
    agent.step_controls(data, 0.5)
    target = agent.last_input.target_point_ego
    data["IMU"][1][6] = float("nan")
    agent.step_controls(data, 0.55)
    np.testing.assert_allclose(agent.last_input.target_point_ego, target, atol=1e-6)
    with pytest.raises(KeyError, match="lacks sensor"):
        agent.step_controls({k: v for k, v in data.items() if k != "GPS"}, 0.6)


# ------------------------------------------------------------------------------------------ loading
def test_agent_config(checkpoint: Path, tmp_path: Path) -> None:
    cfg_file = tmp_path / "agent.json"
    rel = os.path.relpath(checkpoint, tmp_path)  # a relative checkpoint is relative to the config file
    cfg_file.write_text(json.dumps({"checkpoint": rel, "with_risk": False}))
    cfg, save = resolve_agent_config(f"{cfg_file}+route+with+plus")
    assert save == "route+with+plus" and cfg.with_risk is False
    assert Path(cfg.checkpoint) == checkpoint.resolve()
    cfg_file.write_text('{"checkpoint": "x", "withrisk": true}')
    with pytest.raises(ConfigError, match="withrisk"):
        resolve_agent_config(cfg_file)
    with pytest.raises(ConfigError, match="no such file"):
        resolve_agent_config(tmp_path / "nope.json")
    assert get_entry_point() == "RiskdistillAgent"
    cfg_file.write_text(json.dumps({"checkpoint": rel, "occupancy_brake": True}))
    agent = RiskdistillAgent()
    agent.setup(str(cfg_file))
    assert agent.driver.occupancy_brake is not None and agent.driver.stats() == {
        "plans": 0,
        "plans_reused": 0,
        "occupancy_brakes": 0,
    }
    agent.setup(str(checkpoint))
    assert agent.driver.occupancy_brake is None


def test_tele_rig_asks_carla_for_a_seventh_camera(tmp_path: Path) -> None:
    """A student trained on ``bench2drive_tele`` gets CAM_FRONT_TELE: CAM_FRONT's transform at 38.59 deg,
    seven RGB cameras in all (Bench2Drive's SENSORS track allows 8)."""
    import torch

    from riskdistill.models import build_student, save_student, student_config

    torch.manual_seed(3)
    save_student(
        build_student(student_config("tiny")), tmp_path / "s", extra_config={"rig": "bench2drive_tele"}
    )
    agent = RiskdistillAgent()
    agent.setup(str(tmp_path / "s"))
    cams = {s["id"]: s for s in agent.sensors() if s["type"] == "sensor.camera.rgb"}
    assert len(cams) == 7
    front, tele = cams["CAM_FRONT"], cams["CAM_FRONT_TELE"]
    assert tele["fov"] == pytest.approx(38.59) and front["fov"] == pytest.approx(70.0)
    assert {k: tele[k] for k in "xyz"} == {k: front[k] for k in "xyz"}
    assert (tele["roll"], tele["pitch"], tele["yaw"]) == (front["roll"], front["pitch"], front["yaw"])


def test_agent_file_loads_as_the_leaderboard_loads_it(checkpoint: Path) -> None:
    """In a fresh interpreter without Bench2Drive's ``leaderboard`` package: import the agent file by path
    (its folder on sys.path, as leaderboard_evaluator does), build the entry point's class, set it up and
    return a carla.VehicleControl."""
    code = f"""
import importlib, os, sys
import numpy as np
agent_file = {str(AGENT_FILE)!r}
sys.path.insert(0, os.path.dirname(agent_file))
module = importlib.import_module(os.path.basename(agent_file)[:-3])
cls = getattr(module, module.get_entry_point())
assert importlib.util.find_spec("leaderboard") is None
agent = cls("localhost", 2000, False)
agent.setup({str(checkpoint)!r} + "+save")
specs = agent.sensors()
data = {{s["id"]: (0, np.zeros((s["height"], s["width"], 4), np.uint8)) for s in specs if "width" in s}}
data["GPS"] = (0, np.array([42.0, 2.0, 0.0]))
data["IMU"] = (0, np.array([0.0, 0.0, 9.81, 0.0, 0.0, 0.0, 1.0]))
data["SPEED"] = (0, {{"speed": 0.0}})
control = agent.run_step(data, 0.05)
import carla
assert isinstance(control, carla.VehicleControl), type(control)
agent.destroy()
print("OK", type(control).__name__, len(specs))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "OK VehicleControl 9" in res.stdout
