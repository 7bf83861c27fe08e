"""The ego vehicle's body, shared by the simulator, data adapters, teachers and metrics.

The ego frame's origin is on the ground below the rear axle (x forward, y left, z up), so the box centre
sits ``EGO_REAR_AXLE_TO_CENTER_M`` ahead of the origin.
"""

from __future__ import annotations

EGO_SIZE_M = (4.6, 1.9, 1.5)  # length, width, height: about the ego of Bench2Drive (Lincoln MKZ)
EGO_WHEELBASE_M = 2.9
EGO_REAR_AXLE_TO_CENTER_M = 1.45  # the ego frame origin sits below the rear axle
