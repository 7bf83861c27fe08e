"""Shared helpers of the training tests: the tiny data set labelled by the oracle teacher, and a "micro"
student (the real tiny student, narrowed so a training step takes ~0.1 s on one core)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from riskdistill.config import deep_merge
from riskdistill.data.storage import RecordedDataset
from riskdistill.data.targets import RiskMapTarget
from riskdistill.geometry import BevGrid
from riskdistill.teacher import OracleTeacher, rasterise_label, save_risk_map
from riskdistill.training import TrainConfig, load_train_config

GRID = BevGrid.preset("tiny")

#: Overrides of the tiny student preset used by the training tests (2 cameras at 32x88, 16 channels).
MICRO: dict[str, Any] = {
    "preset": "tiny",
    "image_hw": [32, 88],
    "cameras": ["CAM_FRONT", "CAM_BACK"],
    "channels": 16,
    "view": {"bev_hw": [16, 16]},
    "bev_encoder": {"n_blocks": 1},
    "heads": {
        "planning": {"n_layers": 1, "ffn_dim": 32},
        "occupancy": {"hidden": 8},
        "risk": {"channels": 8},
    },
}


def oracle_risk_map(frame, teacher: OracleTeacher, grid: BevGrid = GRID) -> np.ndarray:
    label = teacher.label(frame)
    return rasterise_label({o.object_id: o.risk for o in label.objects}, frame.annotation, grid)[0]


def write_oracle_labels(root: Path, grid: BevGrid = GRID) -> Path:
    """Label every frame of the data set at ``root`` with the oracle teacher into ``root/labels/risk``."""
    ds = RecordedDataset(root)
    teacher = OracleTeacher()
    label_dir = root / "labels" / "risk"
    for i in range(len(ds)):
        frame = ds[i]
        save_risk_map(label_dir, frame.frame_id, oracle_risk_map(frame, teacher, grid), grid)
    return label_dir


def make_labelled_copy(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny data set with oracle risk maps on ``BevGrid.preset("tiny")`` (read only); the
    training test files wrap it in a session fixture named ``labelled_dataset``."""
    root = tmp_path_factory.mktemp("training") / "tiny_labelled"
    shutil.copytree(tiny_dataset, root)
    write_oracle_labels(root)
    return root


@pytest.fixture(scope="session")
def labelled_dataset(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_copy(tiny_dataset, tmp_path_factory)


def micro_config(root: Path, **over: Any) -> TrainConfig:
    """A small, fast, CPU training config on ``root`` (nested dict ``over`` merged in)."""
    base = {
        "data": {"root": str(root), "batch_size": 2, "val_fraction": 0.0},
        "model": MICRO,
        "optimizer": {"lr": 2e-3},
        "device": "cpu",
        "cpu_threads": 1,
        "max_steps": 4,
        "log_every_steps": 1,
        "checkpoint_every_steps": None,
        "progress": False,
    }
    return load_train_config(base=deep_merge(base, over))


def test_labelled_dataset_has_an_oracle_map_per_frame(labelled_dataset: Path) -> None:
    ds = RecordedDataset(labelled_dataset)
    maps = sorted((labelled_dataset / "labels" / "risk" / "maps").rglob("*.npy"))
    assert len(maps) == len(ds) > 10
    frame = ds[len(ds) // 2]
    want = oracle_risk_map(frame, OracleTeacher())
    got = RiskMapTarget(labelled_dataset / "labels" / "risk").build(frame, GRID)["risk_map"]
    assert got.shape == (1, *GRID.shape)
    np.testing.assert_allclose(got[0], want, atol=1e-3)
    assert float(got.max()) > 0.0
