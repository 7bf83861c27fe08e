"""Per-frame annotations from ground truth: actors, map elements, traffic lights, the ego's future.

Everything is expressed in the ego frame of the frame (origin on the ground below the rear axle, x forward,
y left, z up). The keys and shapes are listed in :data:`riskdistill.data.format.ANNOTATION_KEYS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M
from riskdistill.data.format import (
    ACTOR_PATH_HORIZON_S,
    ACTOR_PATH_POINTS,
    LANE_KIND_CODES,
    MARKING_KIND_CODES,
    NO_ID,
    NO_STATE,
    ROUTE_AHEAD_POINTS,
    ROUTE_AHEAD_STEP_M,
)
from riskdistill.geometry import wrap_angle
from riskdistill.sim.actors import Behavior
from riskdistill.sim.roadmap import LANE_SAMPLE_SPACING_M, RoadMap, resample_polyline
from riskdistill.sim.route import Route
from riskdistill.sim.world import DESPAWN_XY_M, World

if TYPE_CHECKING:
    from riskdistill.sim.scenarios.base import ScenarioScript


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
    """Builds the annotation arrays of one route's frames (the static map is indexed once per route).

    With ``privileged=True`` it also writes the optional privileged keys
    (:data:`riskdistill.data.format.OPTIONAL_ANNOTATION_KEYS`: the route ahead, actor paths, scripted
    releases of ``script``, the scenario's ``hazards``), which only teachers, target builders and metrics
    read.
    """

    def __init__(
        self,
        road_map: RoadMap,
        route: Route,
        *,
        actor_range_m: float = 75.0,
        map_range_m: float = 60.0,
        map_point_spacing_m: float = 1.0,
        privileged: bool = True,
        script: ScenarioScript | None = None,
        hazards: dict[int, str] | None = None,
    ):
        self.map = road_map
        self.route = route
        self.privileged = privileged
        self.script = script
        self.hazard_ids = np.array(sorted(hazards or {}), dtype=np.int64)
        self._route_limit = np.array(
            [road_map.lanes[int(lid)].speed_limit_mps for lid in route.lane_of_point], dtype=np.float32
        )
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
        if self.privileged:
            out.update(self._privileged(world, progress_m, sel, ex, ey, c, s))
        return out

    def _privileged(
        self, world: World, progress_m: float, sel: np.ndarray, ex: float, ey: float, c: float, s: float
    ) -> dict[str, np.ndarray]:
        """The optional privileged keys (``format.OPTIONAL_ANNOTATION_KEYS``) of the selected actors."""
        out: dict[str, np.ndarray] = {}
        path = self.route.path
        s_rear, _ = path.project(np.array([ex, ey]), s_hint=progress_m, window_m=15.0)
        s_pts = np.minimum(s_rear + ROUTE_AHEAD_STEP_M * np.arange(ROUTE_AHEAD_POINTS), path.length_m)
        out["route_ahead_ego"] = _to_ego(path.point_at(s_pts), ex, ey, c, s).astype(np.float32)
        k = np.clip(np.searchsorted(path.s, s_pts), 0, len(self._route_limit) - 1)
        out["route_ahead_speed_limit_mps"] = self._route_limit[k]

        a = world.actors
        n_sel = len(sel)
        release_in = np.full(n_sel, np.nan, dtype=np.float32)
        release_v = np.full(n_sel, np.nan, dtype=np.float32)
        if self.script is not None:
            from riskdistill.sim.scenarios.base import pending_releases

            pos = {int(i): j for j, i in enumerate(sel.tolist())}
            for actor, (trig_s, speed) in pending_releases(self.script).items():
                j = pos.get(actor)
                if j is not None:
                    release_in[j] = max(trig_s - progress_m, 0.0)
                    release_v[j] = a.desired_speed[actor] if speed is None else speed
        out["actor_accel_mps2"] = a.accel[sel].astype(np.float32)
        out["actor_release_in_m"] = release_in
        out["actor_release_speed_mps"] = release_v

        # paths ahead of the actors that follow one (vehicles, walkers): ACTOR_PATH_POINTS points covering
        # what the fastest of current / desired / release speed drives in ACTOR_PATH_HORIZON_S
        beh = a.behavior[sel]
        on_path = ((beh == Behavior.VEHICLE) | (beh == Behavior.WALKER)) & (a.path_id[sel] >= 0)
        v_max = np.fmax(np.maximum(np.abs(a.speed[sel]), a.desired_speed[sel]), np.nan_to_num(release_v))
        step = np.where(
            on_path, np.maximum(v_max * ACTOR_PATH_HORIZON_S + 4.0, 4.0) / (ACTOR_PATH_POINTS - 1), 0.0
        )
        pts = np.repeat(np.stack([a.x[sel], a.y[sel]], axis=1)[:, None, :], ACTOR_PATH_POINTS, axis=1)
        if on_path.any():
            idx = np.flatnonzero(on_path)
            pid = a.path_id[sel[idx]]
            s_along = a.s[sel[idx], None] + step[idx, None] * np.arange(ACTOR_PATH_POINTS)[None, :]
            pid_b = np.broadcast_to(pid[:, None], s_along.shape)
            # where the box centre will be: between the axle points on the path, as World places it
            hw = np.where(beh[idx] == Behavior.VEHICLE, 0.3 * a.length[sel[idx]], 0.25)[:, None]
            pts[idx] = 0.5 * (
                world.paths.interp(pid_b, s_along + hw) + world.paths.interp(pid_b, s_along - hw)
            )
        out["actor_path_ego"] = (
            _to_ego(pts, ex, ey, c, s).astype(np.float32).reshape(n_sel, ACTOR_PATH_POINTS, 2)
        )
        out["actor_path_step_m"] = step.astype(np.float32)
        out["actor_is_hazard"] = np.isin(a.id[sel], self.hazard_ids)
        return out


# ------------------------------------------------------------------------------------------ no cameras
def annotate_route(
    instance: Any,
    every_n_steps: int = 5,
    max_steps: int | None = None,
    future_waypoints: int = 6,
    future_dt_s: float = 0.5,
) -> list[tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Drive the privileged expert through a :class:`~riskdistill.sim.scenarios.ScenarioInstance` without
    rendering cameras and annotate every ``every_n_steps``-th step (as the recorder does, with no camera:
    ``actor_visible_px`` / ``actor_box2d`` have zero columns). Returns ``(meta, annotation)`` per frame;
    ``meta`` holds ``step``, ``ego_speed_mps``, ``route_progress_m``, and ``expert_reason`` (what limited
    the expert's speed right after the frame, as in ``frames.parquet``) and ``expert_brake`` (its brake
    command then, 0..1). For label-quality studies that need
    annotations, not images (``benchmarks/bench_hazard_recall.py``)."""
    from riskdistill.sim.expert import ExpertDriver
    from riskdistill.sim.rollout import run_route

    world = instance.world
    annotator = FrameAnnotator(world.map, instance.route, script=instance.script, hazards=instance.hazards)
    no_camera = np.zeros((0, 1, 1), dtype=np.int32)
    poses: list[tuple[float, float, float]] = []
    frames: list[tuple[dict[str, Any], dict[str, np.ndarray]]] = []

    reasons: list[str] = []
    brakes: list[float] = []

    class Annotate:  # a route observer: the annotation every n-th step, the expert's reason and brake always
        def on_start(self, env: Any, driver: Any) -> None:
            self.driver = driver

        def on_step(self, env: Any, inp: Any, action: Any) -> None:
            reasons.append(str(getattr(self.driver, "last_reason", "") or ""))
            brakes.append(float(action.controls.clipped().brake) if action.controls is not None else 0.0)
            k = len(poses)
            e = env.world.ego
            poses.append((float(e.x_m), float(e.y_m), float(e.yaw_rad)))
            if k % every_n_steps:
                return
            meta = {
                "step": k,
                "ego_speed_mps": float(inp.ego.speed_mps),
                "route_progress_m": float(env.progress_m),
            }
            frames.append((meta, annotator.annotate(env.world, env.progress_m, no_camera)))

    run_route(instance, ExpertDriver, observers=[Annotate()], max_steps=max_steps)
    poses.append((float(world.ego.x_m), float(world.ego.y_m), float(world.ego.yaw_rad)))
    pose_arr = np.asarray(poses, dtype=np.float64)
    stride = max(1, round(future_dt_s / world.dt_s))
    for meta, ann in frames:
        k = meta["step"]
        meta["expert_reason"] = reasons[k] if k < len(reasons) else ""
        meta["expert_brake"] = brakes[k] if k < len(brakes) else 0.0
        fxy, fyaw, fvalid = future_in_ego(pose_arr, meta["step"], future_waypoints, stride)
        ann.update(future_xy=fxy, future_yaw=fyaw, future_valid=fvalid)
    return frames
