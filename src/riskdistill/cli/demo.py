"""``riskdistill demo``: the main job on the built-in simulator.

What runs today (the later pipeline stages - recording, teacher labels, student training - join as they
land): a preview animation of a few scenarios, then the privileged expert evaluated in closed loop on
the benchmark suite (one route per scenario type with ``--quick``), with the Bench2Drive metrics.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()

PREVIEW_SCENARIOS = ("ParkingCrossingPedestrian", "SignalizedJunctionLeftTurn", "ConstructionObstacleTwoWays")


def demo(
    out: Path = typer.Option(None, "--out", help="Run folder (default: runs/demo-<time>)."),
    quick: bool = typer.Option(False, "--quick", help="A few minutes: fewer routes."),
    workers: int = typer.Option(2, "--workers"),
) -> None:
    """Run the end-to-end demo on the built-in simulator and print where the outputs are."""
    from riskdistill.cli.evaluate import print_summary
    from riskdistill.evaluation.closed_loop import evaluate_suite
    from riskdistill.runs import create_run_dir
    from riskdistill.sim.scenarios import REGISTRY
    from riskdistill.sim.suites import Suite, load_suite
    from riskdistill.viz.preview import render_preview

    out = out or Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    create_run_dir(out, "demo", {"quick": quick, "workers": workers})
    timings: list[tuple[str, float]] = []

    t0 = time.perf_counter()
    previews = [s for s in PREVIEW_SCENARIOS if s in REGISTRY][: 1 if quick else 3]
    for name in previews:
        log = render_preview(name, 0, out / "previews" / f"{name}.gif")
        console.print(f"preview {name}: {log.end.value}, RC {log.route_completion_pct:.0f}%")
    timings.append(("scenario previews", time.perf_counter() - t0))

    t0 = time.perf_counter()
    bench = load_suite("bench")
    if quick:
        first: dict[str, object] = {}
        for r in bench.routes:
            first.setdefault(r.scenario, r)
        bench = Suite(
            name="bench-quick", description="first bench route per scenario type", routes=list(first.values())
        )
    _, summary = evaluate_suite(bench, "expert", out / "expert_closed_loop", workers=workers)
    timings.append((f"expert closed loop ({len(bench.routes)} routes)", time.perf_counter() - t0))

    print_summary(summary, f"expert on {bench.name}")
    table = Table(title="stage timings")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, sec in timings:
        table.add_row(stage, f"{sec:.1f}")
    console.print(table)
    console.print(f"outputs: {out}")
