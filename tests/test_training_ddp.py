"""Data-parallel smoke run: 2 CPU processes (gloo) spawned by ``launch(nproc=2)``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from riskdistill.models import load_student
from riskdistill.training import launch, load_checkpoint, read_metrics
from test_training_support import make_labelled_copy, micro_config


@pytest.fixture(scope="session")
def labelled_dataset(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_copy(tiny_dataset, tmp_path_factory)


def test_two_process_gloo_run_keeps_replicas_identical(labelled_dataset: Path, tmp_path: Path) -> None:
    cfg = micro_config(
        labelled_dataset,
        max_steps=3,
        data={"max_train_samples": 8, "val_fraction": 0.5, "split_seed": 0, "max_val_samples": 3},
        checkpoint_every_steps=2,
        bev_grad_every_steps=2,  # the per-head BEV gradient probe runs under DDP too
    )
    run = tmp_path / "ddp"
    res = launch(cfg, run, nproc=2)
    assert res.world_size == 2 and res.step == 3 and not res.interrupted
    assert res.replica_max_abs_diff == 0.0  # DDP kept the two replicas bit-identical
    assert all(math.isfinite(v) for v in res.train_losses.values()) and res.train_losses["total"] > 0
    # 2 processes x batch 2: an epoch of 8 frames is 2 steps, so step 3 is in epoch 1
    ck = load_checkpoint(res.checkpoint)
    assert ck.trainer.world_size == 2 and ck.trainer.epoch == 1 and ck.trainer.samples_seen == 12
    assert len(ck.rng_per_rank) == 2  # every rank's RNG state
    assert load_student(res.checkpoint).has_risk_head
    rows = read_metrics(run)
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2, 3]  # rank 0 alone writes the log
    val = [r for r in rows if r["split"] == "val"]
    assert len(val) == 1 and math.isfinite(val[0]["planning_l1_m"]) and "risk_l1" in val[0]
    probes = [r for r in rows if r["split"] == "bev_grad"]
    assert [r["step"] for r in probes] == [2] and probes[0]["bev_grad_risk"] > 0.0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "final",
        "latest.json",
        "step_00000002",
    ]
