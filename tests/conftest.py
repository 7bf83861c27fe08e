"""Shared fixtures: a tiny recorded data set, recorded once per test session (also under pytest-xdist)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from riskdistill.sim.suites import RouteSpec, Suite

TINY_HW = (64, 176)
TINY_EVERY = 5  # record every 5th step (2 Hz)


def make_tiny_suite() -> Suite:
    """Two short junction routes (one on the held-out T junction)."""
    return Suite(
        name="tiny",
        description="two short junction routes",
        routes=[
            RouteSpec(
                route_id="r0",
                scenario="VehicleTurningRoutePedestrian",
                seed=7,
                layout={"family": "junction4"},
            ),
            RouteSpec(
                route_id="r1",
                scenario="OppositeVehicleRunningRedLight",
                seed=7,
                layout={"family": "junction_t"},
            ),
        ],
    )


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny suite recorded with the bench2drive rig at 64x176; read only (copy it to modify it).

    xdist workers share one recording through a lock file in the common base temp folder.
    """
    from riskdistill.data import format as fmt
    from riskdistill.data import record_suite

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    out, lock = root / "tiny_dataset", root / "tiny_dataset.lock"
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            time.sleep(0.1)
    try:
        if not (out / fmt.MANIFEST).exists():
            res = record_suite(
                make_tiny_suite(),
                "bench2drive",
                out,
                image_hw=TINY_HW,
                every_n_steps=TINY_EVERY,
                workers=2,
                show_progress=False,
            )
            assert res.failed == [] and sorted(res.recorded) == ["r0", "r1"]
    finally:
        os.close(fd)
        os.unlink(lock)
    return out


@pytest.fixture(scope="session", autouse=True)
def _engine_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Exported ONNX graphs (``models.engines.engine_cache_dir``) go to a session folder, not ~/.cache."""
    os.environ.setdefault("RISKDISTILL_CACHE", str(tmp_path_factory.mktemp("riskdistill_cache")))


def closed_loop_cli(tmp_path: Path, route: RouteSpec, *options: str) -> Path:
    """Run ``riskdistill eval closed-loop`` with the expert on the one route ``route`` (one worker) and
    ``options``; asserts it succeeded and returns the output folder."""
    from typer.testing import CliRunner

    from riskdistill.cli.evaluate import app
    from riskdistill.io import atomic_write_text

    suite_file = tmp_path / "suite.json"
    atomic_write_text(suite_file, Suite(name="one", routes=[route]).model_dump_json())
    out = tmp_path / "eval"
    args = ["closed-loop", "--suite", str(suite_file), "--out", str(out), "--workers", "1", *options]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return out
