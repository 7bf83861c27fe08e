"""What diagnose_on_road.py and ray_edge.py share: their command line (CHECKPOINT DATA [--stride N]
[--out FILE]) and the student, data set, annotation index and BEV cell centres they read."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Subset

from riskdistill.data.torch_dataset import DrivingDataset, collate_batch
from riskdistill.evaluation.open_loop import FutureFrameIndex
from riskdistill.models import load_student


@dataclass
class StudentFrames:
    args: argparse.Namespace
    student: Any
    grid: Any
    index: FutureFrameIndex
    loader: DataLoader
    cell_x: np.ndarray  # [H, W] ego-frame x of every BEV cell centre (m)
    cell_y: np.ndarray

    def write(self, result: dict[str, Any]) -> None:
        """``result`` as JSON to ``--out`` (nothing without it)."""
        if self.args.out:
            self.args.out.write_text(json.dumps(result, indent=1))


def student_frames(description: str, targets: list[str]) -> StudentFrames:
    """Parse the command line, load the student (eval mode) and every ``--stride``-th frame of DATA with
    ``targets`` in batches of 8."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("checkpoint")
    ap.add_argument("data", type=Path)
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    student = load_student(args.checkpoint).eval()
    cfg, grid = student.cfg, student.cfg.bev_grid()
    ds = DrivingDataset(
        args.data, grid, targets, cameras=cfg.cameras, image_hw=tuple(cfg.image_hw), image_dtype="uint8"
    )
    xs = grid.x_max_m - (np.arange(grid.n_rows) + 0.5) * grid.resolution_m
    ys = grid.y_max_m - (np.arange(grid.n_cols) + 0.5) * grid.resolution_m
    cell_x, cell_y = np.meshgrid(xs, ys, indexing="ij")
    loader = DataLoader(Subset(ds, range(0, len(ds), args.stride)), batch_size=8, collate_fn=collate_batch)
    return StudentFrames(args, student, grid, FutureFrameIndex(ds.records), loader, cell_x, cell_y)
