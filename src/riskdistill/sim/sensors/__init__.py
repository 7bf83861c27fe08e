"""Camera sensors: rigs (where the cameras are) and a CPU ray-casting renderer (what they see).

See :mod:`riskdistill.contracts.rig` and :mod:`riskdistill.sim.sensors.render`.
"""

from riskdistill.contracts.rig import (
    CameraSpec,
    Rig,
    RigPerturbation,
    load_rig,
    perturb_rig,
    resize_rig,
)
from riskdistill.sim.sensors.ground import GroundRaster, Material, bake_ground
from riskdistill.sim.sensors.render import CameraRenderer, RenderedFrame, jpeg_roundtrip

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
