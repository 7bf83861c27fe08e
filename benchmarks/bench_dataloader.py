"""Training input speed: frames/s delivered by a torch DataLoader over a recorded data set.

Records a few `bench` routes (6 Bench2Drive cameras, 128x352, every 5th step) into a temporary folder, then
times ``DataLoader(DrivingDataset(...), batch_size=8, collate_fn=collate_batch)`` with 0, 1 and 2 worker
processes, with the future-trajectory and BEV-occupancy targets (64 x 64 m at 0.5 m: 128 x 128 cells).

    python benchmarks/bench_dataloader.py [--routes 2] [--workers 0 1 2] [--batch 8] [--size 128x352]
                                          [--epochs 2] [--image-dtype float|uint8] [--data DIR]

A "frame" is one sample: 6 JPEG decodes (+ uint8 -> float conversion), the annotation file and the
targets. The first epoch includes worker start-up; frames/s is reported for the whole run and for the
epochs after the first (steady state, page cache warm). Per-sample stage times come from timing the dataset
in the main process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader

from riskdistill.data import RecordedDataset, record_suite
from riskdistill.data.targets import BevOccupancyTarget, FutureTrajectoryTarget
from riskdistill.data.torch_dataset import DrivingDataset, collate_batch
from riskdistill.geometry import BevGrid
from riskdistill.sim.suites import Suite, load_suite

GRID = BevGrid.centered(64.0, 64.0, 0.5, x_offset_m=16.0)


def bench_routes(n: int) -> Suite:
    """``n`` bench routes spread over the scenario types."""
    return load_suite("bench").spread(n)


def time_loader(ds: DrivingDataset, workers: int, batch: int, epochs: int) -> tuple[float, float, int]:
    """(frames/s over all epochs, frames/s after the first epoch, frames per epoch)."""
    loader = DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate_batch,
        persistent_workers=workers > 0,
    )
    t0 = time.perf_counter()
    t_first = t0
    n = 0
    for e in range(epochs):
        for b in loader:
            n += len(b)
        if e == 0:
            t_first = time.perf_counter()
    t1 = time.perf_counter()
    steady = (n - len(ds)) / (t1 - t_first) if epochs > 1 else float("nan")
    return n / (t1 - t0), steady, len(ds)


def stage_times(ds: DrivingDataset, n: int = 24) -> dict[str, float]:
    """Mean ms per sample of each stage, in the main process."""
    out = {"images": 0.0, "future_trajectory": 0.0, "bev_occupancy": 0.0, "whole sample": 0.0}
    fut, occ = FutureTrajectoryTarget(), BevOccupancyTarget()
    idx = np.linspace(0, len(ds.records) - 1, n).astype(int)
    for i in idx:
        rec = ds.records.frame(int(i))
        t = time.perf_counter()
        ds.obs.images(rec)
        out["images"] += time.perf_counter() - t
        _ = rec.annotation
        t = time.perf_counter()
        fut.build(rec, GRID)
        out["future_trajectory"] += time.perf_counter() - t
        t = time.perf_counter()
        occ.build(rec, GRID)
        out["bev_occupancy"] += time.perf_counter() - t
        t = time.perf_counter()
        ds.load(int(i))
        out["whole sample"] += time.perf_counter() - t
    return {k: 1000.0 * v / n for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routes", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", default="128x352", help="image HxW")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--image-dtype", choices=["float", "uint8"], default="float")
    ap.add_argument("--data", type=Path, default=None, help="use (or record into and keep) this data set")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    console = Console(width=120)

    out = args.data or Path(tempfile.mkdtemp(prefix="bench_dataloader_"))
    try:
        t0 = time.perf_counter()
        res = record_suite(
            bench_routes(args.routes),
            "bench2drive",
            out,
            image_hw=(h, w),
            every_n_steps=5,
            workers=min(2, args.routes),
            show_progress=False,
        )
        rec_s = time.perf_counter() - t0
        console.print(f"recorded {len(res.recorded)} routes ({len(res.failed)} failed) in {rec_s:.1f} s")
        n_frames = len(RecordedDataset(out))
        ds = DrivingDataset(out, GRID, ["future_trajectory", "bev_occupancy"], image_dtype=args.image_dtype)
        table = Table(
            title=f"DataLoader: {n_frames} frames, 6 cameras {h}x{w}, batch {args.batch}, "
            f"{args.epochs} epochs, images {args.image_dtype}, BEV {GRID.n_rows}x{GRID.n_cols}"
        )
        for col in ("workers", "frames/s (all)", "frames/s (after epoch 1)", "ms/frame (steady)"):
            table.add_column(col, justify="right")
        for nw in args.workers:
            fps, steady, _ = time_loader(ds, nw, args.batch, args.epochs)
            table.add_row(str(nw), f"{fps:.1f}", f"{steady:.1f}", f"{1000.0 / steady:.2f}")
        console.print(table)
        st = Table(title="per-sample stages (main process, mean ms)")
        st.add_column("stage")
        st.add_column("ms", justify="right")
        for k, v in stage_times(ds).items():
            st.add_row(k, f"{v:.2f}")
        console.print(st)
        console.print(f"load average (1 min): {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    finally:
        if args.data is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
