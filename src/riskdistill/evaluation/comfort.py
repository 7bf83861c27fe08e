"""Bench2Drive's Comfortness (Driving Smoothness) and Efficiency, computed the way its tool computes them.

Bench2Drive's ``tools/efficiency_smoothness_benchmark.py`` reads two things per route: the route's
``min_speed_infractions`` messages in the results file, and a ``metric_info.json`` that the agent wrote with
the ego's CARLA state at every step (``acceleration`` m/s^2 and ``angular_velocity`` deg/s as CARLA reports
them, ``forward_vector``, ``right_vector``, ``location``, ``rotation``). This module computes the same
numbers from the same data (:mod:`riskdistill.evaluation.bench2drive_io` writes it), so that running the tool
on an output folder reproduces ``summary.json``.

**Comfortness** of a route: the samples are cut into consecutive chunks of 20 (a trailing shorter chunk is
dropped; a route of at most 20 samples is one chunk). A chunk is comfortable when, after Savitzky-Golay
smoothing (window ``min(7, len)``, order 2; derivatives with spacing 0.1 s), every step satisfies (nuPlan's
bounds, strict inequalities):

* longitudinal acceleration ``acceleration . forward_vector`` in (-4.05, 2.40),
* lateral acceleration ``acceleration . right_vector`` in (-4.89, 4.89),
* jerk (derivative of the smoothed ``|acceleration|``) in (-8.37, 8.37),
* longitudinal jerk in (-4.13, 4.13),
* "yaw acceleration" in (-1.93, 1.93) and yaw rate in (-0.95, 0.95).

As in the tool, both yaw terms are the smoothed z angular velocity after ``_phase_unwrap`` (the "yaw
acceleration" is not differentiated), and the angular velocity is in CARLA's deg/s while the bounds are
nuPlan's rad/s: any sustained turn faster than 0.95 deg/s makes a chunk uncomfortable. The route value is the
share of comfortable chunks; the benchmark value the mean over all routes (x 100).

**Efficiency** of a route: the percentages of its min-speed messages (first ``\\b\\d+\\.?\\d*%`` in the text),
dropping those above 1000, averaged; routes without min-speed messages have none. The benchmark value is the
mean over the routes that have one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy.signal import savgol_filter

SAVGOL_WINDOW = 7
SAVGOL_ORDER = 2
SEGMENT_LEN = 20
LOG_DT_S = 0.1

#: (low, high) open bounds of a comfortable step, as Bench2Drive's tool applies them.
COMFORT_BOUNDS: dict[str, tuple[float, float]] = {
    "lon_acc": (-4.05, 2.40),  # m/s^2
    "lat_acc": (-4.89, 4.89),  # m/s^2
    "jerk": (-8.37, 8.37),  # m/s^3
    "lon_jerk": (-4.13, 4.13),  # m/s^3
    "yaw_acc": (-1.93, 1.93),  # applied to the smoothed angular velocity (deg/s), see the module doc
    "yaw_rate": (-0.95, 0.95),  # likewise
}

EFFICIENCY_MAX_PCT = 1000.0  # checkpoint values above this are discarded
_PERCENT = re.compile(r"\b\d+\.?\d*%")
_MIN_SAMPLES = 3  # a quadratic Savitzky-Golay fit needs three points


def _vectors(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise ValueError(f"{name} must have shape [N, 3], got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite")
    return arr


def _phase_unwrap(values: np.ndarray) -> np.ndarray:
    """Subtract multiples of 2 pi so that consecutive values (last axis) differ by at most pi (nuPlan's
    helper)."""
    adjust = np.zeros_like(values)
    adjust[..., 1:] = np.cumsum(np.round(np.diff(values, axis=-1) / (2.0 * np.pi)), axis=-1)
    return values - 2.0 * np.pi * adjust


def _chunk_signals(
    acc: np.ndarray, ang: np.ndarray, fwd: np.ndarray, right: np.ndarray, dt_s: float
) -> dict[str, np.ndarray]:
    """The six signals of chunks of equal length, all at once: inputs ``[C, N, >=2]`` (``ang`` ``[C, N, 3]``),
    outputs ``[C, N]``. Each chunk is smoothed on its own (``savgol_filter`` along the last axis)."""
    n = acc.shape[1]
    window = min(SAVGOL_WINDOW, n)
    if window < _MIN_SAMPLES:
        raise ValueError(f"comfort needs at least {_MIN_SAMPLES} samples, got {n}")

    def smooth(y: np.ndarray, deriv: int = 0) -> np.ndarray:
        return savgol_filter(
            y, window_length=window, polyorder=SAVGOL_ORDER, deriv=deriv, delta=dt_s, axis=-1
        )

    yaw_rate = _phase_unwrap(ang[..., 2])
    lon_acc = smooth(acc[..., 0] * fwd[..., 0] + acc[..., 1] * fwd[..., 1])
    lat_acc = smooth(acc[..., 0] * right[..., 0] + acc[..., 1] * right[..., 1])
    magnitude = smooth(np.hypot(acc[..., 0], acc[..., 1]))
    smooth_yaw = smooth(yaw_rate)
    return {
        "lon_acc": lon_acc,
        "lat_acc": lat_acc,
        "jerk": smooth(magnitude, deriv=1),
        "lon_jerk": smooth(lon_acc, deriv=1),
        "yaw_acc": smooth_yaw,
        "yaw_rate": smooth_yaw.copy(),
    }


def _sample_arrays(
    acceleration: Any, angular_velocity: Any, forward_vector: Any, right_vector: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four sample arrays as float64 ``[N, 3]``, checked for shape, finiteness and equal length."""
    arrays = (
        _vectors("acceleration", acceleration),
        _vectors("angular_velocity", angular_velocity),
        _vectors("forward_vector", forward_vector),
        _vectors("right_vector", right_vector),
    )
    if len({len(a) for a in arrays}) != 1:
        raise ValueError("sample arrays differ in length: " + ", ".join(str(len(a)) for a in arrays))
    return arrays


def compute_comfort_signals(
    acceleration: Any, angular_velocity: Any, forward_vector: Any, right_vector: Any, dt_s: float = LOG_DT_S
) -> dict[str, np.ndarray]:
    """The six bounded signals of one chunk, keyed like :data:`COMFORT_BOUNDS` (inputs ``[N, 3]``, N >= 3)."""
    acc, ang, fwd, right = _sample_arrays(acceleration, angular_velocity, forward_vector, right_vector)
    signals = _chunk_signals(acc[None], ang[None], fwd[None], right[None], dt_s)
    return {name: v[0] for name, v in signals.items()}


def violated_bounds(signals: dict[str, np.ndarray]) -> list[str]:
    """Names of the :data:`COMFORT_BOUNDS` that some step of ``signals`` leaves (strict inequalities)."""
    return [
        name
        for name, (low, high) in COMFORT_BOUNDS.items()
        if not bool(np.all((signals[name] > low) & (signals[name] < high)))
    ]


def segment_bounds(n_samples: int, segment_len: int = SEGMENT_LEN) -> list[tuple[int, int]]:
    """``[start, stop)`` of the comfort chunks: one chunk for at most ``segment_len`` samples, otherwise the
    full ``segment_len`` chunks (a shorter trailing chunk is dropped)."""
    if n_samples <= segment_len:
        return [(0, n_samples)]
    return [(s, s + segment_len) for s in range(0, n_samples - segment_len + 1, segment_len)]


def compute_comfort(
    acceleration: Any, angular_velocity: Any, forward_vector: Any, right_vector: Any, dt_s: float = LOG_DT_S
) -> float:
    """Share in [0, 1] of comfortable chunks of a route's samples (see the module doc); ValueError below 3.
    The chunks have one length (:func:`segment_bounds`), so they are smoothed together in one batch."""
    acc, ang, fwd, right = _sample_arrays(acceleration, angular_velocity, forward_vector, right_vector)
    chunks = segment_bounds(len(acc))
    start, stop = chunks[0]
    n_chunks, length = len(chunks), stop - start

    def stacked(a: np.ndarray) -> np.ndarray:  # [C, length, 3]: the chunks, trailing rest dropped
        return a[: n_chunks * length].reshape(n_chunks, length, a.shape[1])

    signals = _chunk_signals(stacked(acc), stacked(ang), stacked(fwd), stacked(right), dt_s)
    ok = np.ones(n_chunks, dtype=bool)
    for name, (low, high) in COMFORT_BOUNDS.items():
        ok &= np.all((signals[name] > low) & (signals[name] < high), axis=-1)
    return int(ok.sum()) / n_chunks


def min_speed_percent(message: str) -> float:
    """The checkpoint value of a min-speed message, read as Bench2Drive's tool reads it."""
    match = _PERCENT.search(message)
    if match is None:
        raise ValueError(f"no percentage in min-speed message {message!r}")
    return float(match.group().rstrip("%"))


def compute_efficiency(min_speed_messages: Iterable[str]) -> float | None:
    """Route Efficiency (%): mean of the message percentages up to 1000 %; None without any (Bench2Drive's
    tool skips a route without messages, and fails on one whose values are all above 1000 %)."""
    values = [min_speed_percent(m) for m in min_speed_messages]
    kept = [v for v in values if v <= EFFICIENCY_MAX_PCT]
    return sum(kept) / len(kept) if kept else None
