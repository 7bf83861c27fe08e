"""Overtaking scenarios on straight and curved roads: static blockers, an opening door, invading traffic.

Multi-lane types (``ParkedObstacle``, ``ConstructionObstacle``, ``Accident``) use a two-way road with
2-3 lanes per direction: the ego drives in the kerb lane (index 0), the blocker fills it, and the lane to
its left carries light traffic. The ``*TwoWays`` types use one lane per direction: the ego must borrow the
opposite lane (listed in ``ctx.extra_allowed_lanes``) in a gap of the oncoming traffic, which comes as
one or two small groups timed to meet the ego near the blocker.

Blockers are STATIC actors whose zone starts at least 60 m ahead of the ego; the ego's lane is kept free
of background vehicles up to the end of the zone (they would queue behind the blocker for ever).
``InvadingTurn`` (curve family) sends oncoming vehicles that cut the curve 1-1.4 m into the ego's lane,
0.15-0.45 m into a centred ego: the ego keeps right (or waits before the curve).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from riskdistill.sim.actors import CLASS_SIZE_M
from riskdistill.sim.layouts import PARKING_WIDTH_M
from riskdistill.sim.roadmap import Lane, offset_polyline
from riskdistill.sim.route import Path, smoothstep
from riskdistill.sim.scenarios.base import (
    Action,
    BuildContext,
    ScenarioError,
    ScenarioType,
    register_scenario,
)
from riskdistill.sim.scenarios.common import (
    EGO_HALF_LENGTH_M,
    add_background,
    add_timed_vehicle,
    class_length_m,
)
from riskdistill.sim.scenarios.junction import FAST_EGO_MPS
from riskdistill.sim.world import World
from riskdistill.types import Ability, ActorClass

EGO_HALF_WIDTH_M = 0.95
MIN_BLOCKER_AHEAD_M = 60.0


def lane_pose(lane: Lane, s_m: float, lateral_m: float) -> tuple[np.ndarray, float]:
    """World point ``lateral_m`` left of ``lane``'s centre at arc length ``s_m``, and the lane heading."""
    h = float(lane.heading_at(s_m))
    return lane.point_at(s_m) + lateral_m * np.array([-math.sin(h), math.cos(h)]), h


def lateral_half_extent(size_lwh: tuple[float, float, float], rel_yaw: float) -> float:
    length, width, _ = size_lwh
    return 0.5 * (length * abs(math.sin(rel_yaw)) + width * abs(math.cos(rel_yaw)))


def longitudinal_half_extent(size_lwh: tuple[float, float, float], rel_yaw: float) -> float:
    length, width, _ = size_lwh
    return 0.5 * (length * abs(math.cos(rel_yaw)) + width * abs(math.sin(rel_yaw)))


class _Placer:
    """Adds static actors on a lane frame; keeps every box within ``max_left_m`` of the lane centre."""

    def __init__(self, ctx: BuildContext, lane: Lane, max_left_m: float):
        self.ctx, self.lane, self.max_left_m = ctx, lane, max_left_m
        self.ids: list[int] = []

    def add(
        self,
        cls: ActorClass,
        s_m: float,
        lateral_m: float,
        rel_yaw: float = 0.0,
        size: tuple[float, float, float] | None = None,
    ) -> int:
        size = size or self.ctx.size_of(cls)
        lateral_m = min(lateral_m, self.max_left_m - lateral_half_extent(size, rel_yaw))
        xy, h = lane_pose(self.lane, s_m, lateral_m)
        i = self.ctx.add_static(cls, xy, h + rel_yaw, size)
        self.ids.append(i)
        return i


def parked_obstacle(p: _Placer, s_start: float) -> tuple[float, dict[str, Any]]:
    """A stopped vehicle (hazard lights on) in the lane. Returns the zone end and parameters."""
    ctx = p.ctx
    cls = ctx.choice([ActorClass.CAR] * 4 + [ActorClass.VAN] * 2 + [ActorClass.TRUCK])
    size = ctx.size_of(cls)
    rel_yaw = ctx.uniform(-0.08, 0.08)
    half = longitudinal_half_extent(size, rel_yaw)
    lateral = ctx.uniform(-0.4, 0.2)
    p.add(cls, s_start + half, lateral, rel_yaw, size)
    return s_start + 2 * half, {"class": cls.name.lower(), "lateral_m": round(lateral, 3)}


def construction_obstacle(p: _Placer, s_start: float) -> tuple[float, dict[str, Any]]:
    """Warning board, a cone taper closing the lane, a work zone behind cones and barriers, exit taper."""
    ctx, w = p.ctx, p.lane.width_m
    edge = 0.5 * w - 0.35
    board = (0.25, ctx.uniform(0.9, 1.3), ctx.uniform(1.4, 1.9))
    p.add(ActorClass.BARRIER, s_start, ctx.uniform(-0.5, 0.3), 0.0, board)
    s = s_start + ctx.uniform(4.0, 8.0)
    taper = ctx.uniform(8.0, 14.0)
    step = ctx.uniform(1.8, 2.6)
    n_taper = max(int(taper / step), 3)
    for k in range(n_taper + 1):
        f = k / n_taper
        p.add(ActorClass.TRAFFIC_CONE, s + f * taper, -edge + f * 2 * edge)
    s_work = s + taper
    work = ctx.uniform(8.0, 20.0)
    n_bar = int(ctx.rng.integers(1, 3))
    for k in range(n_bar):
        p.add(
            ActorClass.BARRIER, s_work + 1.5 + k * 0.6 * work, ctx.uniform(-0.3, 0.3), ctx.uniform(-0.1, 0.1)
        )
    cone_step = ctx.uniform(2.5, 3.5)
    for k in range(1, int(work / cone_step) + 1):
        p.add(ActorClass.TRAFFIC_CONE, s_work + k * cone_step, edge)
    s_exit = s_work + work
    for k in range(1, 4):
        p.add(ActorClass.TRAFFIC_CONE, s_exit + 2.0 * k, edge - k / 3 * 2 * edge)
    return s_exit + 6.0, {"taper_m": round(taper, 2), "work_m": round(work, 2), "barriers": n_bar}


def accident_obstacle(p: _Placer, s_start: float) -> tuple[float, dict[str, Any]]:
    """A police car guarding 2-3 crashed vehicles at odd angles."""
    ctx = p.ctx
    size = ctx.size_of(ActorClass.EMERGENCY_VEHICLE)
    rel_yaw = ctx.uniform(-0.15, 0.15)
    half = longitudinal_half_extent(size, rel_yaw)
    p.add(ActorClass.EMERGENCY_VEHICLE, s_start + half, ctx.uniform(-0.3, 0.3), rel_yaw, size)
    s = s_start + 2 * half + ctx.uniform(4.0, 8.0)
    n = int(ctx.rng.integers(2, 4))
    classes = []
    for _ in range(n):
        cls = ctx.choice([ActorClass.CAR] * 5 + [ActorClass.VAN] * 2 + [ActorClass.TRUCK])
        size = ctx.size_of(cls)
        rel_yaw = ctx.choice([-1.0, 1.0]) * ctx.uniform(0.25, 0.8)
        half = longitudinal_half_extent(size, rel_yaw)
        p.add(cls, s + half, ctx.uniform(-0.5, 0.4), rel_yaw, size)
        s += 2 * half + ctx.uniform(0.3, 1.5)
        classes.append(cls.name.lower())
    return s, {"crashed": classes}


BLOCKERS = {"parked": parked_obstacle, "construction": construction_obstacle, "accident": accident_obstacle}


def _crosswalk_s(ctx: BuildContext, lane: Lane) -> list[float]:
    return [lane.project(cw.polygon.mean(axis=0))[0] for cw in ctx.map.crosswalks.values()]


def _zone_start(ctx: BuildContext, lane: Lane, s0: float, zone_len_guess: float) -> float:
    """Where the blocked zone begins: 65-100 m ahead of the ego, clear of the crosswalk."""
    s = s0 + ctx.uniform(65.0, 100.0)
    for c in _crosswalk_s(ctx, lane):
        if s - 10.0 < c < s + zone_len_guess + 10.0:
            before = c - 10.0 - zone_len_guess
            s = before if before >= s0 + MIN_BLOCKER_AHEAD_M else c + 10.0
    return s


def oncoming_group(ctx: BuildContext, lane: Lane, meet_xy: np.ndarray, t_meet_s: float) -> dict[str, Any]:
    """1-3 (polite) oncoming vehicles on ``lane``, the first passing ``meet_xy`` about ``t_meet_s``.

    They are on the road from the start (none enters later at the road end, out of nowhere), so the ego
    sees them coming and waits for them to pass before it borrows their lane.
    """
    pid = ctx.lane_path([lane.id])
    s_meet = lane.project(meet_xy)[0]
    speed = ctx.uniform(7.0, 11.0)
    s_first = max(s_meet - speed * t_meet_s, ctx.uniform(0.0, 10.0))
    placed = []
    behind = 0.0
    for k in range(int(ctx.rng.integers(1, 4))):
        cls = ctx.vehicle_class(allow_large=ctx.rng.random() < 0.3)
        if k > 0:
            behind += ctx.uniform(15.0, 35.0) + max(0.0, class_length_m(cls) - 4.6)
        if s_first - behind < 0.0:
            break
        placed.append(add_timed_vehicle(ctx, pid, s_first - behind, speed, cls=cls))
    return {
        "speed_mps": round(speed, 3),
        "actors": placed,
        "first_meets_at_s": round((s_meet - s_first) / speed, 2),
    }


class _ObstacleScenario(ScenarioType):
    """A blocker in the ego's kerb lane on a two-way road (``lanes`` lanes per direction)."""

    families: ClassVar[tuple[str, ...]] = ("straight", "curve")
    background_density: ClassVar[float] = 0.0  # populate() adds background that keeps the ego lane clear
    blocker: ClassVar[str]
    lanes: ClassVar[tuple[int, ...]] = (2, 2, 3)
    parking: ClassVar[bool | None] = None  # None: random

    def layout_params(self, rng: np.random.Generator, family: str) -> dict[str, Any]:
        params = super().layout_params(rng, family)
        params["two_way"] = True
        params["lanes_per_direction"] = int(self.lanes[int(rng.integers(len(self.lanes)))])
        params["road_length_m"] = float(rng.uniform(230.0, 280.0))
        params["parking"] = bool(rng.random() < 0.3) if self.parking is None else self.parking
        params["crosswalk"] = bool(rng.random() < 0.5)
        if family == "curve":
            params["curve_radius_m"] = float(rng.choice([-1.0, 1.0]) * rng.uniform(70.0, 160.0))
            params["curve_angle_deg"] = float(rng.uniform(25.0, 60.0))
        return params

    def check_layout(self, ctx: BuildContext) -> None:
        p = ctx.layout.params
        if p.family not in self.families:
            raise ScenarioError(
                f"{self.name} needs a layout family in {list(self.families)}, got {p.family!r}"
            )
        if not p.two_way:
            raise ScenarioError(f"{self.name} needs two_way=True")
        if p.lanes_per_direction not in self.lanes:
            raise ScenarioError(
                f"{self.name} needs lanes_per_direction in {sorted(set(self.lanes))}, "
                f"got {p.lanes_per_direction}"
            )

    def populate(self, ctx: BuildContext) -> None:
        self.check_layout(ctx)
        road = ctx.layout.roads["main"]
        lane = ctx.map.lanes[road.forward_lane_ids[0]]
        two_ways = ctx.layout.params.lanes_per_direction == 1
        s0 = ctx.uniform(5.0, 20.0)
        v_ego = ctx.uniform(5.0, 10.0)
        s_zone = _zone_start(ctx, lane, s0, 45.0)
        s_end = min(lane.length_m - 3.0, s0 + ctx.uniform(180.0, 215.0))
        ctx.set_route([lane.id], start_s_m=s0, end_s_m=s_end, ego_speed_mps=v_ego)
        max_left = 0.5 * lane.width_m - 0.05 if two_ways else 0.5 * lane.width_m + 0.2
        placer = _Placer(ctx, lane, max_left)
        s_zone_end, info = BLOCKERS[self.blocker](placer, s_zone)
        if s_end < s_zone_end + 30.0:
            raise ScenarioError(
                f"road too short for {self.name}: the blocked zone ends at {s_zone_end:.0f} m of a "
                f"{lane.length_m:.0f} m lane; increase road_length_m"
            )
        zone = (s_zone - s0, s_zone_end - s0)  # route arc lengths
        ctx.mark_hazard(placer.ids, "blocker in the ego lane")
        ctx.trigger(max(zone[0] - 40.0, 0.5))  # starts the scenario clock
        ctx.scenario_end_s_m = zone[1] + 15.0
        ctx.params.update(
            {
                "blocker": self.blocker,
                "blocker_actors": placer.ids,
                "zone_start_s_m": round(zone[0], 2),
                "zone_end_s_m": round(zone[1], 2),
                "ego_start_speed_mps": round(v_ego, 3),
                **info,
            }
        )
        keep = [(lane.id, 0.0, s_zone_end + 15.0)]
        if two_ways:
            opposite = ctx.map.lanes[road.backward_lane_ids[0]]
            ctx.extra_allowed_lanes = {opposite.id}
            mid = lane.point_at(0.5 * (s_zone + s_zone_end))
            ctx.params["oncoming"] = oncoming_group(
                ctx, opposite, mid, zone[0] / FAST_EGO_MPS + ctx.uniform(-1.0, 3.0)
            )
            ctx.mark_hazard(ctx.params["oncoming"]["actors"], "oncoming vehicle in the lane to borrow")
            add_background(ctx, ctx.uniform(0.1, 0.3), keep)
        else:
            add_background(ctx, ctx.uniform(0.1, 0.35), keep)


@register_scenario
class ParkedObstacle(_ObstacleScenario):
    name = "ParkedObstacle"
    abilities = (Ability.OVERTAKING,)
    blocker = "parked"
    summary = "A vehicle stopped in the ego's lane of a multi-lane road: change lanes around it."
    hazard = "stopped vehicle in the ego lane"


@register_scenario
class ConstructionObstacle(_ObstacleScenario):
    name = "ConstructionObstacle"
    abilities = (Ability.OVERTAKING,)
    blocker = "construction"
    summary = "Road works close the ego's lane behind a cone taper: move to the next lane."
    hazard = "road works in the ego lane"


@register_scenario
class Accident(_ObstacleScenario):
    name = "Accident"
    abilities = (Ability.OVERTAKING,)
    blocker = "accident"
    summary = "Crashed vehicles and a police car block the ego's lane: change lanes around them."
    hazard = "accident in the ego lane"


@register_scenario
class ParkedObstacleTwoWays(_ObstacleScenario):
    name = "ParkedObstacleTwoWays"
    abilities = (Ability.OVERTAKING,)
    blocker = "parked"
    lanes = (1,)
    summary = "A vehicle stopped in the ego's lane: pass it in a gap of the oncoming traffic."
    hazard = "stopped vehicle in the ego lane, oncoming vehicles"


@register_scenario
class ConstructionObstacleTwoWays(_ObstacleScenario):
    name = "ConstructionObstacleTwoWays"
    abilities = (Ability.OVERTAKING,)
    blocker = "construction"
    lanes = (1,)
    summary = "Road works close the ego's lane: pass in the opposite lane between oncoming vehicles."
    hazard = "road works in the ego lane, oncoming vehicles"


@register_scenario
class AccidentTwoWays(_ObstacleScenario):
    name = "AccidentTwoWays"
    abilities = (Ability.OVERTAKING,)
    blocker = "accident"
    lanes = (1,)
    summary = "An accident blocks the ego's lane: pass in the opposite lane between oncoming vehicles."
    hazard = "accident in the ego lane, oncoming vehicles"


# --------------------------------------------------------------------------------------------------


def move_actor(actor: int, xy: np.ndarray, yaw: float) -> Action:
    """Put a (pre-placed, hidden) static actor at ``xy`` with ``yaw``."""
    x, y = float(xy[0]), float(xy[1])

    def act(world: World) -> None:
        world.actors.x[actor], world.actors.y[actor], world.actors.yaw[actor] = x, y, yaw

    return act


@register_scenario
class VehicleOpensDoorTwoWays(_ObstacleScenario):
    name = "VehicleOpensDoorTwoWays"
    abilities = (Ability.OVERTAKING,)
    blocker = "door"
    lanes = (1,)
    parking = True
    summary = "A car parked at the kerb opens its door into the ego's lane: pass in the opposite lane."
    hazard = "opening car door, oncoming vehicles"

    def layout_params(self, rng: np.random.Generator, family: str) -> dict[str, Any]:
        params = super().layout_params(rng, family)
        params["lane_width_m"] = float(rng.uniform(3.2, 3.6))
        return params

    def populate(self, ctx: BuildContext) -> None:
        self.check_layout(ctx)
        road = ctx.layout.roads["main"]
        if road.parking_forward_lane_id is None:
            raise ScenarioError(f"{self.name} needs parking=True (the car parks in the kerbside strip)")
        lane = ctx.map.lanes[road.forward_lane_ids[0]]
        w = lane.width_m
        s0 = ctx.uniform(5.0, 20.0)
        v_ego = ctx.uniform(5.0, 10.0)
        s_car = _zone_start(ctx, lane, s0, 10.0)
        s_end = min(lane.length_m - 3.0, s0 + ctx.uniform(180.0, 215.0))
        ctx.set_route([lane.id], start_s_m=s0, end_s_m=s_end, ego_speed_mps=v_ego)
        # The car: in the parking strip, pulled up to the lane line; its driver's door opens into the lane.
        cls = ctx.choice([ActorClass.CAR] * 3 + [ActorClass.VAN])
        size = ctx.size_of(cls)
        length, width = size[0], size[1]
        door_len = ctx.uniform(1.0, 1.2)
        base = -(0.5 * w + 0.5 * PARKING_WIDTH_M) + 0.5 * width  # car's left side with no shift
        tip_target = -EGO_HALF_WIDTH_M + ctx.uniform(0.3, 0.8)  # into a centred ego's body
        shift = ctx.uniform(0.3, 0.9)
        sin_t = (tip_target - base - shift) / door_len
        if sin_t > math.sin(math.radians(85.0)):
            shift = min(0.9, tip_target - base - door_len * math.sin(math.radians(85.0)))
            sin_t = (tip_target - base - shift) / door_len
        theta = math.asin(float(np.clip(sin_t, math.sin(math.radians(40.0)), math.sin(math.radians(85.0)))))
        lat_car = -(0.5 * w + 0.5 * PARKING_WIDTH_M) + shift
        car_xy, h = lane_pose(lane, s_car, lat_car)
        car = ctx.add_static(cls, car_xy, h, size)
        t = np.array([math.cos(h), math.sin(h)])
        n = np.array([-math.sin(h), math.cos(h)])
        hinge_back = ctx.uniform(1.1, 1.4)
        hinge = car_xy + (0.5 * length - hinge_back) * t + 0.5 * width * n
        d = -math.cos(theta) * t + math.sin(theta) * n
        door_xy = hinge + 0.5 * door_len * d
        door_yaw = math.atan2(d[1], d[0])
        door = ctx.add_static(ActorClass.OPEN_DOOR, np.array([1.0e5, 1.0e5]), 0.0, (door_len, 0.15, 1.2))
        tip_lat = base + shift + door_len * math.sin(theta)
        # A few other parked cars in the strip (not next to the door car, not on the crosswalk).
        park = ctx.map.lanes[road.parking_forward_lane_id]
        cw = _crosswalk_s(ctx, lane)
        taken = [s_car]
        for _ in range(int(ctx.rng.integers(1, 5))):
            s = ctx.uniform(s0 + 15.0, min(s0 + 200.0, lane.length_m - 5.0))
            if min(abs(s - x) for x in taken) < 9.0 or any(abs(s - c) < 7.0 for c in cw):
                continue
            ctx.add_parked(park, park.project(lane.point_at(s))[0])
            taken.append(s)

        s_hinge = ctx.route_s_of(hinge)
        d_front = ctx.uniform(12.0, 25.0)
        trigger_s = s_hinge - EGO_HALF_LENGTH_M - d_front
        ctx.trigger(trigger_s, move_actor(door, door_xy, door_yaw))
        ctx.scenario_end_s_m = s_hinge + length + 15.0
        opposite = ctx.map.lanes[road.backward_lane_ids[0]]
        ctx.extra_allowed_lanes = {opposite.id}
        ctx.params.update(
            {
                "blocker": "door",
                "blocker_actors": [car, door],
                "door_actor": door,
                "door_xy": [round(float(door_xy[0]), 3), round(float(door_xy[1]), 3)],
                "door_yaw_rad": round(door_yaw, 4),
                "door_angle_deg": round(math.degrees(theta), 2),
                "door_intrusion_m": round(tip_lat + 0.5 * w, 3),  # from the lane's right edge
                "door_trigger_s_m": round(trigger_s, 2),
                "door_distance_m": round(d_front, 2),
                "zone_start_s_m": round(s_hinge - length, 2),
                "zone_end_s_m": round(s_hinge + 1.0, 2),
                "ego_start_speed_mps": round(v_ego, 3),
            }
        )
        t_meet = (s_hinge - 10.0) / FAST_EGO_MPS + ctx.uniform(-1.0, 3.0)
        ctx.params["oncoming"] = oncoming_group(ctx, opposite, hinge, t_meet)
        ctx.mark_hazard([car, door], "car opening its door into the ego lane")
        ctx.mark_hazard(ctx.params["oncoming"]["actors"], "oncoming vehicle in the lane to borrow")
        add_background(ctx, ctx.uniform(0.1, 0.3), [(lane.id, 0.0, s_car + 20.0)])


# --------------------------------------------------------------------------------------------------


def invading_path(lane: Lane, s_in: float, s_out: float, offset_m: float, ramp_m: float = 15.0) -> Path:
    """``lane``'s centreline shifted ``offset_m`` to its left from ``s_in`` to ``s_out`` (smooth ramps)."""
    s = lane.s
    up = smoothstep((s - (s_in - 0.3 * ramp_m)) / ramp_m)
    down = 1.0 - smoothstep((s - (s_out - 0.7 * ramp_m)) / ramp_m)
    off = offset_m * np.minimum(up, down)
    normal = offset_polyline(lane.centerline, 1.0) - lane.centerline
    return Path.from_points(lane.centerline + off[:, None] * normal)


@register_scenario
class InvadingTurn(ScenarioType):
    name = "InvadingTurn"
    abilities = (Ability.GIVE_WAY,)
    families = ("curve",)
    background_density = 0.0  # populate() keeps the curve free of background vehicles
    summary = "In a right-hand curve oncoming vehicles cut over a metre into the ego's lane: keep right."
    hazard = "oncoming vehicles cutting the curve"

    def layout_params(self, rng: np.random.Generator, family: str) -> dict[str, Any]:
        params = super().layout_params(rng, family)
        radius = float(rng.uniform(40.0, 70.0))
        angle = float(rng.uniform(60.0, 90.0))
        params.update(
            {
                "two_way": True,
                "lanes_per_direction": 1,
                "lane_width_m": float(rng.uniform(3.5, 3.9)),
                "parking": False,
                "curve_radius_m": radius,  # left for the forward lanes: a right-hand curve for the ego
                "curve_angle_deg": angle,
                "road_length_m": 40.0 + radius * math.radians(angle) + float(rng.uniform(85.0, 110.0)),
            }
        )
        return params

    def populate(self, ctx: BuildContext) -> None:
        p = ctx.layout.params
        if p.family != "curve" or not p.two_way or p.lanes_per_direction != 1 or p.curve_radius_m <= 0:
            raise ScenarioError(
                "InvadingTurn needs a curve layout with two_way=True, lanes_per_direction=1 and "
                "curve_radius_m > 0 (the ego drives the backward lane: a right-hand curve)"
            )
        road = ctx.layout.roads["main"]
        ego_lane = ctx.map.lanes[road.backward_lane_ids[0]]
        onc_lane = ctx.map.lanes[road.forward_lane_ids[0]]
        ref = road.reference
        arc = p.curve_radius_m * math.radians(p.curve_angle_deg)
        arc_pts = [ref[round(s / 0.5)] for s in (40.0, 40.0 + arc)]  # reference sampled every 0.5 m
        # The arc on the oncoming lane (its direction) and on the ego lane (reversed).
        o_in, o_out = (onc_lane.project(q)[0] for q in arc_pts)
        e_out, e_in = (ego_lane.project(q)[0] for q in arc_pts)
        s0 = ctx.uniform(3.0, 10.0)
        if e_in - s0 < MIN_BLOCKER_AHEAD_M:
            raise ScenarioError("the straight before the curve is too short: increase road_length_m")
        v_ego = ctx.uniform(6.0, 10.0)
        s_end = min(ego_lane.length_m - 3.0, s0 + ctx.uniform(190.0, 215.0))
        ctx.set_route([ego_lane.id], start_s_m=s0, end_s_m=s_end, ego_speed_mps=v_ego)
        w = onc_lane.width_m
        # How far an invader's side reaches into a centred ego (~1-1.4 m past the centre line); keeping
        # right within the lane leaves 0.35-0.85 m.
        overlap = ctx.uniform(0.15, 0.45)
        intrusion = 0.5 * w - EGO_HALF_WIDTH_M + overlap  # past the centre line
        speed = ctx.uniform(7.0, 10.0)
        t_meet = (0.5 * (e_in + e_out) - s0) / v_ego + ctx.uniform(-1.5, 1.5)
        s_mid = 0.5 * (o_in + o_out)
        n = int(ctx.rng.integers(2, 4))
        behind = 0.0
        actors = []
        for k in range(n):
            cls = ctx.choice([ActorClass.CAR] * 5 + [ActorClass.VAN] * 2 + [ActorClass.TRUCK])
            size_w = CLASS_SIZE_M[cls][1]  # nominal: the actor draws its own (+-5 %) size
            if k > 0:
                behind += ctx.uniform(15.0, 35.0) + max(0.0, class_length_m(cls) - 4.6)
            offset = 0.5 * w - 0.5 * size_w + intrusion
            pid = ctx.world.add_path(invading_path(onc_lane, o_in, o_out, offset))
            actors.append(
                add_timed_vehicle(
                    ctx, pid, s_mid - speed * t_meet - behind, speed, cls=cls, ignore_actors=True
                )
            )
        ctx.mark_hazard(actors, "oncoming vehicle cutting the curve")
        ctx.trigger(max(e_in - s0 - 40.0, 0.5))  # starts the scenario clock
        ctx.scenario_end_s_m = e_out - s0 + 10.0
        ctx.params.update(
            {
                "invaders": actors,
                "intrusion_m": round(intrusion, 3),
                "overlap_with_centred_ego_m": round(overlap, 3),
                "invader_speed_mps": round(speed, 3),
                "curve_start_s_m": round(e_in - s0, 2),
                "curve_end_s_m": round(e_out - s0, 2),
                "ego_start_speed_mps": round(v_ego, 3),
            }
        )
        add_background(ctx, ctx.uniform(0.1, 0.3), [(onc_lane.id, 0.0, 1e9), (ego_lane.id, 0.0, 1e9)])
