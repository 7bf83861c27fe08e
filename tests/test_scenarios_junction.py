"""Junction and obstacle scenario types: they build, are deterministic, and their set-ups do what they say."""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pytest

import riskdistill.sim.scenarios  # noqa: F401  (registers every type)
from riskdistill.contracts.agent import Action, Controls
from riskdistill.sim.actors import Behavior
from riskdistill.sim.env import DrivingEnv
from riskdistill.sim.rollout import run_route
from riskdistill.sim.scenarios import REGISTRY, ScenarioError, ScenarioInstance, build_scenario
from riskdistill.sim.scenarios.base import Trigger
from riskdistill.types import Ability, Command, Infraction, LightState

JUNCTION_TYPES = [
    "OppositeVehicleTakingPriority",
    "OppositeVehicleRunningRedLight",
    "NonSignalizedJunctionLeftTurn",
    "SignalizedJunctionLeftTurn",
    "SignalizedJunctionRightTurn",
    "VanillaSignalizedTurnEncounterRedLight",
    "VanillaNonSignalizedTurnEncounterStopsign",
]
MULTI_LANE_BLOCKERS = ["ParkedObstacle", "ConstructionObstacle", "Accident"]
TWO_WAY_BLOCKERS = ["ParkedObstacleTwoWays", "ConstructionObstacleTwoWays", "AccidentTwoWays"]
OBSTACLE_TYPES = [*MULTI_LANE_BLOCKERS, *TWO_WAY_BLOCKERS, "VehicleOpensDoorTwoWays", "InvadingTurn"]
ALL_TYPES = JUNCTION_TYPES + OBSTACLE_TYPES
SEEDS = range(6)
EGO_HALF_WIDTH_M = 0.95


@cache
def build(name: str, seed: int, family: str | None = None) -> ScenarioInstance:
    return build_scenario(name, seed, {"family": family} if family else None)


def family_cases() -> list[tuple[str, int, str]]:
    return [(name, seed, fam) for name in ALL_TYPES for fam in REGISTRY[name].families for seed in SEEDS]


def fire_triggers(inst: ScenarioInstance, triggers: list[Trigger]) -> None:
    for trig in triggers:
        for act in trig.actions:
            act(inst.world)


def triggers_at(inst: ScenarioInstance, ego_s_m: float) -> list[Trigger]:
    """The progress triggers at ``ego_s_m`` (parameters are rounded to the centimetre)."""
    return [t for t in inst.script.triggers if t.ego_s_m is not None and abs(t.ego_s_m - ego_s_m) < 0.01]


def box_distance_to_points(inst: ScenarioInstance, i: int, points: np.ndarray) -> float:
    """Smallest distance from the box of actor ``i`` to any of ``points`` (0 if one is inside)."""
    a = inst.world.actors
    c, s = math.cos(a.yaw[i]), math.sin(a.yaw[i])
    d = points - np.array([a.x[i], a.y[i]])
    lx = np.abs(d[:, 0] * c + d[:, 1] * s) - 0.5 * a.length[i]
    ly = np.abs(-d[:, 0] * s + d[:, 1] * c) - 0.5 * a.width[i]
    return float(np.min(np.hypot(np.maximum(lx, 0.0), np.maximum(ly, 0.0))))


# ------------------------------------------------------------------------------------------------ generic


def test_types_are_registered_with_metadata() -> None:
    for name in ALL_TYPES:
        cls = REGISTRY[name]
        assert cls.name == name
        assert cls.families and cls.summary and cls.abilities
        assert all(isinstance(ab, Ability) for ab in cls.abilities)
    for name in JUNCTION_TYPES:
        assert Ability.TRAFFIC_SIGNS in REGISTRY[name].abilities
        assert REGISTRY[name].families[0] == "junction4"
    for name in OBSTACLE_TYPES[:-1]:
        assert REGISTRY[name].abilities == (Ability.OVERTAKING,)
    assert REGISTRY["InvadingTurn"].abilities == (Ability.GIVE_WAY,)


@pytest.mark.parametrize(("name", "seed", "family"), family_cases())
def test_builds_with_a_sensible_route(name: str, seed: int, family: str) -> None:
    inst = build(name, seed, family)
    assert inst.layout.params.family == family
    assert 110.0 <= inst.route.length_m <= 230.0
    assert 0.0 < inst.scenario_end_s_m <= inst.route.length_m
    assert inst.world.actors.behavior[0] == Behavior.EGO
    assert any(t.starts_scenario for t in inst.script.triggers)
    json.dumps(inst.params)  # JSON-serialisable


def snapshot(inst: ScenarioInstance) -> dict[str, object]:
    a = inst.world.actors
    cols = ["x", "y", "yaw", "speed", "length", "width", "cls", "behavior", "path_id", "s", "ignore_actors"]
    return {
        **{c: a.view(c).copy() for c in cols},
        "route": inst.route.path.points.copy(),
        "triggers": [(t.ego_s_m, t.time_s, len(t.actions)) for t in inst.script.triggers],
        "lights": dict(inst.world.light_override),
        "offsets": dict(inst.world.light_offset_s),
    }


@pytest.mark.parametrize("name", ALL_TYPES)
def test_deterministic_per_seed_and_varied_across_seeds(name: str) -> None:
    a = snapshot(build(name, 2))
    b = snapshot(build_scenario(name, 2))  # a fresh build, not the cached one
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")
        else:
            assert a[key] == b[key], f"{name}: {key}"
    other = snapshot(build(name, 3))
    differs = a["route"].shape != other["route"].shape or not np.allclose(a["route"], other["route"])
    assert differs or a["x"].shape != other["x"].shape


def test_impossible_parameters_raise_scenario_error() -> None:
    with pytest.raises(ScenarioError, match="junction_control"):
        build_scenario("OppositeVehicleRunningRedLight", 0, {"junction_control": "stop"})
    with pytest.raises(ScenarioError, match="lanes_per_direction"):
        build_scenario("ParkedObstacleTwoWays", 0, {"lanes_per_direction": 2})
    with pytest.raises(ScenarioError, match="curve_radius_m > 0"):
        build_scenario("InvadingTurn", 0, {"curve_radius_m": -60.0})
    with pytest.raises(ScenarioError, match="cannot use layout family"):
        build_scenario("Accident", 0, {"family": "junction4"})


# ------------------------------------------------------------------------------------------------ junctions


@pytest.mark.parametrize("name", JUNCTION_TYPES)
def test_route_crosses_the_junction_with_the_right_command(name: str) -> None:
    for seed in SEEDS:
        inst = build(name, seed)
        m = inst.layout.road_map
        connectors = [lid for lid in inst.route.lane_ids if m.lanes[lid].junction_id is not None]
        assert len(connectors) == 1
        turn = m.lanes[connectors[0]].turn
        expected = {"left": Command.LEFT, "right": Command.RIGHT, "straight": Command.STRAIGHT}[
            inst.params["turn"]
        ]
        assert turn == expected
        if "LeftTurn" in name:
            assert turn == Command.LEFT
        if "RightTurn" in name or name == "OppositeVehicleTakingPriority":
            assert turn == (Command.RIGHT if "Right" in name else Command.STRAIGHT)
        in_conn = np.flatnonzero(inst.route.lane_of_point == connectors[0])
        mid_s = float(inst.route.path.s[in_conn[len(in_conn) // 2]])
        assert inst.route.command_at(mid_s) == expected
        # The ego starts well before the junction.
        assert inst.params["stop_line_s_m"] >= 50.0


@pytest.mark.parametrize("name", ["OppositeVehicleTakingPriority", "OppositeVehicleRunningRedLight"])
def test_violator_crosses_the_route_ignoring_rules(name: str) -> None:
    for seed in SEEDS:
        inst = build(name, seed)
        a = inst.world.actors
        v = inst.params["violator"]["actor"]
        assert a.behavior[v] == Behavior.VEHICLE and a.ignore_actors[v] and a.ignore_lights[v]
        path = inst.world.paths.paths[int(a.path_id[v])]
        d = np.linalg.norm(path.points[:, None] - inst.route.path.points[None], axis=2)
        assert d.min() < 1.0
        if name == "OppositeVehicleRunningRedLight":
            assert inst.world.light_state(inst.params["ego_light_id"]) == LightState.GREEN
            assert inst.world.light_state(inst.params["violator"]["light_id"]) == LightState.RED
        else:
            assert inst.layout.params.junction_control == "uncontrolled"
            assert inst.params["arm_in"] in ("arm0", "arm2")  # the priority road


class BlindDriver:
    """Follows the route at a constant speed and never looks at anyone: the careless driver."""

    def __init__(self, env, speed_mps: float):
        self.env, self.speed = env, speed_mps

    def reset(self) -> None:
        pass

    def act(self, _inp) -> Action:
        w, route = self.env.world, self.env.instance.route
        e = w.ego
        target = route.path.point_at(self.env.progress_m + 6.0)
        alpha = math.atan2(target[1] - e.y_m, target[0] - e.x_m) - e.yaw_rad
        dist = max(math.hypot(target[0] - e.x_m, target[1] - e.y_m), 1e-3)
        steer = math.atan2(2.0 * 2.9 * math.sin(alpha), dist) / 0.6
        dv = self.speed - e.speed_mps
        return Action(controls=Controls(throttle=max(0.0, 0.5 * dv), steer=steer, brake=max(0.0, -0.3 * dv)))


@pytest.mark.parametrize("name", ["OppositeVehicleTakingPriority", "OppositeVehicleRunningRedLight"])
def test_violator_hits_a_driver_who_keeps_going(name: str) -> None:
    for seed in range(4):
        inst = build_scenario(name, seed)
        violator = inst.params["violator"]["actor"]
        a = inst.world.actors
        for i in range(1, a.n):  # only the violator moves: this is about its timing
            if i != violator and a.behavior[i] != Behavior.STATIC:
                a.behavior[i], a.x[i], a.y[i] = Behavior.STATIC, 2e5 + 10.0 * i, 2e5
        speed = inst.params["ego_start_speed_mps"]
        env = DrivingEnv()
        log = run_route(inst, BlindDriver(env, speed), env=env, max_steps=400)
        hits = [e for e in log.events if e.kind == Infraction.COLLISION_VEHICLE and e.actor_id == violator]
        assert hits, f"{name} seed {seed}: the violator missed a constant-speed ego"


@pytest.mark.parametrize(
    "name", ["NonSignalizedJunctionLeftTurn", "SignalizedJunctionLeftTurn", "SignalizedJunctionRightTurn"]
)
def test_flow_crosses_the_turn(name: str) -> None:
    for seed in SEEDS:
        inst = build(name, seed)
        a = inst.world.actors
        flow = inst.params["flow_actors"]
        assert 5 <= len(flow) <= 8
        assert all(15.0 <= g <= 40.0 for g in inst.params["flow"]["spacings_m"])
        speeds = {round(float(a.desired_speed[i]), 6) for i in flow}
        assert len(speeds) == 1  # one column at one speed: vehicles that ignore actors never catch up
        for i in flow:
            assert a.ignore_actors[i]
            path = inst.world.paths.paths[int(a.path_id[i])]
            d = np.linalg.norm(path.points[:, None] - inst.route.path.points[None], axis=2)
            assert d.min() < 1.5
        if name.startswith("Signalized"):
            assert inst.world.light_state(inst.params["ego_light_id"]) == LightState.GREEN
            # The flow has green too: the ego must yield because of the traffic, not a red light.
            m = inst.layout.road_map
            path = inst.world.paths.paths[int(a.path_id[flow[0]])]
            lane_id, _, _ = m.locate(path.points[2], yaw=float(path.heading[2]))
            (line,) = m.stop_lines_on_lane(lane_id)
            assert inst.world.light_state(line.traffic_light_id) == LightState.GREEN
        else:
            assert inst.layout.params.junction_control == "uncontrolled"


def test_red_light_is_red_when_the_ego_arrives() -> None:
    for seed in SEEDS:
        for family in ("junction4", "junction_t"):
            inst = build_scenario("VanillaSignalizedTurnEncounterRedLight", seed, {"family": family})
            w = inst.world
            light = inst.params["ego_light_id"]
            assert w.light_state(light) == LightState.GREEN  # green while the ego starts
            trig_s = inst.params["light_trigger_s_m"]
            d_line = inst.params["stop_line_s_m"] - trig_s
            assert d_line >= 45.0
            fired = triggers_at(inst, trig_s)
            assert len(fired) == 1
            for t_fire in (3.0, 6.5):
                w.time_s = t_fire
                fire_triggers(inst, fired)
                assert w.light_state(light) == LightState.YELLOW
                for v in (5.0, 8.0, 11.0, 13.9):  # whatever the approach speed, the line is reached on red
                    w.time_s = t_fire + d_line / v
                    assert w.light_state(light) == LightState.RED, (seed, family, v)
                w.time_s = t_fire + 3.0 + inst.params["red_for_s"] + 0.5
                assert w.light_state(light) == LightState.GREEN  # and it turns green again


def test_stop_sign_on_the_ego_approach() -> None:
    for seed in SEEDS:
        inst = build("VanillaNonSignalizedTurnEncounterStopsign", seed)
        m = inst.layout.road_map
        sl = m.stop_lines[inst.params["stop_line_id"]]
        assert sl.stop_sign and sl.lane_id == inst.route.lane_ids[0]
        assert inst.params["turn"] in ("left", "right")


# ------------------------------------------------------------------------------------------------ obstacles


@pytest.mark.parametrize("name", MULTI_LANE_BLOCKERS + TWO_WAY_BLOCKERS)
def test_blocker_blocks_the_ego_lane_only(name: str) -> None:
    for seed in SEEDS:
        for family in ("straight", "curve"):
            inst = build(name, seed, family)
            p = inst.layout.params
            road = inst.layout.roads["main"]
            assert inst.route.lane_ids == [road.forward_lane_ids[0]]
            assert p.two_way and (p.lanes_per_direction == 1) == (name in TWO_WAY_BLOCKERS)
            blockers = inst.params["blocker_actors"]
            a = inst.world.actors
            assert all(a.behavior[i] == Behavior.STATIC for i in blockers)
            route = inst.route.path
            # Some blocker box covers the route centre line, at least 60 m ahead of the ego.
            on_route = [i for i in blockers if box_distance_to_points(inst, i, route.points) == 0.0]
            assert on_route, f"{name} seed {seed} {family}: nothing on the route"
            first_s = min(route.project(np.array([a.x[i], a.y[i]]))[0] for i in blockers)
            assert first_s >= 55.0 and inst.params["zone_start_s_m"] >= 60.0
            # The lane to the left stays passable for the ego (0.95 m half width + 0.2 m).
            lane = inst.layout.road_map.lanes[
                road.forward_lane_ids[1] if p.lanes_per_direction > 1 else road.backward_lane_ids[0]
            ]
            assert (
                min(box_distance_to_points(inst, i, lane.centerline) for i in blockers)
                > EGO_HALF_WIDTH_M + 0.2
            )
            if name in TWO_WAY_BLOCKERS:
                assert road.backward_lane_ids[0] in inst.allowed_lane_ids
                assert inst.params["oncoming"]["actors"]


def test_door_opens_into_the_ego_path() -> None:
    for seed in SEEDS:
        for family in ("straight", "curve"):
            inst = build_scenario("VehicleOpensDoorTwoWays", seed, {"family": family})
            a = inst.world.actors
            door, car = inst.params["door_actor"], inst.params["blocker_actors"][0]
            route = inst.route.path.points
            assert a.x[door] > 1e4  # not there before the trigger
            # The parked car alone leaves the ego's lane free...
            assert box_distance_to_points(inst, car, route) > EGO_HALF_WIDTH_M
            fired = triggers_at(inst, inst.params["door_trigger_s_m"])
            assert len(fired) == 1 and fired[0].starts_scenario
            fire_triggers(inst, fired)
            # ...the open door reaches into a centred ego's body.
            assert box_distance_to_points(inst, door, route) < EGO_HALF_WIDTH_M - 0.2
            assert inst.layout.roads["main"].backward_lane_ids[0] in inst.allowed_lane_ids
            assert inst.params["door_trigger_s_m"] >= 40.0


def test_invaders_cut_into_the_ego_lane_but_leave_room_on_the_right() -> None:
    for seed in SEEDS:
        inst = build("InvadingTurn", seed)
        a = inst.world.actors
        lane = inst.layout.road_map.lanes[inst.route.lane_ids[0]]
        room_right = 0.5 * lane.width_m - EGO_HALF_WIDTH_M
        assert len(inst.params["invaders"]) >= 2
        for i in inst.params["invaders"]:
            assert a.ignore_actors[i]
            path = inst.world.paths.paths[int(a.path_id[i])]
            d = np.linalg.norm(path.points[:, None] - inst.route.path.points[None], axis=2).min()
            overlap = 0.5 * a.width[i] + EGO_HALF_WIDTH_M - d  # with an ego centred in its lane
            assert 0.05 < overlap < room_right - 0.25, (seed, overlap, room_right)
        assert inst.params["curve_start_s_m"] >= 60.0
