"""Per-route pages of the report: why a route failed, on one page.

The routes table of ``report.html`` links every route (failures first, up to ``max_route_pages`` per run)
to ``routes/<NN>-<run>/<route_id>.html``, a self-contained page (images inlined) with:

- the verdict: status, how the route ended, when, with what completion and score, the driver's error;
- the infractions in time order (time, kind, penalty factor, position, message; long lists wrapped);
- a top-down overview (map, route, initial actors, the driven trajectory, the plans every 0.5 s coloured
  by time, numbered infraction markers);
- a timeline: speed driven vs speed planned, route progress, predicted risk on the planned path, with the
  infractions as vertical lines;
- links to the route's Rerun recording (``.rrd``, when the evaluation recorded one) and its route file.

Pages read the route files only (``routes/<route_id>.json``: ``trajectory``, ``plans``, ``path_risk``,
``rerun``); scenario instances are rebuilt from ``(type, seed, layout)`` for the map, once per route.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ImageDraw

from riskdistill.evaluation.risk_outcome import path_risk_series
from riskdistill.types import Infraction
from riskdistill.viz.report_data import ClosedLoopRun, RouteOutcome
from riskdistill.viz.report_names import slug

ROUTES_DIR = "routes"
MAX_EVENT_ROWS = 300  # a page lists at most this many infractions (the rest are counted)
CELL_MESSAGES = 2  # infraction messages quoted in the main table's cell
CELL_CHARS = 140  # ... each cut to this many characters


# ------------------------------------------------------------------------------------------ paths
def route_page_relpath(run_index: int, run: ClosedLoopRun, outcome: RouteOutcome) -> str:
    """The page's path relative to the report folder (``routes/<NN>-<run>/<route>.html``)."""
    return f"{ROUTES_DIR}/{run_index:02d}-{slug(run.display)}/{slug(outcome.route_id)}.html"


def _rel_link(target: Path, page: Path) -> str:
    """A relative URL from ``page`` to ``target`` (both on disk), with forward slashes."""
    return Path(os.path.relpath(target.resolve(), page.parent.resolve())).as_posix()


def pick_page_routes(routes: Sequence[RouteOutcome], n: int) -> list[RouteOutcome]:
    """Up to ``n`` routes: failures and routes with infractions first (worst score first), then the rest."""
    return sorted(routes, key=lambda o: (o.success, not o.result.events, o.scores["score_composed"]))[:n]


# ------------------------------------------------------------------------------------------ text
def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def infraction_cell(outcome: RouteOutcome, page_href: str | None) -> str:
    """The main table's infraction cell: counts per kind, the first messages (cut; min-speed checkpoints,
    recorded on every route, after the infractions), a link to all of them.
    Never long: a route with thousands of events gives a few lines."""
    from riskdistill.viz.report_html import esc

    events = outcome.result.events
    if not events:
        return ""
    counts = Counter(str(e.kind) for e in events)
    head = ", ".join(f"{n} &times; {esc(k.replace('_', ' '))}" for k, n in counts.most_common())
    quotes = "".join(
        f'<div class="q">{e.time_s:.1f} s: {esc(_clip(str(e.message), CELL_CHARS))}</div>'
        for e in sorted(events, key=lambda e: (e.kind == Infraction.MIN_SPEED, e.time_s))[:CELL_MESSAGES]
    )
    more = ""
    if page_href is not None:
        more = f'<div><a href="{esc(page_href)}">all {len(events)} on the route page</a></div>'
    return f"<div><b>{head}</b></div>{quotes}{more}"


def verdict(outcome: RouteOutcome) -> list[str]:
    """Plain sentences: how the route ended and what went wrong first."""
    r = outcome.result
    lines = [
        f"Status: {outcome.status} ({'success' if outcome.success else 'not a success'}). The route ended "
        f"after {r.duration_game_s:.1f} s of simulated time with {r.route_completion_pct:.1f} % of it "
        f"completed: driving score {outcome.scores['score_composed']:.1f} = route completion "
        f"{outcome.scores['score_route']:.1f} x infraction penalty {outcome.scores['score_penalty']:.3f}."
    ]
    if str(r.route_end) != "Completed":
        lines.append(f"Route end: {r.route_end}.")
    events = sorted(r.events, key=lambda e: e.time_s)
    if events:
        e = events[0]
        lines.append(f"First infraction at {e.time_s:.1f} s: {e.kind} ({e.message}).")
        counts = Counter(str(e.kind) for e in events)
        lines.append("Infractions: " + ", ".join(f"{n} x {k}" for k, n in counts.most_common()) + ".")
    elif not outcome.success:
        lines.append("No infraction was recorded: the route failed by how it ended.")
    err = outcome.raw.get("error")
    if err:
        lines.append(f"The driver or the simulation raised: {err}")
    for w in outcome.raw.get("warnings") or []:
        lines.append(f"Warning: {w}")
    return lines


# ------------------------------------------------------------------------------------------ pictures
@functools.lru_cache(maxsize=64)
def _instance(scenario: str, seed: int, layout_json: str) -> Any:
    from riskdistill.sim.scenarios import build_scenario

    return build_scenario(scenario, seed, json.loads(layout_json) or None)


def _plans(outcome: RouteOutcome) -> tuple[list[float], list[np.ndarray]]:
    p = outcome.raw.get("plans")
    if not isinstance(p, dict) or not p.get("time_s"):
        return [], []
    out_t, out_xy = [], []
    for t, xy in zip(p["time_s"], p.get("xy_world") or [], strict=False):
        a = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(a) and np.isfinite(a).all():
            out_t.append(float(t))
            out_xy.append(a)
    return out_t, out_xy


def render_route_overview(outcome: RouteOutcome, size_px: int = 480) -> np.ndarray:
    """Top-down overview ``[size_px, size_px, 3]``: map (north up), route, initial actors, the driven
    trajectory (cyan), the plans coloured by time (early purple -> late yellow) and numbered infraction
    markers (red). Raises on an unbuildable route."""
    from matplotlib import colormaps

    from riskdistill.viz.report_figures import INFRACTION_COLOR, TRAJECTORY_COLOR, resolve_layout
    from riskdistill.viz.topdown import (
        TopDownView,
        render_actors,
        render_label,
        render_map_layer,
        render_route,
        render_traffic_lights,
    )

    if outcome.seed is None:
        raise ValueError(f"route {outcome.route_id!r}: no seed recorded, cannot rebuild the scenario")
    layout = resolve_layout(outcome) or {}
    inst = _instance(outcome.scenario, int(outcome.seed), json.dumps(layout, sort_keys=True))
    route_pts = np.asarray(inst.route.path.points, dtype=np.float64)
    traj = np.asarray(outcome.trajectory_xy or np.zeros((0, 2)), dtype=np.float64).reshape(-1, 2)
    traj = traj[np.isfinite(traj).all(axis=1)]
    events = sorted(outcome.result.events, key=lambda e: e.time_s)
    ev = np.asarray([[e.x_m, e.y_m] for e in events], dtype=np.float64).reshape(-1, 2)
    plan_t, plans = _plans(outcome)
    allp = np.concatenate([route_pts, traj, ev[np.isfinite(ev).all(axis=1)]])
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    view = TopDownView(tuple((lo + hi) / 2.0), math.pi / 2.0, float(max(hi - lo)) + 16.0, size_px)
    img = render_map_layer(inst.world.map, view)
    render_route(img, view, route_pts)
    draw = ImageDraw.Draw(img)
    render_actors(draw, inst.world, view)
    render_traffic_lights(draw, inst.world, view)
    if plans:
        cmap = colormaps["plasma"]
        t_max = max(plan_t[-1], 1e-6)
        for t, xy in zip(plan_t, plans, strict=True):
            color = tuple(int(255 * c) for c in cmap(0.1 + 0.8 * t / t_max)[:3])
            draw.line(view.world_to_px(xy).reshape(-1).tolist(), fill=color, width=1)
    if len(traj) >= 2:
        draw.line(view.world_to_px(traj).reshape(-1).tolist(), fill=TRAJECTORY_COLOR, width=2)
    r = max(5.0, size_px / 60)
    for k, (u, v) in enumerate(view.world_to_px(ev)):
        if not (np.isfinite(u) and np.isfinite(v)):
            continue
        draw.ellipse((u - r, v - r, u + r, v + r), outline=(255, 255, 255), width=4)
        draw.ellipse((u - r, v - r, u + r, v + r), outline=INFRACTION_COLOR, width=2)
        if k < 20:
            draw.text((u + r + 2, v - r), str(k + 1), fill=INFRACTION_COLOR)
    render_label(draw, f"{outcome.route_id}  {outcome.status}  DS {outcome.scores['score_composed']:.1f}")
    return np.asarray(img, dtype=np.uint8)


def plot_route_timeline(outcome: RouteOutcome) -> bytes | None:
    """Speed (driven and planned), route progress and predicted path risk over time, infractions as
    vertical red lines (numbered as on the overview). None when the route file has no trajectory."""
    from riskdistill.viz.report_figures import _fig_png, _figure

    traj = outcome.raw.get("trajectory")
    if not isinstance(traj, dict) or not traj.get("time_s"):
        return None
    t = np.asarray(traj["time_s"], dtype=np.float64)
    pr = outcome.raw.get("path_risk")
    risk = path_risk_series(pr) if isinstance(pr, dict) and pr else None
    n_panels = 3 if risk is not None and len(risk[0]) else 2
    height_in = 1.9 * n_panels + 0.4
    fig = _figure(8.6, height_in, layout=None)  # fixed margins: hundreds of these in a study's report
    fig.subplots_adjust(left=0.08, right=0.985, top=1 - 0.2 / height_in, bottom=0.45 / height_in, hspace=0.12)
    axes = fig.subplots(n_panels, 1, sharex=True)
    ax = axes[0]
    ax.plot(t, traj.get("speed_mps") or np.zeros_like(t), color="#1f77b4", label="driven")
    plan_t, planned = planned_speeds(outcome)
    if planned:
        ax.plot(plan_t, planned, color="#2ca02c", linewidth=1.0, label="planned (first 1 s)")
    ax.set_ylabel("speed [m/s]", fontsize=8)
    ax.legend(fontsize=7, loc="upper right")
    length = max(float(outcome.result.route_length_m or 0.0), 1e-6)
    prog = np.asarray(traj.get("progress_m") or np.zeros_like(t), dtype=np.float64)
    axes[1].plot(t, 100.0 * (prog - (prog[0] if len(prog) else 0.0)) / length, color="#7f7f7f")
    axes[1].set_ylabel("route %", fontsize=8)
    axes[1].set_ylim(0, 105)
    if n_panels == 3:
        axes[2].plot(risk[0], risk[1], color="#d62728")
        axes[2].set_ylabel("path risk", fontsize=8)
        axes[2].set_ylim(0, 1.02)
    events = sorted(outcome.result.events, key=lambda e: e.time_s)
    for a in axes:
        a.grid(alpha=0.3)
        a.tick_params(labelsize=7)
        for k, e in enumerate(events[:MAX_EVENT_ROWS]):
            a.axvline(e.time_s, color="#d62728", alpha=0.6, linewidth=1.0)
            if a is axes[0] and k < 20:
                a.text(e.time_s, 1.0, f" {k + 1}", transform=a.get_xaxis_transform(), color="#d62728",
                       fontsize=7, va="bottom")  # fmt: skip
    axes[-1].set_xlabel("simulated time [s]", fontsize=8)
    return _fig_png(fig)


def planned_speeds(outcome: RouteOutcome) -> tuple[list[float], list[float]]:
    """``(times, speeds)``: the speed each plan asks for (its first second, as the waypoint controller reads
    it) from the plans and the trajectory of the route file."""
    from riskdistill.contracts.agent import PLAN_DT_S

    plan_t, plans = _plans(outcome)
    speeds = []
    for t, xy in zip(plan_t, plans, strict=True):
        pts = np.vstack([_origin(outcome, t), xy[:2]])
        speeds.append(float(np.linalg.norm(np.diff(pts, axis=0), axis=1).mean() / PLAN_DT_S))
    return plan_t, speeds


def _origin(outcome: RouteOutcome, t: float) -> np.ndarray:
    """The ego's world position (rear axle) at time ``t`` from the route file's trajectory."""
    traj = outcome.raw.get("trajectory") or {}
    ts = np.asarray(traj.get("time_s") or [0.0], dtype=np.float64)
    x = np.asarray(traj.get("x_m") or [0.0], dtype=np.float64)
    y = np.asarray(traj.get("y_m") or [0.0], dtype=np.float64)
    return np.array([np.interp(t, ts, x), np.interp(t, ts, y)])


# ------------------------------------------------------------------------------------------ the page
def route_page_html(run: ClosedLoopRun, outcome: RouteOutcome, page: Path, report: Path, css: str) -> str:
    """The HTML of one route page written at ``page`` (links are relative to it); ``report`` is the main
    report file (for the back link)."""
    from riskdistill.evaluation.driving_score import penalty_factor
    from riskdistill.viz.report_figures import png_bytes
    from riskdistill.viz.report_html import HEADER_COLOR, esc, fmt, img_tag, note, table

    title = f"{outcome.route_id} · {outcome.scenario} · {run.display}"
    back = _rel_link(report, page)
    parts = [
        f'<p><a href="{esc(back)}#routes">&larr; back to the report</a></p>',
        '<section id="verdict"><h2>Why this route '
        + ("failed" if not outcome.success else "scored as it did")
        + "</h2>"
        + "".join(f"<p>{esc(line)}</p>" for line in verdict(outcome)),
    ]
    tb = outcome.raw.get("traceback")
    if tb:
        parts.append(f'<pre class="tb">{esc(tb)}</pre>')
    parts.append("</section>")
    events = sorted(outcome.result.events, key=lambda e: e.time_s)
    rows = [
        [str(k + 1), fmt(e.time_s, 1), esc(e.kind), fmt(penalty_factor(e), 2), f"{e.x_m:.1f}, {e.y_m:.1f}",
         esc(e.message)]
        for k, e in enumerate(events[:MAX_EVENT_ROWS])
    ]  # fmt: skip
    body = (
        table(["#", "time [s]", "infraction", "penalty x", "position [m]", "message"], rows, left_cols=0,
              left=(2, 5))
        if rows else "<p>No infractions.</p>"
    )  # fmt: skip
    if len(events) > MAX_EVENT_ROWS:
        body += note(f"{len(events) - MAX_EVENT_ROWS} more infractions not listed")
    infractions = (
        f'<section id="infractions"><h2>Infractions in time</h2><div class="events">{body}</div></section>'
    )
    figs = []
    try:
        overview = render_route_overview(outcome)
        figs.append(
            f"<figure>{img_tag(png_bytes(overview), 'image/png', 'overview ' + outcome.route_id, 'bev')}"
            "<figcaption>Top-down, north up: route (blue), driven trajectory (cyan), plans every 0.5 s "
            "(purple early, yellow late), infractions (red circles, numbered as in the table)."
            "</figcaption></figure>"
        )
    except Exception as exc:  # an unbuildable scenario costs the picture, not the page
        figs.append(note(f"no overview: {type(exc).__name__}: {exc}"))
    png = plot_route_timeline(outcome)
    if png is not None:
        figs.append(
            f"<figure>{img_tag(png, 'image/png', 'timeline ' + outcome.route_id, 'plot')}"
            "<figcaption>Speed driven and planned, route progress and the predicted risk on the planned "
            "path; red lines: infractions.</figcaption></figure>"
        )
    else:
        figs.append(note("the route file has no trajectory: no timeline"))
    parts.append(
        '<section id="drive"><h2>The drive</h2><div class="grid">' + "".join(figs) + "</div></section>"
    )
    parts.append(infractions)
    links = []
    rec = outcome.raw.get("rerun")
    if isinstance(rec, dict) and rec.get("path"):
        rrd = run.path / str(rec["path"])
        if rrd.is_file():
            links.append(
                f'<li><a class="rrd" href="{esc(_rel_link(rrd, page))}">Rerun recording {esc(rrd.name)}</a> '
                f"({esc(rec.get('frames', '?'))} frames; open with "
                f"<code>rerun {esc(rrd.resolve())}</code>)</li>"
            )
        else:
            links.append(f"<li>Rerun recording {esc(rec['path'])} is missing from {esc(run.path)}</li>")
    else:
        links.append(
            "<li>No Rerun recording for this route (evaluate with recorders, or "
            f"<code>riskdistill viz rerun-route {esc(run.path)} --route {esc(outcome.route_id)}</code>)</li>"
        )
    route_file = run.path / "routes" / f"{outcome.route_id}.json"
    if route_file.is_file():
        links.append(
            f'<li><a href="{esc(_rel_link(route_file, page))}">route file {esc(route_file.name)}</a></li>'
        )
    parts.insert(
        len(parts) - 2, '<section id="files"><h2>Files</h2><ul>' + "".join(links) + "</ul></section>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{css}</style></head><body>"
        f'<header style="background: {HEADER_COLOR}"><h1>{esc(title)}</h1>'
        f'<div class="meta"><span><b>run:</b> {esc(run.path)}</span>'
        f"<span><b>status:</b> {esc(outcome.status)}</span></div></header>"
        f"<main>{''.join(parts)}</main></body></html>\n"
    )


def write_route_pages(
    runs: Sequence[ClosedLoopRun], report: Path, css: str, max_pages: int, workers: int = 1
) -> dict[tuple[int, str], str]:
    """Write the pages of up to ``max_pages`` routes per run (failures first) next to ``report``; returns
    ``{(run index, route id): page path relative to the report folder}``. ``workers > 1`` renders the pages
    in that many processes (a study's report has a page for each of its 1,500 routes, about 0.3 s each);
    every page is the same as with one."""
    out: dict[tuple[int, str], str] = {}
    jobs: list[tuple[ClosedLoopRun, RouteOutcome, Path, Path, str]] = []
    for i, run in enumerate(runs):
        bare = dataclasses.replace(run, routes=[])  # a page reads its own route only: less to send a worker
        for o in pick_page_routes(run.routes, max_pages):
            rel = route_page_relpath(i, run, o)
            page = report.parent / rel
            page.parent.mkdir(parents=True, exist_ok=True)
            jobs.append((bare, o, page, report, css))
            out[i, o.route_id] = rel
    if workers <= 1 or len(jobs) < 2:
        for job in jobs:
            _write_route_page(job)
        return out
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    n = min(workers, len(jobs))
    with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn")) as pool:
        # consumed, so that a page that fails raises here
        list(pool.map(_write_route_page, jobs, chunksize=max(1, len(jobs) // (8 * n))))
    return out


def _write_route_page(job: tuple[ClosedLoopRun, RouteOutcome, Path, Path, str]) -> None:
    from riskdistill.io import atomic_write_text

    run, outcome, page, report, css = job
    atomic_write_text(page, route_page_html(run, outcome, page, report, css))
