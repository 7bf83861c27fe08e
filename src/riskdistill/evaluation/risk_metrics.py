"""Risk-map metrics: a predicted BEV risk map against the teacher's, and the risk on the ego's planned path.

All functions are pure. Maps are ``[H, W]`` (or ``[N, H, W]`` for a stack of frames) on the shared
:class:`~riskdistill.geometry.BevGrid` layout (row 0 = front, col 0 = left), values in [0, 1].

* :func:`compute_risk_l1`: mean absolute difference over cells.
* :func:`compute_risk_kl`: KL(teacher || prediction) between the *spatial softmax* distributions
  ``P = softmax(map.ravel() / temperature)`` of each frame, in nats; the mean over frames.
* :func:`compute_risk_pearson`: Pearson correlation over the cells of a frame; the mean over the frames
  where both maps vary (a constant map has no correlation).
* :func:`compute_auc`: ROC AUC of a score for a binary label (Mann-Whitney U with mid-ranks for ties);
  :func:`compute_risk_auc` uses the predicted risk as the score for ``teacher risk > threshold``, pooled over
  every cell of every frame.
* :func:`compute_path_risk`: the largest predicted risk within a corridor along a planned path (closed loop).
* :func:`compute_student_hazard_recall`: how many of the teacher's hazards the predicted map finds (the
  study's diagnostic of the student's risk-map quality on bench).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from scipy.special import log_softmax
from scipy.stats import rankdata

from riskdistill.geometry import BevGrid

KL_TEMPERATURE = 0.1  # risk values live in [0, 1]; at tau = 1 every spatial softmax is nearly uniform
AUC_THRESHOLD = 0.5  # a teacher cell counts as risky above this
PATH_CORRIDOR_HALF_WIDTH_M = 1.0  # about half the ego's width
HAZARD_THRESHOLD = 0.5  # a teacher hazard: a connected region of cells at or above this


def _as_stack(name: str, x: Any) -> np.ndarray:
    """``[H, W]``, ``[N, H, W]`` or ``[N, 1, H, W]`` -> float64 ``[N, H, W]``."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{name} must be [H, W], [N, H, W] or [N, 1, H, W], got shape {np.shape(x)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _pair(pred: Any, teacher: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_stack("pred", pred), _as_stack("teacher", teacher)
    if p.shape != t.shape:
        raise ValueError(f"pred and teacher maps differ in shape: {p.shape} vs {t.shape}")
    return p, t


def compute_risk_l1(pred: Any, teacher: Any) -> float:
    """Mean ``|pred - teacher|`` over every cell of every frame."""
    p, t = _pair(pred, teacher)
    return float(np.abs(p - t).mean())


def compute_risk_kl_per_frame(pred: Any, teacher: Any, temperature: float = KL_TEMPERATURE) -> np.ndarray:
    """``[N]`` KL(P_teacher || P_pred) in nats, with ``P = softmax(map.ravel() / temperature)`` per frame."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p, t = _pair(pred, teacher)
    n = len(p)
    log_p = log_softmax(p.reshape(n, -1) / temperature, axis=1)
    log_t = log_softmax(t.reshape(n, -1) / temperature, axis=1)
    return np.sum(np.exp(log_t) * (log_t - log_p), axis=1)


def compute_risk_kl(pred: Any, teacher: Any, temperature: float = KL_TEMPERATURE) -> float:
    """Mean over frames of :func:`compute_risk_kl_per_frame`."""
    return float(compute_risk_kl_per_frame(pred, teacher, temperature).mean())


def compute_risk_pearson_per_frame(pred: Any, teacher: Any) -> np.ndarray:
    """``[N]`` Pearson correlation over the cells of each frame; NaN where either map is constant."""
    p, t = _pair(pred, teacher)
    n = len(p)
    a = p.reshape(n, -1) - p.reshape(n, -1).mean(axis=1, keepdims=True)
    b = t.reshape(n, -1) - t.reshape(n, -1).mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    out = np.full(n, np.nan)
    ok = den > 1e-12
    out[ok] = num[ok] / den[ok]
    return out


def compute_risk_pearson(pred: Any, teacher: Any) -> float | None:
    """Mean of :func:`compute_risk_pearson_per_frame` over the frames where it is defined (None if none)."""
    r = compute_risk_pearson_per_frame(pred, teacher)
    r = r[np.isfinite(r)]
    return float(r.mean()) if len(r) else None


def compute_auc(scores: Any, labels: Any) -> float | None:
    """ROC AUC = P(score of a random positive > score of a random negative) + 0.5 P(tie).

    Computed exactly from mid-ranks (Mann-Whitney U). ``None`` when all labels are equal.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in size: {s.shape} vs {y.shape}")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def compute_risk_auc(pred: Any, teacher: Any, threshold: float = AUC_THRESHOLD) -> float | None:
    """AUC of the predicted risk for ``teacher > threshold``, pooled over every cell of every frame."""
    p, t = _pair(pred, teacher)
    return compute_auc(p, t > threshold)


def compute_risk_metrics(
    pred: Any, teacher: Any, temperature: float = KL_TEMPERATURE, threshold: float = AUC_THRESHOLD
) -> dict[str, float | None]:
    """``{"risk_l1", "risk_kl", "risk_pearson", "risk_auc"}`` for one stack of frames."""
    return {
        "risk_l1": compute_risk_l1(pred, teacher),
        "risk_kl": compute_risk_kl(pred, teacher, temperature),
        "risk_pearson": compute_risk_pearson(pred, teacher),
        "risk_auc": compute_risk_auc(pred, teacher, threshold),
    }


@functools.lru_cache(maxsize=8)
def _cell_centres(grid: BevGrid) -> np.ndarray:
    """``[H * W, 2]`` cell centres of ``grid`` (read-only; computed once per grid)."""
    centres = grid.cell_centers().reshape(-1, 2)
    centres.flags.writeable = False
    return centres


def path_corridor_mask(
    grid: BevGrid, path_ego: Any, half_width_m: float = PATH_CORRIDOR_HALF_WIDTH_M, from_origin: bool = True
) -> np.ndarray:
    """``[H, W]`` bool: cells whose centre is within ``half_width_m`` of the polyline ``path_ego [T, 2]``
    (ego frame), which starts at the ego origin when ``from_origin``.

    Only the cells inside the path's bounding box widened by ``half_width_m`` (and a metre of margin) are
    measured: no cell outside it can be that close (the closest point of a segment lies between its ends),
    and the cells inside are measured exactly as over the whole grid. A closed-loop route computes this at
    every planning step of a student with a RiskHead."""
    pts = np.asarray(path_ego, dtype=np.float64).reshape(-1, 2)
    if from_origin:
        pts = np.concatenate([np.zeros((1, 2)), pts])
    centres = _cell_centres(grid)  # [HW, 2]
    mask = np.zeros(len(centres), dtype=bool)
    reach = half_width_m + 1.0
    lo, hi = pts.min(axis=0) - reach, pts.max(axis=0) + reach
    x, y = centres[:, 0], centres[:, 1]
    near = np.flatnonzero((x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]))
    c = centres[near]
    if len(pts) == 1:
        d2 = ((c - pts[0]) ** 2).sum(axis=1)
    else:
        a, b = pts[:-1], pts[1:]  # segments [S, 2]
        ab = b - a
        denom = np.maximum((ab * ab).sum(axis=1), 1e-12)
        u = ((c[:, None, :] - a[None]) * ab[None]).sum(axis=2) / denom  # [N, S]
        u = np.clip(u, 0.0, 1.0)
        closest = a[None] + u[..., None] * ab[None]
        d2 = ((c[:, None, :] - closest) ** 2).sum(axis=2).min(axis=1)
    mask[near] = d2 <= half_width_m**2
    return mask.reshape(grid.shape)


def compute_path_risk(
    risk_map: Any, grid: BevGrid, path_ego: Any, half_width_m: float = PATH_CORRIDOR_HALF_WIDTH_M
) -> float:
    """The largest value of ``risk_map [H, W]`` (or ``[1, H, W]``) within ``half_width_m`` of the planned
    path (ego frame, starting at the ego); 0 when the corridor covers no cell of the grid."""
    m = np.asarray(risk_map, dtype=np.float64)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.shape != grid.shape:
        raise ValueError(f"risk map has shape {m.shape}, the grid is {grid.shape}")
    mask = path_corridor_mask(grid, path_ego, half_width_m)
    return float(m[mask].max()) if mask.any() else 0.0


def compute_student_hazard_recall(
    pred: Any, teacher: Any, threshold: float = HAZARD_THRESHOLD
) -> tuple[int, int]:
    """``(found, hazards)`` over a stack of frames: the student's risk-map hazard recall is
    ``found / hazards``. A *hazard* is a connected region (8-neighbourhood) of teacher cells
    ``>= threshold`` in one frame; it is *found* when the predicted map reaches ``threshold`` at some cell
    of that region. Maps ``[H, W]``, ``[N, H, W]`` or ``[N, 1, H, W]``.

    This is the one place the study's diagnostic "the student's risk-map quality on bench (hazard recall)"
    is computed (open loop accumulates it as ``risk_hazard_recall``). The teacher issue's hazard-recall
    metric for teacher labels (``teacher/quality.py``, another branch) defines hazards from ground truth;
    once merged, this function is where it is wired in (the student's map in place of the teacher's)."""
    from scipy.ndimage import label as connected_regions

    p, t = _as_stack("pred", pred), _as_stack("teacher", teacher)
    if p.shape != t.shape:
        raise ValueError(f"predicted risk {p.shape} and teacher risk {t.shape} differ in shape")
    found = hazards = 0
    for pf, tf in zip(p, t, strict=True):
        regions, n = connected_regions(tf >= threshold, structure=np.ones((3, 3), dtype=bool))
        if n == 0:
            continue
        hit = np.unique(regions[(pf >= threshold) & (regions > 0)])
        hazards += n
        found += len(hit)
    return found, hazards
