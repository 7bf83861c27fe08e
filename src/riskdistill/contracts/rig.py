"""Camera rigs: where the cameras sit on the ego and what they see, as strict, JSON-loadable configs.

Frames follow :mod:`riskdistill.geometry`: the ego frame has its origin on the ground below the rear axle,
x forward, y left, z up; the camera frame is OpenCV (x right, y down, z along the optical axis).

A :class:`CameraSpec` is a pinhole camera with square pixels and its principal point at the image centre,
parametrised like CARLA/Bench2Drive by the horizontal field of view: ``fx = fy = W / (2 tan(hfov / 2))``,
``cx = W / 2``, ``cy = H / 2``. Its pose is ``(x_m, y_m, z_m)`` in the ego frame plus yaw (counter-clockwise
from ego +x, so +90 looks left), pitch (positive tilts the optical axis down) and roll, in degrees.

Built-in rigs live as JSON files in ``riskdistill/rigs/`` (package data) and load by name::

    rig = load_rig("bench2drive")             # or "bench2drive_tele", "nuscenes", a path to a rig JSON file
    rig = resize_rig(rig, 128, 352)           # the demo's image size
    rig = perturb_rig(rig, RigPerturbation(height_delta_m=0.2, drop_cameras=["CAM_BACK"]))
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from riskdistill.config import ConfigError, StrictConfig
from riskdistill.geometry import T_ego_from_cam_from_pose, intrinsics_from_fov

BUILTIN_RIGS = ("bench2drive", "bench2drive_tele", "nuscenes")
MAX_HFOV_DEG = 170.0  # a pinhole model beyond this is meaningless (and tan() blows up at 180)


class CameraSpec(StrictConfig):
    """One pinhole camera on the ego. Pose in the ego frame (rear-axle origin), angles in degrees."""

    name: str = Field(min_length=1)
    x_m: float
    y_m: float
    z_m: float = Field(gt=0.0, description="mounting height above the ground; the renderer needs > 0")
    yaw_deg: float = 0.0  # counter-clockwise from ego +x (90 = looking left)
    pitch_deg: float = 0.0  # positive = optical axis tilted down
    roll_deg: float = 0.0
    hfov_deg: float = Field(gt=0.0, le=MAX_HFOV_DEG)
    width_px: int = Field(gt=0)
    height_px: int = Field(gt=0)

    def K(self) -> np.ndarray:
        """Pinhole intrinsics [3, 3] (square pixels, principal point at the image centre)."""
        return intrinsics_from_fov(self.width_px, self.height_px, self.hfov_deg)

    def T_ego_from_cam(self) -> np.ndarray:
        """Extrinsics [4, 4]: OpenCV camera coordinates -> ego coordinates."""
        return T_ego_from_cam_from_pose(
            self.x_m,
            self.y_m,
            self.z_m,
            math.radians(self.yaw_deg),
            math.radians(self.pitch_deg),
            math.radians(self.roll_deg),
        ).matrix()

    @property
    def vfov_deg(self) -> float:
        """Vertical field of view implied by hfov and the aspect ratio (square pixels)."""
        f = self.K()[0, 0]
        return math.degrees(2.0 * math.atan(0.5 * self.height_px / f))


class Rig(StrictConfig):
    """A named set of cameras with unique names. ``notes`` documents where the numbers come from."""

    name: str = Field(min_length=1)
    notes: str = ""
    cameras: list[CameraSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Rig:
        names = [c.name for c in self.cameras]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise ValueError(f"cameras: duplicate camera name(s) {dups}; camera names must be unique")
        return self

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def camera(self, name: str) -> CameraSpec:
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(f"rig {self.name!r} has no camera {name!r}; cameras: {self.camera_names}")

    def K(self) -> np.ndarray:
        """Intrinsics of every camera, [N_cam, 3, 3]."""
        return np.stack([c.K() for c in self.cameras])

    def T_ego_from_cam(self) -> np.ndarray:
        """Extrinsics of every camera, [N_cam, 4, 4]."""
        return np.stack([c.T_ego_from_cam() for c in self.cameras])

    def image_size(self) -> tuple[int, int]:
        """``(height_px, width_px)`` shared by all cameras; ValueError if they differ."""
        sizes = {(c.height_px, c.width_px) for c in self.cameras}
        if len(sizes) != 1:
            raise ValueError(f"rig {self.name!r}: cameras have different image sizes {sorted(sizes)}")
        return next(iter(sizes))

    def save(self, path: str | Path) -> Path:
        """Write the rig as JSON (readable back with :func:`load_rig`)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def builtin_rig_path(name: str) -> Path:
    """Path of a built-in rig JSON file (package data under ``riskdistill/rigs``)."""
    return Path(str(resources.files("riskdistill").joinpath("rigs", f"{name}.json")))


def load_rig(name_or_path: str | Path) -> Rig:
    """A built-in rig by name (:data:`BUILTIN_RIGS`) or a rig JSON file by path.

    Raises :class:`riskdistill.config.ConfigError` naming the file and the offending field.
    """
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_RIGS:
        path = builtin_rig_path(name_or_path)
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise ConfigError(
                f"rig {str(name_or_path)!r} is neither a built-in rig {list(BUILTIN_RIGS)} "
                "nor an existing file"
            )
    return Rig.load(path)


# ------------------------------------------------------------------------------------------ variations
class RigPerturbation(StrictConfig):
    """A systematic change of a rig, e.g. to test robustness to another vehicle's camera mounting.

    Deltas are added to every camera; ``fov_scale`` multiplies every camera's hfov (degrees);
    ``resolution_scale`` multiplies width and height (rounded, at least 1 px); ``drop_cameras`` removes
    cameras by name.
    """

    height_delta_m: float = 0.0
    pitch_delta_deg: float = 0.0
    yaw_delta_deg: float = 0.0
    fov_scale: float = Field(default=1.0, gt=0.0)
    resolution_scale: float = Field(default=1.0, gt=0.0)
    drop_cameras: list[str] = Field(default_factory=list)


def perturb_rig(rig: Rig, perturbation: RigPerturbation) -> Rig:
    """A new rig with ``perturbation`` applied. ValueError for an unknown camera name in ``drop_cameras``,
    for dropping every camera, or for a result that is no valid rig (e.g. hfov beyond the limit)."""
    p = perturbation
    names = rig.camera_names
    unknown = [n for n in p.drop_cameras if n not in names]
    if unknown:
        raise ValueError(f"RigPerturbation.drop_cameras: unknown camera(s) {unknown}; valid cameras: {names}")
    kept = [c for c in rig.cameras if c.name not in set(p.drop_cameras)]
    if not kept:
        raise ValueError(f"RigPerturbation.drop_cameras removes every camera of rig {rig.name!r}")
    cams = []
    for c in kept:
        d = c.to_dict()
        d["z_m"] = c.z_m + p.height_delta_m
        d["pitch_deg"] = c.pitch_deg + p.pitch_delta_deg
        d["yaw_deg"] = c.yaw_deg + p.yaw_delta_deg
        d["hfov_deg"] = c.hfov_deg * p.fov_scale
        d["width_px"] = max(1, round(c.width_px * p.resolution_scale))
        d["height_px"] = max(1, round(c.height_px * p.resolution_scale))
        cams.append(d)
    return Rig.from_dict({"name": rig.name, "notes": rig.notes, "cameras": cams}, source="perturb_rig")


def resize_rig(rig: Rig, height_px: int, width_px: int) -> Rig:
    """Every camera at ``height_px x width_px``, keeping its horizontal field of view.

    Intrinsics scale consistently with the width: ``K_new = diag(s, s, 1) @ K`` with ``s = W_new / W``
    for fx, fy and cx; pixels stay square and the principal point stays at the image centre, so when the
    aspect ratio changes the vertical field of view follows it (equivalent to resizing by ``s`` and
    centre-cropping or padding rows). Example: 1600x900 at 70 deg -> 352x128 gives fx = fy = 251.3,
    cx = 176, cy = 64 and a vertical field of view of 28.6 deg.
    """
    if height_px <= 0 or width_px <= 0:
        raise ValueError(f"resize_rig: image size must be positive, got {height_px}x{width_px}")
    cams = [{**c.to_dict(), "height_px": int(height_px), "width_px": int(width_px)} for c in rig.cameras]
    return Rig.from_dict({"name": rig.name, "notes": rig.notes, "cameras": cams}, source="resize_rig")
