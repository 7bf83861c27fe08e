"""Run directories: every long job writes its resolved config, git commit, package versions, seeds and log."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from riskdistill.io import atomic_write_json

TRACKED_PACKAGES = (
    "riskdistill",
    "numpy",
    "numba",
    "torch",
    "torchvision",
    "timm",
    "safetensors",
    "scipy",
    "pydantic",
    "pillow",
    "transformers",
    "xgrammar",
    "ray",
)


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def create_run_dir(
    out_dir: Path, command: str, config: dict[str, Any], seeds: dict[str, int] | None = None
) -> Path:
    """Create ``out_dir`` (if needed), write ``run.json`` and attach a file log handler to ``riskdistill``."""
    write_run_json(out_dir, command, config, seeds)
    logger = logging.getLogger("riskdistill")
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(out_dir / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return out_dir


def machine_facts() -> dict[str, Any]:
    """What of the machine can change floating-point results: the CPU model, its core count, and torch's
    vector instruction set and thread count (oneDNN and MKL pick kernels by both), so runs of one seed that
    differ can be traced to a machine."""
    model = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    facts: dict[str, Any] = {"cpu_model": model, "cpu_count": os.cpu_count()}
    try:
        import torch

        facts["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        facts["torch_threads"] = torch.get_num_threads()
    except (ImportError, AttributeError):
        pass
    return facts


def write_run_json(
    out_dir: Path, command: str, config: dict[str, Any], seeds: dict[str, int] | None = None
) -> None:
    """Write ``out_dir/run.json``: the command, resolved config, seeds, git commit, versions, platform and
    machine (:func:`machine_facts`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out_dir / "run.json",
        {
            "command": command,
            "argv": sys.argv,
            "config": config,
            "seeds": seeds or {},
            "git_commit": git_commit(),
            "packages": package_versions(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "machine": machine_facts(),
            "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
