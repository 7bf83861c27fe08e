"""The training engine's data side: data sets with the run's target builders, a resumable distributed
sampler and the DataLoaders (``spawn`` workers: Numba/OpenMP thread pools do not survive a fork)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler, Sampler

from riskdistill.contracts.compat import check_image_size
from riskdistill.data.frame_cache import FrameCache
from riskdistill.data.storage import DataError, RecordedDataset
from riskdistill.data.targets import TargetBuilder
from riskdistill.data.torch_dataset import DrivingDataset, collate_batch
from riskdistill.geometry import BevGrid
from riskdistill.io import atomic_write_text
from riskdistill.training.config import TrainConfig
from riskdistill.training.targets import build_risk_target


def target_builders(
    cfg: TrainConfig, target_names: Sequence[str], grid: BevGrid, root: str | None = None
) -> list[str | TargetBuilder]:
    """The student's targets with ``"risk_map"`` replaced by the builder of ``cfg.risk_targets``, for the
    data set ``root`` (default ``cfg.data.root``; its labels, its frames for the shuffled control)."""
    root = root or cfg.data.root
    out: list[str | TargetBuilder] = []
    for name in target_names:
        if name != "risk_map":
            out.append(name)
            continue
        if cfg.risk_targets == "off":
            raise ValueError("the student asks for 'risk_map' targets but risk_targets='off' (baseline)")
        frame_ids: list[str] = []
        if cfg.risk_targets == "shuffled":
            frame_ids = RecordedDataset(root).table.column("frame_id").to_pylist()
        builder = build_risk_target(cfg.risk_targets, cfg.data.label_dir(root), frame_ids, cfg.shuffle_seed)
        check = getattr(builder, "check", None)
        if check is not None:
            check(grid)  # a missing label folder fails here, not in a worker
        out.append(builder)
    return out


def data_signature(root: str | Path, extra_roots: Sequence[str | Path] = ()) -> dict[str, Any]:
    """What a resumed run must find again in its data set: the stored image size, the cameras and rig, the
    frame count and the hash of ``frames.parquet`` (from the manifest); ``extra_roots``' under
    ``"extra_roots"`` (absent without: the signature of a single-root run is unchanged)."""
    m = RecordedDataset(root).manifest
    sig: dict[str, Any] = {
        "image_hw": [int(v) for v in m["image_hw"]],
        "camera_names": list(m["camera_names"]),
        "rig": (m.get("rig") or {}).get("name"),
        "n_frames": (m.get("counts") or {}).get("frames"),
        "frames_sha256": (m.get("files") or {}).get("frames.parquet"),
    }
    if extra_roots:
        sig["extra_roots"] = [data_signature(r) for r in extra_roots]
    return sig


def check_data_fits_model(cfg: TrainConfig) -> None:
    """ValueError naming both sizes when a data set's images cannot feed the model (contracts.compat), or
    when an extra data set was recorded with another rig (cameras, mounting, field of view) than ``root``."""
    first = RecordedDataset(cfg.data.root).manifest.get("rig")
    for root in cfg.data.roots:
        m = RecordedDataset(root).manifest
        check_image_size(
            cfg.image_hw,
            m["image_hw"],
            "the model (model.image_hw / data.image_hw)",
            f"the data set {root} (manifest image_hw)",
        )
        rig = m.get("rig")
        if rig != first:
            raise ValueError(
                f"data.extra_roots: {root} was recorded with rig {(rig or {}).get('name')!r}, data.root "
                f"{cfg.data.root} with {(first or {}).get('name')!r} (or their cameras differ)"
            )


class MultiRootDataset(ConcatDataset):
    """The frames of several recorded data sets (``data.root`` and ``data.extra_roots``), one
    :class:`DrivingDataset` each, trained on as one."""

    datasets: list[DrivingDataset]

    @property
    def epoch_dependent(self) -> bool:
        return any(d.epoch_dependent for d in self.datasets)

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            d.set_epoch(epoch)

    @property
    def skipped(self) -> dict[str, str]:
        return {k: v for d in self.datasets for k, v in d.skipped.items()}

    @property
    def scenarios(self) -> list[str]:
        return [s for d in self.datasets for s in d.scenarios]


def repeat_factors(
    dataset: DrivingDataset | MultiRootDataset, scenario_repeat: dict[str, int]
) -> list[int] | None:
    """Per training frame, how often an epoch draws it (``data.scenario_repeat``; 1 for other scenario
    types); None when nothing repeats. A scenario type that no training frame has is a ``ValueError`` that
    lists those present (a typo must not silently train on the plain mix)."""
    if not scenario_repeat:
        return None
    scenarios = dataset.scenarios
    present = set(scenarios)
    missing = sorted(set(scenario_repeat) - present)
    if missing:
        raise ValueError(
            f"data.scenario_repeat: no training frame of scenario type(s) {missing}; "
            f"present: {sorted(present)}"
        )
    return [scenario_repeat.get(s, 1) for s in scenarios]


def build_datasets(
    cfg: TrainConfig, target_names: Sequence[str], grid: BevGrid
) -> tuple[DrivingDataset | MultiRootDataset, DrivingDataset | MultiRootDataset | None]:
    """``(train, val)``; val is None when ``val_fraction`` is 0 or no route falls into it. Each data set has
    its own target builders, so an epoch-dependent builder (the shuffled control) follows the training
    epochs while validation always sees epoch 0, with or without DataLoader workers. With
    ``data.extra_roots`` each is a :class:`MultiRootDataset` (every root split by route with the same seed,
    so a route recorded twice, by the expert and DAgger-style, lands on the same side);
    ``max_train_samples`` / ``max_val_samples`` then count over all of them, ``data.root`` first."""
    check_data_fits_model(cfg)
    parts = [_build_root(cfg, target_names, grid, root) for root in cfg.data.roots]
    train = _first(cfg.data.max_train_samples, [t for t, _ in parts])
    if train is None:
        raise ValueError(
            f"{cfg.data.root}: no training frames (val_fraction={cfg.data.val_fraction}, "
            f"split_seed={cfg.data.split_seed} put every route into validation)"
        )
    val = _first(cfg.data.max_val_samples, [v for _, v in parts if v is not None])
    return train, val


def _first(n: int | None, sets: list[DrivingDataset]) -> DrivingDataset | MultiRootDataset | None:
    """The first ``n`` frames (None: all) of ``sets`` in order, as one data set; None when empty."""
    left = n
    kept = []
    for ds in sets:
        if left is not None:
            ds.indices = ds.indices[:left]
            left -= len(ds)
        if len(ds):
            kept.append(ds)
    if not kept:
        return None
    return kept[0] if len(sets) == 1 else MultiRootDataset(kept)


def _build_root(
    cfg: TrainConfig, target_names: Sequence[str], grid: BevGrid, root: str
) -> tuple[DrivingDataset, DrivingDataset | None]:
    """One data set's ``(train, val)`` (val None when ``val_fraction`` is 0)."""
    d = cfg.data
    cache = None
    if d.image_cache_dir(root) is not None:
        cache = FrameCache.open(root, cfg.image_hw, d.image_cache_dir(root))
    common = dict(
        cameras=cfg.cameras,
        image_hw=cfg.image_hw,
        prev_frames=d.prev_frames,
        on_error=d.on_error,
        val_fraction=d.val_fraction,
        split_seed=d.split_seed,
        image_dtype=d.image_dtype,
        image_cache=cache,
    )
    builders = target_builders(cfg, target_names, grid, root)
    train = DrivingDataset(root, grid, builders, augment=d.augment, split="train", **common)
    val = None
    if d.val_fraction > 0:
        val_builders = target_builders(cfg, target_names, grid, root)
        val = DrivingDataset(root, grid, val_builders, split="val", **common)
    return train, val


class ResumableSampler(Sampler[int]):
    """``DistributedSampler`` order (seeded shuffle per epoch, this rank's share, tail dropped) that can
    start part-way through an epoch: ``set_epoch(epoch, start)`` skips the first ``start`` indices.

    With ``repeats`` (one integer per frame, :func:`repeat_factors`) an epoch holds frame ``i`` ``repeats[i]``
    times, shuffled the same way (repeat factor sampling, as LVIS does for rare classes); the epoch length is
    fixed, so resuming part-way works as without."""

    def __init__(
        self,
        dataset: DrivingDataset | MultiRootDataset,
        num_replicas: int,
        rank: int,
        seed: int,
        repeats: Sequence[int] | None = None,
    ):
        if repeats is not None and len(repeats) != len(dataset):
            raise ValueError(f"repeats: {len(repeats)} factors for {len(dataset)} frames")
        self._expanded = None if repeats is None else [i for i, r in enumerate(repeats) for _ in range(r)]
        self.inner = DistributedSampler(
            dataset if self._expanded is None else self._expanded,  # type: ignore[arg-type]  # only len() used
            num_replicas=num_replicas,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=True,
        )
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        order = list(self.inner)[self.start :]
        return iter(order if self._expanded is None else [self._expanded[j] for j in order])

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


def skip_reason(dataset: DrivingDataset | MultiRootDataset, frame_id: str) -> str:
    """Why ``on_error="skip"`` passed over a frame: the error recorded in this process, else the error of
    loading it again here (DataLoader workers keep their own records)."""
    if isinstance(dataset, MultiRootDataset):
        reasons = [
            f"{d.root}: {skip_reason(d, frame_id)}" for d in dataset.datasets if d.records.has(frame_id)
        ]
        return "; ".join(reasons) or f"{frame_id} is in none of the data sets"
    if frame_id in dataset.skipped:
        return dataset.skipped[frame_id]
    try:
        dataset.load(dataset.records.index_of(frame_id))
    except DataError as exc:
        return str(exc)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "it loads now (a passing problem while it was read)"


def process_failure(text: str, run_dir: Path) -> str:
    """A failed training process in one line: the child's error message (the last line of its traceback);
    the whole traceback is kept in ``<run_dir>/process_error.txt``."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else "unknown error"
    where = ""
    try:
        atomic_write_text(Path(run_dir) / "process_error.txt", text.rstrip() + "\n")
        where = f" (traceback: {Path(run_dir) / 'process_error.txt'})"
    except OSError:
        pass
    return f"a training process failed: {last}{where}"
