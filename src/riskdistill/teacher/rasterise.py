"""Object risks -> BEV risk map (the RiskHead's target), and the label folder ``RiskMapTarget`` reads.

Each object contributes, on the :class:`~riskdistill.geometry.BevGrid` (row 0 = front, col 0 = left):

- its footprint (oriented box, cell centre inside) at its risk;
- a spread along its likely motion: in the motion frame (``s`` along the velocity, ``n`` across, relative
  to the centre; ``hl``/``hw`` the box's half extents projected on those axes, ``L = speed * horizon_s``)::

      value = risk * A(s) * G(n)
      A(s) = 1                          for -hl <= s <= hl
           = exp(-(s - hl) / (L / 2))   for hl < s <= hl + L     (decays along the motion)
           = 0                          otherwise                (nothing behind the object)
      G(n) = exp(-0.5 * (max(|n| - hw, 0) / spread_m)^2), cut at 3 spread_m (Gaussian across)

  An object slower than ``min_speed_mps`` has no spread (footprint only).

Objects are combined by MAX. The kernel is a Numba loop over each object's bounding window (compiled with
``fastmath``: objects with non-finite geometry are dropped before it runs).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numba
import numpy as np
from pydantic import Field

from riskdistill.config import StrictConfig
from riskdistill.contracts import labels
from riskdistill.geometry import BevGrid
from riskdistill.io import atomic_path, atomic_write_bytes


@numba.njit(cache=True, inline="always")
def _interval(a, b, lo, hi, y0, y1):
    """Intersect [y0, y1] with {y : lo <= a + b * y <= hi}."""
    if abs(b) < 1e-12:
        if lo <= a <= hi:
            return y0, y1
        return 1.0, 0.0
    p, q = (lo - a) / b, (hi - a) / b
    if p > q:
        p, q = q, p
    return max(y0, p), min(y1, q)


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def _raster_kernel(out, cx, cy, cos_b, sin_b, hlb, hwb, ux, uy, travel, risk, x_max, y_max, res, spread):
    n_rows, n_cols = out.shape
    n = cx.shape[0]
    hl = np.empty(n)
    hw = np.empty(n)
    cut = np.empty(n)
    r0 = np.empty(n, dtype=np.int64)
    r1 = np.empty(n, dtype=np.int64)
    for a in range(n):
        # half extents of the box projected on the motion axes (s along, n across)
        hl[a] = (
            abs(ux[a] * cos_b[a] + uy[a] * sin_b[a]) * hlb[a]
            + abs(-ux[a] * sin_b[a] + uy[a] * cos_b[a]) * hwb[a]
        )
        hw[a] = (
            abs(-uy[a] * cos_b[a] + ux[a] * sin_b[a]) * hlb[a]
            + abs(uy[a] * sin_b[a] + ux[a] * cos_b[a]) * hwb[a]
        )
        cut[a] = 3.0 * spread if travel[a] > 0.0 else 0.0
        ext_x = abs(cos_b[a]) * hlb[a] + abs(sin_b[a]) * hwb[a] + cut[a]
        x_lo = cx[a] - ext_x + min(ux[a] * travel[a], 0.0)
        x_hi = cx[a] + ext_x + max(ux[a] * travel[a], 0.0)
        r0[a] = max(math.floor((x_max - x_hi) / res), 0)
        r1[a] = min(math.ceil((x_max - x_lo) / res), n_rows)
    for i in numba.prange(n_rows):
        for a in range(n):
            r = risk[a]
            if r <= 0.0 or i < r0[a] or i >= r1[a]:
                continue
            L = travel[a]
            decay = max(L * 0.5, 1e-6)
            x = x_max - (i + 0.5) * res - cx[a]
            # columns of this row inside the motion strip: -hl <= s <= hl + L, |n| <= hw + cut
            y0, y1 = _interval(x * ux[a], uy[a], -hl[a], hl[a] + L, -1e18, 1e18)
            w = hw[a] + cut[a]
            y0, y1 = _interval(-x * uy[a], ux[a], -w, w, y0, y1)
            if y0 > y1:
                continue
            c0 = max(math.floor((y_max - cy[a] - y1) / res - 0.5) - 1, 0)
            c1 = min(math.ceil((y_max - cy[a] - y0) / res - 0.5) + 2, n_cols)
            for j in range(c0, c1):
                y = y_max - (j + 0.5) * res - cy[a]
                u = x * cos_b[a] + y * sin_b[a]
                v = -x * sin_b[a] + y * cos_b[a]
                if abs(u) <= hlb[a] and abs(v) <= hwb[a]:
                    val = r
                elif L > 0.0:
                    s = x * ux[a] + y * uy[a]
                    nn = abs(-x * uy[a] + y * ux[a]) - hw[a]
                    if s < -hl[a] or s > hl[a] + L or nn > cut[a]:
                        continue
                    e = 0.0  # one exp for both factors: A(s) * G(n) = exp(-(s - hl) / decay - q^2 / 2)
                    if s > hl[a]:
                        e += (s - hl[a]) / decay
                    if nn > 0.0:
                        q = nn / spread
                        e += 0.5 * q * q
                    val = r * math.exp(-e) if e > 0.0 else r
                else:
                    continue
                if val > out[i, j]:
                    out[i, j] = val
    # the cell holding the centre is always hot (objects smaller than a cell are never lost)
    for a in range(n):
        ic = math.floor((x_max - cx[a]) / res)
        jc = math.floor((y_max - cy[a]) / res)
        if risk[a] > 0.0 and 0 <= ic < n_rows and 0 <= jc < n_cols and risk[a] > out[ic, jc]:
            out[ic, jc] = risk[a]


def rasterise_risk(
    center_xy: np.ndarray,
    size_lw: np.ndarray,
    yaw: np.ndarray,
    velocity_xy: np.ndarray,
    risk: np.ndarray,
    grid: BevGrid,
    horizon_s: float = 2.0,
    spread_m: float = 1.0,
    min_speed_mps: float = 0.2,
) -> np.ndarray:
    """``[H, W]`` float32 risk map in [0, 1] from ego-frame objects (centre ``[A, 2]``, size ``[A, 2]``,
    yaw ``[A]``, velocity ``[A, 2]``, risk ``[A]``); see the module docstring for the formula."""
    if spread_m <= 0 or horizon_s < 0:
        raise ValueError(f"spread_m must be > 0 and horizon_s >= 0, got {spread_m}, {horizon_s}")
    c = np.ascontiguousarray(np.asarray(center_xy, dtype=np.float64).reshape(-1, 2))
    size = np.abs(np.asarray(size_lw, dtype=np.float64).reshape(-1, 2))
    th = np.asarray(yaw, dtype=np.float64).reshape(-1)
    vel = np.asarray(velocity_xy, dtype=np.float64).reshape(-1, 2)
    r = np.clip(np.nan_to_num(np.asarray(risk, dtype=np.float64).reshape(-1), nan=0.0), 0.0, 1.0)
    ok = (
        np.isfinite(c).all(-1)
        & np.isfinite(size).all(-1)
        & np.isfinite(th)
        & np.isfinite(vel).all(-1)
        & (r > 0)
    )
    if (
        not ok.all()
    ):  # objects without risk or with non-finite geometry draw nothing (the kernel assumes finite)
        c, size, th, vel, r = np.ascontiguousarray(c[ok]), size[ok], th[ok], vel[ok], r[ok]
    speed = np.linalg.norm(vel, axis=-1)
    moving = speed >= min_speed_mps
    safe = np.where(moving, speed, 1.0)
    ux = np.where(moving, vel[:, 0] / safe, 1.0)
    uy = np.where(moving, vel[:, 1] / safe, 0.0)
    travel = np.where(moving, speed * horizon_s, 0.0)
    out = np.zeros(grid.shape, dtype=np.float32)
    _raster_kernel(
        out,
        np.ascontiguousarray(c[:, 0]),
        np.ascontiguousarray(c[:, 1]),
        np.cos(th),
        np.sin(th),
        np.ascontiguousarray(size[:, 0] / 2.0),
        np.ascontiguousarray(size[:, 1] / 2.0),
        ux,
        uy,
        travel,
        r,
        float(grid.x_max_m),
        float(grid.y_max_m),
        float(grid.resolution_m),
        float(spread_m),
    )
    return out


class RasterConfig(StrictConfig):
    """Parameters of :func:`rasterise_risk` used by the labelling runner (part of its cache key)."""

    horizon_s: float = Field(default=2.0, ge=0.0)
    spread_m: float = Field(default=1.0, gt=0.0)
    min_speed_mps: float = Field(default=0.2, ge=0.0)
    #: Objects scoring below this draw nothing (a far object's 0.0004 is invisible on the map; painting it
    #: costs as much as painting the hazard).
    min_risk: float = Field(default=1e-3, ge=0.0, le=1.0)
    #: Boundary risk ("the road ends here", on by default): cells outside the drivable area get
    #: ``boundary_risk * exp(-d / boundary_width_m)``, d = distance to the nearest drivable cell (0 = off).
    boundary_risk: float = Field(default=0.35, ge=0.0, le=1.0)
    boundary_width_m: float = Field(default=1.0, gt=0.0)


def rasterise_label(
    object_risk: dict[int, float],
    annotation: dict[str, np.ndarray],
    grid: BevGrid,
    config: RasterConfig | None = None,
) -> tuple[np.ndarray, list[int]]:
    """The risk map of one frame from ``{object_id: risk}`` and the frame's annotation: each object is
    painted on the 3D footprint (``actor_center_ego``, ``actor_size_lwh``, ``actor_yaw_ego``,
    ``actor_velocity_ego``) of the actor whose ``actor_id`` equals its ``object_id``. Returns the map
    ``[H, W]`` and the object ids without an actor (negative ids: detections without a 3D match), which
    are not painted."""
    c = config or RasterConfig()
    ids = np.asarray(annotation["actor_id"], dtype=np.int64).reshape(-1)
    pos = {int(a): i for i, a in enumerate(ids.tolist())}
    risk = np.zeros(len(ids))
    unlinked = []
    for oid, r in object_risk.items():
        i = pos.get(int(oid))
        if i is None:
            unlinked.append(int(oid))
        else:
            risk[i] = max(risk[i], float(r))
    keep = (risk > 0.0) & (risk >= c.min_risk)
    center = np.asarray(annotation["actor_center_ego"], dtype=np.float64).reshape(-1, 3)[keep, :2]
    size = np.asarray(annotation["actor_size_lwh"], dtype=np.float64).reshape(-1, 3)[keep, :2]
    yaw = np.asarray(annotation["actor_yaw_ego"], dtype=np.float64).reshape(-1)[keep]
    vel = np.asarray(annotation["actor_velocity_ego"], dtype=np.float64).reshape(-1, 2)[keep]
    m = rasterise_risk(center, size, yaw, vel, risk[keep], grid, c.horizon_s, c.spread_m, c.min_speed_mps)
    if c.boundary_risk > 0.0:
        drivable = drivable_cells(
            grid,
            annotation["lane_left_boundary"],
            annotation["lane_right_boundary"],
            annotation["lane_n_points"],
        )
        np.maximum(m, boundary_risk_map(drivable, grid, c.boundary_risk, c.boundary_width_m), out=m)
    return m, sorted(unlinked)


_CH_A, _CH_B = 0.95509, 1.36930


@numba.njit(cache=True, nogil=True)
def _fill_lanes(left, right, n_points, x_max, y_max, res, n_rows, n_cols, grow):
    """``[H, W]`` bool: cells whose centre lies in a lane piece (the quads between consecutive left / right
    edge points), each quad grown by ``grow`` cells (scanline fill)."""
    out = np.zeros((n_rows, n_cols), dtype=np.bool_)
    qu = np.empty(4)
    qv = np.empty(4)
    for lane in range(left.shape[0]):
        for i in range(n_points[lane] - 1):
            # quad corners in continuous (row, col) index coordinates
            pts = ((left[lane, i]), (left[lane, i + 1]), (right[lane, i + 1]), (right[lane, i]))
            ok = True
            for k in range(4):
                x, y = pts[k][0], pts[k][1]
                if not (math.isfinite(x) and math.isfinite(y)):
                    ok = False
                qu[k] = (x_max - x) / res
                qv[k] = (y_max - y) / res
            if not ok:
                continue
            area = 0.0
            for k in range(4):
                k2 = (k + 1) % 4
                area += qu[k] * qv[k2] - qu[k2] * qv[k]
            if abs(area) < 1e-9:
                continue
            sgn = 1.0 if area > 0 else -1.0
            r0 = max(math.floor(min(qu[0], qu[1], qu[2], qu[3]) - grow), 0)
            r1 = min(math.ceil(max(qu[0], qu[1], qu[2], qu[3]) + grow), n_rows)
            for r in range(r0, r1):
                u = r + 0.5
                v0, v1 = -1e18, 1e18
                for k in range(4):
                    k2 = (k + 1) % 4
                    du, dv = qu[k2] - qu[k], qv[k2] - qv[k]
                    ln = math.sqrt(du * du + dv * dv)
                    if ln < 1e-12:
                        continue
                    # inside: sgn * cross(edge, p - corner) >= -grow * |edge|, i.e. a + b * v >= 0
                    a = sgn * (du * (0.0 - qv[k]) - dv * (u - qu[k])) + grow * ln
                    b = sgn * du
                    if abs(b) < 1e-12:
                        if a < 0.0:
                            v0, v1 = 1.0, 0.0
                            break
                        continue
                    bound = -a / b
                    if b > 0:
                        v0 = max(v0, bound)
                    else:
                        v1 = min(v1, bound)
                if v0 > v1:
                    continue
                c0 = max(math.ceil(v0 - 0.5), 0)
                c1 = min(math.floor(v1 - 0.5), n_cols - 1)
                for c in range(c0, c1 + 1):
                    out[r, c] = True
    return out


@numba.njit(cache=True, nogil=True)
def _chamfer_boundary(road, risk, width_cells, cut_cells):
    """``risk * exp(-max(d - 1, 0) / width_cells)`` off the road, with ``d`` the 3x3 chamfer distance (in
    cells) to the nearest road cell; 0 beyond ``cut_cells`` and on the road."""
    n_r, n_c = road.shape
    big = 1e9
    d = np.empty((n_r, n_c))
    for i in range(n_r):
        for j in range(n_c):
            d[i, j] = 0.0 if road[i, j] else big
    # forward pass (neighbours above and to the left), then backward (below and to the right); Borgefors'
    # optimal 3x3 weights (0.955 along an axis, 1.369 diagonally): within 4.5 % of the Euclidean distance
    fi = (0, -1, -1, -1)
    fj = (-1, -1, 0, 1)
    fw = (_CH_A, _CH_B, _CH_A, _CH_B)
    for i in range(n_r):
        for j in range(n_c):
            v = d[i, j]
            if v == 0.0:
                continue
            for k in range(4):
                ii, jj = i + fi[k], j + fj[k]
                if 0 <= ii < n_r and 0 <= jj < n_c and d[ii, jj] + fw[k] < v:
                    v = d[ii, jj] + fw[k]
            d[i, j] = v
    out = np.zeros((n_r, n_c), dtype=np.float32)
    for i in range(n_r - 1, -1, -1):
        for j in range(n_c - 1, -1, -1):
            v = d[i, j]
            if v == 0.0:
                continue
            for k in range(4):
                ii, jj = i - fi[k], j - fj[k]
                if 0 <= ii < n_r and 0 <= jj < n_c and d[ii, jj] + fw[k] < v:
                    v = d[ii, jj] + fw[k]
            d[i, j] = v
            if v <= cut_cells:
                out[i, j] = risk * math.exp(-max(v - 1.0, 0.0) / width_cells)
    return out


def drivable_cells(
    grid: BevGrid, lane_left_boundary: np.ndarray, lane_right_boundary: np.ndarray, lane_n_points: np.ndarray
) -> np.ndarray:
    """``[H, W]`` bool: cells whose centre lies within half a cell of a lane piece of the annotation
    (``[L, P, 2]`` edges, ``[L]`` valid points); the occupancy target's ``data.targets.drivable_mask`` (a
    PIL polygon fill with outline, which rounds vertices to whole cells) agrees up to about a cell at the
    edges, and this is several times faster."""
    left = np.ascontiguousarray(np.asarray(lane_left_boundary, dtype=np.float64))
    right = np.ascontiguousarray(np.asarray(lane_right_boundary, dtype=np.float64))
    n = np.asarray(lane_n_points, dtype=np.int64).reshape(-1)
    if left.ndim != 3 or len(n) == 0:
        return np.zeros(grid.shape, dtype=bool)
    return _fill_lanes(
        left, right, n, float(grid.x_max_m), float(grid.y_max_m), float(grid.resolution_m), *grid.shape, 0.5
    )


def boundary_risk_map(drivable: np.ndarray, grid: BevGrid, risk: float, width_m: float) -> np.ndarray:
    """``[H, W]`` float32: 0 on drivable cells, ``risk * exp(-d / width_m)`` outside, with ``d`` the distance
    (m) from a cell centre to the nearest drivable cell centre minus one cell (so cells touching the road get
    ``risk``; a chamfer distance, within 4.5 % of the Euclidean one), cut where it falls below 1 % of
    ``risk``. Without any drivable cell in view the map is 0 (nothing is known about the road)."""
    road = np.asarray(drivable) > 0.5
    if not road.any() or risk <= 0.0:
        return np.zeros(grid.shape, dtype=np.float32)
    width = width_m / grid.resolution_m
    return _chamfer_boundary(np.ascontiguousarray(road), float(risk), width, 1.0 + width * math.log(100.0))


def save_risk_map(label_dir: str | Path, frame_id: str, risk_map: np.ndarray, grid: BevGrid) -> Path:
    """Write ``label_dir/maps/<frame_id>.npy`` (float16 ``[H, W]``, atomically; ``/`` in the frame id makes
    sub-folders) and ``label_dir/meta.json`` ``{"grid": ...}``: the layout ``RiskMapTarget`` reads."""
    label_dir = Path(label_dir)
    arr = np.asarray(risk_map)
    if arr.shape != grid.shape:
        raise ValueError(f"risk map of frame {frame_id!r} has shape {arr.shape}, the grid {grid.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"risk map of frame {frame_id!r} contains NaN or inf")
    if ".." in Path(frame_id).parts or Path(frame_id).is_absolute():
        raise ValueError(f"frame id {frame_id!r} cannot be a relative path")
    meta = json.dumps({"grid": grid.to_dict()}, indent=2, sort_keys=True).encode()
    meta_path = label_dir / labels.META_JSON
    if not meta_path.is_file() or meta_path.read_bytes() != meta:
        atomic_write_bytes(meta_path, meta)
    path = labels.risk_map_path(label_dir, frame_id)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.clip(arr, 0.0, 1.0).astype(np.float16))
    return path
