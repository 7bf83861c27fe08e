"""Bench2Drive clips delivered to a leaderboard agent as CARLA would, without a CARLA server.

    geo = GeoReference()                                     # any; the agent recovers it from the route
    plan_gps, plan_world = route_global_plan(route, geo)     # a built-in route as the leaderboard's plan
    agent.set_global_plan(plan_gps, plan_world); agent.setup(conf)
    for frame, control in replay_clip(agent, "clips/r1", geo):
        ...

:func:`clip_input_data` turns one annotation (``anno/<frame>.json.gz``) and its images into the
``input_data`` dictionary of ``run_step``: cameras as BGRA arrays (ids = the clip's camera names), GNSS from
the logged position through the geo-reference, the IMU (accelerometer and gyroscope in the vehicle's CARLA
axes from the logged world vectors, gravity on z, the compass from ``theta``) and the speedometer. Works for
clips exported by ``export_bench2drive_clip`` and for real Bench2Drive clips (same layout).
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from riskdistill.agents.carla_agent import GNSS_ID, IMU_ID, SPEED_ID
from riskdistill.agents.carla_convert import GeoReference, bgra_from_rgb
from riskdistill.types import Command

GRAVITY_MPS2 = 9.81
CLIP_HZ = 10.0


def raw_route_commands(route: Any, road_map: Any) -> np.ndarray:
    """The per-point commands of a built-in :class:`~riskdistill.sim.route.Route` before their announcement
    (what a CARLA global plan carries): the lane's turn, or the lane change to the next route lane."""
    order = {lid: i for i, lid in reversed(list(enumerate(route.lane_ids)))}
    out = np.empty(len(route.lane_of_point), dtype=np.int64)
    for k, lid in enumerate(route.lane_of_point):
        lane = road_map.lanes[int(lid)]
        i = order[int(lid)]
        nxt = route.lane_ids[i + 1] if i + 1 < len(route.lane_ids) else None
        if nxt is not None and nxt == lane.left_neighbor:
            out[k] = int(Command.CHANGE_LANE_LEFT)
        elif nxt is not None and nxt == lane.right_neighbor:
            out[k] = int(Command.CHANGE_LANE_RIGHT)
        else:
            out[k] = int(lane.turn)
    return out


def route_global_plan(route: Any, road_map: Any, geo: GeoReference) -> tuple[list, list]:
    """A built-in route as the leaderboard's ``(global_plan_gps, global_plan_world_coord)``: every route
    point in CARLA world coordinates (``(x, y, z)`` tuples standing in for ``carla.Transform``) and as GNSS
    (``{"lat", "lon", "z"}``), each with its (unannounced) command value."""
    pts = np.asarray(route.path.points, dtype=np.float64)
    x_c, y_c = pts[:, 0], -pts[:, 1]
    lat, lon = geo.to_gps(x_c, y_c)
    cmds = raw_route_commands(route, road_map)
    gps = [
        ({"lat": float(a), "lon": float(b), "z": 0.0}, int(c)) for a, b, c in zip(lat, lon, cmds, strict=True)
    ]
    world = [((float(x), float(y), 0.0), int(c)) for x, y, c in zip(x_c, y_c, cmds, strict=True)]
    return gps, world


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def clip_input_data(
    anno: dict[str, Any], clip_dir: str | Path, stem: str, geo: GeoReference
) -> dict[str, Any]:
    """``run_step``'s ``input_data`` for one clip frame: ``{sensor id: (frame, data)}``."""
    from riskdistill.data.adapters.bench2drive import CAMERA_DIR, camera_folder

    frame = int(stem)
    out: dict[str, Any] = {}
    for cam in anno["sensors"]:
        if str(cam).upper().startswith("CAM_"):
            img = _read_rgb(Path(clip_dir) / CAMERA_DIR / camera_folder(cam) / f"{stem}.jpg")
            out[str(cam)] = (frame, bgra_from_rgb(img))
    lat, lon = geo.to_gps(float(anno["x"]), float(anno["y"]))
    out[GNSS_ID] = (frame, np.array([float(lat), float(lon), 0.0]))
    theta = float(anno["theta"])
    yaw_c = theta - math.pi / 2  # CARLA yaw (clockwise) of the vehicle
    ax, ay, az = (float(v) for v in anno["acceleration"])
    c, s = math.cos(yaw_c), math.sin(yaw_c)
    gyro_z = math.radians(float(anno["angular_velocity"][2]))  # deg/s (world) -> rad/s, CARLA's z
    imu = [c * ax + s * ay, -s * ax + c * ay, az + GRAVITY_MPS2, 0.0, 0.0, gyro_z, theta % (2 * math.pi)]
    out[IMU_ID] = (frame, np.array(imu, dtype=np.float64))
    out[SPEED_ID] = (frame, {"speed": float(anno["speed"])})
    return out


def replay_clip(agent: Any, clip_dir: str | Path, geo: GeoReference) -> Iterator[tuple[int, Any]]:
    """Feed every frame of a clip to ``agent.run_step`` in order; yields ``(frame number, its output)``."""
    from riskdistill.data.adapters.bench2drive import ANNO_DIR

    for path in sorted((Path(clip_dir) / ANNO_DIR).glob("*.json.gz")):
        stem = path.name[: -len(".json.gz")]
        anno = json.loads(gzip.decompress(path.read_bytes()))
        yield int(stem), agent.run_step(clip_input_data(anno, clip_dir, stem, geo), int(stem) / CLIP_HZ)
