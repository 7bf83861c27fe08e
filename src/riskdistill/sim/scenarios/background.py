"""Background traffic: vehicles wandering the lane graph, parked cars and pedestrians on sidewalks, and (for
training recordings, off by default) pedestrians who cross the ego's route ahead."""

from __future__ import annotations

import numpy as np

from riskdistill.geometry import points_in_polygon
from riskdistill.sim.layouts import RoadHandle, kerb_offsets
from riskdistill.sim.roadmap import LaneKind, offset_polyline
from riskdistill.sim.scenarios.base import BuildContext
from riskdistill.types import ActorClass

MIN_SPAWN_SPACING_M = 12.0
EGO_CLEARANCE_M = 25.0
#: Where a crossing walker crosses the ego's route: this far along it from the ego's start (m).
CROSSING_AT_ROUTE_M = (20.0, 160.0)
#: How far a crossing walker strolls along the kerb before it steps off (m), and walks on after (m).
CROSSING_STROLL_M = (0.0, 12.0)
CROSSING_WALK_ON_M = 10.0
CROSSING_SPEED_MPS = (1.0, 1.7)
CROSSING_SCAN_M = 20.0  # how far either side of the route a sidewalk is looked for


def random_lane_walk(ctx: BuildContext, start_lane: int, min_length_m: float) -> list[int]:
    """Follow random successors from ``start_lane`` until ``min_length_m`` is covered or the road ends."""
    lanes = [start_lane]
    total = ctx.map.lanes[start_lane].length_m
    while total < min_length_m:
        succ = [s for s in ctx.map.lanes[lanes[-1]].successors if ctx.map.lanes[s].kind == LaneKind.DRIVING]
        if not succ:
            break
        nxt = ctx.choice(sorted(succ))
        lanes.append(nxt)
        total += ctx.map.lanes[nxt].length_m
    return lanes


def _occupied(ctx: BuildContext) -> np.ndarray:
    a = ctx.world.actors
    return np.stack([a.x[: a.n], a.y[: a.n]], axis=1) if a.n else np.zeros((0, 2))


def _free(ctx: BuildContext, xy: np.ndarray, spacing_m: float) -> bool:
    occ = _occupied(ctx)
    if len(occ) and np.min(np.linalg.norm(occ - xy, axis=1)) < spacing_m:
        return False
    if any(ctx.map.lanes[lid].project(xy)[1] ** 2 < 1.0 for lid in ctx.keep_clear_lane_ids):
        return False  # a lane the scenario keeps free of background traffic (Bench2Drive's RemoveRoadLane)
    if ctx.route is not None:
        ego = occ[0]
        if np.linalg.norm(ego - xy) < EGO_CLEARANCE_M:
            return False
        # Keep the route itself clear right in front of the ego (scenarios place their own actors there).
        s_route, lat = ctx.route.path.project(xy)
        if abs(lat) < 2.0 and s_route < 45.0:
            return False
    return True


def add_background_traffic(ctx: BuildContext, density: float) -> None:
    """Spawn moving vehicles on the non-junction driving lanes, about ``density`` per 20 m of lane."""
    lanes = [lane for lane in ctx.map.driving_lanes() if lane.junction_id is None and lane.length_m > 15.0]
    for lane in sorted(lanes, key=lambda ln: ln.id):
        n_target = int(ctx.rng.poisson(max(density, 0.0) * lane.length_m / 20.0))
        for _ in range(n_target):
            s0 = ctx.uniform(3.0, lane.length_m - 3.0)
            xy = lane.point_at(s0)
            if not _free(ctx, xy, MIN_SPAWN_SPACING_M):
                continue
            walk = random_lane_walk(ctx, lane.id, s0 + 250.0)
            pid = ctx.lane_path(walk, start_s_m=s0)
            v = lane.speed_limit_mps * ctx.uniform(0.6, 0.95)
            ctx.add_vehicle(pid, 0.0, v * ctx.uniform(0.7, 1.0), v, background=True)
    _add_sidewalk_pedestrians(ctx, count=int(ctx.rng.integers(2, 7)))


def sidewalk_path(ctx: BuildContext, road: RoadHandle, right_side: bool) -> np.ndarray:
    """A walking line along the middle of the sidewalk on one side of a road, ``[P, 2]``."""
    p = ctx.layout.params
    two_way = bool(road.backward_lane_ids)
    parking = road.parking_forward_lane_id is not None or road.parking_backward_lane_id is not None
    right_m, left_m = kerb_offsets(p, two_way, parking)
    off = right_m - 0.5 * p.sidewalk_width_m if right_side else left_m + 0.5 * p.sidewalk_width_m
    return offset_polyline(road.reference, off)


def _add_sidewalk_pedestrians(ctx: BuildContext, count: int) -> None:
    # The highway ramp is a sequence of lanes, not a road with sidewalks of its own.
    roads = [r for r in ctx.layout.roads.values() if len(r.reference) > 4 and r.name != "ramp"]
    if not roads:
        return
    for _ in range(count):
        road = ctx.choice(sorted(roads, key=lambda r: r.name))
        line = sidewalk_path(ctx, road, right_side=bool(ctx.rng.integers(2)))
        if ctx.rng.integers(2):
            line = line[::-1]
        start = int(ctx.rng.integers(0, max(len(line) // 2, 1)))
        pts = line[start:]
        if len(pts) < 4:
            continue
        ctx.add_walker(pts, speed_mps=ctx.uniform(0.9, 1.6), cls=ActorClass.PEDESTRIAN, hold=False)


def add_crossing_walkers(ctx: BuildContext, count: int) -> int:
    """Add up to ``count`` pedestrians who cross the ego's route: each strolls along a sidewalk beside a
    random point 20-160 m along the route, steps off the kerb, crosses the carriageway at right angles to
    the route to the sidewalk on the other side and walks on along it. Returns how many were placed (a point
    without a sidewalk on both sides, e.g. on a highway, places none).

    Training data: outside the crossing scenarios every background pedestrian stays on a sidewalk, and
    students trained on such recordings learn that pedestrians stand on the pavement (results/pedestrians).
    Draws from ``ctx.rng`` only when ``count > 0``, so a route without crossing walkers is unchanged."""
    if count <= 0 or ctx.route is None or not ctx.map.sidewalks:
        return 0
    path = ctx.route.path
    lo, hi = CROSSING_AT_ROUTE_M[0], min(CROSSING_AT_ROUTE_M[1], path.length_m - 5.0)
    if hi <= lo:
        return 0
    offsets = np.arange(-CROSSING_SCAN_M, CROSSING_SCAN_M + 1e-6, 0.5)  # lateral, + = left of the route

    def on_walk(points: np.ndarray) -> np.ndarray:
        inside = np.zeros(len(points), dtype=bool)
        for polygon in ctx.map.sidewalks:
            inside |= points_in_polygon(points, polygon)
        return inside

    placed = 0
    for _ in range(count):
        s_m = ctx.uniform(lo, hi)
        stroll, sign = ctx.uniform(*CROSSING_STROLL_M), 1.0 if ctx.rng.integers(2) else -1.0
        from_right, speed = bool(ctx.rng.integers(2)), ctx.uniform(*CROSSING_SPEED_MPS)
        i = min(int(np.searchsorted(path.s, s_m)), len(ctx.route.lane_of_point) - 1)
        if ctx.map.lanes[int(ctx.route.lane_of_point[i])].junction_id is not None:
            continue  # not inside a junction: the far side there is another arm's corner
        heading = float(path.heading_at(s_m))
        along = np.array([np.cos(heading), np.sin(heading)])
        left = np.array([-along[1], along[0]])
        centre = path.point_at(s_m)
        walk = on_walk(centre + offsets[:, None] * left)
        right_kerb, left_kerb = offsets[(offsets < 0) & walk], offsets[(offsets > 0) & walk]
        if not len(right_kerb) or not len(left_kerb):
            continue
        a, b = (right_kerb.max(), left_kerb.min()) if from_right else (left_kerb.min(), right_kerb.max())
        # from 1 m inside one sidewalk across to 1 m inside the other; a stroll before, a walk on after
        kerb_a, kerb_b = centre + (a + np.sign(a)) * left, centre + (b + np.sign(b)) * left
        ends = np.stack(
            [kerb_a, kerb_b, kerb_a - sign * stroll * along, kerb_b + sign * CROSSING_WALK_ON_M * along]
        )
        ok = on_walk(ends)
        if not ok[0] or not ok[1]:
            continue
        points = [kerb_a, kerb_b]
        if ok[2] and stroll > 0.5:
            points.insert(0, ends[2])
        points.append(ends[3] if ok[3] else kerb_b + 0.5 * sign * along)  # ends on a sidewalk, off the road
        ctx.add_walker(np.stack(points), speed_mps=speed, cls=ActorClass.PEDESTRIAN, hold=False)
        placed += 1
    return placed


def build_busy_world(family: str, n_actors: int, seed: int = 0) -> BuildContext:
    """A layout, the ego on a route, and background traffic up to about ``n_actors`` actors (benchmarks)."""
    from riskdistill.sim.layouts import LayoutParams
    from riskdistill.sim.road_layouts import build_layout

    layout = build_layout(LayoutParams(family=family, lanes_per_direction=2, seed=seed))
    ctx = BuildContext(layout, np.random.default_rng(seed))
    ctx.set_route([layout.road_map.driving_lanes()[0].id], 5.0, None)
    density = 1.0
    while ctx.world.actors.n < n_actors and density < 20:
        add_background_traffic(ctx, density)
        density *= 1.5
    return ctx
