"""Repeat factor sampling (``data.scenario_repeat``): which frames an epoch holds, in what order."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from torch.utils.data import DistributedSampler

from riskdistill.config import ConfigError
from riskdistill.data.torch_dataset import DrivingDataset
from riskdistill.geometry import BevGrid
from riskdistill.training import train
from riskdistill.training.data import ResumableSampler, repeat_factors
from test_training_support import micro_config

GRID = BevGrid.preset("tiny")
PED = "VehicleTurningRoutePedestrian"  # route r0 of the tiny suite; r1 is OppositeVehicleRunningRedLight


def _dataset(root: Path) -> DrivingDataset:
    return DrivingDataset(root, GRID, [], split=None)


def test_an_epoch_holds_each_frame_of_a_repeated_scenario_that_many_times(tiny_dataset: Path) -> None:
    ds = _dataset(tiny_dataset)
    scenarios = ds.scenarios
    assert set(scenarios) == {PED, "OppositeVehicleRunningRedLight"}
    repeats = repeat_factors(ds, {PED: 3})
    assert repeats == [3 if s == PED else 1 for s in scenarios]
    sampler = ResumableSampler(ds, num_replicas=1, rank=0, seed=5, repeats=repeats)
    assert sampler.samples_per_epoch == sum(repeats) == len(sampler)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    assert Counter(epoch0) == {i: r for i, r in enumerate(repeats)}
    assert epoch0 != sorted(epoch0)  # shuffled, repeats spread over the epoch
    # deterministic for a seed and epoch; another epoch is another order of the same multiset
    sampler.set_epoch(0)
    assert list(sampler) == epoch0
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch1 != epoch0 and Counter(epoch1) == Counter(epoch0)
    # resuming part-way through an epoch continues the same order
    sampler.set_epoch(1, start=7)
    assert list(sampler) == epoch1[7:] and len(sampler) == len(epoch1) - 7
    # two ranks split one epoch between them, each frame as often as in one process (tail dropped)
    halves = [ResumableSampler(ds, num_replicas=2, rank=r, seed=5, repeats=repeats) for r in (0, 1)]
    for h in halves:
        h.set_epoch(0)
    both = Counter(list(halves[0]) + list(halves[1]))
    assert sum(both.values()) == 2 * (sum(repeats) // 2)
    assert all(both[i] <= r for i, r in enumerate(repeats))


def test_without_repeats_the_order_is_the_distributed_samplers(tiny_dataset: Path) -> None:
    # the study's students trained without repeats: their sample order must not change
    ds = _dataset(tiny_dataset)
    assert repeat_factors(ds, {}) is None
    ours, ref = (
        ResumableSampler(ds, 1, 0, seed=3),
        DistributedSampler(ds, 1, 0, shuffle=True, seed=3, drop_last=True),
    )
    for epoch in (0, 2):
        ours.set_epoch(epoch)
        ref.set_epoch(epoch)
        assert list(ours) == list(ref)


def test_a_scenario_no_training_frame_has_is_refused(tiny_dataset: Path, tmp_path: Path) -> None:
    ds = _dataset(tiny_dataset)
    with pytest.raises(ValueError, match=r"(?s)scenario_repeat.*\['ParkedObstacle'\].*present: .*" + PED):
        repeat_factors(ds, {"ParkedObstacle": 2})
    with pytest.raises(ValueError, match="2 factors for"):
        ResumableSampler(ds, 1, 0, seed=0, repeats=[1, 1])
    with pytest.raises(ConfigError, match=r"scenario_repeat factors must be >= 1.*" + PED):
        micro_config(tiny_dataset, data={"scenario_repeat": {PED: 0}})
    # the engine refuses a typo before training a step
    with pytest.raises(ValueError, match="ParkedObstacle"):
        train(
            micro_config(tiny_dataset, risk_targets="off", data={"scenario_repeat": {"ParkedObstacle": 2}}),
            tmp_path / "run",
        )
    assert not (tmp_path / "run" / "checkpoints").exists()
