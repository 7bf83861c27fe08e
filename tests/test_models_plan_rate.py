"""A student that plans at a lower rate than the simulation (held plans, cameras rendered on planning steps
only) and its inference engines (eager = the reference, onnx = onnxruntime, checked for parity)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from riskdistill.contracts.agent import Action, AgentInput, EgoState
from riskdistill.contracts.plan_hold import PlanHold, advance_plan
from riskdistill.contracts.rig import load_rig, resize_rig
from riskdistill.models import StudentDriver, build_student, student_config
from riskdistill.models.engines import EagerEngine, OnnxEngine
from riskdistill.sim.env import DrivingEnv
from riskdistill.sim.rollout import run_route
from riskdistill.sim.scenarios import build_scenario
from riskdistill.sim.sensors.observe import CameraObserver
from riskdistill.types import Command

torch.set_num_threads(1)
HW = (32, 88)


def _instance():
    return build_scenario("VehicleTurningRoutePedestrian", 7, {"family": "junction4"})


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    return build_student(student_config("tiny", image_hw=HW)).eval()


class CountingObserver(CameraObserver):
    """The real camera observer, counting how often it renders."""

    def __init__(self) -> None:
        super().__init__(resize_rig(load_rig("bench2drive"), *HW))
        self.renders = 0

    def __call__(self, instance, world):
        self.renders += 1
        return super().__call__(instance, world)


class CountingEngine(EagerEngine):
    def __init__(self, student) -> None:
        super().__init__(student, with_risk=True)
        self.calls = 0

    def __call__(self, obs):
        self.calls += 1
        return super().__call__(obs)


def _input(t: float, speed: float, yaw_rate: float = 0.0) -> AgentInput:
    return AgentInput(
        timestamp_s=t,
        ego=EgoState(speed_mps=speed, accel_mps2=0.0, yaw_rate_radps=yaw_rate, steer=0.0),
        command=Command.LANE_FOLLOW,
        target_point_ego=np.array([20.0, 0.0]),
    )


# ------------------------------------------------------------------------------------------ held plans
def test_advance_plan_samples_the_timed_trajectory_later() -> None:
    wp = np.array([[1.0, 0.0], [3.0, 0.5], [6.0, 1.0], [9.0, 2.0], [12.0, 3.0], [15.0, 4.0]])
    np.testing.assert_array_equal(advance_plan(wp, 0.0), wp)
    one = advance_plan(wp, 0.5)  # one waypoint later; the last one extrapolated along the last segment
    np.testing.assert_allclose(one[:-1], wp[1:])
    np.testing.assert_allclose(one[-1], [18.0, 5.0])
    np.testing.assert_allclose(advance_plan(wp, 0.25)[0], [2.0, 0.25])  # halfway between wp 0 and 1
    np.testing.assert_allclose(advance_plan(wp, 0.2)[0], 0.6 * wp[0] + 0.4 * wp[1])


def test_a_held_plan_stays_put_in_the_world_while_the_car_moves() -> None:
    """Constant speed 8 m/s on a circle of yaw rate 0.2 rad/s: dead reckoning (the midpoint rule) recovers
    the pose, and the held plan, taken back to the plan's frame with that pose, is the plan advanced in
    time."""
    v, r, dt = 8.0, 0.2, 0.1
    wp = np.stack([np.arange(1, 7) * 4.0, np.linspace(0.2, 1.8, 6)], axis=1)
    hold = PlanHold()
    hold.start(wp, _input(3.0, v, r))
    for k in range(1, 5):
        held = hold.follow(_input(3.0 + k * dt, v, r))
        tau = k * dt
        yaw = r * tau
        x, y = v / r * math.sin(yaw), v / r * (1.0 - math.cos(yaw))  # exact arc
        np.testing.assert_allclose(hold.pose, [x, y, yaw], atol=1e-4)
        x, y, yaw = hold.pose
        c, s = math.cos(yaw), math.sin(yaw)
        back = np.stack([x + c * held[:, 0] - s * held[:, 1], y + s * held[:, 0] + c * held[:, 1]], axis=1)
        np.testing.assert_allclose(back, advance_plan(wp, tau), atol=1e-9)
    with pytest.raises(RuntimeError, match="no plan"):
        PlanHold().follow(_input(0.0, 1.0))


def test_dead_reckoning_follows_the_simulated_ego() -> None:
    """Odometry from what the driver is told (speed, yaw rate, time) matches the simulator's ego pose."""
    env = DrivingEnv()
    ai = env.reset(_instance())
    e0 = env.world.ego
    start = (e0.x_m, e0.y_m, e0.yaw_rad)
    hold = PlanHold()
    curve = np.stack([np.arange(1, 7) * 2.0, 0.08 * (np.arange(1, 7) * 2.0) ** 2], axis=1)
    hold.start(curve, ai)
    for _ in range(30):
        ai, _, done = env.step(Action(waypoints_ego=curve))
        assert not done
        pose = hold.odometry(ai)
    e = env.world.ego
    c, s = math.cos(start[2]), math.sin(start[2])
    dx, dy = e.x_m - start[0], e.y_m - start[1]
    truth = [c * dx + s * dy, -s * dx + c * dy, e.yaw_rad - start[2]]
    assert abs(truth[2]) > 0.2 and np.hypot(truth[0], truth[1]) > 3.0  # it did drive a curve
    np.testing.assert_allclose(pose, truth, atol=1e-6)


# ------------------------------------------------------------------------------------------ the driver
def test_the_student_plans_every_kth_step_and_cameras_render_only_then(student) -> None:
    engine = CountingEngine(student)
    driver = StudentDriver(student, "bench2drive", HW, plan_every_steps=5, engine=engine)
    observer = CountingObserver()
    seen: list[tuple[bool, bool]] = []

    class Watch:
        def on_step(self, env, agent_input, action) -> None:
            seen.append((agent_input.images is not None, driver.planned))

    log = run_route(_instance(), driver, env=DrivingEnv(observe=observer), observers=[Watch()], max_steps=23)
    assert len(seen) == 23 and len(log.time_s) == 24
    assert [p for _, p in seen] == [k % 5 == 0 for k in range(23)]
    assert all(has_images == planned for has_images, planned in seen)  # no images when not planning
    assert engine.calls == 5 and observer.renders == 5


def test_every_step_eager_matches_the_student_called_directly(student) -> None:
    """plan_every_steps=1 with the eager engine is the driver as it was: the student's forward on every
    observation, bit for bit."""
    env = DrivingEnv(observe=CameraObserver(resize_rig(load_rig("bench2drive"), *HW)))
    ai = env.reset(_instance())
    assert StudentDriver(student, "bench2drive", HW).plan_every_steps == 5  # the default: 2 Hz
    driver = StudentDriver(student, "bench2drive", HW, plan_every_steps=1)
    assert driver.engine.name == "eager"
    driver.reset()
    for _ in range(4):
        action = driver.act(ai)
        obs, _ = driver.observation(ai)
        with torch.inference_mode():
            ref = student(obs, with_risk=True)
        assert driver.planned and driver.needs_sensors()
        assert np.array_equal(action.waypoints_ego, ref["waypoints"][0].numpy().astype(np.float64))
        assert np.array_equal(driver.last_outputs["risk"], ref["risk"][0, 0].numpy())
        assert np.array_equal(driver.last_outputs["occupancy"], ref["occupancy"][0].numpy())
        ai, _, _ = env.step(action)


def test_onnx_engine_matches_eager_in_the_driver(student, tmp_path) -> None:
    env = DrivingEnv(observe=CameraObserver(resize_rig(load_rig("bench2drive"), *HW)))
    ai = env.reset(_instance())
    onnx = OnnxEngine(student, with_risk=True, onnx_path=tmp_path)
    fast = StudentDriver(student, "bench2drive", HW, engine=onnx, plan_every_steps=1)
    ref = StudentDriver(student, "bench2drive", HW, engine="eager", plan_every_steps=1)
    for _ in range(3):
        a, b = fast.act(ai), ref.act(ai)
        np.testing.assert_allclose(a.waypoints_ego, b.waypoints_ego, atol=1e-4, rtol=0)
        np.testing.assert_allclose(fast.last_outputs["risk"], ref.last_outputs["risk"], atol=1e-4, rtol=0)
        assert "occupancy" not in fast.last_outputs  # not part of the driving path's graph
        ai, _, _ = env.step(b)
    # the graph is exported once, named by the weights, and reused by a second engine
    files = list(tmp_path.glob("student-*.onnx"))
    assert len(files) == 1 and onnx.digest in files[0].name
    again = OnnxEngine(student, with_risk=True, onnx_path=tmp_path)
    obs, _ = ref.observation(ai)
    mtime = files[0].stat().st_mtime_ns
    np.testing.assert_array_equal(again(obs)["waypoints"], onnx(obs)["waypoints"])
    assert files[0].stat().st_mtime_ns == mtime
    # other weights: another file
    other = build_student(student_config("tiny", image_hw=HW)).eval()
    assert OnnxEngine(other, with_risk=True).digest != onnx.digest


def test_a_changed_forward_pass_is_exported_anew(student, tmp_path, monkeypatch) -> None:
    from riskdistill.models import engines

    code = tmp_path / "pkg"
    (code / "models").mkdir(parents=True)
    (code / "models" / "student.py").write_text("x = 1\n")
    (code / "geometry.py").write_text("y = 1\n")
    entries = ("models", "geometry.py")
    first = engines.source_digest(code, entries)
    (code / "models" / "student.py").write_text("x = 2\n")  # an edited forward pass
    second = engines.source_digest(code, entries)
    (code / "models" / "heads.py").write_text("")  # a new module
    third = engines.source_digest(code, entries)
    assert len({first, second, third}) == 3
    (code / "models" / "notes.txt").write_text("not code")
    assert engines.source_digest(code, entries) == third
    # the installed code's digest names the graph: other code, another file
    digest = OnnxEngine(student, with_risk=True).digest
    monkeypatch.setattr(engines, "graph_code_digest", lambda: "edited")
    assert OnnxEngine(student, with_risk=True).digest != digest


def test_bad_rates_and_engines_are_refused(student) -> None:
    with pytest.raises(ValueError, match="plan_every_steps must be >= 1"):
        StudentDriver(student, "bench2drive", HW, plan_every_steps=0)
    with pytest.raises(ValueError, match="valid engines"):
        StudentDriver(student, "bench2drive", HW, engine="tensorrt")
    temporal = build_student(student_config("tiny", image_hw=HW, temporal={"enabled": True}))
    with pytest.raises(ValueError, match="multiple of plan_every_steps"):
        StudentDriver(temporal, "bench2drive", HW, plan_every_steps=2, history_stride=5)
    with pytest.raises(ValueError, match="temporal student"):
        StudentDriver(temporal, "bench2drive", HW, engine="onnx", plan_every_steps=1)


def test_a_temporal_student_sees_the_frame_of_an_earlier_planning_step(student) -> None:
    torch.manual_seed(0)
    temporal = build_student(student_config("tiny", image_hw=HW, temporal={"enabled": True}))
    driver = StudentDriver(temporal, "bench2drive", HW, plan_every_steps=5, history_stride=10)
    seen: list[tuple[bool, float]] = []
    inner = driver.engine

    def engine(obs):
        seen.append((bool(obs.prev_valid[0, 0]), float(obs.prev_images.float().mean())))
        return inner(obs)

    driver.engine = engine
    run_route(_instance(), driver, env=DrivingEnv(observe=CountingObserver()), max_steps=21)
    assert [v for v, _ in seen] == [False, False, True, True, True]  # history of 10 steps = 2 plans


# ------------------------------------------------------------------------------------------ repeated inputs
def test_a_repeated_observation_reuses_the_last_outputs(student) -> None:
    """A planning step that sees exactly what the previous one saw reuses its engine outputs; any change
    (one pixel, the speed, an image buffer overwritten in place after the step) runs the engine again."""
    env = DrivingEnv(observe=CameraObserver(resize_rig(load_rig("bench2drive"), *HW)))
    ai = env.reset(_instance())
    engine = CountingEngine(student)
    driver = StudentDriver(student, "bench2drive", HW, plan_every_steps=1, engine=engine)
    first = driver.act(ai)
    out = {k: v.copy() for k, v in driver.last_outputs.items()}
    again = driver.act(ai)
    assert engine.calls == 1 and driver.reused and driver.stats() == {"plans": 2, "plans_reused": 1}
    assert np.array_equal(again.waypoints_ego, first.waypoints_ego)
    assert all(np.array_equal(driver.last_outputs[k], out[k]) for k in out)

    ai.images[0, 5, 7, 1] ^= 1  # the same buffer, one pixel changed in place
    driver.act(ai)
    assert engine.calls == 2 and not driver.reused
    slower = AgentInput(
        **{**vars(ai), "ego": EgoState(**{**vars(ai.ego), "speed_mps": ai.ego.speed_mps + 1e-3})}
    )
    driver.act(slower)
    assert engine.calls == 3 and not driver.reused
    driver.reset()
    driver.act(slower)  # a new route starts without a previous observation
    assert engine.calls == 4 and driver.stats() == {"plans": 1, "plans_reused": 0}

    off = CountingEngine(student)
    plain = StudentDriver(student, "bench2drive", HW, plan_every_steps=1, engine=off, reuse_repeated=False)
    plain.act(ai)
    plain.act(ai)
    assert off.calls == 2 and plain.stats()["plans_reused"] == 0


class KeepActions:
    def __init__(self) -> None:
        self.actions: list[np.ndarray] = []

    def on_step(self, env, agent_input, action) -> None:
        self.actions.append(action.waypoints_ego.copy())


def test_reusing_repeated_observations_drives_the_same_route(student) -> None:
    """A student whose planner says "stop" (its waypoint layer zeroed) stands still; once the pedestrians and
    cars it sees have left its cameras, its observations repeat. The drive with reuse is the drive without
    it, step for step, with fewer engine runs."""
    stopper = copy.deepcopy(student)
    with torch.no_grad():
        stopper.heads["planning"].out.weight.zero_()
        stopper.heads["planning"].out.bias.zero_()
    runs = []
    for reuse in (True, False):
        engine = CountingEngine(stopper)
        driver = StudentDriver(stopper, "bench2drive", HW, engine=engine, reuse_repeated=reuse)
        env = DrivingEnv(observe=CameraObserver(resize_rig(load_rig("bench2drive"), *HW)))
        keep = KeepActions()
        log = run_route(build_scenario("StaticCutIn", 0), driver, env=env, observers=[keep], max_steps=200)
        runs.append((log, keep.actions, driver.stats(), engine.calls))
    (log, actions, stats, calls), (log_off, actions_off, stats_off, calls_off) = runs
    assert len(actions) == len(actions_off) == 200
    assert all(np.array_equal(a, b) for a, b in zip(actions, actions_off, strict=True))
    for name in ("x_m", "y_m", "speed_mps", "progress_m", "events"):
        assert getattr(log, name) == getattr(log_off, name)
    assert stats["plans"] == stats_off["plans"] == calls_off == 40
    assert stats["plans_reused"] > 0 and calls + stats["plans_reused"] == 40
