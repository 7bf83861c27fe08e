"""Metrics logs: ``metrics.csv`` (always) and TensorBoard event files (only when ``tensorboard`` imports,
``pip install riskdistill[tensorboard]``) in ``<run_dir>/tensorboard``.

``metrics.csv`` has one row per logged event (``split`` = ``train`` or ``val``) with the columns ``step``,
``epoch``, ``split`` and every metric seen so far; a new metric rewrites the file (atomically) with the
widened header. On resume the rows after the checkpoint's step are dropped, so the log matches the state.
TensorBoard gets the same scalars (``train/<metric>``, ``val/<metric>``) and, every
``tensorboard_images_every_steps``, the predicted risk maps beside the teacher's (``train/risk_maps``,
:func:`risk_map_grid`).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from riskdistill.io import atomic_write_text

FIXED = ("step", "epoch", "split")


class MetricsLogger:
    def __init__(self, run_dir: Path, tensorboard: bool = True, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = list(FIXED)
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or FIXED)
                self.rows = [r for r in reader if r.get("step") and int(r["step"]) <= resume_step]
        self._flush()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard is an optional extra
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def log(self, step: int, epoch: int, split: str, values: dict[str, float]) -> None:
        row: dict[str, Any] = {"step": step, "epoch": epoch, "split": split}
        row.update({k: _fmt(v) for k, v in values.items()})
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._flush()
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.columns, restval="").writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{split}/{k}", v, step)

    def log_image(self, tag: str, image_hwc: np.ndarray, step: int) -> bool:
        """An ``[H, W, 3]`` uint8 image to TensorBoard; False (nothing written) without TensorBoard."""
        if self.tb is None:
            return False
        self.tb.add_image(tag, np.asarray(image_hwc, dtype=np.uint8), step, dataformats="HWC")
        return True

    def _flush(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, self.columns, restval="")
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _heat(m: np.ndarray) -> np.ndarray:
    """``[H, W]`` risk in [0, 1] -> ``[H, W, 3]`` uint8 (matplotlib's ``magma``: dark = 0, light = 1)."""
    from matplotlib import colormaps

    return (colormaps["magma"](np.clip(np.nan_to_num(m), 0.0, 1.0))[..., :3] * 255).astype(np.uint8)


def risk_map_grid(
    predicted: np.ndarray, teacher: np.ndarray | None = None, n: int = 4, gap_px: int = 2
) -> np.ndarray:
    """The first ``n`` samples' risk maps as one ``[H_total, W_total, 3]`` uint8 image: one row per sample,
    the prediction on the left and the teacher's target on the right (when given), forward up (the BevGrid
    layout). ``predicted`` / ``teacher`` are ``[B, 1, H, W]`` or ``[B, H, W]`` in [0, 1]."""
    p = np.asarray(predicted, dtype=np.float32)
    p = p.reshape(p.shape[0], *p.shape[-2:])[:n]
    cols = [p]
    if teacher is not None:
        t = np.asarray(teacher, dtype=np.float32)
        cols.append(t.reshape(t.shape[0], *t.shape[-2:])[: len(p)])
    h, w = p.shape[-2:]
    out = np.full((len(p) * (h + gap_px) - gap_px, len(cols) * (w + gap_px) - gap_px, 3), 255, np.uint8)
    for i in range(len(p)):
        for j, c in enumerate(cols):
            out[i * (h + gap_px) : i * (h + gap_px) + h, j * (w + gap_px) : j * (w + gap_px) + w] = _heat(
                c[i]
            )
    return out


def _fmt(v: float) -> float | str:
    v = float(v)
    return v if math.isfinite(v) else repr(v)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``<run_dir>/metrics.csv`` with numbers parsed (empty cells dropped)."""
    out = []
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        for r in csv.DictReader(f):
            row: dict[str, Any] = {}
            for k, v in r.items():
                if v == "" or v is None:
                    continue
                if k == "split":
                    row[k] = v
                elif k in ("step", "epoch"):
                    row[k] = int(v)
                else:
                    row[k] = float(v)
            out.append(row)
    return out
