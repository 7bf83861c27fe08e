"""Procedural layouts: graph consistency, geometry, routes, determinism, rotation, parameter validation."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from pydantic import ValidationError

from riskdistill.geometry import points_in_polygon
from riskdistill.sim.layouts import Layout, LayoutParams
from riskdistill.sim.road_layouts import build_layout
from riskdistill.sim.roadmap import LaneKind, RoadMap
from riskdistill.sim.route import plan_route
from riskdistill.types import Command

FAMILIES = ["straight", "curve", "junction4", "junction_t", "highway"]
MATRIX = list(itertools.product(FAMILIES, (1, 2, 3), (False, True)))


def _wrap(a: np.ndarray | float) -> np.ndarray:
    return np.angle(np.exp(1j * np.asarray(a)))


def _build(family: str, **kw: object) -> Layout:
    return build_layout(LayoutParams(family=family, **kw))


_CACHE: dict[tuple[str, int, bool], Layout] = {}


def _matrix_layout(family: str, n: int, parking: bool) -> Layout:
    key = (family, n, parking)
    if key not in _CACHE:
        _CACHE[key] = _build(family, lanes_per_direction=n, parking=parking)
    return _CACHE[key]


# ------------------------------------------------------------------------------------------------------------
# Graph consistency and geometry


@pytest.mark.parametrize(("family", "n", "parking"), MATRIX)
def test_graph_consistency(family: str, n: int, parking: bool) -> None:
    layout = _matrix_layout(family, n, parking)
    assert layout.road_map.family == family
    _check_graph(layout)


@pytest.mark.parametrize("family", ["junction4", "junction_t"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_graph_consistency_with_jitter(family: str, seed: int) -> None:
    layout = _build(family, lanes_per_direction=2, parking=True, arm_angle_jitter_deg=15.0, seed=seed)
    _check_graph(layout)
    for lane in layout.road_map.lanes.values():
        if lane.junction_id is not None:  # connectors stay drivable: turn radius > 5 m
            radius = np.diff(lane.s) / np.maximum(np.abs(_wrap(np.diff(lane.heading))), 1e-9)
            assert radius.min() > 5.0


def _check_graph(layout: Layout) -> None:
    m = layout.road_map
    for lid, lane in m.lanes.items():
        assert lane.id == lid
        assert len(lane.centerline) >= 2
        assert np.all(np.diff(lane.s) > 0.05), f"lane {lid}: degenerate sampling"
        assert np.all(np.diff(lane.s) < 0.6), f"lane {lid}: not resampled"
        for nxt in lane.successors:
            succ = m.lanes[nxt]
            assert lid in succ.predecessors
            assert np.linalg.norm(succ.centerline[0] - lane.centerline[-1]) < 0.3
            assert abs(_wrap(succ.heading[0] - lane.heading[-1])) < 0.2, f"kink {lid} -> {nxt}"
        for prv in lane.predecessors:
            assert lid in m.lanes[prv].successors
        if lane.junction_id is not None:
            assert lane.junction_id == layout.junction_id
            assert lane.turn in (Command.LEFT, Command.RIGHT, Command.STRAIGHT)
            assert lane.predecessors and lane.successors
        else:
            assert lane.turn == Command.LANE_FOLLOW
        if lane.kind == LaneKind.PARKING:
            assert not lane.successors and not lane.predecessors
        # Heading continuity inside a lane (no sampling kinks).
        assert np.all(np.abs(_wrap(np.diff(lane.heading))) < 0.15), f"lane {lid} has a kink"
        for side, nb in (("left", lane.left_neighbor), ("right", lane.right_neighbor)):
            if nb is not None:
                _check_neighbour(m, lid, nb, side)


def _check_neighbour(m: RoadMap, lid: int, nb: int, side: str) -> None:
    lane, other = m.lanes[lid], m.lanes[nb]
    assert other.kind == LaneKind.DRIVING  # parking strips point to the driving lane, not back
    assert other.junction_id is None and lane.junction_id is None
    expected = 0.5 * (lane.width_m + other.width_m) * (-1.0 if side == "left" else 1.0)
    checked = 0
    for i in range(0, len(lane.centerline), 7):
        s_o, lat = other.project(lane.centerline[i])
        if 1.0 < s_o < other.length_m - 1.0:
            assert lat == pytest.approx(expected, abs=0.1), f"lane {lid} -> {side} {nb}"
            assert abs(_wrap(other.heading_at(s_o) - lane.heading[i])) < 0.05
            checked += 1
    assert checked >= 3, f"lanes {lid} and {nb} barely overlap"


@pytest.mark.parametrize(("family", "n", "parking"), MATRIX)
def test_road_handles_and_lane_order(family: str, n: int, parking: bool) -> None:
    layout = _matrix_layout(family, n, parking)
    m = layout.road_map
    expected = {
        "straight": {"main"},
        "curve": {"main"},
        "highway": {"main", "ramp"},
        "junction4": {"arm0", "arm1", "arm2", "arm3"},
        "junction_t": {"arm0", "arm1", "arm2"},
    }[family]
    assert set(layout.roads) == expected
    road_ids = [h.road_id for h in layout.roads.values()]
    assert len(set(road_ids)) == len(road_ids)
    for name, h in layout.roads.items():
        assert h.name == name
        assert h.reference.ndim == 2 and h.reference.shape[1] == 2
        for lid in [*h.forward_lane_ids, *h.backward_lane_ids]:
            assert m.lanes[lid].kind == LaneKind.DRIVING
            assert m.lanes[lid].road_id == h.road_id
        if name == "ramp":
            continue
        two_way = family != "highway"
        assert len(h.forward_lane_ids) == n
        assert len(h.backward_lane_ids) == (n if two_way else 0)
        for ids in (h.forward_lane_ids, h.backward_lane_ids):
            for right, left in itertools.pairwise(ids):
                assert m.lanes[right].left_neighbor == left
                assert m.lanes[left].right_neighbor == right
                # Index 0 is the kerb side: the next lane lies to its left.
                assert m.lanes[right].project(m.lanes[left].centerline[5])[1] > 0
        # Forward lanes follow the reference direction, backward lanes run against it.
        ref_h = math.atan2(*(h.reference[1] - h.reference[0])[::-1])
        assert abs(_wrap(m.lanes[h.forward_lane_ids[0]].heading[0] - ref_h)) < 0.1
        if two_way:
            assert abs(_wrap(m.lanes[h.backward_lane_ids[0]].heading[-1] - ref_h - math.pi)) < 0.1
            # No neighbour links across the directions.
            inner_f, inner_b = h.forward_lane_ids[-1], h.backward_lane_ids[-1]
            assert m.lanes[inner_f].left_neighbor is None and m.lanes[inner_b].left_neighbor is None
        has_parking = parking and family != "highway"
        for pid, drive in ((h.parking_forward_lane_id, h.forward_lane_ids[0]),) + (
            ((h.parking_backward_lane_id, h.backward_lane_ids[0]),) if two_way else ()
        ):
            assert (pid is not None) == has_parking
            if pid is not None:
                assert m.lanes[pid].kind == LaneKind.PARKING
                assert m.lanes[pid].width_m == pytest.approx(2.4)
                assert m.lanes[pid].left_neighbor == drive
                assert m.lanes[drive].right_neighbor is None  # routes never turn into a parking strip


@pytest.mark.parametrize(("family", "n", "parking"), MATRIX)
def test_furniture_geometry(family: str, n: int, parking: bool) -> None:
    layout = _matrix_layout(family, n, parking)
    m = layout.road_map
    driving_pts = np.concatenate([lane.centerline[1:-1:4] for lane in m.lanes.values()])
    for sw in m.sidewalks:
        assert not points_in_polygon(driving_pts, sw).any(), "a sidewalk covers a lane centre"
    for ob in m.layout_obstacles:
        assert (ob.length_m, ob.width_m, ob.height_m) == (0.3, 0.3, 5.0)
        for lane in m.lanes.values():
            _, lat = lane.project(ob.center)
            s, _ = lane.project(ob.center)
            if 0.0 < s < lane.length_m:
                assert abs(lat) > 0.5 * lane.width_m, f"pole inside lane {lane.id}"
        for cw in m.crosswalks.values():
            assert not points_in_polygon(ob.center[None], cw.polygon).any()
    if family == "highway":
        assert not m.crosswalks and not m.stop_lines and not m.junctions
    elif family in ("straight", "curve"):
        assert len(m.crosswalks) == 1
    else:
        assert len(m.crosswalks) == len(layout.roads)
        assert layout.junction_id in m.junctions
    for cw in m.crosswalks.values():
        assert cw.polygon.shape == (4, 2)
        along = 0.5 * (cw.polygon[1] + cw.polygon[2]) - 0.5 * (cw.polygon[0] + cw.polygon[3])
        assert np.linalg.norm(along) == pytest.approx(4.0, abs=0.05)  # 4 m wide at the road centre
        # start/end on the sidewalks: every driving/parking lane of the road lies between them.
        lanes = [lane for lane in m.lanes.values() if lane.road_id == cw.road_id]
        for lane in lanes:
            _, lat_s = lane.project(cw.start)
            _, lat_e = lane.project(cw.end)
            assert abs(lat_s) > 0.5 * lane.width_m and abs(lat_e) > 0.5 * lane.width_m
            assert np.sign(lat_s) != np.sign(lat_e)
        assert any(points_in_polygon(cw.start[None], sw)[0] for sw in m.sidewalks)
        assert any(points_in_polygon(cw.end[None], sw)[0] for sw in m.sidewalks)
    assert m.markings and all(len(mk.polyline) >= 2 for mk in m.markings)
    if layout.junction_id is not None:
        box = m.junctions[layout.junction_id].polygon
        for mk in m.markings:
            assert points_in_polygon(mk.polyline[1:-1], box).sum() == 0, "marking inside the junction box"


# ------------------------------------------------------------------------------------------------------------
# Junctions: traffic control and routes


@pytest.mark.parametrize("family", ["junction4", "junction_t"])
@pytest.mark.parametrize("control", ["signalized", "stop", "uncontrolled"])
def test_junction_control(family: str, control: str) -> None:
    layout = _build(family, lanes_per_direction=2, junction_control=control)
    m = layout.road_map
    junction = m.junctions[layout.junction_id]
    assert junction.control.value == control
    for name, h in layout.roads.items():
        k = int(name[3:])
        priority = control == "uncontrolled" and k in (0, 2)
        assert len(h.stop_line_ids) == (0 if priority else len(h.forward_lane_ids))
        for sid, lid in zip(h.stop_line_ids, h.forward_lane_ids, strict=not priority):
            sl = m.stop_lines[sid]
            lane = m.lanes[lid]
            assert sl.lane_id == lid
            assert sl.s_m == pytest.approx(lane.length_m - 6.0)
            assert np.linalg.norm(sl.p1 - sl.p0) == pytest.approx(lane.width_m, abs=1e-6)
            mid = 0.5 * (sl.p0 + sl.p1)
            assert np.linalg.norm(mid - lane.point_at(sl.s_m)) < 1e-6
            assert abs(np.dot(sl.p1 - sl.p0, [np.cos(lane.heading[-1]), np.sin(lane.heading[-1])])) < 1e-6
            for cid in h.crosswalk_ids:  # the stop line is before the crosswalk
                cw = m.crosswalks[cid]
                assert max(lane.project(c)[0] for c in cw.polygon) < lane.length_m + 0.1
                assert min(lane.project(c)[0] for c in cw.polygon) > sl.s_m
            assert sl.stop_sign == (control == "stop")
            if control == "signalized":
                tl = m.traffic_lights[sl.traffic_light_id]
                assert tl.phase_group == k % 2 and sid in tl.stop_line_ids
                assert tl.height_m == 5.0 and tl.junction_id == layout.junction_id
                # Faces the approaching traffic, stands on the right kerb before the stop line.
                assert abs(_wrap(tl.yaw - lane.heading[-1] - math.pi)) < 1e-6
                s_tl, lat_tl = m.lanes[h.forward_lane_ids[0]].project(tl.position)
                assert s_tl < sl.s_m and lat_tl < -0.5 * lane.width_m
            else:
                assert sl.traffic_light_id is None
    assert len(m.traffic_lights) == (len(layout.roads) if control == "signalized" else 0)


def _route_commands(m: RoadMap, lane_path: list[int]) -> set[Command]:
    route = plan_route(m, lane_path)
    pts = route.path.points
    step = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    assert step.max() < 0.8, "route has a gap"
    assert np.abs(_wrap(np.diff(route.path.heading))).max() < 0.3, "route has a kink"
    return {Command(int(c)) for c in route.commands}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_junction4_routes(n: int) -> None:
    layout = _build("junction4", lanes_per_direction=n, parking=True)
    m = layout.road_map
    start = layout.roads["arm0"].forward_lane_ids[0]
    expected = {"arm1": Command.RIGHT, "arm2": Command.STRAIGHT, "arm3": Command.LEFT}
    for arm, cmd in expected.items():
        goal = layout.roads[arm].backward_lane_ids[0]
        path = m.shortest_lane_path(start, goal)
        connectors = [lid for lid in path if m.lanes[lid].junction_id is not None]
        assert len(connectors) == 1 and m.lanes[connectors[0]].turn == cmd
        cmds = _route_commands(m, path)
        assert cmd in cmds
        assert not ({Command.LEFT, Command.RIGHT, Command.STRAIGHT} - {cmd}) & cmds
    # Every connector key matches its lanes.
    for (arm_in, i, arm_out, j), lid in layout.connectors.items():
        lane = m.lanes[lid]
        assert lane.predecessors == [layout.roads[arm_in].forward_lane_ids[i]]
        assert lane.successors == [layout.roads[arm_out].backward_lane_ids[j]]
    assert len(layout.connectors) == 4 * (n + 2)


def test_junction_t_routes_and_arms() -> None:
    layout = _build("junction_t", lanes_per_direction=2)
    m = layout.road_map
    # arm0 comes from the west (x < 0) towards the centre; arm1 is the stem (south); arm2 east.
    assert layout.roads["arm0"].reference[0][0] < -50 and abs(layout.roads["arm0"].reference[0][1]) < 1e-6
    assert layout.roads["arm1"].reference[0][1] < -50
    assert layout.roads["arm2"].reference[0][0] > 50
    turns = {(a, b): m.lanes[lid].turn for (a, _, b, _), lid in layout.connectors.items()}
    assert turns == {
        ("arm0", "arm2"): Command.STRAIGHT,
        ("arm0", "arm1"): Command.RIGHT,
        ("arm1", "arm2"): Command.RIGHT,
        ("arm1", "arm0"): Command.LEFT,
        ("arm2", "arm0"): Command.STRAIGHT,
        ("arm2", "arm1"): Command.LEFT,
    }
    start = layout.roads["arm1"].forward_lane_ids[0]
    path = m.shortest_lane_path(start, layout.roads["arm0"].backward_lane_ids[0])
    assert Command.LEFT in _route_commands(m, path)


def test_jitter_is_seeded() -> None:
    a = _build("junction4", arm_angle_jitter_deg=10.0, seed=1)
    b = _build("junction4", arm_angle_jitter_deg=10.0, seed=2)
    assert np.linalg.norm(a.roads["arm1"].reference[0] - b.roads["arm1"].reference[0]) > 1.0
    _assert_layouts_equal(a, _build("junction4", arm_angle_jitter_deg=10.0, seed=1))
    for lane in a.road_map.lanes.values():
        assert np.all(np.abs(_wrap(np.diff(lane.heading))) < 0.15)


# ------------------------------------------------------------------------------------------------------------
# Highway


@pytest.mark.parametrize("n", [1, 2, 3])
def test_highway_ramp(n: int) -> None:
    layout = _build("highway", lanes_per_direction=n)
    m = layout.road_map
    main, ramp = layout.roads["main"], layout.roads["ramp"]
    approach, accel = ramp.forward_lane_ids
    assert m.lanes[approach].successors == [accel]
    assert m.lanes[accel].successors == []
    assert m.lanes[accel].left_neighbor == main.forward_lane_ids[0]
    # The merge area lies in the first half of the main road.
    s_end, lat = m.lanes[main.forward_lane_ids[0]].project(m.lanes[accel].centerline[-1])
    assert s_end < 0.5 * layout.params.road_length_m
    assert lat == pytest.approx(-layout.params.lane_width_m, abs=1e-6)
    assert m.lanes[accel].length_m == pytest.approx(min(80.0, 0.36 * layout.params.road_length_m), abs=0.5)
    goal = main.forward_lane_ids[-1]
    path = m.shortest_lane_path(approach, goal)
    assert path[:3] == [approach, accel, main.forward_lane_ids[0]]
    cmds = _route_commands(m, path)
    assert Command.CHANGE_LANE_LEFT in cmds
    with pytest.raises(ValueError, match="no lane path"):
        m.shortest_lane_path(approach, goal, allow_lane_change=False)


# ------------------------------------------------------------------------------------------------------------
# Determinism and rotation


def _assert_layouts_equal(a: Layout, b: Layout, rot: float = 0.0) -> None:
    c, s = math.cos(rot), math.sin(rot)
    R = np.array([[c, -s], [s, c]])

    def same(x: np.ndarray, y: np.ndarray) -> None:
        x, y = np.asarray(x), np.asarray(y)
        if rot == 0.0:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x @ R.T, y, atol=1e-9)

    def same_yaw(x: float, y: float) -> None:
        assert abs(_wrap(x + rot - y)) < 1e-9

    ma, mb = a.road_map, b.road_map
    assert ma.lanes.keys() == mb.lanes.keys()
    for lid, la in ma.lanes.items():
        lb = mb.lanes[lid]
        same(la.centerline, lb.centerline)
        np.testing.assert_allclose(la.s, lb.s, atol=1e-9)
        assert np.abs(_wrap(la.heading + rot - lb.heading)).max() < 1e-6
        for f in dataclasses.fields(la):
            if f.name not in ("centerline", "s", "heading"):
                assert getattr(la, f.name) == getattr(lb, f.name), f.name
    assert ma.stop_lines.keys() == mb.stop_lines.keys()
    for k, sa in ma.stop_lines.items():
        sb = mb.stop_lines[k]
        same(sa.p0, sb.p0), same(sa.p1, sb.p1)
        assert (sa.lane_id, sa.s_m, sa.traffic_light_id, sa.stop_sign) == (
            sb.lane_id,
            sb.s_m,
            sb.traffic_light_id,
            sb.stop_sign,
        )
    assert ma.traffic_lights.keys() == mb.traffic_lights.keys()
    for k, ta in ma.traffic_lights.items():
        tb = mb.traffic_lights[k]
        same(ta.position, tb.position), same_yaw(ta.yaw, tb.yaw)
        assert (ta.phase_group, ta.stop_line_ids) == (tb.phase_group, tb.stop_line_ids)
    for k, ja in ma.junctions.items():
        same(ja.polygon, mb.junctions[k].polygon)
    for k, ca in ma.crosswalks.items():
        cb = mb.crosswalks[k]
        same(ca.polygon, cb.polygon), same(ca.start, cb.start), same(ca.end, cb.end)
    assert len(ma.sidewalks) == len(mb.sidewalks)
    for sa, sb in zip(ma.sidewalks, mb.sidewalks, strict=True):
        same(sa, sb)
    assert [mk.kind for mk in ma.markings] == [mk.kind for mk in mb.markings]
    for ka, kb in zip(ma.markings, mb.markings, strict=True):
        same(ka.polyline, kb.polyline)
    assert len(ma.layout_obstacles) == len(mb.layout_obstacles)
    for oa, ob in zip(ma.layout_obstacles, mb.layout_obstacles, strict=True):
        same(oa.center, ob.center), same_yaw(oa.yaw, ob.yaw)
    assert a.roads.keys() == b.roads.keys() and a.connectors == b.connectors
    for name, ha in a.roads.items():
        hb = b.roads[name]
        same(ha.reference, hb.reference)
        assert (ha.forward_lane_ids, ha.backward_lane_ids, ha.stop_line_ids, ha.crosswalk_ids) == (
            hb.forward_lane_ids,
            hb.backward_lane_ids,
            hb.stop_line_ids,
            hb.crosswalk_ids,
        )


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic(family: str) -> None:
    kw = {"lanes_per_direction": 2, "parking": True, "arm_angle_jitter_deg": 8.0, "seed": 5}
    _assert_layouts_equal(_build(family, **kw), _build(family, **kw))


@pytest.mark.parametrize("family", FAMILIES)
def test_rotation(family: str) -> None:
    rot = 0.7
    base = _build(family, lanes_per_direction=2, parking=True)
    rotated = _build(family, lanes_per_direction=2, parking=True, rotation_rad=rot)
    assert rotated.params.rotation_rad == rot
    _assert_layouts_equal(base, rotated, rot=rot)


# ------------------------------------------------------------------------------------------------------------
# Parameters


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"family": "straight", "lanes_per_direction": 4}, "lanes_per_direction"),
        ({"family": "straight", "lanes_per_direction": 0}, "lanes_per_direction"),
        ({"family": "roundabout"}, "family"),
        ({"family": "straight", "lane_count": 2}, "lane_count"),
        ({"family": "straight", "lane_width_m": 5.0}, "lane_width_m"),
        ({"family": "straight", "lane_width_m": 2.0}, "lane_width_m"),
        ({"family": "junction4", "junction_control": "roundabout"}, "junction_control"),
        ({"family": "junction4", "arm_angle_jitter_deg": 40.0}, "arm_angle_jitter_deg"),
        ({"family": "curve", "curve_radius_m": 5.0}, "curve_radius_m"),
        ({"family": "curve", "road_length_m": 100.0, "curve_angle_deg": 120.0}, "road_length_m"),
        ({"family": "straight", "rotation_rad": float("nan")}, "rotation_rad"),
    ],
)
def test_invalid_params_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        LayoutParams(**kwargs)


def test_params_are_frozen_and_roundtrip() -> None:
    p = LayoutParams(family="curve", curve_radius_m=-60.0, lanes_per_direction=2)
    with pytest.raises(ValidationError):
        p.lanes_per_direction = 3  # type: ignore[misc]
    assert LayoutParams.from_dict(p.to_dict()) == p


@pytest.mark.parametrize("radius", [60.0, -60.0])
def test_curve_direction_and_length(radius: float) -> None:
    layout = _build(
        "curve", curve_radius_m=radius, curve_angle_deg=90.0, two_way=False, lanes_per_direction=2
    )
    ref = layout.roads["main"].reference
    h = layout.roads["main"]
    assert h.backward_lane_ids == []
    lane = layout.road_map.lanes[h.forward_lane_ids[0]]
    assert lane.length_m == pytest.approx(220.0 + 0.5 * math.pi * 1.75 * np.sign(radius), abs=0.5)
    turn = _wrap(lane.heading[-1] - lane.heading[0])
    assert turn == pytest.approx(math.copysign(math.pi / 2, radius), abs=0.02)
    assert np.linalg.norm(ref[0] - [-40.0, 0.0]) < 1e-9
