"""Geometry: rigid transforms, oriented boxes, camera projection and the BEV grid.

The bottom layer of the toolkit: depends on numpy and the standard library only.

Conventions
-----------
* World and ego frames are right-handed: x forward, y left, z up. Yaw is counter-clockwise
  about +z, in radians. All lengths are metres.
* The camera frame is OpenCV: x right, y down, z forward (along the optical axis).
* Transforms are named ``target_from_source``: ``T_ego_from_cam`` maps camera-frame points
  into the ego frame, i.e. ``p_ego = T_ego_from_cam.apply(p_cam)``.
* Box corners are listed counter-clockwise seen from above, starting at the front-left:
  front-left, rear-left, rear-right, front-right. 3D boxes list the bottom 4 then the top 4
  corners in that same order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

ArrayLike = Any  # anything np.asarray accepts

# -----------------------------------------------------------------------------
# angles and rotations


def wrap_angle(a: float | np.ndarray) -> float | np.ndarray:
    """Wrap angle(s) in radians to [-pi, pi). Returns a float for scalar input, else an ndarray."""
    arr = np.asarray(a, dtype=np.float64)
    r = np.mod(arr + np.pi, 2.0 * np.pi) - np.pi
    r = np.where(r >= np.pi, r - 2.0 * np.pi, r)  # fmod rounding can land exactly on +pi
    if r.ndim == 0 and not isinstance(a, np.ndarray):
        return float(r)
    return r


def rotation_x(roll: float) -> np.ndarray:
    """Rotation about +x by ``roll`` radians. Returns [3, 3]."""
    c, s = math.cos(roll), math.sin(roll)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(pitch: float) -> np.ndarray:
    """Rotation about +y by ``pitch`` radians. Returns [3, 3]. In a FLU frame, positive is nose down."""
    c, s = math.cos(pitch), math.sin(pitch)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_z(yaw: float) -> np.ndarray:
    """Rotation about +z by ``yaw`` radians (counter-clockwise seen from above). Returns [3, 3]."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# -----------------------------------------------------------------------------
# rigid transforms


def transform_points_2d(T: np.ndarray, points: ArrayLike) -> np.ndarray:
    """Apply a homogeneous 2D transform. T: [3, 3], points: [..., 2] -> [..., 2]."""
    T = np.asarray(T, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return p @ T[:2, :2].T + T[:2, 2]


def transform_points_3d(T: np.ndarray, points: ArrayLike) -> np.ndarray:
    """Apply a homogeneous 3D transform. T: [4, 4], points: [..., 3] -> [..., 3]."""
    T = np.asarray(T, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return p @ T[:3, :3].T + T[:3, 3]


@dataclass(frozen=True)
class SE2:
    """A planar rigid transform: rotate by ``yaw`` then translate by (x, y)."""

    x: float
    y: float
    yaw: float

    def matrix(self) -> np.ndarray:
        """Homogeneous matrix [3, 3]."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, -s, self.x], [s, c, self.y], [0.0, 0.0, 1.0]])

    def inverse(self) -> SE2:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return SE2(-(c * self.x + s * self.y), s * self.x - c * self.y, wrap_angle(-self.yaw))

    def __matmul__(self, other: SE2) -> SE2:
        """Composition: ``(a @ b).apply(p) == a.apply(b.apply(p))``."""
        if not isinstance(other, SE2):
            return NotImplemented
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return SE2(
            self.x + c * other.x - s * other.y,
            self.y + s * other.x + c * other.y,
            wrap_angle(self.yaw + other.yaw),
        )

    def apply(self, points: ArrayLike) -> np.ndarray:
        """Transform points [N, 2] or [2] -> same shape."""
        return transform_points_2d(self.matrix(), points)

    @classmethod
    def from_matrix(cls, m: ArrayLike) -> SE2:
        m = np.asarray(m, dtype=np.float64)
        if m.shape != (3, 3):
            raise ValueError(f"SE2.from_matrix expects [3, 3], got {m.shape}")
        return cls(float(m[0, 2]), float(m[1, 2]), math.atan2(m[1, 0], m[0, 0]))


@dataclass(frozen=True, eq=False)  # eq on ndarray fields would be ambiguous; compare .matrix() instead
class SE3:
    """A 3D rigid transform ``p -> rotation @ p + translation``. rotation: [3, 3], translation: [3].

    The arrays are copied to float64 and made read-only on construction.
    """

    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self) -> None:
        R = np.array(self.rotation, dtype=np.float64)
        t = np.array(self.translation, dtype=np.float64).reshape(-1)
        if R.shape != (3, 3) or t.shape != (3,):
            raise ValueError(f"SE3 expects rotation [3, 3] and translation [3], got {R.shape}, {t.shape}")
        R.setflags(write=False)
        t.setflags(write=False)
        object.__setattr__(self, "rotation", R)
        object.__setattr__(self, "translation", t)

    @classmethod
    def identity(cls) -> SE3:
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_matrix(cls, m: ArrayLike) -> SE3:
        m = np.asarray(m, dtype=np.float64)
        if m.shape != (4, 4):
            raise ValueError(f"SE3.from_matrix expects [4, 4], got {m.shape}")
        return cls(m[:3, :3], m[:3, 3])

    @classmethod
    def from_xyz_rpy(cls, x: float, y: float, z: float, roll: float, pitch: float, yaw: float) -> SE3:
        """Intrinsic Z-Y-X Euler angles: R = Rz(yaw) @ Ry(pitch) @ Rx(roll), then translate."""
        R = rotation_z(yaw) @ rotation_y(pitch) @ rotation_x(roll)
        return cls(R, np.array([x, y, z], dtype=np.float64))

    def matrix(self) -> np.ndarray:
        """Homogeneous matrix [4, 4]."""
        m = np.eye(4)
        m[:3, :3] = self.rotation
        m[:3, 3] = self.translation
        return m

    def inverse(self) -> SE3:
        Rt = self.rotation.T
        return SE3(Rt, -Rt @ self.translation)

    def __matmul__(self, other: SE3) -> SE3:
        """Composition: ``(a @ b).apply(p) == a.apply(b.apply(p))``."""
        if not isinstance(other, SE3):
            return NotImplemented
        return SE3(self.rotation @ other.rotation, self.rotation @ other.translation + self.translation)

    def apply(self, points: ArrayLike) -> np.ndarray:
        """Transform points [N, 3] or [3] -> same shape."""
        p = np.asarray(points, dtype=np.float64)
        return p @ self.rotation.T + self.translation


def _as_matrix4(T: SE3 | np.ndarray) -> np.ndarray:
    if isinstance(T, SE3):
        return T.matrix()
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"expected an SE3 or a [4, 4] matrix, got shape {T.shape}")
    return T


# -----------------------------------------------------------------------------
# oriented 2D boxes

# unit corner offsets (along heading, to the left), counter-clockwise from the front-left
_CORNER_SIGNS = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])


def box_corners_2d(center_xy: ArrayLike, yaw: ArrayLike, length: ArrayLike, width: ArrayLike) -> np.ndarray:
    """Corners of oriented rectangles. center_xy: [N, 2], yaw/length/width: [N] -> [N, 4, 2].

    ``length`` runs along the heading, ``width`` across it. Corner order is counter-clockwise seen
    from above: front-left, rear-left, rear-right, front-right.
    """
    center = np.asarray(center_xy, dtype=np.float64)
    yaw = np.asarray(yaw, dtype=np.float64)
    length, width, yaw = np.broadcast_arrays(length, width, yaw)
    local = _CORNER_SIGNS * np.stack([length, width], axis=-1)[..., None, :]  # [N, 4, 2]
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y], axis=-1) + center[..., None, :]


@dataclass(frozen=True)
class OrientedBox2D:
    """A rectangle centred at (x, y), heading ``yaw``; ``length`` along the heading, ``width`` across."""

    x: float
    y: float
    yaw: float
    length: float
    width: float

    def corners(self) -> np.ndarray:
        """[4, 2], counter-clockwise from the front-left (see ``box_corners_2d``)."""
        return box_corners_2d([self.x, self.y], self.yaw, self.length, self.width)


def _center_and_edges(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parallelograms [..., 4, 2] -> centres [..., 2] and the two full edge vectors [..., 2, 2]
    (front-left minus rear-left: along the heading; front-left minus front-right: across it)."""
    center = 0.5 * (corners[..., 0, :] + corners[..., 2, :])
    edges = corners[..., 0:1, :] - corners[..., 1::2, :]
    return center, edges


def boxes_overlap(a: OrientedBox2D, b: OrientedBox2D) -> bool:
    """Whether two oriented boxes overlap with positive area (separating axis theorem).

    Boxes that merely touch along an edge or at a corner count as not overlapping (up to float
    rounding, which may tip exact contact either way). Reference implementation: projects all
    corners onto each of the four candidate axes.
    """
    ca, cb = a.corners(), b.corners()
    axes = np.concatenate([_center_and_edges(ca)[1], _center_and_edges(cb)[1]])
    for axis in axes:
        pa, pb = ca @ axis, cb @ axis
        if pa.max() <= pb.min() or pb.max() <= pa.min():
            return False
    return True


def boxes_overlap_matrix(corners_a: ArrayLike, corners_b: ArrayLike) -> np.ndarray:
    """Pairwise overlap of rectangles by SAT. corners_a: [N, 4, 2], corners_b: [M, 4, 2] -> bool [N, M].

    Corners must be in the ``box_corners_2d`` order (any parallelogram with consecutive corners
    works). Same touching semantics as ``boxes_overlap``. Fully vectorised (no loop over pairs):
    along each candidate axis n, a box with centre c and edge vectors e1, e2 projects to the
    interval c.n +- (|e1.n| + |e2.n|) / 2, so the pair is separated iff
    |(c_b - c_a).n| >= r_a(n) + r_b(n) on some axis.
    """
    A = np.asarray(corners_a, dtype=np.float64)
    B = np.asarray(corners_b, dtype=np.float64)
    N, M = A.shape[0], B.shape[0]
    ca, EA = _center_and_edges(A)  # [N, 2], [N, 2, 2]
    cb, EB = _center_and_edges(B)
    EA2, EB2 = EA.reshape(N * 2, 2), EB.reshape(M * 2, 2)
    # per box: own centre and own radius on its own axes, [N, 2]
    ownA = np.abs(EA @ EA.transpose(0, 2, 1))
    ownB = np.abs(EB @ EB.transpose(0, 2, 1))
    caA, rA = (EA @ ca[:, :, None])[..., 0], 0.5 * (ownA[..., 0] + ownA[..., 1])
    cbB, rB = (EB @ cb[:, :, None])[..., 0], 0.5 * (ownB[..., 0] + ownB[..., 1])
    # per pair: X[n, k, m, j] = |EA[n, k] . EB[m, j]|
    X = np.abs(EA2 @ EB2.T).reshape(N, 2, M, 2)
    # on A's axes k: |(cb - ca).EA[k]| >= rA[k] + (|EB[0].EA[k]| + |EB[1].EA[k]|) / 2, all [N, 2, M]
    dist = np.abs((EA2 @ cb.T).reshape(N, 2, M) - caA[:, :, None])
    sep = dist >= rA[:, :, None] + 0.5 * (X[..., 0] + X[..., 1])
    sep_a = sep[:, 0] | sep[:, 1]
    # on B's axes j: [N, M, 2]
    dist = np.abs(cbB[None] - (ca @ EB2.T).reshape(N, M, 2))
    sep = dist >= rB[None] + 0.5 * (X[:, 0] + X[:, 1])
    return ~(sep_a | sep[..., 0] | sep[..., 1])


def point_in_box(points: ArrayLike, corners: ArrayLike) -> np.ndarray:
    """Which points lie inside (or on the boundary of) a convex quad. points: [P, 2], corners: [4, 2]
    counter-clockwise -> bool [P]."""
    p = np.asarray(points, dtype=np.float64)
    c = np.asarray(corners, dtype=np.float64)
    edge = np.roll(c, -1, axis=0) - c  # [4, 2]
    rel = p[..., None, :] - c  # [P, 4, 2]
    cross = edge[:, 0] * rel[..., 1] - edge[:, 1] * rel[..., 0]  # >= 0: left of (or on) each edge
    return (cross >= 0.0).all(-1)


def points_in_polygon(points: ArrayLike, polygon: ArrayLike) -> np.ndarray:
    """Which points lie inside a simple polygon, convex or not (even-odd rule). points: [P, 2], polygon:
    [K, 2] -> bool [P]."""
    p, q = np.asarray(points, dtype=np.float64), np.asarray(polygon, dtype=np.float64)
    x, y = p[:, 0][:, None], p[:, 1][:, None]
    x0, y0 = q[:, 0][None], q[:, 1][None]
    x1, y1 = np.roll(q[:, 0], -1)[None], np.roll(q[:, 1], -1)[None]
    straddles = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return (straddles & (x < x_cross)).sum(axis=1) % 2 == 1


# -----------------------------------------------------------------------------
# 3D boxes


def box3d_corners(center: ArrayLike, size: ArrayLike, yaw: ArrayLike) -> np.ndarray:
    """Corners of yawed 3D boxes. center: [N, 3] (geometric centre), size: [N, 3] (length, width,
    height), yaw: [N] -> [N, 8, 3]: bottom 4 then top 4, each in the ``box_corners_2d`` order."""
    center = np.asarray(center, dtype=np.float64)
    size = np.asarray(size, dtype=np.float64)
    xy = box_corners_2d(center[..., :2], yaw, size[..., 0], size[..., 1])  # [N, 4, 2]
    z0 = (center[..., 2] - 0.5 * size[..., 2])[..., None, None]
    z1 = (center[..., 2] + 0.5 * size[..., 2])[..., None, None]
    bottom = np.concatenate([xy, np.broadcast_to(z0, (*xy.shape[:-1], 1))], -1)
    top = np.concatenate([xy, np.broadcast_to(z1, (*xy.shape[:-1], 1))], -1)
    return np.concatenate([bottom, top], axis=-2)


@dataclass(frozen=True, eq=False)
class Box3D:
    """A yawed 3D box. center: [3] geometric centre; size: [3] (length along heading, width, height)."""

    center: np.ndarray
    size: np.ndarray
    yaw: float

    def __post_init__(self) -> None:
        for name in ("center", "size"):
            v = np.array(getattr(self, name), dtype=np.float64).reshape(-1)
            if v.shape != (3,):
                raise ValueError(f"Box3D.{name} must have 3 elements, got shape {v.shape}")
            v.setflags(write=False)
            object.__setattr__(self, name, v)

    def corners(self) -> np.ndarray:
        """[8, 3]: bottom 4 then top 4, each front-left, rear-left, rear-right, front-right."""
        return box3d_corners(self.center, self.size, self.yaw)

    def footprint(self) -> OrientedBox2D:
        c, s = self.center, self.size
        return OrientedBox2D(float(c[0]), float(c[1]), float(self.yaw), float(s[0]), float(s[1]))


# -----------------------------------------------------------------------------
# cameras

# R_ego_from_cam for a camera looking straight ahead: cam z -> ego x, cam x -> ego -y, cam y -> ego -z
_R_FLU_FROM_OPENCV = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def intrinsics_from_fov(width_px: int, height_px: int, hfov_deg: float) -> np.ndarray:
    """Pinhole K [3, 3] from the horizontal field of view (Bench2Drive/CARLA convention):
    fx = fy = W / (2 tan(hfov / 2)), cx = W / 2, cy = H / 2."""
    f = width_px / (2.0 * math.tan(math.radians(hfov_deg) / 2.0))
    return np.array([[f, 0.0, width_px / 2.0], [0.0, f, height_px / 2.0], [0.0, 0.0, 1.0]])


def T_ego_from_cam_from_pose(
    x: float, y: float, z: float, yaw: float, pitch: float = 0.0, roll: float = 0.0
) -> SE3:
    """Extrinsics of a camera mounted at (x, y, z) in the ego frame. Angles in radians.

    ``yaw`` turns the optical axis counter-clockwise from ego +x (pi/2 looks left). ``pitch``
    positive tilts the optical axis down (nose down). ``roll`` rotates about the optical axis,
    right-handed about the forward direction: positive dips the camera's right side (its +x).
    Euler order as ``SE3.from_xyz_rpy``: R_body = Rz(yaw) @ Ry(pitch) @ Rx(roll) in a
    forward-left-up camera body frame, then the fixed swap to OpenCV axes. The result maps OpenCV
    camera coordinates to ego coordinates: the point at depth d on the optical axis goes to
    mount + d * forward. Use ``.inverse()`` for the ``T_cam_from_ego`` that projection takes.
    """
    R_body = rotation_z(yaw) @ rotation_y(pitch) @ rotation_x(roll)  # FLU camera body in ego
    return SE3(R_body @ _R_FLU_FROM_OPENCV, np.array([x, y, z], dtype=np.float64))


def project_points(
    points_ego: ArrayLike, K: np.ndarray, T_cam_from_ego: SE3 | np.ndarray, near_m: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project ego-frame points into the image.

    points_ego: [N, 3], K: [3, 3]. Returns uv [N, 2] pixels, depth [N] (camera z, metres) and
    valid bool [N] = depth > near_m. uv is NaN where not valid.
    """
    p = transform_points_3d(_as_matrix4(T_cam_from_ego), points_ego)
    depth = p[..., 2]
    valid = depth > near_m
    safe = np.where(valid, depth, 1.0)[..., None]
    uvw = (p / safe) @ np.asarray(K, dtype=np.float64).T
    uv = np.where(valid[..., None], uvw[..., :2], np.nan)
    return uv, depth, valid


def unproject_points(
    uv: ArrayLike, depth: ArrayLike, K: np.ndarray, T_ego_from_cam: SE3 | np.ndarray
) -> np.ndarray:
    """Inverse of ``project_points``: pixels uv [N, 2] at camera depth [N] -> ego points [N, 3]."""
    uv = np.asarray(uv, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64)
    uv1 = np.concatenate([uv, np.ones((*uv.shape[:-1], 1))], axis=-1)
    rays = uv1 @ np.linalg.inv(np.asarray(K, dtype=np.float64)).T  # z == 1
    return transform_points_3d(_as_matrix4(T_ego_from_cam), rays * depth[..., None])


def clip_polygon_near_plane(points_cam: ArrayLike, near_m: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a convex polygon [P, 3] (camera coords, in order) to z >= near_m.

    Returns the clipped polygon [Q, 3] (Q may be 0)."""
    pts = np.asarray(points_cam, dtype=np.float64)
    out = []
    for i in range(len(pts)):
        cur, nxt = pts[i], pts[(i + 1) % len(pts)]
        cur_in, nxt_in = cur[2] >= near_m, nxt[2] >= near_m
        if cur_in:
            out.append(cur)
        if cur_in != nxt_in:  # the edge crosses the plane
            t = (near_m - cur[2]) / (nxt[2] - cur[2])
            out.append(cur + t * (nxt - cur))
    return np.array(out, dtype=np.float64).reshape(-1, 3)


# faces of a box3d_corners box, each an ordered quad
_BOX_FACES = ((0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7))


def project_box_to_image(
    corners_ego: ArrayLike,
    K: np.ndarray,
    T_cam_from_ego: SE3 | np.ndarray,
    image_wh: tuple[int, int],
    near_m: float = 0.1,
) -> tuple[float, float, float, float] | None:
    """2D bbox (x0, y0, x1, y1) in pixels of a 3D box [8, 3] (``box3d_corners`` order).

    Each face is clipped to the near plane before projecting, so boxes straddling the camera give a
    correct (possibly image-filling) extent. The result is clipped to [0, W] x [0, H]. Returns None
    if the box is entirely behind the near plane or its projection misses the image.
    """
    corners_cam = transform_points_3d(_as_matrix4(T_cam_from_ego), corners_ego)
    faces = [clip_polygon_near_plane(corners_cam[list(f)], near_m) for f in _BOX_FACES]
    pts = np.concatenate(faces, axis=0)
    if len(pts) == 0:
        return None
    uv = (pts / pts[:, 2:3]) @ np.asarray(K, dtype=np.float64).T
    W, H = image_wh
    x0, y0 = max(float(uv[:, 0].min()), 0.0), max(float(uv[:, 1].min()), 0.0)
    x1, y1 = min(float(uv[:, 0].max()), float(W)), min(float(uv[:, 1].max()), float(H))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


# -----------------------------------------------------------------------------
# BEV grid


#: Named grids (see ``BevGrid.preset``).
BEV_GRID_PRESETS: dict[str, dict[str, float]] = {
    "tiny": {"x_min_m": -16.0, "x_max_m": 48.0, "y_min_m": -32.0, "y_max_m": 32.0, "resolution_m": 1.0},
    "base": {"x_min_m": -15.0, "x_max_m": 45.0, "y_min_m": -30.0, "y_max_m": 30.0, "resolution_m": 0.3},
}


@dataclass(frozen=True)
class BevGrid:
    """A metric bird's-eye-view raster in the ego frame, laid out as an image::

                 col 0 (y = y_max, left)      col n_cols-1 (y = y_min, right)
        row 0          +-----------------------------+   x = x_max (front)
                       |             ^ x             |
                       |             |               |
                       |      y <----+ ego           |
                       |                             |
        row n_rows-1   +-----------------------------+   x = x_min (rear)

    Displaying the array shows forward up and left on the left. Rows run along x (n_rows),
    columns along y (n_cols). Continuous index coordinates are
    ``row = (x_max - x) / res``, ``col = (y_max - y) / res``; cell (i, j) covers
    [i, i+1) x [j, j+1), so its centre is (i + 0.5, j + 0.5). Hence a point is contained when
    x_min < x <= x_max and y_min < y <= y_max.
    """

    x_min_m: float
    x_max_m: float
    y_min_m: float
    y_max_m: float
    resolution_m: float

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not math.isfinite(v):
                raise ValueError(f"BevGrid.{f.name} must be finite, got {v}")
        if self.resolution_m <= 0:
            raise ValueError(f"BevGrid.resolution_m must be > 0, got {self.resolution_m}")
        for axis in ("x", "y"):
            lo, hi = getattr(self, f"{axis}_min_m"), getattr(self, f"{axis}_max_m")
            if hi <= lo:
                raise ValueError(f"BevGrid.{axis}_max_m ({hi}) must be > {axis}_min_m ({lo})")
            n = (hi - lo) / self.resolution_m
            if abs(n - round(n)) > 1e-6:
                raise ValueError(
                    f"BevGrid: {axis} extent {axis}_max_m - {axis}_min_m = {hi - lo} is not a multiple "
                    f"of resolution_m = {self.resolution_m}"
                )

    @classmethod
    def centered(
        cls, length_m: float, width_m: float, resolution_m: float, x_offset_m: float = 0.0
    ) -> BevGrid:
        """A grid length_m long (x) and width_m wide (y), centred on (x_offset_m, 0) in the ego frame."""
        return cls(
            x_min_m=x_offset_m - length_m / 2.0,
            x_max_m=x_offset_m + length_m / 2.0,
            y_min_m=-width_m / 2.0,
            y_max_m=width_m / 2.0,
            resolution_m=resolution_m,
        )

    @classmethod
    def preset(cls, name: str) -> BevGrid:
        """A named grid shared by teachers, students and viewers: ``tiny`` (64 x 64 cells of 1 m, 48 m ahead,
        16 m behind, 32 m to each side; for CPU students) or ``base`` (200 x 200 cells of 0.3 m, 45 m ahead,
        15 m behind, 30 m to each side; VAD-Base scale)."""
        if name not in BEV_GRID_PRESETS:
            raise ValueError(f"unknown BEV grid preset {name!r}; valid presets: {sorted(BEV_GRID_PRESETS)}")
        return cls(**BEV_GRID_PRESETS[name])

    @property
    def n_rows(self) -> int:
        return round((self.x_max_m - self.x_min_m) / self.resolution_m)

    @property
    def n_cols(self) -> int:
        return round((self.y_max_m - self.y_min_m) / self.resolution_m)

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_rows, self.n_cols

    def metric_to_index(self, xy: ArrayLike) -> np.ndarray:
        """Ego-frame xy [..., 2] -> continuous (row, col) [..., 2]; cell (i, j) covers [i, i+1) x [j, j+1)."""
        xy = np.asarray(xy, dtype=np.float64)
        row = (self.x_max_m - xy[..., 0]) / self.resolution_m
        col = (self.y_max_m - xy[..., 1]) / self.resolution_m
        return np.stack([row, col], axis=-1)

    def index_to_metric(self, rowcol: ArrayLike) -> np.ndarray:
        """Inverse of ``metric_to_index``: continuous (row, col) [..., 2] -> xy [..., 2]."""
        rc = np.asarray(rowcol, dtype=np.float64)
        x = self.x_max_m - rc[..., 0] * self.resolution_m
        y = self.y_max_m - rc[..., 1] * self.resolution_m
        return np.stack([x, y], axis=-1)

    def metric_to_cell(self, xy: ArrayLike) -> np.ndarray:
        """Ego-frame xy [..., 2] -> integer cell (row, col) [..., 2] (may lie outside; see ``contains``)."""
        return np.floor(self.metric_to_index(xy)).astype(np.int64)

    def contains(self, xy: ArrayLike) -> np.ndarray:
        """Whether xy [..., 2] falls in some cell -> bool [...]."""
        rc = self.metric_to_index(xy)
        return (rc[..., 0] >= 0) & (rc[..., 0] < self.n_rows) & (rc[..., 1] >= 0) & (rc[..., 1] < self.n_cols)

    def cell_to_metric(self, rowcol: ArrayLike) -> np.ndarray:
        """Integer cell (row, col) [..., 2] -> xy [..., 2] of the cell centre."""
        return self.index_to_metric(np.asarray(rowcol, dtype=np.float64) + 0.5)

    def cell_centers(self) -> np.ndarray:
        """xy of every cell centre, [n_rows, n_cols, 2]."""
        rows, cols = np.meshgrid(np.arange(self.n_rows), np.arange(self.n_cols), indexing="ij")
        return self.cell_to_metric(np.stack([rows, cols], axis=-1))

    def to_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BevGrid:
        return cls(**{f.name: float(d[f.name]) for f in fields(cls)})


# ------------------------------------------------------------------------------------------ polylines
def polyline_arclength(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length ``[P]`` of a polyline ``[P, 2]``."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def project_many_to_polyline(
    points: np.ndarray, s: np.ndarray, xy: np.ndarray, lo: int = 0, hi: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(s_m [N], lateral_m [N])`` of points ``xy [N, 2]`` projected on segments ``lo..hi`` of a polyline
    ``points [P, 2]`` with cumulative arc length ``s`` (:func:`polyline_arclength`); lateral > 0 is left."""
    hi = len(points) - 1 if hi is None else hi
    a, b = points[lo:hi], points[lo + 1 : hi + 1]  # [S, 2]
    if len(a) == 0:
        a, b, lo = points[:-1], points[1:], 0
    ab = b - a
    seg_len2 = np.maximum((ab**2).sum(axis=1), 1e-12)
    rel = xy[:, None, :] - a[None]  # [N, S, 2]
    t = np.clip((rel * ab[None]).sum(axis=2) / seg_len2[None], 0.0, 1.0)
    d2 = ((rel - t[..., None] * ab[None]) ** 2).sum(axis=2)
    i = np.argmin(d2, axis=1)
    rows = np.arange(len(xy))
    s_m = s[lo + i] + t[rows, i] * np.sqrt(seg_len2[i])
    cross = ab[i, 0] * rel[rows, i, 1] - ab[i, 1] * rel[rows, i, 0]
    return s_m, np.sign(cross) * np.sqrt(d2[rows, i])
