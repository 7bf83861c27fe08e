"""Target builders: ground truth for the losses, computed from a frame's annotation (never model inputs).

Each builder is a small object with a ``name`` and ``build(frame, grid) -> dict[str, np.ndarray]``; the
keys of the dict are field names of :class:`riskdistill.contracts.batch.Targets`. Builders are looked up by
name in :data:`TARGET_BUILDERS` (:func:`make_target`); an unknown name raises an error listing the valid
ones.

- ``future_trajectory`` (:class:`FutureTrajectoryTarget`): ``future_waypoints [6, 2]``,
  ``future_yaw [6]``, ``future_valid [6]``;
- ``bev_occupancy`` (:class:`BevOccupancyTarget`): ``bev_occupancy [5, H_bev, W_bev]``, channels
  ``batch.BEV_CHANNELS``;
- ``risk_map`` (:class:`RiskMapTarget`): ``risk_map [1, H_bev, W_bev]`` read from the teacher's label
  folder.

A missing or malformed annotation field raises :class:`DataError` naming the file and the field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from PIL import Image, ImageDraw

from riskdistill.contracts import labels
from riskdistill.contracts.batch import BEV_CHANNELS
from riskdistill.data.storage import DataError, FrameRecord, ann_field, annotation_fields
from riskdistill.geometry import BevGrid
from riskdistill.registry import Registry
from riskdistill.types import ActorClass


class TargetBuilder(Protocol):
    name: str

    def build(self, frame: FrameRecord, grid: BevGrid) -> dict[str, np.ndarray]: ...


# ------------------------------------------------------------------------------------------ trajectory
#: Target builder classes by name (``name`` attribute = the ``Targets`` field family they fill).
TARGET_BUILDERS: Registry[type] = Registry("target")


class FutureTrajectoryTarget:
    """The expert's future rear-axle waypoints (``future_xy``, ``future_yaw``, ``future_valid``)."""

    name = "future_trajectory"

    def build(self, frame: FrameRecord, grid: BevGrid) -> dict[str, np.ndarray]:
        a = annotation_fields(frame, ("future_xy", "future_yaw", "future_valid"), self.name)
        xy = np.asarray(a["future_xy"], dtype=np.float32)
        yaw = np.asarray(a["future_yaw"], dtype=np.float32)
        valid = np.asarray(a["future_valid"], dtype=bool)
        path = frame.root / frame.annotation_path
        if xy.ndim != 2 or xy.shape[1] != 2 or yaw.shape != xy.shape[:1] or valid.shape != xy.shape[:1]:
            raise DataError(
                f"{path}: future_xy/future_yaw/future_valid have shapes {xy.shape}/{yaw.shape}/"
                f"{valid.shape}, expected [F, 2]/[F]/[F]"
            )
        if not np.all(np.isfinite(xy)):
            raise DataError(f"{path}: annotation field 'future_xy' contains NaN or inf")
        return {"future_waypoints": xy, "future_yaw": yaw, "future_valid": valid}


PLAN_PATH_POINTS = 20  # the expert's path label: points every metre ahead (data/record.py records 20)


class ExpertPlanTarget:
    """The expert's own plan at the frame, recorded as it drove: its path (``plan_path [P, 2]``, rear-axle
    points every metre ahead in the ego frame) and its target speed (``plan_speed_mps``). Unlike the driven
    future, it stays the expert's intention while recovery noise pushes the car off its line, and it says
    where the route goes while the car stands still. Data sets recorded without it (older recordings,
    imported real data) give ``plan_valid`` False and zeros."""

    name = "expert_plan"

    def build(self, frame: FrameRecord, grid: BevGrid) -> dict[str, np.ndarray]:
        ann = frame.annotation
        if "expert_path_ego" not in ann or "expert_speed_mps" not in ann:
            return {
                "plan_path": np.zeros((PLAN_PATH_POINTS, 2), dtype=np.float32),
                "plan_speed_mps": np.zeros(1, dtype=np.float32),
                "plan_valid": np.zeros(1, dtype=bool),
            }
        path = np.asarray(ann_field(frame, "expert_path_ego", self.name), dtype=np.float32)
        speed = np.asarray(ann_field(frame, "expert_speed_mps", self.name), dtype=np.float32).reshape(1)
        where = frame.root / frame.annotation_path
        if path.shape != (PLAN_PATH_POINTS, 2):
            raise DataError(
                f"{where}: expert_path_ego has shape {path.shape}, expected ({PLAN_PATH_POINTS}, 2)"
            )
        if not (np.all(np.isfinite(path)) and np.all(np.isfinite(speed))):
            raise DataError(f"{where}: expert_path_ego / expert_speed_mps contain NaN or inf")
        return {"plan_path": path, "plan_speed_mps": speed, "plan_valid": np.ones(1, dtype=bool)}


class ImageLabelsTarget:
    """Per-camera image labels (``data/image_labels.py``): ``image_semantics [N, h, w]`` int64 classes and
    ``image_depth_m [N, h, w]`` float32, for every camera of the frame (the data set keeps the model's
    cameras). Data sets recorded without them give ``image_valid`` False and empty maps."""

    name = "image_labels"
    per_camera = ("image_semantics", "image_depth_m")  # fields the data set reduces to the model's cameras

    def build(self, frame: FrameRecord, grid: BevGrid) -> dict[str, np.ndarray]:
        ann = frame.annotation
        if "image_semantics" not in ann or "image_depth_m" not in ann:
            n = len(frame.camera_names)
            return {
                "image_semantics": np.zeros((n, 1, 1), dtype=np.int64),
                "image_depth_m": np.zeros((n, 1, 1), dtype=np.float32),
                "image_valid": np.zeros(1, dtype=bool),
            }
        sem = np.asarray(ann_field(frame, "image_semantics", self.name)).astype(np.int64)
        depth = np.asarray(ann_field(frame, "image_depth_m", self.name)).astype(np.float32)
        if sem.ndim != 3 or depth.shape != sem.shape or len(sem) != len(frame.camera_names):
            where = frame.root / frame.annotation_path
            raise DataError(
                f"{where}: image_semantics {sem.shape} / image_depth_m {depth.shape} are not [N, h, w] for "
                f"{len(frame.camera_names)} cameras"
            )
        return {"image_semantics": sem, "image_depth_m": depth, "image_valid": np.ones(1, dtype=bool)}


# ------------------------------------------------------------------------------------------ occupancy
#: The occupancy channel (index into ``BEV_CHANNELS``) of each actor class that has one.
OCCUPANCY_CHANNEL_OF_CLASS = {
    **{int(c): 0 for c in ActorClass if c.is_vehicle},
    **{int(c): 1 for c in ActorClass if c.is_vulnerable},
    **{int(c): 2 for c in ActorClass if c.is_static_obstacle},
}


def box_footprint_mask(
    grid: BevGrid, center_xy: np.ndarray, size_lw: np.ndarray, yaw: np.ndarray
) -> np.ndarray:
    """``[A, H_bev, W_bev]`` bool: cells whose centre lies inside each oriented ego-frame box, plus the cell
    holding the box centre (so an actor smaller than a cell is never lost). Each actor is tested only on
    the cells of its bounding window (vectorised inside the window)."""
    n_rows, n_cols = grid.shape
    out = np.zeros((len(center_xy), n_rows, n_cols), dtype=bool)
    res = grid.resolution_m
    for a, (c, s, th) in enumerate(zip(center_xy, size_lw, yaw, strict=True)):
        half = np.abs(s) / 2.0
        cos, sin = math.cos(th), math.sin(th)
        ext_x = abs(cos) * half[0] + abs(sin) * half[1]
        ext_y = abs(sin) * half[0] + abs(cos) * half[1]
        r0 = max(math.floor((grid.x_max_m - (c[0] + ext_x)) / res), 0)
        r1 = min(math.ceil((grid.x_max_m - (c[0] - ext_x)) / res), n_rows)
        c0 = max(math.floor((grid.y_max_m - (c[1] + ext_y)) / res), 0)
        c1 = min(math.ceil((grid.y_max_m - (c[1] - ext_y)) / res), n_cols)
        if r0 < r1 and c0 < c1:
            rows = np.arange(r0, r1) + 0.5
            cols = np.arange(c0, c1) + 0.5
            x = (grid.x_max_m - rows * res)[:, None] - c[0]
            y = (grid.y_max_m - cols * res)[None, :] - c[1]
            u = x * cos + y * sin  # box axes
            v = -x * sin + y * cos
            out[a, r0:r1, c0:c1] = (np.abs(u) <= half[0]) & (np.abs(v) <= half[1])
        rc = grid.metric_to_index(c[:2])
        i, j = math.floor(rc[0]), math.floor(rc[1])
        if 0 <= i < n_rows and 0 <= j < n_cols:
            out[a, i, j] = True
    return out


def _polyline_px(grid: BevGrid, pts: np.ndarray) -> list[float]:
    """Ego-frame points -> PIL pixel coordinates (x = col, y = row; PIL puts integer coords on pixel
    centres, our continuous index puts them on cell corners, hence the -0.5); flat [x0, y0, x1, y1, ...]."""
    rc = grid.metric_to_index(pts) - 0.5
    return rc[:, ::-1].ravel().tolist()


def drivable_mask(
    grid: BevGrid, lane_left_boundary: np.ndarray, lane_right_boundary: np.ndarray, lane_n_points: np.ndarray
) -> np.ndarray:
    """``[H, W]`` float32 in {0, 1}: every lane piece of the annotation (``[L, P, 2]`` left and right edges in
    the ego frame, ``[L]`` valid points each) filled between its edges, on the grid."""
    n_rows, n_cols = grid.shape
    drivable = Image.new("L", (n_cols, n_rows), 0)
    draw = ImageDraw.Draw(drivable)
    left = np.asarray(lane_left_boundary, dtype=np.float64)
    right = np.asarray(lane_right_boundary, dtype=np.float64)
    for lb, rb, n in zip(left, right, np.asarray(lane_n_points), strict=True):
        n = int(n)
        if n < 2:
            continue
        poly = np.concatenate([lb[:n], rb[:n][::-1]])
        poly = poly[np.all(np.isfinite(poly), axis=1)]
        if len(poly) >= 3:
            draw.polygon(_polyline_px(grid, poly), fill=1, outline=1)
    return np.asarray(drivable, dtype=np.float32)


class BevOccupancyTarget:
    """``bev_occupancy [5, H_bev, W_bev]`` float32 in {0, 1} on the ``BevGrid`` (row 0 = front, col 0 =
    left). Channels (``batch.BEV_CHANNELS``):

    0. ``vehicle``: footprints of cars, vans, trucks, buses, emergency vehicles;
    1. ``vulnerable``: pedestrians and cyclists;
    2. ``static_obstacle``: cones, barriers, open doors;
    3. ``drivable``: every lane piece (driving and parking), filled between its left and right edges;
    4. ``lane_marking``: painted lines, one cell wide.

    Actor footprints are the oriented boxes (centre, length, width, yaw) in the ego frame; a cell is
    occupied when its centre is inside the box, and the cell holding the box centre always is. The ego
    itself is never an actor, so it is not in the vehicle channel.
    """

    name = "bev_occupancy"
    channels: ClassVar[tuple[str, ...]] = BEV_CHANNELS
    FIELDS: ClassVar[tuple[str, ...]] = (
        "actor_id",
        "actor_class",
        "actor_center_ego",
        "actor_size_lwh",
        "actor_yaw_ego",
        "lane_left_boundary",
        "lane_right_boundary",
        "lane_n_points",
        "marking_polyline",
        "marking_n_points",
    )

    def build(self, frame: FrameRecord, grid: BevGrid) -> dict[str, np.ndarray]:
        n_rows, n_cols = grid.shape
        occ = np.zeros((len(self.channels), n_rows, n_cols), dtype=np.float32)
        a = annotation_fields(frame, self.FIELDS, self.name)  # one check of shapes, sizes and NaN
        cls = np.asarray(a["actor_class"])
        center = np.asarray(a["actor_center_ego"], dtype=np.float64)
        size = np.asarray(a["actor_size_lwh"], dtype=np.float64)
        yaw = np.asarray(a["actor_yaw_ego"], dtype=np.float64)
        if len(cls):
            masks = box_footprint_mask(grid, center[:, :2], size[:, :2], yaw)
            groups = np.array([OCCUPANCY_CHANNEL_OF_CLASS.get(int(c), -1) for c in cls])
            for g in range(3):
                sel = groups == g
                if sel.any():
                    occ[g] = masks[sel].any(axis=0)

        occ[3] = drivable_mask(grid, a["lane_left_boundary"], a["lane_right_boundary"], a["lane_n_points"])

        marks = Image.new("L", (n_cols, n_rows), 0)
        draw = ImageDraw.Draw(marks)
        lines = np.asarray(a["marking_polyline"], dtype=np.float64)
        m_pts = np.asarray(a["marking_n_points"])
        for line, n in zip(lines, m_pts, strict=True):
            pts = line[: int(n)]
            pts = pts[np.all(np.isfinite(pts), axis=1)]
            if len(pts) >= 2:
                draw.line(_polyline_px(grid, pts), fill=1, width=1)
        occ[4] = np.asarray(marks, dtype=np.float32)
        return {"bev_occupancy": occ}


# ------------------------------------------------------------------------------------------ risk map
class RiskMapTarget:
    """The teacher's per-frame risk map: the interface the teacher issue fills.

    Layout of ``label_dir`` (:mod:`riskdistill.contracts.labels`; written by the teacher's labelling job,
    next to the data set by default: ``<dataset>/labels/risk``)::

        label_dir/meta.json                    optional: {"grid": {x_min_m, x_max_m, y_min_m, y_max_m,
                                               resolution_m}}; checked against the data set's grid
        label_dir/maps/<route_id>/<step>.npy   one map per frame, i.e. maps/<frame_id>.npy; float16
                                               (any float accepted) [H_bev, W_bev] or [1, H_bev, W_bev]
                                               on the BevGrid layout (row 0 = front, col 0 = left)

    ``build`` returns ``risk_map [1, H_bev, W_bev]`` float32. A missing label folder, a missing map, a map
    of the wrong shape or with NaN raises :class:`DataError` naming the file.
    """

    name = "risk_map"

    def __init__(self, label_dir: str | Path):
        self.label_dir = Path(label_dir)
        self._meta_checked_for: BevGrid | None = None

    def check(self, grid: BevGrid) -> None:
        """Raise :class:`DataError` when the label folder is missing or was made for another grid."""
        if not labels.has_risk_maps(self.label_dir):
            raise DataError(
                f"{self.label_dir / labels.MAPS}: missing; the 'risk_map' target needs the teacher's risk "
                "labels "
                f"(label_dir/maps/<frame_id>.npy, see riskdistill.data.targets.RiskMapTarget)"
            )
        meta_path = self.label_dir / labels.META_JSON
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            g = meta.get("grid")
            if g is not None:
                want = {k: getattr(grid, k) for k in g}
                if any(not math.isclose(float(g[k]), float(want[k])) for k in g):
                    raise DataError(
                        f"{meta_path}: risk labels were made on grid {g}, the data set uses {want}"
                    )
        self._meta_checked_for = grid

    def build(self, frame: FrameRecord, grid: BevGrid) -> dict[str, np.ndarray]:
        if self._meta_checked_for != grid:
            self.check(grid)
        path = labels.risk_map_path(self.label_dir, frame.frame_id)
        if not path.is_file():
            raise DataError(f"{path}: missing risk map of frame {frame.frame_id!r} (target 'risk_map')")
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise DataError(f"{path}: unreadable risk map ({type(exc).__name__}: {exc})") from exc
        if arr.ndim == 2:
            arr = arr[None]
        if arr.shape != (1, *grid.shape):
            raise DataError(
                f"{path}: risk map has shape {arr.shape}, expected (1, {grid.n_rows}, {grid.n_cols})"
            )
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{path}: risk map contains NaN or inf")
        return {"risk_map": arr}


# ------------------------------------------------------------------------------------------ registry
TARGET_BUILDERS.register(FutureTrajectoryTarget)
TARGET_BUILDERS.register(ExpertPlanTarget)
TARGET_BUILDERS.register(ImageLabelsTarget)
TARGET_BUILDERS.register(BevOccupancyTarget)
TARGET_BUILDERS.register(RiskMapTarget)


def make_target(name: str, **kwargs: Any) -> TargetBuilder:
    """A target builder by name (``RiskMapTarget`` needs ``label_dir``); an unknown name lists the valid
    ones."""
    return TARGET_BUILDERS.get(name)(**kwargs)


# ------------------------------------------------------------------------------------------ rotation
def _rot2(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


_XY_KEYS = (
    "actor_center_ego",
    "actor_velocity_ego",
    "lane_centerline",
    "lane_left_boundary",
    "lane_right_boundary",
    "marking_polyline",
    "crosswalk_polygon",
    "stop_line_points",
    "light_position_ego",
    "future_xy",
    "ego_center_ego",
    "expert_path_ego",
    "route_ahead_ego",
    "actor_path_ego",
)
_YAW_KEYS = ("actor_yaw_ego", "light_yaw_ego", "future_yaw")


def rotate_annotation(ann: dict[str, np.ndarray], theta: float) -> dict[str, np.ndarray]:
    """The annotation seen from an ego frame rotated by ``-theta`` about z: every ego-frame point is
    rotated by ``theta`` (counter-clockwise), every heading gets ``+theta`` and ``T_ego_from_cam`` is
    premultiplied by the rotation, so images stay valid with their new extrinsics. ``theta = 0`` is the
    identity."""
    R = _rot2(theta)
    out = dict(ann)
    for k in _XY_KEYS:
        if k in ann:
            a = np.asarray(ann[k])
            xy = a[..., :2].astype(np.float64) @ R.T
            b = a.copy()
            b[..., :2] = xy.astype(a.dtype)
            out[k] = b
    for k in _YAW_KEYS:
        if k in ann:
            a = np.asarray(ann[k])
            out[k] = ((a.astype(np.float64) + theta + math.pi) % (2 * math.pi) - math.pi).astype(a.dtype)
    if "T_ego_from_cam" in ann:
        T = np.asarray(ann["T_ego_from_cam"])
        R4 = np.eye(4)
        R4[:2, :2] = R
        out["T_ego_from_cam"] = (R4 @ T.astype(np.float64)).astype(T.dtype)
    return out
