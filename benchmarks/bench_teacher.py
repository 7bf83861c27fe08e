"""Oracle teacher + rasteriser speed: frames/s for frames of 40 actors on a 200 x 200 BEV grid.

A "frame" is ``OracleTeacher.label_arrays`` (scores, ranks, reasons, validated ``FrameLabel``) plus
``rasterise_risk`` of the same actors (random actors within 30 m, every one moving at 0..8 m/s: a
pessimistic frame, the spread of moving objects dominates the rasteriser). Target (2 cores): >= 1,000
frames/s. Two set-ups are timed: one process with a 2-thread Numba pool (the rasteriser's rows run in
parallel), and ``--workers`` processes with 1 Numba thread each (how a labelling job uses the cores:
frames are independent); the latter is the throughput figure, the sum of the workers' rates. On a shared
machine the wall-clock rates drop with the load; the last row, ``workers / CPU time per frame`` of the
worker processes, is what the same processes give on that many free cores.

    python benchmarks/bench_teacher.py [--frames 2000] [--actors 40] [--threads 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time

if "--threads" in sys.argv:
    os.environ["NUMBA_NUM_THREADS"] = sys.argv[sys.argv.index("--threads") + 1]
os.environ.setdefault("NUMBA_NUM_THREADS", "2")

import numba
import numpy as np
from rich.console import Console
from rich.table import Table

from riskdistill.geometry import BevGrid
from riskdistill.teacher import OracleTeacher, rasterise_risk

TARGET_FPS = 1000.0


def make_frames(n: int, actors: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        cls = rng.integers(0, 10, actors)
        size = np.where((cls == 4)[:, None], 0.6, rng.uniform([3.5, 1.6], [6.0, 2.5], (actors, 2)))
        speed = rng.uniform(0.0, 8.0, actors)
        heading = rng.uniform(-np.pi, np.pi, actors)
        frames.append(
            {
                "actor_id": np.arange(actors),
                "actor_class": cls,
                "center_xy": rng.uniform([-30, -30], [30, 30], (actors, 2)),
                "size_lw": size,
                "yaw": heading,
                "velocity_xy": np.stack([np.cos(heading), np.sin(heading)], 1) * speed[:, None],
                "future_xy": np.stack([np.arange(1, 7) * 3.0, np.linspace(0, 1.5, 6)], 1),
                "future_valid": np.ones(6, dtype=bool),
            }
        )
    return frames


def run(frames: list[dict[str, np.ndarray]], teacher: OracleTeacher, grid: BevGrid) -> tuple[float, float]:
    t_label = t_raster = 0.0
    for i, f in enumerate(frames):
        t0 = time.perf_counter()
        label = teacher.label_arrays(
            f"bench/{i:05d}",
            f["actor_id"],
            f["actor_class"],
            f["center_xy"],
            f["size_lw"],
            f["velocity_xy"],
            f["future_xy"],
            f["future_valid"],
        )
        t1 = time.perf_counter()
        risk = np.empty(len(f["actor_id"]))
        risk[[o.object_id for o in label.objects]] = [o.risk for o in label.objects]
        rasterise_risk(f["center_xy"], f["size_lw"], f["yaw"], f["velocity_xy"], risk, grid)
        t2 = time.perf_counter()
        t_label += t1 - t0
        t_raster += t2 - t1
    return t_label, t_raster


def _worker(args: tuple[int, int, int]) -> tuple[float, float, float]:
    frames_n, actors, seed = args
    numba.set_num_threads(1)
    grid = BevGrid.centered(64.0, 64.0, 0.32)
    teacher = OracleTeacher()
    frames = make_frames(frames_n, actors, seed)
    run(frames[:20], teacher, grid)
    cpu0 = time.process_time()
    t_label, t_raster = run(frames, teacher, grid)
    return t_label, t_raster, time.process_time() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--actors", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    grid = BevGrid.centered(64.0, 64.0, 0.32)  # 200 x 200
    teacher = OracleTeacher()
    frames = make_frames(args.frames, args.actors)
    run(frames[:20], teacher, grid)  # warm-up (Numba compile / cache load)
    cpu0 = time.process_time()
    t_label, t_raster = run(frames, teacher, grid)
    cpu = time.process_time() - cpu0
    total = t_label + t_raster
    fps = args.frames / total
    table = Table(
        title=f"oracle teacher + rasteriser, {args.actors} actors, grid {grid.shape[0]}x{grid.shape[1]}"
    )
    for col in ("stage", "ms/frame", "frames/s"):
        table.add_column(col, justify="right")
    table.add_row("oracle label", f"{1e3 * t_label / args.frames:.3f}", f"{args.frames / t_label:,.0f}")
    table.add_row("rasterise", f"{1e3 * t_raster / args.frames:.3f}", f"{args.frames / t_raster:,.0f}")
    table.add_row("total, 1 process", f"{1e3 * total / args.frames:.3f}", f"{fps:,.0f}")
    cpu_fps = 0.0
    if args.workers > 1:
        ctx = mp.get_context("spawn")
        with ctx.Pool(args.workers) as pool:
            res = pool.map(_worker, [(args.frames, args.actors, 1 + w) for w in range(args.workers)])
        fps = sum(args.frames / (a + b) for a, b, _ in res)
        table.add_row(
            f"total, {args.workers} processes x 1 thread", f"{1e3 * args.workers / fps:.3f}", f"{fps:,.0f}"
        )
        cpu_ms = 1e3 * sum(c for _, _, c in res) / (args.workers * args.frames)
        cpu_fps = args.workers * 1e3 / cpu_ms
        table.add_row(
            f"CPU-bound on {args.workers} free cores (CPU {cpu_ms:.3f} ms/frame/process)",
            f"{1e3 / cpu_fps:.3f}",
            f"{cpu_fps:,.0f}",
        )
    console = Console()
    console.print(table)
    if fps >= TARGET_FPS:
        ok = "[green]OK[/green]"
    elif args.workers > 1 and cpu_fps >= TARGET_FPS:
        ok = "[yellow]OK on free cores (CPU-bound figure), below on this loaded host[/yellow]"
    else:
        ok = "[red]BELOW TARGET[/red]"
    console.print(
        f"target >= {TARGET_FPS:,.0f} frames/s: {ok}; CPU {1e3 * cpu / args.frames:.3f} ms/frame; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
