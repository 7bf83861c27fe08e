"""Labelling runner end to end: frames/s of ``label_dataset`` (oracle teacher) on a recorded data set.

Per frame: read the frame's metadata and annotation arrays, oracle label, rasterise onto the grid, write
the map (float16 .npy) and the record (JSON) atomically, append the index line. Each configuration labels
into a fresh temporary folder (nothing is skipped), after a warm-up run that loads the Numba cache.

    python benchmarks/bench_label.py --data data/train [--limit 500] [--grid base] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from riskdistill.data.storage import RecordedDataset
from riskdistill.geometry import BevGrid
from riskdistill.teacher.oracle import OracleTeacher
from riskdistill.teacher.runner import label_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a recorded data set")
    ap.add_argument("--limit", type=int, default=None, help="at most N frames")
    ap.add_argument("--grid", default="base", help="BEV grid preset (tiny: 64x64, base: 200x200)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    grid = BevGrid.preset(args.grid)
    n_frames = len(RecordedDataset(args.data))
    n = min(n_frames, args.limit) if args.limit else n_frames
    console = Console()
    table = Table(title=f"labelling runner, oracle teacher, {n} frames of {args.data}, grid {grid.shape}")
    for col in ("workers", "frames", "wall s", "frames/s", "ms/frame"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="bench_label_") as tmp:
        label_dataset(args.data, Path(tmp) / "warm", OracleTeacher(), grid, limit=8, show_progress=False)
        for w in args.workers:
            t0 = time.perf_counter()
            res = label_dataset(
                args.data,
                Path(tmp) / f"w{w}",
                OracleTeacher(),
                grid,
                workers=w,
                batch_size=args.batch_size,
                limit=args.limit,
                show_progress=False,
                run_dir=False,
            )
            wall = time.perf_counter() - t0
            done = res.labelled + res.n_errors
            table.add_row(str(w), str(done), f"{wall:.2f}", f"{done / wall:,.0f}", f"{1e3 * wall / done:.2f}")
    console.print(table)
    console.print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
