"""Oracle teacher + rasteriser speed: frames/s for frames of 40 actors on a 200 x 200 BEV grid.

A "frame" is what ``riskdistill label`` does per frame after reading the annotation:
``OracleTeacher.label_annotation`` (the counterfactual ego on a curved 150 m route, 40 actors with their
paths, scores, ranks, reasons, the ``FrameLabel``) plus ``rasterise_label`` with the default
``RasterConfig`` (object footprints and motion spread, and the drivable-edge boundary risk from 16 lane
pieces). Actors are random within 30 m, every one moving at 0..8 m/s along a straight path (a pessimistic
frame: the spread of moving objects dominates the rasteriser). Target (2 cores): >= 1,000 frames/s. Two
set-ups are timed: one process with a 2-thread Numba pool (the rasteriser's rows run in parallel), and
``--workers`` processes with 1 Numba thread each (how a labelling job uses the cores: frames are
independent); the latter is the throughput figure, the sum of the workers' rates. On a shared machine the
wall-clock rates drop with the load; the last row, ``workers / CPU time per frame`` of the worker
processes, is what the same processes give on that many free cores.

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

from riskdistill.data.format import ACTOR_PATH_POINTS, ROUTE_AHEAD_POINTS
from riskdistill.geometry import BevGrid
from riskdistill.teacher import OracleTeacher, RasterConfig, rasterise_label

TARGET_FPS = 1000.0


def _lanes(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """16 lane pieces of a 4-arm junction (4 lanes per arm, 60 m long, 3.5 m wide), randomly rotated."""
    th = rng.uniform(-np.pi, np.pi)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    cl, left, right = [], [], []
    for arm in range(4):
        a = arm * np.pi / 2
        d, n = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        for k in range(4):
            c = (8.0 + np.arange(60.0))[:, None] * d + (k - 1.5) * 3.5 * n
            cl.append(c @ rot.T)
            left.append((c + 1.75 * n) @ rot.T)
            right.append((c - 1.75 * n) @ rot.T)
    f32 = np.float32
    return {
        "lane_centerline": np.array(cl, f32),
        "lane_left_boundary": np.array(left, f32),
        "lane_right_boundary": np.array(right, f32),
        "lane_n_points": np.full(len(cl), 60, np.int32),
    }


def make_frames(n: int, actors: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    frames = []
    s = np.arange(ROUTE_AHEAD_POINTS, dtype=np.float64)
    for _ in range(n):
        cls = rng.integers(0, 10, actors)
        size = np.where((cls == 4)[:, None], 0.6, rng.uniform([3.5, 1.6], [6.0, 2.5], (actors, 2)))
        speed = rng.uniform(0.0, 8.0, actors)
        heading = rng.uniform(-np.pi, np.pi, actors)
        center = rng.uniform([-30, -30], [30, 30], (actors, 2))
        u = np.stack([np.cos(heading), np.sin(heading)], 1)
        step = np.maximum(speed * 8.0 + 4.0, 4.0) / (ACTOR_PATH_POINTS - 1)
        path = center[:, None, :] + u[:, None, :] * (step[:, None] * np.arange(ACTOR_PATH_POINTS))[..., None]
        release = np.full(actors, np.nan)
        release[:2] = rng.uniform(0.0, 20.0, 2)  # two held actors released by a trigger ahead
        curv = rng.uniform(-1.0, 1.0) / 80.0  # a gentle curve
        route = np.stack([np.sin(curv * s) / curv, (1.0 - np.cos(curv * s)) / curv], 1)
        frames.append(
            {
                "actor_id": np.arange(actors),
                "actor_class": cls,
                "actor_behavior": np.where(cls == 4, 2, 1),
                "actor_center_ego": np.concatenate([center, np.ones((actors, 1))], 1),
                "actor_size_lwh": np.concatenate([size, np.ones((actors, 1))], 1),
                "actor_yaw_ego": heading,
                "actor_velocity_ego": u * speed[:, None],
                "actor_accel_mps2": np.zeros(actors),
                "actor_path_ego": path,
                "actor_path_step_m": step,
                "actor_release_in_m": release,
                "actor_release_speed_mps": np.where(np.isfinite(release), 1.5, np.nan),
                "route_ahead_ego": route,
                "route_ahead_speed_limit_mps": np.full(ROUTE_AHEAD_POINTS, 13.9),
                "future_xy": np.stack([np.arange(1, 7) * 3.0, np.linspace(0, 1.5, 6)], 1),
                "future_valid": np.ones(6, dtype=bool),
                **_lanes(rng),
            }
        )
    return frames


def run(frames: list[dict[str, np.ndarray]], teacher: OracleTeacher, grid: BevGrid) -> tuple[float, float]:
    t_label = t_raster = 0.0
    raster = RasterConfig()
    for i, f in enumerate(frames):
        t0 = time.perf_counter()
        label = teacher.label_annotation(f"bench/{i:05d}", f, 8.0)
        t1 = time.perf_counter()
        rasterise_label({o.object_id: o.risk for o in label.objects}, f, grid, raster)
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
    table.add_row(
        "rasterise (objects + boundary)",
        f"{1e3 * t_raster / args.frames:.3f}",
        f"{args.frames / t_raster:,.0f}",
    )
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
