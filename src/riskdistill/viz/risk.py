"""Risk maps on the BEV grid: the teacher's map beside the student's prediction, with both trajectories.

    img = render_risk_comparison(teacher, predicted, grid, planned_xy=plan, expert_xy=future, annotation=ann)

Each panel shows one ``[H_bev, W_bev]`` risk map on the shared :class:`~riskdistill.geometry.BevGrid`
(row 0 = front, column 0 = left, so forward is up and left is left) as a heat map, yellow (low) to red
(high), whose opacity grows with the risk. Under it, when the frame's annotation is given and the grid
has the layout of :func:`riskdistill.viz.frame.render_bev` (square, centred a quarter of its extent ahead
of the ego, symmetric left/right: both presets are), the annotation BEV (lanes, actors, ego) is drawn;
otherwise a plain dark background. Over it: the expert's future trajectory (orange dots) and the planned
waypoints (green line), both in the EGO frame, and the ego's rear axle (cyan cross).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from riskdistill.geometry import BevGrid
from riskdistill.viz.topdown import EGO_HIGHLIGHT, FUTURE_COLOR, FUTURE_OUTLINE, PLAN_COLOR, render_label

RGB = tuple[int, int, int]
PANEL_BG: RGB = (28, 30, 34)
GAP_PX = 6
GAP_COLOR: RGB = (255, 255, 255)
RISK_ALPHA_MAX = 0.85
MISSING_COLOR: RGB = (70, 70, 76)


def risk_to_rgba(risk: np.ndarray) -> np.ndarray:
    """``[H, W]`` risk in [0, 1] -> ``[H, W, 4]`` uint8 heat colours (yellow -> red), alpha ~ risk."""
    r = np.clip(np.nan_to_num(np.asarray(risk, dtype=np.float32), nan=0.0), 0.0, 1.0)
    out = np.empty((*r.shape, 4), dtype=np.uint8)
    out[..., 0] = 255
    out[..., 1] = np.round(230.0 * (1.0 - r)).astype(np.uint8)
    out[..., 2] = 0
    out[..., 3] = np.round(255.0 * RISK_ALPHA_MAX * np.sqrt(r)).astype(np.uint8)
    return out


def as_risk_map(risk: Any, grid: BevGrid, name: str = "risk map") -> np.ndarray:
    """``[H, W]`` or ``[1, H, W]`` (numpy or torch) -> float32 ``[H, W]``; raises on a shape off the grid."""
    if hasattr(risk, "detach"):
        risk = risk.detach().cpu().numpy()
    arr = np.asarray(risk, dtype=np.float32)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != grid.shape:
        raise ValueError(f"{name}: shape {arr.shape} does not match the BEV grid {grid.shape}")
    return arr


def panel_size(grid: BevGrid, height_px: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of one panel of ``grid`` that is ``height_px`` tall."""
    return max(8, round(height_px * grid.n_cols / grid.n_rows)), int(height_px)


def grid_matches_frame_view(grid: BevGrid) -> bool:
    """Whether ``grid`` covers exactly the square that :func:`riskdistill.viz.frame.render_bev` draws."""
    from riskdistill.viz.frame import BEV_AHEAD_FRACTION

    ex, ey = grid.x_max_m - grid.x_min_m, grid.y_max_m - grid.y_min_m
    cx = 0.5 * (grid.x_max_m + grid.x_min_m)
    return (
        math.isclose(ex, ey, rel_tol=1e-6)
        and math.isclose(grid.y_max_m, -grid.y_min_m, abs_tol=1e-6)
        and math.isclose(cx, BEV_AHEAD_FRACTION * ex, abs_tol=1e-6)
    )


def ego_to_px(grid: BevGrid, xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Ego-frame ``[N, 2]`` metres -> panel pixels ``(u, v)`` ``[N, 2]`` for a panel of ``size = (w, h)``."""
    rc = grid.metric_to_index(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
    return np.stack([rc[:, 1] * size[0] / grid.n_cols, rc[:, 0] * size[1] / grid.n_rows], axis=1)


def _finite_xy(points: Any) -> np.ndarray | None:
    if points is None:
        return None
    if hasattr(points, "detach"):
        points = points.detach().cpu().numpy()
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    return p if len(p) else None


def render_risk_panel(
    risk: Any,
    grid: BevGrid,
    height_px: int = 320,
    planned_xy: Any = None,
    expert_xy: Any = None,
    annotation: dict[str, np.ndarray] | None = None,
    title: str = "",
) -> np.ndarray:
    """One panel ``[height_px, W, 3]`` uint8: background, risk heat map, trajectories, ego, title.

    ``risk`` may be None (drawn as a hatched "no map" panel). Trajectories are ego-frame ``[N, 2]`` metres
    without the origin (it is prepended: plans start at the rear axle).
    """
    w, h = panel_size(grid, height_px)
    if annotation is not None and grid_matches_frame_view(grid) and w == h:
        from riskdistill.viz.frame import render_bev

        bg = Image.fromarray(render_bev(annotation, size_px=h, extent_m=grid.x_max_m - grid.x_min_m))
        # dim the map so the heat map stands out
        bg = Image.blend(bg, Image.new("RGB", bg.size, PANEL_BG), 0.35)
    else:
        bg = Image.new("RGB", (w, h), PANEL_BG)
    if risk is not None:
        rgba = Image.fromarray(risk_to_rgba(as_risk_map(risk, grid)), "RGBA")
        rgba = rgba.resize((w, h), Image.Resampling.NEAREST)
        bg.paste(rgba, (0, 0), rgba)
    else:
        d = ImageDraw.Draw(bg)
        for k in range(-h, w, 16):
            d.line((k, h, k + h, 0), fill=MISSING_COLOR, width=1)
    draw = ImageDraw.Draw(bg)
    k = min(w / (grid.y_max_m - grid.y_min_m), h / (grid.x_max_m - grid.x_min_m))  # px per metre
    origin = np.zeros((1, 2))
    expert = _finite_xy(expert_xy)
    if expert is not None:
        r = max(2.0, 0.45 * k)
        for u, v in ego_to_px(grid, expert, (w, h)):
            draw.ellipse((u - r, v - r, u + r, v + r), fill=FUTURE_COLOR, outline=FUTURE_OUTLINE)
    plan = _finite_xy(planned_xy)
    if plan is not None:
        px = ego_to_px(grid, np.concatenate([origin, plan]), (w, h))
        draw.line(px.reshape(-1).tolist(), fill=PLAN_COLOR, width=max(2, round(0.3 * k)))
        r = max(1.5, 0.3 * k)
        for u, v in px[1:]:
            draw.ellipse((u - r, v - r, u + r, v + r), fill=PLAN_COLOR)
    (u0, v0) = ego_to_px(grid, origin, (w, h))[0]
    c = max(4.0, 1.2 * k)
    draw.line((u0 - c, v0, u0 + c, v0), fill=EGO_HIGHLIGHT, width=2)
    draw.line((u0, v0 - c, u0, v0 + c), fill=EGO_HIGHLIGHT, width=2)
    if title:
        render_label(draw, title)
    return np.asarray(bg, dtype=np.uint8)


def risk_l1(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Mean absolute difference of two maps (None if either is missing)."""
    if a is None or b is None:
        return None
    return float(np.mean(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def render_risk_comparison(
    teacher_risk: Any,
    predicted_risk: Any | Sequence[Any],
    grid: BevGrid,
    planned_xy: Any | Sequence[Any] = None,
    expert_xy: Any = None,
    annotation: dict[str, np.ndarray] | None = None,
    height_px: int = 320,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Teacher map (left) beside one or more predicted maps, ``[height_px, W, 3]`` uint8.

    ``predicted_risk`` / ``planned_xy`` are one map / plan or lists of them (one per model; ``names`` labels
    them). Every panel shows the expert trajectory; each predicted panel shows its own plan and its L1 to
    the teacher map in the title.
    """
    multi = isinstance(predicted_risk, (list, tuple))
    preds = list(predicted_risk) if multi else [predicted_risk]
    plans = list(planned_xy) if isinstance(planned_xy, (list, tuple)) else [planned_xy] * len(preds)
    if len(plans) != len(preds):
        raise ValueError(f"got {len(preds)} predicted maps but {len(plans)} plans")
    labels = (
        list(names)
        if names is not None
        else [f"predicted {i}" if multi else "predicted" for i in range(len(preds))]
    )
    teacher = None if teacher_risk is None else as_risk_map(teacher_risk, grid, "teacher risk map")
    panels = [render_risk_panel(teacher, grid, height_px, None, expert_xy, annotation, "teacher")]
    for pred, plan, label in zip(preds, plans, labels, strict=True):
        p = None if pred is None else as_risk_map(pred, grid, f"{label} risk map")
        l1 = risk_l1(teacher, p)
        title = label if l1 is None else f"{label}  L1 {l1:.3f}"
        panels.append(render_risk_panel(p, grid, height_px, plan, expert_xy, annotation, title))
    gap = np.full((height_px, GAP_PX, 3), GAP_COLOR, dtype=np.uint8)
    out: list[np.ndarray] = []
    for i, p in enumerate(panels):
        if i:
            out.append(gap)
        out.append(p)
    return np.concatenate(out, axis=1)
