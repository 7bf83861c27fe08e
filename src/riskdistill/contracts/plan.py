"""A plan as a path and a speed, turned into the waypoints of an :class:`~riskdistill.contracts.agent.Action`.

Planners that separate *where* (a path, points every metre ahead) from *how fast* (a target speed) hand the
built-in controller the points the path reaches at that speed, ``PLAN_DT_S`` apart: the controller's pure
pursuit follows the path and its speed loop takes the speed from the first second of the plan. The student
(``models/heads/planning.py``) and the expert's plan driver (``sim/expert.ExpertPlanDriver``) both use
:func:`waypoints_from_path_speed`, so the controller sees the same kind of plan from both.
"""

from __future__ import annotations

import numpy as np

from riskdistill.contracts.agent import PLAN_DT_S, PLAN_HORIZON


def waypoints_from_path_speed(path_ego: np.ndarray, speed_mps: float) -> np.ndarray:
    """``path_ego [P, 2]`` (ordered, starting ahead of the origin) and a target speed -> ``[6, 2]``
    waypoints: the points of the polyline origin -> path at arc lengths ``speed * (k + 1) * PLAN_DT_S``
    (held at the path's end; all at the origin when the speed is 0)."""
    poly = np.vstack([np.zeros((1, 2)), np.asarray(path_ego, dtype=np.float64).reshape(-1, 2)])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(poly, axis=0), axis=1))])
    want = np.minimum(max(float(speed_mps), 0.0) * PLAN_DT_S * np.arange(1, PLAN_HORIZON + 1), s[-1])
    return np.stack([np.interp(want, s, poly[:, 0]), np.interp(want, s, poly[:, 1])], axis=1)


def waypoints_from_path_speeds(paths_ego: np.ndarray, speeds_mps: np.ndarray) -> np.ndarray:
    """A batch of plans: ``paths_ego [B, P, 2]`` and ``speeds_mps [B]`` -> ``[B, 6, 2]`` waypoints
    (:func:`waypoints_from_path_speed` per plan)."""
    speeds = np.asarray(speeds_mps, dtype=np.float64).reshape(-1)
    return np.stack([waypoints_from_path_speed(p, float(v)) for p, v in zip(paths_ego, speeds, strict=True)])
