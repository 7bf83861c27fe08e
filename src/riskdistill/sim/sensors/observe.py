"""Camera observations for the closed-loop environment: ``DrivingEnv(observe=CameraObserver(rig))``."""

from __future__ import annotations

import numpy as np

from riskdistill.contracts.rig import Rig
from riskdistill.sim.scenarios.base import ScenarioInstance
from riskdistill.sim.sensors.render import CameraRenderer, jpeg_roundtrip
from riskdistill.sim.world import World


class CameraObserver:
    """Renders the driver's rig every step. One renderer per scenario instance (map and weather)."""

    def __init__(self, rig: Rig, jpeg_quality: int | None = None):
        self.rig = rig
        self.jpeg_quality = jpeg_quality
        self._key: int | None = None
        self._renderer: CameraRenderer | None = None

    def __call__(self, instance: ScenarioInstance, world: World) -> dict[str, np.ndarray | tuple[str, ...]]:
        key = id(instance)
        if self._renderer is None or self._key != key:
            self._renderer = CameraRenderer(instance.layout.road_map, self.rig, weather=instance.weather)
            self._key = key
        frame = self._renderer.render(world)
        rgb = frame.rgb if self.jpeg_quality is None else jpeg_roundtrip(frame.rgb, self.jpeg_quality)
        return {
            "images": rgb,
            "K": frame.K,
            "T_ego_from_cam": frame.T_ego_from_cam,
            "camera_names": tuple(frame.camera_names),
        }
