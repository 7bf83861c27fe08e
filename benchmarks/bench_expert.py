"""The privileged expert on the `bench` suite: Driving Score and Success Rate (targets: DS >= 90, SR >= 85 %).

    python benchmarks/bench_expert.py [--workers 2] [--limit N] [--out runs/bench_expert]

Routes already finished in --out are reused (the evaluation is resumable); delete the folder to rerun.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from riskdistill.evaluation.closed_loop import evaluate_suite
from riskdistill.evaluation.driving_score import compute_route_scores, is_success
from riskdistill.sim.suites import load_suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_expert"))
    args = ap.parse_args()
    suite = load_suite("bench")
    t0 = time.perf_counter()
    results, summary = evaluate_suite(suite, "expert", args.out, workers=args.workers, limit=args.limit)
    wall = time.perf_counter() - t0

    per_type = Table(title="expert per scenario type")
    for col in ("scenario", "routes", "DS", "SR %", "infractions"):
        per_type.add_column(col)
    by_type: dict[str, list] = {}
    for r in results:
        by_type.setdefault(r.scenario_type, []).append(r)
    for name, rs in sorted(by_type.items()):
        ds = sum(compute_route_scores(r)["score_composed"] for r in rs) / len(rs)
        sr = 100.0 * sum(is_success(r) for r in rs) / len(rs)
        infr = sorted({e.kind.value for r in rs for e in r.events})
        per_type.add_row(name, str(len(rs)), f"{ds:.1f}", f"{sr:.0f}", ", ".join(infr))
    console = Console()
    console.print(per_type)

    table = Table(title=f"expert on bench ({len(results)} routes, {wall:.0f} s wall, {args.workers} workers)")
    for col in ("metric", "value", "target"):
        table.add_column(col)
    table.add_row("Driving Score", f"{summary['driving_score']:.2f}", ">= 90")
    table.add_row("Success Rate %", f"{summary['success_rate']:.2f}", ">= 85")
    eff, comf = summary.get("efficiency"), summary.get("comfortness")
    table.add_row("Efficiency", "-" if eff is None else f"{eff:.1f}", "")
    table.add_row("Comfortness %", "-" if comf is None else f"{comf:.1f}", "")
    sim_s = sum(r.duration_game_s for r in results)
    table.add_row("simulated s per wall s", f"{sim_s / max(wall, 1e-6):.1f}", "")
    console.print(table)


if __name__ == "__main__":
    main()
