"""Risk vs outcome: does the predicted risk on the ego's path rise before an infraction, and how early?

Inputs are closed-loop route artefacts (``routes/<route_id>.json`` of ``riskdistill eval closed-loop``): the
``path_risk`` series (time, max predicted risk in a corridor along the planned path) and the infraction
``events``. Definitions (``docs/metrics.md``):

* **lead time** of an event at ``t_e``: ``t_e - t*`` where ``t*`` is the first sample time in the window
  ``[t_e - window_s, t_e]`` at which the path risk is ``>= threshold``; ``None`` (a miss) when it never is.
* **detection rate**: the share of events with a lead time.
* **pre-event risk** vs **background risk**: mean path risk inside the windows before events vs at every
  other sample of the same routes.
* **false-alarm rate**: the share of background samples with risk ``>= threshold``.
* **warning AUC**: ROC AUC of the path risk at a sample as a score for "an event follows within
  ``window_s``", pooled over every sample of every route with a path-risk series.

A ``path_risk`` series is stored either in full (``{"time_s": [...], "risk": [...]}``, the closed-loop
route files) or compacted without loss for result folders (:func:`compact_path_risk`: a regular time axis
``t0_s``/``dt_s``/``n`` and the risk run-length encoded, about 10x smaller since the plan, and so the risk,
changes only at the planning rate); :func:`path_risk_series` reads both, and every statistic here is the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from riskdistill.evaluation.risk_metrics import compute_auc

DEFAULT_THRESHOLD = 0.5
DEFAULT_WINDOW_S = 5.0
#: Infractions analysed by default: the collisions (what a risk map should warn about).
DEFAULT_KINDS: tuple[str, ...] = ("collisions_pedestrian", "collisions_vehicle", "collisions_layout")


def compute_lead_time(
    time_s: Any,
    risk: Any,
    event_time_s: float,
    threshold: float = DEFAULT_THRESHOLD,
    window_s: float = DEFAULT_WINDOW_S,
) -> float | None:
    """Seconds between the first ``risk >= threshold`` in ``[event - window_s, event]`` and the event."""
    t = np.asarray(time_s, dtype=np.float64)
    r = np.asarray(risk, dtype=np.float64)
    if t.shape != r.shape or t.ndim != 1:
        raise ValueError(f"time_s and risk must be 1-D and equally long, got {t.shape} and {r.shape}")
    sel = (t >= event_time_s - window_s - 1e-9) & (t <= event_time_s + 1e-9) & (r >= threshold)
    if not sel.any():
        return None
    return float(event_time_s - t[sel].min())


def compact_path_risk(path_risk: dict[str, Any] | None) -> dict[str, Any] | None:
    """The same series in less space: ``{"t0_s", "dt_s", "n", "risk_runs": [[risk, count], ...]}`` when the
    time axis is regular (it is rebuilt exactly, to the stored 3 decimals), else the full form unchanged.
    Idempotent; ``None`` stays ``None``."""
    if not path_risk or "risk_runs" in path_risk:
        return path_risk
    t, r = path_risk_series(path_risk)
    if len(t) < 2:
        return {"time_s": t.tolist(), "risk": r.tolist()}
    t0, dt = float(t[0]), round(float(t[1] - t[0]), 6)
    if not np.array_equal(np.round(t0 + dt * np.arange(len(t)), 3), t):
        return {"time_s": t.tolist(), "risk": r.tolist()}
    change = np.flatnonzero(np.diff(r) != 0) + 1
    starts = np.concatenate([[0], change])
    counts = np.diff(np.concatenate([starts, [len(r)]]))
    runs = [[float(r[i]), int(c)] for i, c in zip(starts, counts, strict=True)]
    return {"t0_s": t0, "dt_s": dt, "n": len(t), "risk_runs": runs}


def path_risk_series(path_risk: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(time_s, risk)`` of a ``path_risk`` entry in either stored form (see the module docstring)."""
    if "risk_runs" in path_risk:
        try:
            n = int(path_risk["n"])
            t = np.round(float(path_risk["t0_s"]) + float(path_risk["dt_s"]) * np.arange(n), 3)
            values = [float(v) for v, _ in path_risk["risk_runs"]]
            counts = [int(c) for _, c in path_risk["risk_runs"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"path_risk: malformed compact series ({type(exc).__name__}: {exc})") from exc
        r = np.repeat(np.asarray(values, dtype=np.float64), counts)
        if len(r) != n:
            raise ValueError(f"path_risk: risk_runs cover {len(r)} samples, n says {n}")
        return t, r
    try:
        t = np.asarray(path_risk["time_s"], dtype=np.float64)
        r = np.asarray(path_risk["risk"], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"path_risk: missing field {exc}; expected time_s and risk, or risk_runs") from exc
    if t.shape != r.shape or t.ndim != 1:
        raise ValueError(f"path_risk: time_s and risk must be 1-D and equally long, got {t.shape}, {r.shape}")
    return t, r


def pre_event_mask(
    time_s: Any, event_times_s: Iterable[float], window_s: float = DEFAULT_WINDOW_S
) -> np.ndarray:
    """bool mask of the samples that lie in ``[t_e - window_s, t_e]`` of some event."""
    t = np.asarray(time_s, dtype=np.float64)
    mask = np.zeros(t.shape, dtype=bool)
    for te in event_times_s:
        mask |= (t >= te - window_s - 1e-9) & (t <= te + 1e-9)
    return mask


def analyse_route(
    route: dict[str, Any],
    threshold: float = DEFAULT_THRESHOLD,
    window_s: float = DEFAULT_WINDOW_S,
    kinds: Sequence[str] = DEFAULT_KINDS,
) -> dict[str, Any] | None:
    """Per-event lead times and the route's samples split into pre-event / background; None without a
    path-risk series."""
    pr = route.get("path_risk")
    if not pr:
        return None
    t, r = path_risk_series(pr)
    if not len(t):
        return None
    events = [e for e in route.get("events", []) if e["kind"] in kinds]
    rows = []
    for e in events:
        win = (t >= e["time_s"] - window_s - 1e-9) & (t <= e["time_s"] + 1e-9)
        rows.append(
            {
                "route_id": route.get("route_id"),
                "kind": e["kind"],
                "time_s": e["time_s"],
                "lead_time_s": compute_lead_time(t, r, e["time_s"], threshold, window_s),
                "max_risk_in_window": float(r[win].max()) if win.any() else None,
                "mean_risk_in_window": float(r[win].mean()) if win.any() else None,
            }
        )
    pre = pre_event_mask(t, [e["time_s"] for e in events], window_s)
    return {"events": rows, "risk": r, "pre_event": pre}


def summarise_risk_outcome(
    routes: Iterable[dict[str, Any]],
    threshold: float = DEFAULT_THRESHOLD,
    window_s: float = DEFAULT_WINDOW_S,
    kinds: Sequence[str] = DEFAULT_KINDS,
) -> dict[str, Any]:
    """Aggregate over routes (see the module docstring for the definitions)."""
    events: list[dict[str, Any]] = []
    risks, labels = [], []
    n_routes = 0
    for route in routes:
        a = analyse_route(route, threshold, window_s, kinds)
        if a is None:
            continue
        n_routes += 1
        events += a["events"]
        risks.append(a["risk"])
        labels.append(a["pre_event"])
    out: dict[str, Any] = {
        "threshold": threshold,
        "window_s": window_s,
        "kinds": list(kinds),
        "n_routes_with_risk": n_routes,
        "n_events": len(events),
        "detection_rate": None,
        "lead_time_mean_s": None,
        "lead_time_median_s": None,
        "pre_event_risk_mean": None,
        "background_risk_mean": None,
        "false_alarm_rate": None,
        "warning_auc": None,
        "events": events,
    }
    if not n_routes:
        return out
    r = np.concatenate(risks)
    pre = np.concatenate(labels)
    leads = [e["lead_time_s"] for e in events if e["lead_time_s"] is not None]
    if events:
        out["detection_rate"] = len(leads) / len(events)
    if leads:
        out["lead_time_mean_s"] = float(np.mean(leads))
        out["lead_time_median_s"] = float(np.median(leads))
    if pre.any():
        out["pre_event_risk_mean"] = float(r[pre].mean())
    if (~pre).any():
        out["background_risk_mean"] = float(r[~pre].mean())
        out["false_alarm_rate"] = float((r[~pre] >= threshold).mean())
    out["warning_auc"] = compute_auc(r, pre)
    return out
