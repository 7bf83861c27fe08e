"""The training engine's data side: data sets with the run's target builders, a resumable distributed
sampler and the DataLoaders (``spawn`` workers: Numba/OpenMP thread pools do not survive a fork)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from riskdistill.data.storage import RecordedDataset
from riskdistill.data.targets import TargetBuilder
from riskdistill.data.torch_dataset import DrivingDataset, collate_batch
from riskdistill.geometry import BevGrid
from riskdistill.training.config import TrainConfig
from riskdistill.training.targets import build_risk_target


def target_builders(
    cfg: TrainConfig, target_names: Sequence[str], grid: BevGrid
) -> list[str | TargetBuilder]:
    """The student's targets with ``"risk_map"`` replaced by the builder of ``cfg.risk_targets``."""
    out: list[str | TargetBuilder] = []
    for name in target_names:
        if name != "risk_map":
            out.append(name)
            continue
        if cfg.risk_targets == "off":
            raise ValueError("the student asks for 'risk_map' targets but risk_targets='off' (baseline)")
        frame_ids: list[str] = []
        if cfg.risk_targets == "shuffled":
            frame_ids = RecordedDataset(cfg.data.root).table.column("frame_id").to_pylist()
        builder = build_risk_target(cfg.risk_targets, cfg.data.label_dir(), frame_ids, cfg.shuffle_seed)
        check = getattr(builder, "check", None)
        if check is not None:
            check(grid)  # a missing label folder fails here, not in a worker
        out.append(builder)
    return out


def build_datasets(
    cfg: TrainConfig, target_names: Sequence[str], grid: BevGrid
) -> tuple[DrivingDataset, DrivingDataset | None]:
    """``(train, val)``; val is None when ``val_fraction`` is 0 or no route falls into it. Each data set has
    its own target builders, so an epoch-dependent builder (the shuffled control) follows the training
    epochs while validation always sees epoch 0, with or without DataLoader workers."""
    d = cfg.data
    builders = target_builders(cfg, target_names, grid)
    common = dict(
        cameras=cfg.cameras,
        image_hw=cfg.image_hw,
        prev_frames=d.prev_frames,
        on_error=d.on_error,
        val_fraction=d.val_fraction,
        split_seed=d.split_seed,
        image_dtype=d.image_dtype,
    )
    train = DrivingDataset(d.root, grid, builders, augment=d.augment, split="train", **common)
    if d.max_train_samples is not None:
        train.indices = train.indices[: d.max_train_samples]
    if len(train) == 0:
        raise ValueError(
            f"{d.root}: no training frames (val_fraction={d.val_fraction}, split_seed={d.split_seed} put "
            f"every route into validation)"
        )
    val = None
    if d.val_fraction > 0:
        val = DrivingDataset(d.root, grid, target_builders(cfg, target_names, grid), split="val", **common)
        if d.max_val_samples is not None:
            val.indices = val.indices[: d.max_val_samples]
        if len(val) == 0:
            val = None
    return train, val


class ResumableSampler(Sampler[int]):
    """``DistributedSampler`` order (seeded shuffle per epoch, this rank's share, tail dropped) that can
    start part-way through an epoch: ``set_epoch(epoch, start)`` skips the first ``start`` indices."""

    def __init__(self, dataset: DrivingDataset, num_replicas: int, rank: int, seed: int):
        self.inner = DistributedSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.inner)[self.start :])

    def __len__(self) -> int:
        return max(len(self.inner) - self.start, 0)

    @property
    def samples_per_epoch(self) -> int:
        return len(self.inner)


def make_loader(
    dataset: DrivingDataset,
    batch_size: int,
    sampler: Sampler[int] | Sequence[int],
    num_workers: int,
    *,
    drop_last: bool,
    pin_memory: bool = False,
    persistent: bool = True,
) -> DataLoader:
    """A DataLoader of :class:`~riskdistill.contracts.batch.Batch` with ``spawn`` workers. It has its own
    generator, so creating an iterator never draws from the global torch RNG (resume equivalence)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_batch,
        drop_last=drop_last,
        pin_memory=pin_memory,
        multiprocessing_context="spawn" if num_workers > 0 else None,
        persistent_workers=persistent and num_workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
