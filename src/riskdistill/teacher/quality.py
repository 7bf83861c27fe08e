"""Label quality: Diff_Risk (three consistency figures) and agreement between two teachers.

The RSD paper supervises its annotation with a consistency metric called Diff_Risk but does not publish
its definition; ``docs/labelling.md`` gives the one used here. All three parts are "lower is better"
and lie in [0, 1]:

1. **rank** (``compute_rank_consistency``): within a frame, the fraction of object pairs with distinct
   scores whose order by score disagrees with the stated rank (discordant pairs / pairs with distinct
   scores). The stated ranking is the teacher's raw reply when it holds one (a VLM's object list: list
   order or an explicit ``rank``, score ``risk`` or ``score``), else the label's ranks (which the schema
   forces to agree, so 0 there). Ties (equal scores under distinct ranks) are reported separately.
2. **temporal** (``compute_temporal_stability``): mean ``|risk(t+1) - risk(t)|`` of the same object
   (``object_id``, tracked across frames by the annotation's actor id) between adjacent labelled frames
   of a route (frame ids ``<route>/<step>``; pairs further apart than ``max_gap_steps`` are skipped).
   An object present in one frame only is not counted (no score to compare).
3. **sample** (``compute_sample_spread``): labels of the same frames by repeated samples of a stochastic
   teacher (one label folder per sample); per object the standard deviation of its risk over the
   samples that scored it (at least two), averaged over objects.

Agreement between two teachers (``compute_agreement``): per frame, the Spearman rank correlation of the
risks of the objects both scored (at least ``min_shared`` of them), and the Pearson correlation of the
two BEV maps (frames where either map is constant are skipped); each averaged over frames.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from riskdistill.contracts import labels
from riskdistill.teacher.schema import FrameLabel


# ------------------------------------------------------------------------------------------ loading
def load_labels(label_dir: str | Path) -> dict[str, FrameLabel]:
    """``{frame_id: FrameLabel}`` of every readable record of a label folder (``records/**.json``)."""
    root = Path(label_dir) / labels.RECORDS
    out: dict[str, FrameLabel] = {}
    for p in sorted(root.rglob("*.json")):
        try:
            lab = FrameLabel.model_validate_json(p.read_bytes())
        except (OSError, ValueError):
            continue
        out[lab.frame_id] = lab
    return out


def split_frame_id(frame_id: str) -> tuple[str, int]:
    """``"<route_id>/<step>"`` -> ``(route_id, step)``."""
    route, _, step = frame_id.rpartition("/")
    try:
        return route, int(step)
    except ValueError:
        raise ValueError(f"frame id {frame_id!r} is not '<route_id>/<step>'") from None


# ------------------------------------------------------------------------------------------ (1) rank
@dataclass(frozen=True)
class RankConsistency:
    pairs: int  # object pairs with distinct ranks
    discordant: int  # pairs ordered one way by rank, the other way by score
    ties: int  # pairs with equal scores
    frames: int
    frames_from_reply: int  # frames whose stated ranking came from the raw reply

    @property
    def diff_risk(self) -> float:
        """Discordant pairs / pairs with distinct scores (0 when there are none)."""
        n = self.pairs - self.ties
        return self.discordant / n if n > 0 else 0.0


def rank_pairs(scores: Sequence[float], ranks: Sequence[float]) -> tuple[int, int, int]:
    """``(pairs, discordant, ties)`` of one frame: pairs with distinct ranks, those whose score order
    disagrees with the rank order (rank 1 = riskiest), and those with equal scores."""
    s = np.asarray(scores, dtype=np.float64)
    r = np.asarray(ranks, dtype=np.float64)
    if len(s) != len(r):
        raise ValueError(f"scores and ranks differ in length: {len(s)} vs {len(r)}")
    iu = np.triu_indices(len(s), k=1)
    dr = (r[:, None] - r[None, :])[iu]
    ds = (s[:, None] - s[None, :])[iu]
    distinct = dr != 0
    # better rank (smaller) must have the larger score: sign(dr) == -sign(ds)
    disc = distinct & (ds != 0) & (np.sign(dr) == np.sign(ds))
    ties = distinct & (ds == 0)
    return int(distinct.sum()), int(disc.sum()), int(ties.sum())


def stated_ranking(label: FrameLabel) -> tuple[list[float], list[float], bool]:
    """``(scores, ranks, from_reply)``: the teacher's own ranking from its raw reply when that is a JSON
    object with an ``objects`` list (rank = ``rank`` or list position, score = ``risk`` or ``score``),
    else the label's objects."""
    raw = label.provenance.raw_response
    if raw:
        try:
            reply = json.loads(raw)
        except ValueError:
            reply = None
        objs = reply.get("objects") if isinstance(reply, dict) else None
        if isinstance(objs, list) and objs:
            scores, ranks = [], []
            for pos, o in enumerate(objs, start=1):
                if not isinstance(o, dict):
                    break
                sc = o.get("risk", o.get("score"))
                rk = o.get("rank", pos)
                if (
                    not isinstance(sc, int | float)
                    or not isinstance(rk, int | float)
                    or not math.isfinite(sc)
                ):
                    break
                scores.append(float(sc))
                ranks.append(float(rk))
            else:
                return scores, ranks, True
    return [o.risk for o in label.objects], [float(o.rank) for o in label.objects], False


def compute_rank_consistency(labels: Iterable[FrameLabel]) -> RankConsistency:
    pairs = disc = ties = frames = from_reply = 0
    for lab in labels:
        s, r, fr = stated_ranking(lab)
        p, d, t = rank_pairs(s, r)
        pairs, disc, ties, frames, from_reply = pairs + p, disc + d, ties + t, frames + 1, from_reply + fr
    return RankConsistency(pairs, disc, ties, frames, from_reply)


# ------------------------------------------------------------------------------------------ (2) temporal
@dataclass(frozen=True)
class TemporalStability:
    mean_abs_delta: float  # Diff_Risk temporal (NaN without pairs)
    p95_abs_delta: float
    pairs: int  # (object, adjacent frame pair) samples
    routes: int

    @property
    def diff_risk(self) -> float:
        return self.mean_abs_delta


def compute_temporal_stability(
    labels: Mapping[str, FrameLabel] | Iterable[FrameLabel], max_gap_steps: int | None = None
) -> TemporalStability:
    """Mean |delta risk| of tracked objects between adjacent labelled frames of each route."""
    labs = list(labels.values()) if isinstance(labels, Mapping) else list(labels)
    by_route: dict[str, list[tuple[int, FrameLabel]]] = defaultdict(list)
    for lab in labs:
        route, step = split_frame_id(lab.frame_id)
        by_route[route].append((step, lab))
    deltas: list[float] = []
    for frames in by_route.values():
        frames.sort(key=lambda x: x[0])
        for (s0, a), (s1, b) in itertools.pairwise(frames):
            if max_gap_steps is not None and s1 - s0 > max_gap_steps:
                continue
            ra = {o.object_id: o.risk for o in a.objects}
            for o in b.objects:
                if o.object_id in ra and o.object_id >= 0:
                    deltas.append(abs(o.risk - ra[o.object_id]))
    d = np.asarray(deltas)
    return TemporalStability(
        float(d.mean()) if len(d) else math.nan,
        float(np.percentile(d, 95)) if len(d) else math.nan,
        len(d),
        len(by_route),
    )


# ------------------------------------------------------------------------------------------ (3) samples
@dataclass(frozen=True)
class SampleSpread:
    mean_std: float  # Diff_Risk sample (NaN without objects scored twice)
    max_std: float
    objects: int  # (frame, object) with >= 2 samples
    samples: int

    @property
    def diff_risk(self) -> float:
        return self.mean_std


def compute_sample_spread(samples: Sequence[Mapping[str, FrameLabel]]) -> SampleSpread:
    """Spread of each object's risk over repeated samples (``samples[k]``: ``{frame_id: label}``)."""
    scores: dict[tuple[str, int], list[float]] = defaultdict(list)
    for labs in samples:
        for fid, lab in labs.items():
            for o in lab.objects:
                scores[(fid, o.object_id)].append(o.risk)
    stds = np.array([np.std(v) for v in scores.values() if len(v) >= 2])
    return SampleSpread(
        float(stds.mean()) if len(stds) else math.nan,
        float(stds.max()) if len(stds) else math.nan,
        len(stds),
        len(samples),
    )


# ------------------------------------------------------------------------------------------ agreement
def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a), rankdata(b)
    return pearson(ra, rb)


def pearson(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> float:
    """Pearson correlation of two equally shaped arrays; NaN when either is constant."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"pearson: shapes differ {x.shape} vs {y.shape}")
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else math.nan


@dataclass(frozen=True)
class Agreement:
    rank_corr_mean: float  # mean per-frame Spearman over shared objects (NaN: no usable frame)
    rank_frames: int
    map_corr_mean: float  # mean per-frame Pearson of the BEV maps (NaN: no usable frame)
    map_frames: int
    shared_frames: int
    frame_risk_corr: float  # Pearson of frame_risk over shared frames


def compute_agreement(
    labels_a: Mapping[str, FrameLabel],
    labels_b: Mapping[str, FrameLabel],
    maps_a: Mapping[str, np.ndarray] | None = None,
    maps_b: Mapping[str, np.ndarray] | None = None,
    min_shared: int = 3,
) -> Agreement:
    shared = sorted(set(labels_a) & set(labels_b))
    rank = []
    for fid in shared:
        ra = {o.object_id: o.risk for o in labels_a[fid].objects}
        rb = {o.object_id: o.risk for o in labels_b[fid].objects}
        ids = sorted(set(ra) & set(rb))
        if len(ids) < min_shared:
            continue
        c = spearman([ra[i] for i in ids], [rb[i] for i in ids])
        if math.isfinite(c):
            rank.append(c)
    maps = []
    if maps_a is not None and maps_b is not None:
        for fid in sorted(set(maps_a) & set(maps_b)):
            c = pearson(maps_a[fid], maps_b[fid])
            if math.isfinite(c):
                maps.append(c)
    fr = (
        pearson([labels_a[f].frame_risk for f in shared], [labels_b[f].frame_risk for f in shared])
        if len(shared) >= 2
        else math.nan
    )
    return Agreement(
        float(np.mean(rank)) if rank else math.nan,
        len(rank),
        float(np.mean(maps)) if maps else math.nan,
        len(maps),
        len(shared),
        fr,
    )


def load_maps(label_dir: str | Path, frame_ids: Iterable[str]) -> dict[str, np.ndarray]:
    """``{frame_id: map}`` for the frames of ``frame_ids`` that have a map in ``label_dir/maps``."""
    out = {}
    for fid in frame_ids:
        p = labels.risk_map_path(label_dir, fid)
        if p.is_file():
            out[fid] = np.load(p, allow_pickle=False).astype(np.float32)
    return out


def agreement_between(label_dir_a: str | Path, label_dir_b: str | Path, min_shared: int = 3) -> Agreement:
    """:func:`compute_agreement` of two label folders (labels and maps)."""
    a, b = load_labels(label_dir_a), load_labels(label_dir_b)
    shared = sorted(set(a) & set(b))
    return compute_agreement(a, b, load_maps(label_dir_a, shared), load_maps(label_dir_b, shared), min_shared)


# ------------------------------------------------------------------------------------------ together
def compute_diff_risk(
    labels: Mapping[str, FrameLabel],
    samples: Sequence[Mapping[str, FrameLabel]] = (),
    max_gap_steps: int | None = None,
) -> dict[str, Any]:
    """The three Diff_Risk figures of a label set (``samples``: other sample folders' labels of the same
    frames, for the spread; the label set itself counts as one sample)."""
    rank = compute_rank_consistency(labels.values())
    temp = compute_temporal_stability(labels, max_gap_steps)
    out: dict[str, Any] = {
        "rank": {**asdict(rank), "diff_risk": rank.diff_risk},
        "temporal": {**asdict(temp), "diff_risk": temp.diff_risk},
    }
    if samples:
        sp = compute_sample_spread([labels, *samples])
        out["sample"] = {**asdict(sp), "diff_risk": sp.diff_risk}
    return out
