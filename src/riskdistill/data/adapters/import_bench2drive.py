"""Import Bench2Drive clips as a recorded data set (format v1); the shared machinery is in :mod:`.importer`.

    import_bench2drive(["/data/b2d/Accident_Town03_Route101_Weather23"], "data/b2d", every_n_steps=5)

One clip folder (``anno/*.json.gz``, ``camera/rgb_*/``; read by
:class:`~riskdistill.data.adapters.bench2drive.Bench2DriveClipReader`, which converts CARLA's y-right frame)
becomes one route. A clip named ``<Scenario>_<Town>_Route<N>_Weather<W>`` gives ``scenario``,
``layout_family`` (the town) and ``seed`` (N); other names give ``"bench2drive"``, ``""`` and 0. The frame
number is the 10 Hz ``step``. Bench2Drive fields used beyond the reader's: the ego box extent (ego size), the
traffic lights' rotation (``light_yaw_ego``), ``throttle`` and ``brake`` (the expert's actions; the steering
action is the logged ``steer``) and the weather (CARLA percentages scaled to 0..1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_M
from riskdistill.data import format as fmt
from riskdistill.data.adapters.bench2drive import Bench2DriveClipReader
from riskdistill.data.adapters.importer import (
    IMPORTERS,
    WEATHER_KEYS,
    ImportRequest,
    ImportResult,
    ImportSettings,
    SourceFrame,
    SourceRoute,
    pose_track,
    resolve_cameras_and_hw,
    route_id_of,
    run_import,
)
from riskdistill.data.storage import DataError
from riskdistill.geometry import wrap_angle

__all__ = ["find_bench2drive_clips", "import_bench2drive"]

APPROXIMATIONS = (
    "command / target point: command_near and x_target, y_target",
    "actor_velocity_ego: the logged speed along the box heading",
)
_B2D_NAME = re.compile(r"^(?P<scenario>.+?)_(?P<town>Town\w+?)_Route(?P<route>\d+)")


def find_bench2drive_clips(path: str | Path) -> list[Path]:
    """``path`` itself when it is a clip (has ``anno/``), else its sub-folders that are clips (sorted)."""
    path = Path(path)
    if (path / "anno").is_dir():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: not a folder")
    clips = sorted(p for p in path.iterdir() if (p / "anno").is_dir())
    if not clips:
        raise DataError(f"{path}: neither a Bench2Drive clip (anno/) nor a folder of clips")
    return clips


def _b2d_spec(clip: Path) -> tuple[dict[str, Any], str]:
    m = _B2D_NAME.match(clip.name)
    scenario, family, seed = (
        ("bench2drive", "", 0) if m is None else (m["scenario"], m["town"], int(m["route"]))
    )
    spec = {
        "route_id": route_id_of(clip.name),
        "scenario": scenario,
        "seed": seed,
        "layout": {},
        "source": str(clip.resolve()),
    }
    return spec, family


def _b2d_frame(f: Any, d: float) -> SourceFrame:
    """A :class:`B2DFrame` -> :class:`SourceFrame` (the light headings and actions come from its raw JSON)."""
    raw = f.raw
    ego_lwh = tuple(EGO_SIZE_M)
    light_yaw = []
    for b in raw.get("bounding_boxes", []):
        if not isinstance(b, dict):
            continue
        if b.get("class") == "ego_vehicle" and "extent" in b:
            ego_lwh = tuple(2.0 * float(v) for v in b["extent"])
        elif b.get("class") == "traffic_light":
            rot = b.get("rotation") or [0.0, 0.0, 0.0]
            light_yaw.append(wrap_angle(-math.radians(float(rot[2])) - float(f.ego_pose_world[2])))
    weather = dict(f.weather)
    if "sun_altitude_angle" in weather:  # CARLA's weather parameters (0..100 percentages)
        weather = {
            "sun_altitude_deg": weather.get("sun_altitude_angle"),
            **{
                k: float(weather[k]) / 100.0 for k in ("cloudiness", "fog_density", "wetness") if k in weather
            },
        }
    weather = {k: float(v) for k, v in weather.items() if k in WEATHER_KEYS and isinstance(v, int | float)}
    n = len(f.camera_names)
    return SourceFrame(
        step=int(f.frame),
        timestamp_s=float(f.timestamp_s),
        pose_time_s=float(f.timestamp_s),
        ego=f.ego,
        ego_pose_world=np.asarray(f.ego_pose_world, np.float64),
        command=f.command,
        target_point_ego=np.asarray(f.target_point_ego, np.float64),
        camera_names=tuple(f.camera_names),
        image_paths=tuple(f.image_paths),
        image_hw=np.tile(np.asarray(f.image_hw, np.int64), (n, 1)),
        K=f.K,
        T_ego_from_cam=f.T_ego_from_cam,
        actor_id=f.actor_id,
        actor_class=f.actor_class,
        actor_center_ego=f.actor_center_ego,
        actor_size_lwh=f.actor_size_lwh,
        actor_yaw_ego=f.actor_yaw_ego,
        actor_velocity_ego=f.actor_velocity_ego,
        ego_size_lwh=ego_lwh,  # type: ignore[arg-type]
        light_id=f.light_id,
        light_position_ego=f.light_position_ego,
        light_yaw_ego=np.asarray(light_yaw, np.float64),
        light_state=f.light_state,
        action=(_num(raw.get("throttle")), float(f.ego.steer), _num(raw.get("brake"))),
        weather=weather,
    )


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _load_b2d_route(clip: Path, spec: dict[str, Any], family: str, every: int, d: float) -> SourceRoute:
    reader = Bench2DriveClipReader(clip, rear_axle_to_center_m=d)
    frames, ts, poses = [], [], []
    first: int | None = None
    for f in reader:
        first = f.frame if first is None else first
        ts.append(f.timestamp_s)
        poses.append(f.ego_pose_world)
        if (f.frame - first) % every == 0:
            frames.append(_b2d_frame(f, d))
    return SourceRoute(spec, family, frames, *pose_track(ts, poses))


def import_bench2drive(
    clip_dirs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    image_hw: tuple[int, int] | None = None,
    cameras: Sequence[str] | None = None,
    every_n_steps: int = 1,
    jpeg_quality: int = fmt.DEFAULT_JPEG_QUALITY,
    rear_axle_to_center_m: float = EGO_REAR_AXLE_TO_CENTER_M,
    show_progress: bool = True,
) -> ImportResult:
    """Import Bench2Drive clips (each a folder with ``anno/`` and ``camera/``; a folder of clips also works)
    into the recorded data set ``out_dir``: one route per clip, every ``every_n_steps``-th 10 Hz frame
    (5 = 2 Hz, as VAD / UniAD train). ``image_hw``: resize (default: keep the clips' size); ``cameras``:
    subset and order (default: the first frame's). Raises DataError for a broken clip (naming the file and
    field) and ValueError when ``out_dir`` holds an import with other settings."""
    if every_n_steps < 1:
        raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
    inputs = [clip_dirs] if isinstance(clip_dirs, str | Path) else list(clip_dirs)
    clips = [c for p in inputs for c in find_bench2drive_clips(p)]
    if not clips:
        raise DataError("import_bench2drive: no clip given")
    first = _b2d_frame(Bench2DriveClipReader(clips[0], rear_axle_to_center_m)[0], rear_axle_to_center_m)
    cams, hw = resolve_cameras_and_hw(first.camera_names, first.image_hw, cameras, image_hw, str(clips[0]))
    settings = ImportSettings(
        source="bench2drive",
        image_h=hw[0],
        image_w=hw[1],
        cameras=cams,
        every_n_steps=every_n_steps,
        jpeg_quality=jpeg_quality,
        rear_axle_to_center_m=rear_axle_to_center_m,
        ego_size_lwh=list(first.ego_size_lwh),
    )

    def routes() -> Iterator[tuple[dict[str, Any], Callable[[], SourceRoute]]]:
        for clip in clips:
            spec, family = _b2d_spec(clip)
            yield (
                spec,
                lambda c=clip, s=spec, fam=family: _load_b2d_route(
                    c, s, fam, every_n_steps, rear_axle_to_center_m
                ),
            )

    info = {"kind": "bench2drive", "clips": [str(c.resolve()) for c in clips]}
    return run_import(
        "bench2drive", routes(), Path(out_dir), settings, info, len(clips), APPROXIMATIONS, show_progress
    )


@IMPORTERS.register("bench2drive")
def import_bench2drive_request(path: Path, out_dir: Path, request: ImportRequest) -> ImportResult:
    """``riskdistill data import bench2drive``: :func:`import_bench2drive` with the user's options."""
    if request.scenes:
        raise ValueError("--scene applies to nuscenes only")
    return import_bench2drive(
        path,
        out_dir,
        image_hw=request.image_hw,
        cameras=request.cameras,
        every_n_steps=request.every_n_steps,
        jpeg_quality=request.jpeg_quality,
    )
