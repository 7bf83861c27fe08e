"""Where a closed-loop evaluation spends its time: simulated and per-route system seconds by how routes ended
and by scenario type, read from finished closed-loop folders (no simulation is run).

    python benchmarks/bench_route_time.py OUT [OUT ...] [--top 10] [--json out.json]

``OUT`` is an ``eval closed-loop`` output folder (``results.json`` and ``routes/``). Every route file records
``duration_game_s`` (simulated seconds until the route ended) and ``duration_system_s`` (the wall seconds of
its simulation loop in its worker). A route's cost is set by how long it runs, and Bench2Drive's rules let a
route that stands still run on: a scenario's own timeout, then the 60 s blocked test
(``sim.env.BLOCKED_TIME_S``). The tables show which endings and scenario types hold the simulated time, so
a speed-up is aimed where the time is, and which share of the student's planning steps reused the outputs of
a repeated observation (``driver_stats.plans_reused``; ``-`` for drivers that keep no counts).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from riskdistill.evaluation.results import load_route_docs


def time_by(docs: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Per value of route-file field ``key``: routes, simulated s, system s and their shares of the total,
    largest simulated time first."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0, 0])
    for d in docs:
        s = sums[str(d.get(key) or "-")]
        s[0] += 1
        s[1] += float(d.get("duration_game_s") or 0.0)
        s[2] += float(d.get("duration_system_s") or 0.0)
        stats = d.get("driver_stats") or {}
        s[3] += int(stats.get("plans", 0))
        s[4] += int(stats.get("plans_reused", 0))
    game = sum(s[1] for s in sums.values()) or 1.0
    system = sum(s[2] for s in sums.values()) or 1.0
    rows = [
        {
            key: name,
            "routes": int(n),
            "game_s": g,
            "game_share": g / game,
            "system_s": t,
            "system_share": t / system,
            "game_s_per_route": g / n,
            "plans": int(plans),
            "reused_share": reused / plans if plans else None,
        }
        for name, (n, g, t, plans, reused) in sums.items()
    ]
    return sorted(rows, key=lambda r: -r["game_s"])


def _table(title: str, key: str, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=title)
    for col in (key, "routes", "simulated s", "share", "s per route", "system s", "share", "plans reused"):
        t.add_column(col, justify="left" if col == key else "right")
    for r in rows:
        t.add_row(
            r[key],
            str(r["routes"]),
            f"{r['game_s']:.0f}",
            f"{100 * r['game_share']:.0f} %",
            f"{r['game_s_per_route']:.0f}",
            f"{r['system_s']:.0f}",
            f"{100 * r['system_share']:.0f} %",
            "-" if r["reused_share"] is None else f"{100 * r['reused_share']:.0f} %",
        )
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="+", help="closed-loop output folders")
    ap.add_argument("--top", type=int, default=10, help="scenario types shown (largest simulated time)")
    ap.add_argument("--json", help="also write the tables here")
    args = ap.parse_args()
    console = Console()
    result = {}
    for out in args.out:
        docs = load_route_docs(out)
        by_end = time_by(docs, "status")
        by_type = time_by(docs, "scenario_type")
        console.print(_table(f"{out}: {len(docs)} routes, by how they ended", "status", by_end))
        title = f"{out}: by scenario type (top {args.top})"
        console.print(_table(title, "scenario_type", by_type[: args.top]))
        result[out] = {"by_status": by_end, "by_scenario_type": by_type}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
