"""The control runs' risk targets carry no risk information and have the teacher maps' layout (the
footprint control's labels: tests/test_teacher_controls.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from riskdistill.data.storage import RecordedDataset
from riskdistill.data.targets import RiskMapTarget
from riskdistill.data.torch_dataset import DrivingDataset, collate_batch
from riskdistill.training import (
    ShuffledRiskTarget,
    build_risk_target,
    shuffled_assignment,
)
from test_training_support import GRID, make_labelled_copy


@pytest.fixture(scope="session")
def labelled_dataset(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_copy(tiny_dataset, tmp_path_factory)


def test_shuffled_assignment_is_a_seeded_derangement() -> None:
    ids = [f"r{i // 10}/{i % 10:05d}" for i in range(30)]
    a = shuffled_assignment(ids, seed=1)
    assert sorted(a) == sorted(ids) and sorted(a.values()) == sorted(ids)  # a permutation
    assert all(src != dst for dst, src in a.items())  # nobody keeps its own map
    assert a == shuffled_assignment(list(reversed(ids)), seed=1)  # independent of the given order
    assert a != shuffled_assignment(ids, seed=2)
    with pytest.raises(ValueError, match="at least 2 frames"):
        shuffled_assignment(["r0/00000"], 0)


def test_shuffled_maps_are_a_permutation_of_the_teacher_maps(labelled_dataset: Path) -> None:
    ds = RecordedDataset(labelled_dataset)
    label_dir = labelled_dataset / "labels" / "risk"
    ids = ds.table.column("frame_id").to_pylist()
    shuffled = ShuffledRiskTarget(label_dir, ids, seed=5)
    teacher = RiskMapTarget(label_dir)
    real, fake = {}, {}
    for i in range(len(ds)):
        f = ds[i]
        real[f.frame_id] = teacher.build(f, GRID)["risk_map"]
        fake[f.frame_id] = shuffled.build(f, GRID)["risk_map"]
        assert fake[f.frame_id].shape == (1, *GRID.shape) and fake[f.frame_id].dtype == np.float32
    for fid, src in shuffled.source.items():
        np.testing.assert_array_equal(fake[fid], real[src])
    # the same multiset of maps, reassigned: statistics kept, the link to the scene broken
    digest = lambda m: m.tobytes()  # noqa: E731
    assert Counter(map(digest, real.values())) == Counter(map(digest, fake.values()))
    differs = sum(not np.array_equal(real[k], fake[k]) for k in real)
    assert differs > len(real) // 2


def test_control_targets_batch_like_the_teacher(labelled_dataset: Path) -> None:
    label_dir = labelled_dataset / "labels" / "risk"
    ids = RecordedDataset(labelled_dataset).table.column("frame_id").to_pylist()
    for mode in ("teacher", "shuffled"):
        builder = build_risk_target(mode, label_dir, ids, seed=0)
        assert builder.name == "risk_map"
        ds = DrivingDataset(labelled_dataset, GRID, ["future_trajectory", builder], cameras=["CAM_FRONT"])
        batch = collate_batch([ds[0], ds[1], ds[2]])
        r = batch.targets.risk_map
        assert r.shape == (3, 1, *GRID.shape) and r.dtype == torch.float32
        assert float(r.min()) >= 0.0 and float(r.max()) <= 1.0
    assert build_risk_target("off", label_dir) is None
    with pytest.raises(ValueError, match=r"unknown risk_targets mode 'vlm'.*'teacher', 'off'"):
        build_risk_target("vlm", label_dir)
