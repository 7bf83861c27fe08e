"""Closed-loop environment: infraction detection on constructed situations, termination, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from riskdistill.contracts.agent import Action, Controls
from riskdistill.sim.env import DrivingEnv
from riskdistill.sim.events import RouteEnd
from riskdistill.sim.expert import ExpertDriver
from riskdistill.sim.layouts import LayoutParams
from riskdistill.sim.road_layouts import build_layout
from riskdistill.sim.rollout import run_route
from riskdistill.sim.scenarios.base import BuildContext, instance_from_context
from riskdistill.types import ActorClass, Infraction, LightState


class ConstantDriver:
    """A blind driver: fixed pedals, steering along the route handled by a straight road."""

    sensors = None

    def __init__(self, throttle: float = 0.5) -> None:
        self.throttle = throttle

    def reset(self) -> None:
        pass

    def act(self, agent_input):
        # Steer towards the target point so the car follows the (straight) route.
        tx, ty = agent_input.target_point_ego
        steer = float(np.clip(2.0 * np.arctan2(ty, tx), -1, 1))
        return Action(controls=Controls(throttle=self.throttle, steer=steer))


def straight_ctx(seed: int = 0) -> BuildContext:
    layout = build_layout(
        LayoutParams(family="straight", lanes_per_direction=1, crosswalk=False, road_length_m=200)
    )
    ctx = BuildContext(layout, np.random.default_rng(seed))
    ctx.set_route([layout.roads["main"].forward_lane_ids[0]], 10.0, 180.0)
    return ctx


def junction_ctx(control: str) -> tuple[BuildContext, list[int]]:
    layout = build_layout(LayoutParams(family="junction4", junction_control=control, crosswalk=False))
    ctx = BuildContext(layout, np.random.default_rng(0))
    key = next(k for k in layout.connectors if k[0] == "arm0" and k[2] == "arm2")
    lanes = [layout.roads["arm0"].forward_lane_ids[key[1]], layout.connectors[key]]
    lanes.append(layout.roads["arm2"].backward_lane_ids[key[3]])
    ctx.set_route(lanes, 20.0, None)
    return ctx, lanes


def kinds(log) -> list[Infraction]:
    return [e.kind for e in log.events]


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (ActorClass.CAR, Infraction.COLLISION_VEHICLE),
        (ActorClass.PEDESTRIAN, Infraction.COLLISION_PEDESTRIAN),
        (ActorClass.TRAFFIC_CONE, Infraction.COLLISION_LAYOUT),
    ],
)
def test_collision_with_object_on_route_is_detected(cls: ActorClass, expected: Infraction) -> None:
    ctx = straight_ctx()
    p = ctx.route.path.point_at(60.0)
    ctx.add_static(cls, p, float(ctx.route.path.heading_at(60.0)))
    log = run_route(instance_from_context(ctx), ConstantDriver(), max_steps=400)
    assert expected in kinds(log)
    assert kinds(log).count(expected) == 1  # one contact, one event


def test_expert_goes_around_static_blocker() -> None:
    ctx = straight_ctx()
    p = ctx.route.path.point_at(60.0)
    ctx.add_static(ActorClass.BARRIER, p, float(ctx.route.path.heading_at(60.0)) + np.pi / 2)
    log = run_route(instance_from_context(ctx), ExpertDriver)
    assert log.end == RouteEnd.COMPLETED
    assert not any(k.value.startswith("collisions") for k in kinds(log))


def test_expert_stops_behind_stopped_vehicle() -> None:
    ctx = straight_ctx()
    lane = ctx.layout.roads["main"].forward_lane_ids[0]
    pid = ctx.lane_path([lane])
    lead = ctx.add_vehicle(pid, 80.0, 0.0, 0.0, cls=ActorClass.CAR, hold=True)
    log = run_route(instance_from_context(ctx), ExpertDriver, max_steps=300)
    a = ctx.world.actors
    assert not any(k.value.startswith("collisions") for k in kinds(log))
    assert log.speed_mps[-1] < 0.1
    gap = np.hypot(a.x[lead] - a.x[0], a.y[lead] - a.y[0]) - 0.5 * (a.length[lead] + a.length[0])
    assert 1.0 < gap < 8.0


def test_red_light_run_is_detected_and_expert_waits() -> None:
    ctx, _ = junction_ctx("signalized")
    lights = list(ctx.map.traffic_lights)
    for lid in lights:
        ctx.world.light_override[lid] = LightState.RED
    log = run_route(instance_from_context(ctx), ConstantDriver(0.4), max_steps=400)
    assert Infraction.RED_LIGHT in kinds(log)

    ctx, _ = junction_ctx("signalized")
    for lid in lights:
        ctx.world.light_override[lid] = LightState.RED
    log = run_route(instance_from_context(ctx), ExpertDriver, max_steps=400)
    assert Infraction.RED_LIGHT not in kinds(log)
    assert log.end == RouteEnd.RUNNING and log.speed_mps[-1] < 0.1  # still waiting at the line


def test_stop_sign_run_is_detected_and_expert_stops() -> None:
    ctx, _ = junction_ctx("stop")
    log = run_route(instance_from_context(ctx), ConstantDriver(0.4), max_steps=400)
    assert Infraction.STOP_SIGN in kinds(log)

    ctx, _ = junction_ctx("stop")
    log = run_route(instance_from_context(ctx), ExpertDriver)
    assert Infraction.STOP_SIGN not in kinds(log)
    assert log.end == RouteEnd.COMPLETED


def test_blocked_agent_fails_after_60s() -> None:
    ctx = straight_ctx()
    env = DrivingEnv()
    env.reset(instance_from_context(ctx))
    done = False
    steps = 0
    while not done:
        _, _, done = env.step(Action(controls=Controls(brake=1.0)))
        steps += 1
    assert env.route_log().end == RouteEnd.BLOCKED
    assert Infraction.BLOCKED in kinds(env.route_log())
    assert 599 <= steps <= 602


def test_route_deviation_ends_route() -> None:
    ctx = straight_ctx()
    env = DrivingEnv()
    env.reset(instance_from_context(ctx))
    done, k = False, 0
    while not done:  # turn away from the road, then drive straight on
        _, _, done = env.step(Action(controls=Controls(throttle=0.6, steer=1.0 if k < 20 else 0.0)))
        k += 1
    assert env.route_log().end == RouteEnd.DEVIATED
    assert Infraction.ROUTE_DEVIATION in kinds(env.route_log())


def test_driver_exception_is_recorded_as_agent_crash() -> None:
    class Broken(ConstantDriver):
        def act(self, agent_input):
            raise RuntimeError("boom")

    log = run_route(instance_from_context(straight_ctx()), Broken())
    assert log.end == RouteEnd.AGENT_CRASHED


def test_waypoint_action_is_tracked_by_controller() -> None:
    env = DrivingEnv()
    env.reset(instance_from_context(straight_ctx()))
    wp = np.stack([np.arange(1, 7) * 4.0, np.zeros(6)], axis=1)  # 8 m/s straight ahead
    for _ in range(100):
        env.step(Action(waypoints_ego=wp))
    assert 6.5 < env.world.ego.speed_mps < 9.5
    assert abs(env.world.ego.yaw_rad - float(env.instance.route.path.heading_at(0.0))) < 0.1


def test_agent_input_has_no_ground_truth() -> None:
    env = DrivingEnv()
    inp = env.reset(instance_from_context(straight_ctx()))
    assert inp.images is None
    assert inp.target_point_ego.shape == (2,)
    assert inp.target_point_ego[0] > 10.0 and abs(inp.target_point_ego[1]) < 1.0  # ahead, on the lane
    assert not hasattr(inp, "world") and not hasattr(inp, "actors")


def test_rollout_is_bit_identical() -> None:
    def rollout() -> np.ndarray:
        ctx, _ = junction_ctx("uncontrolled")
        from riskdistill.sim.scenarios.background import add_background_traffic

        add_background_traffic(ctx, 1.0)
        log = run_route(instance_from_context(ctx), ExpertDriver, max_steps=200)
        a = ctx.world.actors
        return np.concatenate([log.x_m, log.y_m, log.speed_mps, a.x[: a.n], a.y[: a.n]])

    first, second = rollout(), rollout()
    assert first.tobytes() == second.tobytes()


def test_camera_observer_fills_agent_input() -> None:
    from riskdistill.contracts.rig import load_rig, resize_rig
    from riskdistill.sim.sensors.observe import CameraObserver

    rig = resize_rig(load_rig("bench2drive"), 64, 176)
    env = DrivingEnv(observe=CameraObserver(rig))
    inp = env.reset(instance_from_context(straight_ctx()))
    assert inp.images.shape == (6, 64, 176, 3) and inp.images.dtype == np.uint8
    assert inp.K.shape == (6, 3, 3) and inp.T_ego_from_cam.shape == (6, 4, 4)
    assert len(inp.camera_names) == 6
    inp, _, _ = env.step(Action(controls=Controls(throttle=0.5)))
    assert inp.images.std() > 5.0  # a rendered scene, not a blank frame
