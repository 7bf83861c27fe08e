"""Background traffic: vehicles wandering the lane graph, parked cars and pedestrians on sidewalks."""

from __future__ import annotations

import numpy as np

from riskdistill.sim.layouts import RoadHandle, kerb_offsets
from riskdistill.sim.roadmap import LaneKind, offset_polyline
from riskdistill.sim.scenarios.base import BuildContext
from riskdistill.types import ActorClass

MIN_SPAWN_SPACING_M = 12.0
EGO_CLEARANCE_M = 25.0


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
