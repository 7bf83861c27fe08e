"""Camera rendering speed: frames/s for the 6 Bench2Drive cameras (RGB + depth + instance ids) with ~40 actors
on a junction world, render only (world stepping is not timed). A "frame" is all 6 cameras.

Targets (2 cores): >= 200 frames/s at 128x352 and >= 80 frames/s at 256x704.

    python benchmarks/bench_render.py [--frames 200] [--threads 2] [--oracle]

Besides wall-clock frames/s the table shows CPU milliseconds per frame (all threads together), the mean number
of actors seen per frame and the load average: on a shared host other processes take cores away and
wall-clock numbers drop accordingly (CPU ms/frame much less so).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# before numba is imported: the thread pool is sized from this
if "--threads" in sys.argv:
    os.environ["NUMBA_NUM_THREADS"] = sys.argv[sys.argv.index("--threads") + 1]
os.environ.setdefault("NUMBA_NUM_THREADS", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see riskdistill.sim.sensors.raycast

import numba
import numpy as np
from rich.console import Console
from rich.table import Table

from riskdistill.contracts.agent import Controls
from riskdistill.sim.scenarios.background import build_busy_world
from riskdistill.sim.sensors import CameraRenderer, load_rig, resize_rig
from riskdistill.sim.sensors.oracle import render_numpy

SIZES = ((128, 352, 200.0), (256, 704, 80.0))


def bench(height: int, width: int, frames: int) -> dict[str, float]:
    ctx = build_busy_world("junction4", 40)
    world = ctx.world
    rig = resize_rig(load_rig("bench2drive"), height, width)
    t0 = time.perf_counter()
    renderer = CameraRenderer(world.map, rig)
    setup_s = time.perf_counter() - t0
    controls = Controls(throttle=0.3)
    for _ in range(5):  # warm-up (Numba compile or cache load)
        renderer.render(world)
    wall = cpu = 0.0
    visible = 0
    for _ in range(frames):
        world.step(controls)
        w0, c0 = time.perf_counter(), time.process_time()
        frame = renderer.render(world)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        visible += len(np.unique(frame.instance)) - 1
    return {
        "actors": world.actors.n,
        "fps": frames / wall,
        "cpu_ms": 1000.0 * cpu / frames,
        "setup_s": setup_s,
        "visible": visible / frames,
    }


def bench_oracle(height: int, width: int, frames: int = 3) -> float:
    ctx = build_busy_world("junction4", 40)
    renderer = CameraRenderer(ctx.world.map, resize_rig(load_rig("bench2drive"), height, width))
    scene = renderer.build_scene(ctx.world)
    t0 = time.perf_counter()
    for _ in range(frames):
        render_numpy(scene)
    return frames / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="Numba threads (default 2)")
    ap.add_argument("--oracle", action="store_true", help="also time the NumPy oracle (slow)")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    table = Table(
        title=f"Camera rendering, 6 cameras, junction4 world ({numba.get_num_threads()} Numba threads)"
    )
    columns = ("size", "actors", "seen", "frames/s", "ms/frame", "CPU ms/frame", "target", "ok", "setup s")
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    for height, width, target in SIZES:
        r = bench(height, width, args.frames)
        table.add_row(
            f"{height}x{width}",
            f"{r['actors']}",
            f"{r['visible']:.1f}",
            f"{r['fps']:,.0f}",
            f"{1000.0 / r['fps']:.2f}",
            f"{r['cpu_ms']:.2f}",
            f">= {target:.0f}",
            "yes" if r["fps"] >= target else "NO",
            f"{r['setup_s']:.2f}",
        )
    if args.oracle:
        for height, width, _ in SIZES[:1]:
            fps = bench_oracle(height, width)
            table.add_row(
                f"{height}x{width} NumPy oracle", "", "", f"{fps:.2f}", f"{1000 / fps:.0f}", "", "", "", ""
            )
    console = Console(width=120)
    console.print(table)
    load_after = os.getloadavg()[0]
    console.print(
        f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after, {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
