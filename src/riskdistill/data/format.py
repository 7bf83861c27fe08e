"""The on-disk format of recorded driving data (version :data:`FORMAT_VERSION`); see ``docs/data-format.md``.

This module is the single definition of the layout: paths, the ``frames.parquet`` schema, the keys of the
per-frame annotation files and the integer codes stored in them. The recorder, the reader and the
validator all use it, so they cannot drift apart.

::

    DIR/manifest.json                          format version, provenance, rig, settings, counts, sha256s
    DIR/recording.json                         settings of the recording (checked when a run resumes)
    DIR/frames.parquet                         one row per frame (all finished routes, suite order)
    DIR/routes/<route_id>/_DONE.json           written last: the route is complete
    DIR/routes/<route_id>/frames.parquet       the route's rows of DIR/frames.parquet
    DIR/routes/<route_id>/<CAMERA>/<step>.jpg  camera images (step zero-padded to 5 digits)
    DIR/routes/<route_id>/ann/<step>.npz       annotations (np.savez, no pickled objects)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

FORMAT_NAME = "riskdistill-driving-dataset"
FORMAT_VERSION = 1
KNOWN_VERSIONS = (1,)

MANIFEST = "manifest.json"
RECORDING = "recording.json"
FRAMES = "frames.parquet"
ROUTES_DIR = "routes"
DONE = "_DONE.json"
ANN_DIR = "ann"
STEP_DIGITS = 5

BENCH2DRIVE_JPEG_QUALITY = 20  # Bench2Drive stores its camera images at JPEG quality 20
DEFAULT_JPEG_QUALITY = 90

# Integer codes used in the annotation files (stable: they are written into data sets).
LANE_KIND_CODES = {"driving": 0, "parking": 1}
MARKING_KIND_CODES = {"solid_white": 0, "dashed_white": 1, "solid_yellow": 2}
NO_ID = -1  # "none" for id fields (no traffic light at a stop line, no stop line ahead, ...)
NO_STATE = -1  # "none" for light-state fields

_ROUTE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def check_route_id(route_id: str) -> str:
    """Route ids become folder names: letters, digits, ``_ . -`` only (ValueError otherwise)."""
    if not _ROUTE_ID.match(route_id):
        raise ValueError(
            f"route id {route_id!r} cannot be a folder name: use letters, digits, '_', '.', '-' only"
        )
    return route_id


def step_name(step: int) -> str:
    return f"{step:0{STEP_DIGITS}d}"


def frame_id(route_id: str, step: int) -> str:
    return f"{route_id}/{step_name(step)}"


def route_rel(route_id: str) -> str:
    return f"{ROUTES_DIR}/{route_id}"


def image_rel(route_id: str, camera: str, step: int) -> str:
    return f"{ROUTES_DIR}/{route_id}/{camera}/{step_name(step)}.jpg"


def ann_rel(route_id: str, step: int) -> str:
    return f"{ROUTES_DIR}/{route_id}/{ANN_DIR}/{step_name(step)}.npz"


def route_frames_rel(route_id: str) -> str:
    return f"{ROUTES_DIR}/{route_id}/{FRAMES}"


def done_rel(route_id: str) -> str:
    return f"{ROUTES_DIR}/{route_id}/{DONE}"


# ------------------------------------------------------------------------------------------ frames.parquet
FRAME_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("frame_id", pa.string(), '"<route_id>/<step:05d>", unique'),
    ("route_id", pa.string(), "suite route id"),
    ("scenario", pa.string(), "scenario type"),
    ("seed", pa.int64(), "scenario seed"),
    ("layout_family", pa.string(), "layout family of the map"),
    ("step", pa.int32(), "simulation step (10 Hz) of the frame, 0 = route start"),
    ("timestamp_s", pa.float64(), "simulated time"),
    ("ego_speed_mps", pa.float64(), "ego speed"),
    ("ego_accel_mps2", pa.float64(), "ego longitudinal acceleration"),
    ("ego_yaw_rate_radps", pa.float64(), "ego yaw rate, positive counter-clockwise"),
    ("ego_steer", pa.float64(), "last applied steering command in [-1, 1], positive = left"),
    ("ego_x_m", pa.float64(), "world x of the ego rear axle"),
    ("ego_y_m", pa.float64(), "world y of the ego rear axle"),
    ("ego_yaw_rad", pa.float64(), "world yaw of the ego"),
    ("command", pa.int32(), "route command (CARLA RoadOption values, riskdistill.types.Command)"),
    ("target_point_ego_x", pa.float64(), "route target point ~20 m ahead, ego frame x"),
    ("target_point_ego_y", pa.float64(), "route target point ~20 m ahead, ego frame y"),
    ("route_progress_m", pa.float64(), "distance along the route since its start"),
    ("action_throttle", pa.float64(), "expert control applied after this frame (NaN if none)"),
    ("action_steer", pa.float64(), "expert control applied after this frame (NaN if none)"),
    ("action_brake", pa.float64(), "expert control applied after this frame (NaN if none)"),
    ("expert_reason", pa.string(), "what limited the expert's speed at this frame ('' if nothing)"),
    ("weather_sun_altitude_deg", pa.float64(), "weather of the route (constant per route)"),
    ("weather_cloudiness", pa.float64(), "0..1"),
    ("weather_fog_density", pa.float64(), "0..1"),
    ("weather_wetness", pa.float64(), "0..1"),
    ("n_actors", pa.int32(), "actors in the annotation file"),
    ("n_visible_actors", pa.int32(), "of those, visible in at least one camera"),
    (
        "image_paths",
        pa.list_(pa.string()),
        "relative JPEG paths, one per camera in manifest camera_names order",
    ),
    ("annotation_path", pa.string(), "relative path of the .npz annotation file"),
)
FRAME_SCHEMA = pa.schema([pa.field(name, dtype) for name, dtype, _ in FRAME_COLUMNS])
POSE_COLUMNS = ("ego_x_m", "ego_y_m", "ego_yaw_rad")


# ------------------------------------------------------------------------------------------ annotations
@dataclass(frozen=True)
class AnnKey:
    name: str
    dtype: str  # numpy dtype kind string for documentation and validation ("U" = fixed-width unicode)
    shape: str  # symbolic shape: N = cameras, A = actors, L/M = polylines, P/Q = points, C, S, T, F
    doc: str


ANNOTATION_KEYS: tuple[AnnKey, ...] = (
    AnnKey("frame_id", "U", "[]", "the frame id (same as in frames.parquet)"),
    # calibration
    AnnKey("camera_names", "U", "[N]", "camera names in image order"),
    AnnKey("image_hw", "int64", "[2]", "image height and width in pixels"),
    AnnKey("K", "float64", "[N, 3, 3]", "pinhole intrinsics"),
    AnnKey("T_ego_from_cam", "float64", "[N, 4, 4]", "OpenCV camera frame -> ego frame"),
    # ego
    AnnKey("ego_pose_world", "float64", "[3]", "x, y, yaw of the ego rear axle in the world frame"),
    AnnKey("ego_center_ego", "float32", "[3]", "centre of the ego box in the ego frame"),
    AnnKey("ego_size_lwh", "float32", "[3]", "ego box length, width, height"),
    # actors (the ego is never listed)
    AnnKey("actor_id", "int32", "[A]", "actor id (= instance id in the renderer's masks), stable per route"),
    AnnKey("actor_class", "int32", "[A]", "riskdistill.types.ActorClass"),
    AnnKey(
        "actor_behavior", "int32", "[A]", "riskdistill.sim.actors.Behavior (1 vehicle, 2 walker, 3 static)"
    ),
    AnnKey("actor_center_ego", "float32", "[A, 3]", "box centre in the ego frame (z = half the height)"),
    AnnKey("actor_size_lwh", "float32", "[A, 3]", "box length, width, height"),
    AnnKey("actor_yaw_ego", "float32", "[A]", "box heading relative to the ego, wrapped to [-pi, pi)"),
    AnnKey("actor_velocity_ego", "float32", "[A, 2]", "ground velocity expressed in ego axes"),
    AnnKey("actor_visible_px", "int32", "[A, N]", "pixels of the actor in each camera's instance mask"),
    AnnKey(
        "actor_box2d",
        "float32",
        "[A, N, 4]",
        "x0, y0, x1, y1 (x1, y1 exclusive) of the mask; NaN if invisible",
    ),
    # map (everything within map_range_m of the ego rear axle)
    AnnKey(
        "lane_id", "int32", "[L]", "lane id (a lane cut by the range circle may appear as several pieces)"
    ),
    AnnKey("lane_kind", "int8", "[L]", "LANE_KIND_CODES"),
    AnnKey("lane_is_junction", "bool", "[L]", "connector lane inside a junction"),
    AnnKey("lane_turn", "int8", "[L]", "Command of a junction connector (4 = lane follow elsewhere)"),
    AnnKey("lane_width_m", "float32", "[L]", "lane width"),
    AnnKey("lane_speed_limit_mps", "float32", "[L]", "speed limit"),
    AnnKey("lane_n_points", "int32", "[L]", "valid points per lane polyline"),
    AnnKey(
        "lane_centerline", "float32", "[L, P, 2]", "ego-frame centreline in driving direction, NaN-padded"
    ),
    AnnKey("lane_left_boundary", "float32", "[L, P, 2]", "left lane edge, point-aligned with the centreline"),
    AnnKey(
        "lane_right_boundary", "float32", "[L, P, 2]", "right lane edge, point-aligned with the centreline"
    ),
    AnnKey("marking_kind", "int8", "[M]", "MARKING_KIND_CODES"),
    AnnKey("marking_n_points", "int32", "[M]", "valid points per marking polyline"),
    AnnKey("marking_polyline", "float32", "[M, Q, 2]", "painted lines, NaN-padded"),
    AnnKey("crosswalk_id", "int32", "[C]", "crosswalk id"),
    AnnKey("crosswalk_polygon", "float32", "[C, 4, 2]", "zebra area corners"),
    AnnKey("stop_line_id", "int32", "[S]", "stop line id"),
    AnnKey("stop_line_lane_id", "int32", "[S]", "the lane that stops at it"),
    AnnKey("stop_line_light_id", "int32", "[S]", "its traffic light, NO_ID for signs and yield lines"),
    AnnKey("stop_line_is_stop_sign", "bool", "[S]", "stop sign (False: light or yield line)"),
    AnnKey("stop_line_points", "float32", "[S, 2, 2]", "the two ends of the painted line"),
    AnnKey("light_id", "int32", "[T]", "traffic light id"),
    AnnKey("light_position_ego", "float32", "[T, 3]", "pole position and signal-head height"),
    AnnKey("light_yaw_ego", "float32", "[T]", "direction the light faces, relative to the ego"),
    AnnKey("light_state", "int8", "[T]", "riskdistill.types.LightState at this frame"),
    # route ahead
    AnnKey("route_next_stop_line_id", "int32", "[]", "next stop line on the route ahead of the ego front"),
    AnnKey("route_next_stop_distance_m", "float32", "[]", "distance from the ego front to it (NaN if none)"),
    AnnKey("route_next_light_state", "int32", "[]", "state of its light (NO_STATE: none or not signalized)"),
    # ego future (expert rollout)
    AnnKey(
        "future_xy", "float32", "[F, 2]", "rear-axle positions every future_dt_s in the current ego frame"
    ),
    AnnKey("future_yaw", "float32", "[F]", "headings at those waypoints relative to the current ego"),
    AnnKey(
        "future_valid", "bool", "[F]", "False past the end of the rollout (padded with the last valid pose)"
    ),
)
ANNOTATION_KEY_NAMES = tuple(k.name for k in ANNOTATION_KEYS)

# Optional, privileged annotation keys: scenario ground truth the simulator knows and real data usually
# does not (data sets recorded before they existed, and imported ones, lack them and still load). Only
# teachers, target builders and metrics read them; drivers and students never see them.
ROUTE_AHEAD_STEP_M = 1.0
ROUTE_AHEAD_POINTS = 151  # 150 m of route ahead
ACTOR_PATH_POINTS = 32
ACTOR_PATH_HORIZON_S = 8.0  # an actor path covers what its fastest expected speed drives in this time (+4 m)

OPTIONAL_ANNOTATION_KEYS: tuple[AnnKey, ...] = (
    AnnKey(
        "route_ahead_ego",
        "float32",
        "[R, 2]",
        "the ego route's reference path (traced by the rear axle) from the ego's projection on it, every "
        "ROUTE_AHEAD_STEP_M for ROUTE_AHEAD_POINTS points; past the route end the end point repeats",
    ),
    AnnKey("route_ahead_speed_limit_mps", "float32", "[R]", "speed limit of the route lane at those points"),
    AnnKey(
        "actor_accel_mps2", "float32", "[A]", "longitudinal acceleration (0 for walkers and static actors)"
    ),
    AnnKey(
        "actor_path_ego",
        "float32",
        "[A, P, 2]",
        "the path each actor follows (box centre), from where it is, every actor_path_step_m for "
        "ACTOR_PATH_POINTS points (its end point repeats past its end); the centre repeated for actors "
        "without a path (parked, static)",
    ),
    AnnKey("actor_path_step_m", "float32", "[A]", "spacing of actor_path_ego (0: no path)"),
    AnnKey(
        "actor_release_in_m",
        "float32",
        "[A]",
        "route distance the ego still drives until a scenario trigger releases this held actor (NaN: none)",
    ),
    AnnKey("actor_release_speed_mps", "float32", "[A]", "its desired speed once released (NaN: none)"),
    AnnKey(
        "actor_is_hazard", "bool", "[A]", "one of the hazard actors the scenario names (ScenarioType.hazard)"
    ),
    # the expert's own plan at this frame (the labels of recovery data: see data/record.py)
    AnnKey(
        "expert_path_ego",
        "float32",
        "[P, 2]",
        "the expert's intended path (rear axle), every 1 m from 1 m ahead, in the ego frame",
    ),
    AnnKey("expert_speed_mps", "float32", "[]", "the expert's target speed (its speed 1 s later)"),
    AnnKey("expert_noise_steer", "float32", "[]", "recovery noise on the expert's steering now (0: none)"),
    AnnKey(
        "expert_in_control",
        "bool",
        "[]",
        "DAgger recordings only: the expert drove this step (False: the learner did; sim/dagger.py)",
    ),
    # image-space labels (data/image_labels.py): per camera at 1/4 of the recorded resolution
    AnnKey("image_semantics", "uint8", "[N, H/4, W/4]", "0 background, 1 vehicle, 2 vulnerable, 3 static"),
    AnnKey("image_depth_m", "float16", "[N, H/4, W/4]", "nearest surface in the cell (metres, capped at 80)"),
)
OPTIONAL_ANNOTATION_KEY_NAMES = tuple(k.name for k in OPTIONAL_ANNOTATION_KEYS)
#: optional keys only a DAgger recording writes (``sim record --dagger``)
DAGGER_ANNOTATION_KEY_NAMES = ("expert_in_control",)
