"""The route's global plan -> the target point and command a student was trained with.

The leaderboard hands an agent the route as dense waypoints with a CARLA ``RoadOption`` each
(``set_global_plan``). The student learned the built-in environment's rule (``sim/env.py``,
``sim/route.py``): progress is the vehicle centre's projection on the route (within 12 m of the previous
progress, never decreasing, updated only within 4 m of the route); the target point is the route point
``TARGET_AHEAD_M`` further along; the command is the route command at the progress, where a manoeuvre's
command (turn, lane change) is announced ``COMMAND_ANNOUNCE_M`` before it starts. :class:`RouteTracker`
applies the same rule to the global plan, so the student sees the inputs it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from riskdistill.geometry import polyline_arclength
from riskdistill.sim.roadmap import interp_polyline, project_to_polyline
from riskdistill.types import Command

TARGET_AHEAD_M = 20.0  # sim.env.TARGET_POINT_AHEAD_M
COMMAND_ANNOUNCE_M = 25.0  # sim.route.COMMAND_LOOKAHEAD_M
PROGRESS_WINDOW_M = 12.0
MAX_LATERAL_M = 4.0


def command_value(option: object) -> int:
    """A ``RoadOption`` (enum from CARLA's ``agents.navigation.local_planner``), an int or a name such as
    ``"LANEFOLLOW"`` -> its value (= our :class:`~riskdistill.types.Command`)."""
    if isinstance(option, (int, np.integer)):
        return int(option)
    value = getattr(option, "value", None)
    if isinstance(value, (int, np.integer)):
        return int(value)
    name = str(getattr(option, "name", option)).upper().replace("_", "")
    names = {c.name.replace("_", ""): int(c) for c in Command}
    if name in names:
        return names[name]
    raise ValueError(f"unknown route option {option!r}; valid: {sorted(names)} or their values")


def announce_commands(s: np.ndarray, raw: np.ndarray, announce_m: float = COMMAND_ANNOUNCE_M) -> np.ndarray:
    """Per-point commands with every manoeuvre (a run of non-``LANE_FOLLOW`` points) also given to the
    ``LANE_FOLLOW`` points up to ``announce_m`` before it."""
    raw = np.asarray(raw, dtype=np.int64)
    out = raw.copy()
    follow = int(Command.LANE_FOLLOW)
    starts = [j for j in range(len(raw)) if raw[j] != follow and (j == 0 or raw[j - 1] != raw[j])]
    for j in reversed(starts):
        i0 = int(np.searchsorted(s, s[j] - announce_m))
        span = out[i0:j]
        span[span == follow] = raw[j]
    return out


class RouteTracker:
    """Tracks the vehicle along a route given as world points ``[P, 2]`` (our y-left world frame) with a
    command per point; :meth:`update` gives the target point (world) and the command."""

    def __init__(
        self,
        points_xy: np.ndarray,
        raw_commands: Sequence[int],
        target_ahead_m: float = TARGET_AHEAD_M,
        announce_m: float = COMMAND_ANNOUNCE_M,
    ):
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        cmds = np.asarray(raw_commands, dtype=np.int64)
        if len(pts) < 2 or len(cmds) != len(pts) or not np.isfinite(pts).all():
            raise ValueError(
                f"a route needs >= 2 finite points and one command each, got {len(pts)} / {len(cmds)}"
            )
        keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-3])
        self.points, raw = pts[keep], cmds[keep]
        self.s = polyline_arclength(self.points)
        self.commands = announce_commands(self.s, raw, announce_m)
        self.target_ahead_m = float(target_ahead_m)
        self.progress_m: float | None = None

    @property
    def length_m(self) -> float:
        return float(self.s[-1])

    def _window(self, centre: float) -> tuple[int, int]:
        lo = max(int(np.searchsorted(self.s, centre - PROGRESS_WINDOW_M)) - 1, 0)
        hi = min(int(np.searchsorted(self.s, centre + PROGRESS_WINDOW_M)) + 1, len(self.points) - 1)
        return lo, hi

    def update(self, origin_xy: np.ndarray) -> tuple[np.ndarray, Command]:
        """Advance with the vehicle origin (box centre, our world) and return ``(target_world [2], command)``.
        The first call projects on the whole route; later ones within the window around the progress."""
        xy = np.asarray(origin_xy, dtype=np.float64).reshape(2)
        if self.progress_m is None:
            s_m, _ = project_to_polyline(self.points, self.s, xy)
            self.progress_m = s_m
        else:
            lo, hi = self._window(self.progress_m)
            s_m, lat = project_to_polyline(self.points, self.s, xy, lo, hi)
            if abs(lat) < MAX_LATERAL_M:
                self.progress_m = max(self.progress_m, s_m)
        target = interp_polyline(self.points, self.s, self.progress_m + self.target_ahead_m)
        i = int(np.clip(np.searchsorted(self.s, self.progress_m), 0, len(self.commands) - 1))
        return np.asarray(target, dtype=np.float64), Command(int(self.commands[i]))
