"""The study's controls: the shuffled control is a fresh derangement every epoch (deterministic, resumable,
followed by DataLoader workers); the corridor control paints the expert's path with the teacher maps'
statistics."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest

from riskdistill.data.storage import RecordedDataset
from riskdistill.data.targets import RiskMapTarget
from riskdistill.data.torch_dataset import DrivingDataset
from riskdistill.teacher.build import make_teacher
from riskdistill.teacher.controls import (
    EGO_FRONT_M,
    CorridorConfig,
    CorridorTeacher,
    calibrate_corridor,
    compute_label_stats,
    paint_corridor,
    path_distance,
    swept_path,
)
from riskdistill.teacher.runner import label_dataset
from riskdistill.training import ShuffledRiskTarget, shuffled_assignment
from riskdistill.training.data import build_datasets, make_loader
from test_training_support import GRID, make_labelled_copy, micro_config


@pytest.fixture(scope="session")
def labelled_dataset(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_copy(tiny_dataset, tmp_path_factory)


# ------------------------------------------------------------------------------------------ shuffled
def test_shuffled_assignment_changes_every_epoch_and_stays_a_derangement() -> None:
    ids = [f"r{i // 10}/{i % 10:05d}" for i in range(40)]
    maps = [shuffled_assignment(ids, seed=3, epoch=e) for e in range(6)]
    for a in maps:
        assert sorted(a) == sorted(ids) and sorted(a.values()) == sorted(ids)  # a permutation
        assert all(src != dst for dst, src in a.items())  # nobody gets its own map
    # every epoch pairs the frames differently: most frames get another source than the epoch before
    for a, b in itertools.pairwise(maps):
        assert sum(a[k] != b[k] for k in ids) > len(ids) // 2
    # deterministic in (seed, epoch), independent of the order the frames come in
    assert maps[4] == shuffled_assignment(list(reversed(ids)), seed=3, epoch=4)
    assert maps[4] != shuffled_assignment(ids, seed=4, epoch=4)
    # two frames have one derangement only: it is the same every epoch, and still one
    two = [shuffled_assignment(["a", "b"], 0, e) for e in range(3)]
    assert all(t == {"a": "b", "b": "a"} for t in two)
    with pytest.raises(ValueError, match="epoch >= 0"):
        shuffled_assignment(ids, 0, -1)


def test_shuffled_target_follows_the_data_sets_epoch(labelled_dataset: Path) -> None:
    label_dir = labelled_dataset / "labels" / "risk"
    ids = RecordedDataset(labelled_dataset).table.column("frame_id").to_pylist()
    builder = ShuffledRiskTarget(label_dir, ids, seed=1)
    teacher = RiskMapTarget(label_dir)
    ds = DrivingDataset(labelled_dataset, GRID, [builder], cameras=["CAM_FRONT"], image_hw=(32, 88))
    assert ds.epoch_dependent
    frames = RecordedDataset(labelled_dataset)
    real = {frames[i].frame_id: teacher.build(frames[i], GRID)["risk_map"] for i in range(len(frames))}

    def epoch_targets(epoch: int) -> dict[str, np.ndarray]:
        ds.set_epoch(epoch)
        assert builder.epoch == epoch
        return {ds.frame_id(i): ds[i].targets.risk_map.numpy() for i in range(len(ds))}

    e0, e1, e0_again = epoch_targets(0), epoch_targets(1), epoch_targets(0)
    for fid in e0:
        np.testing.assert_array_equal(e0[fid], real[shuffled_assignment(ids, 1, 0)[fid]])
        np.testing.assert_array_equal(e1[fid], real[shuffled_assignment(ids, 1, 1)[fid]])
        np.testing.assert_array_equal(e0[fid], e0_again[fid])  # resumable: epoch 0 again is epoch 0
    changed = sum(not np.array_equal(e0[k], e1[k]) for k in e0)
    assert changed > len(e0) // 2
    # a worker gets the builder pickled: it keeps the epoch and rebuilds the same mapping
    ds.set_epoch(1)
    copy = pickle.loads(pickle.dumps(builder))
    assert copy.epoch == 1 and copy.source == builder.source


def test_training_data_sets_give_workers_the_epochs_mapping(labelled_dataset: Path) -> None:
    """The engine's loader: spawn workers re-created each epoch see that epoch's derangement; validation
    keeps epoch 0 (its own builder)."""
    cfg = micro_config(
        labelled_dataset, risk_targets="shuffled", shuffle_seed=2, data={"val_fraction": 0.5, "split_seed": 1}
    )
    train, val = build_datasets(cfg, ["risk_map"], GRID)
    assert train.epoch_dependent and val is not None
    train_builder, val_builder = train.builders[0], val.builders[0]
    assert train_builder is not val_builder
    ids = RecordedDataset(labelled_dataset).table.column("frame_id").to_pylist()
    teacher = RiskMapTarget(labelled_dataset / "labels" / "risk")
    frames = {f.frame_id: f for f in (RecordedDataset(labelled_dataset)[i] for i in range(len(ids)))}
    order = list(range(min(len(train), 6)))
    for epoch in (0, 3):
        train.set_epoch(epoch)
        loader = make_loader(train, 2, order, num_workers=1, drop_last=False, persistent=False)
        mapping = shuffled_assignment(ids, 2, epoch)
        for batch in loader:
            for fid, got in zip(batch.frame_ids, batch.targets.risk_map.numpy(), strict=True):
                np.testing.assert_array_equal(got, teacher.build(frames[mapping[fid]], GRID)["risk_map"])
    assert val_builder.epoch == 0 and train_builder.epoch == 3


# ------------------------------------------------------------------------------------------ corridor
def test_corridor_paints_the_swept_path_nearest_hottest() -> None:
    xy = np.array([[2.0, 0.0], [4.0, 0.0], [6.0, 1.0], [8.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
    valid = np.array([True, True, True, True, False, False])
    yaw = np.array([0.0, 0.0, 0.4, 0.46, 0.0, 0.0])
    poly = swept_path(xy, valid, yaw)
    assert poly.shape == (7, 2) and poly[0, 0] < 0.0 and np.allclose(poly[1], 0.0)
    np.testing.assert_allclose(poly[-1], [8.0 + EGO_FRONT_M * np.cos(0.46), 2.0 + EGO_FRONT_M * np.sin(0.46)])
    d, s = path_distance(poly, GRID)
    m = paint_corridor(d, s, width_m=2.0, value_quantiles=[0.2, 0.5, 0.9])
    hot = m > 0
    np.testing.assert_array_equal(hot, d <= 1.0)
    # the values run from 0.9 near the ego down to 0.2 at the nose, along the path
    near = m[GRID.metric_to_cell([0.5, 0.5])[0], GRID.metric_to_cell([0.5, 0.5])[1]]
    r, c = GRID.metric_to_cell([9.5, 3.5])
    assert near > 0.7 and 0.2 <= m[r, c] < 0.4
    assert m.max() <= 0.9 and m[hot].min() >= 0.2
    # the pooled values of the corridor follow the given quantile function
    np.testing.assert_allclose(np.quantile(m[hot], [0.0, 0.5, 1.0]), [0.2, 0.5, 0.9], atol=0.05)
    with pytest.raises(ValueError, match="ascending"):
        CorridorConfig(value_quantiles=[0.9, 0.2])


def test_corridor_control_matches_the_teachers_statistics(labelled_dataset: Path, tmp_path: Path) -> None:
    teacher_dir = labelled_dataset / "labels" / "risk"
    cfg, report = calibrate_corridor(labelled_dataset, teacher_dir, GRID)
    assert report["frames"] == len(RecordedDataset(labelled_dataset))
    teacher = make_teacher("corridor", cfg.to_dict())
    assert isinstance(teacher, CorridorTeacher) and teacher.config == cfg
    res = label_dataset(
        labelled_dataset, tmp_path / "corridor", teacher, GRID, show_progress=False, run_dir=False
    )
    assert res.n_errors == 0 and res.labelled == len(RecordedDataset(labelled_dataset))
    want = compute_label_stats(teacher_dir)
    got = compute_label_stats(tmp_path / "corridor")
    assert got["n_maps"] == want["n_maps"]
    # matched: the mean hot area (one width for all frames) and the hot cells' value histogram
    assert got["hot_fraction_mean"] == pytest.approx(want["hot_fraction_mean"], rel=0.1)
    assert report["corridor_hot_fraction_mean"] == pytest.approx(got["hot_fraction_mean"], rel=1e-6)
    np.testing.assert_allclose(got["value_quantiles"][5:96], want["value_quantiles"][5:96], atol=0.03)
    assert got["hot_value_mean"] == pytest.approx(want["hot_value_mean"], abs=0.02)
    assert got["mean_value"] == pytest.approx(want["mean_value"], rel=0.15)
    # not matched, by design: a corridor is never empty
    assert got["empty_fraction"] == 0.0
    # the maps differ from the teacher's: they sit on the expert's path, not on the hazards
    frame = RecordedDataset(labelled_dataset)[5]
    corridor = np.load(tmp_path / "corridor" / "maps" / f"{frame.frame_id}.npy").astype(np.float32)
    assert corridor[GRID.metric_to_cell([0.5, 0.0])[0], GRID.metric_to_cell([0.5, 0.0])[1]] > 0
    # relabelling with the same configuration is a no-op (the runner's cache key holds the config)
    again = label_dataset(
        labelled_dataset, tmp_path / "corridor", teacher, GRID, show_progress=False, run_dir=False
    )
    assert again.skipped == res.labelled and again.labelled == 0
