"""Observations under a rig shift: the cameras a driver asked for, rendered as the shifted rig sees them."""

from __future__ import annotations

from typing import Any

import numpy as np

from riskdistill.contracts.agent import SensorRequest
from riskdistill.evaluation.generalisation import parse_rig_shift, split_perturbation


class RigObserver:
    """``DrivingEnv(observe=...)`` for the rig a driver requests, under a rig shift.

    The driver is told the calibration of the shifted rig (K, T_ego_from_cam at the requested size); a
    resolution shift renders at the scaled size and resizes the images back (bilinear); a dropped camera
    delivers a black image and ``camera_valid`` False in the observation's ``extras``.
    Until :meth:`configure` is called (or for a driver without cameras) it observes nothing.
    """

    def __init__(self, rig_shift: str | None = None, jpeg_quality: int | None = None):
        self.rig_shift = rig_shift
        self.jpeg_quality = jpeg_quality
        self._inner: Any = None
        self.camera_valid: np.ndarray | None = None

    def configure(self, sensors: SensorRequest) -> None:
        if sensors is None or sensors.rig is None:
            return
        from riskdistill.contracts.rig import RigPerturbation, load_rig, perturb_rig, resize_rig
        from riskdistill.sim.sensors.observe import CameraObserver

        rig = load_rig(sensors.rig)
        if sensors.image_hw is not None:
            rig = resize_rig(rig, int(sensors.image_hw[0]), int(sensors.image_hw[1]))
        geo, res_scale, drop = split_perturbation(parse_rig_shift(self.rig_shift))
        self.rig_told = perturb_rig(rig, geo)
        self.rig_render = perturb_rig(
            self.rig_told, RigPerturbation(resolution_scale=res_scale, drop_cameras=drop)
        )
        self.hw = self.rig_told.image_size()
        names = self.rig_told.camera_names
        self.kept = [names.index(n) for n in self.rig_render.camera_names]
        self.camera_valid = np.array([n not in drop for n in names])
        self._inner = CameraObserver(self.rig_render, self.jpeg_quality)

    def __call__(self, instance: Any, world: Any) -> dict[str, Any]:
        if self._inner is None:
            return {}
        from PIL import Image

        obs = self._inner(instance, world)
        rgb = obs["images"]
        h, w = self.hw
        images = np.zeros((len(self.rig_told.cameras), h, w, 3), dtype=np.uint8)
        for k, i in enumerate(self.kept):
            img = rgb[k]
            if img.shape[:2] != (h, w):
                img = np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR))
            images[i] = img
        return {
            "images": images,
            "K": self.rig_told.K(),
            "T_ego_from_cam": self.rig_told.T_ego_from_cam(),
            "camera_names": tuple(self.rig_told.camera_names),
            "extras": {"camera_valid": self.camera_valid},
        }
