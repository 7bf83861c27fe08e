"""Risk-map targets of the control runs: the same RiskHead trained on targets that carry no risk information.

Both builders implement :class:`riskdistill.data.targets.TargetBuilder` under the name ``"risk_map"``, so a
control run swaps one builder and changes nothing else (model, seed, data order):

- :class:`ShuffledRiskTarget` (``risk_targets="shuffled"``): every frame gets *another* frame's teacher map,
  through a fixed seeded derangement of the data set's frames. The maps keep the teacher's statistics (how
  much of the grid is hot, how hot) but no longer match the scene.
- :class:`FootprintRiskTarget` (``risk_targets="footprint"``): every object's footprint rasterised with one
  constant score by :func:`riskdistill.teacher.rasterise.rasterise_risk` (no motion spread, no ranking): the
  extra supervision of "where the objects are" without the teacher's judgement.

:func:`build_risk_target` turns a ``risk_targets`` mode into the builder (``"teacher"`` is
:class:`~riskdistill.data.targets.RiskMapTarget` itself).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from riskdistill.data.storage import DataError, FrameRecord, annotation_fields
from riskdistill.data.targets import RiskMapTarget, TargetBuilder
from riskdistill.geometry import BevGrid
from riskdistill.teacher.rasterise import rasterise_risk

RISK_TARGET_MODES = ("teacher", "off", "shuffled", "footprint")


def shuffled_assignment(frame_ids: Sequence[str], seed: int) -> dict[str, str]:
    """``{frame_id: source_frame_id}``: a seeded derangement (no frame keeps its own map).

    The frames are put in a seeded random order and each takes the map of the next one in that order
    (a single cycle), so the mapping is a permutation without fixed points. Deterministic in ``(frame_ids,
    seed)`` and independent of the order ``frame_ids`` are given in."""
    ids = sorted(set(frame_ids))
    if len(ids) < 2:
        raise ValueError(f"the shuffled control needs at least 2 frames, the data set has {len(ids)}")
    order = np.random.default_rng(seed).permutation(len(ids))
    cycle = [ids[i] for i in order]
    return {cycle[k]: cycle[(k + 1) % len(cycle)] for k in range(len(cycle))}


class ShuffledRiskTarget:
    """``risk_map [1, H_bev, W_bev]``: the teacher map of another frame (see :func:`shuffled_assignment`).

    ``frame_ids`` are all the frames of the data set (not one split: the permutation is over the data set,
    so it does not change with the validation split)."""

    name = "risk_map"

    def __init__(self, label_dir: str | Path, frame_ids: Sequence[str], seed: int = 0):
        self.teacher = RiskMapTarget(label_dir)
        self.seed = int(seed)
        self.source = shuffled_assignment(frame_ids, self.seed)

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
                f"frame {frame.frame_id!r} is not in the shuffled control's permutation "
                f"({len(self.source)} frames of the data set at {frame.root})"
            ) from None
        # RiskMapTarget reads maps/<frame_id>.npy: hand it the same record under the source frame's id
        return self.teacher.build(dataclasses.replace(frame, frame_id=src), grid)


class FootprintRiskTarget:
    """``risk_map [1, H_bev, W_bev]``: every actor's oriented footprint at the constant ``score`` (no
    motion spread, no per-object risk), rasterised on the grid by
    :func:`~riskdistill.teacher.rasterise.rasterise_risk`."""

    name = "risk_map"

    def __init__(self, score: float = 0.5):
        if not 0.0 < score <= 1.0:
            raise ValueError(f"footprint score must be in (0, 1], got {score}")
        self.score = float(score)

    def build(self, frame: FrameRecord, grid: BevGrid) -> dict[str, np.ndarray]:
        keys = ("actor_center_ego", "actor_size_lwh", "actor_yaw_ego")
        a = annotation_fields(frame, keys, "the footprint control")  # shapes, sizes and NaN checked
        center = np.asarray(a["actor_center_ego"], dtype=np.float64)
        size = np.asarray(a["actor_size_lwh"], dtype=np.float64)
        yaw = np.asarray(a["actor_yaw_ego"], dtype=np.float64)
        n = len(center)
        m = rasterise_risk(
            center.reshape(n, -1)[:, :2],
            size.reshape(n, -1)[:, :2],
            yaw.reshape(n),
            np.zeros((n, 2)),  # standing still: footprint only
            np.full(n, self.score),
            grid,
        )
        return {"risk_map": m[None]}


def build_risk_target(
    mode: str,
    label_dir: str | Path,
    frame_ids: Sequence[str] = (),
    seed: int = 0,
    footprint_score: float = 0.5,
) -> TargetBuilder | None:
    """The ``"risk_map"`` builder of a ``risk_targets`` mode (None for ``"off"``)."""
    if mode == "teacher":
        return RiskMapTarget(label_dir)
    if mode == "off":
        return None
    if mode == "shuffled":
        return ShuffledRiskTarget(label_dir, frame_ids, seed)
    if mode == "footprint":
        return FootprintRiskTarget(footprint_score)
    raise ValueError(f"unknown risk_targets mode {mode!r}; valid modes: {list(RISK_TARGET_MODES)}")
