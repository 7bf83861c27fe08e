"""nuScenes-style data sets <-> this project's conventions (see ``docs/adapters.md``).

Export (:func:`export_nuscenes_scene`, no devkit needed) writes one recorded route as a nuScenes v1.0-style
data set that the official devkit loads (``NuScenes(version=..., dataroot=...)``)::

    OUT/<version>/{scene,sample,sample_data,ego_pose,calibrated_sensor,sensor,sample_annotation,
                   instance,category,attribute,visibility,log,map}.json
    OUT/samples/CAM_*/<log>__<CAM>__<timestamp_us>.jpg      the recorded JPEGs, copied unchanged
    OUT/maps/<token>.png                                    a 1x1 placeholder map mask (no map is exported)

Reading (:class:`NuScenesReader`) uses the official devkit (an optional extra) and returns one
:class:`NuScenesSample` per key frame, in our conventions.

Frames. The nuScenes ego frame is x forward, y left, z up with its origin at the centre of the rear axle on
the ground (the devkit's sensor heights are measured from there): the same as ours, so ego-frame values need
no axis change. The global frame is right-handed, z up, like our world frame. Camera extrinsics
(``calibrated_sensor``) are sensor -> ego with the camera frame x right, y down, z forward: exactly our OpenCV
``T_ego_from_cam``. What differs, and is converted here only:

- rotations are quaternions ``[w, x, y, z]`` (ours: yaw angles / rotation matrices);
- ``sample_annotation`` boxes are in the GLOBAL frame (ours: the frame's ego frame), ``translation`` is the
  box centre (z = half the height on our flat ground), ``size`` is ``[width, length, height]`` (ours: lwh);
- timestamps are integer microseconds: ``EPOCH_US + round(timestamp_s * 1e6)`` on export;
- classes: :data:`CATEGORY_OF` (export) and :func:`class_of_category` (read). nuScenes has no van and no open
  door: a van is exported as ``vehicle.car`` and an open door as ``movable_object.debris``. The exact class is
  kept in the extra instance field ``riskdistill_class`` (ignored by the devkit), so our own exports read back
  losslessly. A cyclist is exported as one ``vehicle.bicycle`` box with the attribute ``cycle.with_rider``
  (real nuScenes annotates the rider as a separate pedestrian).

Approximations on export: the ego pose and boxes have z from our flat ground (ego z = 0, no pitch or roll);
``visibility`` is ``v80-100`` when the actor has pixels in some camera and ``v0-40`` otherwise; lidar/radar
point counts are 0; there is no lidar, radar or map (the map mask is a placeholder); every recorded frame is
a key frame (``sample``), typically at 2 Hz (``--every 5``) like nuScenes key frames.
"""

from __future__ import annotations

import json
import math
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from riskdistill.data.storage import DataError, RecordedDataset
from riskdistill.types import ActorClass

__all__ = [
    "CATEGORY_OF",
    "EPOCH_US",
    "NuScenesReader",
    "NuScenesSample",
    "class_of_category",
    "export_nuscenes_scene",
]

DEFAULT_VERSION = "v1.0-riskdistill"
EPOCH_US = 1_600_000_000_000_000  # 2020-09-13T12:26:40Z: recorded time 0 on export
TABLES = (
    "category",
    "attribute",
    "visibility",
    "instance",
    "sensor",
    "calibrated_sensor",
    "ego_pose",
    "log",
    "scene",
    "sample",
    "sample_data",
    "sample_annotation",
    "map",
)
INSTALL_HINT = (
    "the nuScenes reader needs the optional devkit: pip install --no-deps nuscenes-devkit==1.2.0, then its "
    "needs (see docs/adapters.md)"
)

CATEGORY_OF: dict[ActorClass, str] = {
    ActorClass.CAR: "vehicle.car",
    ActorClass.VAN: "vehicle.car",
    ActorClass.TRUCK: "vehicle.truck",
    ActorClass.BUS: "vehicle.bus.rigid",
    ActorClass.PEDESTRIAN: "human.pedestrian.adult",
    ActorClass.CYCLIST: "vehicle.bicycle",
    ActorClass.TRAFFIC_CONE: "movable_object.trafficcone",
    ActorClass.BARRIER: "movable_object.barrier",
    ActorClass.OPEN_DOOR: "movable_object.debris",
    ActorClass.EMERGENCY_VEHICLE: "vehicle.emergency.police",
}
# the official nuScenes v1.0 category and attribute names (written in full so the tables look standard)
_CATEGORIES = (
    "animal",
    "human.pedestrian.adult",
    "human.pedestrian.child",
    "human.pedestrian.construction_worker",
    "human.pedestrian.personal_mobility",
    "human.pedestrian.police_officer",
    "human.pedestrian.stroller",
    "human.pedestrian.wheelchair",
    "movable_object.barrier",
    "movable_object.debris",
    "movable_object.pushable_pullable",
    "movable_object.trafficcone",
    "static_object.bicycle_rack",
    "vehicle.bicycle",
    "vehicle.bus.bendy",
    "vehicle.bus.rigid",
    "vehicle.car",
    "vehicle.construction",
    "vehicle.emergency.ambulance",
    "vehicle.emergency.police",
    "vehicle.motorcycle",
    "vehicle.trailer",
    "vehicle.truck",
)
_ATTRIBUTES = (
    "vehicle.moving",
    "vehicle.stopped",
    "vehicle.parked",
    "cycle.with_rider",
    "cycle.without_rider",
    "pedestrian.sitting_lying_down",
    "pedestrian.standing",
    "pedestrian.moving",
)
_VISIBILITY = (("1", "v0-40"), ("2", "v40-60"), ("3", "v60-80"), ("4", "v80-100"))
_MOVING_MPS = 0.2


def class_of_category(name: str) -> ActorClass | None:
    """Our class of a nuScenes category name; None for categories we do not model (animal, debris of real
    data, pushable_pullable, bicycle_rack)."""
    if name.startswith("human.pedestrian"):
        return ActorClass.PEDESTRIAN
    if name in ("vehicle.bicycle", "vehicle.motorcycle"):
        return ActorClass.CYCLIST
    if name == "vehicle.car":
        return ActorClass.CAR
    if name in ("vehicle.truck", "vehicle.trailer", "vehicle.construction"):
        return ActorClass.TRUCK
    if name.startswith("vehicle.bus"):
        return ActorClass.BUS
    if name.startswith("vehicle.emergency"):
        return ActorClass.EMERGENCY_VEHICLE
    if name == "movable_object.trafficcone":
        return ActorClass.TRAFFIC_CONE
    if name == "movable_object.barrier":
        return ActorClass.BARRIER
    return None


# ------------------------------------------------------------------------------------------ rotations
def quat_from_matrix(R: np.ndarray) -> list[float]:
    """Unit quaternion ``[w, x, y, z]`` (w >= 0) of a 3x3 rotation matrix."""
    R = np.asarray(R, dtype=np.float64)
    tr = R[0, 0] + R[1, 1] + R[2, 2]
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    qa = np.array(q) / np.linalg.norm(q)
    if qa[0] < 0:
        qa = -qa
    return [float(v) for v in qa]


def matrix_from_quat(q: Any) -> np.ndarray:
    """3x3 rotation matrix of a quaternion ``[w, x, y, z]`` (normalised first)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _quat_yaw(yaw: float) -> list[float]:
    return [math.cos(yaw / 2.0), 0.0, 0.0, math.sin(yaw / 2.0)]


def _pose_matrix(translation: Any, rotation: Any) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = matrix_from_quat(rotation)
    T[:3, 3] = translation
    return T


# ------------------------------------------------------------------------------------------ export
def _token(*parts: object) -> str:
    """Deterministic 32-hex token (nuScenes tokens are 32 hex digits)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "riskdistill/nuscenes/" + "/".join(map(str, parts))).hex


def _link(records: list[dict[str, Any]]) -> None:
    for i, r in enumerate(records):
        r["prev"] = records[i - 1]["token"] if i > 0 else ""
        r["next"] = records[i + 1]["token"] if i + 1 < len(records) else ""


def export_nuscenes_scene(
    dataset_dir: str | Path, route_id: str, out_root: str | Path, version: str = DEFAULT_VERSION
) -> Path:
    """Write route ``route_id`` of the recorded data set ``dataset_dir`` as a one-scene nuScenes-style data
    set under ``out_root`` (tables in ``out_root/<version>``, images in ``out_root/samples``). Returns
    ``out_root``. Raises DataError for an unknown route or when ``out_root/<version>`` already holds tables
    (one route per export; merging scenes is not supported)."""
    ds = RecordedDataset(dataset_dir)
    out = Path(out_root)
    idx = [i for i, r in enumerate(ds.table.column("route_id").to_pylist()) if r == route_id]
    if not idx:
        raise DataError(f"{ds.root / 'frames.parquet'}: route_id {route_id!r} not in the data set")
    table_dir = out / version
    if table_dir.exists() and any(table_dir.glob("*.json")):
        raise DataError(f"{table_dir}: already holds nuScenes tables; export each route to a new out_root")
    scene = _SceneExport(ds, route_id, out)
    for i in idx:
        scene.add_frame(ds.frame(i))
    tables = scene.tables()
    table_dir.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        (table_dir / f"{name}.json").write_text(json.dumps(tables[name], indent=0))
    return out


class _SceneExport:
    """The nuScenes tables of one route, built frame by frame (images are copied as frames are added)."""

    def __init__(self, ds: RecordedDataset, route_id: str, out: Path):
        self.ds, self.route_id, self.out = ds, route_id, out
        self.cams = ds.camera_names
        self.hw = tuple(int(v) for v in ds.manifest["image_hw"])
        self.log_name = f"riskdistill-{route_id}"
        self.log_token, self.scene_token = _token(route_id, "log"), _token(route_id, "scene")
        self.attr_token = {n: _token("attribute", n) for n in _ATTRIBUTES}
        self.calibrated: dict[str, dict[str, Any]] = {}
        self.ego_pose: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self.per_cam: dict[str, list[dict[str, Any]]] = {c: [] for c in self.cams}
        self.per_inst: dict[int, list[dict[str, Any]]] = {}
        self.inst_class: dict[int, int] = {}
        for c in self.cams:
            (out / "samples" / c).mkdir(parents=True, exist_ok=True)

    def add_frame(self, rec: Any) -> None:
        a = rec.annotation
        ts = EPOCH_US + round(rec.timestamp_s * 1e6)
        x, y, yaw = (float(v) for v in rec.ego_pose_world)
        sample_token = _token(self.route_id, rec.step, "sample")
        self.samples.append({"token": sample_token, "timestamp": ts, "scene_token": self.scene_token})
        pose_token = _token(self.route_id, rec.step, "ego_pose")
        self.ego_pose.append(
            {"token": pose_token, "timestamp": ts, "translation": [x, y, 0.0], "rotation": _quat_yaw(yaw)}
        )
        for ci, cam in enumerate(self.cams):
            self._add_sample_data(rec, a, ci, cam, ts, sample_token, pose_token)
        c_ego = np.asarray(a["actor_center_ego"], np.float64)
        for k, aid in enumerate(a["actor_id"].tolist()):
            ann = self._annotation(rec, a, k, aid, c_ego[k], (x, y, yaw), sample_token)
            self.annotations.append(ann)
            self.per_inst.setdefault(aid, []).append(ann)

    def _add_sample_data(
        self, rec: Any, a: Any, ci: int, cam: str, ts: int, sample_token: str, pose_token: str
    ) -> None:
        T, K = np.asarray(a["T_ego_from_cam"][ci], float), np.asarray(a["K"][ci], float)
        cs = {
            "sensor_token": _token("sensor", cam),
            "translation": [float(v) for v in T[:3, 3]],
            "rotation": quat_from_matrix(T[:3, :3]),
            "camera_intrinsic": K.tolist(),
        }
        cs_token = _token(self.route_id, "calibrated_sensor", json.dumps(cs, sort_keys=True))
        self.calibrated.setdefault(cs_token, {"token": cs_token, **cs})
        filename = f"samples/{cam}/{self.log_name}__{cam}__{ts}.jpg"
        shutil.copyfile(rec.image_file(ci), self.out / filename)
        self.per_cam[cam].append(
            {
                "token": _token(self.route_id, rec.step, cam, "sample_data"),
                "sample_token": sample_token,
                "ego_pose_token": pose_token,
                "calibrated_sensor_token": cs_token,
                "timestamp": ts,
                "fileformat": "jpg",
                "is_key_frame": True,
                "height": self.hw[0],
                "width": self.hw[1],
                "filename": filename,
            }
        )

    def _annotation(
        self,
        rec: Any,
        a: Any,
        k: int,
        aid: int,
        c: np.ndarray,
        ego: tuple[float, float, float],
        sample_token: str,
    ) -> dict[str, Any]:
        """Actor ``k`` of the frame as a sample_annotation in the world frame."""
        x, y, yaw = ego
        cls = ActorClass(int(a["actor_class"][k]))
        self.inst_class[aid] = int(cls)
        cx, cyy, cz = c
        cy, sy = math.cos(yaw), math.sin(yaw)
        l_, w_, h_ = (float(v) for v in a["actor_size_lwh"][k])
        speed = float(np.hypot(*a["actor_velocity_ego"][k]))
        if cls.is_vehicle:
            attrs = ["vehicle.moving" if speed > _MOVING_MPS else "vehicle.stopped"]
        elif cls == ActorClass.PEDESTRIAN:
            attrs = ["pedestrian.moving" if speed > _MOVING_MPS else "pedestrian.standing"]
        elif cls == ActorClass.CYCLIST:
            attrs = ["cycle.with_rider"]
        else:
            attrs = []
        visible = bool(np.any(a["actor_visible_px"][k] > 0))
        return {
            "token": _token(self.route_id, rec.step, aid, "sample_annotation"),
            "sample_token": sample_token,
            "instance_token": _token(self.route_id, aid, "instance"),
            "visibility_token": "4" if visible else "1",
            "attribute_tokens": [self.attr_token[n] for n in attrs],
            "translation": [x + cy * cx - sy * cyy, y + sy * cx + cy * cyy, float(cz)],
            "size": [w_, l_, h_],
            "rotation": _quat_yaw(yaw + float(a["actor_yaw_ego"][k])),
            "num_lidar_pts": 0,
            "num_radar_pts": 0,
        }

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Every table, with the prev/next links of samples, sample data and annotations filled in."""
        route_id, out = self.route_id, self.out
        category = [
            {"token": _token("category", n), "name": n, "description": n, "index": i}
            for i, n in enumerate(_CATEGORIES)
        ]
        cat_token = {c["name"]: c["token"] for c in category}
        _link(self.samples)
        sample_data: list[dict[str, Any]] = []
        for recs in self.per_cam.values():
            _link(recs)
            sample_data += recs
        instance = []
        for aid, anns in self.per_inst.items():
            _link(anns)
            instance.append(
                {
                    "token": _token(route_id, aid, "instance"),
                    "category_token": cat_token[CATEGORY_OF[ActorClass(self.inst_class[aid])]],
                    "nbr_annotations": len(anns),
                    "first_annotation_token": anns[0]["token"],
                    "last_annotation_token": anns[-1]["token"],
                    "riskdistill_class": self.inst_class[aid],
                    "riskdistill_actor_id": aid,
                }
            )
        route = next((r for r in self.ds.manifest.get("routes", []) if r["route_id"] == route_id), {})
        map_token = _token("map")
        (out / "maps").mkdir(parents=True, exist_ok=True)
        map_file = f"maps/{map_token}.png"
        _write_placeholder_png(out / map_file)
        return {
            "category": category,
            "attribute": [{"token": t, "name": n, "description": n} for n, t in self.attr_token.items()],
            "visibility": [
                {"token": t, "level": lv, "description": f"visibility of whole object is {lv}"}
                for t, lv in _VISIBILITY
            ],
            "instance": instance,
            "sensor": [{"token": _token("sensor", c), "channel": c, "modality": "camera"} for c in self.cams],
            "calibrated_sensor": list(self.calibrated.values()),
            "ego_pose": self.ego_pose,
            "log": [
                {
                    "token": self.log_token,
                    "logfile": self.log_name,
                    "vehicle": "riskdistill-ego",
                    "date_captured": "2020-09-13",
                    "location": str(route.get("layout_family", "riskdistill-sim")),
                }
            ],
            "scene": [
                {
                    "token": self.scene_token,
                    "log_token": self.log_token,
                    "nbr_samples": len(self.samples),
                    "first_sample_token": self.samples[0]["token"],
                    "last_sample_token": self.samples[-1]["token"],
                    "name": route_id,
                    "description": f"riskdistill route {route_id}: {route.get('scenario', '')}",
                }
            ],
            "sample": self.samples,
            "sample_data": sample_data,
            "sample_annotation": self.annotations,
            "map": [
                {
                    "token": map_token,
                    "log_tokens": [self.log_token],
                    "category": "semantic_prior",
                    "filename": map_file,
                }
            ],
        }


def _write_placeholder_png(path: Path) -> None:
    from PIL import Image

    Image.new("L", (1, 1), 0).save(path)


# ------------------------------------------------------------------------------------------ reading
@dataclass
class NuScenesSample:
    """One nuScenes key frame in our conventions (ego frame: x forward, y left, z up, rear axle origin).

    ``camera_names`` orders every per-camera array; ``A`` boxes (categories we do not model are dropped)."""

    token: str
    scene_name: str
    timestamp_us: int
    time_s: float  # seconds since the scene's first sample
    ego_pose_world: np.ndarray  # [3] x, y, yaw of the rear axle in the global frame
    T_world_from_ego: np.ndarray  # [4, 4] full 3D ego pose (z, pitch, roll of real data kept here)
    camera_names: tuple[str, ...]
    image_paths: tuple[Path, ...]  # absolute paths
    image_hw: np.ndarray  # [N, 2] height, width per camera
    K: np.ndarray  # [N, 3, 3]
    T_ego_from_cam: np.ndarray  # [N, 4, 4] OpenCV camera -> ego
    box_token: tuple[str, ...]
    instance_token: tuple[str, ...]
    category: tuple[str, ...]  # nuScenes category names
    actor_class: np.ndarray  # [A] int32 ActorClass
    center_ego: np.ndarray  # [A, 3]
    size_lwh: np.ndarray  # [A, 3]
    yaw_ego: np.ndarray  # [A] heading relative to the ego, wrapped to [-pi, pi)
    velocity_ego: np.ndarray  # [A, 2] from the devkit's box_velocity (finite differences), NaN if unknown


def _import_nuscenes() -> Any:
    try:
        from nuscenes.nuscenes import NuScenes
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return NuScenes


class NuScenesReader:
    """Key frames of a nuScenes(-style) data set, read with the official devkit, in our conventions.

    ``reader[i]`` / ``iter(reader)`` give :class:`NuScenesSample` in scene order; ``reader.nusc`` is the
    devkit's ``NuScenes`` object. ``cameras``: the channels to read (default: every camera channel of the
    first sample, sorted as nuScenes lists them)."""

    def __init__(
        self,
        dataroot: str | Path,
        version: str = DEFAULT_VERSION,
        cameras: tuple[str, ...] | None = None,
        verbose: bool = False,
    ):
        NuScenes = _import_nuscenes()
        self.dataroot = Path(dataroot)
        if not (self.dataroot / version).is_dir():
            raise DataError(f"{self.dataroot / version}: missing; no nuScenes tables of version {version!r}")
        self.nusc = NuScenes(version=version, dataroot=str(self.dataroot), verbose=verbose)
        self.tokens: list[str] = []
        self._scene_of: dict[str, dict[str, Any]] = {}
        for scene in self.nusc.scene:
            tok = scene["first_sample_token"]
            while tok:
                self.tokens.append(tok)
                self._scene_of[tok] = scene
                tok = self.nusc.get("sample", tok)["next"]
        if cameras is None and self.tokens:
            data = self.nusc.get("sample", self.tokens[0])["data"]
            cameras = tuple(
                ch for ch in data if self.nusc.get("sample_data", data[ch])["sensor_modality"] == "camera"
            )
        self.cameras: tuple[str, ...] = tuple(cameras or ())

    def __len__(self) -> int:
        return len(self.tokens)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, i: int) -> NuScenesSample:
        nusc = self.nusc
        token = self.tokens[i]
        sample = nusc.get("sample", token)
        scene = self._scene_of[token]
        t0 = nusc.get("sample", scene["first_sample_token"])["timestamp"]
        Ks, Ts, paths, hws = [], [], [], []
        pose = None
        for cam in self.cameras:
            if cam not in sample["data"]:
                raise DataError(f"{self.dataroot}: sample {token} has no {cam} image")
            sd = nusc.get("sample_data", sample["data"][cam])
            cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
            Ks.append(np.asarray(cs["camera_intrinsic"], np.float64))
            Ts.append(_pose_matrix(cs["translation"], cs["rotation"]))
            paths.append(Path(nusc.get_sample_data_path(sd["token"])))
            hws.append((sd["height"], sd["width"]))
            if pose is None:
                pose = nusc.get("ego_pose", sd["ego_pose_token"])
        if pose is None:  # no camera asked: use any sample_data for the pose
            sd = nusc.get("sample_data", next(iter(sample["data"].values())))
            pose = nusc.get("ego_pose", sd["ego_pose_token"])
        T_we = _pose_matrix(pose["translation"], pose["rotation"])
        T_ew = np.linalg.inv(T_we)
        fwd = T_we[:3, 0]
        ego_yaw = math.atan2(fwd[1], fwd[0])

        tokens, insts, cats, classes, centers, sizes, yaws, vels = [], [], [], [], [], [], [], []
        for ann_token in sample["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            inst = nusc.get("instance", ann["instance_token"])
            cls = inst.get("riskdistill_class")
            cls = ActorClass(int(cls)) if cls is not None else class_of_category(ann["category_name"])
            if cls is None:
                continue
            R_box = T_ew[:3, :3] @ matrix_from_quat(ann["rotation"])
            v_world = np.asarray(nusc.box_velocity(ann_token), np.float64)
            tokens.append(ann_token)
            insts.append(ann["instance_token"])
            cats.append(ann["category_name"])
            classes.append(int(cls))
            centers.append(T_ew[:3, :3] @ np.asarray(ann["translation"], np.float64) + T_ew[:3, 3])
            w_, l_, h_ = ann["size"]
            sizes.append((l_, w_, h_))
            yaws.append(math.atan2(R_box[1, 0], R_box[0, 0]))
            vels.append((T_ew[:3, :3] @ v_world)[:2])
        yaw_arr = np.asarray(yaws, np.float64)
        return NuScenesSample(
            token=token,
            scene_name=scene["name"],
            timestamp_us=int(sample["timestamp"]),
            time_s=(sample["timestamp"] - t0) * 1e-6,
            ego_pose_world=np.array([T_we[0, 3], T_we[1, 3], ego_yaw]),
            T_world_from_ego=T_we,
            camera_names=self.cameras,
            image_paths=tuple(paths),
            image_hw=np.asarray(hws, np.int64).reshape(-1, 2),
            K=np.asarray(Ks, np.float64).reshape(-1, 3, 3),
            T_ego_from_cam=np.asarray(Ts, np.float64).reshape(-1, 4, 4),
            box_token=tuple(tokens),
            instance_token=tuple(insts),
            category=tuple(cats),
            actor_class=np.asarray(classes, np.int32),
            center_ego=np.asarray(centers, np.float64).reshape(-1, 3),
            size_lwh=np.asarray(sizes, np.float64).reshape(-1, 3),
            yaw_ego=(yaw_arr + np.pi) % (2 * np.pi) - np.pi,
            velocity_ego=np.asarray(vels, np.float64).reshape(-1, 2),
        )
