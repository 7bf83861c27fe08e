"""Counterfactual conflict geometry: when would each actor meet an ego that drives its route regardless?

The privileged oracle (:mod:`riskdistill.teacher.oracle`) and the label metric "hazard recall"
(:mod:`riskdistill.teacher.quality`) share this module; see ``docs/teachers.md`` for the figure.

**The counterfactual ego** drives its *route* (``route_ahead_ego`` of the annotation), not the expert's
recorded future (which already avoids the hazard). It starts at its current speed, accelerates at
``accel_mps2`` up to the route's speed limit, slows (at ``decel_mps2``) only where the route demands it:
curves (lateral acceleration at most ``lateral_accel_mps2``) and a red or yellow light's stop line. It
ignores every other road user: the question is "what if I kept going". Its lateral offset from the route
(during a lane change or an overtake) fades linearly to 0 over ``offset_return_m`` of travel. Its
footprint is the real box: length and width of the ego, centre ``rear_to_center_m`` ahead of the rear
axle. Without a route (old or imported data) the path is the recorded future's polyline, extended
straight, driven with the same speed profile.

**Each actor** follows its path (``actor_path_ego``: its lane or walking line) at its current speed,
braking to a stop when it is braking (``actor_accel_mps2 < -0.5``); a held actor that a scenario trigger
releases when the ego has driven ``actor_release_in_m`` further waits until the counterfactual ego gets
there, then walks at (walkers) or accelerates at ``release_accel_mps2`` to (vehicles) its release speed.
Actors without a path move at constant velocity (parked ones stand still).

**Gaps** are oriented box-to-box distances (0 when the boxes overlap) every ``time_step_s`` up to
``horizon_s``. The *time to conflict* (TTC) is the first time the gap falls to the actor's margin or below
(interpolated between samples): ``margin_m`` for a standing actor, ``margin_moving_m`` for a moving (or
released) one, whose predicted position is less certain. For a vehicle ahead in the ego's lane the TTC
is the gap over the closing speed. ``gap_now`` is the current box gap between the real ego and the actor.
For a moving pedestrian or cyclist, ``ttc_if_stops`` is the TTC if it stopped where it is (walkers stop,
hesitate and turn back; one standing in the ego's lane stays a hazard even when it would clear in time).

**Shielding**: an actor the counterfactual ego would only reach by driving through another one first
(a vehicle or large object at least ``shield_min_width_m`` wide, met earlier and at least that width
nearer along the ego's path, e.g. the car behind the lead car) has no time to conflict of its own
(``ttc = inf``, ``shielded = True``): the ego meets the nearer one first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from riskdistill.types import LightState


@dataclass(frozen=True)
class ConflictParams:
    """The geometry parameters (plain floats: read in the inner loop of the oracle)."""

    horizon_s: float = 6.0
    time_step_s: float = 0.2
    accel_mps2: float = 2.0
    decel_mps2: float = 3.0
    lateral_accel_mps2: float = 3.0
    default_speed_limit_mps: float = 13.9
    offset_return_m: float = 60.0
    release_accel_mps2: float = 2.5
    margin_m: float = 0.5
    margin_moving_m: float = 1.0
    shield_min_width_m: float = 1.0
    cull_m: float = 3.0  # actors farther than this from the ego at a time step skip the exact box gap
    ego_length_m: float = 4.6
    ego_width_m: float = 1.9
    rear_to_center_m: float = 1.45
    future_dt_s: float = 0.5  # spacing of future_xy (fallback path)


@dataclass
class Scene:
    """What the geometry needs of one frame, ego frame (x forward, y left, origin below the rear axle).

    Actor arrays are ``[A]`` / ``[A, 2]``; the optional ones (None) fall back as described in the module
    docstring."""

    ego_speed_mps: float
    center_xy: np.ndarray  # [A, 2]
    size_lw: np.ndarray  # [A, 2]
    yaw: np.ndarray  # [A]
    velocity_xy: np.ndarray  # [A, 2]
    route_xy: np.ndarray | None = None  # [R, 2] route ahead (rear-axle trace)
    route_limit_mps: np.ndarray | None = None  # [R]
    future_xy: np.ndarray | None = None  # [F, 2] fallback path
    future_valid: np.ndarray | None = None
    stop_distance_m: float = math.nan  # ego front -> stop line of a red / yellow light on the route
    accel_mps2: np.ndarray | None = None  # [A]
    path_xy: np.ndarray | None = None  # [A, P, 2]
    path_step_m: np.ndarray | None = None  # [A], 0: no path
    release_in_m: np.ndarray | None = None  # [A], NaN: none
    release_speed_mps: np.ndarray | None = None  # [A]
    is_walker: np.ndarray | None = None  # [A] bool: walks at its release speed at once
    ego_length_m: float | None = None
    ego_width_m: float | None = None
    rear_to_center_m: float | None = None


@dataclass(frozen=True)
class EgoPlan:
    t: np.ndarray  # [T] s
    s: np.ndarray  # [T] m travelled along the path
    v: np.ndarray  # [T] m/s
    xy: np.ndarray  # [T, 2] rear axle
    heading: np.ndarray  # [T] rad


@dataclass(frozen=True)
class Conflicts:
    """Per actor (``[A]``): time to conflict (inf: none within the horizon), the smallest predicted gap and
    its time, the current box gap, and the closing speed (rate at which the current gap shrinks, > 0
    approaching)."""

    ttc_s: np.ndarray
    gap_min_m: np.ndarray
    t_min_s: np.ndarray
    gap_now_m: np.ndarray
    closing_mps: np.ndarray
    shielded: np.ndarray  # bool: in the ego's way only behind a nearer road user (ttc set to inf)
    margin_m: np.ndarray  # the margin each actor's conflict is measured with
    ttc_if_stops_s: np.ndarray  # moving walkers: the TTC if it stopped where it is (inf otherwise)
    plan: EgoPlan


# ------------------------------------------------------------------------------------------ box gaps
@numba.njit(cache=True, inline="always")
def _seg_dist(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    den = dx * dx + dy * dy
    u = 0.0 if den <= 0.0 else ((px - ax) * dx + (py - ay) * dy) / den
    u = min(max(u, 0.0), 1.0)
    ex, ey = ax + u * dx - px, ay + u * dy - py
    return math.sqrt(ex * ex + ey * ey)


@numba.njit(cache=True)
def box_gap(cxa, cya, ca, sa, hla, hwa, cxb, cyb, cb, sb, hlb, hwb):
    """Distance between two oriented boxes (centre, cos/sin of the heading, half length / width); 0 when
    they overlap (separating-axis test)."""
    dx, dy = cxb - cxa, cyb - cya
    for k in range(4):
        if k == 0:
            ux, uy = ca, sa
        elif k == 1:
            ux, uy = -sa, ca
        elif k == 2:
            ux, uy = cb, sb
        else:
            ux, uy = -sb, cb
        ra = hla * abs(ca * ux + sa * uy) + hwa * abs(-sa * ux + ca * uy)
        rb = hlb * abs(cb * ux + sb * uy) + hwb * abs(-sb * ux + cb * uy)
        if abs(dx * ux + dy * uy) > ra + rb:
            break
    else:
        return 0.0
    pa = np.empty((4, 2))
    pb = np.empty((4, 2))
    for i in range(4):
        fl = 1.0 if i == 0 or i == 1 else -1.0
        fw = 1.0 if i == 0 or i == 3 else -1.0
        pa[i, 0] = cxa + fl * hla * ca - fw * hwa * sa
        pa[i, 1] = cya + fl * hla * sa + fw * hwa * ca
        pb[i, 0] = cxb + fl * hlb * cb - fw * hwb * sb
        pb[i, 1] = cyb + fl * hlb * sb + fw * hwb * cb
    best = 1e18
    for i in range(4):
        for j in range(4):
            j2 = (j + 1) % 4
            d = _seg_dist(pa[i, 0], pa[i, 1], pb[j, 0], pb[j, 1], pb[j2, 0], pb[j2, 1])
            if d < best:
                best = d
            d = _seg_dist(pb[i, 0], pb[i, 1], pa[j, 0], pa[j, 1], pa[j2, 0], pa[j2, 1])
            if d < best:
                best = d
    return best


@numba.njit(cache=True, nogil=True)
def _gap_kernel(ex, ey, ec, es, ehl, ehw, ax, ay, ac, as_, ahl, ahw, cull):
    """``gap [A, T]``: box gaps of the ego (``[T]`` centres, cos, sin) and each actor (``[A, T]``); where the
    bounding circles are more than ``cull`` apart, the circle gap (a lower bound) instead."""
    n_a, n_t = ax.shape
    out = np.empty((n_a, n_t))
    re = math.sqrt(ehl * ehl + ehw * ehw)
    for a in range(n_a):
        ra = math.sqrt(ahl[a] * ahl[a] + ahw[a] * ahw[a])
        for k in range(n_t):
            dx, dy = ax[a, k] - ex[k], ay[a, k] - ey[k]
            dc = math.sqrt(dx * dx + dy * dy) - re - ra
            if dc > cull:
                out[a, k] = dc
            else:
                out[a, k] = box_gap(
                    ex[k],
                    ey[k],
                    ec[k],
                    es[k],
                    ehl,
                    ehw,
                    ax[a, k],
                    ay[a, k],
                    ac[a, k],
                    as_[a, k],
                    ahl[a],
                    ahw[a],
                )
    return out


# ------------------------------------------------------------------------------------------ the ego
@numba.njit(cache=True, nogil=True)
def _speed_profile(seg_s, vcap, v0, accel, decel, t):
    """``(s [T], v [T])`` along a path with cumulative arc length ``seg_s [R]`` and speed caps ``vcap [R]``:
    accelerate at ``accel`` towards the cap profile, which a backward pass limits to what braking at
    ``decel`` allows; above it, brake at up to 1.5 ``decel``."""
    n = len(seg_s)
    vmax = vcap.copy()
    for i in range(n - 2, -1, -1):
        ds = seg_s[i + 1] - seg_s[i]
        lim = math.sqrt(vmax[i + 1] * vmax[i + 1] + 2.0 * decel * ds)
        if lim < vmax[i]:
            vmax[i] = lim
    n_t = len(t)
    s_out = np.empty(n_t)
    v_out = np.empty(n_t)
    s_end = seg_s[n - 1]
    for i in range(n):  # never past the first point it must stand still at
        if vcap[i] <= 0.0:
            s_end = seg_s[i]
            break
    s, v = 0.0, v0
    for k in range(n_t):
        s_out[k] = s
        v_out[k] = v
        if k == n_t - 1:
            break
        dt = t[k + 1] - t[k]
        # the profile one step ahead (where the ego gets to at its current speed)
        q = min(s + v * dt, seg_s[n - 1])
        j = min(max(np.searchsorted(seg_s, q, side="right") - 1, 0), n - 2)
        ds = seg_s[j + 1] - seg_s[j]
        w = 0.0 if ds <= 0.0 else min(max((q - seg_s[j]) / ds, 0.0), 1.0)
        target = vmax[j] * (1.0 - w) + vmax[j + 1] * w
        nv = min(v + accel * dt, target) if v < target else max(v - 1.5 * decel * dt, target)
        s = min(s + 0.5 * (v + nv) * dt, s_end)
        v = nv if s < s_end else 0.0
    return s_out, v_out


def _route_path(scene: Scene, p: ConflictParams) -> tuple[np.ndarray, np.ndarray]:
    """The counterfactual path ``[R, 2]`` (rear axle) and its speed limits ``[R]``."""
    if scene.route_xy is not None and len(scene.route_xy) >= 2:
        xy = np.asarray(scene.route_xy, dtype=np.float64).reshape(-1, 2)
        lim = (
            np.asarray(scene.route_limit_mps, dtype=np.float64).reshape(-1)
            if scene.route_limit_mps is not None
            else np.full(len(xy), p.default_speed_limit_mps)
        )
        # the ego's lateral offset from the route, fading out over offset_return_m
        t0 = xy[min(1, len(xy) - 1)] - xy[0]
        t0 = t0 / max(float(np.hypot(*t0)), 1e-9)
        e0 = float(t0[0] * (0.0 - xy[0, 1]) - t0[1] * (0.0 - xy[0, 0]))  # left of the route > 0
        if abs(e0) > 0.05:
            seg = np.hypot(*np.diff(xy, axis=0).T)
            s = np.concatenate([[0.0], np.cumsum(seg)])
            tang = np.gradient(xy, axis=0)
            tang /= np.maximum(np.hypot(tang[:, 0], tang[:, 1]), 1e-9)[:, None]
            fade = np.clip(1.0 - s / p.offset_return_m, 0.0, 1.0) * e0
            xy = xy + fade[:, None] * np.stack([-tang[:, 1], tang[:, 0]], axis=1)
        return xy, np.where(np.isfinite(lim), lim, p.default_speed_limit_mps)
    # fallback: the recorded future's geometry, extended straight
    pts = [np.zeros(2)]
    if scene.future_xy is not None:
        fxy = np.asarray(scene.future_xy, dtype=np.float64).reshape(-1, 2)
        fv = (
            np.asarray(scene.future_valid, dtype=bool).reshape(-1) if scene.future_valid is not None else None
        )
        n = len(fxy) if fv is None or fv.all() else int(np.argmin(fv))
        pts += [q for q in fxy[:n] if np.hypot(*(q - pts[-1])) > 0.2]
    pts_a = np.asarray(pts)
    d = pts_a[-1] - pts_a[-2] if len(pts_a) >= 2 else np.array([1.0, 0.0])
    d = d / max(float(np.hypot(*d)), 1e-9)
    ext = pts_a[-1] + d * (np.arange(1, 151)[:, None] * 1.0)
    xy = np.concatenate([pts_a, ext])
    return xy, np.full(len(xy), p.default_speed_limit_mps)


def ego_plan(scene: Scene, p: ConflictParams) -> EgoPlan:
    """The counterfactual ego's rear-axle trajectory (see the module docstring)."""
    t = np.arange(0.0, p.horizon_s + 1e-9, p.time_step_s)
    xy, lim = _route_path(scene, p)
    keep = np.concatenate([[True], np.hypot(*np.diff(xy, axis=0).T) > 1e-3])  # drop repeated points
    xy, lim = xy[keep], lim[keep]
    if len(xy) < 2:
        xy = np.array([[0.0, 0.0], [1.0, 0.0]])
        lim = np.full(2, p.default_speed_limit_mps)
    d = np.diff(xy, axis=0)
    seg = np.hypot(d[:, 0], d[:, 1])
    s = np.concatenate([[0.0], np.cumsum(seg)])
    seg_head = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    head = np.concatenate([seg_head[:1], 0.5 * (seg_head[1:] + seg_head[:-1]), seg_head[-1:]])
    # curve speed: heading change per metre, smoothed over ~5 points
    dh = np.abs(np.diff(seg_head)) / np.maximum(0.5 * (seg[1:] + seg[:-1]), 1e-3)
    # (zero-padded "valid" = numpy's "same", which would return 5 values for a path of fewer than 5 points)
    kappa = np.convolve(np.pad(np.concatenate([[0.0], dh, [0.0]]), 2), np.ones(5) / 5.0, mode="valid")
    vcap = np.minimum(lim, np.sqrt(p.lateral_accel_mps2 / np.maximum(kappa, 1e-4)))
    stop = scene.stop_distance_m
    if np.isfinite(stop) and stop >= 0.0:  # the ego front (``stop`` short of the line) stops at it
        vcap = np.where(s >= stop, 0.0, vcap)
    v0 = max(float(scene.ego_speed_mps), 0.0)
    s_t, v_t = _speed_profile(s, vcap, v0, p.accel_mps2, p.decel_mps2, t)
    x_t = np.interp(s_t, s, xy[:, 0])
    y_t = np.interp(s_t, s, xy[:, 1])
    h_t = np.interp(s_t, s, head)
    return EgoPlan(t, s_t, v_t, np.stack([x_t, y_t], axis=1), h_t)


# ------------------------------------------------------------------------------------------ the actors
def _travel(scene: Scene, plan: EgoPlan, p: ConflictParams, speed: np.ndarray) -> np.ndarray:
    """Distance ``[A, T]`` each actor covers along its path."""
    t = plan.t[None, :]
    acc = (
        np.nan_to_num(np.asarray(scene.accel_mps2, dtype=np.float64).reshape(-1))
        if scene.accel_mps2 is not None
        else np.zeros(len(speed))
    )
    braking = acc < -0.5
    a = np.where(braking, acc, 0.0)[:, None]
    t_stop = np.where(braking, speed / np.maximum(-acc, 1e-6), np.inf)[:, None]
    tt = np.minimum(t, t_stop)
    d = speed[:, None] * tt + 0.5 * a * tt * tt
    if scene.release_in_m is not None:
        rin = np.asarray(scene.release_in_m, dtype=np.float64).reshape(-1)
        held = np.isfinite(rin)
        if held.any():
            vrel = np.nan_to_num(np.asarray(scene.release_speed_mps, dtype=np.float64).reshape(-1))
            walker = (
                np.asarray(scene.is_walker, dtype=bool).reshape(-1)
                if scene.is_walker is not None
                else np.zeros(len(rin), dtype=bool)
            )
            k = np.searchsorted(plan.s - plan.s[0], rin[held])  # first step the ego has driven that far
            t_rel = np.where(k < len(plan.t), plan.t[np.minimum(k, len(plan.t) - 1)], np.inf)
            tau = np.maximum(plan.t[None, :] - t_rel[:, None], 0.0)  # time since release
            v = vrel[held][:, None]
            ra = p.release_accel_mps2
            t_acc = v / ra
            ramp = np.where(tau < t_acc, 0.5 * ra * tau * tau, 0.5 * ra * t_acc * t_acc + v * (tau - t_acc))
            d[held] = np.where(walker[held][:, None], v * tau, ramp)
    return d


def actor_tracks(scene: Scene, plan: EgoPlan, p: ConflictParams) -> tuple[np.ndarray, np.ndarray]:
    """Predicted box centres ``[A, T, 2]`` and headings ``[A, T]`` of the actors."""
    c = np.asarray(scene.center_xy, dtype=np.float64).reshape(-1, 2)
    vel = np.asarray(scene.velocity_xy, dtype=np.float64).reshape(-1, 2)
    yaw = np.asarray(scene.yaw, dtype=np.float64).reshape(-1)
    n_a, n_t = len(c), len(plan.t)
    xy = c[:, None, :] + vel[:, None, :] * plan.t[None, :, None]  # constant velocity
    head = np.repeat(yaw[:, None], n_t, axis=1)
    if scene.path_xy is None or scene.path_step_m is None or n_a == 0:
        return xy, head
    step = np.asarray(scene.path_step_m, dtype=np.float64).reshape(-1)
    on_path = step > 0
    if not on_path.any():
        return xy, head
    idx = np.flatnonzero(on_path)
    path = np.asarray(scene.path_xy, dtype=np.float64)[idx]  # [M, P, 2]
    speed = np.hypot(vel[idx, 0], vel[idx, 1])
    sub = Scene(
        ego_speed_mps=scene.ego_speed_mps,
        center_xy=c[idx],
        size_lw=np.zeros((len(idx), 2)),
        yaw=yaw[idx],
        velocity_xy=vel[idx],
        accel_mps2=None if scene.accel_mps2 is None else np.asarray(scene.accel_mps2).reshape(-1)[idx],
        release_in_m=None if scene.release_in_m is None else np.asarray(scene.release_in_m).reshape(-1)[idx],
        release_speed_mps=(
            None if scene.release_speed_mps is None else np.asarray(scene.release_speed_mps).reshape(-1)[idx]
        ),
        is_walker=None if scene.is_walker is None else np.asarray(scene.is_walker).reshape(-1)[idx],
    )
    d = _travel(sub, plan, p, speed)  # [M, T]
    pxy, phead = _path_track(np.ascontiguousarray(path), step[idx], d, yaw[idx])
    xy[idx] = pxy
    head[idx] = phead
    return xy, head


@numba.njit(cache=True, nogil=True)
def _path_track(path, step, d, yaw):
    """Points ``[M, T, 2]`` at distances ``d [M, T]`` along polylines ``path [M, P, 2]`` sampled every
    ``step [M]`` (held at the end), and the heading of the segment there (carried over zero-length segments,
    ``yaw`` before any)."""
    n_m, n_t = d.shape
    n_p = path.shape[1]
    xy = np.empty((n_m, n_t, 2))
    head = np.empty((n_m, n_t))
    seg_head = np.empty(n_p - 1)
    for m in range(n_m):
        last = yaw[m]
        for k in range(n_p - 1):
            dx, dy = path[m, k + 1, 0] - path[m, k, 0], path[m, k + 1, 1] - path[m, k, 1]
            if dx * dx + dy * dy > 1e-12:
                last = math.atan2(dy, dx)
            seg_head[k] = last
        for t in range(n_t):
            f = min(max(d[m, t] / step[m], 0.0), n_p - 1.000001)
            i0 = int(f)
            w = f - i0
            xy[m, t, 0] = path[m, i0, 0] * (1.0 - w) + path[m, i0 + 1, 0] * w
            xy[m, t, 1] = path[m, i0, 1] * (1.0 - w) + path[m, i0 + 1, 1] * w
            head[m, t] = seg_head[min(i0, n_p - 2)]
    return xy, head


# ------------------------------------------------------------------------------------------ together
def compute_conflicts(scene: Scene, p: ConflictParams) -> Conflicts:
    """Time to conflict, smallest gap and current gap of every actor against the counterfactual ego."""
    plan = ego_plan(scene, p)
    ego_l = p.ego_length_m if scene.ego_length_m is None else float(scene.ego_length_m)
    ego_w = p.ego_width_m if scene.ego_width_m is None else float(scene.ego_width_m)
    r2c = p.rear_to_center_m if scene.rear_to_center_m is None else float(scene.rear_to_center_m)
    size = np.abs(np.asarray(scene.size_lw, dtype=np.float64).reshape(-1, 2))
    n_a = len(size)
    t = plan.t
    if n_a == 0:
        z = np.zeros(0)
        return Conflicts(z, z, z, z, z, np.zeros(0, dtype=bool), z, z, plan)
    axy, ahead = actor_tracks(scene, plan, p)
    ec, es = np.cos(plan.heading), np.sin(plan.heading)
    ex = plan.xy[:, 0] + r2c * ec
    ey = plan.xy[:, 1] + r2c * es
    hl, hw = 0.5 * size[:, 0], 0.5 * size[:, 1]
    finite = (
        np.isfinite(axy).all(axis=(1, 2)) & np.isfinite(ahead).all(axis=1) & np.isfinite(size).all(axis=1)
    )
    axy = np.where(finite[:, None, None], axy, 1e6)
    ahead = np.where(finite[:, None], ahead, 0.0)
    gap = _gap_kernel(
        ex, ey, ec, es, 0.5 * ego_l, 0.5 * ego_w,
        np.ascontiguousarray(axy[..., 0]), np.ascontiguousarray(axy[..., 1]),
        np.cos(ahead), np.sin(ahead), np.where(finite, hl, 0.0), np.where(finite, hw, 0.0), p.cull_m,
    )  # fmt: skip
    # current gap: the real ego (heading 0) against the actor's real box
    c0 = np.asarray(scene.center_xy, dtype=np.float64).reshape(-1, 2)
    yaw0 = np.where(np.isfinite(np.asarray(scene.yaw, dtype=np.float64).reshape(-1)), scene.yaw, 0.0)
    now = _gap_kernel(
        np.array([r2c]), np.zeros(1), np.ones(1), np.zeros(1), 0.5 * ego_l, 0.5 * ego_w,
        np.where(finite, c0[:, 0], 1e6)[:, None], np.where(finite, c0[:, 1], 1e6)[:, None],
        np.cos(yaw0)[:, None], np.sin(yaw0)[:, None], np.where(finite, hl, 0.0), np.where(finite, hw, 0.0),
        1e9,
    )[:, 0]  # fmt: skip
    vel = np.asarray(scene.velocity_xy, dtype=np.float64).reshape(-1, 2)
    speed = np.hypot(vel[:, 0], vel[:, 1])
    moving = speed > 0.5
    if scene.release_in_m is not None:
        moving |= np.isfinite(np.asarray(scene.release_in_m, dtype=np.float64).reshape(-1))
    margin = np.where(moving, p.margin_moving_m, p.margin_m)
    ttc, gmin, kmin = _summarise(gap, t, margin)
    ttc = np.where(finite, ttc, np.inf)
    shielded = _shielded(ttc, np.interp(np.where(np.isfinite(ttc), ttc, 0.0), t, plan.s), size, p)
    ttc = np.where(shielded, np.inf, ttc)
    # moving walkers: what if it stopped where it is
    ttc_stop = np.full(n_a, np.inf)
    walker = (
        np.asarray(scene.is_walker, dtype=bool).reshape(-1)
        if scene.is_walker is not None
        else np.zeros(n_a, bool)
    )
    w = np.flatnonzero(walker & (speed > 0.3) & finite)
    if len(w):
        n_t = len(t)

        def rep(v: np.ndarray) -> np.ndarray:
            return np.repeat(v[:, None], n_t, axis=1)

        still = _gap_kernel(
            ex, ey, ec, es, 0.5 * ego_l, 0.5 * ego_w, rep(c0[w, 0]), rep(c0[w, 1]),
            rep(np.cos(yaw0[w])), rep(np.sin(yaw0[w])), hl[w], hw[w], p.cull_m,
        )  # fmt: skip
        ttc_stop[w] = _summarise(still, t, np.full(len(w), p.margin_m))[0]
    closing = (gap[:, 0] - gap[:, 1]) / (t[1] - t[0]) if len(t) > 1 else np.zeros(n_a)
    gap_now = np.where(finite, now, np.inf)
    return Conflicts(
        ttc,
        np.where(finite, gmin, np.inf),
        t[kmin],
        gap_now,
        np.where(finite, closing, 0.0),
        shielded,
        margin,
        ttc_stop,
        plan,
    )


@numba.njit(cache=True, nogil=True)
def _summarise(gap, t, margin):
    """Per row of ``gap [A, T]``: the first time it falls to ``margin [A]`` (interpolated between samples;
    0 when it starts there, inf when never), its minimum (>= 0) and the index of that minimum."""
    n_a, n_t = gap.shape
    ttc = np.full(n_a, np.inf)
    gmin = np.empty(n_a)
    kmin = np.zeros(n_a, dtype=np.int64)
    for a in range(n_a):
        m = margin[a]
        best = gap[a, 0]
        for k in range(n_t):
            g = gap[a, k]
            if g < best:
                best, kmin[a] = g, k
            if ttc[a] == np.inf and g <= m:
                if k == 0:
                    ttc[a] = 0.0
                else:
                    g0 = gap[a, k - 1]
                    frac = (g0 - m) / (g0 - g) if g0 > g else 1.0
                    ttc[a] = t[k - 1] + min(max(frac, 0.0), 1.0) * (t[k] - t[k - 1])
        gmin[a] = max(best, 0.0)
    return ttc, gmin, kmin


def _shielded(ttc: np.ndarray, s_conf: np.ndarray, size: np.ndarray, p: ConflictParams) -> np.ndarray:
    """``[A]`` bool: actors in conflict that the ego meets only after (and beyond) a wide nearer one."""
    hit = np.isfinite(ttc)
    if hit.sum() < 2:
        return np.zeros(len(ttc), dtype=bool)
    extent = np.min(size, axis=1)  # what a shielder covers along the path, at least
    shielder = hit & (extent >= p.shield_min_width_m)
    earlier = ttc[None, :] < ttc[:, None]  # [B, A]: A met before B
    beyond = s_conf[:, None] >= s_conf[None, :] + extent[None, :]
    return hit & (earlier & beyond & shielder[None, :]).any(axis=1)


def stop_distance(annotation: dict) -> float:
    """Distance from the ego front to the next stop line on the route when its light is red or yellow
    (NaN otherwise), from the annotation's ``route_next_*`` keys."""
    if "route_next_stop_distance_m" not in annotation or "route_next_light_state" not in annotation:
        return math.nan
    state = int(np.asarray(annotation["route_next_light_state"]))
    if state not in (int(LightState.RED), int(LightState.YELLOW)):
        return math.nan
    return float(np.asarray(annotation["route_next_stop_distance_m"]))


def scene_from_annotation(annotation: dict, ego_speed_mps: float) -> Scene:
    """A :class:`Scene` from an annotation mapping (optional keys used when present)."""
    a = annotation

    def opt(key: str) -> np.ndarray | None:
        return np.asarray(a[key]) if key in a else None

    beh = opt("actor_behavior")
    ego_size = opt("ego_size_lwh")
    ego_c = opt("ego_center_ego")
    return Scene(
        ego_speed_mps=float(ego_speed_mps),
        center_xy=np.asarray(a["actor_center_ego"])[:, :2],
        size_lw=np.asarray(a["actor_size_lwh"])[:, :2],
        yaw=np.asarray(a["actor_yaw_ego"]),
        velocity_xy=np.asarray(a["actor_velocity_ego"]),
        route_xy=opt("route_ahead_ego"),
        route_limit_mps=opt("route_ahead_speed_limit_mps"),
        future_xy=opt("future_xy"),
        future_valid=opt("future_valid"),
        stop_distance_m=stop_distance(a),
        accel_mps2=opt("actor_accel_mps2"),
        path_xy=opt("actor_path_ego"),
        path_step_m=opt("actor_path_step_m"),
        release_in_m=opt("actor_release_in_m"),
        release_speed_mps=opt("actor_release_speed_mps"),
        is_walker=None if beh is None else beh == 2,
        ego_length_m=None if ego_size is None else float(ego_size[0]),
        ego_width_m=None if ego_size is None else float(ego_size[1]),
        rear_to_center_m=None if ego_c is None else float(ego_c[0]),
    )
