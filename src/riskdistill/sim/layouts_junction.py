"""Junction layouts (``junction4``, ``junction_t``) for :func:`riskdistill.sim.layouts.build_layout`.

Conventions
-----------
* Arm angles (direction from the junction centre, the origin, towards the arm's far end):
  ``junction4``: arm k at k x 90 deg (arm0 east, arm1 north, arm2 west, arm3 south).
  ``junction_t``: arm k at 180 + k x 90 deg (arm0 west, arm1 south = the stem, arm2 east), so arms 0 and 2
  form the through road in both families. Each arm angle is perturbed by a uniform draw in
  ``±arm_angle_jitter_deg`` from ``numpy.random.default_rng(seed)``.
* Each arm's reference line runs from its far end TOWARDS the junction: forward lanes are incoming and end
  at the junction edge, backward lanes are outgoing and start there.
* Seen from an incoming arm, the arm to the right is the next one counter-clockwise, the arm to the left
  the previous one, the straight-ahead arm the opposite one.
* Junction box: a polygon through the arms' edge corners at distance ``R`` from the centre, with
  ``R = H / tan(phi / 2) + margin`` (``H`` the half road width incl. parking, ``phi`` the smallest angle
  between neighbouring arms, ``margin = max(2, 6 - lane_width / 2 - parking) x max(1, 90 deg / phi)``:
  the kerb-lane right turn keeps a radius of ~6 m without jitter and > 5 m with the largest jitter).
* Crosswalk on every arm over arc lengths [A - 5, A - 1] m of the arm (A = arm length), i.e. 1..5 m before
  the junction edge. Stop lines sit 1 m before it: ``StopLine.s_m = lane.length_m - STOP_LINE_SETBACK_M``
  (6 m before the end of the incoming lane), with or without crosswalks. Parking strips stop 10 m before
  the junction edge.
* Control: ``signalized``: one light per arm at the right kerb 1 m before the stop line, facing the
  approaching traffic, ``phase_group = k % 2``; ``stop``: stop signs on every incoming lane;
  ``uncontrolled``: arms 0 and 2 have priority (no stop line), the other arms get yield lines.
* Connectors: straight from every incoming lane i to outgoing lane i of the opposite arm; right turn from
  lane 0 to lane 0 of the right arm; left turn from the leftmost lane to the leftmost lane of the left arm.
  Cubic Bezier curves matching the end headings; ``turn`` from the heading change (> 45 deg: LEFT/RIGHT).
"""

from __future__ import annotations

import math

import numpy as np

from riskdistill.sim.layouts import (
    CROSSWALK_WIDTH_M,
    PARKING_WIDTH_M,
    POLE_HEIGHT_M,
    RoadHandle,
    _arc_handle_ratio,
    _bezier,
    _Builder,
    _line,
    _pose,
    _wrap,
    add_crosswalk,
    add_road,
    add_sidewalk,
    kerb_offsets,
)
from riskdistill.sim.roadmap import Junction, JunctionControl, LaneKind, TrafficLight
from riskdistill.types import Command

STOP_LINE_SETBACK_M = 6.0  # stop line distance before the end of the incoming lane
CROSSWALK_SETBACK_M = 1.0  # gap between the crosswalk and the junction edge
PARKING_SETBACK_M = 10.0
ARM_LENGTH_DIVISOR = 2.5


def arm_slots(family: str) -> list[int]:
    """Quarter-turn slot of each arm (arm k points at ``slot * 90`` deg before jitter)."""
    return [0, 1, 2, 3] if family == "junction4" else [2, 3, 0]


def build_junction(b: _Builder) -> tuple[dict[str, RoadHandle], int, dict[tuple[str, int, str, int], int]]:
    p = b.p
    w = p.lane_width_m
    slots = arm_slots(p.family)
    k_arms = len(slots)
    jitter = np.zeros(k_arms)
    if p.arm_angle_jitter_deg > 0.0:
        j_max = p.arm_angle_jitter_deg
        jitter = np.random.default_rng(p.seed).uniform(-j_max, j_max, k_arms)
    theta = [slot * 0.5 * math.pi + math.radians(float(j)) for slot, j in zip(slots, jitter, strict=True)]

    right_kerb, left_kerb = kerb_offsets(p, two_way=True, parking=p.parking)
    half = left_kerb
    order = sorted(range(k_arms), key=lambda k: theta[k] % (2 * math.pi))
    gaps = [(theta[order[(i + 1) % k_arms]] - theta[order[i]]) % (2 * math.pi) for i in range(k_arms)]
    phi = min(gaps)
    margin = max(2.0, 6.0 - 0.5 * w - (PARKING_WIDTH_M if p.parking else 0.0))
    margin *= max(1.0, 0.5 * math.pi / phi)
    radius = half / math.tan(0.5 * phi) + margin
    arm_len = p.road_length_m / ARM_LENGTH_DIVISOR
    jid = 0
    control = JunctionControl(p.junction_control)

    roads: dict[str, RoadHandle] = {}
    refs: list[np.ndarray] = []
    for k in range(k_arms):
        u = np.array([math.cos(theta[k]), math.sin(theta[k])])
        ref = _line((radius + arm_len) * u, radius * u)
        refs.append(ref)
        park = (0.0, arm_len - PARKING_SETBACK_M)
        roads[f"arm{k}"] = add_road(b, f"arm{k}", ref, two_way=True, parking=p.parking, parking_range=park)
    junction_road = b.new_road_id()

    # Junction box: corners of every arm's edge, counter-clockwise.
    corners: list[np.ndarray] = []
    for k in order:
        u = np.array([math.cos(theta[k]), math.sin(theta[k])])
        nrm = np.array([-u[1], u[0]])
        corners += [radius * u - half * nrm, radius * u + half * nrm]
    b.junctions[jid] = Junction(id=jid, polygon=np.stack(corners), control=control)

    # Arm furniture: crosswalk, sidewalks with poles, stop lines, lights.
    for k in range(k_arms):
        h, ref = roads[f"arm{k}"], refs[k]
        avoid: list[float] = []
        if p.crosswalk:
            s_c = arm_len - CROSSWALK_SETBACK_M - 0.5 * CROSSWALK_WIDTH_M
            h.crosswalk_ids.append(add_crosswalk(b, ref, s_c, right_kerb, left_kerb, h.road_id))
            avoid.append(s_c)
        add_sidewalk(b, ref, right_kerb, -1, 0.0, arm_len, avoid)
        add_sidewalk(b, ref, left_kerb, +1, 0.0, arm_len, avoid)
        _add_control(b, h, ref, k, jid, control, right_kerb)

    # Where there is no arm (the top of the T) the sidewalk runs along the junction box edge.
    for i in range(k_arms):
        if gaps[i] > math.radians(135.0):
            p_a, p_b = corners[2 * i + 1], corners[(2 * i + 2) % len(corners)]
            edge = _line(p_a, p_b)
            length = float(np.linalg.norm(p_b - p_a))
            add_sidewalk(b, edge, 0.0, -1, 0.0, length, [])

    connectors = _add_connectors(b, roads, theta, slots, jid, junction_road)
    return roads, jid, connectors


def _add_control(
    b: _Builder,
    h: RoadHandle,
    ref: np.ndarray,
    k: int,
    jid: int,
    control: JunctionControl,
    right_kerb: float,
) -> None:
    def stop_s(lane_id: int) -> float:
        return b.lanes[lane_id].length_m - STOP_LINE_SETBACK_M

    if control == JunctionControl.SIGNALIZED:
        arm_len = float(np.linalg.norm(ref[-1] - ref[0]))
        pos, ref_yaw = _pose(ref, arm_len - STOP_LINE_SETBACK_M - 1.0, right_kerb - 0.5)
        tl_id = len(b.traffic_lights)
        light = TrafficLight(
            id=tl_id,
            junction_id=jid,
            phase_group=k % 2,
            position=pos,
            height_m=POLE_HEIGHT_M,
            yaw=_wrap(ref_yaw + math.pi),  # faces the approaching traffic
        )
        b.traffic_lights[tl_id] = light
        b.add_pole(pos, ref_yaw)
        for lane_id in h.forward_lane_ids:
            sid = b.add_stop_line(lane_id, stop_s(lane_id), traffic_light_id=tl_id)
            light.stop_line_ids.append(sid)
            h.stop_line_ids.append(sid)
    elif control == JunctionControl.STOP:
        for lane_id in h.forward_lane_ids:
            h.stop_line_ids.append(b.add_stop_line(lane_id, stop_s(lane_id), stop_sign=True))
    elif k not in (0, 2):  # uncontrolled: the minor arms yield
        for lane_id in h.forward_lane_ids:
            h.stop_line_ids.append(b.add_stop_line(lane_id, stop_s(lane_id), stop_sign=False))


def _add_connectors(
    b: _Builder,
    roads: dict[str, RoadHandle],
    theta: list[float],
    slots: list[int],
    jid: int,
    road_id: int,
) -> dict[tuple[str, int, str, int], int]:
    n, w = b.p.lanes_per_direction, b.p.lane_width_m
    by_slot = {slot: k for k, slot in enumerate(slots)}
    connectors: dict[tuple[str, int, str, int], int] = {}
    for k, slot in enumerate(slots):
        targets: list[tuple[int, int, int]] = []  # (incoming lane index, arm out, outgoing lane index)
        if (m := by_slot.get((slot + 2) % 4)) is not None:
            targets += [(i, m, min(i, n - 1)) for i in range(n)]
        if (m := by_slot.get((slot + 1) % 4)) is not None:
            targets.append((0, m, 0))
        if (m := by_slot.get((slot + 3) % 4)) is not None:
            targets.append((n - 1, m, n - 1))
        for i, m, j in targets:
            a = roads[f"arm{k}"].forward_lane_ids[i]
            c = roads[f"arm{m}"].backward_lane_ids[j]
            h0, h3 = theta[k] + math.pi, theta[m]
            dyaw = _wrap(h3 - h0)
            p0, p3 = b.lanes[a].centerline[-1], b.lanes[c].centerline[0]
            pts = _bezier(p0, h0, p3, h3, _arc_handle_ratio(dyaw))
            if abs(dyaw) < math.radians(45.0):
                turn = Command.STRAIGHT
            else:
                turn = Command.LEFT if dyaw > 0 else Command.RIGHT
            lane_id = b.add_lane(LaneKind.DRIVING, pts, w, road_id, junction_id=jid, turn=turn)
            b.link(a, lane_id)
            b.link(lane_id, c)
            connectors[(f"arm{k}", i, f"arm{m}", j)] = lane_id
    return connectors
