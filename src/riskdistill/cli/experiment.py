"""``riskdistill demo`` and ``riskdistill experiment``: the RSD study end to end (see ``experiment/``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from riskdistill.cli.common import fail

console = Console()


def _fmt(v: Any, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def results_table(result: Any) -> Table:
    """Closed-loop Driving Score / Success Rate / Route Completion per student and rig, and the open-loop
    L2, collision rate and risk-map error of each student on the recorded bench frames."""
    table = Table(title="closed loop (bench routes) | open loop (recorded bench frames)")
    for col in ("run", "rig", "DS", "SR %", "RC %", "L2@2s m", "coll@2s %", "risk L1", "risk r"):
        table.add_column(col, justify="left" if col in ("run", "rig") else "right")
    for key, summ in result.summaries.items():
        name, rig = key.split("/", 1)
        ol = result.open_loop.get(name, {}) if rig == "nominal" else {}
        table.add_row(
            name,
            rig,
            _fmt(summ.get("driving_score"), 1),
            _fmt(summ.get("success_rate"), 1),
            _fmt(summ.get("route_completion"), 1),
            _fmt(ol.get("l2_2s")),
            _fmt(ol.get("collision_rate_pct_2s"), 1),
            _fmt(ol.get("risk_l1"), 3),
            _fmt(ol.get("risk_pearson")),
        )
    return table


def _run(
    preset: str, config: Path | None, out: Path | None, overrides: dict[str, Any], sets: list[str]
) -> None:
    from riskdistill.config import ConfigError, apply_overrides, deep_merge
    from riskdistill.experiment import ExperimentConfig, experiment_config, run_experiment

    try:
        if config is not None:
            base = ExperimentConfig.load(config).to_dict()
        else:
            base = experiment_config(preset).to_dict()
        merged = apply_overrides(deep_merge(base, overrides), sets)
        cfg = ExperimentConfig.from_dict(merged, source=str(config or f"preset {preset!r}"))
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    out = out or Path("runs") / f"{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}"
    console.print(f"[bold]riskdistill {cfg.name}[/] -> {out}")
    try:
        result = run_experiment(cfg, out, console)
    except ValueError as exc:
        fail(str(exc))
    console.print(results_table(result))
    console.print(result.stages.timing_table())
    console.print(f"report: {result.report}")
    console.print(f"outputs: {out}")


def demo(
    out: Path = typer.Option(
        None, "--out", help="Output folder (default: runs/demo-<time>); rerun to resume."
    ),
    quick: bool = typer.Option(False, "--quick", help="The same pipeline in a few minutes (tiny budgets)."),
    workers: int = typer.Option(2, "--workers", help="Processes for recording and closed-loop evaluation."),
) -> None:
    """The main job on the built-in simulator: record, label with the oracle teacher, train a baseline and an
    RSD student, evaluate both in open and closed loop (nominal and a shifted rig), write the HTML report."""
    _run("quick" if quick else "demo", None, out, {"workers": workers}, [])


def experiment(
    preset: str = typer.Option("full", "--preset", help="demo | quick | full (ignored with --config)."),
    config: Path = typer.Option(None, "--config", help="An ExperimentConfig JSON file."),
    out: Path = typer.Option(None, "--out", help="Output folder; rerun with the same folder to resume."),
    set_: list[str] = typer.Option([], "--set", help="Dotted overrides, e.g. --set train.max_steps=2000."),
) -> None:
    """The full study: seeds x {baseline, RSD, control} x {nominal rig, shifted rigs}, on the bench suite with
    its held-out scenario and layout; ends in the comparison report with confidence intervals."""
    _run(preset, config, out, {}, set_)
