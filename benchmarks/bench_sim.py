"""World stepping speed without rendering: steps/s with ~40 actors on one core (target >= 2,000).

python benchmarks/bench_sim.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np
from rich.console import Console
from rich.table import Table

from riskdistill.agent import Controls
from riskdistill.sim.layouts import LayoutParams, build_layout
from riskdistill.sim.scenarios.background import add_background_traffic
from riskdistill.sim.scenarios.base import BuildContext


def build_world(family: str, n_actors: int, seed: int = 0) -> BuildContext:
    layout = build_layout(LayoutParams(family=family, lanes_per_direction=2, seed=seed))
    ctx = BuildContext(layout, np.random.default_rng(seed))
    first = layout.road_map.driving_lanes()[0]
    ctx.set_route([first.id], 5.0, None)
    density = 1.0
    while ctx.world.actors.n < n_actors and density < 20:
        add_background_traffic(ctx, density)
        density *= 1.5
    return ctx


def bench(family: str, n_actors: int, steps: int) -> tuple[int, float]:
    ctx = build_world(family, n_actors)
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
