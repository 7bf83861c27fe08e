"""Bench2Drive's Comfortness and Efficiency for one route.

Comfortness (bench2drive.md, nuPlan bounds): the 10 Hz ego log is cut into 20-step segments; in each,
the kinematics are smoothed / differentiated with a Savitzky-Golay filter (window 7, order 2), and the
segment is comfortable if, at every step,

* longitudinal acceleration is in (-4.05, 2.40) m/s^2,
* |lateral acceleration| < 4.89 m/s^2,
* |jerk| < 8.37 m/s^3 (derivative of the acceleration magnitude, as nuPlan / Bench2Drive),
* |longitudinal jerk| < 4.13 m/s^3,
* |yaw acceleration| < 1.93 rad/s^2,
* |yaw rate| < 0.95 rad/s.

The route value is the share of comfortable segments. Bench2Drive reads accelerations from CARLA; here
they are derived from the logged poses: world velocity and acceleration are Savitzky-Golay derivatives of
the positions, and are expressed in the ego's body frame (x forward, y left) using the smoothed heading.
The projection of the world acceleration onto the body axes equals ``d(v_body)/dt`` plus the rotation
terms (``a_lon = dv_lon/dt - yaw_rate * v_lat``, ``a_lat = dv_lat/dt + yaw_rate * v_lon``). Yaw rate and
yaw acceleration are the first and second derivatives of the unwrapped heading. (Bench2Drive's script
bounds the smoothed yaw *rate* again in place of the yaw acceleration; this uses the real derivative.)

Efficiency (CARLA ``MinimumSpeedRouteTest`` as Bench2Drive records it): the route is split into 20
checkpoints by distance; per checkpoint, 100 x mean ego speed / mean surrounding-traffic speed over the
samples that had traffic (100 when none had); checkpoint values above 1000 are discarded and the route
value is the mean of the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.signal import savgol_filter

SAVGOL_WINDOW = 7
SAVGOL_ORDER = 2
SEGMENT_LEN = 20
LOG_DT_S = 0.1

#: (low, high) open bounds of a comfortable step; nuPlan's values as used by Bench2Drive.
COMFORT_BOUNDS: dict[str, tuple[float, float]] = {
    "lon_acc": (-4.05, 2.40),  # m/s^2
    "lat_acc": (-4.89, 4.89),  # m/s^2
    "jerk": (-8.37, 8.37),  # m/s^3
    "lon_jerk": (-4.13, 4.13),  # m/s^3
    "yaw_acc": (-1.93, 1.93),  # rad/s^2
    "yaw_rate": (-0.95, 0.95),  # rad/s
}

EFFICIENCY_CHECKPOINTS = 20
EFFICIENCY_MAX_PCT = 1000.0  # checkpoint values above this are discarded
EFFICIENCY_NO_TRAFFIC_PCT = 100.0

_MIN_SAMPLES = 3  # a quadratic fit needs three points


def _as_1d(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _savgol(y: np.ndarray, deriv: int = 0, dt_s: float = LOG_DT_S) -> np.ndarray:
    """Savitzky-Golay smoothing / derivative, window 7 (or the longest odd window that fits), order 2."""
    window = min(SAVGOL_WINDOW, len(y))
    if window % 2 == 0:
        window -= 1
    return savgol_filter(y, window_length=window, polyorder=SAVGOL_ORDER, deriv=deriv, delta=dt_s)


def compute_comfort_signals(
    x_m: Any, y_m: Any, yaw_rad: Any, dt_s: float = LOG_DT_S
) -> dict[str, np.ndarray]:
    """The six bounded kinematic signals of one stretch of log, keyed like :data:`COMFORT_BOUNDS`.

    Also returns ``v_lon`` / ``v_lat`` (body-frame velocity, m/s) for inspection. Needs at least 3 samples.
    """
    x, y, yaw = _as_1d("x_m", x_m), _as_1d("y_m", y_m), _as_1d("yaw_rad", yaw_rad)
    if not len(x) == len(y) == len(yaw):
        raise ValueError(f"x_m, y_m and yaw_rad differ in length: {len(x)}, {len(y)}, {len(yaw)}")
    if len(x) < _MIN_SAMPLES:
        raise ValueError(f"comfort needs at least {_MIN_SAMPLES} samples, got {len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(yaw).all()):
        raise ValueError("x_m, y_m and yaw_rad must be finite")
    if not dt_s > 0.0:
        raise ValueError(f"dt_s must be positive, got {dt_s}")

    heading = np.unwrap(yaw)
    psi = _savgol(heading)
    cos_psi, sin_psi = np.cos(psi), np.sin(psi)

    vx, vy = _savgol(x, 1, dt_s), _savgol(y, 1, dt_s)
    ax, ay = _savgol(x, 2, dt_s), _savgol(y, 2, dt_s)
    v_lon = vx * cos_psi + vy * sin_psi
    v_lat = -vx * sin_psi + vy * cos_psi
    lon_acc = _savgol(ax * cos_psi + ay * sin_psi)
    lat_acc = _savgol(-ax * sin_psi + ay * cos_psi)
    acc_mag = _savgol(np.hypot(lon_acc, lat_acc))
    return {
        "v_lon": v_lon,
        "v_lat": v_lat,
        "lon_acc": lon_acc,
        "lat_acc": lat_acc,
        "jerk": _savgol(acc_mag, 1, dt_s),
        "lon_jerk": _savgol(lon_acc, 1, dt_s),
        "yaw_acc": _savgol(heading, 2, dt_s),
        "yaw_rate": _savgol(heading, 1, dt_s),
    }


def violated_bounds(signals: dict[str, np.ndarray]) -> list[str]:
    """Names of the :data:`COMFORT_BOUNDS` that some step of ``signals`` leaves (strict inequalities)."""
    out = []
    for name, (low, high) in COMFORT_BOUNDS.items():
        values = signals[name]
        if not bool(np.all((values > low) & (values < high))):
            out.append(name)
    return out


def segment_bounds(n_samples: int, segment_len: int = SEGMENT_LEN) -> list[tuple[int, int]]:
    """``[start, stop)`` of the comfort segments of a log, as Bench2Drive cuts it.

    A log of at most ``segment_len`` samples is one segment; a longer log is cut into consecutive
    ``segment_len`` chunks and a trailing shorter chunk is dropped.
    """
    if segment_len < _MIN_SAMPLES:
        raise ValueError(f"segment_len must be at least {_MIN_SAMPLES}, got {segment_len}")
    if n_samples <= segment_len:
        return [(0, n_samples)]
    return [(s, s + segment_len) for s in range(0, n_samples - segment_len + 1, segment_len)]


def compute_comfort(
    x_m: Any, y_m: Any, yaw_rad: Any, dt_s: float = LOG_DT_S, segment_len: int = SEGMENT_LEN
) -> float:
    """Share in [0, 1] of comfortable ``segment_len``-step segments of an ego log (see the module doc).

    ``x_m``, ``y_m`` are world positions and ``yaw_rad`` the heading (any branch; it is unwrapped), sampled
    every ``dt_s`` seconds. Raises ``ValueError`` for fewer than 3 samples: callers store ``None`` then.
    """
    x, y, yaw = _as_1d("x_m", x_m), _as_1d("y_m", y_m), _as_1d("yaw_rad", yaw_rad)
    if not len(x) == len(y) == len(yaw):
        raise ValueError(f"x_m, y_m and yaw_rad differ in length: {len(x)}, {len(y)}, {len(yaw)}")
    if len(x) < _MIN_SAMPLES:
        raise ValueError(f"comfort needs at least {_MIN_SAMPLES} samples, got {len(x)}")
    segments = segment_bounds(len(x), segment_len)
    comfortable = 0
    for start, stop in segments:
        signals = compute_comfort_signals(x[start:stop], y[start:stop], yaw[start:stop], dt_s)
        comfortable += not violated_bounds(signals)
    return comfortable / len(segments)


def compute_checkpoint_efficiency(
    progress_m: Any,
    ego_speed_mps: Any,
    traffic_speed_mps: Any,
    route_length_m: float,
    n_checkpoints: int = EFFICIENCY_CHECKPOINTS,
) -> np.ndarray:
    """Efficiency (%) of each of the ``n_checkpoints`` equal-distance stretches of a route.

    A sample belongs to checkpoint ``floor(progress / (route_length / n))`` (clipped to the route).
    ``traffic_speed_mps`` is the mean speed of the surrounding traffic at that sample, NaN when there is
    none. Per checkpoint: ``100 * mean(ego speed) / mean(traffic speed)`` over its samples that had
    traffic; 100 when none had (or the traffic stood still); NaN when the ego logged no sample there.
    Values are not yet cut at 1000 %.
    """
    progress = _as_1d("progress_m", progress_m)
    ego = _as_1d("ego_speed_mps", ego_speed_mps)
    traffic = _as_1d("traffic_speed_mps", traffic_speed_mps)
    if not len(progress) == len(ego) == len(traffic):
        raise ValueError(
            f"progress_m, ego_speed_mps and traffic_speed_mps differ in length: "
            f"{len(progress)}, {len(ego)}, {len(traffic)}"
        )
    if not route_length_m > 0.0:
        raise ValueError(f"route_length_m must be positive, got {route_length_m}")
    if n_checkpoints < 1:
        raise ValueError(f"n_checkpoints must be >= 1, got {n_checkpoints}")
    if not (np.isfinite(progress).all() and np.isfinite(ego).all()):
        raise ValueError("progress_m and ego_speed_mps must be finite")

    step = route_length_m / n_checkpoints
    idx = np.clip(np.floor(progress / step).astype(np.int64), 0, n_checkpoints - 1)
    has_traffic = np.isfinite(traffic)
    out = np.full(n_checkpoints, np.nan)
    for k in range(n_checkpoints):
        in_k = idx == k
        if not in_k.any():
            continue
        with_traffic = in_k & has_traffic
        mean_traffic = float(traffic[with_traffic].mean()) if with_traffic.any() else 0.0
        if mean_traffic > 0.0:
            out[k] = 100.0 * float(ego[with_traffic].mean()) / mean_traffic
        else:
            out[k] = EFFICIENCY_NO_TRAFFIC_PCT
    return out


def compute_efficiency(
    progress_m: Any,
    ego_speed_mps: Any,
    traffic_speed_mps: Any,
    route_length_m: float,
    n_checkpoints: int = EFFICIENCY_CHECKPOINTS,
) -> float | None:
    """Route Efficiency (%): mean of the checkpoint values, discarding those above 1000 %.

    See :func:`compute_checkpoint_efficiency` for the checkpoint values. ``None`` when there are no samples
    (or every checkpoint value was discarded).
    """
    values = compute_checkpoint_efficiency(
        progress_m, ego_speed_mps, traffic_speed_mps, route_length_m, n_checkpoints
    )
    kept = values[np.isfinite(values) & (values <= EFFICIENCY_MAX_PCT)]
    return float(kept.mean()) if kept.size else None
