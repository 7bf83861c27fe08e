"""Recording speed, end to end: simulate + expert + render the 6 Bench2Drive cameras + JPEG encode +
annotate + write, every 10 Hz step, over a few `bench` routes in parallel worker processes.

Target (2 workers, 128x352): >= 100 frames/s.

    python benchmarks/bench_record.py [--routes 6] [--workers 2] [--size 128x352] [--every 1] [--keep DIR]

A "frame" is one recorded step: 6 JPEG images plus one annotation file. The table splits the workers' time
into stages (wall time inside the workers, summed over workers, per frame; on 2 cores nearly all of it is
CPU time): simulation and expert, rendering, JPEG encoding, annotation
(ground truth to the ego frame, instance-mask boxes, .npz encoding) and file writing (including one
``os.sync`` per route). Wall-clock frames/s include process start-up and the final index build; on a shared
host other processes take cores away (see the load average printed below the table).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from riskdistill.data import record_suite, validate_dataset
from riskdistill.sim.suites import Suite, load_suite

TARGET_FPS = 100.0


def bench_routes(n: int) -> Suite:
    """``n`` bench routes spread over the scenario types."""
    return load_suite("bench").spread(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routes", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", default="128x352", help="image HxW")
    ap.add_argument("--every", type=int, default=1, help="record every N-th step")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    ap.add_argument("--keep", type=Path, default=None, help="write here and keep the data set")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    suite = bench_routes(args.routes)
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench_record_"))
    if out.exists():
        shutil.rmtree(out)
    stages: dict[str, float] = {}
    steps = 0

    def on_done(r: dict) -> None:
        nonlocal steps
        steps += r.get("sim_steps", 0)
        for k, v in r.get("timing", {}).items():
            stages[k] = stages.get(k, 0.0) + v

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = record_suite(
        suite,
        "bench2drive",
        out,
        image_hw=(h, w),
        every_n_steps=args.every,
        workers=args.workers,
        jpeg_quality=args.quality,
        on_route_done=on_done,
    )
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    t1 = time.perf_counter()
    problems = validate_dataset(out)
    validate_s = time.perf_counter() - t1
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    if args.keep is None:
        shutil.rmtree(out, ignore_errors=True)

    fps = res.n_frames / wall
    console = Console(width=120)
    table = Table(
        title=f"record: {len(suite.routes)} bench routes, 6 cameras {h}x{w}, {args.workers} workers"
    )
    for col in ("metric", "value", "target"):
        table.add_column(col, justify="right")
    table.add_row("frames", f"{res.n_frames}", "")
    table.add_row("wall s", f"{wall:.1f}", "")
    table.add_row(
        "frames/s (wall)", f"{fps:.1f}", f">= {TARGET_FPS:.0f} {'ok' if fps >= TARGET_FPS else 'NO'}"
    )
    table.add_row("simulated steps/s (wall)", f"{steps / wall:.1f}", "")
    n = max(res.n_frames, 1)
    for key in ("sim_expert_s", "render_s", "jpeg_s", "annotate_s", "write_s", "setup_s"):
        table.add_row(f"  {key[:-2]} ms/frame (in worker)", f"{1000.0 * stages.get(key, 0.0) / n:.2f}", "")
    table.add_row("worker ms/frame, all stages", f"{1000.0 * sum(stages.values()) / n:.2f}", "")
    table.add_row("MB on disk", f"{size_mb:.1f}", "")
    table.add_row("kB per frame", f"{1000.0 * size_mb / n:.1f}", "")
    table.add_row("validate s (hash + open all)", f"{validate_s:.1f}", "")
    table.add_row("validation problems", f"{len(problems)}", "0")
    table.add_row("failed routes", f"{len(res.failed)}", "0")
    console.print(table)
    console.print(
        f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after, {os.cpu_count()} CPUs"
    )
    for p in problems[:10]:
        console.print(f"[red]{p}[/]")


if __name__ == "__main__":
    main()
