"""Background traffic behaviour: who is in my way, and IDM car-following.

The hot loop (for every vehicle, the nearest obstacle along its path) is a Numba kernel written as
plain loops; everything else is vectorised NumPy. A vehicle's obstacles are other actors whose boxes
overlap its path corridor ahead, and stop lines it must respect.
"""

from __future__ import annotations

import numba
import numpy as np

from riskdistill.sim.route import Path

NO_GAP = 1.0e6

# IDM parameters shared by background vehicles.
IDM_MIN_GAP_M = 2.0
IDM_HEADWAY_S = 1.2
IDM_DELTA = 4.0
MAX_DECEL_MPS2 = 8.0


class PathBank:
    """All actor paths packed into padded arrays for vectorised lookups."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self._packed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, path: Path) -> int:
        self.paths.append(path)
        self._packed = None
        return len(self.paths) - 1

    def packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(points [N_path, L_max, 2], n_points [N_path], spacing_m [N_path])``."""
        if self._packed is None:
            n = max(len(self.paths), 1)
            lmax = max((len(p.points) for p in self.paths), default=2)
            pts = np.zeros((n, lmax, 2))
            npts = np.full(n, 2, dtype=np.int64)
            ds = np.ones(n)
            for k, p in enumerate(self.paths):
                pts[k, : len(p.points)] = p.points
                pts[k, len(p.points) :] = p.points[-1]
                npts[k] = len(p.points)
                ds[k] = p.length_m / max(len(p.points) - 1, 1)
            self._packed = (pts, npts, ds)
        return self._packed

    def lengths(self) -> np.ndarray:
        """Path lengths ``[N_path]`` in metres."""
        _, npts, ds = self.packed()
        return (npts - 1) * ds

    def interp(self, path_id: np.ndarray, s_m: np.ndarray) -> np.ndarray:
        """Points ``[..., 2]`` at arc lengths ``s_m`` on paths ``path_id`` (same shapes, broadcast)."""
        pts, npts, ds = self.packed()
        f = np.clip(s_m / ds[path_id], 0.0, npts[path_id] - 1.000001)
        i0 = f.astype(np.int64)
        w = (f - i0)[..., None]
        return pts[path_id, i0] * (1.0 - w) + pts[path_id, i0 + 1] * w


@numba.njit(cache=True)
def _interp_path(pts, npt, ds, s):  # pragma: no cover - compiled
    f = s / ds
    if f < 0.0:
        f = 0.0
    if f > npt - 1.000001:
        f = npt - 1.000001
    i0 = int(f)
    w = f - i0
    return (
        pts[i0, 0] * (1.0 - w) + pts[i0 + 1, 0] * w,
        pts[i0, 1] * (1.0 - w) + pts[i0 + 1, 1] * w,
    )


@numba.njit(cache=True)
def compute_path_gaps(
    movers,  # int64 [M] indices of actors that follow a path and need a gap
    path_id,  # int64 [N]
    s,  # float64 [N] box-centre arc length
    x,
    y,
    yaw,
    length,
    width,
    speed,  # float64 [N]
    active,  # bool [N] actors that can block others
    path_pts,
    path_npts,
    path_ds,  # packed PathBank
    lookahead_m,  # float64 [N]
    step_m,
):  # pragma: no cover - compiled
    """For each mover, the distance from its front to the nearest actor box in its corridor ahead.

    Returns ``(gap [N], blocker [N], blocker_speed_along [N], hit_s [N, N])`` where ``hit_s[i, j]`` is the
    gap at which ``j`` first enters ``i``'s corridor (``NO_GAP`` if never), used for mutual yielding.
    """
    n = x.shape[0]
    gap = np.full(n, NO_GAP)
    blocker = np.full(n, -1, dtype=np.int64)
    blocker_v = np.zeros(n)
    hit = np.full((n, n), NO_GAP)
    for a in range(movers.shape[0]):
        i = movers[a]
        p = path_id[i]
        pts = path_pts[p]
        npt = path_npts[p]
        ds = path_ds[p]
        front = s[i] + 0.5 * length[i]
        la = lookahead_m[i]
        half_w = 0.5 * width[i] + 0.25
        n_steps = int(la / step_m) + 1
        for j in range(n):
            if j == i or not active[j]:
                continue
            dxc = x[j] - x[i]
            dyc = y[j] - y[i]
            reach = la + 0.5 * length[i] + 0.5 * length[j] + 2.0
            if dxc * dxc + dyc * dyc > reach * reach:
                continue
            cj = np.cos(yaw[j])
            sj = np.sin(yaw[j])
            hl = 0.5 * length[j] + 0.3
            hw = 0.5 * width[j] + half_w
            for k in range(n_steps):
                sk = front + k * step_m
                px, py = _interp_path(pts, npt, ds, sk)
                rx = px - x[j]
                ry = py - y[j]
                lx = rx * cj + ry * sj
                ly = -rx * sj + ry * cj
                if abs(lx) < hl and abs(ly) < hw:
                    hit[i, j] = k * step_m
                    break
    for a in range(movers.shape[0]):
        i = movers[a]
        best = NO_GAP
        best_j = -1
        for j in range(n):
            g = hit[i, j]
            if g >= NO_GAP:
                continue
            # Mutual sighting (crossing paths): the one nearer to the conflict goes first.
            if hit[j, i] < NO_GAP and (hit[j, i] > g or (hit[j, i] == g and j > i)):
                continue
            if g < best:
                best = g
                best_j = j
        gap[i] = best
        blocker[i] = best_j
        if best_j >= 0:
            d = yaw[best_j] - yaw[i]
            blocker_v[i] = speed[best_j] * np.cos(d)
    return gap, blocker, blocker_v, hit


def idm_accel(
    speed: np.ndarray,
    desired: np.ndarray,
    gap: np.ndarray,
    lead_speed: np.ndarray,
    max_accel: np.ndarray,
    comfort_decel: np.ndarray,
) -> np.ndarray:
    """Intelligent Driver Model acceleration (vectorised)."""
    v0 = np.maximum(desired, 0.1)
    dv = speed - lead_speed
    s_star = IDM_MIN_GAP_M + np.maximum(
        0.0, speed * IDM_HEADWAY_S + speed * dv / (2.0 * np.sqrt(max_accel * comfort_decel))
    )
    free = 1.0 - (speed / v0) ** IDM_DELTA
    interaction = (s_star / np.maximum(gap, 0.1)) ** 2
    acc = max_accel * (free - interaction)
    return np.clip(acc, -MAX_DECEL_MPS2, max_accel)
