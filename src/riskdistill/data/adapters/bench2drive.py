"""Bench2Drive clips <-> recorded data sets (``shared/reference/bench2drive.md``, ``docs/data-format.md``).

A Bench2Drive clip folder::

    CLIP/anno/00000.json.gz                       per-frame annotation (CARLA frame, see below)
    CLIP/camera/rgb_{front,front_left,...}/00000.jpg

The file number is the 10 Hz frame index; the exporter uses the recorded ``step``, so the timing survives.

Frames. This project: x forward, y LEFT, z up, yaw counter-clockwise, ego origin on the ground below the
rear axle. CARLA / Bench2Drive: x forward, y RIGHT, z up (left-handed), yaw clockwise seen from above,
vehicle origin at the box centre. The conversion happens only in this module:
``x_c = x``, ``y_c = -y``, ``yaw_c = -yaw``; the ego's CARLA position is its box centre, i.e. the rear
axle plus ``rear_axle_to_center_m`` (1.45 m, :data:`riskdistill.sim.actors.EGO_REAR_AXLE_TO_CENTER_M`)
along its heading. Angles are radians for the ego ``theta`` and degrees in every ``rotation`` field
(``[roll, pitch, yaw]``, as CARLA's ``carla.Rotation``).

Exported fields and their approximations:

- ego: ``x, y`` (box centre, CARLA world), ``theta`` (the IMU compass in radians, as Bench2Drive logs it:
  0 facing north = CARLA -y, clockwise, i.e. CARLA yaw + pi/2; Bench2DriveZoo reads the right-handed
  heading as ``pi/2 - theta``), ``speed``, ``throttle/steer/brake`` (the expert control after this frame,
  0 where none; CARLA steer is positive to the RIGHT), ``acceleration`` (CARLA world vector, m/s^2, from
  the longitudinal acceleration only), ``angular_velocity`` (CARLA world vector in deg/s as CARLA's
  ``get_angular_velocity``; only z is set. The unit in real Bench2Drive logs is not verified here).
- route: ``command_near = command_far`` (our single command); ``x_command_near, y_command_near,
  x_command_far, y_command_far, x_target, y_target`` all hold our ~20 m target point (CARLA world).
- ``sensors``: per camera ``location`` (CARLA ego frame, metres), ``rotation`` (degrees), ``intrinsic``,
  ``cam2ego`` (UE4 camera axes x fwd / y right / z up -> CARLA ego, i.e. the camera's CARLA transform
  relative to the ego), ``world2cam`` (CARLA world -> UE4 camera axes), ``fov``, ``image_size_x/y``.
  Projecting with ``intrinsic`` needs the UE4 -> OpenCV axis swap (:data:`_UE4_FROM_OPENCV`), as in
  Bench2DriveZoo. No LIDAR_TOP entry (we record no lidar).
- ``bounding_boxes``: the ego (``ego_vehicle``, with ``world2ego``), every actor (``vehicle`` / ``walker``;
  our static obstacles as ``static`` with a ``static.prop.*`` ``type_id``) with ``id, type_id, location,
  rotation, center, extent`` (half sizes), ``speed`` (scalar), ``distance``, ``world2vehicle``, and the
  traffic lights (``traffic_light`` with ``state``: CARLA codes 0 red, 1 yellow, 2 green, 3 off). The
  ground is at z = 0: ``location`` is the box bottom and ``center`` its centre. ``num_points`` is 0 (no
  lidar). Our class (car, van, truck, ...) is kept in ``type_id`` (a CARLA blueprint of that kind).
- ``weather``: our four weather values (not CARLA's full parameter set).

Reading (:class:`Bench2DriveClipReader`) inverts this. Approximations there: an actor's ground velocity is
its scalar ``speed`` along its heading (real Bench2Drive logs a correct speed for vehicles only);
``timestamp_s`` = frame number / 10 Hz; the actor class comes from ``class`` + ``type_id``; the ego's
rear axle is ``rear_axle_to_center_m`` behind the logged centre (our ego's value by default). A NaN
``theta`` (CARLA's compass is NaN on some frames) is an error, like any non-finite pose field.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riskdistill.contracts.agent import EgoState
from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M
from riskdistill.data.storage import DataError, RecordedDataset
from riskdistill.geometry import rotation_z, wrap_angle
from riskdistill.io import atomic_write_bytes
from riskdistill.types import ActorClass, Command

SIM_HZ = 10.0
ANNO_DIR = "anno"
CAMERA_DIR = "camera"
# CARLA frame <-> ours: a reflection of y (also the map from our ego/world axes to CARLA's and back).
_F3 = np.diag([1.0, -1.0, 1.0])
# OpenCV camera axes (x right, y down, z forward) -> UE4 camera axes (x forward, y right, z up). Bench2Drive's
# ``cam2ego`` / ``world2cam`` use the UE4 camera axes (Bench2DriveZoo's converter multiplies by this matrix).
_UE4_FROM_OPENCV = np.eye(4)
_UE4_FROM_OPENCV[:3, :3] = [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]

# Our class -> (Bench2Drive class, a CARLA blueprint of that kind). The reader maps blueprints back.
CLASS_TO_B2D: dict[ActorClass, tuple[str, str]] = {
    ActorClass.CAR: ("vehicle", "vehicle.lincoln.mkz_2020"),
    ActorClass.VAN: ("vehicle", "vehicle.mercedes.sprinter"),
    ActorClass.TRUCK: ("vehicle", "vehicle.carlamotors.carlacola"),
    ActorClass.BUS: ("vehicle", "vehicle.mitsubishi.fusorosa"),
    ActorClass.EMERGENCY_VEHICLE: ("vehicle", "vehicle.ford.ambulance"),
    ActorClass.CYCLIST: ("vehicle", "vehicle.bh.crossbike"),
    ActorClass.PEDESTRIAN: ("walker", "walker.pedestrian.0001"),
    ActorClass.TRAFFIC_CONE: ("static", "static.prop.trafficcone01"),
    ActorClass.BARRIER: ("static", "static.prop.warningconstruction"),
    ActorClass.OPEN_DOOR: ("static", "static.prop.vehicledoor"),
}
_BLUEPRINT_HINTS: tuple[tuple[tuple[str, ...], ActorClass], ...] = (
    (("ambulance", "firetruck", "police"), ActorClass.EMERGENCY_VEHICLE),
    (
        ("crossbike", "bh.", "gazelle", "diamondback", "bike", "yamaha", "harley", "kawasaki", "vespa"),
        ActorClass.CYCLIST,
    ),
    (("fusorosa", "bus"), ActorClass.BUS),
    (("carlacola", "truck", "european_hgv", "cybertruck"), ActorClass.TRUCK),
    (("sprinter", "van", "t2"), ActorClass.VAN),
    (("cone",), ActorClass.TRAFFIC_CONE),
    (("door",), ActorClass.OPEN_DOOR),
    (("warning", "construction", "barrier"), ActorClass.BARRIER),
)


def camera_folder(camera: str) -> str:
    """``CAM_FRONT_LEFT`` -> ``rgb_front_left`` (Bench2Drive's image folder of that camera)."""
    name = camera[4:] if camera.upper().startswith("CAM_") else camera
    return f"rgb_{name.lower()}"


# ------------------------------------------------------------------------------------------ frame helpers
def _ego_from_world(pose: np.ndarray) -> np.ndarray:
    """4x4 world -> ego for an (x, y, yaw) pose (any right- or left-handed convention, z untouched)."""
    T = np.eye(4)
    T[:3, :3] = rotation_z(float(pose[2]))
    T[:2, 3] = pose[:2]
    return np.linalg.inv(T)


def _carla_pose_matrix(x: float, y: float, z: float, yaw_rad: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = rotation_z(yaw_rad)
    T[:3, 3] = (x, y, z)
    return T


def _T_carla_ego_from_our_ego(d: float) -> np.ndarray:
    """Our ego frame (rear axle, y left) -> CARLA ego frame (box centre, y right)."""
    T = np.eye(4)
    T[:3, :3] = _F3
    T[0, 3] = -d
    return T


def _rpy_deg_from_R(R_body: np.ndarray) -> list[float]:
    """Roll, pitch, yaw (degrees) of a forward-left-up camera body in our ego frame, as CARLA angles."""
    yaw = math.atan2(R_body[1, 0], R_body[0, 0])
    pitch_down = math.asin(float(np.clip(-R_body[2, 0], -1.0, 1.0)))
    roll = math.atan2(R_body[2, 1], R_body[2, 2])
    # CARLA: yaw clockwise, pitch positive up; the roll keeps its sign (the y reflection flips the roll's
    # matrix entries and CARLA's convention flips them back; checked against carla.Transform.get_matrix).
    return [math.degrees(roll), math.degrees(-pitch_down), math.degrees(-yaw)]


_R_FLU_FROM_OPENCV = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _f(x: Any) -> float:
    x = float(x)
    return 0.0 if not math.isfinite(x) else x


def _l(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float64).tolist()


# ------------------------------------------------------------------------------------------ export
def _frame_anno(rec: Any, d: float, cams: tuple[str, ...]) -> dict[str, Any]:
    ann = rec.annotation
    x, y, yaw = (float(v) for v in rec.ego_pose_world)
    cx, cy = x + d * math.cos(yaw), y + d * math.sin(yaw)  # box centre, our world
    ego_c = (cx, -cy, -yaw)  # CARLA world pose of the ego box centre
    T_world_ego_c = _carla_pose_matrix(ego_c[0], ego_c[1], 0.0, ego_c[2])
    world2ego = np.linalg.inv(T_world_ego_c)
    T_ce_oe = _T_carla_ego_from_our_ego(d)
    row = rec.row

    tp = rec.target_point_ego
    tw = (
        x + math.cos(yaw) * tp[0] - math.sin(yaw) * tp[1],
        y + math.sin(yaw) * tp[0] + math.cos(yaw) * tp[1],
    )
    target_c = [float(tw[0]), float(-tw[1])]
    h, w = (int(v) for v in ann["image_hw"])

    sensors: dict[str, Any] = {}
    for i, cam in enumerate(cams):
        K = np.asarray(ann["K"][i], dtype=np.float64)
        T_oe_cam = np.asarray(ann["T_ego_from_cam"][i], dtype=np.float64)
        cam2ego = T_ce_oe @ T_oe_cam @ np.linalg.inv(_UE4_FROM_OPENCV)  # UE4 camera axes -> CARLA ego
        R_body = T_oe_cam[:3, :3] @ _R_FLU_FROM_OPENCV.T
        sensors[cam] = {
            "location": _l(cam2ego[:3, 3]),
            "rotation": _rpy_deg_from_R(R_body),
            "intrinsic": _l(K),
            "world2cam": _l(np.linalg.inv(cam2ego) @ world2ego),
            "cam2ego": _l(cam2ego),
            "fov": math.degrees(2.0 * math.atan(w / (2.0 * K[0, 0]))),
            "image_size_x": w,
            "image_size_y": h,
        }

    speed = float(rec.ego.speed_mps)
    c_yaw, s_yaw = math.cos(ego_c[2]), math.sin(ego_c[2])
    ego_lwh = np.asarray(ann["ego_size_lwh"], dtype=np.float64)
    boxes: list[dict[str, Any]] = [
        {
            "class": "ego_vehicle",
            "id": 0,
            "type_id": "vehicle.lincoln.mkz_2020",
            "location": [ego_c[0], ego_c[1], 0.0],
            "rotation": [0.0, 0.0, math.degrees(ego_c[2])],
            "center": [ego_c[0], ego_c[1], float(ego_lwh[2]) / 2],
            "extent": _l(ego_lwh / 2),
            "speed": speed,
            "world2ego": _l(world2ego),
        }
    ]
    R_ow = rotation_z(yaw)[:2, :2]
    for k in range(len(ann["actor_id"])):
        cls = ActorClass(int(ann["actor_class"][k]))
        b2d_cls, type_id = CLASS_TO_B2D[cls]
        c_ego = np.asarray(ann["actor_center_ego"][k], dtype=np.float64)
        c_w = R_ow @ c_ego[:2] + (x, y)
        a_yaw_c = -(yaw + float(ann["actor_yaw_ego"][k]))
        lwh = np.asarray(ann["actor_size_lwh"][k], dtype=np.float64)
        loc = [float(c_w[0]), float(-c_w[1]), 0.0]
        boxes.append(
            {
                "class": b2d_cls,
                "id": int(ann["actor_id"][k]),
                "type_id": type_id,
                "location": loc,
                "rotation": [0.0, 0.0, math.degrees(a_yaw_c)],
                "center": [loc[0], loc[1], float(c_ego[2])],
                "extent": _l(lwh / 2),
                "speed": float(np.hypot(*ann["actor_velocity_ego"][k])),
                "distance": float(np.hypot(loc[0] - ego_c[0], loc[1] - ego_c[1])),
                "num_points": 0,
                "world2vehicle": _l(np.linalg.inv(_carla_pose_matrix(loc[0], loc[1], 0.0, a_yaw_c))),
            }
        )
    for k in range(len(ann["light_id"])):
        p = np.asarray(ann["light_position_ego"][k], dtype=np.float64)
        p_w = R_ow @ p[:2] + (x, y)
        boxes.append(
            {
                "class": "traffic_light",
                "id": int(ann["light_id"][k]),
                "type_id": "traffic.traffic_light",
                "location": [float(p_w[0]), float(-p_w[1]), float(p[2])],
                "rotation": [0.0, 0.0, math.degrees(-(yaw + float(ann["light_yaw_ego"][k])))],
                "state": int(ann["light_state"][k]),
                "distance": float(np.hypot(p_w[0] - cx, p_w[1] - cy)),
            }
        )

    accel = float(rec.ego.accel_mps2)
    return {
        "x": ego_c[0],
        "y": ego_c[1],
        "theta": float(wrap_angle(ego_c[2] + math.pi / 2)),  # IMU compass: 0 = north (-y), clockwise
        "speed": speed,
        "throttle": _f(row.get("action_throttle", 0.0)),
        "steer": -_f(rec.ego.steer),
        "brake": _f(row.get("action_brake", 0.0)),
        "acceleration": [accel * c_yaw, accel * s_yaw, 0.0],
        "angular_velocity": [0.0, 0.0, -math.degrees(float(rec.ego.yaw_rate_radps))],
        "command_near": int(rec.command),
        "command_far": int(rec.command),
        "x_command_near": target_c[0],
        "y_command_near": target_c[1],
        "x_command_far": target_c[0],
        "y_command_far": target_c[1],
        "x_target": target_c[0],
        "y_target": target_c[1],
        "weather": {k: _f(v) for k, v in rec.weather.items()},
        "sensors": sensors,
        "bounding_boxes": boxes,
    }


def export_bench2drive_clip(
    dataset_dir: str | Path,
    route_id: str,
    out_dir: str | Path,
    rear_axle_to_center_m: float = EGO_REAR_AXLE_TO_CENTER_M,
) -> Path:
    """Write one recorded route of ``dataset_dir`` as a Bench2Drive clip folder ``out_dir``.

    Files: ``anno/<step:05d>.json.gz`` and ``camera/rgb_<cam>/<step:05d>.jpg`` (the recorded JPEGs, copied
    unchanged). Returns ``out_dir``. Raises DataError for an unknown route.
    """
    ds = RecordedDataset(dataset_dir)
    out = Path(out_dir)
    idx = [i for i, r in enumerate(ds.table.column("route_id").to_pylist()) if r == route_id]
    if not idx:
        raise DataError(f"{ds.root / 'frames.parquet'}: route_id {route_id!r} not in the data set")
    cams = ds.camera_names
    (out / ANNO_DIR).mkdir(parents=True, exist_ok=True)
    for cam in cams:
        (out / CAMERA_DIR / camera_folder(cam)).mkdir(parents=True, exist_ok=True)
    for i in idx:
        rec = ds.frame(i)
        name = f"{rec.step:05d}"
        anno = _frame_anno(rec, rear_axle_to_center_m, cams)
        data = gzip.compress(json.dumps(anno).encode(), mtime=0)
        atomic_write_bytes(out / ANNO_DIR / f"{name}.json.gz", data)
        for cam, rel in zip(cams, rec.image_paths, strict=True):
            shutil.copyfile(ds.root / rel, out / CAMERA_DIR / camera_folder(cam) / f"{name}.jpg")
    return out


# ------------------------------------------------------------------------------------------ reading
@dataclass
class B2DFrame:
    """One Bench2Drive frame in this project's conventions (our ego frame: x fwd, y left, rear axle)."""

    clip_dir: Path
    anno_path: Path
    frame: int  # 10 Hz frame number (the file name)
    timestamp_s: float
    ego: EgoState
    ego_pose_world: np.ndarray  # [3] x, y, yaw of the rear axle, our (y-left) world frame
    command: Command
    command_far: Command
    target_point_ego: np.ndarray  # [2] (x_target, y_target) in our ego frame
    camera_names: tuple[str, ...]
    image_paths: tuple[Path, ...]  # absolute, inside clip_dir, in camera_names order
    image_hw: tuple[int, int]
    K: np.ndarray  # [N, 3, 3]
    T_ego_from_cam: np.ndarray  # [N, 4, 4] OpenCV camera -> our ego frame
    actor_id: np.ndarray  # [A] int32
    actor_class: np.ndarray  # [A] int32 ActorClass
    actor_center_ego: np.ndarray  # [A, 3]
    actor_size_lwh: np.ndarray  # [A, 3]
    actor_yaw_ego: np.ndarray  # [A] wrapped to [-pi, pi)
    actor_velocity_ego: np.ndarray  # [A, 2] speed along the heading (approximation)
    light_id: np.ndarray  # [T]
    light_position_ego: np.ndarray  # [T, 3]
    light_state: np.ndarray  # [T] LightState codes
    weather: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def images(self) -> np.ndarray:
        """All cameras ``[N, H, W, 3]`` uint8."""
        from PIL import Image

        out = []
        for p in self.image_paths:
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB")))
        return np.stack(out)


def _class_of(cls: str, type_id: str) -> ActorClass:
    if cls == "walker":
        return ActorClass.PEDESTRIAN
    t = type_id.lower()
    for hints, ac in _BLUEPRINT_HINTS:
        if any(h in t for h in hints):
            return ac
    return ActorClass.BARRIER if cls == "static" else ActorClass.CAR


class Bench2DriveClipReader:
    """Frames of a Bench2Drive clip folder (real or exported), converted to our conventions.

    ``reader[i]`` / ``iter(reader)`` give :class:`B2DFrame`. Raises DataError (naming the file and the
    field) for a missing field, a non-finite value, a corrupt ``.json.gz`` or a path outside the clip.
    """

    def __init__(self, clip_dir: str | Path, rear_axle_to_center_m: float = EGO_REAR_AXLE_TO_CENTER_M):
        self.root = Path(clip_dir)
        self._root_resolved = self.root.resolve()
        self.d = float(rear_axle_to_center_m)
        anno = self.root / ANNO_DIR
        if not anno.is_dir():
            raise DataError(f"{anno}: missing; {self.root} is not a Bench2Drive clip")
        self.anno_paths = sorted(anno.glob("*.json.gz"))
        if not self.anno_paths:
            raise DataError(f"{anno}: no *.json.gz annotation files")

    def __len__(self) -> int:
        return len(self.anno_paths)

    def __iter__(self) -> Iterator[B2DFrame]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> B2DFrame:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame index {i} out of range for {n} frames in {self.root}")
        return self._read(self.anno_paths[i % n])

    # -------------------------------------------------------------------------------------- helpers
    def _load(self, path: Path) -> dict[str, Any]:
        try:
            with gzip.open(path, "rb") as fh:
                data = json.loads(fh.read().decode("utf-8"))
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(
                f"{path}: not a readable gzip JSON annotation ({type(exc).__name__}: {exc})"
            ) from exc
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object")
        return data

    @staticmethod
    def _get(obj: dict[str, Any], key: str, path: Path, where: str) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            raise DataError(f"{path}: missing field {where}{key!r}")
        return obj[key]

    def _num(
        self, obj: dict[str, Any], key: str, path: Path, where: str = "", shape: tuple = ()
    ) -> np.ndarray:
        v = self._get(obj, key, path, where)
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: field {where}{key!r} is not numeric ({v!r})") from exc
        if shape and a.shape != shape:
            raise DataError(f"{path}: field {where}{key!r} has shape {a.shape}, expected {shape}")
        if not np.all(np.isfinite(a)):
            raise DataError(f"{path}: field {where}{key!r} is not finite ({v!r})")
        return a

    def _inside(self, rel: str, path: Path, where: str) -> Path:
        p = self.root / rel
        try:
            p.resolve().relative_to(self._root_resolved)
        except ValueError:
            raise DataError(f"{path}: field {where} points outside the clip {self.root}: {rel!r}") from None
        return p

    def _read(self, path: Path) -> B2DFrame:
        a = self._load(path)
        stem = path.name[: -len(".json.gz")]
        try:
            frame = int(stem)
        except ValueError:
            raise DataError(f"{path}: file name is not a frame number") from None
        d = self.d
        xc, yc, th = (float(self._num(a, k, path)) for k in ("x", "y", "theta"))
        yaw = float(wrap_angle(math.pi / 2 - th))  # compass -> our world yaw (CARLA yaw = theta - pi/2)
        ox, oy = xc, -yc  # box centre, our world
        pose = np.array([ox - d * math.cos(yaw), oy - d * math.sin(yaw), yaw])
        world_to_ego = _ego_from_world(pose)

        def to_ego(p_c: np.ndarray) -> np.ndarray:  # CARLA world xy -> our ego xy
            q = np.array([p_c[0], -p_c[1], 0.0, 1.0])
            return (world_to_ego @ q)[:2]

        acc = self._num(a, "acceleration", path, shape=(3,))
        angv = self._num(a, "angular_velocity", path, shape=(3,))
        yaw_c = -yaw
        ego = EgoState(
            speed_mps=float(self._num(a, "speed", path)),
            accel_mps2=float(acc[0] * math.cos(yaw_c) + acc[1] * math.sin(yaw_c)),
            yaw_rate_radps=-math.radians(float(angv[2])),
            steer=-float(self._num(a, "steer", path)),
        )
        cmd_raw = [int(self._num(a, k, path)) for k in ("command_near", "command_far")]
        try:
            cmds = [Command(c) for c in cmd_raw]
        except ValueError as exc:
            raise DataError(
                f"{path}: field 'command_near'/'command_far' has an unknown value {cmd_raw}"
            ) from exc
        target = to_ego(
            np.array([float(self._num(a, "x_target", path)), float(self._num(a, "y_target", path))])
        )

        sensors = self._get(a, "sensors", path, "")
        if not isinstance(sensors, dict):
            raise DataError(f"{path}: field 'sensors' is not an object")
        T_oe_ce = np.linalg.inv(_T_carla_ego_from_our_ego(d))
        names, paths, Ks, Ts = [], [], [], []
        hw: tuple[int, int] | None = None
        for cam, s in sensors.items():
            if not str(cam).upper().startswith("CAM_"):
                continue
            where = f"sensors.{cam}."
            Ks.append(self._num(s, "intrinsic", path, where, (3, 3)))
            Ts.append(T_oe_ce @ self._num(s, "cam2ego", path, where, (4, 4)) @ _UE4_FROM_OPENCV)
            w = int(self._num(s, "image_size_x", path, where))
            h = int(self._num(s, "image_size_y", path, where))
            hw = hw or (h, w)
            names.append(str(cam))
            rel = f"{CAMERA_DIR}/{camera_folder(str(cam))}/{stem}.jpg"
            paths.append(self._inside(rel, path, f"sensors.{cam} (image {rel})"))
        if not names:
            raise DataError(f"{path}: field 'sensors' has no camera (CAM_*) entry")

        boxes = self._get(a, "bounding_boxes", path, "")
        if not isinstance(boxes, list):
            raise DataError(f"{path}: field 'bounding_boxes' is not a list")
        ids, classes, centers, sizes, yaws, vels = [], [], [], [], [], []
        l_ids, l_pos, l_state = [], [], []
        for j, b in enumerate(boxes):
            where = f"bounding_boxes[{j}]."
            cls = str(self._get(b, "class", path, where))
            if cls in ("vehicle", "walker", "static"):
                ids.append(int(self._num(b, "id", path, where)))
                classes.append(int(_class_of(cls, str(b.get("type_id", "")))))
                c = self._num(b, "center", path, where, (3,))
                ext = self._num(b, "extent", path, where, (3,))
                rot = self._num(b, "rotation", path, where, (3,))
                y_ego = float(wrap_angle(-math.radians(float(rot[2])) - yaw))
                spd = float(self._num(b, "speed", path, where))
                centers.append([*to_ego(c), c[2]])
                sizes.append(2.0 * ext)
                yaws.append(y_ego)
                vels.append([spd * math.cos(y_ego), spd * math.sin(y_ego)])
            elif cls == "traffic_light":
                l_ids.append(int(self._num(b, "id", path, where)))
                loc = self._num(b, "location", path, where, (3,))
                l_pos.append([*to_ego(loc), loc[2]])
                l_state.append(int(self._num(b, "state", path, where)))
        return B2DFrame(
            clip_dir=self.root,
            anno_path=path,
            frame=frame,
            timestamp_s=frame / SIM_HZ,
            ego=ego,
            ego_pose_world=pose,
            command=cmds[0],
            command_far=cmds[1],
            target_point_ego=target,
            camera_names=tuple(names),
            image_paths=tuple(paths),
            image_hw=hw or (0, 0),
            K=np.stack(Ks),
            T_ego_from_cam=np.stack(Ts),
            actor_id=np.asarray(ids, dtype=np.int32),
            actor_class=np.asarray(classes, dtype=np.int32),
            actor_center_ego=np.asarray(centers, dtype=np.float64).reshape(-1, 3),
            actor_size_lwh=np.asarray(sizes, dtype=np.float64).reshape(-1, 3),
            actor_yaw_ego=np.asarray(yaws, dtype=np.float64),
            actor_velocity_ego=np.asarray(vels, dtype=np.float64).reshape(-1, 2),
            light_id=np.asarray(l_ids, dtype=np.int32),
            light_position_ego=np.asarray(l_pos, dtype=np.float64).reshape(-1, 3),
            light_state=np.asarray(l_state, dtype=np.int32),
            weather=dict(a.get("weather") or {}),
            raw=a,
        )
