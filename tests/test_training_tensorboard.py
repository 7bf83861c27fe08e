"""TensorBoard logs of a training run: the scalars of metrics.csv (kept) and the predicted vs teacher risk
maps every N steps, read back with TensorBoard's own event reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from riskdistill.training import read_metrics, train
from riskdistill.training.logger import risk_map_grid
from test_training_support import make_labelled_copy, micro_config

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@pytest.fixture(scope="session")
def labelled_dataset(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_copy(tiny_dataset, tmp_path_factory)


def _events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_tensorboard_scalars_and_risk_images(labelled_dataset: Path, tmp_path: Path) -> None:
    cfg = micro_config(labelled_dataset, max_steps=5, tensorboard_images_every_steps=2)
    train(cfg, tmp_path / "run")
    rows = [r for r in read_metrics(tmp_path / "run") if r["split"] == "train"]  # the CSV is kept
    acc = _events(tmp_path / "run")
    tags = acc.Tags()
    assert {"train/loss_total", "train/loss_risk", "train/lr"} <= set(tags["scalars"])
    got = [(e.step, e.value) for e in acc.Scalars("train/loss_total")]
    assert [s for s, _ in got] == [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([v for _, v in got], [r["loss_total"] for r in rows], rtol=1e-5)
    images = acc.Images("train/risk_maps")
    assert [e.step for e in images] == [2, 4]
    import io

    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(images[0].encoded_image_string)).convert("RGB"))
    h, w = cfg.model.bev_grid().shape
    b = cfg.data.batch_size
    assert img.shape == (b * (h + 2) - 2, 2 * (w + 2) - 2, 3)  # a row per sample: predicted | teacher
    assert img[:, w + 2 :].std() > 1  # the teacher's maps hold risk (oracle labels)


def test_tensorboard_images_off_and_without_risk(labelled_dataset: Path, tmp_path: Path) -> None:
    cfg = micro_config(labelled_dataset, max_steps=2, tensorboard_images_every_steps=None)
    train(cfg, tmp_path / "a")
    assert "train/risk_maps" not in _events(tmp_path / "a").Tags()["images"]
    base = micro_config(
        labelled_dataset, max_steps=2, risk_targets="off", tensorboard_images_every_steps=1,
        model={"heads": {"risk": {"enabled": False}}},
    )  # fmt: skip
    train(base, tmp_path / "b")
    acc = _events(tmp_path / "b")
    assert "train/risk_maps" not in acc.Tags()["images"] and "train/loss_total" in acc.Tags()["scalars"]


def test_risk_map_grid_layout() -> None:
    pred = np.zeros((3, 1, 8, 10), np.float32)
    teacher = np.zeros((3, 1, 8, 10), np.float32)
    teacher[1, 0, 2, 3] = 1.0
    img = risk_map_grid(pred, teacher, n=2)
    assert img.shape == (2 * 8 + 2, 2 * 10 + 2, 3) and img.dtype == np.uint8
    assert (img[10 + 2, 12 + 3] > img[10 + 2, 12 + 4]).all()  # the teacher's hot cell, second row, right
    assert (img[8:10] == 255).all()  # white gap between rows
    assert risk_map_grid(pred).shape == (3 * 10 - 2, 10, 3)
