"""Emergency-brake scenarios with a pedestrian or cyclist crossing the ego's path (Bench2Drive names).

Timing convention shared by every type here. The adversary walks a polyline path, held at its start; a
trigger releases it when the ego's FRONT is ``D`` metres (along the route) before the *conflict point*, where
the adversary's path crosses the route centre line. Its speed is chosen so that it reaches the route centre
line when a careless ego holding the reference speed (the lane speed limit, or a turning speed inside a
junction) gets there, give or take ``TIMING_JITTER_S``: a driver that does not brake hits it. ``D`` is at
least :func:`comfortable_stop_m` of the reference speed, so a driver that brakes at ~4.5 m/s^2 as soon as the
adversary starts moving can stop (the privileged view). Occluded variants use urban speed limits and start
pedestrians within ~1.5 m of the kerb (cyclists come out of a driveway behind the sidewalk); a driver that
only sees what is not hidden has to slow down near occluders, as a careful driver does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from riskdistill.contracts.ego import EGO_SIZE_M
from riskdistill.sim.actors import Behavior
from riskdistill.sim.layouts import PARKING_WIDTH_M, RoadHandle
from riskdistill.sim.roadmap import Lane, offset_polyline
from riskdistill.sim.route import Path, Route
from riskdistill.sim.scenarios.base import (
    BuildContext,
    ScenarioError,
    ScenarioType,
    register_scenario,
    release,
)
from riskdistill.sim.world import World
from riskdistill.types import Ability, ActorClass, Command, LightState

COMFORT_DECEL_MPS2 = 4.5
REACTION_S = 0.3
STOP_MARGIN_M = 1.0
TIMING_JITTER_S = 0.3
EGO_HALF_LENGTH_M = 0.5 * EGO_SIZE_M[0]
EGO_ACCEL_MPS2 = 2.5  # a careless ego pulling away from a stop line
MIN_TRIGGER_ROUTE_S_M = 20.0  # the ego drives at least this far before anything happens
URBAN_SPEED_MPS = (8.3, 11.1)  # 30-40 km/h: parking streets and occluded kerbs

PEDESTRIAN_SPEED_MPS = (1.1, 2.0)
PEDESTRIAN_MAX_SPEED_MPS = 2.6  # a jogging pedestrian, when the timing needs it
CYCLIST_SPEED_MPS = (2.5, 5.0)
EMERGING_CYCLIST_SPEED_MPS = (2.0, 4.5)  # coming out of a driveway


def comfortable_stop_m(speed_mps: float) -> float:
    """Distance to stop from ``speed_mps``: reaction time, then ``COMFORT_DECEL_MPS2``, plus a margin."""
    return speed_mps * REACTION_S + speed_mps**2 / (2.0 * COMFORT_DECEL_MPS2) + STOP_MARGIN_M


def ego_arrival_time_s(distance_m: float, v0_mps: float, v_ref_mps: float) -> float:
    """Time a careless ego needs for ``distance_m``, accelerating from ``v0`` to ``v_ref`` at EGO_ACCEL."""
    if v0_mps >= v_ref_mps - 1e-6:
        return distance_m / v_ref_mps
    t_acc = (v_ref_mps - v0_mps) / EGO_ACCEL_MPS2
    d_acc = 0.5 * (v0_mps + v_ref_mps) * t_acc
    if distance_m <= d_acc:
        return (-v0_mps + math.sqrt(v0_mps**2 + 2.0 * EGO_ACCEL_MPS2 * distance_m)) / EGO_ACCEL_MPS2
    return t_acc + (distance_m - d_acc) / v_ref_mps


# ----------------------------------------------------------------------------------------------------------
# Geometry helpers


def _route_s_on_lane(route: Route, lane: Lane, xy: np.ndarray) -> float:
    """Route arc length of the point of ``lane`` nearest to ``xy`` (the route must use ``lane``)."""
    p = lane.point_at(lane.project(xy)[0])
    idx = np.flatnonzero(route.lane_of_point == lane.id)
    if len(idx) == 0:
        raise ScenarioError(f"internal: lane {lane.id} is not on the ego route")
    k = idx[int(np.argmin(np.linalg.norm(route.path.points[idx] - p, axis=1)))]
    return float(route.path.s[k])


def _route_crossing(
    path: Path, a: np.ndarray, b: np.ndarray, s_hint: float
) -> tuple[float, np.ndarray, float]:
    """Where segment ``a -> b`` crosses the route centre line: ``(route s, point [2], distance from a)``."""
    n = max(math.ceil(float(np.linalg.norm(b - a)) / 0.1), 2) + 1
    pts = a + np.linspace(0.0, 1.0, n)[:, None] * (b - a)
    lat = np.array([path.project(p, s_hint=s_hint, window_m=20.0)[1] for p in pts])
    change = np.flatnonzero(np.sign(lat[:-1]) * np.sign(lat[1:]) <= 0)
    if len(change) == 0:
        raise ScenarioError("internal: the adversary's crossing line does not cross the ego route")
    k = int(change[0])
    den = lat[k] - lat[k + 1]
    frac = 0.0 if abs(den) < 1e-9 else float(lat[k] / den)
    xy = pts[k] + frac * (pts[k + 1] - pts[k])
    s = path.project(xy, s_hint=s_hint, window_m=20.0)[0]
    return s, xy, float(np.linalg.norm(xy - a))


def _polyline_piece(line: Path, s_from: float, s_to: float) -> np.ndarray:
    """Points of ``line`` from arc length ``s_from`` to ``s_to`` (either direction), every 0.5 m."""
    n = max(math.ceil(abs(s_to - s_from) / 0.5), 1) + 1
    return line.point_at(np.linspace(s_from, s_to, n))


def _dedupe(points: np.ndarray) -> np.ndarray:
    keep = np.concatenate([[True], np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-3])
    return points[keep]


def _left_normal(lane: Lane, s_m: float) -> np.ndarray:
    h = float(lane.heading_at(s_m))
    return np.array([-math.sin(h), math.cos(h)])


def _far_kerb_m(ctx: BuildContext, road: RoadHandle) -> float:
    """Lateral distance from the centre of the rightmost forward lane to the left kerb of ``road``."""
    w = ctx.layout.params.lane_width_m
    n_f, n_b = len(road.forward_lane_ids), len(road.backward_lane_ids)
    park = PARKING_WIDTH_M if road.parking_backward_lane_id is not None else 0.0
    return (n_f - 0.5) * w + n_b * w + park


def _sidewalk_line(road: RoadHandle, xy: np.ndarray) -> Path:
    """The line parallel to ``road``'s reference through ``xy`` (the sidewalk middle for a kerb point)."""
    _, lat = Path.from_points(road.reference).project(np.asarray(xy, dtype=np.float64))
    return Path.from_points(offset_polyline(road.reference, lat))


@dataclass
class _Crossing:
    """One crossing of a crosswalk: walking along a sidewalk, across the road, along the far sidewalk."""

    from_xy: np.ndarray
    to_xy: np.ndarray
    from_is_start: bool  # True: walks from the crosswalk's ``start`` kerb (right of the road reference)


def _crosswalk_walker_points(
    ctx: BuildContext,
    road: RoadHandle,
    crossing: _Crossing,
    approach_m: float,
    approach_forward: bool,
    after_m: float,
    after_forward: bool,
) -> np.ndarray | None:
    """Walker polyline: ``approach_m`` along the near sidewalk, across, ``after_m`` along the far one.

    ``*_forward``: walking in the road reference direction (on junction arms: towards the junction).
    Returns None when the sidewalk is too short for the approach.
    """
    near, far = _sidewalk_line(road, crossing.from_xy), _sidewalk_line(road, crossing.to_xy)
    s_near = near.project(crossing.from_xy)[0]
    s_far = far.project(crossing.to_xy)[0]
    pieces = []
    if approach_m > 0.05:
        s0 = s_near - approach_m if approach_forward else s_near + approach_m
        if not 0.5 <= s0 <= near.length_m - 0.5:
            return None
        pieces.append(_polyline_piece(near, s0, s_near)[:-1])
    pieces.append(np.stack([crossing.from_xy, crossing.to_xy]))
    s1 = s_far + after_m if after_forward else s_far - after_m
    s1 = float(np.clip(s1, 0.5, far.length_m - 0.5))
    pieces.append(_polyline_piece(far, s_far, s1)[1:])
    return _dedupe(np.concatenate([p for p in pieces if len(p)], axis=0))


def _hold_route_green(ctx: BuildContext, arm_in: str, restore_at_s: float) -> bool:
    """Signalized junction: the ego's approach shows green (conflicting phases red) until the ego reaches
    ``restore_at_s`` on its route, then the normal cycle resumes. Returns whether lights were set."""
    m = ctx.map
    own = {m.stop_lines[sid].traffic_light_id for sid in ctx.layout.roads[arm_in].stop_line_ids} - {None}
    if not own:
        return False
    groups = {m.traffic_lights[lid].phase_group for lid in own}
    ids = sorted(m.traffic_lights)
    for lid in ids:
        green = m.traffic_lights[lid].phase_group in groups
        ctx.world.light_override[lid] = LightState.GREEN if green else LightState.RED

    def restore(world: World) -> None:
        for lid in ids:
            world.light_override.pop(lid, None)

    ctx.trigger(restore_at_s, restore, starts_scenario=False)
    return True


def _stop_sign_s(ctx: BuildContext, route: Route, lane: Lane) -> float | None:
    """Route arc length of a stop-sign line on ``lane`` (the ego must stop there), if any."""
    for sl in ctx.map.stop_lines_on_lane(lane.id):
        if sl.traffic_light_id is None and sl.stop_sign:
            return _route_s_on_lane(route, lane, lane.point_at(sl.s_m))
    return None


def _side_name(route: Route, xy: np.ndarray, s_hint: float) -> str:
    return "left" if route.path.project(xy, s_hint=s_hint, window_m=25.0)[1] > 0.0 else "right"


def _junction_layout_params(params: dict, rng: np.random.Generator) -> dict:
    params["road_length_m"] = float(rng.uniform(250.0, 320.0))  # arms of 100-128 m
    params["junction_control"] = str(rng.choice(["signalized", "signalized", "uncontrolled"]))
    params["crosswalk"] = True
    return params


# ----------------------------------------------------------------------------------------------------------
# Crosswalk crossings (PedestrianCrossing, VehicleTurningRoute, VehicleTurningRoutePedestrian)


@dataclass
class _CrosswalkPlan:
    D: float  # ego front -> conflict point at the trigger, m
    speed: float
    approach_m: float
    crossing: _Crossing
    conflict_s: float
    conflict_to_start_m: float  # along the crossing, from its start to the conflict point
    approach_forward: bool  # walks along the sidewalk in the road reference direction before crossing


def _plan_crosswalk_crossing(
    ctx: BuildContext,
    road: RoadHandle,
    cw_id: int,
    d_range: tuple[float, float],
    v_ref: float,
    speed_range: tuple[float, float],
    max_speed: float,
    s_hint: float,
    approach_dirs: tuple[bool, ...],
    v0_at_trigger: float | None = None,
) -> _CrosswalkPlan:
    """Choose side, trigger distance, speed and approach length of a timed crosswalk crossing.

    ``approach_dirs``: the allowed walking directions along the sidewalk before crossing (True: the road
    reference direction, towards the junction on a junction arm). ``v0_at_trigger``: the careless ego's
    speed at the trigger when it is not ``v_ref`` (pulling away from a stop sign).
    """
    route = ctx.route
    assert route is not None
    cw = ctx.map.crosswalks[cw_id]
    offset = ctx.uniform(-0.8, 0.8)  # lateral place within the 4 m wide crosswalk
    tangent = cw.end - cw.start
    along = np.array([tangent[1], -tangent[0]]) / max(float(np.linalg.norm(tangent)), 1e-6)
    d_lo = max(d_range[0], comfortable_stop_m(v_ref))
    if d_lo > d_range[1]:
        raise ScenarioError(
            f"reference speed {v_ref:.1f} m/s too high: the comfortable stopping distance {d_lo:.1f} m "
            f"exceeds the longest trigger distance {d_range[1]:.0f} m"
        )
    for _ in range(40):
        from_is_start = bool(ctx.rng.integers(2))
        a, b = (cw.start, cw.end) if from_is_start else (cw.end, cw.start)
        crossing = _Crossing(a + offset * along, b + offset * along, from_is_start)
        s_c, _, d_c = _route_crossing(route.path, crossing.from_xy, crossing.to_xy, s_hint)
        D = ctx.uniform(d_lo, d_range[1])
        v0 = v_ref if v0_at_trigger is None else v0_at_trigger
        t = ego_arrival_time_s(D, v0, v_ref) + ctx.uniform(-TIMING_JITTER_S, TIMING_JITTER_S)
        speed = ctx.uniform(*speed_range)
        approach = speed * t - d_c
        if approach < 0.0:
            speed, approach = d_c / t, 0.0
            if speed > max_speed:
                continue
        fwd = bool(ctx.choice(list(approach_dirs)))
        probe = _crosswalk_walker_points(ctx, road, crossing, approach, fwd, 1.0, fwd)
        if probe is None:
            continue
        return _CrosswalkPlan(D, speed, approach, crossing, s_c, d_c, fwd)
    raise ScenarioError(
        f"no timed crossing found for crosswalk {cw_id} (reference speed {v_ref:.1f} m/s, "
        f"trigger distance {d_lo:.1f}-{d_range[1]:.1f} m)"
    )


def _add_crosswalk_group(
    ctx: BuildContext,
    road: RoadHandle,
    plan: _CrosswalkPlan,
    n_walkers: int,
    cls: ActorClass,
    after_forward: bool,
) -> tuple[list[int], list[float]]:
    """The leader plus followers a little behind it and beside it on the crosswalk."""
    cw_dir = plan.crossing.to_xy - plan.crossing.from_xy
    along = np.array([cw_dir[1], -cw_dir[0]]) / max(float(np.linalg.norm(cw_dir)), 1e-6)
    ids, speeds, starts = [], [], []
    for k in range(n_walkers):
        pts = None
        for _ in range(10):  # followers: a little behind and beside the leader, not on top of anyone
            if k == 0:
                shift, extra, speed = 0.0, 0.0, plan.speed
            else:
                shift, extra = ctx.uniform(-1.4, 1.4), ctx.uniform(0.4, 1.6)
                speed = plan.speed * ctx.uniform(0.92, 1.05)
            crossing = _Crossing(
                plan.crossing.from_xy + shift * along,
                plan.crossing.to_xy + shift * along,
                plan.crossing.from_is_start,
            )
            after = ctx.uniform(3.0, 8.0)
            fwd = plan.approach_forward
            pts = _crosswalk_walker_points(
                ctx, road, crossing, plan.approach_m + extra, fwd, after, after_forward
            )
            if pts is None:  # a follower that does not fit simply starts at the kerb
                pts = _crosswalk_walker_points(ctx, road, crossing, 0.0, fwd, after, after_forward)
            assert pts is not None
            if all(np.linalg.norm(pts[0] - q) > 0.8 for q in starts):
                break
            pts = None
        if pts is None:
            break  # no room for another follower
        starts.append(pts[0])
        ids.append(ctx.add_walker(pts, speed, cls=cls, hold=True))
        speeds.append(round(speed, 3))
    return ids, speeds


@register_scenario
class PedestrianCrossing(ScenarioType):
    name = "PedestrianCrossing"
    abilities = (Ability.EMERGENCY_BRAKE, Ability.TRAFFIC_SIGNS)
    families = ("straight", "junction4", "curve")
    summary = "A group of 1-3 pedestrians crosses a crosswalk ahead of the ego, timed to meet it."
    background_density = 0.35
    hazard = "crossing pedestrians"

    def layout_params(self, rng: np.random.Generator, family: str) -> dict:
        params = super().layout_params(rng, family)
        params["crosswalk"] = True
        if family == "junction4":
            _junction_layout_params(params, rng)
        elif family == "curve":
            params["curve_radius_m"] = float(rng.choice([-1.0, 1.0]) * rng.uniform(60.0, 120.0))
            params["curve_angle_deg"] = float(rng.uniform(30.0, 70.0))
        return params

    def populate(self, ctx: BuildContext) -> None:
        p = ctx.layout.params
        if not p.crosswalk:
            raise ScenarioError("PedestrianCrossing needs crosswalks (layout crosswalk=True)")
        roads, m = ctx.layout.roads, ctx.map
        n = p.lanes_per_direction
        if p.family in ("straight", "curve"):
            road = roads["main"]
            lane = m.lanes[road.forward_lane_ids[int(ctx.rng.integers(n))]]
            cw_id = road.crosswalk_ids[0]
            s_cw = lane.project(m.crosswalks[cw_id].polygon.mean(axis=0))[0]
            start_s = ctx.uniform(0.0, 20.0)
            end_s = min(lane.length_m, s_cw + ctx.uniform(40.0, 80.0))
            route = ctx.set_route([lane.id], start_s, end_s, ego_speed_mps=self._ego_speed(ctx, lane))
            variant, cw_road, cw_lane, approach_dirs = p.family, road, lane, (False, True)
            arm_in = None
        else:
            k = ctx.choice([0, 2] if p.junction_control == "uncontrolled" else [0, 1, 2, 3])  # priority road
            arm_in, arm_out = f"arm{k}", f"arm{(k + 2) % 4}"
            i = int(ctx.rng.integers(n))
            conn = ctx.layout.connectors[(arm_in, i, arm_out, min(i, n - 1))]
            lane_in = m.lanes[roads[arm_in].forward_lane_ids[i]]
            lane_out = m.lanes[roads[arm_out].backward_lane_ids[min(i, n - 1)]]
            start_s = ctx.uniform(5.0, 20.0)
            end_s = ctx.uniform(40.0, lane_out.length_m)
            speed0 = self._ego_speed(ctx, lane_in)
            route = ctx.set_route([lane_in.id, conn, lane_out.id], start_s, end_s, ego_speed_mps=speed0)
            variant = ctx.choice(["before_junction", "after_junction"])
            cw_road = roads[arm_in] if variant == "before_junction" else roads[arm_out]
            cw_lane = lane_in if variant == "before_junction" else lane_out
            cw_id = cw_road.crosswalk_ids[0]
            approach_dirs = (True,)  # walk towards the junction, then cross
        s_hint = _route_s_on_lane(route, cw_lane, m.crosswalks[cw_id].polygon.mean(axis=0))
        v_ref = cw_lane.speed_limit_mps
        plan = _plan_crosswalk_crossing(
            ctx,
            cw_road,
            cw_id,
            (25.0, 40.0),
            v_ref,
            PEDESTRIAN_SPEED_MPS,
            PEDESTRIAN_MAX_SPEED_MPS,
            s_hint,
            approach_dirs,
        )
        after_fwd = (
            plan.approach_forward if arm_in is None else False
        )  # junction arms: away from the junction
        n_walkers = int(ctx.rng.integers(1, 4))
        ids, speeds = _add_crosswalk_group(ctx, cw_road, plan, n_walkers, ActorClass.PEDESTRIAN, after_fwd)
        trigger_s = plan.conflict_s - EGO_HALF_LENGTH_M - plan.D
        if trigger_s < MIN_TRIGGER_ROUTE_S_M:
            raise ScenarioError(
                f"PedestrianCrossing: crosswalk too close to the route start (trigger at {trigger_s:.1f} m)"
            )
        ctx.trigger(trigger_s, *[release(a, s) for a, s in zip(ids, speeds, strict=True)])
        ctx.mark_hazard(ids, "crossing pedestrian")
        if arm_in is not None:
            exit_s = float(route.path.s[np.flatnonzero(route.lane_of_point == conn)[-1]])
            _hold_route_green(ctx, arm_in, max(exit_s, plan.conflict_s) + 5.0)
        ctx.scenario_end_s_m = plan.conflict_s + 8.0
        ctx.params.update(
            variant=variant,
            n_pedestrians=len(ids),
            walker_ids=ids,
            walker_speeds_mps=speeds,
            from_side=_side_name(route, plan.crossing.from_xy, plan.conflict_s),
            approach_m=round(plan.approach_m, 3),
            trigger_distance_m=round(plan.D, 3),
            trigger_s_m=round(trigger_s, 3),
            conflict_s_m=round(plan.conflict_s, 3),
            reference_speed_mps=round(v_ref, 3),
        )

    @staticmethod
    def _ego_speed(ctx: BuildContext, lane: Lane) -> float:
        return 0.0 if ctx.rng.random() < 0.4 else ctx.uniform(0.4, 0.8) * lane.speed_limit_mps


class _TurningCrossing(ScenarioType):
    """The ego turns at a junction; an adversary crosses the exit arm's crosswalk as it comes out."""

    families = ("junction4", "junction_t")
    background_density = 0.35
    adversary: ActorClass = ActorClass.PEDESTRIAN
    speed_range: tuple[float, float] = PEDESTRIAN_SPEED_MPS
    max_speed: float = PEDESTRIAN_MAX_SPEED_MPS

    def layout_params(self, rng: np.random.Generator, family: str) -> dict:
        return _junction_layout_params(super().layout_params(rng, family), rng)

    def populate(self, ctx: BuildContext) -> None:
        p = ctx.layout.params
        if not p.crosswalk:
            raise ScenarioError(f"{self.name} needs crosswalks (layout crosswalk=True)")
        m, roads = ctx.map, ctx.layout.roads
        turns = sorted(
            (key, lid)
            for key, lid in ctx.layout.connectors.items()
            if m.lanes[lid].turn in (Command.LEFT, Command.RIGHT)
        )
        if p.junction_control == "uncontrolled":
            turns = [t for t in turns if t[0][0] in ("arm0", "arm2")]  # enter from the priority road
        (arm_in, i, arm_out, j), conn = ctx.choice(turns)
        lane_in = m.lanes[roads[arm_in].forward_lane_ids[i]]
        lane_out = m.lanes[roads[arm_out].backward_lane_ids[j]]
        conn_lane = m.lanes[conn]
        start_s = max(lane_in.length_m - ctx.uniform(55.0, 85.0), 0.0)
        end_s = min(ctx.uniform(35.0, 60.0), lane_out.length_m)
        ego_v0 = 0.0 if ctx.rng.random() < 0.4 else ctx.uniform(0.4, 0.8) * lane_in.speed_limit_mps
        route = ctx.set_route([lane_in.id, conn, lane_out.id], start_s, end_s, ego_speed_mps=ego_v0)

        # A careless turning speed: about 3 m/s^2 of lateral acceleration on the connector's radius.
        dyaw = abs(float(np.angle(np.exp(1j * (conn_lane.heading[-1] - conn_lane.heading[0])))))
        radius = conn_lane.length_m / max(dyaw, 1e-3)
        v_ref = float(np.clip(math.sqrt(3.0 * radius), 4.0, min(9.0, lane_out.speed_limit_mps)))
        cw_road = roads[arm_out]
        cw_id = cw_road.crosswalk_ids[0]
        s_hint = _route_s_on_lane(route, lane_out, m.crosswalks[cw_id].polygon.mean(axis=0))
        stop_s = _stop_sign_s(ctx, route, lane_in)
        d_range = (12.0, 22.0)
        v0 = None
        if stop_s is not None:  # the ego pulls away from a stop sign: trigger just after the line
            d_max = s_hint - stop_s - 0.5
            d_range, v0 = (max(d_max - 1.0, 6.0), max(d_max, 6.5)), 2.0
        plan = _plan_crosswalk_crossing(
            ctx, cw_road, cw_id, d_range, v_ref, self.speed_range, self.max_speed, s_hint, (False, True), v0
        )
        ids, speeds = _add_crosswalk_group(ctx, cw_road, plan, 1, self.adversary, after_forward=False)
        trigger_s = plan.conflict_s - EGO_HALF_LENGTH_M - plan.D
        if trigger_s < MIN_TRIGGER_ROUTE_S_M:
            raise ScenarioError(
                f"{self.name}: the junction is too close to the route start (trigger at {trigger_s:.1f} m)"
            )
        ctx.trigger(trigger_s, release(ids[0], speeds[0]))
        ctx.mark_hazard(ids[0], f"crossing {self.adversary.name.lower()}")
        exit_s = float(route.path.s[np.flatnonzero(route.lane_of_point == conn)[-1]])
        _hold_route_green(ctx, arm_in, max(exit_s, plan.conflict_s) + 5.0)
        ctx.scenario_end_s_m = plan.conflict_s + 8.0
        ctx.params.update(
            turn="left" if conn_lane.turn == Command.LEFT else "right",
            arm_in=arm_in,
            arm_out=arm_out,
            adversary=self.adversary.name.lower(),
            adversary_id=ids[0],
            adversary_speed_mps=speeds[0],
            from_side=_side_name(route, plan.crossing.from_xy, plan.conflict_s),
            approach_m=round(plan.approach_m, 3),
            approach_towards_junction=plan.approach_forward,
            trigger_distance_m=round(plan.D, 3),
            trigger_s_m=round(trigger_s, 3),
            conflict_s_m=round(plan.conflict_s, 3),
            reference_speed_mps=round(v_ref, 3),
        )


@register_scenario
class VehicleTurningRoutePedestrian(_TurningCrossing):
    name = "VehicleTurningRoutePedestrian"
    abilities = (Ability.EMERGENCY_BRAKE, Ability.TRAFFIC_SIGNS)
    summary = "The ego turns at a junction while a pedestrian crosses the exit arm's crosswalk."
    hazard = "crossing pedestrian"


@register_scenario
class VehicleTurningRoute(_TurningCrossing):
    name = "VehicleTurningRoute"
    abilities = (Ability.EMERGENCY_BRAKE, Ability.TRAFFIC_SIGNS)
    summary = "The ego turns at a junction while a cyclist rides across the exit arm's crosswalk."
    hazard = "crossing cyclist"
    adversary = ActorClass.CYCLIST
    speed_range = CYCLIST_SPEED_MPS
    max_speed = 5.5


# ----------------------------------------------------------------------------------------------------------
# Crossings from behind occluders (ParkingCrossingPedestrian, DynamicObjectCrossing)


def _urban_layout_params(params: dict, rng: np.random.Generator, family: str) -> dict:
    params["speed_limit_mps"] = float(rng.uniform(*URBAN_SPEED_MPS))
    if family == "curve":
        params["curve_radius_m"] = float(rng.choice([-1.0, 1.0]) * rng.uniform(70.0, 140.0))
        params["curve_angle_deg"] = float(rng.uniform(25.0, 60.0))
    return params


def _solve_occluded_timing(
    ctx: BuildContext,
    v_ref: float,
    dist_m: float,
    speed_range: tuple[float, float],
    d_range: tuple[float, float],
) -> tuple[float, float] | None:
    """``(D, adversary speed)`` for an adversary ``dist_m`` from the conflict point, or None if impossible."""
    d_lo = max(d_range[0], comfortable_stop_m(v_ref), dist_m * v_ref / speed_range[1])
    d_hi = min(d_range[1], dist_m * v_ref / speed_range[0])
    if d_lo > d_hi:
        return None
    D = ctx.uniform(d_lo, d_hi)
    t = D / v_ref
    t_lo, t_hi = (
        max(t - TIMING_JITTER_S, dist_m / speed_range[1]),
        min(t + TIMING_JITTER_S, dist_m / speed_range[0]),
    )
    return D, dist_m / ctx.uniform(t_lo, t_hi)


def _perpendicular_crossing(
    ctx: BuildContext, road: RoadHandle, lane: Lane, s_lane: float, start_depth_m: float, kerb_m: float
) -> tuple[np.ndarray, float]:
    """Straight walk across ``road`` at ``s_lane`` of the rightmost forward lane ``lane``.

    Starts ``start_depth_m`` beyond ``kerb_m`` (lateral distance of the right kerb from the lane centre)
    and ends on the far sidewalk. Returns ``(points, distance from the start to the lane centre)``.
    """
    c = lane.point_at(s_lane)
    nrm = _left_normal(lane, s_lane)
    d_c = kerb_m + start_depth_m
    far = _far_kerb_m(ctx, road) + 0.5 * ctx.layout.params.sidewalk_width_m
    pts = np.stack([c - d_c * nrm, c + far * nrm])
    return pts, d_c


@register_scenario
class ParkingCrossingPedestrian(ScenarioType):
    name = "ParkingCrossingPedestrian"
    abilities = (Ability.EMERGENCY_BRAKE,)
    families = ("straight", "curve")
    summary = "A pedestrian steps out between two cars parked on the right, into the ego lane."
    background_density = 0.3
    hazard = "pedestrian stepping out between parked cars"

    def layout_params(self, rng: np.random.Generator, family: str) -> dict:
        params = _urban_layout_params(super().layout_params(rng, family), rng, family)
        params["parking"] = True
        return params

    def populate(self, ctx: BuildContext) -> None:
        p = ctx.layout.params
        road = ctx.layout.roads["main"]
        if road.parking_forward_lane_id is None:
            raise ScenarioError("ParkingCrossingPedestrian needs kerbside parking (layout parking=True)")
        m = ctx.map
        lane = m.lanes[road.forward_lane_ids[0]]
        park = m.lanes[road.parking_forward_lane_id]
        v_ref = lane.speed_limit_mps
        cw_s = [lane.project(m.crosswalks[c].polygon.mean(axis=0))[0] for c in road.crosswalk_ids]
        s_hi = min([lane.length_m - 50.0, *[s - 35.0 for s in cw_s]])
        if s_hi < 80.0:
            raise ScenarioError(
                f"ParkingCrossingPedestrian: road too short (road_length_m={p.road_length_m})"
            )
        s_c = ctx.uniform(80.0, s_hi)  # lane s of the conflict point
        depth = ctx.uniform(0.0, 0.4)  # beyond the parking lane centre, towards the kerb
        kerb_m = 0.5 * p.lane_width_m + 0.5 * PARKING_WIDTH_M  # lane centre -> parking lane centre
        pts, d_c = _perpendicular_crossing(ctx, road, lane, s_c, depth, kerb_m)
        timing = _solve_occluded_timing(ctx, v_ref, d_c, (1.0, 3.0), (15.0, 25.0))
        if timing is None:
            raise ScenarioError(
                f"ParkingCrossingPedestrian: speed limit {v_ref:.1f} m/s too high for a 15-25 m trigger "
                f"(comfortable stop {comfortable_stop_m(v_ref):.1f} m)"
            )
        D, speed = timing
        start_s = ctx.uniform(0.0, 15.0)
        ego_v0 = 0.0 if ctx.rng.random() < 0.3 else ctx.uniform(0.5, 0.9) * v_ref
        route = ctx.set_route([lane.id], start_s, lane.length_m, ego_speed_mps=ego_v0)
        ped = ctx.add_walker(pts, speed, cls=ActorClass.PEDESTRIAN, hold=True)
        # The parked row: the pedestrian's gap, then cars upstream (hiding it) and a few downstream.
        p_gap = park.project(pts[0])[0]
        gap = ctx.uniform(1.1, 1.8)
        classes = []
        s_edge = p_gap - 0.5 * gap
        for _ in range(int(ctx.rng.integers(3, 6))):
            s_edge = self._park(ctx, park, s_edge, upstream=True, classes=classes) - ctx.uniform(0.7, 2.5)
        s_edge = p_gap + 0.5 * gap
        for _ in range(int(ctx.rng.integers(1, 4))):
            s_edge = self._park(ctx, park, s_edge, upstream=False, classes=classes) + ctx.uniform(0.7, 2.5)
        self._far_side_parking(ctx, road)
        s_conf = _route_s_on_lane(route, lane, lane.point_at(s_c))
        trigger_s = s_conf - EGO_HALF_LENGTH_M - D
        ctx.trigger(trigger_s, release(ped, speed))
        ctx.mark_hazard(ped, "pedestrian stepping out between parked cars")
        ctx.scenario_end_s_m = s_conf + 8.0
        ctx.params.update(
            walker_id=ped,
            walker_speed_mps=round(speed, 3),
            gap_m=round(gap, 3),
            n_parked=len(classes),
            parked_classes=classes,
            trigger_distance_m=round(D, 3),
            trigger_s_m=round(trigger_s, 3),
            conflict_s_m=round(s_conf, 3),
            reference_speed_mps=round(v_ref, 3),
        )

    @staticmethod
    def _park(ctx: BuildContext, lane: Lane, s_edge: float, upstream: bool, classes: list[str]) -> float:
        """Park a car with one bumper at ``s_edge`` of ``lane``; return its other bumper's arc length."""
        cls = ctx.vehicle_class(allow_large=False)
        size = ctx.size_of(cls)
        s_mid = s_edge - 0.5 * size[0] if upstream else s_edge + 0.5 * size[0]
        if 1.0 < s_mid < lane.length_m - 1.0:
            xy = lane.point_at(s_mid)
            ctx.world.actors.add(
                cls, Behavior.STATIC, float(xy[0]), float(xy[1]), float(lane.heading_at(s_mid)), size,
                color=ctx.color_of(cls),
            )  # fmt: skip
            classes.append(cls.name.lower())
        return s_mid - 0.5 * size[0] if upstream else s_mid + 0.5 * size[0]

    def _far_side_parking(self, ctx: BuildContext, road: RoadHandle) -> None:
        """A short row of parked cars on the opposite kerb (scenery), clear of the crosswalks."""
        if road.parking_backward_lane_id is None:
            return
        far = ctx.map.lanes[road.parking_backward_lane_id]
        cw_s = [far.project(ctx.map.crosswalks[c].polygon.mean(axis=0))[0] for c in road.crosswalk_ids]
        s_edge = ctx.uniform(10.0, 0.5 * far.length_m)
        placed: list[str] = []
        for _ in range(int(ctx.rng.integers(0, 5))):
            if any(abs(s_edge + 3.0 - c) < 9.0 for c in cw_s):
                s_edge += 12.0
            s_edge = self._park(ctx, far, s_edge, upstream=False, classes=placed) + ctx.uniform(1.0, 6.0)


@register_scenario
class DynamicObjectCrossing(ScenarioType):
    name = "DynamicObjectCrossing"
    abilities = (Ability.EMERGENCY_BRAKE,)
    families = ("straight", "curve")
    summary = "A pedestrian or cyclist emerges from behind a van, bus or hoarding at the kerb and crosses."
    background_density = 0.35
    hazard = "pedestrian or cyclist emerging from behind an occluder"

    def layout_params(self, rng: np.random.Generator, family: str) -> dict:
        return _urban_layout_params(super().layout_params(rng, family), rng, family)

    def populate(self, ctx: BuildContext) -> None:
        p = ctx.layout.params
        m = ctx.map
        road = ctx.layout.roads["main"]
        lane = m.lanes[road.forward_lane_ids[0]]
        v_ref = lane.speed_limit_mps
        sw = p.sidewalk_width_m
        park = PARKING_WIDTH_M if road.parking_forward_lane_id is not None else 0.0
        kerb_m = 0.5 * p.lane_width_m + park  # lane centre -> right kerb
        cw_s = [lane.project(m.crosswalks[c].polygon.mean(axis=0))[0] for c in road.crosswalk_ids]
        s_hi = min([lane.length_m - 50.0, *[s - 20.0 for s in cw_s]])
        if s_hi < 80.0:
            raise ScenarioError(f"DynamicObjectCrossing: road too short (road_length_m={p.road_length_m})")
        if sw < 1.0:
            raise ScenarioError(
                f"DynamicObjectCrossing: sidewalk_width_m={sw} leaves no room for the occluder (need >= 1)"
            )
        # Pedestrians step out from the sidewalk right behind the occluder; cyclists come out of a driveway
        # behind the sidewalk, so they are hidden for longer and ride at a cyclist's pace.
        first = ActorClass.CYCLIST if ctx.rng.random() < 0.35 else ActorClass.PEDESTRIAN
        plan = None
        for attempt in range(30):
            cls = first if attempt < 15 else ActorClass.PEDESTRIAN
            if cls == ActorClass.CYCLIST:
                speeds, depth = EMERGING_CYCLIST_SPEED_MPS, ctx.uniform(1.0, sw + 1.5)
            else:
                speeds, depth = (
                    (1.0, PEDESTRIAN_MAX_SPEED_MPS),
                    ctx.uniform(0.5, max(min(sw - 0.3, 1.4), 0.5)),
                )
            timing = _solve_occluded_timing(ctx, v_ref, kerb_m + depth, speeds, (15.0, 32.0))
            if timing is not None:
                plan = (cls, depth, *timing)
                break
        if plan is None:
            raise ScenarioError(
                f"DynamicObjectCrossing: speed limit {v_ref:.1f} m/s too high for a timed crossing "
                f"(comfortable stop {comfortable_stop_m(v_ref):.1f} m)"
            )
        cls, depth, D, speed = plan
        s_c = ctx.uniform(80.0, s_hi)
        start_s = ctx.uniform(0.0, 15.0)
        ego_v0 = 0.0 if ctx.rng.random() < 0.3 else ctx.uniform(0.5, 0.9) * v_ref
        route = ctx.set_route([lane.id], start_s, lane.length_m, ego_speed_mps=ego_v0)
        pts, _ = _perpendicular_crossing(ctx, road, lane, s_c, depth, kerb_m)
        adv = ctx.add_walker(pts, speed, cls=cls, hold=True)

        # The occluder: a van / bus / truck on the kerb (in the parking lane if there is one), or a block of
        # hoarding on the sidewalk, ending just before the adversary's start.
        kind = ctx.choice(["van", "van", "bus", "truck", "barrier_block"])
        if kind == "barrier_block":
            occ_cls = ActorClass.BARRIER
            w_lo = min(max(0.6, depth + 0.1), sw - 0.3)
            size = (
                ctx.uniform(3.0, 7.0),
                ctx.uniform(w_lo, max(w_lo, min(1.8, sw - 0.3))),
                ctx.uniform(1.9, 2.4),
            )
            lat = kerb_m + 0.2 + 0.5 * size[1]
        else:
            occ_cls = {"van": ActorClass.VAN, "bus": ActorClass.BUS, "truck": ActorClass.TRUCK}[kind]
            size = ctx.size_of(occ_cls)
            if park > 0.0:
                lat = 0.5 * p.lane_width_m + 0.5 * PARKING_WIDTH_M + 0.2
            elif sw >= size[1] + 0.2:
                lat = kerb_m + 0.1 + 0.5 * size[1]  # parked up on the sidewalk
            else:
                lat = kerb_m + 0.5 * size[1] - 0.3  # mostly on a narrow sidewalk, a little over the kerb
        half_adv = 0.5 * (0.6 if cls == ActorClass.CYCLIST else 0.5)
        s_occ = s_c - half_adv - ctx.uniform(0.2, 0.7) - 0.5 * size[0]
        xy = lane.point_at(s_occ) - lat * _left_normal(lane, s_occ)
        occ = ctx.world.actors.add(
            occ_cls, Behavior.STATIC, float(xy[0]), float(xy[1]), float(lane.heading_at(s_occ)), size,
            color=ctx.color_of(occ_cls),
        )  # fmt: skip
        s_conf = _route_s_on_lane(route, lane, lane.point_at(s_c))
        trigger_s = s_conf - EGO_HALF_LENGTH_M - D
        ctx.trigger(trigger_s, release(adv, speed))
        ctx.mark_hazard(adv, f"{cls.name.lower()} emerging from behind an occluder")
        ctx.scenario_end_s_m = s_conf + 8.0
        ctx.params.update(
            adversary=cls.name.lower(),
            adversary_id=adv,
            adversary_speed_mps=round(speed, 3),
            start_depth_m=round(depth, 3),
            occluder=kind,
            occluder_id=occ,
            occluder_size_lwh=[round(x, 3) for x in size],
            trigger_distance_m=round(D, 3),
            trigger_s_m=round(trigger_s, 3),
            conflict_s_m=round(s_conf, 3),
            reference_speed_mps=round(v_ref, 3),
        )
