"""Routes: a lane sequence turned into one drivable reference path with a command at every point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskdistill.geometry import polyline_arclength, project_many_to_polyline
from riskdistill.sim.roadmap import (
    LANE_SAMPLE_SPACING_M,
    RoadMap,
    interp_heading,
    interp_polyline,
    polyline_headings,
    project_to_polyline,
    resample_polyline,
)
from riskdistill.types import Command

LANE_CHANGE_LENGTH_M = 20.0
COMMAND_LOOKAHEAD_M = 25.0  # a turn or lane-change command is announced this far ahead


@dataclass
class Path:
    """A reference polyline with arc length and heading. Used for the ego route and actor paths."""

    points: np.ndarray  # [P, 2]
    s: np.ndarray  # [P]
    heading: np.ndarray  # [P]

    @classmethod
    def from_points(cls, points: np.ndarray) -> Path:
        points = resample_polyline(np.asarray(points, dtype=np.float64), LANE_SAMPLE_SPACING_M)
        return cls(points=points, s=polyline_arclength(points), heading=polyline_headings(points))

    @property
    def length_m(self) -> float:
        return float(self.s[-1])

    def point_at(self, s_m: float | np.ndarray) -> np.ndarray:
        return interp_polyline(self.points, self.s, s_m)

    def heading_at(self, s_m: float | np.ndarray) -> np.ndarray:
        return interp_heading(self.heading, self.s, s_m)

    def project(
        self, xy: np.ndarray, s_hint: float | None = None, window_m: float = 15.0
    ) -> tuple[float, float]:
        """``(s_m, lateral_m)`` of the nearest path point; within ``window_m`` of ``s_hint`` if given."""
        lo, hi = 0, len(self.points) - 1
        if s_hint is not None:
            lo = max(int(np.searchsorted(self.s, s_hint - window_m)) - 1, 0)
            hi = min(int(np.searchsorted(self.s, s_hint + window_m)) + 1, len(self.points) - 1)
        return project_to_polyline(self.points, self.s, np.asarray(xy, dtype=np.float64), lo, hi)

    def project_many(self, xy: np.ndarray, s_lo: float, s_hi: float) -> tuple[np.ndarray, np.ndarray]:
        """``(s_m [N], lateral_m [N])`` of points ``[N, 2]`` projected on the stretch ``[s_lo, s_hi]``."""
        lo = max(int(np.searchsorted(self.s, s_lo)) - 1, 0)
        hi = min(int(np.searchsorted(self.s, s_hi)) + 1, len(self.points) - 1)
        return project_many_to_polyline(self.points, self.s, np.asarray(xy, dtype=np.float64), lo, hi)


def smoothstep(t: np.ndarray) -> np.ndarray:
    """Quintic 0 -> 1 blend with zero first and second derivatives at both ends."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * t * (10 - 15 * t + 6 * t * t)


@dataclass
class Route:
    """The ego's route: lane sequence, reference path and per-point commands."""

    lane_ids: list[int]
    path: Path
    commands: np.ndarray  # [P] int (Command) of the manoeuvre the path is about to make
    lane_of_point: np.ndarray  # [P] int lane id each path point belongs to

    @property
    def length_m(self) -> float:
        return self.path.length_m

    def command_at(self, s_m: float) -> Command:
        i = int(np.clip(np.searchsorted(self.path.s, s_m), 0, len(self.commands) - 1))
        return Command(int(self.commands[i]))

    def target_point(self, s_m: float, ahead_m: float = 20.0) -> np.ndarray:
        """The route point ``ahead_m`` further along (world frame ``[2]``), as Bench2Drive's target point."""
        return self.path.point_at(s_m + ahead_m)

    def route_lanes_set(self) -> set[int]:
        return set(self.lane_ids)


def plan_route(
    road_map: RoadMap, lane_ids: list[int], start_s_m: float = 0.0, end_s_m: float | None = None
) -> Route:
    """Build a :class:`Route` that follows ``lane_ids`` from ``start_s_m`` on the first lane.

    A step to a left/right neighbour becomes a smooth lane change of about ``LANE_CHANGE_LENGTH_M``.
    ``end_s_m`` cuts the route on the last lane (default: the lane's end).
    """
    if not lane_ids:
        raise ValueError("a route needs at least one lane")
    pieces: list[np.ndarray] = []
    piece_lane: list[np.ndarray] = []
    piece_cmd: list[np.ndarray] = []
    s_on_lane = start_s_m
    i = 0
    while i < len(lane_ids):
        lane = road_map.lanes[lane_ids[i]]
        last = i == len(lane_ids) - 1
        s_end = (end_s_m if end_s_m is not None else lane.length_m) if last else lane.length_m
        nxt = None if last else road_map.lanes[lane_ids[i + 1]]
        is_change = nxt is not None and nxt.id in (lane.left_neighbor, lane.right_neighbor)
        if is_change:
            # Drive on this lane, then blend over to the neighbour while keeping the same arc position.
            cmd = Command.CHANGE_LANE_LEFT if nxt.id == lane.left_neighbor else Command.CHANGE_LANE_RIGHT
            change_len = min(LANE_CHANGE_LENGTH_M, max(nxt.length_m - s_on_lane - 1.0, 5.0))
            s_start_change = s_on_lane + 2.0
            s_a = np.arange(s_on_lane, s_start_change, LANE_SAMPLE_SPACING_M)
            s_b = np.linspace(s_start_change, s_start_change + change_len, max(int(change_len / 0.5), 2))
            a_pts = lane.point_at(s_b)
            b_pts = nxt.point_at(nxt.project(a_pts[0])[0] + (s_b - s_start_change))
            w = smoothstep((s_b - s_start_change) / change_len)[:, None]
            blend = (1 - w) * a_pts + w * b_pts
            seg = np.concatenate([lane.point_at(s_a), blend], axis=0) if len(s_a) else blend
            pieces.append(seg)
            piece_lane.append(np.full(len(seg), lane.id))
            piece_cmd.append(np.full(len(seg), int(cmd)))
            s_on_lane = nxt.project(blend[-1])[0]
            i += 1
            continue
        s_vals = np.arange(s_on_lane, s_end, LANE_SAMPLE_SPACING_M)
        if len(s_vals) == 0 or s_vals[-1] < s_end - 1e-6:
            s_vals = np.append(s_vals, s_end)
        seg = lane.point_at(s_vals)
        pieces.append(seg)
        piece_lane.append(np.full(len(seg), lane.id))
        piece_cmd.append(np.full(len(seg), int(lane.turn)))
        s_on_lane = 0.0
        i += 1

    pts = np.concatenate(pieces, axis=0)
    lane_of = np.concatenate(piece_lane)
    cmds = np.concatenate(piece_cmd)
    # Drop repeated points where pieces join.
    keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-3])
    pts, lane_of, cmds = pts[keep], lane_of[keep], cmds[keep]
    s = polyline_arclength(pts)
    path = Path(points=pts, s=s, heading=polyline_headings(pts))
    commands = _announce_commands(s, cmds)
    return Route(lane_ids=list(lane_ids), path=path, commands=commands, lane_of_point=lane_of)


def _announce_commands(s: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Spread each manoeuvre's command backwards over ``COMMAND_LOOKAHEAD_M`` so it is announced early."""
    out = raw.copy()
    follow = int(Command.LANE_FOLLOW)
    for j in range(len(raw) - 1, -1, -1):
        if raw[j] != follow and (j == 0 or raw[j - 1] != raw[j]):
            start = np.searchsorted(s, s[j] - COMMAND_LOOKAHEAD_M)
            span = out[start:j]
            span[span == follow] = raw[j]
    return out
