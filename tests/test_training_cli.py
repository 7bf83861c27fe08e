"""``riskdistill train`` (the Typer command function, registered here on a test app)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from riskdistill.cli.train import train as train_command
from riskdistill.training import load_checkpoint
from test_training_support import MICRO, make_labelled_copy


@pytest.fixture(scope="session")
def labelled_dataset(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_copy(tiny_dataset, tmp_path_factory)


app = typer.Typer()
app.command("train")(train_command)


@app.callback()
def _main() -> None:
    """riskdistill (test app)"""


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["train", *map(str, args)])
    return res.exit_code, res.output


def test_cli_errors_are_clean(tmp_path: Path) -> None:
    code, out = _run("--data", tmp_path, "--out", tmp_path / "r", "--set", "optimizer.lr")
    assert code == 2 and "bad override 'optimizer.lr'" in out and "Traceback" not in out
    code, out = _run("--data", tmp_path, "--out", tmp_path / "r", "--risk", "vlm")
    assert code == 2 and "--risk must be one of teacher, off, shuffled" in out
    code, out = _run("--data", tmp_path, "--out", tmp_path / "r", "--set", "optimzer.lr=1")
    assert code == 2 and "optimzer" in out and "optimizer" in out
    code, out = _run("--data", tmp_path / "nope", "--out", tmp_path / "r")
    assert code == 2 and "data set folder not found" in out
    code, out = _run("--out", tmp_path / "r", "--resume")
    assert code == 2 and "nothing to resume" in out
    code, out = _run("--out", tmp_path / "r")
    assert code == 2 and "--data" in out


def test_cli_trains_resumes_and_refuses_drift(labelled_dataset: Path, tmp_path: Path) -> None:
    config = tmp_path / "micro.json"
    config.write_text(
        json.dumps(
            {
                "model": MICRO,
                "data": {"batch_size": 2, "val_fraction": 0.0, "max_train_samples": 4},
                "device": "cpu",
                "cpu_threads": 1,
                "progress": False,
                "schedule": {"total_steps": 3},
            }
        )
    )
    run = tmp_path / "run"
    code, out = _run(
        "--data", labelled_dataset, "--out", run, "--config", config, "--max-steps", 2, "--risk", "shuffled",
        "--seed", 3, "--set", "shuffle_seed=8",
    )  # fmt: skip
    assert code == 0, out
    assert "2 / 2" in out and "samples/s" in out
    ck = load_checkpoint(run / "checkpoints" / "final")
    assert ck.config["risk_targets"] == "shuffled" and ck.config["seed"] == 3
    assert ck.config["shuffle_seed"] == 8 and ck.config["data"]["root"] == str(labelled_dataset)

    # --resume alone takes the run's config from its checkpoint; a longer run is an allowed change
    code, out = _run("--out", run, "--resume", "--max-steps", 3)
    assert code == 0, out
    assert load_checkpoint(run / "checkpoints" / "final").trainer.step == 3 and "resumed from" in out

    code, out = _run("--out", run, "--resume", "--max-steps", 4, "--set", "optimizer.lr=0.1")
    assert code == 2 and "refusing to resume" in out and "optimizer.lr" in out
