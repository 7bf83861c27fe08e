"""``OccupancyBrake``: stop when the student's own BEV occupancy shows something in its path.

A safety check on the student's outputs, after InterFuser's safety controller (Shao et al., CoRL 2022), which
constrains the planned motion with the object density map the network itself predicts. On a planning step
it counts the cells of the predicted occupancy (vehicle, vulnerable road user and static-obstacle channels,
probability >= ``threshold``) that lie in the corridor of the student's planned path (``half_width_m`` to
either side) between the front bumper and the distance the ego needs to stop from its current speed
(``reaction_s`` at that speed, braking at ``decel_mps2``, plus ``margin_m``). With ``min_cells`` or more
the driver hands the controller a stop instead of the plan; the next planning step looks again.

It reads the student's outputs and the ego speed only (what a car has), never ground truth. It can only stop
for what the occupancy sees, and a false positive in the path stops the car as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskdistill.contracts.batch import BEV_CHANNELS
from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_M
from riskdistill.geometry import BevGrid, polyline_arclength, project_many_to_polyline

#: The occupancy channels the brake stops for (``contracts.batch.BEV_CHANNELS``).
OBSTACLE_CHANNELS: tuple[str, ...] = ("vehicle", "vulnerable", "static_obstacle")
#: The front bumper ahead of the rear axle (the ego frame's origin).
FRONT_BUMPER_X_M = EGO_REAR_AXLE_TO_CENTER_M + 0.5 * EGO_SIZE_M[0]
_EXTEND_M = 60.0  # a path shorter than the stopping distance continues straight along its last segment


@dataclass(frozen=True)
class OccupancyBrake:
    threshold: float = 0.5
    half_width_m: float = 0.5 * EGO_SIZE_M[1] + 0.3
    min_cells: int = 2
    reaction_s: float = 0.5
    decel_mps2: float = 5.0
    margin_m: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"OccupancyBrake.threshold must be in (0, 1), got {self.threshold}")
        if self.half_width_m <= 0 or self.decel_mps2 <= 0 or self.min_cells < 1:
            raise ValueError(
                "OccupancyBrake needs half_width_m > 0, decel_mps2 > 0 and min_cells >= 1, got "
                f"{self.half_width_m}, {self.decel_mps2}, {self.min_cells}"
            )
        if self.reaction_s < 0 or self.margin_m < 0:
            raise ValueError(f"OccupancyBrake: reaction_s and margin_m must be >= 0, got {self}")

    def stopping_distance_m(self, speed_mps: float) -> float:
        """How far ahead of the front bumper the corridor reaches at ``speed_mps``."""
        v = max(float(speed_mps), 0.0)
        return v * self.reaction_s + v * v / (2.0 * self.decel_mps2) + self.margin_m

    def hits(self, occupancy_logits: np.ndarray, grid: BevGrid, path_xy: np.ndarray, speed_mps: float) -> int:
        """How many obstacle cells lie in the corridor. ``occupancy_logits``: ``[C, H, W]`` over ``grid``
        (channels ``BEV_CHANNELS``); ``path_xy``: ``[P, 2]`` the planned rear-axle path in the ego frame."""
        occ = np.asarray(occupancy_logits, dtype=np.float64)
        if occ.ndim != 3 or occ.shape[0] != len(BEV_CHANNELS) or occ.shape[1:] != (grid.n_rows, grid.n_cols):
            raise ValueError(
                f"OccupancyBrake: occupancy of shape {occ.shape}, expected "
                f"[{len(BEV_CHANNELS)}, {grid.n_rows}, {grid.n_cols}] (BEV_CHANNELS over the student's grid)"
            )
        logit = np.log(self.threshold / (1.0 - self.threshold))
        ch = [BEV_CHANNELS.index(c) for c in OBSTACLE_CHANNELS]
        occupied = (occ[ch] >= logit).any(axis=0)  # [H, W]
        if not occupied.any():
            return 0
        cells = grid.cell_centers()[occupied]  # [M, 2]
        poly = _polyline(np.asarray(path_xy, dtype=np.float64).reshape(-1, 2))
        s_along, lateral = project_many_to_polyline(poly, polyline_arclength(poly), cells)
        lateral = np.abs(lateral)
        reach = FRONT_BUMPER_X_M + self.stopping_distance_m(speed_mps)
        inside = (lateral <= self.half_width_m) & (s_along >= FRONT_BUMPER_X_M) & (s_along <= reach)
        return int(inside.sum())

    def triggered(
        self, occupancy_logits: np.ndarray, grid: BevGrid, path_xy: np.ndarray, speed_mps: float
    ) -> bool:
        return self.hits(occupancy_logits, grid, path_xy, speed_mps) >= self.min_cells


def _polyline(path_xy: np.ndarray) -> np.ndarray:
    """The path from the rear axle (the origin), its repeated points dropped, continued straight ahead."""
    pts = np.vstack([np.zeros((1, 2)), path_xy])
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-3])
    pts = pts[keep]
    if len(pts) == 1:  # no path (standing): straight ahead
        return np.array([[0.0, 0.0], [_EXTEND_M, 0.0]])
    d = pts[-1] - pts[-2]
    return np.vstack([pts, pts[-1] + _EXTEND_M * d / np.linalg.norm(d)])
