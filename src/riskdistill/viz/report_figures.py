"""Pictures of the report: matplotlib plots (Agg, no display), route thumbnails and sample-frame panels.

Every function returns image bytes (PNG or JPEG) or an ``[H, W, 3]`` uint8 array; nothing is written to
disk here. Route thumbnails rebuild the scenario instance from ``(type, seed, layout)`` (cheap: the
scenario is deterministic) and draw the map, the route, the initial actors, the ego trajectory (cyan) and
the infractions (red crosses).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from riskdistill.contracts import labels as label_layout
from riskdistill.viz.report_data import RouteOutcome
from riskdistill.viz.report_stats import ABILITY_NAMES, RunGroup
from riskdistill.viz.topdown import (
    EGO_HIGHLIGHT,
    TopDownView,
    render_actors,
    render_label,
    render_map_layer,
    render_route,
    render_traffic_lights,
)

INFRACTION_COLOR = (235, 30, 30)
TRAJECTORY_COLOR = EGO_HIGHLIGHT
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


# ------------------------------------------------------------------------------------------ encoding
def png_bytes(img: np.ndarray | Image.Image) -> bytes:
    im = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def jpeg_bytes(img: np.ndarray | Image.Image, quality: int = 85, max_width: int | None = None) -> bytes:
    im = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))
    if max_width is not None and im.width > max_width:
        im = im.resize((max_width, round(im.height * max_width / im.width)), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _figure(width_in: float = 6.4, height_in: float = 3.2, layout: str | None = "constrained") -> Any:
    """A pyplot-free figure; ``layout=None`` leaves the margins to ``subplots_adjust`` (constrained layout
    is about half of a small figure's rendering time: the report's per-route figures use fixed margins)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=100, layout=layout)


def _fig_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # Figure without pyplot renders with the Agg canvas
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ plots
def plot_metric_bars(groups: Sequence[RunGroup], key: str, title: str) -> bytes | None:
    """One bar per run group (mean over seeds) with 95 % CI error bars (over the seeds, or over the routes
    of a single run: :meth:`RunGroup.interval`) and the seed values as dots, for a metric in percent (y
    from 0 to 105)."""
    from riskdistill.viz.report_stats import summary_value

    stats = [(g, g.interval(key)) for g in groups]
    stats = [(g, s) for g, s in stats if s is not None]
    if not stats:
        return None
    fig = _figure(max(4.0, 0.9 * len(stats) + 2.0), 3.2)
    ax = fig.subplots()
    x = np.arange(len(stats))
    means = [s[0] for _, s in stats]
    errs = np.array([[s[0] - s[1] for _, s in stats], [s[2] - s[0] for _, s in stats]])
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(stats))]
    ax.bar(x, means, yerr=errs, capsize=5, color=colors, alpha=0.85)
    for i, (g, _) in enumerate(stats):
        vals = [summary_value(r.summary, key) for r in g.runs]
        vals = [v for v in vals if v is not None]
        ax.scatter([i] * len(vals), vals, color="black", s=12, zorder=3)
    ax.set_xticks(x, [g.name for g, _ in stats], rotation=20, ha="right")
    ax.set_ylim(0, 105)  # DS and SR are percentages; very wide CIs (two seeds) are cut at the frame
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _fig_png(fig)


def plot_abilities(groups: Sequence[RunGroup]) -> bytes | None:
    """Grouped bars: success rate per Bench2Drive ability, one colour per run group (mean over seeds)."""
    present = [a for a in ABILITY_NAMES if any(g.stat(a) is not None for g in groups)]
    if not present or not groups:
        return None
    fig = _figure(7.0, 3.2)
    ax = fig.subplots()
    width = 0.8 / len(groups)
    x = np.arange(len(present))
    for i, g in enumerate(groups):
        stats = [g.stat(a) for a in present]
        ax.bar(
            x + (i - (len(groups) - 1) / 2) * width,
            [s[0] if s else 0.0 for s in stats],
            width,
            yerr=[s[1] if s else 0.0 for s in stats],
            capsize=3,
            label=g.name,
            color=PALETTE[i % len(PALETTE)],
            alpha=0.85,
        )
    ax.set_xticks(x, [a.replace("_", " ") for a in present])
    ax.set_ylabel("success rate %")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return _fig_png(fig)


def plot_lead_times(lead_times: dict[str, Sequence[float]]) -> bytes | None:
    """Histogram of risk-vs-outcome lead times (seconds before the infraction), one series per run."""
    series = {
        k: [float(v) for v in vals if v is not None and math.isfinite(float(v))]
        for k, vals in lead_times.items()
    }
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    fig = _figure(6.4, 3.0)
    ax = fig.subplots()
    hi = max(max(v) for v in series.values())
    bins = np.linspace(0.0, max(hi, 1.0), 16)
    for i, (k, v) in enumerate(series.items()):
        ax.hist(v, bins=bins, alpha=0.55, label=f"{k} (n={len(v)})", color=PALETTE[i % len(PALETTE)])
    ax.set_xlabel("lead time: predicted risk rose this long before the infraction [s]")
    ax.set_ylabel("infractions")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _fig_png(fig)


# ------------------------------------------------------------------------------------------ thumbnails
def resolve_layout(outcome: RouteOutcome) -> dict[str, Any] | None:
    """Layout overrides of a route: from its file, else from the shipped suite that has this route."""
    if outcome.layout:
        return outcome.layout
    from riskdistill.sim.suites import SUITE_NAMES, load_suite

    for name in SUITE_NAMES:
        try:
            suite = load_suite(name)
        except Exception:  # a missing shipped suite only costs the lookup
            continue
        for spec in suite.routes:
            if (
                spec.route_id == outcome.route_id
                and spec.scenario == outcome.scenario
                and spec.seed == outcome.seed
            ):
                return dict(spec.layout)
    return None


def render_route_thumbnail(outcome: RouteOutcome, size_px: int = 256) -> np.ndarray:
    """Top-down overview ``[size_px, size_px, 3]`` of a route: map (north up), route, actors at the start,
    the ego trajectory when the route file recorded it, infraction markers. Raises on an unbuildable route."""
    from riskdistill.sim.scenarios import build_scenario

    if outcome.seed is None:
        raise ValueError(f"route {outcome.route_id!r}: no seed recorded, cannot rebuild the scenario")
    inst = build_scenario(outcome.scenario, outcome.seed, resolve_layout(outcome))
    route_pts = np.asarray(inst.route.path.points, dtype=np.float64)
    pts = [route_pts]
    traj = (
        np.asarray(outcome.trajectory_xy, dtype=np.float64).reshape(-1, 2) if outcome.trajectory_xy else None
    )
    if traj is not None and len(traj):
        traj = traj[np.isfinite(traj).all(axis=1)]
        pts.append(traj)
    events = np.asarray([[e.x_m, e.y_m] for e in outcome.result.events], dtype=np.float64).reshape(-1, 2)
    events = events[np.isfinite(events).all(axis=1)]
    pts.append(events)
    allp = np.concatenate(pts)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    extent = float(max(hi - lo)) + 16.0
    view = TopDownView(tuple((lo + hi) / 2.0), math.pi / 2.0, extent, size_px)
    img = render_map_layer(inst.world.map, view)
    render_route(img, view, route_pts)
    draw = ImageDraw.Draw(img)
    render_actors(draw, inst.world, view)
    render_traffic_lights(draw, inst.world, view)
    if traj is not None and len(traj) >= 2:
        draw.line(view.world_to_px(traj).reshape(-1).tolist(), fill=TRAJECTORY_COLOR, width=2)
    r = max(4.0, size_px / 48)
    for u, v in view.world_to_px(events):
        draw.line((u - r, v - r, u + r, v + r), fill=(255, 255, 255), width=5)
        draw.line((u - r, v + r, u + r, v - r), fill=(255, 255, 255), width=5)
        draw.line((u - r, v - r, u + r, v + r), fill=INFRACTION_COLOR, width=3)
        draw.line((u - r, v + r, u + r, v - r), fill=INFRACTION_COLOR, width=3)
    render_label(draw, f"{outcome.route_id}  {outcome.scores['score_composed']:.1f}")
    return np.asarray(img, dtype=np.uint8)


def pick_thumbnail_routes(routes: Sequence[RouteOutcome], n: int) -> list[RouteOutcome]:
    """Up to ``n`` routes: failures and routes with infractions first (worst score first), then the rest."""
    ranked = sorted(routes, key=lambda o: (o.success, o.scores["score_composed"], o.route_id))
    return ranked[:n]


# ------------------------------------------------------------------------------------------ sample frames
@dataclass
class FramePanel:
    """One sample frame of the data set, drawn for the report."""

    frame_id: str
    scenario: str
    mosaic: np.ndarray  # camera mosaic
    bev: np.ndarray  # teacher vs predicted risk panels
    reasons: list[tuple[str, float, str]]  # (object class, risk, reason), riskiest first
    notes: list[str]


def _load_teacher_map(labels: Path | None, frame_id: str) -> np.ndarray | None:
    if labels is None:
        return None
    p = label_layout.risk_map_path(labels, frame_id)
    if not p.is_file():
        return None
    return np.load(p, allow_pickle=False).astype(np.float32)


def load_label_record(labels: Path | None, frame_id: str) -> dict[str, Any] | None:
    """The teacher's label record ``labels/records/<frame_id>.json`` (a ``FrameLabel``), if present."""
    if labels is None:
        return None
    p = label_layout.record_path(labels, frame_id)
    if not p.is_file():
        return None
    from riskdistill.io import load_json

    data = load_json(p)
    return data if isinstance(data, dict) else None


def label_reasons(record: dict[str, Any] | None, top: int = 5) -> list[tuple[str, float, str]]:
    if not record:
        return []
    objs = sorted(record.get("objects", []), key=lambda o: o.get("rank", 0))
    return [(str(o.get("cls", "")), float(o.get("risk", 0.0)), str(o.get("reason", ""))) for o in objs[:top]]


def pick_sample_frames(dataset: Any, labels: Path | None, n: int) -> list[int]:
    """``n`` frame indices: the riskiest teacher frames (by map maximum) of different routes when labels
    exist, else frames spread evenly over the data set."""
    total = len(dataset)
    if total == 0 or n <= 0:
        return []
    frame_ids = dataset.table.column("frame_id").to_pylist()
    route_ids = dataset.table.column("route_id").to_pylist()
    if label_layout.has_risk_maps(labels):
        scored = []
        for i, fid in enumerate(frame_ids):
            m = _load_teacher_map(labels, fid)
            if m is not None:
                scored.append((float(m.max()), i))
        scored.sort(reverse=True)
        picked: list[int] = []
        seen: set[str] = set()
        for _, i in scored:
            if route_ids[i] not in seen:
                picked.append(i)
                seen.add(route_ids[i])
            if len(picked) == n:
                break
        for _, i in scored:  # fewer routes than frames wanted: fill with the next riskiest
            if len(picked) == n:
                break
            if i not in picked:
                picked.append(i)
        if picked:
            return sorted(picked)
    step = total / n
    return sorted({min(total - 1, int(step * (k + 0.5))) for k in range(n)})


def render_sample_frames(
    data: Path,
    labels: Path | None,
    students: Sequence[tuple[str, Any]],
    n: int,
    panel_px: int = 288,
    grid: Any = None,
) -> tuple[list[FramePanel], Any]:
    """Draw ``n`` sample frames: camera mosaic and teacher vs predicted risk maps with planned vs expert
    trajectories. ``students`` are ``(name, predictor)`` with ``predictor(frame) -> (plan_xy, risk)``.
    ``grid`` defaults to the label folder's grid, else the ``tiny`` preset. Returns the panels and the
    grid."""
    from riskdistill.data.storage import RecordedDataset
    from riskdistill.geometry import BevGrid
    from riskdistill.viz.cameras import render_camera_mosaic
    from riskdistill.viz.risk import render_risk_comparison

    ds = RecordedDataset(data)
    grid = grid or label_grid(labels) or BevGrid.preset("tiny")
    panels = []
    for i in pick_sample_frames(ds, labels, n):
        rec = ds.frame(i)
        ann = rec.annotation
        notes: list[str] = []
        teacher = _load_teacher_map(labels, rec.frame_id)
        if teacher is not None and teacher.shape[-2:] != grid.shape:
            notes.append(f"teacher map shape {teacher.shape} is not on the grid {grid.shape}; left out")
            teacher = None
        preds, plans, names = [], [], []
        for name, predict in students:
            try:
                plan, risk = predict(rec)
            except Exception as exc:
                notes.append(f"{name}: prediction failed ({type(exc).__name__}: {exc})")
                plan, risk = None, None
            if risk is not None and np.asarray(risk).shape[-2:] != grid.shape:
                notes.append(
                    f"{name}: predicted map {np.asarray(risk).shape} is not on the label grid; left out"
                )
                risk = None
            preds.append(risk)
            plans.append(plan)
            names.append(name)
        valid = np.asarray(ann["future_valid"], dtype=bool)
        expert = np.asarray(ann["future_xy"], dtype=np.float64)[valid]
        bev = render_risk_comparison(
            teacher,
            preds if preds else [],
            grid,
            planned_xy=plans if plans else [],
            expert_xy=expert,
            annotation=ann,
            height_px=panel_px,
            names=names,
        )
        panels.append(
            FramePanel(
                frame_id=rec.frame_id,
                scenario=rec.scenario,
                mosaic=render_camera_mosaic(rec.images, rec.camera_names),
                bev=bev,
                reasons=label_reasons(load_label_record(labels, rec.frame_id)),
                notes=notes,
            )
        )
    return panels, grid


def student_predictor(checkpoint: Path, rig: str) -> tuple[str, Any, Any]:
    """``(name, predict, grid)`` for a checkpoint: ``predict(frame) -> (plan_xy [6, 2], risk [H, W] | None)``
    runs the student on a recorded frame's observation through :class:`riskdistill.models.StudentDriver`
    (single frame: a temporal student sees no history). ``grid`` is the student's BEV grid."""
    import torch

    from riskdistill.models import StudentDriver, load_student

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    student = load_student(checkpoint).eval()
    cfg = student.cfg
    driver = StudentDriver(student, rig, tuple(cfg.image_hw))

    def predict(frame: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
        driver.reset()
        with torch.no_grad():
            action = driver.act(frame.to_agent_input())
        outputs = getattr(driver, "last_outputs", None) or {}
        risk = outputs.get("risk")
        plan = action.waypoints_ego if action.waypoints_ego is not None else outputs.get("waypoints")
        return (
            None if plan is None else np.asarray(plan).reshape(-1, 2),
            None if risk is None else np.asarray(risk, dtype=np.float32).squeeze(),
        )

    return checkpoint_name(checkpoint), predict, cfg.bev_grid()


def checkpoint_name(checkpoint: Path) -> str:
    """A readable name: the training run's folder for ``RUN/checkpoints/{final,step_N}``, else the folder."""
    ckpt = Path(checkpoint)
    if ckpt.parent.name == "checkpoints" and (ckpt.name == "final" or ckpt.name.startswith("step_")):
        return ckpt.parent.parent.name + ("" if ckpt.name == "final" else f"@{ckpt.name}")
    return ckpt.name


def label_grid(labels: Path | None) -> Any:
    """The BevGrid of a label folder (``meta.json``), or None."""
    if labels is None or not (labels / label_layout.META_JSON).is_file():
        return None
    from riskdistill.geometry import BevGrid
    from riskdistill.io import load_json

    g = load_json(labels / label_layout.META_JSON).get("grid")
    return BevGrid.from_dict(g) if isinstance(g, dict) else None
