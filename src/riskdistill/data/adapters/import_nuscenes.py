"""Import nuScenes scenes as a recorded data set (format v1); the shared machinery is in :mod:`.importer`.

    import_nuscenes("/data/sets/nuscenes", "v1.0-mini", "data/nus-mini", scenes=["scene-0061"])

Read through :class:`~riskdistill.data.adapters.nuscenes.NuScenesReader` (the official devkit, an optional
extra; see ``docs/adapters.md``). One scene becomes one route (``route_id`` = the scene name, ``scenario``
``"nuscenes"``, ``layout_family`` the log's location), one key frame (2 Hz) one frame, ``step`` = round(10 *
seconds since the scene's first key frame). The pose track behind the future, the target point and the
ego motion is every ``sample_data`` of the first camera (key frames and sweeps, about 12 Hz in real data);
a frame's pose is that camera's ego pose at the key frame, as the reader gives it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from riskdistill.contracts.agent import EgoState
from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_M
from riskdistill.data import format as fmt
from riskdistill.data.adapters.importer import (
    IMPORTERS,
    ImportRequest,
    ImportResult,
    ImportSettings,
    SourceFrame,
    SourceRoute,
    ego_motion_from_track,
    pose_track,
    resolve_cameras_and_hw,
    route_id_of,
    run_import,
)
from riskdistill.data.adapters.nuscenes import NuScenesReader, matrix_from_quat
from riskdistill.data.storage import DataError

__all__ = ["import_nuscenes"]

APPROXIMATIONS = (
    "command: LEFT / RIGHT / STRAIGHT from the future's lateral offset (threshold command_lateral_m)",
    "target point: the pose target_distance_m ahead along the scene's pose track",
    "ego speed / acceleration / yaw rate: finite differences of the pose track; ego_steer 0, actions NaN",
    "actor_velocity_ego: devkit box_velocity (0 where unknown); no traffic lights; weather NaN",
)


def _nus_track(nusc: Any, sample: dict[str, Any], channel: str, t0_us: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ego pose of ``channel``'s sample_data chain (key frames and sweeps) of the sample's scene."""
    sd = nusc.get("sample_data", sample["data"][channel])
    while sd["prev"]:
        sd = nusc.get("sample_data", sd["prev"])
    ts, poses = [], []
    while True:
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        fwd = matrix_from_quat(pose["rotation"])[:, 0]
        ts.append((sd["timestamp"] - t0_us) * 1e-6)
        poses.append((pose["translation"][0], pose["translation"][1], math.atan2(fwd[1], fwd[0])))
        if not sd["next"]:
            break
        sd = nusc.get("sample_data", sd["next"])
    return pose_track(ts, poses)


def _load_nus_route(reader: Any, scene: dict[str, Any], spec: dict[str, Any], settings: ImportSettings):
    nusc = reader.nusc
    index = {t: i for i, t in enumerate(reader.tokens)}
    first = nusc.get("sample", scene["first_sample_token"])
    channel = reader.cameras[0]
    track_t, track_pose = _nus_track(nusc, first, channel, int(first["timestamp"]))
    motion = ego_motion_from_track(track_t, track_pose)
    log = nusc.get("log", scene["log_token"])
    actor_ids: dict[str, int] = {}
    frames = []
    tok = scene["first_sample_token"]
    while tok:
        s = reader[index[tok]]
        sample = nusc.get("sample", tok)
        t_pose = (nusc.get("sample_data", sample["data"][channel])["timestamp"] - first["timestamp"]) * 1e-6
        ids = []
        for inst_tok in s.instance_token:
            if inst_tok not in actor_ids:
                inst = nusc.get("instance", inst_tok)
                actor_ids[inst_tok] = int(inst.get("riskdistill_actor_id", len(actor_ids) + 1))
            ids.append(actor_ids[inst_tok])
        k = int(np.argmin(np.abs(track_t - t_pose))) if len(track_t) else 0
        speed, accel, yaw_rate = motion[k] if len(motion) else (0.0, 0.0, 0.0)
        frames.append(
            SourceFrame(
                step=round(s.time_s * 10.0),
                timestamp_s=float(s.time_s),
                pose_time_s=float(t_pose),
                ego=EgoState(float(speed), float(accel), float(yaw_rate), 0.0),
                ego_pose_world=np.asarray(s.ego_pose_world, np.float64),
                command=None,
                target_point_ego=None,
                camera_names=tuple(s.camera_names),
                image_paths=tuple(s.image_paths),
                image_hw=s.image_hw,
                K=s.K,
                T_ego_from_cam=s.T_ego_from_cam,
                actor_id=np.asarray(ids, np.int32),
                actor_class=s.actor_class,
                actor_center_ego=s.center_ego,
                actor_size_lwh=s.size_lwh,
                actor_yaw_ego=s.yaw_ego,
                actor_velocity_ego=s.velocity_ego,
                ego_size_lwh=tuple(settings.ego_size_lwh),  # type: ignore[arg-type]
            )
        )
        tok = sample["next"]
    return SourceRoute(spec, str(log.get("location", "")), frames, track_t, track_pose)


def import_nuscenes(
    dataroot: str | Path,
    version: str,
    out_dir: str | Path,
    scenes: Sequence[str] | None = None,
    *,
    image_hw: tuple[int, int] | None = None,
    cameras: Sequence[str] | None = None,
    jpeg_quality: int = fmt.DEFAULT_JPEG_QUALITY,
    ego_size_lwh: tuple[float, float, float] = EGO_SIZE_M,
    rear_axle_to_center_m: float = EGO_REAR_AXLE_TO_CENTER_M,
    show_progress: bool = True,
) -> ImportResult:
    """Import nuScenes scenes (official devkit; ``scenes``: names, default all of ``version``) into the
    recorded data set ``out_dir``: one route per scene, one frame per key frame (2 Hz). ``image_hw``:
    resize (default: keep 1600x900); ``cameras``: subset and order (default: every camera of the first
    sample). Raises DataError for an unknown scene, ImportError without the devkit."""
    reader = NuScenesReader(dataroot, version, cameras=tuple(cameras) if cameras else None)
    by_name = {sc["name"]: sc for sc in reader.nusc.scene}
    names = list(scenes) if scenes else list(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise DataError(f"{Path(dataroot) / version}: unknown scene(s) {unknown}; scenes: {sorted(by_name)}")
    if not names or not reader.tokens:
        raise DataError(f"{Path(dataroot) / version}: no scene to import")
    index = {t: i for i, t in enumerate(reader.tokens)}
    first = reader[index[by_name[names[0]]["first_sample_token"]]]
    cams, hw = resolve_cameras_and_hw(
        first.camera_names, first.image_hw, cameras, image_hw, f"{dataroot}/{version}"
    )
    settings = ImportSettings(
        source="nuscenes",
        image_h=hw[0],
        image_w=hw[1],
        cameras=cams,
        jpeg_quality=jpeg_quality,
        rear_axle_to_center_m=rear_axle_to_center_m,
        ego_size_lwh=list(ego_size_lwh),
        version=version,
    )
    root = str(Path(dataroot).resolve())

    def routes() -> Iterator[tuple[dict[str, Any], Callable[[], SourceRoute]]]:
        for name in names:
            spec = {
                "route_id": route_id_of(name),
                "scenario": "nuscenes",
                "seed": 0,
                "layout": {},
                "source": f"{root}/{version}/{name}",
            }
            yield spec, lambda sc=by_name[name], sp=spec: _load_nus_route(reader, sc, sp, settings)

    info = {"kind": "nuscenes", "dataroot": root, "version": version, "scenes": names}
    return run_import(
        "nuscenes", routes(), Path(out_dir), settings, info, len(names), APPROXIMATIONS, show_progress
    )


@IMPORTERS.register("nuscenes")
def import_nuscenes_request(path: Path, out_dir: Path, request: ImportRequest) -> ImportResult:
    """``riskdistill data import nuscenes``: :func:`import_nuscenes` with the user's options."""
    if request.every_n_steps != 1:
        raise ValueError("--every applies to bench2drive only (nuScenes key frames are already 2 Hz)")
    return import_nuscenes(
        path,
        request.version or "v1.0-mini",
        out_dir,
        request.scenes,
        image_hw=request.image_hw,
        cameras=request.cameras,
        jpeg_quality=request.jpeg_quality,
    )
