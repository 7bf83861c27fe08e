"""``riskdistill eval ...``: closed-loop evaluation."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from riskdistill.cli.common import fail

app = typer.Typer(help="Evaluate drivers.", no_args_is_help=True)
console = Console()


def print_summary(summary: dict, title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")

    def fmt(v: object) -> str:
        return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

    for key in ("driving_score", "success_rate", "efficiency", "comfortness"):
        table.add_row(key, fmt(summary.get(key)))
    for ability, value in (summary.get("abilities") or {}).items():
        table.add_row(f"ability: {ability}", fmt(value))
    console.print(table)


@app.command("closed-loop")
def closed_loop(
    suite: str = typer.Option("bench", "--suite", help="train | val | bench | path to a suite JSON."),
    driver: str = typer.Option("expert", "--driver", help="Driver to evaluate (`expert`)."),
    out: Path = typer.Option(Path("runs/eval"), "--out", help="Output folder (resumable)."),
    workers: int = typer.Option(2, "--workers"),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N routes."),
) -> None:
    """Run a driver over a route suite and score it the Bench2Drive way."""
    from riskdistill.config import ConfigError
    from riskdistill.evaluation.closed_loop import evaluate_suite
    from riskdistill.runs import create_run_dir
    from riskdistill.sim.suites import load_suite

    try:
        s = load_suite(suite)
    except ConfigError as exc:
        fail(str(exc))
    create_run_dir(
        out, "eval closed-loop", {"suite": suite, "driver": driver, "workers": workers, "limit": limit}
    )
    try:
        _, summary = evaluate_suite(s, driver, out, workers=workers, limit=limit)
    except ValueError as exc:
        fail(str(exc))
    print_summary(summary, f"{driver} on {s.name} ({summary.get('n_routes', '?')} routes)")
    console.print(f"results: {out / 'results.json'}  summary: {out / 'summary.json'}")
