"""Risk-map targets of a training run, read from a label folder on disk (training never runs a teacher).

- ``"teacher"``: :class:`~riskdistill.data.targets.RiskMapTarget`, the maps of ``data.labels`` as they are
  (RSD with the teacher's labels; a control when ``data.labels`` holds a control teacher's labels, e.g.
  ``riskdistill label --teacher footprint``);
- ``"shuffled"``: :class:`ShuffledRiskTarget`, every frame gets *another* frame's teacher map through a
  seeded derangement of the data set's frames, drawn afresh every epoch (a function of ``(seed, epoch)``,
  set through ``DrivingDataset.set_epoch``), so the head cannot memorise a fixed frame -> map pairing and
  push frame identity into the shared BEV. The maps keep the teacher's statistics (how much of the grid is
  hot, how hot) but no longer match the scene.

Both implement :class:`riskdistill.data.targets.TargetBuilder` under the name ``"risk_map"``, so a control
run swaps one builder and changes nothing else (model, seed, data order).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from riskdistill.data.storage import DataError, FrameRecord
from riskdistill.data.targets import RiskMapTarget, TargetBuilder
from riskdistill.geometry import BevGrid

RISK_TARGET_MODES = ("teacher", "off", "shuffled")


def shuffled_assignment(frame_ids: Sequence[str], seed: int, epoch: int = 0) -> dict[str, str]:
    """``{frame_id: source_frame_id}``: a seeded derangement (no frame keeps its own map).

    The frames are put in a random order drawn from ``(seed, epoch)`` and each takes the map of the next
    one in that order (a single cycle), so the mapping is a permutation without fixed points. Deterministic
    in ``(frame_ids, seed, epoch)`` (so a resumed run sees the same mapping), different for every epoch, and
    independent of the order ``frame_ids`` are given in."""
    ids = sorted(set(frame_ids))
    if len(ids) < 2:
        raise ValueError(f"the shuffled control needs at least 2 frames, the data set has {len(ids)}")
    if seed < 0 or epoch < 0:
        raise ValueError(f"the shuffled control needs seed >= 0 and epoch >= 0, got {seed} and {epoch}")
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(len(ids))
    cycle = [ids[i] for i in order]
    return {cycle[k]: cycle[(k + 1) % len(cycle)] for k in range(len(cycle))}


class ShuffledRiskTarget:
    """``risk_map [1, H_bev, W_bev]``: the teacher map of another frame (see :func:`shuffled_assignment`),
    re-drawn for every epoch: :meth:`set_epoch` (called by ``DrivingDataset.set_epoch``) picks the epoch's
    derangement; a builder never told an epoch uses epoch 0.

    ``frame_ids`` are all the frames of the data set (not one split: the permutation is over the data set,
    so it does not change with the validation split)."""

    name = "risk_map"

    def __init__(self, label_dir: str | Path, frame_ids: Sequence[str], seed: int = 0, epoch: int = 0):
        self.teacher = RiskMapTarget(label_dir)
        self.seed = int(seed)
        self.frame_ids = sorted(set(frame_ids))
        self.epoch = int(epoch)
        self._source: dict[str, str] | None = None
        shuffled_assignment(self.frame_ids, self.seed, self.epoch)  # bad input fails here, not in a worker

    def set_epoch(self, epoch: int) -> None:
        """Use the derangement of ``epoch`` from now on (deterministic in ``(seed, epoch)``)."""
        if int(epoch) != self.epoch:
            self.epoch = int(epoch)
            self._source = None

    @property
    def source(self) -> dict[str, str]:
        """``{frame_id: source_frame_id}`` of the current epoch."""
        if self._source is None:
            self._source = shuffled_assignment(self.frame_ids, self.seed, self.epoch)
        return self._source

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_source": None}  # workers rebuild the mapping instead of unpickling it

    @property
    def label_dir(self) -> Path:
        return self.teacher.label_dir

    def check(self, grid: BevGrid) -> None:
        self.teacher.check(grid)

    def build(self, frame: FrameRecord, grid: BevGrid) -> dict[str, np.ndarray]:
        try:
            src = self.source[frame.frame_id]
        except KeyError:
            raise DataError(
                f"frame {frame.frame_id!r} is not in the shuffled control's permutation (epoch {self.epoch}) "
                f"({len(self.source)} frames of the data set at {frame.root})"
            ) from None
        # RiskMapTarget reads maps/<frame_id>.npy: hand it the same record under the source frame's id
        return self.teacher.build(dataclasses.replace(frame, frame_id=src), grid)


def build_risk_target(
    mode: str, label_dir: str | Path, frame_ids: Sequence[str] = (), seed: int = 0
) -> TargetBuilder | None:
    """The ``"risk_map"`` builder of a ``risk_targets`` mode (None for ``"off"``)."""
    if mode == "teacher":
        return RiskMapTarget(label_dir)
    if mode == "off":
        return None
    if mode == "shuffled":
        return ShuffledRiskTarget(label_dir, frame_ids, seed)
    raise ValueError(f"unknown risk_targets mode {mode!r}; valid modes: {list(RISK_TARGET_MODES)}")
