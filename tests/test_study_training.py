"""The study's training diagnostic: each head loss's gradient norm at the shared BEV features, logged every
N steps without changing the training numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from riskdistill.training import read_metrics, train
from riskdistill.training.engine import bev_grad_norms
from test_training_support import MICRO, make_labelled_copy, micro_config


@pytest.fixture(scope="session")
def labelled_dataset(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_copy(tiny_dataset, tmp_path_factory)


def test_bev_grad_norms_by_hand() -> None:
    bev = torch.ones(2, 3, 4, 4, requires_grad=True)
    w = torch.tensor(2.0, requires_grad=True)
    losses = {
        "risk": (bev * 3.0).sum(),  # d/d bev = 3 everywhere: norm 3 * sqrt(96)
        "planning": (bev**2).mean(),  # d/d bev = 2 * bev / 96
        "image_aux": w * 5.0,  # does not reach the BEV features
    }
    losses["total"] = sum(losses.values())
    got = bev_grad_norms({"bev": bev}, losses)
    assert got.keys() == {"bev_grad_risk", "bev_grad_planning", "bev_grad_image_aux"}
    assert got["bev_grad_risk"] == pytest.approx(3.0 * 96**0.5)
    assert got["bev_grad_planning"] == pytest.approx(2.0 / 96 * 96**0.5)
    assert got["bev_grad_image_aux"] == 0.0
    assert bev.grad is None and w.grad is None  # no parameter gradient was touched
    assert bev_grad_norms({"bev": bev.detach()}, losses) == {}


def test_bev_grad_rows_are_logged_and_change_nothing(labelled_dataset: Path, tmp_path: Path) -> None:
    over = dict(data={"max_train_samples": 6}, max_steps=4)
    runs = {}
    for every in (None, 2):
        out = tmp_path / f"every-{every}"
        train(micro_config(labelled_dataset, bev_grad_every_steps=every, **over), out)
        runs[every] = out
    rows = [r for r in read_metrics(runs[2]) if r["split"] == "bev_grad"]
    assert [r["step"] for r in rows] == [2, 4]
    for r in rows:
        assert r["bev_grad_risk"] > 0.0 and r["bev_grad_planning"] > 0.0
    assert not [r for r in read_metrics(runs[None]) if r["split"] == "bev_grad"]
    a = load_file(str(runs[None] / "checkpoints" / "final" / "model.safetensors"))
    b = load_file(str(runs[2] / "checkpoints" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0.0, rtol=0.0, msg=k)


def test_a_risk_head_on_the_lifted_features_is_measured_there(labelled_dataset: Path, tmp_path: Path) -> None:
    """``model.risk_reads="lifted"``: the risk loss does not reach the shared BEV features (0 there), so the
    gradient shares are also logged at the BEV encoder's input, where it attaches."""
    from riskdistill.experiment.study import bev_grad_summary

    over = dict(data={"max_train_samples": 6}, max_steps=2, model={**MICRO, "risk_reads": "lifted"})
    train(micro_config(labelled_dataset, bev_grad_every_steps=1, **over), tmp_path / "run")
    rows = [r for r in read_metrics(tmp_path / "run") if r["split"] == "bev_grad"]
    assert len(rows) == 2
    for r in rows:
        assert r["bev_grad_risk"] == 0.0 and r["bev_grad_planning"] > 0.0
        assert r["lifted_grad_risk"] > 0.0 and r["lifted_grad_planning"] > 0.0
    summary = bev_grad_summary(tmp_path / "run")
    assert summary["risk_over_planning"] == 0.0 and summary["lifted_risk_over_planning"] > 0.0
