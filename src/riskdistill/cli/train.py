"""``riskdistill train``: train a student (baseline, RSD or a control run) on a recorded data set.

``train`` is a plain function with Typer options, registered by the main app as ``train``. Configuration
layers, lowest first: the defaults, ``--config FILE.json``, the options below, then ``--set key=value``
overrides (see ``docs/training.md``). ``--resume`` without ``--config`` / ``--data`` takes the run's own
config from its latest checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from riskdistill.cli.common import fail

console = Console()


def train(
    data: Path | None = typer.Option(
        None, "--data", help="A recorded data set folder (or data.root in --config)."
    ),
    out: Path = typer.Option(..., "--out", help="Run folder: run.json, log.txt, metrics.csv, checkpoints/."),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="Student preset: cpu | tiny | base (default tiny; cpu: the 2-core driving recipe)",
    ),
    config: Path | None = typer.Option(None, "--config", help="A TrainConfig JSON file."),
    risk: str | None = typer.Option(
        None,
        "--risk",
        help="Risk targets: teacher (RSD, or a control teacher's --labels; default) | off (baseline) | "
        "shuffled (control).",
    ),
    labels: Path | None = typer.Option(
        None, "--labels", help="Risk label folder (default <data>/labels/risk)."
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer steps (default: epochs)."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of the weights and the data order (default 0)."
    ),
    nproc: int = typer.Option(1, "--nproc", help="Data-parallel processes on this machine (spawned)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from <out>/checkpoints/latest.json."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override any config key: --set optimizer.lr=1e-3 (JSON values; repeatable)."
    ),
) -> None:
    """Train a camera-to-BEV student; with --risk teacher its RiskHead distils the teacher's risk maps."""
    from riskdistill.config import ConfigError
    from riskdistill.data.storage import DatasetError
    from riskdistill.training import (
        RISK_TARGET_MODES,
        CheckpointError,
        ConfigDriftError,
        TrainingProcessError,
        latest_checkpoint,
        launch,
        load_train_config,
    )
    from riskdistill.training.distributed import env_world_size

    if risk is not None and risk not in RISK_TARGET_MODES:
        fail(f"--risk must be one of {', '.join(RISK_TARGET_MODES)}; got {risk!r}")
    if nproc < 1:
        fail(f"--nproc must be >= 1, got {nproc}")
    if nproc > 1 and env_world_size() > 1:
        fail("--nproc starts its own processes: do not combine it with torchrun (WORLD_SIZE is set)")
    if max_steps is not None and max_steps < 1:
        fail(f"--max-steps must be >= 1, got {max_steps}")

    base: dict[str, Any] = {}
    if data is not None:
        base.setdefault("data", {})["root"] = str(data)
    if labels is not None:
        base.setdefault("data", {})["labels"] = str(labels)
    if preset is not None:
        base["model"] = {"preset": preset}
    for key, value in (("risk_targets", risk), ("max_steps", max_steps), ("seed", seed)):
        if value is not None:
            base[key] = value

    try:
        file_layer: dict[str, Any] | Path | None = config
        if resume and config is None and data is None:
            ckpt = latest_checkpoint(out)
            if ckpt is None:
                fail(f"nothing to resume: {out / 'checkpoints' / 'latest.json'} is missing")
            file_layer = ckpt / "config.json"
        if file_layer is None and data is None:
            fail("give the data set with --data (or data.root in --config)")
        cfg = load_train_config(file_layer, overrides=set_, base=base)
    except (ConfigError, CheckpointError) as exc:
        fail(str(exc))

    if not Path(cfg.data.root).is_dir():
        fail(f"data set folder not found: {cfg.data.root}")
    try:
        res = launch(cfg, out, resume=resume, nproc=nproc)
    except (
        ConfigDriftError,
        CheckpointError,
        DatasetError,
        ConfigError,
        ValueError,
        TrainingProcessError,
    ) as exc:
        fail(_one_message(exc))
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun every rank returns here; rank 0 reports
        return

    table = Table(title=f"train {cfg.risk_targets} ({cfg.model.preset}) -> {out}", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("steps", f"{res.step} / {res.total_steps} (epoch {res.epoch})")
    table.add_row("processes", str(res.world_size))
    table.add_row("throughput", f"{res.samples_per_s:.2f} samples/s")
    table.add_row("train losses", ", ".join(f"{k} {v:.4f}" for k, v in res.train_losses.items()) or "-")
    table.add_row("validation", ", ".join(f"{k} {v:.4f}" for k, v in res.val_metrics.items()) or "-")
    table.add_row("checkpoint", str(res.checkpoint))
    if res.resumed_from is not None:
        table.add_row("resumed from", str(res.resumed_from))
    if res.skipped_frames:
        table.add_row("skipped frames", f"{len(res.skipped_frames)} (reasons in {out / 'log.txt'})")
    console.print(table)
    if res.interrupted:
        console.print(f"[yellow]interrupted[/] at step {res.step}: continue with --resume --out {out}")
        raise typer.Exit(130)


def _one_message(exc: BaseException) -> str:
    """The error's message without a traceback a DataLoader worker may have put into it."""
    text = str(exc)
    if "Traceback (most recent call last)" not in text:
        return text
    import re

    last = [ln for ln in text.strip().splitlines() if ln.strip()][-1].strip()
    return re.sub(r"^[A-Za-z_][\w.]*(Error|Exception): ", "", last)
