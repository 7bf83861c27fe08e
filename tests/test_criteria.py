"""Bench2Drive's criteria as state machines (sim/criteria.py), and the output Bench2Drive's tools read."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from riskdistill.evaluation.bench2drive_io import metric_samples, routes_xml_text, town_name
from riskdistill.sim.criteria import (
    CollisionCounter,
    MinSpeedMonitor,
    OutsideRouteLanes,
    RouteTimeout,
    YieldToEmergencyVehicle,
    junction_completion,
    route_file_s,
)
from riskdistill.sim.env import DrivingEnv, RouteLog
from riskdistill.sim.events import RouteEnd
from riskdistill.sim.expert import ExpertDriver
from riskdistill.sim.rollout import run_route
from riskdistill.sim.scenarios import build_scenario
from riskdistill.sim.suites import RouteSpec
from riskdistill.types import Infraction

XY = np.array([0.0, 0.0])


def at(x_m: float) -> np.ndarray:
    return np.array([x_m, 0.0])


def test_collision_counter_same_actor_within_5_s_and_same_place_within_5_m() -> None:
    c = CollisionCounter()
    assert c.counts(7, 0.0, XY, 5.0)
    assert not c.counts(7, 1.0, at(20.0), 5.0)  # same actor, 1 s later, even far away
    assert not c.counts(8, 1.0, at(4.9), 5.0)  # another actor, within 5 m of the last place
    c.update(5.5, at(6.0))  # > 5 m away and > 5 s later: both filters expire
    assert c.counts(7, 5.5, at(6.0), 5.0)


def test_collision_counter_ignores_a_standing_ego_and_static_objects_never_block_by_id() -> None:
    c = CollisionCounter()
    assert not c.counts(3, 0.0, XY, 0.05)  # slower than 0.1 m/s: not the ego's fault
    assert c.counts(0, 0.0, XY, 3.0)  # a map object (id 0)
    c.update(0.2, at(5.1))
    assert c.counts(0, 0.2, at(5.1), 3.0)  # the next pole, 5.1 m on: a new collision
    c.update(0.3, at(5.2))
    assert not c.counts(0, 0.3, at(5.2), 3.0)  # still at the same place


def test_route_timeout_grows_with_progress_and_the_speed_limit() -> None:
    t = RouteTimeout()
    assert t.timeout_s == 300.0 and not t.expired(300.0) and t.expired(300.1)
    t.update(100.0, 10.0)  # 100 m at 10 % of 10 m/s: + 100 s
    assert t.timeout_s == pytest.approx(400.0)
    t.update(50.0, 10.0)  # going back adds nothing
    assert t.timeout_s == pytest.approx(400.0)
    assert RouteTimeout(cap_s=20.0).expired(20.0)


def test_min_speed_monitor_checkpoints() -> None:
    m = MinSpeedMonitor(100.0)  # checkpoints every 5 m
    assert m.update(0.0, 5.0, 10.0) is None
    assert m.update(4.0, 5.0, 10.0) is None
    assert m.update(5.5, 8.0, 10.0) == 50.0  # the checkpoint closes before this sample is added
    assert m.update(8.0, 3.0, float("nan")) is None  # no background traffic: sample skipped
    assert m.update(11.0, 1.0, 2.0) == 80.0
    assert m.update(17.0, 1.0, 0.0) == 50.0
    assert m.update(23.0, 1.0, 0.0) == 100  # traffic standing still: 100
    assert m.finish(90.0) is None and m.finish(96.0) == 100


def test_outside_route_lanes_message_is_bench2drives() -> None:
    o = OutsideRouteLanes()
    o.update(10.0, False)
    o.update(5.0, True)
    o.update(-1.0, True)  # no progress, nothing counted
    assert o.percent == pytest.approx(100 * 5 / 15)
    assert (
        o.message()
        == "Agent went outside its route lanes for about 5.0 meters (33.33% of the completed route)"
    )


def test_yield_test_ends_10_s_after_the_ev_got_close_and_judges_the_last_state() -> None:
    y = YieldToEmergencyVehicle()
    ego, ev = np.array([30.0, 0.0]), np.array([0.0, 0.0])
    assert not y.update(0.0, ego, 2.3, ev, 0.0, 2.7)  # within 50 m: the clock starts
    assert y.failing
    assert not y.update(10.0, ego, 2.3, ev, 0.0, 2.7)
    assert y.update(10.1, ego, 2.3, ev, 0.0, 2.7) and y.failing  # still ahead of the EV after 10 s

    y = YieldToEmergencyVehicle()
    y.update(0.0, ego, 2.3, ev, 0.0, 2.7)
    y.update(3.0, np.array([40.0, -3.5]), 2.3, np.array([48.0, 0.0]), 0.0, 2.7)  # EV got in front
    assert y.front_xy is not None and not y.failing
    ended = [y.update(3.0 + 0.1 * k, np.array([40.0, -3.5]), 2.3, np.array([48.0 + k, 0.0]), 0.0, 2.7)
             for k in range(1, 60)]  # fmt: skip
    assert any(ended) and not y.failing  # ended once the EV drove 50 m


def test_junction_completion_traces_the_route_file_at_1_m() -> None:
    s_pos = route_file_s(0.0, 101.0)
    assert s_pos[0] == 0.0 and s_pos[-1] == 101.0 and np.allclose(np.diff(s_pos[:-1]), 2.0)
    path_s = np.arange(0.0, 101.01, 0.5)
    in_junction = (path_s >= 40.25) & (path_s < 60.0)

    def xy_at(s):
        return np.stack([np.asarray(s), np.zeros_like(s)], axis=-1)

    # 101 points at 1 m; the first at or past 40.25 m is point 41 (0-based): (41 + 1 + 8) / 101
    assert junction_completion(xy_at, path_s, in_junction, s_pos) == pytest.approx(50 / 101)
    assert junction_completion(xy_at, path_s, np.zeros_like(in_junction), s_pos) is None


# ------------------------------------------------------------------------------------------ scenario
def test_yield_to_emergency_vehicle_expert_moves_over_and_a_lane_keeper_fails() -> None:
    log = run_route(build_scenario("YieldToEmergencyVehicle", 4), ExpertDriver)
    assert log.end == RouteEnd.COMPLETED
    assert not [e for e in log.events if e.kind != Infraction.MIN_SPEED]

    class LaneKeeper(ExpertDriver):  # the expert that ignores the emergency vehicle
        def _plan_yield(self, s_centre: float, v: float) -> None:
            pass

    instance = build_scenario("YieldToEmergencyVehicle", 4)
    log = run_route(instance, LaneKeeper)
    (event,) = [e for e in log.events if e.kind == Infraction.YIELD_EMERGENCY_VEHICLE]
    assert event.message == "Agent failed to yield to an emergency vehicle"
    assert 10.0 < event.time_s < 11.0  # 10 s after the EV came within 50 m (at the start)
    assert not [e for e in log.events if e.kind.value.startswith("collisions")]  # it never rams the ego


def test_blocked_is_suspended_while_a_scenario_with_a_timeout_runs() -> None:
    instance = build_scenario("ParkedObstacle", 0)  # has Bench2Drive's 240 s scenario timeout
    assert instance.scenario_timeout_s == 240.0
    assert build_scenario("HardBreakRoute", 0).scenario_timeout_s is None
    env = DrivingEnv()
    env.reset(instance)
    driver = ExpertDriver(env)
    done = False
    while not done and env.instance.script.triggered_at_s is None:  # drive until the scenario starts
        _, _, done = env.step(driver.act(None))
    from riskdistill.contracts.agent import Action, Controls

    while not done:
        _, _, done = env.step(Action(controls=Controls(brake=1.0)))
    log = env.route_log()
    timeout = next(e for e in log.events if e.kind == Infraction.SCENARIO_TIMEOUT)
    assert timeout.time_s == pytest.approx(env.instance.script.triggered_at_s + 240.1, abs=0.15)
    assert log.end == RouteEnd.BLOCKED and log.time_s[-1] == pytest.approx(timeout.time_s + 60.0, abs=0.15)


# ------------------------------------------------------------------------------------------ output
def test_metric_samples_are_carla_frame_and_padded() -> None:
    log = RouteLog(route_length_m=10.0, x_m=[1.0], y_m=[2.0], yaw_rad=[math.pi / 2], speed_mps=[4.0],
                   accel_mps2=[1.0], yaw_rate_radps=[0.5])  # fmt: skip
    samples = metric_samples(log)
    assert list(samples) == ["0", "1", "2"]  # padded to the three samples the tool needs
    s = samples["0"]
    assert s["location"] == [1.0, -2.0, 0.0]  # y right
    assert s["rotation"] == [0.0, 0.0, -90.0]  # yaw clockwise, degrees
    assert s["forward_vector"] == pytest.approx([0.0, -1.0, 0.0], abs=1e-6)
    assert s["right_vector"] == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)
    # 1 m/s^2 along the heading plus the centripetal 4 m/s x 0.5 rad/s to the left (= -x here), y flipped
    assert s["acceleration"] == pytest.approx([-2.0, -1.0, 0.0], abs=1e-6)
    assert s["angular_velocity"] == pytest.approx([0.0, 0.0, -math.degrees(0.5)])
    assert len(metric_samples(None)) == 3
    json.dumps(samples)


def test_routes_xml_is_a_bench2drive_routes_file() -> None:
    spec = RouteSpec(route_id="bench_YieldToEmergencyVehicle_0", scenario="YieldToEmergencyVehicle", seed=4)
    root = ET.fromstring(routes_xml_text([(120, spec)]))
    (route,) = root.findall("route")
    assert route.get("id") == "120" and route.get("town") == town_name(spec) == "RiskDistill_highway"
    positions = route.find("waypoints").findall("position")
    xy = np.array([[float(p.get("x")), float(p.get("y"))] for p in positions])
    instance = build_scenario(spec.scenario, spec.seed)
    assert len(positions) == len(route_file_s(0.0, instance.route.path.length_m))
    assert np.allclose(xy[0], instance.route.path.point_at(0.0) * [1, -1], atol=0.06)
    scenario = route.find("scenarios").find("scenario")
    assert scenario.get("type") == "YieldToEmergencyVehicle" and scenario.find("trigger_point") is not None
    assert scenario.find("distance") is not None
    assert [w.get("route_percentage") for w in route.find("weathers").findall("weather")] == ["0", "100"]
