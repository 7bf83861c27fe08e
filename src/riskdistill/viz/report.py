"""The evaluation report: one self-contained HTML file (images inlined, CSS inline, no scripts or URLs).

    inputs = ReportInputs.from_folders(closed_loop=["runs/cl_expert"], open_loop=["runs/ol.json"])
    path = build_report(inputs, "reports/")          # -> reports/report.html
    riskdistill report --closed-loop runs/cl_expert --open-loop runs/ol.json --out reports/

Sections (each left out, with a note, when its inputs are missing): header (what was compared, date,
git commit, machine), closed-loop tables (DS / SR / RC / IP / Efficiency / Comfortness / abilities per
run, mean and 95 % CI over seeds, or over routes for one seed) with plots, generalisation (nominal vs
shifted rig), paired significance tests, open-loop metrics, risk vs outcome (lead-time histogram), training
curves (``metrics.csv``), per-route results with top-down thumbnails and a page per route
(``routes/<NN>-<run>/<route>.html``: why it failed, infractions in time, plan and risk over time, the
route's ``.rrd``; :mod:`riskdistill.viz.report_route`), and sample frames (camera mosaic with camera names;
teacher vs predicted risk maps with planned vs expert trajectories; the teacher's reasons). Runs carry one
name everywhere (``label [condition] · seed N``, :mod:`riskdistill.viz.report_names`). All text from inputs
is HTML-escaped. See ``docs/report.md``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from riskdistill.io import atomic_write_text
from riskdistill.viz.report_data import NOMINAL, ClosedLoopRun, JsonInput, ReportInputError, ReportInputs
from riskdistill.viz.report_figures import (
    FramePanel,
    jpeg_bytes,
    pick_thumbnail_routes,
    plot_abilities,
    plot_lead_times,
    plot_metric_bars,
    png_bytes,
    render_route_thumbnail,
    student_predictor,
)
from riskdistill.viz.report_html import CSS, HEADER_COLOR, esc, fmt, fmt_ci, img_tag, note, table
from riskdistill.viz.report_names import display_of, split_seed
from riskdistill.viz.report_route import infraction_cell
from riskdistill.viz.report_stats import (
    ABILITY_NAMES,
    CLOSED_LOOP_METRICS,
    RunGroup,
    generalisation_deltas,
    group_runs,
    summary_value,
)

__all__ = [
    "CSS",
    "HEADER_COLOR",
    "ReportInputError",
    "ReportInputs",
    "build_report",
    "esc",
    "fmt",
    "img_tag",
    "render_report_html",
    "table",
]

REPORT_NAME = "report.html"
MAX_GENERIC_ROWS = 120


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": scalar}``; lists of scalars longer than 6 are summarised by length."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        if all(isinstance(v, (int, float, str, bool)) or v is None for v in obj):
            out[prefix] = ", ".join(str(v) for v in obj) if len(obj) <= 6 else f"[{len(obj)} values]"
        else:
            for i, v in enumerate(obj[:20]):
                out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = obj
    return out


def find_lists(obj: Any, needle: str, path: str = "") -> dict[str, list[float]]:
    """Every list of numbers stored under a key containing ``needle``, by its dotted path."""
    found: dict[str, list[float]] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{path}.{k}" if path else str(k)
            if (
                needle in str(k).lower()
                and isinstance(v, list)
                and all(isinstance(x, (int, float)) for x in v)
            ):
                found[p] = [float(x) for x in v]
            else:
                found.update(find_lists(v, needle, p))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:200]):
            found.update(find_lists(v, needle, f"{path}[{i}]"))
    return found


def machine_info() -> dict[str, str]:
    from riskdistill.runs import git_commit

    try:
        from importlib.metadata import version

        pkg = version("riskdistill")
    except Exception:
        pkg = "unknown"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git commit": (git_commit() or "unknown")[:12],
        "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, {platform.system()})",
        "python": platform.python_version(),
        "riskdistill": pkg,
    }


# ------------------------------------------------------------------------------------------ sections
def _section(title: str, body: str, sid: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'


def _header(inputs: ReportInputs, info: dict[str, str]) -> str:
    names = [r.name for r in inputs.closed_loop] + [split_seed(j.label)[0] for j in inputs.open_loop]
    compared = list(dict.fromkeys(names))  # configurations; their seeds are in the tables
    what = ", ".join(compared) if compared else "no runs"
    meta = "".join(f"<span><b>{esc(k)}:</b> {esc(v)}</span>" for k, v in info.items())
    return (
        f"<header><h1>{esc(inputs.title)}</h1>"
        f'<div class="meta"><span><b>compared:</b> {esc(what)}</span></div>'
        f'<div class="meta">{meta}</div></header>'
    )


def closed_loop_section(groups: Sequence[RunGroup], runs: Sequence[ClosedLoopRun]) -> str:
    metrics = list(CLOSED_LOOP_METRICS) + [(a, a.replace("_", " ")) for a in ABILITY_NAMES]
    parts = [
        '<p class="muted">Bench2Drive metrics; groups of several runs (seeds) show mean &plusmn; 95 % '
        "confidence half-width (Student t over the seeds); a single run shows its value [95 % interval over "
        "its routes] (percentile bootstrap) for DS, SR, RC and IP. The plots' error bars are the same "
        "intervals. Abilities are success rates in %.</p>"
    ]
    headers = ["run", "seeds", "routes"] + [t for _, t in metrics]
    rows = []
    for g in groups:
        n = len(g.runs)
        routes = sorted({len(r.routes) for r in g.runs})
        rows.append(
            [esc(g.name), str(n), esc("/".join(map(str, routes)))] + [_group_cell(g, k) for k, _ in metrics]
        )
    parts.append("<h3>Per configuration</h3>" + table(headers, rows))
    if any(len(g.runs) > 1 for g in groups):
        rows = [
            [esc(r.display), esc(r.path.name), str(len(r.routes))]
            + [fmt(summary_value(r.summary, k)) for k, _ in metrics]
            for r in runs
        ]
        parts.append(
            "<h3>Per run</h3>"
            + table(["run", "folder", "routes"] + [t for _, t in metrics], rows, left_cols=2)
        )
    # infractions per km
    keys = sorted({k for r in runs for k in (r.summary.get("infractions_per_km") or {})})
    if keys:
        rows = []
        for g in groups:
            rows.append(
                [esc(g.name)]
                + [
                    fmt_ci(
                        _mean_of([(r.summary.get("infractions_per_km") or {}).get(k) for r in g.runs]),
                        len(g.runs),
                        3,
                    )
                    for k in keys
                ]
            )
        parts.append(
            "<h3>Infractions per km</h3>" + table(["run"] + [k.replace("_", " ") for k in keys], rows)
        )
    plots = []
    for key, title in (("driving_score", "Driving Score"), ("success_rate", "Success Rate %")):
        png = plot_metric_bars(groups, key, title)
        if png:
            plots.append(f"<figure>{img_tag(png, 'image/png', title, 'plot')}</figure>")
    png = plot_abilities(groups)
    if png:
        plots.append(f"<figure>{img_tag(png, 'image/png', 'abilities', 'plot')}</figure>")
    if plots:
        parts.append('<div class="grid">' + "".join(plots) + "</div>")
    return "".join(parts)


def _group_cell(g: RunGroup, key: str) -> str:
    """``mean &plusmn; half`` over seeds, ``value [low, high]`` over the routes of one run, or the value."""
    n = len(g.runs)
    if n > 1:
        return fmt_ci(g.stat(key), n)
    iv = g.interval(key)
    if iv is None:
        return "&ndash;"
    value, lo, hi, method = iv
    return f"{value:.2f} [{lo:.2f}, {hi:.2f}]" if method == "routes" else f"{value:.2f}"


def _mean_of(values: Sequence[Any]) -> tuple[float, float] | None:
    from riskdistill.viz.report_stats import mean_ci

    return mean_ci([float(v) for v in values if isinstance(v, (int, float))])


def generalisation_section(groups: Sequence[RunGroup]) -> str | None:
    pairs = generalisation_deltas(groups)
    if not pairs:
        return None
    metrics = [*CLOSED_LOOP_METRICS[:3], ("ability_mean", "Ability mean")]
    headers = (
        ["run", "condition"]
        + [f"{t} nominal" for _, t in metrics]
        + [f"{t} shifted" for _, t in metrics]
        + [f"&Delta; {t}" for _, t in metrics]
    )
    rows = []
    for nom, sh in pairs:
        a = [nom.stat(k) for k, _ in metrics]
        b = [sh.stat(k) for k, _ in metrics]
        d = [fmt(y[0] - x[0]) if x and y else "&ndash;" for x, y in zip(a, b, strict=True)]
        rows.append(
            [esc(nom.label), esc(sh.condition)]
            + [fmt_ci(x, len(nom.runs)) for x in a]
            + [fmt_ci(y, len(sh.runs)) for y in b]
            + d
        )
    hdr = "".join(f"<th>{h}</th>" if h.startswith("&Delta;") else f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (
        '<p class="muted">The same suite under a changed sensor rig or held-out layouts, against the nominal '
        "rig (&Delta; = shifted &minus; nominal).</p>"
        f"<table><thead><tr>{hdr}</tr></thead><tbody>{body}</tbody></table>"
    )


def comparison_of(groups: Sequence[RunGroup]) -> tuple[dict[str, Any] | None, str | None]:
    """The comparison (``riskdistill.evaluation.compare.compare_runs``) of the nominal run groups, when
    there are at least two labels; or a note why not."""
    from riskdistill.evaluation.compare import compare_runs, load_run

    nominal = [g for g in groups if g.condition == NOMINAL]
    if len({g.label for g in nominal}) < 2:
        return None, None
    try:
        runs = [load_run(r.path, g.label) for g in nominal for r in g.runs]
        return compare_runs(runs), None
    except Exception as exc:  # e.g. a folder without results.json
        return None, f"paired tests not computed: {type(exc).__name__}: {exc}"


def _ci_cell(ci: Any, digits: int = 2) -> str:
    if not isinstance(ci, dict) or ci.get("mean") is None:
        return "&ndash;"
    cell = fmt(ci["mean"], digits)
    if ci.get("ci_low") is not None and ci.get("ci_high") is not None:
        cell += f" [{fmt(ci['ci_low'], digits)}, {fmt(ci['ci_high'], digits)}]"
    return cell


def comparison_html(comparison: dict[str, Any], source: str) -> str:
    """A comparison dict (``comparison.json`` layout of ``riskdistill eval compare``) as two tables: the
    metrics per label with their 95 % CI, and the paired per-route differences against the reference."""
    titles = dict(CLOSED_LOOP_METRICS)
    labels = comparison.get("labels") or {}
    parts = [
        f'<p class="muted">{esc(source)}. Cells: mean [95 % CI] (t over seeds; bootstrap over routes '
        "for a single seed).</p>"
    ]
    keys: list[str] = []
    for g in labels.values():
        for k in g.get("metrics") or {}:
            if k not in keys:
                keys.append(k)
    if labels:
        rows = [
            [esc(name), str(len(g.get("runs") or []))]
            + [_ci_cell((g.get("metrics") or {}).get(k)) for k in keys]
            for name, g in labels.items()
        ]
        parts.append(table(["label", "runs"] + [titles.get(k, k) for k in keys], rows))
    paired = comparison.get("paired") or []
    rows = []
    for e in paired:
        for key, name in (("score_composed", "route score"), ("score_route", "route completion")):
            t = e.get(key)
            if not isinstance(t, dict):
                continue
            diff = _ci_cell(
                {"mean": t.get("mean_diff"), "ci_low": t.get("ci_low"), "ci_high": t.get("ci_high")}
            )
            rig = e.get("rig")
            rows.append(
                [
                    esc(e.get("label")) + ("" if rig in (None, "nominal") else f" @ {esc(rig)}"),
                    esc(e.get("reference")),
                    esc(name),
                    fmt(t.get("n")),
                    diff,
                    fmt(t.get("wilcoxon_p"), 4),
                    fmt(t.get("ttest_p"), 4),
                ]
            )
    if rows:
        parts.append("<h3>Paired per-route differences (label &minus; reference)</h3>")
        parts.append(
            table(
                ["label", "reference", "metric", "routes", "mean diff [95 % CI]", "Wilcoxon p", "paired t p"],
                rows,
                left_cols=3,
            )
        )
    return "".join(parts)


def significance_section(
    groups: Sequence[RunGroup], compare: JsonInput | None
) -> tuple[str | None, str | None]:
    """HTML of the comparison (from ``--compare`` or computed from the nominal runs) and a note."""
    if compare is not None:
        data = compare.data
        if isinstance(data, dict) and ("labels" in data or "paired" in data):
            return comparison_html(data, f"From {compare.path.name}"), None
        return json_table_section([compare], f"All values of {compare.path.name}."), None
    comparison, why = comparison_of(groups)
    if comparison is None:
        return None, why
    return comparison_html(comparison, "Computed from the closed-loop folders (nominal runs)"), None


def json_table_section(items: Sequence[JsonInput], intro: str) -> str:
    """Scalars of several JSON files side by side (one column per file). A file with a ``metrics`` object
    (the open-loop layout) shows that object; ``per_sample`` lists are left out."""
    flat = []
    for j in items:
        d = j.data
        if isinstance(d, dict) and isinstance(d.get("metrics"), dict):
            extra = {k: v for k, v in d.items() if k not in ("metrics", "per_sample", "grid")}
            d = {**d["metrics"], **{k: v for k, v in extra.items() if not isinstance(v, (dict, list))}}
        elif isinstance(d, dict):
            d = {k: v for k, v in d.items() if k != "per_sample"}
        flat.append(flatten(d))
    keys: list[str] = []
    for f in flat:
        for k, v in f.items():
            short = isinstance(v, str) and len(v) < 80
            if k not in keys and (isinstance(v, (int, float, bool)) or v is None or short):
                keys.append(k)
    note_rows = ""
    if len(keys) > MAX_GENERIC_ROWS:
        note_rows = note(f"{len(keys) - MAX_GENERIC_ROWS} more values not shown")
        keys = keys[:MAX_GENERIC_ROWS]
    rows = [[esc(k)] + [fmt(f.get(k), 4) for f in flat] for k in keys]
    return (
        f'<p class="muted">{esc(intro)}</p>'
        + table(["metric"] + [display_of(j.label) for j in items], rows)
        + note_rows
    )


RISK_OUTCOME_KEYS: tuple[tuple[str, str], ...] = (
    ("n_events", "events"),
    ("detection_rate", "detection rate"),
    ("lead_time_mean_s", "mean lead time [s]"),
    ("lead_time_median_s", "median lead time [s]"),
    ("pre_event_risk_mean", "pre-event risk"),
    ("background_risk_mean", "background risk"),
    ("false_alarm_rate", "false-alarm rate"),
    ("warning_auc", "warning AUC"),
)


def lead_time_section(inputs: ReportInputs) -> str | None:
    """Risk vs outcome of the closed-loop runs (``risk_outcome.json``), with a lead-time histogram."""
    series: dict[str, list[float]] = {}
    rows = []
    for run in inputs.closed_loop:
        ro = run.risk_outcome
        if not ro:
            continue
        events = ro.get("events") or []
        series[run.display] = [
            e["lead_time_s"] for e in events if isinstance(e, dict) and e.get("lead_time_s") is not None
        ]
        rows.append(
            [esc(run.display), fmt(ro.get("threshold")), fmt(ro.get("window_s"), 1)]
            + [fmt(ro.get(k), 3) for k, _ in RISK_OUTCOME_KEYS]
        )
    sources: list[JsonInput] = ([inputs.compare] if inputs.compare else []) + list(inputs.open_loop)
    for src in sources:
        for path, vals in find_lists(src.data, "lead_time").items():
            series[f"{src.label}: {path}"] = vals
    if not rows and not any(series.values()):
        return None
    parts = [
        '<p class="muted">Risk vs outcome: does the predicted risk on the planned path rise before an '
        "infraction, and how early? Lead time = event time &minus; first time the path risk reached the "
        "threshold within the window before the event.</p>"
    ]
    if rows:
        parts.append(table(["run", "threshold", "window [s]"] + [t for _, t in RISK_OUTCOME_KEYS], rows))
    png = plot_lead_times(series)
    if png is not None:
        parts.append(f"<figure>{img_tag(png, 'image/png', 'lead-time histogram', 'plot')}</figure>")
    else:
        parts.append(note("no infraction was preceded by risk above the threshold: no lead times to plot"))
    return "".join(parts)


def routes_section(
    runs: Sequence[ClosedLoopRun], max_thumbnails: int, pages: dict[tuple[int, str], str] | None = None
) -> str:
    """Per run: the routes table (route ids link to their page in ``pages``, infractions summarised in a
    wrapped cell) and thumbnails of the worst routes."""
    pages = pages or {}
    parts = [
        '<p class="muted">Click a route for its page: why it failed, its infractions in time, the plan and '
        "the predicted risk over time, and its Rerun recording. Failed routes are shaded.</p>"
    ]
    notes_once: set[str] = set()
    for i, run in enumerate(runs):
        rows, classes = [], []
        for o in run.routes:
            href = pages.get((i, o.route_id))
            rid = f'<a href="{esc(href)}">{esc(o.route_id)}</a>' if href else esc(o.route_id)
            rows.append(
                [
                    rid,
                    esc(o.scenario),
                    esc(o.status),
                    fmt(o.scores["score_composed"]),
                    fmt(o.scores["score_route"]),
                    fmt(o.scores["score_penalty"], 3),
                    infraction_cell(o, href),
                ]
            )
            classes.append("" if o.success else "fail")
        parts.append(f'<h3>{esc(run.display)} <span class="muted">({esc(run.path)})</span></h3>')
        parts.append(
            table(
                ["route", "scenario", "status", "score", "RC %", "IP", "infractions"],
                rows,
                left_cols=3,
                row_classes=classes,
                wrap=(6,),
            )
        )
        figs = []
        chosen = pick_thumbnail_routes(run.routes, max_thumbnails)
        for o in chosen:
            try:
                img = render_route_thumbnail(o)
            except Exception as exc:
                figs.append(
                    f"<figure><figcaption>{esc(o.route_id)}: no thumbnail "
                    f"({esc(type(exc).__name__)}: {esc(exc)})</figcaption></figure>"
                )
                continue
            cap = f"{esc(o.route_id)} &middot; {esc(o.scenario)} &middot; {esc(o.status)}"
            thumb = img_tag(png_bytes(img), "image/png", o.route_id, width=256)
            href = pages.get((i, o.route_id))
            if href:
                thumb = f'<a href="{esc(href)}">{thumb}</a>'
            figs.append(f"<figure>{thumb}<figcaption>{cap}</figcaption></figure>")
            if o.trajectory_xy is None:
                notes_once.add(
                    "route files without an ego trajectory: thumbnails show the route and the "
                    "infraction positions only"
                )
        if len(chosen) < len(run.routes):
            parts.append(
                f'<p class="muted">Thumbnails of {len(chosen)} of {len(run.routes)} routes '
                "(failures first).</p>"
            )
        parts.append('<div class="grid">' + "".join(figs) + "</div>")
    return "".join(note(n) for n in sorted(notes_once)) + "".join(parts)


def frames_section(panels: Sequence[FramePanel], student_names: Sequence[str], notes: Sequence[str]) -> str:
    legend = (
        '<p class="muted">Camera mosaic; BEV risk maps on the shared grid (forward up): the teacher\'s map, '
        "then each student's prediction with its L1 to the teacher. Orange dots: expert future trajectory; "
        "green line: the student's planned waypoints; cyan cross: ego rear axle.</p>"
    )
    parts = [legend] + [note(n) for n in notes]
    for p in panels:
        reasons = ""
        if p.reasons:
            reasons = table(
                ["object", "risk", "teacher reason"],
                [[esc(c), fmt(r), esc(t)] for c, r, t in p.reasons],
                left=(2,),
            )
        frame_notes = "".join(note(n) for n in p.notes)
        parts.append(
            f'<div class="frame"><h3>{esc(p.frame_id)} &middot; {esc(p.scenario)}</h3>'
            + img_tag(jpeg_bytes(p.mosaic, max_width=1100), "image/jpeg", "cameras " + p.frame_id, "mosaic")
            + f'<div class="grid">{img_tag(png_bytes(p.bev), "image/png", "risk " + p.frame_id)}'
            f"<div>{reasons}</div></div>{frame_notes}</div>"
        )
    return "".join(parts)


# ------------------------------------------------------------------------------------------ sample frames
def _sample_frames(inputs: ReportInputs) -> str | None:
    """The sample-frames section body, or None without a data set."""
    notes: list[str] = []
    if inputs.data is None:
        return None
    from riskdistill.data.storage import RecordedDataset
    from riskdistill.viz.report_figures import label_grid, render_sample_frames

    if inputs.labels is None:
        notes.append("no label folder given (--labels): the teacher's risk maps and reasons are left out")
    students, names, grids = [], [], []
    if inputs.checkpoints:
        rig = RecordedDataset(inputs.data).manifest.get("rig")
        rig_name = rig.get("name") if isinstance(rig, dict) else rig
        for ckpt in inputs.checkpoints:
            try:
                name, predict, grid = student_predictor(ckpt, rig_name)
            except Exception as exc:
                notes.append(f"checkpoint {ckpt}: could not be loaded ({type(exc).__name__}: {exc})")
                continue
            name = display_of(name)
            students.append((name, predict))
            names.append(name)
            grids.append(grid)
    else:
        notes.append("no student checkpoint given (--checkpoint): predicted risk maps and plans are left out")
    grid = label_grid(inputs.labels) or next((g for g in grids if g is not None), None)
    panels, _ = render_sample_frames(inputs.data, inputs.labels, students, inputs.n_sample_frames, grid=grid)
    return frames_section(panels, names, notes)


# ------------------------------------------------------------------------------------------ assembly
def render_report_html(inputs: ReportInputs, pages: dict[tuple[int, str], str] | None = None) -> str:
    """The whole report as an HTML string (see the module doc); ``pages`` are the route pages to link
    (``{(run index, route id): relative path}``, written by :func:`build_report`)."""
    info = machine_info()
    sections: list[str] = []
    notes: list[str] = []
    groups = group_runs(inputs.closed_loop)
    if inputs.closed_loop:
        sections.append(
            _section("Closed loop", closed_loop_section(groups, inputs.closed_loop), "closed-loop")
        )
        gen = generalisation_section(groups)
        if gen:
            sections.append(_section("Generalisation: nominal vs shifted", gen, "generalisation"))
        else:
            notes.append(
                "no run under a shifted condition (LABEL:CONDITION=PATH): generalisation section left out"
            )
    else:
        notes.append(
            "no closed-loop results given: closed-loop, generalisation and per-route sections left out"
        )
    sig, why = significance_section(groups, inputs.compare)
    if sig:
        sections.append(_section("Comparison and paired significance tests", sig, "significance"))
    else:
        notes.append(
            why
            or "no comparison JSON (--compare) and fewer than two nominal configurations: no comparison "
            "or significance tests"
        )
    if inputs.open_loop:
        sections.append(
            _section(
                "Open loop",
                json_table_section(
                    inputs.open_loop,
                    "L2 / collision rate / risk-map and perception metrics, one column per file.",
                ),
                "open-loop",
            )
        )
    else:
        notes.append("no open-loop results given: open-loop section left out")
    lead = lead_time_section(inputs)
    if lead:
        sections.append(_section("Risk vs outcome", lead, "risk-vs-outcome"))
    elif inputs.closed_loop:
        notes.append(
            "no risk_outcome.json in the closed-loop folders (the drivers predicted no risk): "
            "risk-vs-outcome section left out"
        )
    if inputs.training:
        from riskdistill.viz.report_training import training_section

        sections.append(_section("Training curves", training_section(inputs.training), "training"))
    else:
        notes.append("no training run folders given (--training): training curves left out")
    if inputs.closed_loop:
        sections.append(
            _section("Routes", routes_section(inputs.closed_loop, inputs.max_thumbnails, pages), "routes")
        )
    frames = _sample_frames(inputs)
    if frames is not None:
        sections.append(_section("Sample frames: cameras and risk maps", frames, "frames"))
    else:
        notes.append("no data set given (--data): camera mosaics and BEV risk panels are left out")
    notes_html = _section("Notes", "".join(note(n) for n in notes), "notes") if notes else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(inputs.title)}</title><style>{CSS}</style></head><body>"
        f"{_header(inputs, info)}<main>{notes_html}{''.join(sections)}</main></body></html>\n"
    )


def build_report(inputs: ReportInputs, out_dir: str | Path, workers: int = 1) -> Path:
    """Write ``out_dir/report.html`` and the route pages ``out_dir/routes/...`` (each atomically) and return
    the report's path. ``workers``: processes that render the route pages (the same pages with any number).
    """
    from riskdistill.viz.report_route import write_route_pages

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_NAME
    pages = write_route_pages(inputs.closed_loop, path, CSS, inputs.max_route_pages, workers)
    atomic_write_text(path, render_report_html(inputs, pages))
    return path
