"""Adapters between recorded data sets and external data formats.

- :mod:`riskdistill.data.adapters.bench2drive`: export a recorded route as a Bench2Drive clip folder and
  read Bench2Drive clips (real or exported) into this project's conventions.

External frames (CARLA's y-right frame, its vehicle-centre origin, degrees) are converted once, here.
"""

from riskdistill.data.adapters.bench2drive import (
    B2DFrame,
    Bench2DriveClipReader,
    DataError,
    export_bench2drive_clip,
)

__all__ = ["B2DFrame", "Bench2DriveClipReader", "DataError", "export_bench2drive_clip"]
