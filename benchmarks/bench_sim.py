"""World stepping speed without rendering: steps/s with ~40 actors on one core (target >= 2,000).

python benchmarks/bench_sim.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

from rich.console import Console
from rich.table import Table

from riskdistill.contracts.agent import Controls
from riskdistill.sim.scenarios.background import build_busy_world


def bench(family: str, n_actors: int, steps: int) -> tuple[int, float]:
    ctx = build_busy_world(family, n_actors)
    world = ctx.world
    controls = Controls(throttle=0.3)
    for _ in range(20):  # warm-up (Numba compile / cache load)
        world.step(controls)
    t0 = time.perf_counter()
    for _ in range(steps):
        world.step(controls)
    dt = time.perf_counter() - t0
    return world.actors.n, steps / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=3000)
    args = ap.parse_args()
    table = Table(title="World stepping (no rendering, 1 thread)")
    for col in ("layout", "actors", "steps/s", "target", "ok"):
        table.add_column(col)
    for family in ("straight", "junction4", "highway"):
        n, rate = bench(family, 40, args.steps)
        table.add_row(family, str(n), f"{rate:,.0f}", ">= 2,000", "yes" if rate >= 2000 else "NO")
    Console().print(table)


if __name__ == "__main__":
    main()
