"""Grounded objects: what a teacher is told about a frame's objects before it judges their risk.

Grounding (``teacher.grounding``: ground-truth boxes or an open-vocabulary detector matched to 3D objects)
produces a list of :class:`GroundedObject`; the VLM teacher puts them into its prompt (id, class, 2D box,
distance, relative speed) and its reply refers to them by ``object_id``; the runner then paints each
object's score onto its 3D footprint. ``object_id`` is the annotation's ``actor_id`` (the link to the 3D
object) when the object was matched, and a negative id for a detection without a 3D match.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GroundedObject:
    """One object of a frame, in the ego frame (x forward, y left).

    - ``object_id``: annotation ``actor_id`` of the matched 3D object (negative: detection without a match);
    - ``cls``: class name in lower case (``ActorClass`` names: ``"pedestrian"``, ``"car"``, ...; a detector's
      open-vocabulary label otherwise);
    - ``camera``: the camera whose ``box2d`` is given (the one where the object is most visible);
    - ``box2d``: ``[x0, y0, x1, y1]`` pixels in that camera's image (x1, y1 exclusive);
    - ``confidence``: detector confidence in [0, 1] (1.0 for ground truth);
    - ``cameras``: every camera in which the object is visible;
    - ``center_xy_m``: box centre in the ego frame; ``distance_m``: its distance from the ego origin;
    - ``velocity_xy_mps``: ground velocity in ego axes; ``closing_speed_mps``: rate at which the distance
      shrinks (positive = approaching);
    - ``size_lw_m``, ``yaw_rad``: footprint of the 3D box (for rasterising the risk map).
    """

    object_id: int
    cls: str
    camera: str
    box2d: tuple[float, float, float, float]
    confidence: float = 1.0
    cameras: tuple[str, ...] = ()
    center_xy_m: tuple[float, float] = (0.0, 0.0)
    distance_m: float = 0.0
    velocity_xy_mps: tuple[float, float] = (0.0, 0.0)
    closing_speed_mps: float = 0.0
    size_lw_m: tuple[float, float] = (0.0, 0.0)
    yaw_rad: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d
