"""Camera sensors: rigs (where the cameras are) and a CPU ray-casting renderer (what they see).

See :mod:`riskdistill.sim.sensors.rig` and :mod:`riskdistill.sim.sensors.render`.
"""

from riskdistill.sim.sensors.ground import GroundRaster, Material, bake_ground
from riskdistill.sim.sensors.render import CameraRenderer, RenderedFrame, jpeg_roundtrip
from riskdistill.sim.sensors.rig import (
    CameraSpec,
    Rig,
    RigPerturbation,
    load_rig,
    perturb_rig,
    resize_rig,
)

__all__ = [
    "CameraRenderer",
    "CameraSpec",
    "GroundRaster",
    "Material",
    "RenderedFrame",
    "Rig",
    "RigPerturbation",
    "bake_ground",
    "jpeg_roundtrip",
    "load_rig",
    "perturb_rig",
    "resize_rig",
]
