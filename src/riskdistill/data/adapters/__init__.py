"""Adapters between recorded data sets and external data formats.

- :mod:`riskdistill.data.adapters.bench2drive`: export a recorded route as a Bench2Drive clip folder and
  read Bench2Drive clips (real or exported) into this project's conventions.
- :mod:`riskdistill.data.adapters.nuscenes`: export a recorded route as a nuScenes-style scene and read
  nuScenes data through the official devkit (optional; see ``docs/adapters.md``).

External frames (CARLA's y-right frame, its vehicle-centre origin, degrees) are converted once, here.
"""

from riskdistill.data.adapters.bench2drive import B2DFrame, Bench2DriveClipReader, export_bench2drive_clip
from riskdistill.data.adapters.nuscenes import NuScenesReader, NuScenesSample, export_nuscenes_scene
from riskdistill.data.storage import DataError

__all__ = [
    "B2DFrame",
    "Bench2DriveClipReader",
    "DataError",
    "NuScenesReader",
    "NuScenesSample",
    "export_bench2drive_clip",
    "export_nuscenes_scene",
]
