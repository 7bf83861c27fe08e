"""Closed-loop throughput with the tiny student on CPU, with 1 and 2 workers (untrained weights).

    python benchmarks/bench_closed_loop.py [--routes 4] [--route-timeout 20] [--workers 1 2]

Each route is capped at ``--route-timeout`` simulated seconds (an untrained student rarely finishes a
route, and would otherwise stand until "blocked" after 60 s). Reported: routes per minute and simulated
seconds per wall second (whole evaluation, worker start-up included), and the per-step time inside a route.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from riskdistill.evaluation.closed_loop import evaluate_suite
from riskdistill.evaluation.generalisation import EvalVariant
from riskdistill.sim.suites import load_suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--routes", type=int, default=4)
    ap.add_argument("--route-timeout", type=float, default=20.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--image-hw", type=int, nargs=2, default=[64, 176])
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: an untrained tiny student")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_closed_loop_"))
    ckpt = args.checkpoint
    if ckpt is None:
        import torch

        from riskdistill.models import build_student, save_student, student_config

        torch.manual_seed(0)
        ckpt = save_student(
            build_student(student_config("tiny", image_hw=tuple(args.image_hw))), tmp / "student"
        )
    suite = load_suite("bench").spread(args.routes)
    variant = EvalVariant(route_timeout_s=args.route_timeout)

    table = Table(title=f"tiny student on CPU ({args.routes} bench routes, <= {args.route_timeout:g} s each)")
    for col in ("workers", "wall s", "routes/min", "sim s / wall s", "ms per step (in route)"):
        table.add_column(col, justify="right")
    for workers in args.workers:
        out = tmp / f"w{workers}"
        t0 = time.perf_counter()
        results, _ = evaluate_suite(suite, str(ckpt), out, workers=workers, variant=variant)
        wall = time.perf_counter() - t0
        sim_s = sum(r.duration_game_s for r in results)
        route_wall = sum(r.duration_system_s for r in results)
        errors = [json.loads(p.read_text())["error"] for p in (out / "routes").glob("*.json")]
        if any(errors):
            Console().print(f"[red]route errors:[/] {[e for e in errors if e]}")
        table.add_row(
            str(workers),
            f"{wall:.1f}",
            f"{60.0 * len(results) / wall:.2f}",
            f"{sim_s / wall:.2f}",
            f"{1000.0 * route_wall / max(sim_s * 10.0, 1e-9):.1f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
