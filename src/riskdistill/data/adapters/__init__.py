"""Adapters between recorded data sets and external data formats.

- :mod:`riskdistill.data.adapters.bench2drive`: export a recorded route as a Bench2Drive clip folder and
  read Bench2Drive clips (real or exported) into this project's conventions.
- :mod:`riskdistill.data.adapters.nuscenes`: export a recorded route as a nuScenes-style scene and read
  nuScenes data through the official devkit (optional; see ``docs/adapters.md``).

- :data:`IMPORTERS` (``riskdistill data import <source>``): real data -> the recorded format, one registered
  importer per source (``import_bench2drive.py``, ``import_nuscenes.py``; a new source copies one of them).

External frames (CARLA's y-right frame, its vehicle-centre origin, degrees) are converted once, here.
"""

from riskdistill.data.adapters.bench2drive import B2DFrame, Bench2DriveClipReader, export_bench2drive_clip
from riskdistill.data.adapters.import_bench2drive import import_bench2drive
from riskdistill.data.adapters.import_nuscenes import import_nuscenes
from riskdistill.data.adapters.importer import IMPORTERS, ImportRequest, ImportResult
from riskdistill.data.adapters.nuscenes import NuScenesReader, NuScenesSample, export_nuscenes_scene
from riskdistill.data.storage import DataError

__all__ = [
    "IMPORTERS",
    "B2DFrame",
    "Bench2DriveClipReader",
    "DataError",
    "ImportRequest",
    "ImportResult",
    "NuScenesReader",
    "NuScenesSample",
    "export_bench2drive_clip",
    "export_nuscenes_scene",
    "import_bench2drive",
    "import_nuscenes",
]
