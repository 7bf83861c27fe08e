"""Junction scenarios (``junction4``, ``junction_t``): priority violations, turns into flows, lights, signs.

Every type routes the ego from an incoming arm through the junction (``connectors`` of the layout) and
out along another arm. Arm relations follow :mod:`riskdistill.sim.layouts_junction`: seen from an
incoming arm, the right arm is the next one counter-clockwise, the left arm the previous one.

Scripted vehicles are timed against the ego:

- a *priority violator* (``OppositeVehicleTakingPriority``, ``OppositeVehicleRunningRedLight``) drives
  from the start and re-times its speed while the ego approaches (as CARLA's ``SyncArrival``), so that it
  reaches the conflict point together with an ego that keeps going; the synchronisation stops ~1-2 s
  before the conflict, after which it drives on at constant speed ignoring lights, signs and actors;
- a *flow* (the turn scenarios) is a column of vehicles at one constant speed whose positions at ``t = 0``
  are precomputed so that it is streaming through when the ego arrives; those that do not fit on their
  lane yet wait hidden and enter at the lane start when their time comes (:func:`add_timed_vehicle`).
  The flow does not yield to an ego that cuts in at speed, but once the ego waits in the junction it
  brakes for it like a considerate driver (:func:`yield_to_waiting_ego`, run every step by a monitor).

Lights are frozen with ``World.light_override`` (ego green, conflicting arms red) or, for the red-light
type, shifted with ``World.light_offset_s`` so that the ego's light turns yellow at a trigger point.

Helpers shared with the other scenario modules live in :mod:`riskdistill.sim.scenarios.common`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from riskdistill.sim.actors import Behavior
from riskdistill.sim.layouts_junction import STOP_LINE_SETBACK_M, arm_slots
from riskdistill.sim.route import Path, plan_route
from riskdistill.sim.scenarios.base import (
    Action,
    BuildContext,
    ScenarioError,
    ScenarioType,
    register_scenario,
)
from riskdistill.sim.scenarios.common import (
    add_background,
    add_monitor,
    add_timed_vehicle,
    class_length_m,
    first_conflict,
)
from riskdistill.sim.world import World
from riskdistill.types import Ability, ActorClass, LightState

# --------------------------------------------------------------------------------------------------
# Junction geometry and timing


def arm_relations(family: str) -> dict[str, dict[str, str | None]]:
    """For every arm: which arm lies to its right, straight ahead (opposite) and to its left."""
    slots = arm_slots(family)
    by_slot = {slot: k for k, slot in enumerate(slots)}
    out: dict[str, dict[str, str | None]] = {}
    for k, slot in enumerate(slots):
        rel: dict[str, str | None] = {}
        for name, step in (("right", 1), ("straight", 2), ("left", 3)):
            m = by_slot.get((slot + step) % 4)
            rel[name] = None if m is None else f"arm{m}"
        out[f"arm{k}"] = rel
    return out


def movement_lanes(
    ctx: BuildContext, arm_in: str, turn: str, lane_idx: int | None = None
) -> list[int] | None:
    """``[incoming lane, connector, outgoing lane]`` of a movement, or None if the junction lacks it."""
    arm_out = arm_relations(ctx.layout.params.family)[arm_in][turn]
    if arm_out is None:
        return None
    n = ctx.layout.params.lanes_per_direction
    if turn == "right":
        i = j = 0
    elif turn == "left":
        i = j = n - 1
    else:
        i = j = lane_idx if lane_idx is not None else 0
    conn = ctx.layout.connectors.get((arm_in, i, arm_out, j))
    if conn is None:
        return None
    roads = ctx.layout.roads
    return [roads[arm_in].forward_lane_ids[i], conn, roads[arm_out].backward_lane_ids[j]]


@dataclass
class JunctionRoute:
    """Where things are along the ego route (route arc lengths, ego start = 0)."""

    arm_in: str
    arm_out: str
    turn: str
    lanes: list[int]
    lane_start_s_m: float  # ego start on the incoming lane
    lane_end_s_m: float  # route end on the outgoing lane
    stop_s_m: float  # the stop-line position (also on priority arms, where no line is painted)
    entry_s_m: float  # start of the junction connector
    exit_s_m: float  # end of the connector
    light_id: int | None
    stop_line_id: int | None

    def path(self, ctx: BuildContext) -> Path:
        """The route's reference path (identical to the one :meth:`BuildContext.set_route` plans)."""
        return plan_route(ctx.map, self.lanes, start_s_m=self.lane_start_s_m, end_s_m=self.lane_end_s_m).path


def plan_junction_route(
    ctx: BuildContext, arm_in: str, turn: str, approach_m: float, exit_m: float, lane_idx: int = 0
) -> JunctionRoute:
    """An ego route ``approach_m`` before the stop line of ``arm_in``, through ``turn``, ``exit_m`` beyond."""
    lanes = movement_lanes(ctx, arm_in, turn, lane_idx)
    if lanes is None:
        raise ScenarioError(f"the {ctx.layout.params.family} junction has no {turn!r} movement from {arm_in}")
    m = ctx.map
    lane_in, conn, lane_out = (m.lanes[i] for i in lanes)
    stop_on_lane = lane_in.length_m - STOP_LINE_SETBACK_M
    if approach_m > stop_on_lane - 2.0:
        raise ScenarioError(
            f"junction arm too short for an approach of {approach_m:.0f} m "
            f"(arm lane {lane_in.length_m:.0f} m): increase road_length_m"
        )
    lines = m.stop_lines_on_lane(lane_in.id)
    entry = approach_m + STOP_LINE_SETBACK_M
    return JunctionRoute(
        arm_in=arm_in,
        arm_out=str(arm_relations(ctx.layout.params.family)[arm_in][turn]),
        turn=turn,
        lanes=lanes,
        lane_start_s_m=stop_on_lane - approach_m,
        lane_end_s_m=min(exit_m, lane_out.length_m - 1.0),
        stop_s_m=approach_m,
        entry_s_m=entry,
        exit_s_m=entry + conn.length_m,
        light_id=lines[0].traffic_light_id if lines else None,
        stop_line_id=lines[0].id if lines else None,
    )


def set_junction_route(
    ctx: BuildContext,
    arm_in: str,
    turn: str,
    approach_m: float,
    exit_m: float,
    speed_mps: float,
    lane_idx: int = 0,
) -> JunctionRoute:
    """Plan the route (see :func:`plan_junction_route`) and spawn the ego at its start."""
    jr = plan_junction_route(ctx, arm_in, turn, approach_m, exit_m, lane_idx)
    ctx.set_route(jr.lanes, start_s_m=jr.lane_start_s_m, end_s_m=jr.lane_end_s_m, ego_speed_mps=speed_mps)
    return jr


def light_of_arm(ctx: BuildContext, arm: str) -> int | None:
    sids = ctx.layout.roads[arm].stop_line_ids
    return ctx.map.stop_lines[sids[0]].traffic_light_id if sids else None


def freeze_lights(ctx: BuildContext, green_arms: set[str]) -> None:
    """Hold the lights of ``green_arms`` green and every other light red for the whole run."""
    for arm in ctx.layout.roads:
        lid = light_of_arm(ctx, arm)
        if lid is not None:
            ctx.world.light_override[lid] = LightState.GREEN if arm in green_arms else LightState.RED


def junction_background(
    ctx: BuildContext, jr: JunctionRoute, reserved_lanes: set[int], incoming_clear_m: float = 45.0
) -> None:
    """Background traffic, none on the ego's approach and the scenario actors' lanes, and none in the
    last ``incoming_clear_m`` before the junction on the other incoming lanes (the ego meets the
    scenario, not a queue; background vehicles have no deadlock breaking)."""
    keep: list[tuple[int, float, float]] = [(jr.lanes[0], 0.0, 1e9)]
    keep += [(lid, 0.0, 1e9) for lid in reserved_lanes]
    for road in ctx.layout.roads.values():
        for lid in road.forward_lane_ids:
            keep.append((lid, ctx.map.lanes[lid].length_m - incoming_clear_m, 1e9))
    add_background(ctx, ctx.uniform(0.2, 0.6), keep)


def _scenario_start(ctx: BuildContext, ego_s_m: float) -> None:
    """A trigger without actions: starts the scenario-timeout clock when the ego gets close."""
    ctx.trigger(max(ego_s_m, 0.5))


# --------------------------------------------------------------------------------------------------
# A priority violator timed against the ego


def sync_arrival(
    actor: int, ego_s_now: float, ego_s_conflict: float, actor_s_conflict: float, lead_s: float
) -> Action:
    """Re-time ``actor`` so it reaches its conflict point ``lead_s`` before an ego that keeps its speed."""

    def act(world: World) -> None:
        a = world.actors
        rem = actor_s_conflict - a.s[actor]
        if rem <= 0.0 or a.behavior[actor] != Behavior.VEHICLE:
            return
        v_ego = max(world.ego.speed_mps, 4.0)
        t_goal = max((ego_s_conflict - ego_s_now) / v_ego - lead_s, 0.6)
        v_req = float(np.clip(rem / t_goal, 5.0, 15.0))
        dv = float(np.clip(v_req - a.speed[actor], -0.6, 0.6))
        a.speed[actor] = a.speed[actor] + dv
        a.desired_speed[actor] = a.speed[actor]

    return act


ViolatorOption = tuple[list[int], Path, tuple[float, float]]  # lanes, path, (s on path, s on ego route)


def violator_options(
    ctx: BuildContext, jr: JunctionRoute, candidates: list[list[int]]
) -> list[ViolatorOption]:
    """The candidate movements whose path crosses or merges into the ego route inside the junction."""
    ego_path = jr.path(ctx)
    options = []
    for lanes in candidates:
        path = plan_route(ctx.map, lanes).path
        hit = first_conflict(path, ego_path)
        if hit is not None and jr.stop_s_m - 5.0 < hit[1] < jr.exit_s_m + 8.0:
            options.append((lanes, path, hit))
    return options


def place_violator(ctx: BuildContext, options: list[ViolatorOption], ego_speed_mps: float) -> dict[str, Any]:
    """Add a vehicle on one of ``options`` that takes priority, with its synchronisation triggers."""
    if not options:
        raise ScenarioError("no crossing movement conflicts with the ego route")
    lanes, path, (s_adv_c, s_ego_c) = ctx.choice(options)
    pid = ctx.world.add_path(path)
    lead_s = ctx.uniform(-0.2, 0.5)
    t_ego = s_ego_c / max(ego_speed_mps, 4.0)
    v0 = ctx.uniform(7.0, 11.0)
    s0 = s_adv_c - v0 * (t_ego - lead_s)
    if s0 < 3.0:
        s0 = ctx.uniform(3.0, 10.0)
        v0 = float(np.clip((s_adv_c - s0) / max(t_ego - lead_s, 1.0), 5.0, 14.0))
    flags: dict[str, float | bool] = {"ignore_actors": True, "ignore_lights": True}
    lines = ctx.map.stop_lines_on_lane(lanes[0])
    if lines:  # a yield line or stop sign the violator does not respect
        flags["stopped_at_line"] = lines[0].id
    cls = ctx.vehicle_class(allow_large=ctx.rng.random() < 0.3)
    adv = ctx.add_vehicle(pid, s0, v0, v0, cls=cls, **flags)
    ctx.mark_hazard(adv, "vehicle taking priority")
    lock_m = ctx.uniform(12.0, 20.0)
    s = max(s_ego_c - 70.0, 1.0)
    while s < s_ego_c - lock_m:
        ctx.trigger(s, sync_arrival(adv, s, s_ego_c, s_adv_c, lead_s), starts_scenario=False)
        s += 1.5
    _scenario_start(ctx, s_ego_c - 45.0)
    return {
        "actor": adv,
        "class": ActorClass(cls).name.lower(),
        "lanes": [int(x) for x in lanes],
        "initial_speed_mps": round(v0, 3),
        "lead_time_s": round(lead_s, 3),
        "conflict_ego_s_m": round(s_ego_c, 2),
        "lock_distance_m": round(lock_m, 2),
    }


# --------------------------------------------------------------------------------------------------
# Flows


def yield_to_waiting_ego(
    flow: Sequence[int],
    yield_front_s: dict[int, float],
    centre_xy: np.ndarray,
    radius_m: float,
    slow_mps: float = 3.0,
) -> Action:
    """Flow vehicles ignore the ego until it waits (below ``slow_mps``) within ``radius_m`` of the junction
    centre. From then on (for good) they follow each other, and the first one in each lane whose corridor
    the ego's box reaches into stops with its front at ``yield_front_s[path id]``, short of where the ego's
    route crosses the lane (not IDM's 2 m from the ego), so the ego can complete its turn. An ego cutting
    across at speed is never yielded to.
    """
    idx = np.asarray(list(flow), dtype=np.int64)
    cx, cy = float(centre_xy[0]), float(centre_xy[1])
    state = {"polite": False}

    def act(world: World) -> None:
        a = world.actors
        if not state["polite"]:
            if world.ego.speed_mps >= slow_mps or (a.x[0] - cx) ** 2 + (a.y[0] - cy) ** 2 >= radius_m**2:
                return
            state["polite"] = True
            a.ignore_actors[idx] = False
        c, sn = np.cos(a.yaw[0]), np.sin(a.yaw[0])
        lon = np.linspace(-0.5, 0.5, 5)[:, None] * a.length[0]  # a 5 x 3 grid over the ego box
        lat = np.linspace(-0.5, 0.5, 3)[None, :] * a.width[0]
        pts = np.stack([a.x[0] + lon * c - lat * sn, a.y[0] + lon * sn + lat * c], axis=-1).reshape(-1, 2)
        a.brake_override[idx] = 0.0
        leaders: dict[int, tuple[float, int]] = {}  # path id -> (distance to the ego box, actor)
        for i in idx:
            if a.behavior[i] != Behavior.VEHICLE or (a.x[i] - a.x[0]) ** 2 + (a.y[i] - a.y[0]) ** 2 > 50.0**2:
                continue
            path = world.paths.paths[int(a.path_id[i])]
            lo, hi = np.searchsorted(path.s, [a.s[i], a.s[i] + 50.0])
            ahead_pts = path.points[lo:hi]  # [K, 2], 0.5 m apart
            if len(ahead_pts) == 0:
                continue
            d = np.linalg.norm(ahead_pts[:, None, :] - pts[None, :, :], axis=2)  # [K, 15]
            inside = np.flatnonzero((d < 0.5 * a.width[i] + 0.3).any(axis=1))
            if len(inside) == 0:
                continue
            ahead = path.s[lo + inside[0]] - a.s[i] - 0.5 * a.length[i]
            if 0.0 < ahead < 45.0 and ahead < leaders.get(int(a.path_id[i]), (np.inf, -1))[0]:
                leaders[int(a.path_id[i])] = (ahead, int(i))
        for pid, (ahead, i) in leaders.items():
            front = a.s[i] + 0.5 * a.length[i]
            free = min(ahead - 2.0, yield_front_s[pid] - front)
            need = a.speed[i] ** 2 / (2.0 * max(free, 0.1))
            a.brake_override[i] = 8.0 if free <= 0.3 else (min(need, 8.0) if need > 0.5 else 0.0)

    return act


def junction_centre_radius(ctx: BuildContext) -> tuple[np.ndarray, float]:
    poly = ctx.map.junctions[ctx.layout.junction_id].polygon
    centre = poly.mean(axis=0)
    return centre, float(np.linalg.norm(poly - centre, axis=1).max()) + 2.0


YIELD_RADIUS_M = 3.5  # a flow path this close to the ego route is swept by the turning ego
FAST_EGO_MPS = 12.0  # flows are timed so that they are already passing when even a fast ego arrives


def add_flow(
    ctx: BuildContext,
    movements: list[list[int]],
    ego_conflict_s: float,
    n: int,
    speed_mps: float,
    spacing_m: tuple[float, float] = (15.0, 40.0),
    first_lead_s: tuple[float, float] = (0.0, 2.5),
    **flags: float | bool,
) -> tuple[list[int], dict[str, Any]]:
    """A column of ``n`` vehicles at ``speed_mps`` on ``movements`` (each vehicle picks one).

    The first reaches its conflict with the ego route a little before an ego driving at ``FAST_EGO_MPS``
    would, so the column is streaming through when the ego arrives; the others follow at centre spacings
    in ``spacing_m``, short ones more likely (plus the extra length of trucks and buses).
    """
    ego_path = ctx.route.path
    paths = []
    yield_front_s: dict[int, float] = {}  # where a yielding flow vehicle stops: short of the ego's swept lane
    for lanes in movements:
        path = plan_route(ctx.map, lanes).path
        hit = first_conflict(path, ego_path)
        if hit is None:
            raise ScenarioError(f"flow movement {lanes} does not cross the ego route")
        pid = ctx.world.add_path(path)
        paths.append((pid, hit[0]))
        swept = first_conflict(path, ego_path, radius_m=YIELD_RADIUS_M)
        yield_front_s[pid] = (swept[0] if swept is not None else hit[0]) - 1.5
    t_first = max(ego_conflict_s / FAST_EGO_MPS - ctx.uniform(*first_lead_s), 1.0)
    behind = 0.0
    prev_len = class_length_m(ActorClass.CAR)
    actors = []
    spacings = []
    for k in range(n):
        cls = ctx.vehicle_class(allow_large=ctx.rng.random() < 0.25)
        pid, s_conf = paths[int(ctx.rng.integers(len(paths)))]
        if k > 0:
            gap = spacing_m[0] + (spacing_m[1] - spacing_m[0]) * float(ctx.rng.random()) ** 2  # mostly short
            spacings.append(round(gap, 2))
            behind += gap + max(0.0, 0.5 * (prev_len + class_length_m(cls)) - 4.6)
        prev_len = class_length_m(cls)
        s0 = s_conf - speed_mps * t_first - behind
        actors.append(add_timed_vehicle(ctx, pid, s0, speed_mps, cls=cls, **flags))
    info = {
        "n": n,
        "speed_mps": round(speed_mps, 3),
        "first_arrival_s": round(t_first, 3),
        "spacings_m": spacings,
    }
    centre, radius = junction_centre_radius(ctx)
    add_monitor(ctx, yield_to_waiting_ego(actors, yield_front_s, centre, radius))
    ctx.mark_hazard(actors, "vehicle of the crossing flow")
    return actors, info


# --------------------------------------------------------------------------------------------------
# Scenario types


class _JunctionScenario(ScenarioType):
    """Shared layout choice: a junction with one of ``controls`` (drawn per seed) and ~105-115 m arms."""

    families: ClassVar[tuple[str, ...]] = ("junction4", "junction_t")
    controls: ClassVar[tuple[str, ...]] = ("signalized",)
    background_density: ClassVar[float] = 0.0  # populate() adds background that keeps scenario lanes clear

    def layout_params(self, rng: np.random.Generator, family: str) -> dict[str, Any]:
        params = super().layout_params(rng, family)
        params["junction_control"] = self.controls[int(rng.integers(len(self.controls)))]
        params["road_length_m"] = float(rng.uniform(260.0, 290.0))
        return params

    def check_control(self, ctx: BuildContext) -> str:
        control = ctx.layout.params.junction_control
        if ctx.layout.params.family not in ("junction4", "junction_t"):
            raise ScenarioError(f"{self.name} needs a junction layout, got {ctx.layout.params.family!r}")
        if control not in self.controls:
            raise ScenarioError(
                f"{self.name} needs junction_control in {list(self.controls)}, got {control!r}"
            )
        return control

    def base_params(self, ctx: BuildContext, jr: JunctionRoute, ego_speed: float) -> None:
        ctx.params.update(
            {
                "junction_control": ctx.layout.params.junction_control,
                "arm_in": jr.arm_in,
                "arm_out": jr.arm_out,
                "turn": jr.turn,
                "ego_start_speed_mps": round(ego_speed, 3),
                "stop_line_s_m": round(jr.stop_s_m, 2),
                "junction_exit_s_m": round(jr.exit_s_m, 2),
            }
        )


def _side_arm_movements(ctx: BuildContext, arms: list[str]) -> list[list[int]]:
    out = []
    for arm in arms:
        for turn in ("straight", "left", "right"):
            for i in range(ctx.layout.params.lanes_per_direction if turn == "straight" else 1):
                lanes = movement_lanes(ctx, arm, turn, i)
                if lanes is not None:
                    out.append(lanes)
    return out


@register_scenario
class OppositeVehicleTakingPriority(_JunctionScenario):
    name = "OppositeVehicleTakingPriority"
    abilities = (Ability.EMERGENCY_BRAKE, Ability.TRAFFIC_SIGNS)
    controls = ("uncontrolled",)
    summary = "The ego crosses on the priority road; a vehicle from a side arm ignores its yield line."
    hazard = "vehicle ignoring its yield line"

    def populate(self, ctx: BuildContext) -> None:
        self.check_control(ctx)
        v_ego = ctx.uniform(6.0, 10.0)
        approach, exit_m = ctx.uniform(60.0, 90.0), ctx.uniform(40.0, 70.0)
        side = _side_arm_movements(ctx, [a for a in ctx.layout.roads if a not in ("arm0", "arm2")])
        # Straight on the priority road (arms 0 and 2), in a lane some side-arm movement crosses or joins.
        choices = []
        for arm_in in ("arm0", "arm2"):
            for lane_idx in range(ctx.layout.params.lanes_per_direction):
                jr = plan_junction_route(ctx, arm_in, "straight", approach, exit_m, lane_idx)
                if options := violator_options(ctx, jr, side):
                    choices.append((jr, options))
        if not choices:
            raise ScenarioError("no side-arm movement of this junction crosses the priority road")
        jr, options = ctx.choice(choices)
        ctx.set_route(jr.lanes, start_s_m=jr.lane_start_s_m, end_s_m=jr.lane_end_s_m, ego_speed_mps=v_ego)
        violator = place_violator(ctx, options, v_ego)
        junction_background(ctx, jr, {violator["lanes"][0]})
        ctx.scenario_end_s_m = jr.exit_s_m + 10.0
        self.base_params(ctx, jr, v_ego)
        ctx.params["violator"] = violator


@register_scenario
class OppositeVehicleRunningRedLight(_JunctionScenario):
    name = "OppositeVehicleRunningRedLight"
    abilities = (Ability.EMERGENCY_BRAKE, Ability.TRAFFIC_SIGNS)
    controls = ("signalized",)
    summary = "The ego has green; a crossing vehicle runs its red light into the ego's path."
    hazard = "vehicle running a red light"

    def populate(self, ctx: BuildContext) -> None:
        self.check_control(ctx)
        fam = ctx.layout.params.family
        rels = arm_relations(fam)
        v_ego = ctx.uniform(6.0, 10.0)
        approach, exit_m = ctx.uniform(60.0, 90.0), ctx.uniform(40.0, 70.0)
        lane_idx = int(ctx.rng.integers(ctx.layout.params.lanes_per_direction))
        # Every (arm, turn) of the ego with a conflicting movement from an arm in the other phase group.
        choices = []
        for arm_in in sorted(ctx.layout.roads):
            rel = rels[arm_in]
            cross = [a for a in (rel["left"], rel["right"]) if a is not None]
            for turn in ("straight", "left", "right"):
                if rel[turn] is None:
                    continue
                jr = plan_junction_route(
                    ctx, arm_in, turn, approach, exit_m, lane_idx if turn == "straight" else 0
                )
                options = violator_options(ctx, jr, _side_arm_movements(ctx, cross))
                if options:
                    choices.append((jr, options, cross))
        if not choices:
            raise ScenarioError(f"no ego movement of the {fam} junction can meet a red-light runner")
        straight = [c for c in choices if c[0].turn == "straight"]
        jr, options, cross = ctx.choice(straight if straight and ctx.rng.random() < 0.6 else choices)
        ctx.set_route(jr.lanes, start_s_m=jr.lane_start_s_m, end_s_m=jr.lane_end_s_m, ego_speed_mps=v_ego)
        rel = rels[jr.arm_in]
        freeze_lights(ctx, {jr.arm_in} | ({str(rel["straight"])} if rel["straight"] else set()))
        violator = place_violator(ctx, options, v_ego)
        junction_background(ctx, jr, {violator["lanes"][0]})
        ctx.scenario_end_s_m = jr.exit_s_m + 10.0
        self.base_params(ctx, jr, v_ego)
        arm_violator = next(a for a in cross if violator["lanes"][0] in ctx.layout.roads[a].forward_lane_ids)
        ctx.params.update({"violator": violator, "ego_light_id": jr.light_id})
        ctx.params["violator"]["light_id"] = light_of_arm(ctx, arm_violator)


def _left_turn(ctx: BuildContext, arms: list[str], summary_params: dict[str, Any]) -> JunctionRoute:
    """Ego left turn from one of ``arms`` with an oncoming straight flow; returns the route."""
    fam = ctx.layout.params.family
    options = [a for a in arms if arm_relations(fam)[a]["left"] and arm_relations(fam)[a]["straight"]]
    if not options:
        raise ScenarioError(f"no arm of the {fam} junction has both a left turn and an oncoming arm")
    arm_in = ctx.choice(options)
    v_ego = ctx.uniform(5.0, 9.0)
    n_lanes = ctx.layout.params.lanes_per_direction
    jr = set_junction_route(ctx, arm_in, "left", ctx.uniform(60.0, 90.0), ctx.uniform(40.0, 70.0), v_ego)
    opposite = str(arm_relations(fam)[arm_in]["straight"])
    movements = [m for i in range(n_lanes) if (m := movement_lanes(ctx, opposite, "straight", i)) is not None]
    hits = [first_conflict(ctx.route.path, plan_route(ctx.map, m).path) for m in movements]
    s_conf = min(h[0] for h in hits if h is not None)
    flow, info = add_flow(
        ctx,
        movements,
        s_conf,
        n=int(ctx.rng.integers(5, 9)),
        speed_mps=ctx.uniform(7.0, 11.0),
        ignore_actors=True,
        ignore_lights=True,
    )
    _scenario_start(ctx, jr.stop_s_m - 30.0)
    junction_background(ctx, jr, {m[0] for m in movements}, incoming_clear_m=1e9)
    ctx.scenario_end_s_m = jr.exit_s_m + 10.0
    summary_params.update({"ego_start_speed_mps": round(v_ego, 3), "flow": info, "flow_actors": flow})
    return jr


@register_scenario
class NonSignalizedJunctionLeftTurn(_JunctionScenario):
    name = "NonSignalizedJunctionLeftTurn"
    abilities = (Ability.MERGING, Ability.TRAFFIC_SIGNS)
    controls = ("uncontrolled",)
    summary = "The ego turns left off the priority road across an oncoming flow that does not stop."
    hazard = "oncoming flow vehicles"

    def populate(self, ctx: BuildContext) -> None:
        self.check_control(ctx)
        extra: dict[str, Any] = {}
        jr = _left_turn(ctx, ["arm0", "arm2"], extra)
        self.base_params(ctx, jr, extra["ego_start_speed_mps"])
        ctx.params.update(extra)


@register_scenario
class SignalizedJunctionLeftTurn(_JunctionScenario):
    name = "SignalizedJunctionLeftTurn"
    abilities = (Ability.MERGING, Ability.TRAFFIC_SIGNS)
    controls = ("signalized",)
    summary = "On a green light the ego turns left, yielding to an oncoming flow that also has green."
    hazard = "oncoming flow vehicles"

    def populate(self, ctx: BuildContext) -> None:
        self.check_control(ctx)
        extra: dict[str, Any] = {}
        jr = _left_turn(ctx, sorted(ctx.layout.roads), extra)
        freeze_lights(ctx, {jr.arm_in, str(arm_relations(ctx.layout.params.family)[jr.arm_in]["straight"])})
        self.base_params(ctx, jr, extra["ego_start_speed_mps"])
        ctx.params.update(extra)
        ctx.params["ego_light_id"] = jr.light_id


@register_scenario
class SignalizedJunctionRightTurn(_JunctionScenario):
    name = "SignalizedJunctionRightTurn"
    abilities = (Ability.MERGING, Ability.TRAFFIC_SIGNS)
    controls = ("signalized",)
    summary = "On green the ego turns right into the lane a flow from the left (also green) is filling."
    hazard = "flow vehicles from the left"

    def populate(self, ctx: BuildContext) -> None:
        # As CARLA's SignalizedJunctionRightTurn: the ego's and the source arm's lights are frozen green,
        # the rest red. The flow does not yield to the ego unless it waits in the junction.
        self.check_control(ctx)
        fam = ctx.layout.params.family
        rel = arm_relations(fam)
        options = [a for a in sorted(ctx.layout.roads) if rel[a]["right"] and rel[a]["left"]]
        options = [a for a in options if rel[str(rel[a]["left"])]["straight"] == rel[a]["right"]]
        if not options:
            raise ScenarioError(f"no arm of the {fam} junction has a right turn fed by a flow from the left")
        arm_in = ctx.choice(options)
        v_ego = ctx.uniform(5.0, 9.0)
        jr = set_junction_route(ctx, arm_in, "right", ctx.uniform(60.0, 90.0), ctx.uniform(40.0, 70.0), v_ego)
        source = str(rel[arm_in]["left"])
        movement = movement_lanes(ctx, source, "straight", 0)
        assert movement is not None
        hit = first_conflict(ctx.route.path, plan_route(ctx.map, movement).path)
        if hit is None:
            raise ScenarioError("the flow from the left does not meet the ego's right turn")
        freeze_lights(ctx, {arm_in, source})
        flow, info = add_flow(
            ctx,
            [movement],
            hit[0],
            n=int(ctx.rng.integers(5, 9)),
            speed_mps=ctx.uniform(7.0, 10.0),
            ignore_actors=True,
            ignore_lights=True,
        )
        _scenario_start(ctx, jr.stop_s_m - 30.0)
        junction_background(ctx, jr, {movement[0]}, incoming_clear_m=1e9)
        ctx.scenario_end_s_m = jr.exit_s_m + 10.0
        self.base_params(ctx, jr, v_ego)
        ctx.params.update(
            {"flow": info, "flow_actors": flow, "flow_source_arm": source, "ego_light_id": jr.light_id}
        )


def yellow_now(junction_id: int, phase_group: int) -> Action:
    """Shift the junction's signal cycle so ``phase_group`` turns yellow at this instant."""

    def act(world: World) -> None:
        j = world.map.junctions[junction_id]
        period = j.green_s + j.yellow_s + j.all_red_s
        world.light_offset_s[junction_id] = phase_group * period + j.green_s - world.time_s

    return act


@register_scenario
class VanillaSignalizedTurnEncounterRedLight(_JunctionScenario):
    name = "VanillaSignalizedTurnEncounterRedLight"
    abilities = (Ability.TRAFFIC_SIGNS,)
    controls = ("signalized",)
    summary = "The ego's light turns yellow, then red, before it reaches the junction: stop, go on green."
    hazard = ""  # a traffic-sign scenario: no hazard actor

    def populate(self, ctx: BuildContext) -> None:
        self.check_control(ctx)
        fam = ctx.layout.params.family
        arm_in = ctx.choice(sorted(ctx.layout.roads))
        turns = [t for t in ("left", "right", "straight") if arm_relations(fam)[arm_in][t] is not None]
        turn = ctx.choice(turns)
        v_ego = ctx.uniform(5.0, 9.0)
        # Yellow lasts 3 s: triggered >= 45 m before the line, even an ego at 13.9 m/s arrives on red.
        d_trigger = ctx.uniform(45.0, 65.0)
        approach = d_trigger + ctx.uniform(15.0, 30.0)
        lane_idx = int(ctx.rng.integers(ctx.layout.params.lanes_per_direction))
        jr = set_junction_route(ctx, arm_in, turn, approach, ctx.uniform(40.0, 70.0), v_ego, lane_idx)
        assert jr.light_id is not None
        jid = ctx.layout.junction_id
        light = ctx.map.traffic_lights[jr.light_id]
        junction = ctx.map.junctions[light.junction_id]
        period = junction.green_s + junction.yellow_s + junction.all_red_s
        # Green since a moment before t = 0, so it is still green when the trigger fires.
        ctx.world.light_offset_s[jid] = light.phase_group * period + ctx.uniform(0.0, 2.0)
        trigger_s = jr.stop_s_m - d_trigger
        ctx.trigger(trigger_s, yellow_now(light.junction_id, light.phase_group))
        junction_background(ctx, jr, set())
        ctx.scenario_end_s_m = jr.exit_s_m + 10.0
        self.base_params(ctx, jr, v_ego)
        ctx.params.update(
            {
                "ego_light_id": jr.light_id,
                "light_trigger_s_m": round(trigger_s, 2),
                "red_after_trigger_s": junction.yellow_s,
                "red_for_s": junction.all_red_s + period * (junction.n_phase_groups - 1),
            }
        )


@register_scenario
class VanillaNonSignalizedTurnEncounterStopsign(_JunctionScenario):
    name = "VanillaNonSignalizedTurnEncounterStopsign"
    abilities = (Ability.TRAFFIC_SIGNS,)
    controls = ("stop",)
    summary = "All-way stop: the ego must come to a halt at its stop line, then turn."
    hazard = ""  # a traffic-sign scenario: no hazard actor

    def populate(self, ctx: BuildContext) -> None:
        self.check_control(ctx)
        fam = ctx.layout.params.family
        arm_in = ctx.choice(sorted(ctx.layout.roads))
        turns = [t for t in ("left", "right") if arm_relations(fam)[arm_in][t] is not None]
        turn = ctx.choice(turns)
        v_ego = ctx.uniform(4.0, 9.0)
        jr = set_junction_route(ctx, arm_in, turn, ctx.uniform(55.0, 90.0), ctx.uniform(45.0, 70.0), v_ego)
        _scenario_start(ctx, jr.stop_s_m - 30.0)
        junction_background(ctx, jr, set())
        ctx.scenario_end_s_m = jr.exit_s_m + 10.0
        self.base_params(ctx, jr, v_ego)
        ctx.params["stop_line_id"] = jr.stop_line_id
