"""The road map: lanes as centrelines with widths and connectivity, plus junction furniture.

A :class:`RoadMap` is plain data built by :mod:`riskdistill.sim.layouts`. Everything is in the world
frame (x, y in metres, yaw counter-clockwise). Lanes are directed: the centreline runs in the direction
of travel. Routes are planned on the lane graph (successors = longitudinal continuation, including the
connector lanes inside junctions; left/right neighbours = lane changes to a lane of the same direction).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from riskdistill.geometry import polyline_arclength
from riskdistill.types import Command

LANE_SAMPLE_SPACING_M = 0.5
ZEBRA_BAR_M = 0.5  # painted bar width of a zebra crossing
ZEBRA_GAP_M = 0.5
ZEBRA_END_MARGIN_M = 0.25


class LaneKind(StrEnum):
    DRIVING = "driving"
    PARKING = "parking"  # kerbside parking strip; vehicles park here, the route never uses it


class JunctionControl(StrEnum):
    SIGNALIZED = "signalized"
    STOP = "stop"  # all-way or minor-road stop signs
    UNCONTROLLED = "uncontrolled"  # priority road: the minor approach yields


class MarkingKind(StrEnum):
    SOLID_WHITE = "solid_white"
    DASHED_WHITE = "dashed_white"
    SOLID_YELLOW = "solid_yellow"  # separates the two directions


def resample_polyline(points: np.ndarray, spacing_m: float = LANE_SAMPLE_SPACING_M) -> np.ndarray:
    """Resample a polyline ``[P, 2]`` to (nearly) uniform arc-length spacing, keeping both end points."""
    points = np.asarray(points, dtype=np.float64)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.ceil(s[-1] / spacing_m)), 1) + 1
    s_new = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(s_new, s, points[:, 0]), np.interp(s_new, s, points[:, 1])], axis=1)


def polyline_headings(points: np.ndarray) -> np.ndarray:
    """Heading ``[P]`` (yaw, rad) of a polyline at each vertex (central differences)."""
    d = np.gradient(points, axis=0)
    return np.arctan2(d[:, 1], d[:, 0])


def offset_polyline(points: np.ndarray, offset_m: float) -> np.ndarray:
    """Shift a polyline ``[P, 2]`` sideways; positive offsets go to the left of the direction of travel."""
    h = polyline_headings(points)
    normal = np.stack([-np.sin(h), np.cos(h)], axis=1)
    return points + offset_m * normal


def interp_polyline(points: np.ndarray, s: np.ndarray, s_m: float | np.ndarray) -> np.ndarray:
    """Point(s) at arc length ``s_m`` (clamped) on a polyline ``[P, 2]`` with cumulative arc length ``s``."""
    s_m = np.clip(s_m, 0.0, s[-1])
    return np.stack([np.interp(s_m, s, points[:, 0]), np.interp(s_m, s, points[:, 1])], axis=-1)


def interp_heading(heading: np.ndarray, s: np.ndarray, s_m: float | np.ndarray) -> np.ndarray:
    """Heading at arc length ``s_m`` (clamped), interpolated on the unit circle."""
    s_m = np.clip(s_m, 0.0, s[-1])
    return np.arctan2(np.interp(s_m, s, np.sin(heading)), np.interp(s_m, s, np.cos(heading)))


def project_to_polyline(
    points: np.ndarray, s: np.ndarray, xy: np.ndarray, lo: int = 0, hi: int | None = None
) -> tuple[float, float]:
    """``(s_m, lateral_m)`` of ``xy`` projected on segments ``lo..hi`` of a polyline; lateral > 0 is left."""
    hi = len(points) - 1 if hi is None else hi
    a, b = points[lo:hi], points[lo + 1 : hi + 1]
    if len(a) == 0:
        a, b, lo = points[:-1], points[1:], 0
    ab = b - a
    seg_len2 = np.maximum((ab**2).sum(axis=1), 1e-12)
    t = np.clip(((xy - a) * ab).sum(axis=1) / seg_len2, 0.0, 1.0)
    proj = a + t[:, None] * ab
    d2 = ((proj - xy) ** 2).sum(axis=1)
    i = int(np.argmin(d2))
    s_m = float(s[lo + i] + t[i] * np.sqrt(seg_len2[i]))
    cross = ab[i, 0] * (xy[1] - a[i, 1]) - ab[i, 1] * (xy[0] - a[i, 0])
    return s_m, float(np.sign(cross) * np.sqrt(d2[i]))


def dash_polyline(points: np.ndarray, dash_m: float, gap_m: float) -> list[np.ndarray]:
    """Split a polyline ``[P, 2]`` into dashes ``dash_m`` long separated by ``gap_m`` (lane markings)."""
    s = polyline_arclength(points)
    out = []
    for s0 in np.arange(0.0, s[-1], dash_m + gap_m):
        s1 = min(s0 + dash_m, s[-1])
        inner = points[(s > s0) & (s < s1)]
        ends = np.stack([np.interp([s0, s1], s, points[:, 0]), np.interp([s0, s1], s, points[:, 1])], axis=1)
        out.append(np.concatenate([ends[:1], inner, ends[1:]], axis=0))
    return out


@dataclass
class Lane:
    """A directed lane. ``centerline`` is sampled every ~0.5 m in the direction of travel."""

    id: int
    kind: LaneKind
    centerline: np.ndarray  # [P, 2] world metres
    width_m: float
    road_id: int
    speed_limit_mps: float
    junction_id: int | None = None  # set for connector lanes inside a junction
    turn: Command = Command.LANE_FOLLOW  # LEFT / RIGHT / STRAIGHT for junction connectors
    successors: list[int] = field(default_factory=list)
    predecessors: list[int] = field(default_factory=list)
    left_neighbor: int | None = None  # same direction of travel, one lane to the left
    right_neighbor: int | None = None
    s: np.ndarray = field(init=False, repr=False)  # [P] cumulative arc length
    heading: np.ndarray = field(init=False, repr=False)  # [P] yaw of the centreline

    def __post_init__(self) -> None:
        self.centerline = np.asarray(self.centerline, dtype=np.float64)
        if self.centerline.ndim != 2 or self.centerline.shape[1] != 2 or len(self.centerline) < 2:
            raise ValueError(f"lane {self.id}: centerline must be [P>=2, 2], got {self.centerline.shape}")
        self.s = polyline_arclength(self.centerline)
        self.heading = polyline_headings(self.centerline)

    @property
    def length_m(self) -> float:
        return float(self.s[-1])

    def point_at(self, s_m: float | np.ndarray) -> np.ndarray:
        """Centreline point(s) at arc length ``s_m`` (clamped to the lane)."""
        return interp_polyline(self.centerline, self.s, s_m)

    def heading_at(self, s_m: float | np.ndarray) -> np.ndarray:
        return interp_heading(self.heading, self.s, s_m)

    def project(self, xy: np.ndarray) -> tuple[float, float]:
        """Project a point onto the centreline: ``(s_m, lateral_m)``, lateral positive to the left."""
        return project_to_polyline(self.centerline, self.s, np.asarray(xy, dtype=np.float64))

    def boundaries(self) -> tuple[np.ndarray, np.ndarray]:
        """Left and right boundary polylines ``([P, 2], [P, 2])``."""
        half = 0.5 * self.width_m
        return offset_polyline(self.centerline, half), offset_polyline(self.centerline, -half)

    def polygon(self) -> np.ndarray:
        """The lane surface as a closed polygon ``[2P, 2]`` (left boundary then right boundary reversed)."""
        left, right = self.boundaries()
        return np.concatenate([left, right[::-1]], axis=0)


@dataclass
class StopLine:
    """Where vehicles on ``lane_id`` must stop: at arc length ``s_m`` of that lane (the lane's end)."""

    id: int
    lane_id: int
    s_m: float
    p0: np.ndarray  # [2] one end of the painted line
    p1: np.ndarray  # [2]
    traffic_light_id: int | None = None  # None: a stop sign (or a yield line if ``stop_sign`` is False)
    stop_sign: bool = False


@dataclass
class TrafficLight:
    """A signal head. Its state comes from the junction's phase plan (see :mod:`riskdistill.sim.world`)."""

    id: int
    junction_id: int
    phase_group: int  # lights of the same group are green together
    position: np.ndarray  # [2] where the pole stands (for rendering)
    height_m: float
    yaw: float  # the direction the light faces (towards approaching traffic)
    stop_line_ids: list[int] = field(default_factory=list)


@dataclass
class Junction:
    id: int
    polygon: np.ndarray  # [K, 2] the junction area
    control: JunctionControl
    # Signal timing (signalized only): phase groups cycle green -> yellow -> all-red.
    green_s: float = 12.0
    yellow_s: float = 3.0
    all_red_s: float = 2.0
    n_phase_groups: int = 2


@dataclass
class Crosswalk:
    id: int
    polygon: np.ndarray  # [4, 2] zebra area
    start: np.ndarray  # [2] kerb point on one side (pedestrians walk start -> end)
    end: np.ndarray  # [2]
    road_id: int


def zebra_bars(cw: Crosswalk) -> list[np.ndarray]:
    """The white bars of a zebra crossing: long along the road, spaced along the walking direction."""
    poly = np.asarray(cw.polygon, dtype=np.float64)
    u = np.asarray(cw.end, dtype=np.float64) - np.asarray(cw.start, dtype=np.float64)
    if np.hypot(*u) < 1e-6:  # degenerate walk line: cross along the polygon's longest edge
        edges = np.diff(np.concatenate([poly, poly[:1]]), axis=0)
        u = edges[np.argmax(np.hypot(edges[:, 0], edges[:, 1]))]
    u = u / np.hypot(*u)
    v = np.array([-u[1], u[0]])
    centre = poly.mean(axis=0)
    a, b = (poly - centre) @ u, (poly - centre) @ v
    b0, b1 = b.min() + ZEBRA_END_MARGIN_M, b.max() - ZEBRA_END_MARGIN_M
    period = ZEBRA_BAR_M + ZEBRA_GAP_M
    n = int((a.max() - a.min() + ZEBRA_GAP_M) // period)
    first = 0.5 * (a.min() + a.max()) - 0.5 * (n * period - ZEBRA_GAP_M)
    bars = []
    for i in range(n):
        a0 = first + i * period
        a1 = a0 + ZEBRA_BAR_M
        bars.append(
            np.array([centre + ai * u + bi * v for ai, bi in [(a0, b0), (a1, b0), (a1, b1), (a0, b1)]])
        )
    return bars


@dataclass
class LaneMarking:
    kind: MarkingKind
    polyline: np.ndarray  # [P, 2]


@dataclass
class LayoutObstacle:
    """A static piece of road-side layout (pole, wall segment) that a vehicle can hit."""

    center: np.ndarray  # [2]
    yaw: float
    length_m: float
    width_m: float
    height_m: float


@dataclass
class RoadMap:
    """All the static world. Built by :func:`riskdistill.sim.layouts.build_layout`."""

    family: str
    lanes: dict[int, Lane]
    junctions: dict[int, Junction] = field(default_factory=dict)
    stop_lines: dict[int, StopLine] = field(default_factory=dict)
    traffic_lights: dict[int, TrafficLight] = field(default_factory=dict)
    crosswalks: dict[int, Crosswalk] = field(default_factory=dict)
    sidewalks: list[np.ndarray] = field(default_factory=list)  # polygons [K, 2]
    markings: list[LaneMarking] = field(default_factory=list)
    layout_obstacles: list[LayoutObstacle] = field(default_factory=list)

    def driving_lanes(self) -> list[Lane]:
        return [lane for lane in self.lanes.values() if lane.kind == LaneKind.DRIVING]

    def bounds(self, margin_m: float = 10.0) -> tuple[float, float, float, float]:
        """``(x_min, y_min, x_max, y_max)`` of everything on the map, plus a margin."""
        pts = [lane.centerline for lane in self.lanes.values()] + list(self.sidewalks)
        allp = np.concatenate(pts, axis=0)
        lo, hi = allp.min(axis=0) - margin_m, allp.max(axis=0) + margin_m
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def stop_lines_on_lane(self, lane_id: int) -> list[StopLine]:
        return [sl for sl in self.stop_lines.values() if sl.lane_id == lane_id]

    def locate(
        self, xy: np.ndarray, yaw: float | None = None, candidates: list[int] | None = None
    ) -> tuple[int, float, float]:
        """The best matching driving lane for a pose: ``(lane_id, s_m, lateral_m)``.

        With ``yaw`` given, lanes whose direction differs by more than 90 degrees are ignored.
        """
        best: tuple[float, int, float, float] | None = None
        ids = candidates if candidates is not None else [lane.id for lane in self.driving_lanes()]
        for lane_id in ids:
            lane = self.lanes[lane_id]
            s_m, lat = lane.project(xy)
            cost = abs(lat)
            if yaw is not None:
                dyaw = np.angle(np.exp(1j * (float(lane.heading_at(s_m)) - yaw)))
                if abs(dyaw) > np.pi / 2:
                    continue
                cost += 2.0 * abs(dyaw)
            if best is None or cost < best[0]:
                best = (cost, lane_id, s_m, lat)
        if best is None:
            raise ValueError(f"no driving lane matches pose {xy} yaw={yaw}")
        return best[1], best[2], best[3]

    def shortest_lane_path(
        self, start_lane: int, goal_lane: int, allow_lane_change: bool = True
    ) -> list[int]:
        """Breadth-first lane sequence from ``start_lane`` to ``goal_lane`` (inclusive).

        Consecutive lanes are successors, or left/right neighbours (a lane change) when allowed.
        """
        if start_lane not in self.lanes or goal_lane not in self.lanes:
            raise ValueError(f"unknown lane id in route request: {start_lane} -> {goal_lane}")
        parent: dict[int, int | None] = {start_lane: None}
        queue = deque([start_lane])
        while queue:
            cur = queue.popleft()
            if cur == goal_lane:
                break
            lane = self.lanes[cur]
            nxt = list(lane.successors)
            if allow_lane_change:
                nxt += [n for n in (lane.left_neighbor, lane.right_neighbor) if n is not None]
            for n in nxt:
                if n not in parent and self.lanes[n].kind == LaneKind.DRIVING:
                    parent[n] = cur
                    queue.append(n)
        if goal_lane not in parent:
            raise ValueError(f"no lane path from lane {start_lane} to lane {goal_lane}")
        path = [goal_lane]
        while (p := parent[path[-1]]) is not None:
            path.append(p)
        return path[::-1]
