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


# ------------------------------------------------------------------------------------------ Bench2Drive rules
class HoldSpeedDriver:
    """Holds ``speed_mps`` towards a line ``offset_m`` left of the route; brakes past ``stop_after_m``."""

    sensors = None

    def __init__(self, env: DrivingEnv, speed_mps: float, offset_m: float = 0.0, stop_after_m: float = 1e9):
        self.env, self.speed, self.offset, self.stop_after_m = env, speed_mps, offset_m, stop_after_m

    def reset(self) -> None:
        pass

    def act(self, agent_input):
        env = self.env
        e = env.world.ego
        if env.progress_m >= self.stop_after_m:
            return Action(controls=Controls(brake=1.0))
        path = env.instance.route.path
        s, _ = path.project(np.array([e.x_m, e.y_m]), s_hint=env.progress_m, window_m=12.0)
        h = float(path.heading_at(s + 6.0))
        target = path.point_at(s + 6.0) + self.offset * np.array([-np.sin(h), np.cos(h)])
        d = target - np.array([e.x_m, e.y_m])
        alpha = np.arctan2(d[1], d[0]) - e.yaw_rad
        steer = float(np.clip(np.arctan2(2 * 2.9 * np.sin(alpha), np.hypot(*d)) / 0.6, -1, 1))
        err = self.speed - e.speed_mps
        return Action(controls=Controls(throttle=float(np.clip(0.5 * err, 0, 1)), brake=0.0, steer=steer))


def collisions(log) -> list:
    return [e for e in log.events if e.kind.value.startswith("collisions")]


def ego_overlaps_anything(world) -> bool:
    from riskdistill.geometry import box_corners_2d, boxes_overlap_matrix

    a = world.actors
    ego = box_corners_2d(np.array([[a.x[0], a.y[0]]]), a.yaw[:1], a.length[:1], a.width[:1])
    others = box_corners_2d(
        np.stack([a.x[1 : a.n], a.y[1 : a.n]], 1), a.yaw[1 : a.n], a.length[1 : a.n], a.width[1 : a.n]
    )
    poles = [
        box_corners_2d(ob.center[None], np.array([ob.yaw]), np.array([0.3]), np.array([0.3]))[0]
        for ob in world.map.layout_obstacles
    ]
    boxes = np.concatenate([others, np.array(poles).reshape(-1, 4, 2)])
    return bool(boxes_overlap_matrix(ego, boxes).any()) if len(boxes) else False


def test_sustained_scrape_of_a_pole_row_is_one_collision() -> None:
    from riskdistill.sim.roadmap import LayoutObstacle

    ctx = straight_ctx()
    for x in np.arange(-60.0, -20.0, 1.5):  # a row of poles just right of the ego's lane
        ctx.map.layout_obstacles.append(LayoutObstacle(np.array([x, -3.1]), 0.0, 0.3, 0.3, 5.0))
    env = DrivingEnv()
    env.reset(instance_from_context(ctx))
    driver = HoldSpeedDriver(env, 8.0, offset_m=-2.0)  # keeps pushing into the row
    overlapping = 0
    for _ in range(400):
        _, _, done = env.step(driver.act(None))
        overlapping += ego_overlaps_anything(env.world)
        if done:
            break
    hits = collisions(env.route_log())
    assert [e.kind for e in hits] == [Infraction.COLLISION_LAYOUT]
    assert "type=static.pole and id=0" in hits[0].message
    assert overlapping == 0  # it is stopped at the pole, never inside it
    assert env.world.actors.x[0] < -58.0  # and did not get past the start of the row


def test_two_cars_hitting_the_moving_ego_one_second_apart_are_two_collisions() -> None:
    ctx = straight_ctx()
    ctx.world.ego.speed_mps = ctx.world.actors.speed[0] = 10.0

    def side_path(x_start: float, x_swerve: float) -> int:
        xs = np.arange(x_start, 100.0, 0.5)
        y = np.where(xs < x_swerve, 1.75, np.maximum(1.75 - 0.4 * (xs - x_swerve), -0.6))  # into the ego lane
        return ctx.world.add_path(np.stack([xs, y], axis=1))

    ego_x0 = float(ctx.world.actors.x[0])
    a = ctx.add_vehicle(
        side_path(ego_x0 - 2.0, ego_x0 + 8.0), 0.0, 10.0, cls=ActorClass.CAR, ignore_actors=True
    )
    b = ctx.add_vehicle(
        side_path(ego_x0 + 3.0, ego_x0 + 23.0), 0.0, 10.0, cls=ActorClass.CAR, ignore_actors=True
    )
    env = DrivingEnv()
    env.reset(instance_from_context(ctx))
    driver = HoldSpeedDriver(env, 10.0)
    for _ in range(60):
        env.step(driver.act(None))
        assert not ego_overlaps_anything(env.world)
    hits = collisions(env.route_log())
    assert [(e.kind, e.actor_id) for e in hits] == [
        (Infraction.COLLISION_VEHICLE, a),
        (Infraction.COLLISION_VEHICLE, b),
    ]
    assert hits[1].time_s - hits[0].time_s == pytest.approx(1.0, abs=0.3)


def test_a_stopped_ego_hit_from_behind_has_no_collision() -> None:
    ctx = straight_ctx()
    lane = ctx.layout.roads["main"].forward_lane_ids[0]
    car = ctx.add_vehicle(ctx.lane_path([lane]), 2.5, 8.0, cls=ActorClass.CAR, ignore_actors=True)
    env = DrivingEnv()
    env.reset(instance_from_context(ctx))
    x0 = float(env.world.actors.x[0])
    for _ in range(50):
        env.step(Action(controls=Controls(brake=1.0)))
        assert not ego_overlaps_anything(env.world)
    a = env.world.actors
    assert collisions(env.route_log()) == []
    assert a.x[car] + 0.5 * a.length[car] <= a.x[0] - 0.5 * a.length[0] + 1e-6  # stopped behind, not through
    assert a.x[0] == pytest.approx(x0) and a.speed[car] == 0.0


def test_outside_lanes_share_is_over_the_completed_distance_on_a_failed_route() -> None:
    ctx = straight_ctx()
    env = DrivingEnv()
    env.reset(instance_from_context(ctx))
    inside, outside = HoldSpeedDriver(env, 8.0), HoldSpeedDriver(env, 8.0, offset_m=3.5, stop_after_m=80.0)
    done = False
    while not done:  # 40 m in the lane, then in the opposite lane until it stops at 80 m and gets blocked
        _, _, done = env.step((inside if env.progress_m < 40.0 else outside).act(None))
    log = env.route_log()
    assert log.end == RouteEnd.BLOCKED
    (event,) = [e for e in log.events if e.kind == Infraction.OUTSIDE_ROUTE_LANES]
    metres = float(event.message.split(" ")[8])  # where Bench2Drive's statistics read it
    completed = max(log.progress_m)
    assert event.value == pytest.approx(100.0 * metres / completed, abs=0.01)
    assert 25.0 < event.value < 50.0  # not a share of the whole route (170 m), nor of metres of any motion
    assert event.message.endswith(f"({round(event.value, 2)}% of the completed route)")


def hold(speed_mps: float, offset_m: float = 0.0) -> type:
    """A privileged factory of HoldSpeedDriver (it reads the route from the environment)."""

    class Hold(HoldSpeedDriver):
        privileged = True

        def __init__(self, env: DrivingEnv):
            super().__init__(env, speed_mps, offset_m=offset_m)

    return Hold


def test_min_speed_checkpoints_compare_with_the_background_traffic() -> None:
    ctx = straight_ctx()
    back = ctx.layout.roads["main"].backward_lane_ids[0]
    ctx.add_vehicle(ctx.lane_path([back]), 5.0, 10.0, cls=ActorClass.CAR, background=True)
    ctx.add_vehicle(ctx.lane_path([back]), 60.0, 10.0, cls=ActorClass.CAR)  # a scenario actor: not counted
    log = run_route(instance_from_context(ctx), hold(5.0))
    assert log.end == RouteEnd.COMPLETED
    values = [e.value for e in log.events if e.kind == Infraction.MIN_SPEED]
    assert 19 <= len(values) <= 20  # one per twentieth of the route, the last when the route ends
    assert np.median(values) == pytest.approx(50.0, abs=3.0)  # 5 m/s against 10 m/s
    msg = next(e.message for e in log.events if e.kind == Infraction.MIN_SPEED)
    assert msg.startswith("Average speed is ") and msg.endswith("% of the surrounding traffic's one")
    # without background traffic every checkpoint is 100 %
    log = run_route(instance_from_context(straight_ctx()), hold(5.0))
    assert {e.value for e in log.events if e.kind == Infraction.MIN_SPEED} == {100.0}


def test_a_driver_that_ignores_obstacles_counts_one_collision_per_obstacle() -> None:
    from riskdistill.sim.scenarios import build_scenario
    from riskdistill.sim.suites import load_suite

    bench = {r.route_id: r for r in load_suite("bench").routes}
    for name in ("bench_ParkedObstacle_0", "bench_Accident_0", "bench_ConstructionObstacle_3"):
        r = bench[name]
        log = run_route(build_scenario(r.scenario, r.seed, r.layout), hold(8.0))
        ids = [e.actor_id for e in collisions(log)]
        assert 1 <= len(ids) <= 3 and len(ids) == len(set(ids)), (name, [e.message for e in collisions(log)])
    # drifting onto the sidewalk along a row of poles (one every 30 m): stopped by the first
    log = run_route(instance_from_context(straight_ctx()), hold(6.0, offset_m=-4.45))
    assert [e.kind for e in collisions(log)] == [Infraction.COLLISION_LAYOUT]
    assert log.end == RouteEnd.BLOCKED
