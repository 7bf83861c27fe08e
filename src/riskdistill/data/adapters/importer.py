"""Import real driving data (Bench2Drive clips, nuScenes scenes) as a recorded data set (format v1).

    from riskdistill.data.adapters.import_bench2drive import import_bench2drive
    from riskdistill.data.adapters.import_nuscenes import import_nuscenes
    import_bench2drive(["/data/b2d/Accident_Town03_Route101_Weather23"], "data/b2d", every_n_steps=5)
    import_nuscenes("/data/sets/nuscenes", "v1.0-mini", "data/nus-mini", scenes=["scene-0061"])

This module is the part the sources share: the format-filling, the pose-track helpers and the writer
(:func:`run_import`); ``import_bench2drive.py`` and ``import_nuscenes.py`` turn their reader's frames into
:class:`SourceFrame` / :class:`SourceRoute`.

The result is what ``riskdistill sim record`` writes (``docs/data-format.md``): ``frames.parquet``, JPEG
images, ``.npz`` annotations with every key of :data:`riskdistill.data.format.ANNOTATION_KEYS` and a manifest
with the sha256 of every file, so labelling, training and open-loop evaluation run on it unchanged. The
readers of :mod:`.bench2drive` and :mod:`.nuscenes` do every axis and unit conversion; this module only
fills the format. The index and manifest are written by :func:`riskdistill.data.record.write_index`, the
files through the recorder's atomic writers.

One clip or scene becomes one route (``route_id`` = the clip folder name or the scene name, characters
outside ``[A-Za-z0-9_.-]`` replaced by ``_``); ``step`` counts 10 Hz ticks from the clip's / scene's start.
Imports resume like recordings: rerun the same call, finished routes (``_DONE.json``) are kept, other route
folders are rewritten; other settings in the same folder are refused. New routes can be added to a folder
with a later call of the same settings.

What real data lacks is computed or approximated (also listed in the manifest, ``approximations``):

- **future trajectory**: rear-axle poses at ``t + 0.5 j`` s (j = 1..6) interpolated in the clip's own pose
  track (every Bench2Drive frame; every nuScenes sample_data of the first camera, sweeps included);
  ``future_valid`` is False past the end of the track or across a gap of more than ``max_pose_gap_s``;
- **2D boxes and visibility**: the 3D boxes projected into each camera (``geometry.project_box_to_image``),
  clipped to the image: amodal boxes that ignore occlusion; ``actor_visible_px`` is the box area in pixels
  (manifest ``"visibility_source": "projected_boxes"``; recorded data uses instance masks);
- **route command and target point**: Bench2Drive's ``command_near`` and ``x_target, y_target``; nuScenes has
  no route, so the command comes from the future's lateral offset at 3 s (>= 2 m left: LEFT, <= -2 m: RIGHT,
  else STRAIGHT, as VAD / UniAD derive it) and the target point is the pose ~20 m ahead along the scene's
  remaining pose track (its last pose when the ego drives less than that);
- **ego state** (nuScenes): speed, acceleration and yaw rate by finite differences of the pose track; the
  steering command is unknown (0.0), actions are NaN; the ego size is a parameter (default: the simulator's);
- **actors**: velocities from the readers (nuScenes: the devkit's ``box_velocity``, 0 where it is NaN;
  Bench2Drive: the logged speed along the heading); ``actor_behavior`` from the class (vehicles 1,
  pedestrians and cyclists 2, static obstacles 3); nuScenes actor ids count instances in order of first
  appearance (or keep ``riskdistill_actor_id`` of our own exports);
- **map**: none; every map field is an empty array of the documented dtype, the next stop line is none;
  traffic lights come from Bench2Drive's boxes, nuScenes has none; weather is NaN where unknown;
- **calibration**: the exact per-frame ``K`` (rescaled for ``image_hw``) and ``T_ego_from_cam`` are in every
  annotation; the manifest's rig is the nearest square-pixel, centred-principal-point pinhole rig of the
  first frame (``Rig`` cannot hold more).

``image_hw`` resizes like :func:`riskdistill.contracts.rig.resize_rig`: scale by ``W_new / W`` keeping the
aspect ratio, then centre-crop or pad (black) rows to ``H_new``; ``K`` follows. Without it, JPEGs of the
data set's image size are copied unchanged; any other image is re-encoded.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from riskdistill.config import StrictConfig
from riskdistill.contracts.agent import PLAN_DT_S, PLAN_HORIZON, EgoState
from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_M
from riskdistill.contracts.rig import Rig
from riskdistill.data import format as fmt
from riskdistill.data.encode import (
    encode_jpeg,
    encode_npz,
    sha256_bytes,
    table_bytes,
    write_file,
    write_json,
)
from riskdistill.data.record import read_done, write_index
from riskdistill.data.storage import DataError
from riskdistill.geometry import (
    T_ego_from_cam_from_pose,
    box3d_corners,
    project_box_to_image,
    wrap_angle,
)
from riskdistill.io import load_json
from riskdistill.registry import Registry
from riskdistill.sim.actors import Behavior
from riskdistill.types import ActorClass, Command

__all__ = [
    "ImportResult",
    "ImportSettings",
    "SourceFrame",
    "SourceRoute",
    "command_from_future",
    "ego_motion_from_track",
    "future_from_track",
    "pose_track",
    "project_boxes",
    "resize_matrix",
    "rig_from_calibration",
    "run_import",
    "target_point_from_track",
]

VISIBILITY_SOURCE = "projected_boxes"
_TIME_TOL_S = 2e-3  # a track pose this close in time counts as exact (timestamps are rounded to 1 us / 0.1 s)
_JPEG_MAGIC = b"\xff\xd8\xff"
WEATHER_KEYS = ("sun_altitude_deg", "cloudiness", "fog_density", "wetness")
_R_FLU_FROM_OPENCV = T_ego_from_cam_from_pose(0.0, 0.0, 0.0, 0.0).matrix()[:3, :3]


class ImportSettings(StrictConfig):
    """How an import fills the format; written to ``recording.json`` and the manifest's ``settings``.

    A resumed import (same ``out_dir``) must use the same settings."""

    source: str  # a name in IMPORTERS
    image_h: int = Field(gt=0)
    image_w: int = Field(gt=0)
    cameras: list[str] = Field(min_length=1)
    every_n_steps: int = Field(default=1, ge=1, description="Bench2Drive: keep every N-th 10 Hz frame")
    jpeg_quality: int = Field(default=fmt.DEFAULT_JPEG_QUALITY, ge=1, le=100, description="re-encoded images")
    future_waypoints: int = Field(default=PLAN_HORIZON, ge=1)
    future_dt_s: float = Field(default=PLAN_DT_S, gt=0.0)
    max_pose_gap_s: float = Field(default=1.0, gt=0.0, description="longest track gap to interpolate over")
    target_distance_m: float = Field(default=20.0, gt=0.0, description="nuScenes target point distance")
    command_lateral_m: float = Field(default=2.0, gt=0.0, description="nuScenes LEFT / RIGHT threshold")
    rear_axle_to_center_m: float = EGO_REAR_AXLE_TO_CENTER_M
    ego_size_lwh: list[float] = Field(default_factory=lambda: list(EGO_SIZE_M), min_length=3, max_length=3)
    version: str = ""  # nuScenes table version


@dataclass(frozen=True)
class ImportRequest:
    """What the user asked of an import (``riskdistill data import SOURCE PATH --out OUT ...``); a source
    that cannot honour an option raises ValueError naming it."""

    image_hw: tuple[int, int] | None = None  # resize, keeping the horizontal field of view
    cameras: tuple[str, ...] | None = None  # subset and order
    every_n_steps: int = 1  # keep every N-th 10 Hz frame (sources with 10 Hz data)
    jpeg_quality: int = fmt.DEFAULT_JPEG_QUALITY
    scenes: tuple[str, ...] | None = None  # named scenes (sources with scene tables)
    version: str = ""  # table version (sources with versioned tables)


#: Real-data importers by source name: ``(path, out_dir, ImportRequest) -> ImportResult``.
IMPORTERS: Registry[Callable[[Path, Path, ImportRequest], ImportResult]] = Registry("data source")


@dataclass
class ImportResult:
    out_dir: Path
    n_routes: int  # routes in the data set
    n_frames: int
    imported: list[str] = field(default_factory=list)  # routes written by this call
    skipped: list[str] = field(default_factory=list)  # already finished before this call
    wall_s: float = 0.0


# ------------------------------------------------------------------------------------------ source frames
@dataclass
class SourceFrame:
    """One frame of an external data set, already in our conventions (what the readers give)."""

    step: int  # 10 Hz ticks since the clip / scene start
    timestamp_s: float
    pose_time_s: float  # time of ego_pose_world on the route's pose track
    ego: EgoState
    ego_pose_world: np.ndarray  # [3]
    command: Command | None  # None: derive it from the future
    target_point_ego: np.ndarray | None  # [2]; None: ~20 m ahead on the pose track
    camera_names: tuple[str, ...]
    image_paths: tuple[Path, ...]
    image_hw: np.ndarray  # [N, 2] per camera
    K: np.ndarray  # [N, 3, 3]
    T_ego_from_cam: np.ndarray  # [N, 4, 4]
    actor_id: np.ndarray  # [A]
    actor_class: np.ndarray  # [A]
    actor_center_ego: np.ndarray  # [A, 3]
    actor_size_lwh: np.ndarray  # [A, 3]
    actor_yaw_ego: np.ndarray  # [A]
    actor_velocity_ego: np.ndarray  # [A, 2]
    ego_size_lwh: tuple[float, float, float]
    light_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    light_position_ego: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    light_yaw_ego: np.ndarray = field(default_factory=lambda: np.zeros(0))
    light_state: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    action: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # throttle, steer, brake
    weather: dict[str, float] = field(default_factory=dict)


@dataclass
class SourceRoute:
    """One clip / scene: its frames and the ego's pose track (every pose the source has, time-sorted)."""

    spec: dict[str, Any]  # route_id, scenario, seed, layout, source
    layout_family: str
    frames: list[SourceFrame]
    track_t: np.ndarray  # [T] seconds, increasing
    track_pose: np.ndarray  # [T, 3] x, y, yaw of the rear axle


def route_id_of(name: str) -> str:
    """A folder-safe route id (``fmt.check_route_id``) from a clip or scene name."""
    rid = re.sub(r"[^A-Za-z0-9_.\-]", "_", name.strip())
    if not rid or not rid[0].isalnum():
        rid = "r" + rid
    return fmt.check_route_id(rid)


# ------------------------------------------------------------------------------------------ pose track
def pose_track(times_s: Sequence[float], poses: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A pose track ``(t [T], pose [T, 3])`` sorted by time, keeping the first pose of repeated times."""
    t, first = np.unique(np.asarray(times_s, np.float64), return_index=True)
    return t, np.asarray(poses, np.float64).reshape(-1, 3)[first]


def _interp_poses(track_t: np.ndarray, track_pose: np.ndarray, t: np.ndarray, max_gap_s: float):
    """Poses ``[n, 3]`` at times ``t [n]`` (linear, yaw along the short arc) and validity ``[n]``: an exact
    match (within 2 ms) or two neighbours at most ``max_gap_s`` apart."""
    n = len(track_t)
    out = np.zeros((len(t), 3))
    valid = np.zeros(len(t), dtype=bool)
    for j, tj in enumerate(t):
        k = int(np.searchsorted(track_t, tj))
        for kk in (k - 1, k):
            if 0 <= kk < n and abs(track_t[kk] - tj) <= _TIME_TOL_S:
                out[j], valid[j] = track_pose[kk], True
                break
        else:
            if 0 < k < n and track_t[k] - track_t[k - 1] <= max_gap_s:
                a = (tj - track_t[k - 1]) / (track_t[k] - track_t[k - 1])
                p0, p1 = track_pose[k - 1], track_pose[k]
                out[j, :2] = p0[:2] + a * (p1[:2] - p0[:2])
                out[j, 2] = wrap_angle(p0[2] + a * wrap_angle(p1[2] - p0[2]))
                valid[j] = True
    return out, valid


def _to_ego(pose0: np.ndarray, xy: np.ndarray) -> np.ndarray:
    c, s = math.cos(pose0[2]), math.sin(pose0[2])
    d = np.asarray(xy, np.float64) - pose0[:2]
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)


def future_from_track(
    track_t: np.ndarray,
    track_pose: np.ndarray,
    t0: float,
    pose0: np.ndarray,
    n_waypoints: int = PLAN_HORIZON,
    dt_s: float = PLAN_DT_S,
    max_gap_s: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ego's future from a pose track: poses at ``t0 + dt_s * (1..n)`` in the ego frame of ``pose0``.

    ``track_t [T]`` increasing seconds, ``track_pose [T, 3]`` rear-axle ``x, y, yaw``. Returns ``xy [n, 2]``
    float32, ``yaw [n]`` float32 (relative headings) and ``valid [n]``; an invalid waypoint holds the last
    valid one before it (the current pose if none), as :func:`riskdistill.data.annotate.future_in_ego`."""
    pose0 = np.asarray(pose0, np.float64)
    times = t0 + dt_s * np.arange(1, n_waypoints + 1)
    fut, valid = _interp_poses(
        np.asarray(track_t, np.float64), np.asarray(track_pose, np.float64), times, max_gap_s
    )
    last = pose0
    for j in range(n_waypoints):
        if valid[j]:
            last = fut[j]
        else:
            fut[j] = last
    xy = _to_ego(pose0, fut[:, :2])
    yaw = wrap_angle(fut[:, 2] - pose0[2])
    return xy.astype(np.float32), np.asarray(yaw, np.float32), valid


def target_point_from_track(
    track_t: np.ndarray, track_pose: np.ndarray, t0: float, pose0: np.ndarray, distance_m: float = 20.0
) -> np.ndarray:
    """The point ``distance_m`` along the track driven after ``t0``, in the ego frame of ``pose0`` ``[2]``;
    the track's last pose when the ego drives less than that."""
    pose0 = np.asarray(pose0, np.float64)
    later = np.asarray(track_pose, np.float64)[np.asarray(track_t) > t0 + _TIME_TOL_S, :2]
    pts = np.concatenate([pose0[None, :2], later])
    seg = np.hypot(*np.diff(pts, axis=0).T) if len(pts) > 1 else np.zeros(0)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if cum[-1] <= distance_m:
        p = pts[-1]
    else:
        k = int(np.searchsorted(cum, distance_m))  # cum[k - 1] < distance_m <= cum[k]
        a = (distance_m - cum[k - 1]) / max(seg[k - 1], 1e-9)
        p = pts[k - 1] + a * (pts[k] - pts[k - 1])
    return _to_ego(pose0, p)


def command_from_future(future_xy: np.ndarray, future_valid: np.ndarray, lateral_m: float = 2.0) -> Command:
    """LEFT / RIGHT when the last valid future waypoint is at least ``lateral_m`` left / right of the ego,
    else STRAIGHT (no valid waypoint: STRAIGHT)."""
    idx = np.flatnonzero(future_valid)
    if not len(idx):
        return Command.STRAIGHT
    y = float(future_xy[idx[-1], 1])
    if y >= lateral_m:
        return Command.LEFT
    if y <= -lateral_m:
        return Command.RIGHT
    return Command.STRAIGHT


def ego_motion_from_track(track_t: np.ndarray, track_pose: np.ndarray) -> np.ndarray:
    """Speed (m/s), longitudinal acceleration (m/s^2) and yaw rate (rad/s) at every track pose ``[T, 3]``,
    by finite differences (zeros for a single pose)."""
    t = np.asarray(track_t, np.float64)
    p = np.asarray(track_pose, np.float64)
    if len(t) < 2:
        return np.zeros((len(t), 3))
    vx, vy = np.gradient(p[:, 0], t), np.gradient(p[:, 1], t)
    speed = np.hypot(vx, vy)
    accel = np.gradient(speed, t)
    yaw_rate = np.gradient(np.unwrap(p[:, 2]), t)
    return np.stack([speed, accel, yaw_rate], axis=1)


# ------------------------------------------------------------------------------------------ cameras
def rig_from_calibration(
    name: str, camera_names: Sequence[str], K: np.ndarray, T_ego_from_cam: np.ndarray, image_hw: Sequence[int]
) -> Rig:
    """The nearest :class:`Rig` (square pixels, principal point at the centre) to a calibration: each camera's
    pose from ``T_ego_from_cam`` (yaw, pitch down, roll), its horizontal field of view from ``fx``."""
    h, w = (int(v) for v in image_hw)
    cams = []
    for i, cam in enumerate(camera_names):
        T = np.asarray(T_ego_from_cam[i], np.float64)
        R = T[:3, :3] @ _R_FLU_FROM_OPENCV.T  # camera body (forward-left-up) in the ego frame
        cams.append(
            {
                "name": str(cam),
                "x_m": float(T[0, 3]),
                "y_m": float(T[1, 3]),
                "z_m": float(T[2, 3]),
                "yaw_deg": _deg(math.atan2(R[1, 0], R[0, 0])),
                "pitch_deg": _deg(math.asin(float(np.clip(-R[2, 0], -1.0, 1.0)))),
                "roll_deg": _deg(math.atan2(R[2, 1], R[2, 2])),
                "hfov_deg": math.degrees(2.0 * math.atan(w / (2.0 * float(K[i][0, 0])))),
                "width_px": w,
                "height_px": h,
            }
        )
    notes = "imported: the nearest pinhole rig; the exact K and T_ego_from_cam are in every annotation file"
    return Rig.from_dict({"name": name, "notes": notes, "cameras": cams}, source=f"rig of {name}")


def _deg(rad: float) -> float:
    """Degrees, with rounding noise around zero made 0.0 (no "-0" in printed rigs)."""
    d = math.degrees(rad)
    return 0.0 if abs(d) < 1e-9 else d


def resize_matrix(src_hw: Sequence[int], dst_hw: Sequence[int]) -> tuple[np.ndarray, int, int]:
    """How an image of ``src_hw`` becomes ``dst_hw`` (as :func:`riskdistill.contracts.rig.resize_rig`):
    scaled to width ``W_new`` keeping the aspect ratio (height ``H_s``), then rows centre-cropped or padded.
    Returns ``A [3, 3]`` with ``K_new = A @ K``, ``H_s`` and the row offset (>0: padding on top, <0: crop)."""
    (h, w), (h2, w2) = (int(v) for v in src_hw), (int(v) for v in dst_hw)
    hs = max(1, round(h * w2 / w))
    off = (h2 - hs) // 2 if h2 >= hs else -((hs - h2) // 2)
    A = np.array([[w2 / w, 0.0, 0.0], [0.0, hs / h, float(off)], [0.0, 0.0, 1.0]])
    return A, hs, off


def _image_bytes(path: Path, src_hw: Sequence[int], dst_hw: tuple[int, int], quality: int) -> bytes:
    """The JPEG of the data set: the file itself when it already is an RGB JPEG of ``dst_hw``, else
    re-encoded (resized as :func:`resize_matrix`). DataError when the image is not the ``src_hw`` its
    calibration was given for."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            if (im.height, im.width) != tuple(int(v) for v in src_hw):
                raise DataError(
                    f"{path}: image is {im.width}x{im.height}, its calibration is for {src_hw[1]}x{src_hw[0]}"
                )
            if (im.height, im.width) == dst_hw and data[:3] == _JPEG_MAGIC and im.mode == "RGB":
                return data
            rgb = im.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: unreadable camera image ({type(exc).__name__}: {exc})") from exc
    _, hs, off = resize_matrix((rgb.height, rgb.width), dst_hw)
    h2, w2 = dst_hw
    if (rgb.height, rgb.width) != (hs, w2):
        rgb = rgb.resize((w2, hs), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (w2, h2))
    canvas.paste(rgb, (0, off))
    return encode_jpeg(np.asarray(canvas), quality)


def project_boxes(
    center: np.ndarray,
    size_lwh: np.ndarray,
    yaw: np.ndarray,
    K: np.ndarray,
    T_ego_from_cam: np.ndarray,
    image_hw: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """2D boxes of 3D boxes in every camera: ``box2d [A, N, 4]`` float32 ``x0, y0, x1, y1`` clipped to the
    image (NaN where the box misses the camera) and ``visible_px [A, N]`` int32 (the box area, >= 1 where
    it hits). Amodal: occlusion is ignored."""
    n_act, n_cam = len(center), len(K)
    box = np.full((n_act, n_cam, 4), np.nan, np.float32)
    px = np.zeros((n_act, n_cam), np.int32)
    if n_act == 0:
        return box, px
    corners = box3d_corners(center, size_lwh, yaw)  # [A, 8, 3]
    h, w = (int(v) for v in image_hw)
    for c in range(n_cam):
        T_cam_from_ego = np.linalg.inv(np.asarray(T_ego_from_cam[c], np.float64))
        for a in range(n_act):
            b = project_box_to_image(corners[a], K[c], T_cam_from_ego, (w, h))
            if b is not None:
                box[a, c] = b
                px[a, c] = max(1, round((b[2] - b[0]) * (b[3] - b[1])))
    return box, px


# ------------------------------------------------------------------------------------------ annotations
def _behavior_of(cls: int) -> int:
    c = ActorClass(int(cls))
    if c.is_static_obstacle:
        return int(Behavior.STATIC)
    return int(Behavior.WALKER if c.is_vulnerable else Behavior.VEHICLE)


def _empty_map() -> dict[str, np.ndarray]:
    """Every map key with zero elements, in the documented dtype and rank; no next stop line."""
    f32, i32 = np.float32, np.int32
    return {
        "lane_id": np.zeros(0, i32),
        "lane_kind": np.zeros(0, np.int8),
        "lane_is_junction": np.zeros(0, bool),
        "lane_turn": np.zeros(0, np.int8),
        "lane_width_m": np.zeros(0, f32),
        "lane_speed_limit_mps": np.zeros(0, f32),
        "lane_n_points": np.zeros(0, i32),
        "lane_centerline": np.zeros((0, 0, 2), f32),
        "lane_left_boundary": np.zeros((0, 0, 2), f32),
        "lane_right_boundary": np.zeros((0, 0, 2), f32),
        "marking_kind": np.zeros(0, np.int8),
        "marking_n_points": np.zeros(0, i32),
        "marking_polyline": np.zeros((0, 0, 2), f32),
        "crosswalk_id": np.zeros(0, i32),
        "crosswalk_polygon": np.zeros((0, 4, 2), f32),
        "stop_line_id": np.zeros(0, i32),
        "stop_line_lane_id": np.zeros(0, i32),
        "stop_line_light_id": np.zeros(0, i32),
        "stop_line_is_stop_sign": np.zeros(0, bool),
        "stop_line_points": np.zeros((0, 2, 2), f32),
        "route_next_stop_line_id": np.array(fmt.NO_ID, i32),
        "route_next_stop_distance_m": np.array(np.nan, f32),
        "route_next_light_state": np.array(fmt.NO_STATE, i32),
    }


@dataclass
class _Plan:
    """The data set's cameras (picked from each frame by name) and image size (K follows the resize)."""

    settings: ImportSettings

    @property
    def hw(self) -> tuple[int, int]:
        return (self.settings.image_h, self.settings.image_w)

    def select(self, f: SourceFrame, where: str) -> list[int]:
        idx = {c: i for i, c in enumerate(f.camera_names)}
        missing = [c for c in self.settings.cameras if c not in idx]
        if missing:
            raise DataError(f"{where}: camera(s) {missing} missing; the frame has {list(f.camera_names)}")
        return [idx[c] for c in self.settings.cameras]

    def K(self, f: SourceFrame, sel: list[int]) -> np.ndarray:
        return np.stack([resize_matrix(f.image_hw[i], self.hw)[0] @ f.K[i] for i in sel])


def _annotation(
    f: SourceFrame, route: SourceRoute, plan: _Plan, frame_id: str, sel: list[int]
) -> tuple[dict[str, np.ndarray], Command, np.ndarray]:
    s = plan.settings
    K = plan.K(f, sel)
    T = np.asarray(f.T_ego_from_cam, np.float64)[sel]
    names = list(s.cameras)
    center = np.asarray(f.actor_center_ego, np.float64).reshape(-1, 3)
    size = np.asarray(f.actor_size_lwh, np.float64).reshape(-1, 3)
    yaw = np.asarray(wrap_angle(np.asarray(f.actor_yaw_ego, np.float64)), np.float64).reshape(-1)
    box2d, vis = project_boxes(center, size, yaw, K, T, plan.hw)
    vel = np.nan_to_num(np.asarray(f.actor_velocity_ego, np.float64).reshape(-1, 2), nan=0.0)
    pose = np.asarray(f.ego_pose_world, np.float64)
    fxy, fyaw, fvalid = future_from_track(
        route.track_t,
        route.track_pose,
        f.pose_time_s,
        pose,
        s.future_waypoints,
        s.future_dt_s,
        s.max_pose_gap_s,
    )
    command = f.command if f.command is not None else command_from_future(fxy, fvalid, s.command_lateral_m)
    target = (
        np.asarray(f.target_point_ego, np.float64)
        if f.target_point_ego is not None
        else target_point_from_track(
            route.track_t, route.track_pose, f.pose_time_s, pose, s.target_distance_m
        )
    )
    lwh = np.asarray(f.ego_size_lwh, np.float64)
    light_yaw = np.asarray(f.light_yaw_ego, np.float64).reshape(-1)
    ann: dict[str, np.ndarray] = {
        "frame_id": np.array(frame_id),
        "camera_names": np.array(names, dtype=f"<U{max(len(n) for n in names)}"),
        "image_hw": np.array(plan.hw, np.int64),
        "K": K.astype(np.float64),
        "T_ego_from_cam": T,
        "ego_pose_world": pose,
        "ego_center_ego": np.array([s.rear_axle_to_center_m, 0.0, 0.5 * lwh[2]], np.float32),
        "ego_size_lwh": lwh.astype(np.float32),
        "actor_id": np.asarray(f.actor_id, np.int32).reshape(-1),
        "actor_class": np.asarray(f.actor_class, np.int32).reshape(-1),
        "actor_behavior": np.array([_behavior_of(c) for c in f.actor_class], np.int32),
        "actor_center_ego": center.astype(np.float32),
        "actor_size_lwh": size.astype(np.float32),
        "actor_yaw_ego": yaw.astype(np.float32),
        "actor_velocity_ego": vel.astype(np.float32),
        "actor_visible_px": vis,
        "actor_box2d": box2d,
        **_empty_map(),
        "light_id": np.asarray(f.light_id, np.int32).reshape(-1),
        "light_position_ego": np.asarray(f.light_position_ego, np.float32).reshape(-1, 3),
        "light_yaw_ego": np.asarray(wrap_angle(light_yaw), np.float32),
        "light_state": np.asarray(f.light_state, np.int8).reshape(-1),
        "future_xy": fxy,
        "future_yaw": fyaw,
        "future_valid": fvalid,
    }
    return ann, command, target


# ------------------------------------------------------------------------------------------ writing
def _write_route(
    route: SourceRoute, out_dir: Path, plan: _Plan, advance: Callable[[], None]
) -> dict[str, Any]:
    """Write one route's images, annotations, route table and (last) its ``_DONE.json``."""
    t0 = time.perf_counter()
    s = plan.settings
    rid = route.spec["route_id"]
    rdir = out_dir / fmt.route_rel(rid)
    if rdir.exists():
        shutil.rmtree(rdir)
    for sub in (*s.cameras, fmt.ANN_DIR):
        (rdir / sub).mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    n_bytes = 0

    def put(rel: str, data: bytes) -> None:
        nonlocal n_bytes
        write_file(out_dir / rel, data)
        files[rel] = sha256_bytes(data)
        n_bytes += len(data)

    steps = [f.step for f in route.frames]
    if len(set(steps)) != len(steps):
        raise DataError(f"{route.spec['source']}: two frames fall on the same 10 Hz step; steps {steps}")
    poses = np.array([f.ego_pose_world[:2] for f in route.frames]).reshape(-1, 2)
    progress_m = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(poses, axis=0).T))]) if len(poses) else []
    rows = []
    for k, f in enumerate(route.frames):
        where = f"{route.spec['source']} frame {f.step}"
        sel = plan.select(f, where)
        fid = fmt.frame_id(rid, f.step)
        image_paths = []
        for cam, i in zip(s.cameras, sel, strict=True):
            rel = fmt.image_rel(rid, cam, f.step)
            put(rel, _image_bytes(Path(f.image_paths[i]), f.image_hw[i], plan.hw, s.jpeg_quality))
            image_paths.append(rel)
        ann, command, target = _annotation(f, route, plan, fid, sel)
        put(fmt.ann_rel(rid, f.step), encode_npz(ann))
        weather = {k_: float(f.weather.get(k_, math.nan)) for k_ in WEATHER_KEYS}
        rows.append(
            {
                "frame_id": fid,
                "route_id": rid,
                "scenario": route.spec["scenario"],
                "seed": route.spec["seed"],
                "layout_family": route.layout_family,
                "step": f.step,
                "timestamp_s": float(f.timestamp_s),
                "ego_speed_mps": float(f.ego.speed_mps),
                "ego_accel_mps2": float(f.ego.accel_mps2),
                "ego_yaw_rate_radps": float(f.ego.yaw_rate_radps),
                "ego_steer": float(f.ego.steer),
                "ego_x_m": float(f.ego_pose_world[0]),
                "ego_y_m": float(f.ego_pose_world[1]),
                "ego_yaw_rad": float(f.ego_pose_world[2]),
                "command": int(command),
                "target_point_ego_x": float(target[0]),
                "target_point_ego_y": float(target[1]),
                "route_progress_m": float(progress_m[k]),
                "action_throttle": float(f.action[0]),
                "action_steer": float(f.action[1]),
                "action_brake": float(f.action[2]),
                "expert_reason": "",
                **{f"weather_{k_}": v for k_, v in weather.items()},
                "n_actors": len(ann["actor_id"]),
                "n_visible_actors": int((ann["actor_visible_px"].sum(axis=1) > 0).sum()),
                "image_paths": image_paths,
                "annotation_path": fmt.ann_rel(rid, f.step),
            }
        )
        advance()
    put(fmt.route_frames_rel(rid), table_bytes(pa.Table.from_pylist(rows, schema=fmt.FRAME_SCHEMA)))
    os.sync()  # the route's files reach the disk before its marker says it is complete
    done = {
        "format_version": fmt.FORMAT_VERSION,
        "route": route.spec,
        "n_frames": len(rows),
        "sim_steps": (steps[-1] - steps[0]) if steps else 0,
        "route_log": {},
        "weather": {},
        "layout_family": route.layout_family,
        "bytes": n_bytes,
        "wall_s": round(time.perf_counter() - t0, 3),
        "files": dict(sorted(files.items())),
    }
    write_json(out_dir / fmt.done_rel(rid), done)
    return done


def _check_import(out_dir: Path, settings: ImportSettings) -> None:
    """``recording.json``: written on the first import; a later one into the folder must match it."""
    path = out_dir / fmt.RECORDING
    want = {"format_version": fmt.FORMAT_VERSION, "import": settings.to_dict()}
    if path.exists():
        try:
            have = load_json(path)
        except ValueError as exc:
            raise ValueError(f"{path}: unreadable ({exc}); delete it to start the import over") from exc
        old = have.get("import") if isinstance(have, dict) else None
        if not isinstance(old, dict):
            raise ValueError(f"{out_dir} holds a simulator recording, not an import; use another folder")
        diffs = [f"{k} {old.get(k)!r} != {v!r}" for k, v in want["import"].items() if old.get(k) != v]
        if diffs:
            raise ValueError(
                f"{out_dir} holds an import with other settings: {'; '.join(diffs)}. "
                "Use another output folder (or the original settings to add to it)."
            )
    write_json(path, want)


COMMON_APPROXIMATIONS = (
    "future_xy: interpolated in the source's pose track; invalid past its end or across long gaps",
    "actor_box2d / actor_visible_px: 3D boxes projected into each camera (amodal, no occlusion)",
    "map: none (every map field empty); route_next_stop_line_id = -1",
    "manifest rig: nearest square-pixel pinhole rig; the exact calibration is in every annotation",
    "actor_behavior: from the class",
)


def run_import(
    source: str,
    routes: Iterable[tuple[dict[str, Any], Callable[[], SourceRoute]]],
    out_dir: Path,
    settings: ImportSettings,
    source_info: dict[str, Any],
    n_routes: int,
    approximations: Sequence[str],
    show_progress: bool,
) -> ImportResult:
    """Write every route of ``routes`` (its spec and a loader, called only for a route not finished yet) into
    ``out_dir``, then ``frames.parquet`` and the manifest over every finished route of the folder (earlier
    imports first). ``approximations``: the source's, listed in the manifest after the common ones."""
    t_start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_import(out_dir, settings)
    result = ImportResult(out_dir=out_dir, n_routes=0, n_frames=0)
    plan = _Plan(settings)
    order: list[str] = []
    progress = Progress(
        TextColumn(f"[bold]import {source}[/] {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
    )
    with progress:
        task = progress.add_task("routes", total=n_routes)
        for spec, load in routes:
            rid = spec["route_id"]
            if rid in order:
                raise ValueError(f"two inputs map to route id {rid!r} ({spec['source']}); rename one")
            order.append(rid)
            done = read_done(out_dir, rid)
            if done is not None and done.get("route") == spec:
                result.skipped.append(rid)
            else:
                if done is not None and done.get("route", {}).get("source") != spec["source"]:
                    raise ValueError(
                        f"{out_dir / fmt.done_rel(rid)}: route {rid!r} was imported from "
                        f"{done.get('route', {}).get('source')!r}, not {spec['source']!r}; use another folder"
                    )
                route = load()
                sub = progress.add_task(rid, total=len(route.frames))
                _write_route(route, out_dir, plan, lambda sub=sub: progress.advance(sub))
                progress.remove_task(sub)
                result.imported.append(rid)
            progress.advance(task)

    manifest_path = out_dir / fmt.MANIFEST
    previous = (
        [r["route_id"] for r in load_json(manifest_path).get("routes", [])] if manifest_path.exists() else []
    )
    dones = []
    for rid in dict.fromkeys([*previous, *order]):
        done = read_done(out_dir, rid)
        if done is not None:
            dones.append(done)
    if not dones:
        raise DataError(f"{source}: nothing to import (no clip / scene given)")
    rig = rig_from_calibration(source, settings.cameras, *_first_calibration(out_dir, dones[0]))
    suite_info = {
        "name": f"import-{source}",
        "description": f"imported {source} data",
        "n_routes": len(dones),
    }
    extra = {
        "source": source_info,
        "visibility_source": VISIBILITY_SOURCE,
        "map_source": "none",
        "approximations": [*COMMON_APPROXIMATIONS, *approximations],
        "sim": {
            "dt_s": 0.1,
            "ego_size_lwh": list(settings.ego_size_lwh),
            "ego_rear_axle_to_center_m": settings.rear_axle_to_center_m,
        },
    }
    manifest = write_index(out_dir, dones, rig, settings.to_dict(), suite_info, [], extra)
    result.n_routes = manifest["counts"]["routes"]
    result.n_frames = manifest["counts"]["frames"]
    result.wall_s = time.perf_counter() - t_start
    return result


def _first_calibration(out_dir: Path, done: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    ann = next(rel for rel in done["files"] if f"/{fmt.ANN_DIR}/" in rel)
    with np.load(out_dir / ann, allow_pickle=False) as z:
        return z["K"], z["T_ego_from_cam"], [int(v) for v in z["image_hw"]]


def resolve_cameras_and_hw(
    camera_names: Sequence[str],
    camera_hw: np.ndarray,
    cameras: Sequence[str] | None,
    image_hw: tuple[int, int] | None,
    where: str,
) -> tuple[list[str], tuple[int, int]]:
    """The data set's cameras (``cameras`` or all the source has) and image size (``image_hw`` or the
    source's, which must then be one size for every chosen camera). ``camera_hw [N, 2]``."""
    names = list(camera_names)
    cams = list(cameras) if cameras else names
    unknown = [c for c in cams if c not in names]
    if unknown:
        raise DataError(f"{where}: unknown camera(s) {unknown}; cameras: {names}")
    if image_hw is not None:
        h, w = (int(v) for v in image_hw)
        if h <= 0 or w <= 0:
            raise ValueError(f"image_hw must be positive, got {image_hw}")
        return cams, (h, w)
    sizes = {tuple(int(v) for v in camera_hw[names.index(c)]) for c in cams}
    if len(sizes) != 1:
        raise DataError(f"{where}: cameras have different image sizes {sorted(sizes)}; pass image_hw")
    h, w = next(iter(sizes))
    return cams, (h, w)
