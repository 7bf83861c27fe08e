"""Procedural road layouts: a :class:`LayoutParams` in, a self-consistent :class:`RoadMap` out.

Everything is deterministic: the same parameters always give identical arrays (the only randomness, the
junction arm jitter, is drawn from ``seed``). World frame: x, y in metres, yaw counter-clockwise, y to
the left; traffic drives on the RIGHT.

Conventions
-----------
* A road has a *reference line* running in its forward direction. On a two-way road it is the centre line
  between the directions; forward lanes lie to its right, backward lanes to its left. On a one-way road
  (``two_way=False``, the highway main road) it is the middle of the carriageway.
* Lane indices count from the kerb: ``forward_lane_ids[0]`` / ``backward_lane_ids[0]`` are the rightmost
  lanes in their own direction of travel. Lanes of one direction are left/right neighbours of each other,
  never across directions.
* Lanes that end beside a through lane (kerbside parking strips, the highway acceleration lane) point to the
  driving lane they can pull into (``left_neighbor``, or ``right_neighbor`` for the left-kerb parking strip
  of a one-way road), but the driving lane does not point back: routes never turn into a dead end.
* ``straight``: the road runs from ``(-L/2, 0)`` to ``(L/2, 0)``. ``curve``: 40 m straight from
  ``(-40, 0)`` to the origin, then the arc (centre ``(0, curve_radius_m)``), then a straight to total ``L``.
  ``highway``: one-way main road from ``(-L/2, 0)`` to ``(L/2, 0)`` and an on-ramp from the right whose
  acceleration lane ends before the middle of the road.
* Junctions: see :mod:`riskdistill.sim.layouts_junction` (arm angles, stop lines, crosswalks).
* :func:`riskdistill.sim.road_layouts.build_layout` builds any family (it imports both modules).
* ``rotation_rad`` rotates the finished layout about the origin (every point and every yaw).
* Options that do not apply are ignored: ``two_way`` outside straight/curve (junction arms are two-way,
  the highway one-way), ``parking`` and ``crosswalk`` on the highway, the curve and junction fields elsewhere.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from riskdistill.config import StrictConfig
from riskdistill.sim.roadmap import (
    Crosswalk,
    Junction,
    Lane,
    LaneKind,
    LaneMarking,
    LayoutObstacle,
    MarkingKind,
    RoadMap,
    StopLine,
    TrafficLight,
    offset_polyline,
    polyline_arclength,
    resample_polyline,
)
from riskdistill.types import Command

LayoutFamily = Literal["straight", "curve", "junction4", "junction_t", "highway"]

PARKING_WIDTH_M = 2.4
CROSSWALK_WIDTH_M = 4.0
CURVE_LEAD_IN_M = 40.0
POLE_SPACING_M = 30.0
POLE_SIZE_M = 0.3
POLE_HEIGHT_M = 5.0
DENSE_STEP_M = 0.25  # reference lines are built this fine, lanes are then resampled at 0.5 m
HIGHWAY_ACCEL_LANE_M = 80.0


class LayoutParams(StrictConfig):
    """Parameters of one procedural layout. See the module docstring for the geometry conventions."""

    model_config = ConfigDict(allow_inf_nan=False)

    family: LayoutFamily
    lanes_per_direction: int = Field(1, ge=1, le=3)  # highway: lanes of the one-way main road
    two_way: bool = True  # straight/curve only
    lane_width_m: float = Field(3.5, ge=2.5, le=4.5)
    parking: bool = False  # kerbside parking strips (2.4 m) on both sides; not on the highway
    crosswalk: bool = True  # straight/curve: one at 60 % of the length; junctions: one per arm
    sidewalk_width_m: float = Field(3.0, ge=0.5, le=10.0)
    road_length_m: float = Field(220.0, ge=60.0, le=5000.0)  # junction arms are road_length_m / 2.5 long
    curve_radius_m: float = 80.0  # > 0 turns left, < 0 turns right
    curve_angle_deg: float = Field(70.0, gt=0.0, le=180.0)
    junction_control: Literal["signalized", "stop", "uncontrolled"] = "signalized"
    arm_angle_jitter_deg: float = Field(0.0, ge=0.0, le=15.0)
    speed_limit_mps: float = Field(13.9, gt=0.0, le=70.0)
    rotation_rad: float = 0.0
    seed: int = 0  # only for the arm jitter

    @model_validator(mode="after")
    def _check_curve(self) -> LayoutParams:
        if self.family != "curve":
            return self
        half = self.lanes_per_direction * self.lane_width_m * (2 if self.two_way else 1) / 2.0
        half += PARKING_WIDTH_M if self.parking else 0.0
        min_radius = half + self.sidewalk_width_m + 2.0
        if abs(self.curve_radius_m) < min_radius:
            raise ValueError(
                f"curve_radius_m={self.curve_radius_m}: |radius| must be at least {min_radius:.1f} m "
                "(half the road width + sidewalk + 2 m)"
            )
        arc = abs(self.curve_radius_m) * math.radians(self.curve_angle_deg)
        need = CURVE_LEAD_IN_M + arc + 10.0
        if self.road_length_m < need:
            raise ValueError(
                f"road_length_m={self.road_length_m} is too short for the curve: need >= {need:.1f} m "
                f"({CURVE_LEAD_IN_M:.0f} m lead-in + {arc:.1f} m arc (|curve_radius_m| x curve_angle_deg) "
                "+ 10 m)"
            )
        return self


@dataclass
class RoadHandle:
    """Named access to one road of a layout (lane ids, furniture ids, reference line)."""

    name: str
    road_id: int
    forward_lane_ids: list[int]  # along the reference direction, index 0 = rightmost (kerb side)
    backward_lane_ids: list[int]  # opposite direction, index 0 = rightmost in its direction; [] if one-way
    parking_forward_lane_id: int | None  # parking strip right of the forward lanes
    parking_backward_lane_id: int | None  # parking strip on the left kerb (one-way road: directed forward)
    crosswalk_ids: list[int]
    stop_line_ids: list[int]  # junction arms: one per incoming (forward) lane; [] on a priority arm
    reference: np.ndarray  # [P, 2] reference line in the forward direction, sampled every 0.5 m


@dataclass
class Layout:
    road_map: RoadMap
    params: LayoutParams
    roads: dict[str, RoadHandle]  # straight/curve: main; highway: main, ramp; junctions: arm0..arm2[, arm3]
    junction_id: int | None
    connectors: dict[tuple[str, int, str, int], int]  # (arm_in, fwd lane idx, arm_out, bwd lane idx) -> lane


# ----------------------------------------------------------------------------------------------------------
# Builder and geometry helpers (shared with layouts_junction)


class _Builder:
    """Accumulates map elements with sequential ids."""

    def __init__(self, params: LayoutParams) -> None:
        self.p = params
        self.lanes: dict[int, Lane] = {}
        self.junctions: dict[int, Junction] = {}
        self.stop_lines: dict[int, StopLine] = {}
        self.traffic_lights: dict[int, TrafficLight] = {}
        self.crosswalks: dict[int, Crosswalk] = {}
        self.sidewalks: list[np.ndarray] = []
        self.markings: list[LaneMarking] = []
        self.obstacles: list[LayoutObstacle] = []
        self._next_road = 0

    def new_road_id(self) -> int:
        self._next_road += 1
        return self._next_road - 1

    def add_lane(
        self,
        kind: LaneKind,
        centerline: np.ndarray,
        width_m: float,
        road_id: int,
        junction_id: int | None = None,
        turn: Command = Command.LANE_FOLLOW,
    ) -> int:
        lane_id = len(self.lanes)
        self.lanes[lane_id] = Lane(
            id=lane_id,
            kind=kind,
            centerline=resample_polyline(centerline),
            width_m=width_m,
            road_id=road_id,
            speed_limit_mps=self.p.speed_limit_mps,
            junction_id=junction_id,
            turn=turn,
        )
        return lane_id

    def link(self, a: int, b: int) -> None:
        self.lanes[a].successors.append(b)
        self.lanes[b].predecessors.append(a)

    def add_stop_line(
        self, lane_id: int, s_m: float, traffic_light_id: int | None = None, stop_sign: bool = False
    ) -> int:
        lane = self.lanes[lane_id]
        center, yaw = lane.point_at(s_m), float(lane.heading_at(s_m))
        half = 0.5 * lane.width_m * np.array([-math.sin(yaw), math.cos(yaw)])
        sid = len(self.stop_lines)
        self.stop_lines[sid] = StopLine(
            id=sid,
            lane_id=lane_id,
            s_m=float(s_m),
            p0=center - half,
            p1=center + half,
            traffic_light_id=traffic_light_id,
            stop_sign=stop_sign,
        )
        return sid

    def add_pole(self, center: np.ndarray, yaw: float) -> None:
        self.obstacles.append(
            LayoutObstacle(
                center=np.asarray(center, dtype=np.float64),
                yaw=float(yaw),
                length_m=POLE_SIZE_M,
                width_m=POLE_SIZE_M,
                height_m=POLE_HEIGHT_M,
            )
        )

    def road_map(self) -> RoadMap:
        return RoadMap(
            family=self.p.family,
            lanes=self.lanes,
            junctions=self.junctions,
            stop_lines=self.stop_lines,
            traffic_lights=self.traffic_lights,
            crosswalks=self.crosswalks,
            sidewalks=self.sidewalks,
            markings=self.markings,
            layout_obstacles=self.obstacles,
        )


def _line(a: tuple[float, float] | np.ndarray, b: tuple[float, float] | np.ndarray) -> np.ndarray:
    """A straight polyline from ``a`` to ``b`` sampled every ``DENSE_STEP_M``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = max(math.ceil(float(np.linalg.norm(b - a)) / DENSE_STEP_M), 1) + 1
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1.0 - t) * a + t * b


def _bezier(p0: np.ndarray, h0: float, p3: np.ndarray, h3: float, ratio: float, n: int = 400) -> np.ndarray:
    """Cubic Bezier from ``p0`` (heading ``h0``) to ``p3`` (heading ``h3``); handles = ratio x chord."""
    p0, p3 = np.asarray(p0, dtype=np.float64), np.asarray(p3, dtype=np.float64)
    handle = ratio * float(np.linalg.norm(p3 - p0))
    p1 = p0 + handle * np.array([math.cos(h0), math.sin(h0)])
    p2 = p3 - handle * np.array([math.cos(h3), math.sin(h3)])
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def _arc_handle_ratio(dyaw: float) -> float:
    """Bezier handle / chord that makes a cubic approximate a circular arc turning by ``dyaw``."""
    d = abs(dyaw)
    if d < 1e-3:
        return 1.0 / 3.0
    return (2.0 / 3.0) * math.tan(d / 4.0) / math.sin(d / 2.0)


def _wrap(angle: float) -> float:
    return float((angle + math.pi) % (2.0 * math.pi) - math.pi)


def _join(*pieces: np.ndarray) -> np.ndarray:
    """Concatenate polylines, dropping the duplicated point where one ends and the next starts."""
    out = [pieces[0]]
    for p in pieces[1:]:
        out.append(p[1:] if np.linalg.norm(p[0] - out[-1][-1]) < 1e-6 else p)
    return np.concatenate(out, axis=0)


def _cut(ref: np.ndarray, s0: float, s1: float) -> np.ndarray:
    """The part of polyline ``ref`` between arc lengths ``s0`` and ``s1`` (clamped)."""
    s = polyline_arclength(ref)
    s0, s1 = max(s0, 0.0), min(s1, float(s[-1]))
    inner = (s > s0 + 1e-6) & (s < s1 - 1e-6)
    ss = np.concatenate([[s0], s[inner], [s1]])
    return np.stack([np.interp(ss, s, ref[:, 0]), np.interp(ss, s, ref[:, 1])], axis=1)


def _pose(ref: np.ndarray, s_m: float, offset_m: float = 0.0) -> tuple[np.ndarray, float]:
    """Point at arc length ``s_m`` of ``ref`` shifted ``offset_m`` to the left, and the heading there."""
    s = polyline_arclength(ref)
    s_m = float(np.clip(s_m, 0.0, s[-1]))
    i = int(np.clip(np.searchsorted(s, s_m) - 1, 0, len(s) - 2))
    d = ref[i + 1] - ref[i]
    yaw = math.atan2(d[1], d[0])
    xy = np.array([np.interp(s_m, s, ref[:, 0]), np.interp(s_m, s, ref[:, 1])])
    return xy + offset_m * np.array([-math.sin(yaw), math.cos(yaw)]), yaw


def _strip(ref: np.ndarray, s0: float, s1: float, off_a: float, off_b: float) -> np.ndarray:
    """Polygon between lateral offsets ``off_a`` and ``off_b`` of ``ref`` over arc lengths ``[s0, s1]``."""
    piece = _cut(ref, s0, s1)
    return np.concatenate([offset_polyline(piece, off_a), offset_polyline(piece, off_b)[::-1]], axis=0)


def _mark(b: _Builder, kind: MarkingKind, ref: np.ndarray, offset_m: float, s0: float, s1: float) -> None:
    if s1 - s0 > 0.5:
        b.markings.append(LaneMarking(kind=kind, polyline=offset_polyline(_cut(ref, s0, s1), offset_m)))


def lane_offsets(n: int, width_m: float, two_way: bool) -> tuple[list[float], list[float]]:
    """Lateral offsets (left positive) of the forward and backward lane centres from the reference line."""
    if two_way:
        fwd = [-(n - i - 0.5) * width_m for i in range(n)]
        bwd = [(n - j - 0.5) * width_m for j in range(n)]
        return fwd, bwd
    return [(i - (n - 1) / 2.0) * width_m for i in range(n)], []


def kerb_offsets(params: LayoutParams, two_way: bool, parking: bool) -> tuple[float, float]:
    """``(right, left)`` kerb offsets of a road (outer edge of the driving + parking lanes)."""
    n, w = params.lanes_per_direction, params.lane_width_m
    half = n * w if two_way else n * w / 2.0
    half += PARKING_WIDTH_M if parking else 0.0
    return -half, half


def add_road(
    b: _Builder,
    name: str,
    ref: np.ndarray,
    two_way: bool,
    parking: bool,
    parking_range: tuple[float, float] | None = None,
    right_edge_marking: bool = True,
) -> RoadHandle:
    """Add the lanes and lane markings of one road along the dense reference line ``ref``.

    ``parking_range`` is the arc-length range of ``ref`` the parking strips cover (default: all of it).
    """
    p = b.p
    n, w = p.lanes_per_direction, p.lane_width_m
    road_id = b.new_road_id()
    length = float(polyline_arclength(ref)[-1])
    fwd_off, bwd_off = lane_offsets(n, w, two_way)
    fwd = [b.add_lane(LaneKind.DRIVING, offset_polyline(ref, o), w, road_id) for o in fwd_off]
    bwd = [b.add_lane(LaneKind.DRIVING, offset_polyline(ref, o)[::-1], w, road_id) for o in bwd_off]
    for ids in (fwd, bwd):
        for right, left in itertools.pairwise(ids):
            b.lanes[right].left_neighbor = left
            b.lanes[left].right_neighbor = right

    park_f = park_b = None
    if parking:
        s0, s1 = parking_range if parking_range is not None else (0.0, length)
        piece = _cut(ref, s0, s1)
        right = offset_polyline(piece, fwd_off[0] - 0.5 * (w + PARKING_WIDTH_M))
        park_f = b.add_lane(LaneKind.PARKING, right, PARKING_WIDTH_M, road_id)
        b.lanes[park_f].left_neighbor = fwd[0]
        if two_way:
            left = offset_polyline(piece, bwd_off[0] + 0.5 * (w + PARKING_WIDTH_M))[::-1]
            park_b = b.add_lane(LaneKind.PARKING, left, PARKING_WIDTH_M, road_id)
            b.lanes[park_b].left_neighbor = bwd[0]
        else:
            left = offset_polyline(piece, fwd_off[-1] + 0.5 * (w + PARKING_WIDTH_M))
            park_b = b.add_lane(LaneKind.PARKING, left, PARKING_WIDTH_M, road_id)
            b.lanes[park_b].right_neighbor = fwd[-1]

    if two_way:
        _mark(b, MarkingKind.SOLID_YELLOW, ref, 0.0, 0.0, length)
    for offs in (fwd_off, bwd_off):
        for o1, o2 in itertools.pairwise(offs):
            _mark(b, MarkingKind.DASHED_WHITE, ref, 0.5 * (o1 + o2), 0.0, length)
    if right_edge_marking:
        _mark(b, MarkingKind.SOLID_WHITE, ref, fwd_off[0] - 0.5 * w, 0.0, length)
    _mark(b, MarkingKind.SOLID_WHITE, ref, (bwd_off[0] if two_way else fwd_off[-1]) + 0.5 * w, 0.0, length)

    return RoadHandle(
        name=name,
        road_id=road_id,
        forward_lane_ids=fwd,
        backward_lane_ids=bwd,
        parking_forward_lane_id=park_f,
        parking_backward_lane_id=park_b,
        crosswalk_ids=[],
        stop_line_ids=[],
        reference=resample_polyline(ref),
    )


def add_sidewalk(
    b: _Builder, ref: np.ndarray, kerb_m: float, outward: int, s0: float, s1: float, avoid_s: list[float]
) -> None:
    """A sidewalk strip outside the kerb at lateral offset ``kerb_m`` (``outward`` = +1 left, -1 right).

    Poles stand every ``POLE_SPACING_M`` on its outer edge, except within 4 m of the arc lengths in
    ``avoid_s`` (crosswalk centres).
    """
    sw = b.p.sidewalk_width_m
    outer = kerb_m + outward * sw
    b.sidewalks.append(_strip(ref, s0, s1, kerb_m, outer))
    pole_off = outer - outward * min(0.3, 0.5 * sw)
    s = s0 + 0.5 * POLE_SPACING_M
    while s <= s1 - 2.0:
        if all(abs(s - c) > 0.5 * CROSSWALK_WIDTH_M + 2.0 for c in avoid_s):
            xy, yaw = _pose(ref, s, pole_off)
            b.add_pole(xy, yaw)
        s += POLE_SPACING_M


def add_crosswalk(
    b: _Builder, ref: np.ndarray, s_c: float, right_m: float, left_m: float, road_id: int
) -> int:
    """A crosswalk centred at arc length ``s_c`` spanning the kerbs; pedestrians walk right -> left kerb."""
    half = 0.5 * CROSSWALK_WIDTH_M
    corners = [(s_c - half, right_m), (s_c + half, right_m), (s_c + half, left_m), (s_c - half, left_m)]
    polygon = np.stack([_pose(ref, s, o)[0] for s, o in corners])
    sw = b.p.sidewalk_width_m
    cid = len(b.crosswalks)
    b.crosswalks[cid] = Crosswalk(
        id=cid,
        polygon=polygon,
        start=_pose(ref, s_c, right_m - 0.5 * sw)[0],
        end=_pose(ref, s_c, left_m + 0.5 * sw)[0],
        road_id=road_id,
    )
    return cid


# ----------------------------------------------------------------------------------------------------------
# Families


def _curve_reference(p: LayoutParams) -> np.ndarray:
    r, sign = abs(p.curve_radius_m), math.copysign(1.0, p.curve_radius_m)
    ang = math.radians(p.curve_angle_deg)
    arc = r * ang
    s = np.linspace(0.0, p.road_length_m, math.ceil(p.road_length_m / DENSE_STEP_M) + 1)
    s = np.union1d(s, [CURVE_LEAD_IN_M, CURVE_LEAD_IN_M + arc])
    phi = np.clip(s - CURVE_LEAD_IN_M, 0.0, arc) / r
    x = r * np.sin(phi)
    y = sign * r * (1.0 - np.cos(phi))
    lead = np.minimum(s - CURVE_LEAD_IN_M, 0.0)
    tail = np.maximum(s - CURVE_LEAD_IN_M - arc, 0.0)
    x = x + lead + tail * math.cos(ang)
    y = y + tail * sign * math.sin(ang)
    return np.stack([x, y], axis=1)


def build_single_road(b: _Builder) -> dict[str, RoadHandle]:
    p = b.p
    length = p.road_length_m
    straight = p.family == "straight"
    ref = _line((-0.5 * length, 0.0), (0.5 * length, 0.0)) if straight else _curve_reference(p)
    main = add_road(b, "main", ref, p.two_way, p.parking)
    right, left = kerb_offsets(p, p.two_way, p.parking)
    avoid: list[float] = []
    if p.crosswalk:
        s_c = 0.6 * length
        main.crosswalk_ids.append(add_crosswalk(b, ref, s_c, right, left, main.road_id))
        avoid.append(s_c)
    add_sidewalk(b, ref, right, -1, 0.0, length, avoid)
    add_sidewalk(b, ref, left, +1, 0.0, length, avoid)
    return {"main": main}


def build_highway(b: _Builder) -> dict[str, RoadHandle]:
    """One-way main road plus an on-ramp from the right: approach lane -> acceleration lane (dead end)."""
    p = b.p
    n, w, length = p.lanes_per_direction, p.lane_width_m, p.road_length_m
    x0 = -0.5 * length
    ref = _line((x0, 0.0), (-x0, 0.0))
    main = add_road(b, "main", ref, two_way=False, parking=False, right_edge_marking=False)

    acc_len = min(HIGHWAY_ACCEL_LANE_M, 0.36 * length)
    s_end = 0.48 * length
    s_start = s_end - acc_len
    y_edge = -0.5 * n * w  # right edge of the main carriageway
    y_acc = y_edge - 0.5 * w
    accel_line = _line((x0 + s_start, y_acc), (x0 + s_end, y_acc))
    alpha = math.radians(25.0)
    q3 = np.array([x0 + s_start, y_acc])
    q0 = q3 + np.array([-55.0, -15.0])
    lead = _line(q0 - 20.0 * np.array([math.cos(alpha), math.sin(alpha)]), q0)
    approach_line = _join(lead, _bezier(q0, alpha, q3, 0.0, ratio=0.4))

    ramp_id = b.new_road_id()
    approach = b.add_lane(LaneKind.DRIVING, approach_line, w, ramp_id)
    accel = b.add_lane(LaneKind.DRIVING, accel_line, w, ramp_id)
    b.link(approach, accel)
    b.lanes[accel].left_neighbor = main.forward_lane_ids[0]
    ramp_ref = _join(b.lanes[approach].centerline, b.lanes[accel].centerline)
    ramp_len = float(polyline_arclength(ramp_ref)[-1])

    # Markings: the main road's right edge is dashed along the acceleration lane.
    _mark(b, MarkingKind.SOLID_WHITE, ref, y_edge, 0.0, s_start)
    _mark(b, MarkingKind.DASHED_WHITE, ref, y_edge, s_start, s_end)
    _mark(b, MarkingKind.SOLID_WHITE, ref, y_edge, s_end, length)
    approach_len = b.lanes[approach].length_m
    _mark(b, MarkingKind.SOLID_WHITE, ramp_ref, 0.5 * w, 0.0, approach_len)
    _mark(b, MarkingKind.SOLID_WHITE, ramp_ref, -0.5 * w, 0.0, ramp_len)

    # Sidewalks: left kerb; right kerb before the gore and after the acceleration lane; the ramp's outer kerb.
    sw = p.sidewalk_width_m
    add_sidewalk(b, ref, 0.5 * n * w, +1, 0.0, length, [])
    left_edge = offset_polyline(b.lanes[approach].centerline, 0.5 * w)
    near = left_edge[:, 1] > y_edge - sw - 0.5
    s_gore = (float(left_edge[near, 0].min()) if near.any() else x0 + s_start) - x0 - 1.0
    if s_gore > 5.0:
        add_sidewalk(b, ref, y_edge, -1, 0.0, min(s_gore, s_start), [])
    add_sidewalk(b, ref, y_edge, -1, s_end, length, [])
    add_sidewalk(b, ramp_ref, -0.5 * w, -1, 0.0, ramp_len, [])
    xe, yb = x0 + s_end, y_acc - 0.5 * w - sw  # cap closing the end of the acceleration lane
    b.sidewalks.append(np.array([[xe, yb], [xe + sw, yb], [xe + sw, y_edge], [xe, y_edge]]))

    ramp = RoadHandle(
        name="ramp",
        road_id=ramp_id,
        forward_lane_ids=[approach, accel],
        backward_lane_ids=[],
        parking_forward_lane_id=None,
        parking_backward_lane_id=None,
        crosswalk_ids=[],
        stop_line_ids=[],
        reference=resample_polyline(ramp_ref),
    )
    return {"main": main, "ramp": ramp}


# ----------------------------------------------------------------------------------------------------------
# Rotation, validation, entry point


def rotate_layout(layout: Layout, angle: float) -> None:
    """Rotate every coordinate and yaw of ``layout`` about the origin by ``angle`` (in place)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])

    def r(points: np.ndarray) -> np.ndarray:
        return np.asarray(points, dtype=np.float64) @ rot.T

    m = layout.road_map
    m.lanes = {i: dataclasses.replace(lane, centerline=r(lane.centerline)) for i, lane in m.lanes.items()}
    for sl in m.stop_lines.values():
        sl.p0, sl.p1 = r(sl.p0), r(sl.p1)
    for tl in m.traffic_lights.values():
        tl.position, tl.yaw = r(tl.position), _wrap(tl.yaw + angle)
    for j in m.junctions.values():
        j.polygon = r(j.polygon)
    for cw in m.crosswalks.values():
        cw.polygon, cw.start, cw.end = r(cw.polygon), r(cw.start), r(cw.end)
    m.sidewalks = [r(sw) for sw in m.sidewalks]
    for mk in m.markings:
        mk.polyline = r(mk.polyline)
    for ob in m.layout_obstacles:
        ob.center, ob.yaw = r(ob.center), _wrap(ob.yaw + angle)
    for h in layout.roads.values():
        h.reference = r(h.reference)


def validate_road_map(road_map: RoadMap) -> None:
    """Raise ``ValueError`` listing every broken reference or malformed element of ``road_map``."""
    errors: list[str] = []
    lanes = road_map.lanes
    for lid, lane in lanes.items():
        if lane.id != lid:
            errors.append(f"lane key {lid} holds lane id {lane.id}")
        if len(lane.centerline) < 2:
            errors.append(f"lane {lid} has fewer than 2 points")
        for nxt in lane.successors:
            if nxt not in lanes or lid not in lanes[nxt].predecessors:
                errors.append(f"lane {lid}: successor {nxt} missing or not linked back")
        for prv in lane.predecessors:
            if prv not in lanes or lid not in lanes[prv].successors:
                errors.append(f"lane {lid}: predecessor {prv} missing or not linked back")
        for nb in (lane.left_neighbor, lane.right_neighbor):
            if nb is not None and (nb not in lanes or nb == lid):
                errors.append(f"lane {lid}: neighbour {nb} missing")
        if lane.junction_id is not None and lane.junction_id not in road_map.junctions:
            errors.append(f"lane {lid}: unknown junction {lane.junction_id}")
        if (lane.junction_id is not None) != (lane.turn in (Command.LEFT, Command.RIGHT, Command.STRAIGHT)):
            errors.append(f"lane {lid}: junction connectors (and only they) carry a turn command")
    for sl in road_map.stop_lines.values():
        if sl.lane_id not in lanes or not 0.0 <= sl.s_m <= lanes[sl.lane_id].length_m:
            errors.append(f"stop line {sl.id}: bad lane {sl.lane_id} or s_m {sl.s_m}")
        if sl.traffic_light_id is not None and sl.traffic_light_id not in road_map.traffic_lights:
            errors.append(f"stop line {sl.id}: unknown traffic light {sl.traffic_light_id}")
    for tl in road_map.traffic_lights.values():
        if tl.junction_id not in road_map.junctions or any(
            s not in road_map.stop_lines for s in tl.stop_line_ids
        ):
            errors.append(f"traffic light {tl.id}: unknown junction or stop line")
    if errors:
        raise ValueError("inconsistent road map:\n  " + "\n  ".join(errors))


__all__ = [
    "CROSSWALK_WIDTH_M",
    "PARKING_WIDTH_M",
    "Layout",
    "LayoutFamily",
    "LayoutParams",
    "RoadHandle",
    "validate_road_map",
]
