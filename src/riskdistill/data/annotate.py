"""Per-frame annotations from ground truth: actors, map elements, traffic lights, the ego's future.

Everything is expressed in the ego frame of the frame (origin on the ground below the rear axle, x forward,
y left, z up). The keys and shapes are listed in :data:`riskdistill.data.format.ANNOTATION_KEYS`.
"""

from __future__ import annotations

import numba
import numpy as np

from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M
from riskdistill.data.format import LANE_KIND_CODES, MARKING_KIND_CODES, NO_ID, NO_STATE
from riskdistill.geometry import wrap_angle
from riskdistill.sim.roadmap import LANE_SAMPLE_SPACING_M, RoadMap, resample_polyline
from riskdistill.sim.route import Route
from riskdistill.sim.world import DESPAWN_XY_M, World


# ------------------------------------------------------------------------------------------ instance masks
@numba.njit(cache=True)
def _mask_stats_kernel(instance: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray]:
    n_cam, height, width = instance.shape
    count = np.zeros((n_ids, n_cam), dtype=np.int32)
    box = np.empty((n_ids, n_cam, 4), dtype=np.int32)
    box[:, :, 0] = width
    box[:, :, 1] = height
    box[:, :, 2] = -1
    box[:, :, 3] = -1
    for c in range(n_cam):
        for v in range(height):
            for u in range(width):
                i = instance[c, v, u]
                if i < 0 or i >= n_ids:
                    continue
                count[i, c] += 1
                if u < box[i, c, 0]:
                    box[i, c, 0] = u
                if v < box[i, c, 1]:
                    box[i, c, 1] = v
                if u > box[i, c, 2]:
                    box[i, c, 2] = u
                if v > box[i, c, 3]:
                    box[i, c, 3] = v
    return count, box


def mask_stats(instance: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray]:
    """Per instance id and camera: pixel count ``[n_ids, N]`` int32 and the mask's 2D box ``[n_ids, N, 4]``
    float32 as ``x0, y0, x1, y1`` with ``x1, y1`` exclusive (pixel ``u`` covers ``[u, u + 1)``), NaN where the
    id has no pixel. ``instance`` is ``[N, H, W]`` (ids < 0 or >= n_ids are ignored)."""
    inst = np.ascontiguousarray(instance, dtype=np.int32)
    if inst.ndim != 3:
        raise ValueError(f"mask_stats: instance must be [N, H, W], got shape {inst.shape}")
    count, box = _mask_stats_kernel(inst, int(n_ids))
    boxf = box.astype(np.float32)
    boxf[..., 2:] += 1.0
    boxf[count == 0] = np.nan
    return count, boxf


# ------------------------------------------------------------------------------------------ ego future
def future_in_ego(
    poses: np.ndarray, step: int, n_waypoints: int, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ego's future from a rollout: poses at steps ``step + stride * (1..n)`` in the ego frame of step.

    ``poses`` ``[T, 3]`` are rear-axle ``x, y, yaw`` per simulation step. Returns ``xy [n, 2]``, ``yaw [n]``
    (relative headings) and ``valid [n]``; waypoints past the end of the rollout are invalid and hold the
    last valid waypoint (the current pose if none), so the arrays stay finite.
    """
    poses = np.asarray(poses, dtype=np.float64)
    x0, y0, yaw0 = poses[step]
    idx = step + stride * np.arange(1, n_waypoints + 1)
    valid = idx < len(poses)
    idx = np.minimum(idx, len(poses) - 1)
    last = int(np.flatnonzero(valid)[-1]) if valid.any() else -1
    fut = poses[idx].copy()
    if last < n_waypoints - 1:
        fut[last + 1 :] = poses[step] if last < 0 else fut[last]
    c, s = np.cos(yaw0), np.sin(yaw0)
    dx, dy = fut[:, 0] - x0, fut[:, 1] - y0
    xy = np.stack([c * dx + s * dy, -s * dx + c * dy], axis=1)
    yaw = wrap_angle(fut[:, 2] - yaw0)
    return xy.astype(np.float32), np.asarray(yaw, dtype=np.float32), valid


# ------------------------------------------------------------------------------------------ helpers
def _to_ego(xy: np.ndarray, ex: float, ey: float, c: float, s: float) -> np.ndarray:
    dx, dy = xy[..., 0] - ex, xy[..., 1] - ey
    return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)


class _PolylineBank:
    """Many world-frame polylines packed into one array, to cut the pieces within a radius fast."""

    def __init__(self, polylines: list[list[np.ndarray]]):
        # polylines[k] = [main [P, 2], aligned extra [P, 2], ...]: the first decides what is in range
        self.n = len(polylines)
        self.n_channels = len(polylines[0]) if polylines else 1
        if not polylines:
            self.points = np.zeros((self.n_channels, 0, 2))
            self.owner = np.zeros(0, dtype=np.int64)
            self.first = self.last = np.zeros(0, dtype=bool)
            return
        self.points = np.stack([np.concatenate([p[ch] for p in polylines]) for ch in range(self.n_channels)])
        lengths = np.array([len(p[0]) for p in polylines])
        self.owner = np.repeat(np.arange(self.n), lengths)
        ends = np.cumsum(lengths)
        self.first = np.zeros(ends[-1], dtype=bool)
        self.last = np.zeros(ends[-1], dtype=bool)
        self.first[ends - lengths] = True
        self.last[ends - 1] = True

    def pieces(
        self, ex: float, ey: float, c: float, s: float, range_m: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Contiguous runs (>= 2 points) within ``range_m``: owner ``[R]``, counts ``[R]``, and the ego-frame
        points ``[channels, R, P_max, 2]`` NaN-padded."""
        if self.points.shape[1] == 0:
            return (
                np.zeros(0, np.int64),
                np.zeros(0, np.int32),
                np.zeros((self.n_channels, 0, 0, 2), np.float32),
            )
        main = self.points[0]
        d2 = (main[:, 0] - ex) ** 2 + (main[:, 1] - ey) ** 2
        inr = d2 <= range_m * range_m
        prev = np.concatenate([[False], inr[:-1]])
        nxt = np.concatenate([inr[1:], [False]])
        starts = np.flatnonzero(inr & (self.first | ~prev))
        stops = np.flatnonzero(inr & (self.last | ~nxt)) + 1
        lengths = stops - starts
        keep = lengths >= 2
        starts, lengths = starts[keep], lengths[keep]
        if len(starts) == 0:
            return (
                np.zeros(0, np.int64),
                np.zeros(0, np.int32),
                np.zeros((self.n_channels, 0, 0, 2), np.float32),
            )
        p_max = int(lengths.max())
        ar = np.arange(p_max)
        idx = starts[:, None] + ar[None, :]
        ok = ar[None, :] < lengths[:, None]
        idx = np.where(ok, idx, starts[:, None])
        pts = _to_ego(self.points[:, idx], ex, ey, c, s).astype(np.float32)  # [ch, R, P, 2]
        pts[:, ~ok] = np.nan
        return self.owner[starts], lengths.astype(np.int32), pts


# ------------------------------------------------------------------------------------------ the annotator
class FrameAnnotator:
    """Builds the annotation arrays of one route's frames (the static map is indexed once per route)."""

    def __init__(
        self,
        road_map: RoadMap,
        route: Route,
        *,
        actor_range_m: float = 75.0,
        map_range_m: float = 60.0,
        map_point_spacing_m: float = 1.0,
    ):
        self.map = road_map
        self.route = route
        self.actor_range_m = float(actor_range_m)
        self.map_range_m = float(map_range_m)
        stride = max(1, round(map_point_spacing_m / LANE_SAMPLE_SPACING_M))
        lanes = sorted(road_map.lanes.values(), key=lambda ln: ln.id)
        polys = []
        for lane in lanes:
            p = len(lane.centerline)
            keep = np.unique(np.concatenate([np.arange(0, p, stride), [p - 1]]))
            left, right = lane.boundaries()
            polys.append([lane.centerline[keep], left[keep], right[keep]])
        self._lanes = _PolylineBank(polys)
        self._lane_id = np.array([ln.id for ln in lanes], dtype=np.int32)
        self._lane_kind = np.array([LANE_KIND_CODES[str(ln.kind)] for ln in lanes], dtype=np.int8)
        self._lane_junction = np.array([ln.junction_id is not None for ln in lanes], dtype=bool)
        self._lane_turn = np.array([int(ln.turn) for ln in lanes], dtype=np.int8)
        self._lane_width = np.array([ln.width_m for ln in lanes], dtype=np.float32)
        self._lane_speed = np.array([ln.speed_limit_mps for ln in lanes], dtype=np.float32)
        marks = [mk for mk in road_map.markings if len(mk.polyline) >= 2]
        self._marks = _PolylineBank([[resample_polyline(mk.polyline, map_point_spacing_m)] for mk in marks])
        self._mark_kind = np.array([MARKING_KIND_CODES[str(mk.kind)] for mk in marks], dtype=np.int8)

        cws = sorted(road_map.crosswalks.values(), key=lambda cw: cw.id)
        self._cw_id = np.array([cw.id for cw in cws], dtype=np.int32)
        self._cw_poly = (
            np.stack([np.asarray(cw.polygon, dtype=np.float64)[:4] for cw in cws])
            if cws
            else np.zeros((0, 4, 2))
        )
        sls = sorted(road_map.stop_lines.values(), key=lambda sl: sl.id)
        self._sl_id = np.array([sl.id for sl in sls], dtype=np.int32)
        self._sl_lane = np.array([sl.lane_id for sl in sls], dtype=np.int32)
        self._sl_light = np.array(
            [NO_ID if sl.traffic_light_id is None else sl.traffic_light_id for sl in sls], dtype=np.int32
        )
        self._sl_sign = np.array(
            [bool(sl.stop_sign) and sl.traffic_light_id is None for sl in sls], dtype=bool
        )
        self._sl_pts = np.stack([np.stack([sl.p0, sl.p1]) for sl in sls]) if sls else np.zeros((0, 2, 2))
        lights = sorted(road_map.traffic_lights.values(), key=lambda tl: tl.id)
        self._tl_id = np.array([tl.id for tl in lights], dtype=np.int32)
        self._tl_xy = np.array([tl.position for tl in lights], dtype=np.float64).reshape(-1, 2)
        self._tl_h = np.array([tl.height_m for tl in lights], dtype=np.float64)
        self._tl_yaw = np.array([tl.yaw for tl in lights], dtype=np.float64)

        # stop lines on the route, by arc length along the route path
        route_lanes = route.route_lanes_set()
        on_route = []
        for sl in sls:
            if sl.lane_id not in route_lanes:
                continue
            lane = road_map.lanes[sl.lane_id]
            s_on, lat = route.path.project(lane.point_at(sl.s_m))
            if abs(lat) <= 0.5 * lane.width_m + 1.0:
                on_route.append((s_on, sl.id, NO_ID if sl.traffic_light_id is None else sl.traffic_light_id))
        on_route.sort()
        self._route_stops = on_route

    # --------------------------------------------------------------------------------------------
    def annotate(self, world: World, progress_m: float, instance: np.ndarray) -> dict[str, np.ndarray]:
        """Every annotation key except the future trajectory and the calibration (see the recorder)."""
        e = world.ego
        ex, ey, eyaw = float(e.x_m), float(e.y_m), float(e.yaw_rad)
        c, s = np.cos(eyaw), np.sin(eyaw)
        out: dict[str, np.ndarray] = {}
        a = world.actors
        n = a.n
        out["ego_pose_world"] = np.array([ex, ey, eyaw], dtype=np.float64)
        out["ego_center_ego"] = np.array(
            [EGO_REAR_AXLE_TO_CENTER_M, 0.0, 0.5 * a.height[0]], dtype=np.float32
        )
        out["ego_size_lwh"] = np.array([a.length[0], a.width[0], a.height[0]], dtype=np.float32)

        # ---- actors
        count, box = mask_stats(instance, n)
        xy = _to_ego(np.stack([a.x[:n], a.y[:n]], axis=1), ex, ey, c, s)
        in_range = (xy[:, 0] ** 2 + xy[:, 1] ** 2 <= self.actor_range_m**2) & (
            np.abs(a.x[:n]) < 0.5 * DESPAWN_XY_M
        )
        sel = np.flatnonzero(in_range | (count.sum(axis=1) > 0))
        sel = sel[sel != 0]  # never the ego
        vel = a.velocity_xy()[sel]
        out["actor_id"] = a.id[sel].astype(np.int32)
        out["actor_class"] = a.cls[sel].astype(np.int32)
        out["actor_behavior"] = a.behavior[sel].astype(np.int32)
        out["actor_center_ego"] = np.concatenate([xy[sel], 0.5 * a.height[sel, None]], axis=1).astype(
            np.float32
        )
        out["actor_size_lwh"] = np.stack([a.length[sel], a.width[sel], a.height[sel]], axis=1).astype(
            np.float32
        )
        out["actor_yaw_ego"] = np.asarray(wrap_angle(a.yaw[sel] - eyaw), dtype=np.float32)
        out["actor_velocity_ego"] = np.stack(
            [c * vel[:, 0] + s * vel[:, 1], -s * vel[:, 0] + c * vel[:, 1]], axis=1
        ).astype(np.float32)
        out["actor_visible_px"] = count[sel]
        out["actor_box2d"] = box[sel]

        # ---- map
        r = self.map_range_m
        owner, npts, pts = self._lanes.pieces(ex, ey, c, s, r)
        out["lane_id"] = self._lane_id[owner]
        out["lane_kind"] = self._lane_kind[owner]
        out["lane_is_junction"] = self._lane_junction[owner]
        out["lane_turn"] = self._lane_turn[owner]
        out["lane_width_m"] = self._lane_width[owner]
        out["lane_speed_limit_mps"] = self._lane_speed[owner]
        out["lane_n_points"] = npts
        out["lane_centerline"], out["lane_left_boundary"], out["lane_right_boundary"] = pts[0], pts[1], pts[2]
        owner, npts, pts = self._marks.pieces(ex, ey, c, s, r)
        out["marking_kind"] = self._mark_kind[owner] if len(self._mark_kind) else np.zeros(0, np.int8)
        out["marking_n_points"] = npts
        out["marking_polyline"] = pts[0]

        cw = _to_ego(self._cw_poly, ex, ey, c, s)
        near = (cw[..., 0] ** 2 + cw[..., 1] ** 2 <= r * r).any(axis=1) if len(cw) else np.zeros(0, bool)
        out["crosswalk_id"] = self._cw_id[near]
        out["crosswalk_polygon"] = cw[near].astype(np.float32).reshape(-1, 4, 2)
        sl = _to_ego(self._sl_pts, ex, ey, c, s)
        near = (sl[..., 0] ** 2 + sl[..., 1] ** 2 <= r * r).any(axis=1) if len(sl) else np.zeros(0, bool)
        out["stop_line_id"] = self._sl_id[near]
        out["stop_line_lane_id"] = self._sl_lane[near]
        out["stop_line_light_id"] = self._sl_light[near]
        out["stop_line_is_stop_sign"] = self._sl_sign[near]
        out["stop_line_points"] = sl[near].astype(np.float32).reshape(-1, 2, 2)
        tl = _to_ego(self._tl_xy, ex, ey, c, s)
        near = tl[:, 0] ** 2 + tl[:, 1] ** 2 <= r * r
        out["light_id"] = self._tl_id[near]
        out["light_position_ego"] = np.concatenate([tl[near], self._tl_h[near, None]], axis=1).astype(
            np.float32
        )
        out["light_yaw_ego"] = np.asarray(wrap_angle(self._tl_yaw[near] - eyaw), dtype=np.float32)
        out["light_state"] = np.array(
            [int(world.light_state(int(i))) for i in out["light_id"]], dtype=np.int8
        )

        # ---- the next stop line on the route
        front_s = progress_m + 0.5 * float(a.length[0])
        nxt = next(((s_on, sid, lid) for s_on, sid, lid in self._route_stops if s_on >= front_s), None)
        if nxt is None:
            sid, dist, state = NO_ID, np.nan, NO_STATE
        else:
            sid, dist = nxt[1], nxt[0] - front_s
            state = NO_STATE if nxt[2] == NO_ID else int(world.light_state(nxt[2]))
        out["route_next_stop_line_id"] = np.array(sid, dtype=np.int32)
        out["route_next_stop_distance_m"] = np.array(dist, dtype=np.float32)
        out["route_next_light_state"] = np.array(state, dtype=np.int32)
        return out
