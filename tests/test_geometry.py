"""Tests for riskdistill.geometry: transforms, boxes, cameras, BEV grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from riskdistill.geometry import (
    SE2,
    SE3,
    BevGrid,
    Box3D,
    OrientedBox2D,
    T_ego_from_cam_from_pose,
    box3d_corners,
    box_corners_2d,
    boxes_overlap,
    boxes_overlap_matrix,
    clip_polygon_near_plane,
    intrinsics_from_fov,
    point_in_box,
    project_box_to_image,
    project_points,
    rotation_x,
    rotation_y,
    rotation_z,
    transform_points_2d,
    transform_points_3d,
    unproject_points,
    wrap_angle,
)

FAST = settings(max_examples=60, deadline=None)

coord = st.floats(-50, 50, allow_nan=False)
angle = st.floats(-10, 10, allow_nan=False)
se2s = st.builds(SE2, coord, coord, angle)
se3s = st.builds(SE3.from_xyz_rpy, coord, coord, coord, angle, angle, angle)
boxes = st.builds(
    OrientedBox2D,
    st.floats(-4, 4),
    st.floats(-4, 4),
    st.floats(-math.pi, math.pi),
    st.floats(0.5, 5),
    st.floats(0.5, 3),
)


def _points(rng_seed: int, n: int, dim: int) -> np.ndarray:
    return np.random.default_rng(rng_seed).uniform(-20, 20, (n, dim))


# -----------------------------------------------------------------------------
# angles and transforms


@FAST
@given(st.floats(-1e4, 1e4, allow_nan=False))
def test_wrap_angle_range_and_equivalence(a):
    w = wrap_angle(a)
    assert isinstance(w, float)
    assert -math.pi <= w < math.pi
    assert math.isclose(math.cos(w), math.cos(a), abs_tol=1e-9)
    assert math.isclose(math.sin(w), math.sin(a), abs_tol=1e-9)


def test_wrap_angle_edges_and_arrays():
    assert wrap_angle(math.pi) == -math.pi
    assert wrap_angle(-math.pi) == -math.pi
    assert wrap_angle(0.0) == 0.0
    assert wrap_angle(np.nextafter(-math.pi, -4)) < math.pi  # rounding must not land on +pi
    out = wrap_angle(np.array([0.0, 3 * math.pi, -3 * math.pi / 2]))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [0.0, -math.pi, math.pi / 2], atol=1e-12)


def test_rotations_are_right_handed():
    np.testing.assert_allclose(rotation_z(math.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12)  # x -> y
    np.testing.assert_allclose(rotation_x(math.pi / 2) @ [0, 1, 0], [0, 0, 1], atol=1e-12)  # y -> z
    np.testing.assert_allclose(rotation_y(math.pi / 2) @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # z -> x


@FAST
@given(se2s, st.integers(0, 1000))
def test_se2_inverse_round_trip(T, seed):
    p = _points(seed, 5, 2)
    np.testing.assert_allclose(T.inverse().apply(T.apply(p)), p, atol=1e-9)
    np.testing.assert_allclose((T @ T.inverse()).matrix(), np.eye(3), atol=1e-9)
    np.testing.assert_allclose(T.inverse().matrix(), np.linalg.inv(T.matrix()), atol=1e-9)


@FAST
@given(se2s, se2s, se2s, st.integers(0, 1000))
def test_se2_composition(a, b, c, seed):
    p = _points(seed, 4, 2)
    np.testing.assert_allclose((a @ b).apply(p), a.apply(b.apply(p)), atol=1e-8)
    np.testing.assert_allclose((a @ b).matrix(), a.matrix() @ b.matrix(), atol=1e-9)
    np.testing.assert_allclose(((a @ b) @ c).matrix(), (a @ (b @ c)).matrix(), atol=1e-8)
    assert -math.pi <= (a @ b).yaw < math.pi
    np.testing.assert_allclose(SE2.from_matrix(a.matrix()).matrix(), a.matrix(), atol=1e-12)
    np.testing.assert_allclose(transform_points_2d(a.matrix(), p), a.apply(p))
    assert a.apply(p[0]).shape == (2,)


def test_se2_hand_computed():
    T = SE2(1.0, 2.0, math.pi / 2)
    np.testing.assert_allclose(T.apply([1.0, 0.0]), [1.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(T.inverse().apply([1.0, 3.0]), [1.0, 0.0], atol=1e-12)


@FAST
@given(se3s, st.integers(0, 1000))
def test_se3_inverse_round_trip(T, seed):
    p = _points(seed, 5, 3)
    np.testing.assert_allclose(T.rotation @ T.rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(T.rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(T.inverse().apply(T.apply(p)), p, atol=1e-9)
    np.testing.assert_allclose((T.inverse() @ T).matrix(), np.eye(4), atol=1e-9)
    np.testing.assert_allclose(T.inverse().matrix(), np.linalg.inv(T.matrix()), atol=1e-9)


@FAST
@given(se3s, se3s, se3s, st.integers(0, 1000))
def test_se3_composition(a, b, c, seed):
    p = _points(seed, 4, 3)
    np.testing.assert_allclose((a @ b).apply(p), a.apply(b.apply(p)), atol=1e-8)
    np.testing.assert_allclose((a @ b).matrix(), a.matrix() @ b.matrix(), atol=1e-9)
    np.testing.assert_allclose(((a @ b) @ c).matrix(), (a @ (b @ c)).matrix(), atol=1e-8)
    np.testing.assert_allclose(SE3.from_matrix(a.matrix()).matrix(), a.matrix())
    np.testing.assert_allclose(transform_points_3d(a.matrix(), p), a.apply(p))
    assert a.apply(p[0]).shape == (3,)


def test_se3_from_xyz_rpy_order_and_identity():
    roll, pitch, yaw = 0.3, -0.2, 1.1
    T = SE3.from_xyz_rpy(1, 2, 3, roll, pitch, yaw)
    np.testing.assert_allclose(T.rotation, rotation_z(yaw) @ rotation_y(pitch) @ rotation_x(roll))
    np.testing.assert_allclose(T.translation, [1, 2, 3])
    np.testing.assert_allclose(SE3.identity().matrix(), np.eye(4))
    with pytest.raises(ValueError):
        SE3(np.eye(2), np.zeros(3))


# -----------------------------------------------------------------------------
# 2D boxes


def test_box_corners_hand_computed():
    # heading +y: front is +y, left is -x
    c = box_corners_2d(np.array([[1.0, 2.0]]), np.array([math.pi / 2]), np.array([4.0]), np.array([2.0]))
    assert c.shape == (1, 4, 2)
    np.testing.assert_allclose(c[0], [[0, 4], [0, 0], [2, 0], [2, 4]], atol=1e-12)
    c0 = OrientedBox2D(0, 0, 0, 4, 2).corners()  # front-left, rear-left, rear-right, front-right
    np.testing.assert_allclose(c0, [[2, 1], [-2, 1], [-2, -1], [2, -1]])


@FAST
@given(boxes)
def test_box_corners_ccw_with_correct_area(b):
    c = b.corners()
    x, y = c[:, 0], c[:, 1]
    area = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    assert area == pytest.approx(b.length * b.width)  # positive: counter-clockwise
    np.testing.assert_allclose(c.mean(0), [b.x, b.y], atol=1e-9)
    heading = np.array([math.cos(b.yaw), math.sin(b.yaw)])
    assert (c[0] - c[1]) @ heading == pytest.approx(b.length)  # front-left minus rear-left


def _clip_convex(subject: np.ndarray, clipper: np.ndarray) -> np.ndarray:
    """Reference Sutherland-Hodgman: subject polygon clipped by a CCW convex clipper."""
    out = list(subject)
    for i in range(len(clipper)):
        a, b = clipper[i], clipper[(i + 1) % len(clipper)]

        def side(p, a=a, b=b):
            return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

        inp, out = out, []
        for j in range(len(inp)):
            p, q = inp[j], inp[(j + 1) % len(inp)]
            sp, sq = side(p), side(q)
            if sp >= 0:
                out.append(p)
            if (sp >= 0) != (sq >= 0):
                out.append(p + (sp / (sp - sq)) * (q - p))
        if not out:
            break
    return np.array(out).reshape(-1, 2)


def _intersection_area(a: OrientedBox2D, b: OrientedBox2D) -> float:
    poly = _clip_convex(a.corners(), b.corners())
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return abs(0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _resized(b: OrientedBox2D, delta: float) -> OrientedBox2D:
    return OrientedBox2D(b.x, b.y, b.yaw, b.length + delta, b.width + delta)


@settings(max_examples=300, deadline=None)
@given(boxes, boxes)
def test_sat_agrees_with_polygon_clipping(a, b):
    eps = 1e-5  # skip near-contact configurations, where float rounding may go either way
    if _intersection_area(_resized(a, -eps), b) > 0:
        assert boxes_overlap(a, b)
        assert boxes_overlap_matrix(a.corners()[None], b.corners()[None])[0, 0]
    elif _intersection_area(_resized(a, eps), b) == 0:
        assert not boxes_overlap(a, b)
        assert not boxes_overlap_matrix(a.corners()[None], b.corners()[None])[0, 0]
    else:
        assume(False)


def test_sat_simple_cases():
    a = OrientedBox2D(0, 0, 0, 2, 2)
    assert boxes_overlap(a, a)
    assert boxes_overlap(a, OrientedBox2D(0, 0, 0.3, 0.5, 0.5))  # containment
    assert not boxes_overlap(a, OrientedBox2D(2, 0, 0, 2, 2))  # touching edges
    assert not boxes_overlap(a, OrientedBox2D(2.5, 0, 0, 2, 2))
    # axis-aligned bounding boxes overlap but the rotated boxes do not: needs the rotated axes
    assert not boxes_overlap(OrientedBox2D(0, 0, math.pi / 4, 4, 0.2), OrientedBox2D(1.2, -1.2, 0, 1, 1))
    assert boxes_overlap(OrientedBox2D(0, 0, math.pi / 4, 4, 0.2), OrientedBox2D(0.7, 0.7, 0, 1, 1))


@FAST
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(0, 40))
def test_overlap_matrix_matches_pairwise(seed, n, m):
    rng = np.random.default_rng(seed)

    def rand(k):
        return [
            OrientedBox2D(
                *rng.uniform(-6, 6, 2), rng.uniform(-4, 4), rng.uniform(0.5, 5), rng.uniform(0.5, 3)
            )
            for _ in range(k)
        ]

    A, B = rand(n), rand(m)
    ca = np.array([b.corners() for b in A]).reshape(n, 4, 2)
    cb = np.array([b.corners() for b in B]).reshape(m, 4, 2)
    got = boxes_overlap_matrix(ca, cb)
    assert got.shape == (n, m) and got.dtype == bool
    want = np.array([[boxes_overlap(a, b) for b in B] for a in A], dtype=bool).reshape(n, m)
    np.testing.assert_array_equal(got, want)


@FAST
@given(boxes, st.integers(0, 1000))
def test_point_in_box(b, seed):
    rng = np.random.default_rng(seed)
    local = rng.uniform(-1, 1, (200, 2)) * [b.length, b.width]  # [-1, 1] x half-extents doubled
    inside_ref = (np.abs(local[:, 0]) < b.length / 2) & (np.abs(local[:, 1]) < b.width / 2)
    margin = (np.abs(np.abs(local[:, 0]) - b.length / 2) > 1e-6) & (
        np.abs(np.abs(local[:, 1]) - b.width / 2) > 1e-6
    )
    pts = SE2(b.x, b.y, b.yaw).apply(local)
    got = point_in_box(pts, b.corners())
    np.testing.assert_array_equal(got[margin], inside_ref[margin])
    assert point_in_box(np.array([[b.x, b.y]]), b.corners())[0]


# -----------------------------------------------------------------------------
# 3D boxes


def test_box3d_corners_and_footprint():
    box = Box3D(np.array([1.0, 2.0, 1.0]), np.array([4.0, 2.0, 1.5]), 0.4)
    c = box.corners()
    assert c.shape == (8, 3)
    np.testing.assert_allclose(c[:4, 2], 0.25)
    np.testing.assert_allclose(c[4:, 2], 1.75)
    np.testing.assert_allclose(c[:4, :2], c[4:, :2])
    np.testing.assert_allclose(c[:4, :2], box.footprint().corners())
    np.testing.assert_allclose(c.mean(0), box.center)
    assert box.footprint() == OrientedBox2D(1.0, 2.0, 0.4, 4.0, 2.0)

    rng = np.random.default_rng(0)
    centers, sizes, yaws = rng.normal(size=(5, 3)), rng.uniform(1, 4, (5, 3)), rng.uniform(-3, 3, 5)
    many = box3d_corners(centers, sizes, yaws)
    assert many.shape == (5, 8, 3)
    for i in range(5):
        np.testing.assert_allclose(many[i], Box3D(centers[i], sizes[i], yaws[i]).corners())


# -----------------------------------------------------------------------------
# cameras

K_B2D = intrinsics_from_fov(1600, 900, 70.0)
FRONT = T_ego_from_cam_from_pose(0.8, 0.0, 1.6, yaw=0.0)


def test_bench2drive_intrinsics():
    assert K_B2D[0, 0] == pytest.approx(1142.5, abs=0.05)
    assert K_B2D[1, 1] == K_B2D[0, 0]
    assert (K_B2D[0, 2], K_B2D[1, 2]) == (800.0, 450.0)


def test_camera_axes_convention():
    # OpenCV axes in the ego frame for a front camera: z forward, x right (-y), y down (-z)
    np.testing.assert_allclose(FRONT.rotation, [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
    left = T_ego_from_cam_from_pose(0, 0, 0, yaw=math.pi / 2)
    np.testing.assert_allclose(left.rotation @ [0, 0, 1], [0, 1, 0], atol=1e-12)  # looks along +y
    down = T_ego_from_cam_from_pose(0, 0, 0, yaw=0.0, pitch=0.3)
    assert (down.rotation @ [0, 0, 1])[2] < 0  # positive pitch: optical axis points down
    rolled = T_ego_from_cam_from_pose(0, 0, 0, yaw=0.0, roll=0.3)
    assert (rolled.rotation @ [1, 0, 0])[2] < 0  # positive roll dips the camera's right side
    np.testing.assert_allclose(rolled.rotation @ [0, 0, 1], [1, 0, 0], atol=1e-12)


@FAST
@given(coord, coord, st.floats(0, 3), angle, st.floats(-0.5, 0.5), st.floats(-0.5, 0.5), st.floats(0.5, 80))
def test_optical_axis_projects_to_principal_point(x, y, z, yaw, pitch, roll, d):
    T = T_ego_from_cam_from_pose(x, y, z, yaw, pitch, roll)
    forward = rotation_z(yaw) @ rotation_y(pitch) @ [1.0, 0.0, 0.0]
    p_ego = T.apply([0.0, 0.0, d])
    np.testing.assert_allclose(p_ego, np.array([x, y, z]) + d * forward, atol=1e-9)
    uv, depth, valid = project_points(p_ego[None], K_B2D, T.inverse())
    assert valid[0]
    assert depth[0] == pytest.approx(d)
    np.testing.assert_allclose(uv[0], [800.0, 450.0], atol=1e-6)


def test_front_camera_left_and_up():
    T_cam_from_ego = FRONT.inverse()
    pts = np.array([[20.0, 0.0, 1.6], [20.0, 3.0, 1.6], [20.0, 0.0, 4.0], [-5.0, 0.0, 1.6]])
    uv, depth, valid = project_points(pts, K_B2D, T_cam_from_ego.matrix())  # [4, 4] accepted too
    np.testing.assert_array_equal(valid, [True, True, True, False])
    np.testing.assert_allclose(depth[:3], 19.2)
    assert uv[1, 0] < 800.0 and uv[1, 1] == pytest.approx(450.0)  # left -> smaller u
    assert uv[2, 1] < 450.0 and uv[2, 0] == pytest.approx(800.0)  # above -> smaller v
    assert np.isnan(uv[3]).all()
    # pinhole: u = cx + f * (-y_ego) / depth
    assert uv[1, 0] == pytest.approx(800.0 - K_B2D[0, 0] * 3.0 / 19.2)


@FAST
@given(
    st.integers(0, 10_000),
    angle,
    st.floats(-0.4, 0.4),
    st.floats(-0.4, 0.4),
    st.floats(320, 2000),
    st.floats(30, 120),
)
def test_unproject_then_project_round_trip(seed, yaw, pitch, roll, width, fov):
    rng = np.random.default_rng(seed)
    W, H = int(width), int(width * 0.6)
    K = intrinsics_from_fov(W, H, fov)
    T_ego_from_cam = T_ego_from_cam_from_pose(*rng.uniform(-2, 2, 3), yaw, pitch, roll)
    uv = rng.uniform(0, 1, (10, 2)) * [W, H]
    depth = rng.uniform(0.5, 60, 10)
    pts = unproject_points(uv, depth, K, T_ego_from_cam)
    uv2, depth2, valid = project_points(pts, K, T_ego_from_cam.inverse())
    assert valid.all()
    np.testing.assert_allclose(uv2, uv, atol=1e-6)
    np.testing.assert_allclose(depth2, depth, rtol=1e-9)


def test_clip_polygon_near_plane():
    square = np.array([[-1, -1, -1.0], [1, -1, -1.0], [1, 1, 3.0], [-1, 1, 3.0]])
    clipped = clip_polygon_near_plane(square, 1.0)
    assert clipped.shape == (4, 3)
    assert (clipped[:, 2] >= 1.0 - 1e-12).all()
    np.testing.assert_allclose(sorted(clipped[:, 2]), [1, 1, 3, 3])
    ahead = square + np.array([0.0, 0.0, 5.0])
    np.testing.assert_allclose(clip_polygon_near_plane(ahead, 1.0), ahead)
    assert clip_polygon_near_plane(square - np.array([0.0, 0.0, 5.0]), 1.0).shape == (0, 3)
    tri = clip_polygon_near_plane(np.array([[0, 0, 0.0], [1, 0, 2.0], [0, 1, 2.0]]), 1.0)
    assert tri.shape == (4, 3)  # one vertex cut off a triangle -> quad


def test_project_box_in_front_matches_corner_extent():
    box = Box3D(np.array([15.0, 2.0, 0.8]), np.array([4.5, 2.0, 1.6]), 0.3).corners()
    T = FRONT.inverse()
    bb = project_box_to_image(box, K_B2D, T, (1600, 900))
    uv, _, valid = project_points(box, K_B2D, T)
    assert valid.all() and bb is not None
    np.testing.assert_allclose(bb, [*uv.min(0), *uv.max(0)])
    x0, y0, x1, y1 = bb
    assert x1 < 800  # box to the left of the ego
    assert 0 <= x0 < x1 <= 1600 and 0 <= y0 < y1 <= 900


def test_project_box_straddling_behind_and_outside():
    T = FRONT.inverse()
    # a truck alongside the camera: extends from behind the camera to well in front of it
    straddle = Box3D(np.array([1.0, 2.5, 1.5]), np.array([12.0, 2.5, 3.0]), 0.0).corners()
    assert not project_points(straddle, K_B2D, T)[2].all()
    bb = project_box_to_image(straddle, K_B2D, T, (1600, 900))
    assert bb is not None and all(math.isfinite(v) for v in bb)
    x0, y0, x1, y1 = bb
    assert 0 <= x0 < x1 <= 1600 and 0 <= y0 < y1 <= 900
    assert x0 == 0.0  # the near side of the truck sweeps off the left image edge
    behind = Box3D(np.array([-10.0, 0.0, 1.0]), np.array([4.0, 2.0, 1.5]), 0.0).corners()
    assert project_box_to_image(behind, K_B2D, T, (1600, 900)) is None
    beside = Box3D(np.array([2.0, 30.0, 1.0]), np.array([1.0, 1.0, 1.0]), 0.0).corners()
    assert project_box_to_image(beside, K_B2D, T, (1600, 900)) is None  # in front, outside the fov


# -----------------------------------------------------------------------------
# BEV grid


GRID = BevGrid(x_min_m=-16.0, x_max_m=48.0, y_min_m=-32.0, y_max_m=32.0, resolution_m=0.5)


def test_bev_grid_shape_and_validation():
    assert GRID.shape == (128, 128) and (GRID.n_rows, GRID.n_cols) == (128, 128)
    assert BevGrid.centered(64.0, 32.0, 0.25, x_offset_m=16.0) == BevGrid(-16.0, 48.0, -16.0, 16.0, 0.25)
    assert BevGrid(0.0, 0.3, 0.0, 0.3, 0.1).shape == (3, 3)  # float extents within tolerance
    with pytest.raises(ValueError, match="resolution_m"):
        BevGrid(0, 10, 0, 10, 0.0)
    with pytest.raises(ValueError, match="x_max_m"):
        BevGrid(10, 0, 0, 10, 1.0)
    with pytest.raises(ValueError, match="y_max_m"):
        BevGrid(0, 10, 5, 5, 1.0)
    with pytest.raises(ValueError, match="y extent"):
        BevGrid(0, 10, 0, 10.3, 0.5)
    assert BevGrid.from_dict(GRID.to_dict()) == GRID


def test_bev_grid_orientation():
    ahead, behind = GRID.metric_to_cell([10.0, 0.0]), GRID.metric_to_cell([-10.0, 0.0])
    left, right = GRID.metric_to_cell([0.0, 10.0]), GRID.metric_to_cell([0.0, -10.0])
    assert ahead[0] < behind[0] and ahead[1] == behind[1]
    assert left[1] < right[1] and left[0] == right[0]
    centers = GRID.cell_centers()
    assert centers.shape == (128, 128, 2)
    np.testing.assert_allclose(centers[0, 0], [47.75, 31.75])  # front-left cell
    np.testing.assert_allclose(centers[-1, -1], [-15.75, -31.75])  # rear-right cell
    np.testing.assert_array_equal(GRID.metric_to_cell(centers), np.moveaxis(np.indices(GRID.shape), 0, -1))
    np.testing.assert_array_equal(
        GRID.contains(np.array([[48.0, 0.0], [-16.0, 0.0], [0.0, 32.0], [0.0, -32.0], [0.0, 0.0]])),
        [True, False, True, False, True],
    )


@FAST
@given(st.floats(-15.99, 48), st.floats(-31.99, 32))
def test_bev_grid_round_trip(x, y):
    xy = np.array([x, y])
    assert GRID.contains(xy)
    cell = GRID.metric_to_cell(xy)
    assert 0 <= cell[0] < GRID.n_rows and 0 <= cell[1] < GRID.n_cols
    center = GRID.cell_to_metric(cell)
    assert np.all(np.abs(center - xy) <= GRID.resolution_m / 2 + 1e-9)
    np.testing.assert_array_equal(GRID.metric_to_cell(center), cell)
    np.testing.assert_allclose(GRID.index_to_metric(GRID.metric_to_index(xy)), xy, atol=1e-9)
