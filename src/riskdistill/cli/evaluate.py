"""``riskdistill eval ...``: closed loop, open loop, comparisons, generalisation and risk vs outcome."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from riskdistill.cli.common import comma_list, fail

app = typer.Typer(help="Evaluate drivers.", no_args_is_help=True)
console = Console()


def _fmt(v: object) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def print_summary(summary: dict, title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("driving_score", "success_rate", "efficiency", "comfortness"):
        table.add_row(key, _fmt(summary.get(key)))
    for ability, value in (summary.get("abilities") or {}).items():
        table.add_row(f"ability: {ability}", _fmt(value))
    console.print(table)


@app.command("closed-loop")
def closed_loop(
    suite: str = typer.Option("bench", "--suite", help="train | val | bench | path to a suite JSON."),
    driver: str = typer.Option(
        "expert", "--driver", help="`expert`, a student checkpoint folder, or package.module:factory."
    ),
    out: Path = typer.Option(Path("runs/eval"), "--out", help="Output folder (resumable)."),
    workers: int = typer.Option(2, "--workers"),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N routes."),
    rig_shift: str | None = typer.Option(
        None, "--rig-shift", help="Camera rig change, e.g. height+0.3, pitch-3deg, drop-CAM_BACK; `list`."
    ),
    scenarios: str = typer.Option(
        "all", "--scenarios", help="all | heldout | heldout-layout | heldout-scenario | seen."
    ),
    rig: str | None = typer.Option(None, "--rig", help="Rig for a student (default: its checkpoint's)."),
    jpeg_quality: int | None = typer.Option(
        None, "--jpeg-quality", min=1, max=100, help="Pass observations through JPEG at this quality."
    ),
    route_timeout: float | None = typer.Option(
        None, "--route-timeout", min=1.0, help="Cap every route's timeout (s), for smoke tests / benchmarks."
    ),
    label: str | None = typer.Option(None, "--label", help="Label for `eval compare` (baseline, rsd, ...)."),
    seed: int | None = typer.Option(None, "--seed", help="Training seed of the driver, for `eval compare`."),
    plan_every_steps: int | None = typer.Option(
        None,
        "--plan-every-steps",
        min=1,
        help="A student plans on every k-th 10 Hz step and holds its plan in between (5 = 2 Hz; "
        "default: the driver's).",
    ),
    engine: str | None = typer.Option(
        None, "--engine", help="A student's inference engine: eager (PyTorch) | onnx (default: the driver's)."
    ),
    occupancy_brake: bool = typer.Option(
        False,
        "--occupancy-brake",
        help="A student stops when its own BEV occupancy shows an obstacle in its planned path within the "
        "stopping distance (models.occupancy_brake; off by default).",
    ),
    plan_output: str | None = typer.Option(
        None,
        "--plan-output",
        help="Which output of a student drives: auto (the planning head's: path + speed when it predicts "
        "them) | waypoints (default: auto).",
    ),
    rerun: bool = typer.Option(
        False, "--rerun", help="Also write a Rerun recording OUT/rerun/<route_id>.rrd of every route it runs."
    ),
    rerun_every: int | None = typer.Option(
        None,
        "--rerun-every",
        min=1,
        help="Record every N-th simulator step (10 Hz; implies --rerun; default 2).",
    ),
    trace: bool = typer.Option(
        False,
        "--trace",
        help="Also write a per-step trace OUT/trace/<route_id>.jsonl of every route: speed, plan, the "
        "planner's stop probability, the nearest road users with the driver's occupancy on each, infractions "
        "(evaluation.trace; occupancy needs --engine eager or --occupancy-brake).",
    ),
    trace_every: int = typer.Option(
        5, "--trace-every", min=1, help="Trace every N-th simulator step (and every step with an infraction)."
    ),
) -> None:
    """Run a driver over a route suite and score it the Bench2Drive way."""
    record_every = (rerun_every or 2) if rerun or rerun_every is not None else None
    from riskdistill.config import ConfigError
    from riskdistill.evaluation.closed_loop import evaluate_suite
    from riskdistill.evaluation.generalisation import RIG_SHIFTS, EvalVariant
    from riskdistill.runs import create_run_dir
    from riskdistill.sim.suites import load_suite

    if rig_shift == "list":
        table = Table(title="named rig shifts (terms combine with commas)")
        table.add_column("shift")
        table.add_column("meaning")
        for name, doc in RIG_SHIFTS.items():
            table.add_row(name, doc)
        console.print(table)
        return
    try:
        s = load_suite(suite)
    except ConfigError as exc:
        fail(str(exc))
    variant = EvalVariant(
        rig_shift=rig_shift,
        scenarios=scenarios,
        jpeg_quality=jpeg_quality,
        rig=rig,
        route_timeout_s=route_timeout,
    )
    config = {
        "suite": suite,
        "driver": driver,
        "workers": workers,
        "limit": limit,
        "variant": variant.to_dict(),
        "label": label,
        "seed": seed,
        "rerun_every": record_every,
        "trace_every": trace_every if trace else None,
        "driver_options": {
            "plan_every_steps": plan_every_steps,
            "engine": engine,
            "occupancy_brake": occupancy_brake or None,
            "plan_output": plan_output,
        },
    }
    driver_options = {k: v for k, v in config["driver_options"].items() if v is not None} or None
    try:
        from riskdistill.evaluation.drivers import make_driver_factory
        from riskdistill.evaluation.generalisation import parse_rig_shift, select_routes
        from riskdistill.evaluation.trace import TraceRecording
        from riskdistill.viz.rerun_log import RerunRecording

        recorders: list = [RerunRecording(every=record_every)] if record_every is not None else []
        if trace:
            recorders.append(TraceRecording(every=trace_every))
        make_driver_factory(driver, rig, driver_options)
        parse_rig_shift(rig_shift)
        select_routes(s, scenarios)
        create_run_dir(out, "eval closed-loop", config, seeds={"driver": seed} if seed is not None else None)
        _, summary = evaluate_suite(
            s,
            driver,
            out,
            workers=workers,
            limit=limit,
            variant=variant,
            recorders=recorders,
            driver_options=driver_options,
        )
    except ValueError as exc:
        fail(str(exc))
    title = f"{Path(driver).name} on {s.name}"
    if scenarios != "all" or rig_shift:
        title += f" ({scenarios}, rig shift {rig_shift or 'none'})"
    print_summary(summary, f"{title} ({summary.get('n_routes', '?')} routes)")
    console.print(
        f"results: {out / 'results.json'}  summary: {out / 'summary.json'}  routes: {out / 'routes'}"
    )
    if record_every is not None:
        console.print(f"rerun recordings: {out / 'rerun'}  (open one with: rerun {out / 'rerun'}/ROUTE.rrd)")
    if trace:
        console.print(f"per-step traces: {out / 'trace'}/ROUTE.jsonl")


@app.command("open-loop")
def open_loop(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Student checkpoint folder."),
    data: Path = typer.Option(..., "--data", help="Recorded data set folder."),
    labels: Path | None = typer.Option(
        None, "--labels", help="Teacher risk labels (default: DATA/labels/risk if present)."
    ),
    out: Path = typer.Option(Path("runs/open_loop.json"), "--out", help="Metrics JSON file."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N frames."),
    stride: int = typer.Option(
        1, "--stride", min=1, help="Every N-th frame (a quick check over all routes)."
    ),
    convention: str = typer.Option("vad", "--convention", help="L2 convention: vad | uniad."),
    device: str = typer.Option("cpu", "--device"),
    workers: int = typer.Option(0, "--workers", help="DataLoader workers."),
    recall_cameras: str | None = typer.Option(
        None,
        "--recall-cameras",
        help="Comma-separated cameras of the recording whose view makes an object count in the "
        "occupancy recall by range (default: all), to score students of different rigs on the same objects.",
    ),
) -> None:
    """Planning L2 / collisions, risk-map agreement with the teacher and occupancy IoU on recorded data."""
    from riskdistill.data.storage import DatasetError
    from riskdistill.evaluation.open_loop import evaluate_open_loop
    from riskdistill.io import atomic_write_json

    if convention not in ("vad", "uniad"):
        fail(f"--convention must be 'vad' or 'uniad', got {convention!r}")
    if not (checkpoint / "config.json").is_file():
        fail(f"{checkpoint}: not a student checkpoint folder (no config.json)")
    try:
        res = evaluate_open_loop(
            checkpoint,
            data,
            labels,
            batch_size=batch_size,
            limit=limit,
            stride=stride,
            convention=convention,  # type: ignore[arg-type]
            device=device,
            num_workers=workers,
            recall_cameras=None if recall_cameras is None else comma_list(recall_cameras),
        )
    except (DatasetError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, res)
    table = Table(title=f"open loop: {checkpoint.name} on {data.name} ({res['metrics']['n_samples']} frames)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in res["metrics"].items():
        if not isinstance(value, dict) and key != "expert_plan":  # plans: the table below
            table.add_row(key, _fmt(value))
    console.print(table)
    m = res["metrics"]
    plans = Table(title="planning L2 (m): the student next to plans that need no learning")
    for col in ("plan", "L2@1s", "L2@2s", "L2@3s"):
        plans.add_column(col, justify="right" if col != "plan" else "left")
    rows = {"student waypoints": m, "student driven plan": m.get("driven_plan", {}), **m.get("baselines", {})}
    if m.get("expert_plan"):  # the recorded expert's plan in the driven plan's form: that form's own error
        rows["expert's plan as driven (privileged)"] = m["expert_plan"]
    for name, r in rows.items():
        plans.add_row(name, *(_fmt(r.get(k)) for k in ("l2_1s", "l2_2s", "l2_3s")))
    console.print(plans)
    for name, d in m.get("waypoints_vs_baselines", {}).items():
        if d.get("diff_m") is not None:
            console.print(
                f"waypoints - {name} at {d['horizon_s']:g} s: {d['diff_m']:+.3f} m "
                f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] (95 %, {d['n_routes']} routes resampled; "
                f"waypoints better on {100 * d['student_better_share']:.0f} % of {d['n_samples']} frames)"
            )
    console.print(f"metrics: {out}")


@app.command("compare")
def compare(
    runs: list[str] = typer.Argument(..., help="Closed-loop output folders, optionally LABEL=DIR."),
    out: Path = typer.Option(Path("runs/compare"), "--out", help="Folder for comparison.json / .md."),
    reference: str | None = typer.Option(None, "--reference", help="Label to pair against (default: first)."),
    pair: list[str] = typer.Option(
        [],
        "--pair",
        help="A:B pairs compared as A - B, e.g. --pair rsd:baseline --pair rsd:control "
        "(default: every label against the reference).",
    ),
) -> None:
    """Mean and 95 % CI per label and rig (seeds or bootstrap over routes), paired tests per rig (bootstrap
    over seeds then routes, Wilcoxon for DS, McNemar for success, Holm-adjusted)."""
    from riskdistill.evaluation.compare import write_comparison
    from riskdistill.evaluation.leaderboard import CheckpointFormatError

    pairs = None
    if pair:
        bad = [p for p in pair if p.count(":") != 1 or "" in p.split(":")]
        if bad:
            fail(f"--pair takes A:B (two labels), got {bad}")
        pairs = [tuple(p.split(":")) for p in pair]
    try:
        comparison = write_comparison(runs, out, reference, pairs)
    except (FileNotFoundError, CheckpointFormatError, ValueError) as exc:
        fail(str(exc))
    from riskdistill.evaluation.compare import render_markdown

    typer.echo(render_markdown(comparison))
    console.print(f"written: {out / 'comparison.json'}, {out / 'comparison.md'}")


@app.command("generalisation")
def generalisation(
    nominal: Path = typer.Argument(..., help="Closed-loop folder of the nominal run."),
    shifted: list[Path] = typer.Argument(..., help="Folders of the same driver under rig shifts / suites."),
    out: Path = typer.Option(Path("runs/generalisation.json"), "--out"),
) -> None:
    """Each shifted run against the nominal one: delta DS / SR and a paired per-route test."""
    from riskdistill.evaluation.generalisation import compare_to_nominal
    from riskdistill.evaluation.leaderboard import CheckpointFormatError
    from riskdistill.io import atomic_write_json

    try:
        res = compare_to_nominal(nominal, shifted)
    except (FileNotFoundError, CheckpointFormatError) as exc:
        fail(str(exc))
    atomic_write_json(out, res)
    table = Table(title=f"against nominal (DS {_fmt(res['nominal']['driving_score'])})")
    for col in ("run", "rig shift", "scenarios", "DS", "delta DS", "delta SR", "Wilcoxon p"):
        table.add_column(col)
    for s in res["shifts"]:
        v = s["variant"] or {}
        table.add_row(
            Path(s["run"]).name,
            str(v.get("rig_shift") or "-"),
            str(v.get("scenarios") or "-"),
            _fmt(s["driving_score"]),
            _fmt(s["delta_driving_score"]),
            _fmt(s["delta_success_rate"]),
            _fmt(s["paired"]["wilcoxon_p"]),
        )
    console.print(table)
    console.print(f"written: {out}")


@app.command("risk-outcome")
def risk_outcome(
    run: Path = typer.Argument(..., help="Closed-loop folder of a driver that predicts risk."),
    threshold: float = typer.Option(0.5, "--threshold", help="Path risk that counts as a warning."),
    window_s: float = typer.Option(5.0, "--window", help="Seconds before an infraction that are searched."),
    out: Path | None = typer.Option(None, "--out", help="JSON file (default RUN/risk_outcome.json)."),
) -> None:
    """Does the predicted risk on the ego's path rise before infractions, and how early?"""
    from riskdistill.evaluation.results import load_route_docs
    from riskdistill.evaluation.risk_outcome import summarise_risk_outcome
    from riskdistill.io import atomic_write_json

    try:
        docs = load_route_docs(run)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    res = summarise_risk_outcome(docs, threshold=threshold, window_s=window_s)
    if not res["n_routes_with_risk"]:
        fail(f"{run}: no route has a path-risk series (the driver predicted no risk map)")
    out = out or run / "risk_outcome.json"
    atomic_write_json(out, res)
    table = Table(title=f"risk vs outcome ({res['n_events']} collisions, threshold {threshold})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in res.items():
        if key not in ("events", "kinds"):
            table.add_row(key, _fmt(value))
    console.print(table)
    console.print(f"written: {out}")
