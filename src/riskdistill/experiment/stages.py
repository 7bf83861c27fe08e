"""Resumable stages of a long job: each stage runs once, records what it produced and how long it took.

A stage is a name and a function returning a JSON-able dict of outputs. :class:`StageRunner` writes
``<out>/stages/<name>.json`` (atomically) when the function returns; a later run with the same output folder
skips every finished stage and reuses its outputs, so a killed job continues where it stopped (the stages
themselves - recording, labelling, training, evaluation - also resume inside). ``timings`` lists each
stage's wall time (measured when it ran, not when it was skipped).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from riskdistill.io import atomic_write_json, load_json_object

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageTiming:
    name: str
    seconds: float
    resumed: bool  # True: finished by an earlier run, skipped now


def _file_name(stage: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", stage) + ".json"


class StageRunner:
    """Runs named stages once per output folder (see the module docstring)."""

    def __init__(self, out_dir: Path, console: Console | None = None):
        self.out_dir = Path(out_dir)
        self.stage_dir = self.out_dir / "stages"
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        self.console = console or Console()
        self.timings: list[StageTiming] = []

    def done(self, name: str) -> dict[str, Any] | None:
        """The outputs of a finished stage, or None."""
        path = self.stage_dir / _file_name(name)
        if not path.exists():
            return None
        rec = load_json_object(path, ValueError, "a stage record")
        if rec.get("stage") != name or not isinstance(rec.get("outputs"), dict):
            raise ValueError(f"{path}: not the record of stage {name!r}; delete it to run the stage again")
        return rec

    def record(
        self, name: str, outputs: dict[str, Any], seconds: float, extra: dict[str, Any] | None = None
    ) -> None:
        """Mark stage ``name`` finished with ``outputs`` (computed elsewhere, e.g. in a Ray task); ``extra``:
        more fields of the record (``reused_from``: the stage ran in another folder, experiment/reuse.py)."""
        atomic_write_json(
            self.stage_dir / _file_name(name),
            {
                "stage": name,
                "outputs": outputs,
                "seconds": seconds,
                "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                **(extra or {}),
            },
        )
        log.info("stage %s: done in %.1f s", name, seconds)
        self.timings.append(StageTiming(name, seconds, resumed=False))

    def run(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``fn()`` unless stage ``name`` finished before; returns the stage's outputs."""
        rec = self.done(name)
        if rec is not None:
            if any(t.name == name and not t.resumed for t in self.timings):  # recorded by this run
                return rec["outputs"]
            self.timings.append(StageTiming(name, float(rec.get("seconds", 0.0)), resumed=True))
            self.console.print(f"[dim]stage {name}: done before, skipped[/]")
            return rec["outputs"]
        self.console.rule(f"[bold]{name}")
        log.info("stage %s: start", name)
        t0 = time.perf_counter()
        outputs = fn()
        self.record(name, outputs, time.perf_counter() - t0)
        return outputs

    def timing_table(self, title: str = "stage timings") -> Table:
        table = Table(title=title)
        table.add_column("stage")
        table.add_column("seconds", justify="right")
        for t in self.timings:
            table.add_row(t.name, f"{t.seconds:.1f}" + (" (earlier run)" if t.resumed else ""))
        table.add_row(
            "[bold]total (this run)", f"{sum(t.seconds for t in self.timings if not t.resumed):.1f}"
        )
        return table
