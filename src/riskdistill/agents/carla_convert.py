"""CARLA <-> riskdistill conventions, in one place (NumPy only; no ``carla`` import).

Frames. Ours: x forward, y LEFT, z up, yaw counter-clockwise, ego origin on the ground below the rear axle,
OpenCV camera axes (x right, y down, z forward). CARLA: x forward, y RIGHT, z up (left-handed), yaw
clockwise seen from above, the vehicle's origin at its box centre on the ground, UE4 camera axes (x forward,
y right, z up). A CARLA vehicle-frame point is ``(x - d, -y, z)`` of ours, with ``d`` the rear axle to box
centre distance (``rear_axle_to_origin_m``; 1.45 m for our ego and Bench2Drive's Lincoln MKZ 2020).

Sensors, as the leaderboard delivers them (``input_data[id] = (frame, data)``):

- ``sensor.camera.rgb``: ``[H, W, 4]`` uint8 **BGRA**;
- ``sensor.other.gnss``: ``[lat, lon, alt]`` degrees / metres; CARLA's GNSS projects world ``(x, y)`` with
  a transverse Mercator around the map's geo-reference (:class:`GeoReference`, the leaderboard's
  ``_location_to_gps``);
- ``sensor.other.imu``: ``[acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z, compass]`` in the sensor's (CARLA)
  axes, m/s^2 and rad/s; the compass is radians clockwise from north (= CARLA -y), so our world yaw is
  ``pi/2 - compass``; CARLA reports NaN compasses on some frames;
- ``sensor.speedometer``: ``{"speed": m/s}`` (forward speed, signed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M

EARTH_RADIUS_EQUA_M = 6378137.0  # as CARLA's GeoLocation and the leaderboard's route_manipulation
DEFAULT_LAT_REF, DEFAULT_LON_REF = 42.0, 2.0  # the leaderboard's default when a map has no geoReference
_F3 = np.diag([1.0, -1.0, 1.0])  # y reflection: our axes <-> CARLA's (its own inverse)
# forward-left-up camera body <- OpenCV camera axes
_R_FLU_FROM_OPENCV = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


# ------------------------------------------------------------------------------------------ GNSS
def _merc_y(lat_deg: float | np.ndarray) -> float | np.ndarray:
    return np.log(np.tan((90.0 + np.asarray(lat_deg, dtype=np.float64)) * math.pi / 360.0))


@dataclass(frozen=True)
class GeoReference:
    """The map's geo-reference: CARLA world ``(x, y)`` <-> GNSS ``(lat, lon)`` (CARLA's Mercator)."""

    lat_ref: float = DEFAULT_LAT_REF
    lon_ref: float = DEFAULT_LON_REF

    @property
    def _scale(self) -> float:
        return math.cos(math.radians(self.lat_ref))

    def to_gps(self, x_c: Any, y_c: Any) -> tuple[np.ndarray, np.ndarray]:
        """CARLA world ``(x, y)`` -> ``(lat, lon)`` in degrees (arrays or scalars)."""
        s, R = self._scale, EARTH_RADIUS_EQUA_M
        mx = s * math.radians(self.lon_ref) * R + np.asarray(x_c, dtype=np.float64)
        my = s * R * _merc_y(self.lat_ref) - np.asarray(y_c, dtype=np.float64)
        lon = np.degrees(mx / (R * s))
        lat = 360.0 * np.arctan(np.exp(my / (R * s))) / math.pi - 90.0
        return lat, lon

    def to_world(self, lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]:
        """GNSS ``(lat, lon)`` degrees -> CARLA world ``(x, y)`` metres (the inverse of :meth:`to_gps`)."""
        s, R = self._scale, EARTH_RADIUS_EQUA_M
        x = s * R * (np.radians(np.asarray(lon, dtype=np.float64)) - math.radians(self.lon_ref))
        y = s * R * (_merc_y(self.lat_ref) - _merc_y(lat))
        return x, y

    @classmethod
    def from_pair(cls, lat: float, lon: float, x_c: float, y_c: float) -> GeoReference:
        """The reference under which CARLA world ``(x_c, y_c)`` has GNSS ``(lat, lon)``: exact from one pair
        (the route's first point carries both), so the agent needs no map. ValueError when none fits."""
        from scipy.optimize import brentq

        R = EARTH_RADIUS_EQUA_M

        def f(lat_ref: float) -> float:  # y(lat; lat_ref) - y_c
            return math.cos(math.radians(lat_ref)) * R * float(_merc_y(lat_ref) - _merc_y(lat)) - y_c

        lo, hi = max(-89.0, lat - 10.0), min(89.0, lat + 10.0)
        if not (math.isfinite(lat) and math.isfinite(lon)) or f(lo) * f(hi) > 0:
            raise ValueError(f"no geo-reference maps GNSS ({lat}, {lon}) to CARLA ({x_c}, {y_c})")
        lat_ref = float(brentq(f, lo, hi, xtol=1e-13, rtol=4 * np.finfo(float).eps, maxiter=200))
        lon_ref = lon - math.degrees(x_c / (math.cos(math.radians(lat_ref)) * R))
        return cls(lat_ref, lon_ref)


# ------------------------------------------------------------------------------------------ poses
def carla_to_our_xy(x_c: Any, y_c: Any) -> np.ndarray:
    """CARLA world ``(x, y)`` -> our (y-left) world ``[..., 2]``."""
    return np.stack([np.asarray(x_c, dtype=np.float64), -np.asarray(y_c, dtype=np.float64)], axis=-1)


def yaw_from_compass(compass_rad: float) -> float:
    """IMU compass (radians clockwise from north = CARLA -y) -> our world yaw (counter-clockwise from +x)."""
    return float(math.atan2(math.sin(math.pi / 2 - compass_rad), math.cos(math.pi / 2 - compass_rad)))


def compass_from_yaw(yaw_rad: float) -> float:
    """Our world yaw -> the IMU compass in [0, 2 pi) (the inverse of :func:`yaw_from_compass`)."""
    return float((math.pi / 2 - yaw_rad) % (2 * math.pi))


def rear_axle_pose(origin_xy: np.ndarray, yaw_rad: float, d: float = EGO_REAR_AXLE_TO_CENTER_M) -> np.ndarray:
    """``[x, y, yaw]`` of the rear axle in our world from the vehicle origin (box centre, our world)."""
    return np.array(
        [origin_xy[0] - d * math.cos(yaw_rad), origin_xy[1] - d * math.sin(yaw_rad), yaw_rad],
        dtype=np.float64,
    )


def world_to_ego(points_xy: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Our world points ``[..., 2]`` -> the ego frame of ``pose = [x, y, yaw]`` (rear axle)."""
    c, s = math.cos(float(pose[2])), math.sin(float(pose[2]))
    d = np.asarray(points_xy, dtype=np.float64) - np.asarray(pose[:2], dtype=np.float64)
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)


# ------------------------------------------------------------------------------------------ cameras
def camera_transform_carla(
    T_ego_from_cam: np.ndarray, d: float = EGO_REAR_AXLE_TO_CENTER_M
) -> dict[str, float]:
    """Our camera extrinsics (OpenCV camera -> our ego) -> the CARLA sensor transform relative to the vehicle:
    ``{"x", "y", "z"}`` metres and ``{"roll", "pitch", "yaw"}`` degrees, as a leaderboard sensor spec takes.

    With the UE4 camera body ``R = F R_flu F`` (``F`` the y reflection) and CARLA's rotation matrix
    (``R[:, 0] = (cos p cos y, cos p sin y, sin p)``, ``R[2, 1] = -cos p sin r``, ``R[2, 2] = cos p cos r``).
    """
    T = np.asarray(T_ego_from_cam, dtype=np.float64)
    R_flu = T[:3, :3] @ _R_FLU_FROM_OPENCV.T  # the camera's forward-left-up body in our ego frame
    R = _F3 @ R_flu @ _F3  # the camera's UE4 body (x fwd, y right, z up) in the CARLA vehicle frame
    pitch = math.degrees(math.asin(float(np.clip(R[2, 0], -1.0, 1.0))))
    yaw = math.degrees(math.atan2(R[1, 0], R[0, 0]))
    roll = math.degrees(math.atan2(-R[2, 1], R[2, 2]))
    x, y, z = (float(v) for v in T[:3, 3])
    return {"x": x - d, "y": -y, "z": z, "roll": roll, "pitch": pitch, "yaw": yaw}


def camera_sensor_specs(
    names: Sequence[str],
    K: np.ndarray,
    T_ego_from_cam: np.ndarray,
    image_hw: tuple[int, int],
    d: float = EGO_REAR_AXLE_TO_CENTER_M,
) -> list[dict[str, Any]]:
    """Leaderboard ``sensors()`` entries (``sensor.camera.rgb``) for cameras with pinhole ``K [N, 3, 3]``
    (square pixels, principal point at the centre, as CARLA renders) and extrinsics ``[N, 4, 4]``."""
    h, w = int(image_hw[0]), int(image_hw[1])
    specs = []
    for name, k, T in zip(names, np.asarray(K), np.asarray(T_ego_from_cam), strict=True):
        if (
            abs(k[0, 0] - k[1, 1]) > 1e-6 * k[0, 0]
            or abs(k[0, 2] - w / 2) > 1e-6
            or abs(k[1, 2] - h / 2) > 1e-6
        ):
            raise ValueError(
                f"camera {name}: CARLA renders square pixels with the principal point at the centre; "
                f"K = {k.tolist()}"
            )
        fov = math.degrees(2.0 * math.atan(w / (2.0 * float(k[0, 0]))))
        specs.append(
            {"type": "sensor.camera.rgb", "id": str(name), **camera_transform_carla(T, d),
             "width": w, "height": h, "fov": fov}
        )  # fmt: skip
    return specs


def rgb_from_bgra(image: np.ndarray) -> np.ndarray:
    """A CARLA camera image ``[H, W, 4]`` uint8 BGRA (or ``[H, W, 3]`` BGR) -> ``[H, W, 3]`` uint8 RGB."""
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[-1] not in (3, 4) or a.dtype != np.uint8:
        raise ValueError(f"a CARLA camera image is uint8 [H, W, 4] BGRA, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a[..., 2::-1])


def bgra_from_rgb(image: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB -> ``[H, W, 4]`` BGRA with alpha 255 (how CARLA delivers camera images)."""
    a = np.asarray(image, dtype=np.uint8)
    return np.concatenate([a[..., ::-1], np.full((*a.shape[:2], 1), 255, np.uint8)], axis=-1)


# ------------------------------------------------------------------------------------------ controls
def carla_control_values(throttle: float, steer_left: float, brake: float) -> dict[str, float]:
    """Our controls (steer positive = LEFT) -> ``carla.VehicleControl`` fields (steer positive = RIGHT),
    clipped to CARLA's ranges."""
    return {
        "throttle": float(np.clip(throttle, 0.0, 1.0)),
        "steer": float(np.clip(-steer_left, -1.0, 1.0)),
        "brake": float(np.clip(brake, 0.0, 1.0)),
    }
