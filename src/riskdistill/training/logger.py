"""Metrics logs: ``metrics.csv`` (always) and TensorBoard event files (only when ``tensorboard`` imports).

``metrics.csv`` has one row per logged event (``split`` = ``train`` or ``val``) with the columns ``step``,
``epoch``, ``split`` and every metric seen so far; a new metric rewrites the file (atomically) with the
widened header. On resume the rows after the checkpoint's step are dropped, so the log matches the state.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

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

    def _flush(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, self.columns, restval="")
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


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
