"""The training engine on the real (micro-sized) student: learning, checkpoints, resume, controls."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from riskdistill.data.torch_dataset import DrivingDataset, collate_batch
from riskdistill.io import atomic_write_json
from riskdistill.models import build_student, load_student, save_student
from riskdistill.training import (
    CheckpointError,
    ConfigDriftError,
    TrainConfig,
    load_checkpoint,
    read_metrics,
    train,
)
from riskdistill.training.checkpoint import TrainerState, capture_rng, save_checkpoint
from riskdistill.training.engine import seed_everything
from riskdistill.training.logger import MetricsLogger
from test_training_support import make_labelled_copy, micro_config


@pytest.fixture(scope="session")
def labelled_dataset(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_copy(tiny_dataset, tmp_path_factory)


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt / "model.safetensors"))


def _assert_same_weights(a: Path, b: Path, atol: float = 0.0) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=atol, rtol=0.0, msg=k)


def test_loss_decreases_on_a_handful_of_samples(labelled_dataset: Path, tmp_path: Path) -> None:
    cfg = micro_config(
        labelled_dataset,
        data={"max_train_samples": 4, "batch_size": 4},
        max_steps=30,
        optimizer={"lr": 3e-3},
        schedule={"warmup_steps": 3},
    )
    res = train(cfg, tmp_path / "run")
    rows = [r for r in read_metrics(tmp_path / "run") if r["split"] == "train"]
    assert [r["step"] for r in rows] == list(range(1, 31))
    first, last = rows[0], rows[-1]
    assert last["loss_total"] < 0.6 * first["loss_total"]
    assert last["loss_planning"] < 0.6 * first["loss_planning"]
    assert last["loss_risk"] < first["loss_risk"]
    assert rows[0]["lr"] == pytest.approx(1e-3) and rows[2]["lr"] == pytest.approx(3e-3)  # warm-up
    lrs = [r["lr"] for r in rows[2:]]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.01 * lrs[0]  # cosine towards 0
    assert res.step == 30 and res.checkpoint == tmp_path / "run" / "checkpoints" / "final"
    assert res.samples_per_s > 0 and res.train_losses["total"] == pytest.approx(last["loss_total"])
    run = (tmp_path / "run" / "run.json").read_text()
    assert (
        '"command": "train"' in run and '"seed": 0' in run and (tmp_path / "run" / "log.txt").stat().st_size
    )


def test_checkpoint_round_trip_gives_identical_outputs(labelled_dataset: Path, tmp_path: Path) -> None:
    cfg = micro_config(labelled_dataset)
    seed_everything(0)
    student = build_student(cfg.model)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2)
    ds = DrivingDataset(
        labelled_dataset,
        cfg.model.bev_grid(),
        student.target_names,
        cameras=cfg.cameras,
        image_hw=cfg.image_hw,
    )
    batch = collate_batch([ds[0], ds[1]])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (k + 1))
    for _ in range(2):
        student.losses(student(batch.observation), batch.targets)["total"].backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    path = save_checkpoint(
        tmp_path,
        "step_00000002",
        save_model=lambda d: save_student(student, d),
        config=cfg.to_dict(),
        optimizer=opt,
        scheduler=sched,
        scaler=None,
        rng_per_rank=[capture_rng()],
        trainer=TrainerState(step=2, epoch=0, batch_in_epoch=2, samples_seen=4),
    )
    student.eval()
    loaded = load_student(path)
    with torch.no_grad():
        a, b = student(batch.observation), loaded(batch.observation)
    assert a.keys() == b.keys() == {"bev", "waypoints", "occupancy", "risk"}
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ck = load_checkpoint(path)
    assert TrainConfig.from_dict(ck.config) == cfg and ck.trainer.step == 2 and ck.trainer.batch_in_epoch == 2
    opt2 = torch.optim.AdamW(loaded.parameters(), lr=1.0)
    opt2.load_state_dict(ck.optimizer)
    for k, v in opt.state_dict()["state"].items():
        for n, t in v.items():
            assert torch.equal(t, opt2.state_dict()["state"][k][n])
    assert ck.scheduler["last_epoch"] == 2
    assert not list(tmp_path.glob("checkpoints/.*"))  # no temporary folders left behind
    assert (tmp_path / "checkpoints" / "latest.json").read_text().count("step_00000002") == 1


def test_resume_is_equivalent_to_training_straight(labelled_dataset: Path, tmp_path: Path) -> None:
    # 8 frames, batch 2: 4 steps per epoch; the kill at step 3 is mid-epoch, the run crosses an epoch
    over = dict(
        data={"max_train_samples": 8, "val_fraction": 0.5, "split_seed": 0, "max_val_samples": 2},
        val_every_steps=2,
        max_steps=6,
        schedule={"warmup_steps": 2, "total_steps": 6},
        checkpoint_every_steps=3,
        keep_last_checkpoints=5,
    )
    straight = tmp_path / "straight"
    train(micro_config(labelled_dataset, **over), straight)
    assert {p.name for p in (straight / "checkpoints").iterdir()} == {
        "step_00000003", "step_00000006", "final", "latest.json"
    }  # fmt: skip

    # a run killed right after its step-3 checkpoint: later files gone, latest.json as it was then
    killed = tmp_path / "killed"
    shutil.copytree(straight, killed)
    shutil.rmtree(killed / "checkpoints" / "step_00000006")
    shutil.rmtree(killed / "checkpoints" / "final")
    atomic_write_json(killed / "checkpoints" / "latest.json", {"checkpoint": "step_00000003", "step": 3})
    res = train(micro_config(labelled_dataset, **over), killed, resume=True)
    assert res.step == 6 and res.resumed_from == killed / "checkpoints" / "step_00000003"
    _assert_same_weights(straight / "checkpoints" / "final", killed / "checkpoints" / "final", atol=1e-6)
    a, b = (
        load_checkpoint(straight / "checkpoints" / "final"),
        load_checkpoint(killed / "checkpoints" / "final"),
    )
    assert a.trainer == b.trainer and a.trainer.epoch == 1 and a.trainer.batch_in_epoch == 2
    rows_a, rows_b = read_metrics(straight), read_metrics(killed)
    assert [(r["step"], r["split"]) for r in rows_b if r["step"] <= 4] == [
        (1, "train"), (2, "train"), (2, "val"), (3, "train"), (4, "train"), (4, "val")
    ]  # fmt: skip  # the log matches the state, no duplicates
    assert len(rows_a) == len(rows_b) == 9
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ra.keys() == rb.keys()
        assert ra["loss_total"] == pytest.approx(rb["loss_total"], rel=1e-5)
    val = [r for r in rows_b if r["split"] == "val"]
    assert [r["step"] for r in val] == [2, 4, 6] and all(
        r["planning_l1_m"] > 0 and "risk_l1" in r for r in val
    )

    # stopping at 3 and extending max_steps to 6 on resume (the schedule length is fixed) is the same
    short = tmp_path / "short"
    train(micro_config(labelled_dataset, **{**over, "max_steps": 3}), short)
    train(micro_config(labelled_dataset, **over), short, resume=True)
    _assert_same_weights(straight / "checkpoints" / "final", short / "checkpoints" / "final", atol=1e-6)


def test_resume_refuses_config_drift(labelled_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = micro_config(labelled_dataset, max_steps=2)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(cfg, run, resume=True)
    train(cfg, run)
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        train(cfg, run)
    bad = micro_config(labelled_dataset, max_steps=2, optimizer={"lr": 1e-4}, data={"batch_size": 1})
    with pytest.raises(
        ConfigDriftError, match=r"(?s)\['data.batch_size', 'optimizer.lr'\].*0.002 != now 0.0001"
    ):
        train(bad, run, resume=True)
    with pytest.raises(ConfigDriftError, match="max_steps may only be extended"):
        train(micro_config(labelled_dataset, max_steps=1), run, resume=True)
    # allowed changes (logging, workers, a longer run) resume fine
    ok = micro_config(labelled_dataset, max_steps=3, log_every_steps=5, data={"max_val_samples": 3})
    res = train(ok, run, resume=True)
    assert res.step == 3 and res.resumed_from == run / "checkpoints" / "final"


def test_baseline_and_controls_share_everything_but_the_risk_head(
    labelled_dataset: Path, tmp_path: Path
) -> None:
    results = {}
    for mode in ("off", "teacher", "shuffled"):
        cfg = micro_config(labelled_dataset, risk_targets=mode, max_steps=1, data={"max_train_samples": 4})
        seed_everything(cfg.seed)
        init = build_student(cfg.model).state_dict()
        res = train(cfg, tmp_path / mode)
        results[mode] = (init, res)
        assert res.step == 1 and torch.isfinite(torch.tensor(res.train_losses["total"]))
        assert ("risk" in res.train_losses) == (mode != "off")
        assert load_student(res.checkpoint).has_risk_head == (mode != "off")
    base_init = results["off"][0]
    for mode in ("teacher", "shuffled"):
        init = results[mode][0]
        assert set(init) - set(base_init) and all(
            k.startswith("heads.risk.") for k in set(init) - set(base_init)
        )
        for k, v in base_init.items():  # same initial weights for the shared part
            assert torch.equal(v, init[k]), k
    # same data, same order, same initial weights: the planning loss of step 1 is identical
    plan = {m: r.train_losses["planning"] for m, (_, r) in results.items()}
    assert len({round(v, 6) for v in plan.values()}) == 1, plan
    # the control targets differ from the teacher's
    risk = {m: r.train_losses["risk"] for m, (_, r) in results.items() if m != "off"}
    assert len({round(v, 6) for v in risk.values()}) == 2, risk


def test_sigint_checkpoints_and_the_resumed_run_matches(
    labelled_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    over = dict(data={"max_train_samples": 6}, max_steps=4, schedule={"warmup_steps": 1})
    straight = train(micro_config(labelled_dataset, **over), tmp_path / "straight")

    real_log = MetricsLogger.log

    def log_then_interrupt(self, step, epoch, split, values):  # Ctrl-C while step 2 is being logged
        real_log(self, step, epoch, split, values)
        if step == 2 and split == "train":
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(MetricsLogger, "log", log_then_interrupt)
    run = tmp_path / "interrupted"
    res = train(micro_config(labelled_dataset, **over), run)
    assert res.interrupted and res.step == 2 and res.checkpoint == run / "checkpoints" / "step_00000002"
    assert not (run / "checkpoints" / "final").exists()
    monkeypatch.setattr(MetricsLogger, "log", real_log)
    res = train(micro_config(labelled_dataset, **over), run, resume=True)
    assert res.step == 4 and not res.interrupted
    _assert_same_weights(straight.checkpoint, res.checkpoint, atol=1e-6)


def test_loader_workers_stop_when_training_returns(labelled_dataset: Path, tmp_path: Path) -> None:
    """Persistent loader workers are stopped before ``train`` returns, not whenever the trainer is garbage-
    collected: in the pipeline, open-loop evaluation forks its loader worker next, and a forked child that
    collects the trainer cannot stop them (PyTorch prints "can only test a child process")."""
    import multiprocessing

    cfg = micro_config(
        labelled_dataset, data={"max_train_samples": 4, "batch_size": 2, "num_workers": 1}, max_steps=2
    )
    train(cfg, tmp_path / "run")
    assert multiprocessing.active_children() == []
