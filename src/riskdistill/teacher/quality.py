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

Agreement between two teachers (``compute_agreement``), per frame then averaged over frames; scale and
ranking both count, not a scale-free correlation alone:

- ``score_mad``: mean absolute difference of the object scores over the objects either teacher scored
  (an object a teacher leaves out scores 0, as on its map);
- ``rank_corr_mean``: Spearman rank correlation of the risks of the objects both scored (at least
  ``min_shared`` of them);
- ``top1_agreement``: share of frames (where both name an object) whose top-ranked objects are the same;
- ``map_mad``: mean absolute difference of the two BEV maps; ``map_corr_mean``: their Pearson correlation
  (frames where either map is constant skipped), for reference;
- ``frame_risk_mad``: mean absolute difference of the frame risks.

Hazard recall (``hazard_recall``), against the scenario's named hazard actors (annotation key
``actor_is_hazard``): a frame *qualifies* when a named hazard is within ``max_distance_m`` (current box gap)
and its counterfactual time to conflict (:mod:`riskdistill.teacher.conflict`: the ego drives its route
regardless) is under ``max_ttc_s``. A qualifying frame is a *hit* when its best-ranked qualifying hazard
scores above ``min_risk`` and no object other than a named hazard ranks above it. Reported per scenario
type with the share of non-hazard objects (annotated actors of any frame, unlabelled ones scoring 0)
above ``min_risk``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
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
    score_mad: float  # mean per-frame |risk_a - risk_b| over the objects either scored (missing = 0)
    rank_corr_mean: float  # mean per-frame Spearman over shared objects (NaN: no usable frame)
    rank_frames: int
    top1_agreement: float  # share of frames (both name an object) with the same top-ranked object
    top1_frames: int
    map_mad: float  # mean per-frame mean |map_a - map_b| (NaN: no maps)
    map_corr_mean: float  # mean per-frame Pearson of the BEV maps (NaN: no usable frame)
    map_frames: int
    shared_frames: int
    frame_risk_mad: float  # mean |frame_risk_a - frame_risk_b| over shared frames
    frame_risk_corr: float  # Pearson of frame_risk over shared frames


def compute_agreement(
    labels_a: Mapping[str, FrameLabel],
    labels_b: Mapping[str, FrameLabel],
    maps_a: Mapping[str, np.ndarray] | None = None,
    maps_b: Mapping[str, np.ndarray] | None = None,
    min_shared: int = 3,
) -> Agreement:
    shared = sorted(set(labels_a) & set(labels_b))
    rank, mad, top1 = [], [], []
    for fid in shared:
        la, lb = labels_a[fid], labels_b[fid]
        ra = {o.object_id: o.risk for o in la.objects}
        rb = {o.object_id: o.risk for o in lb.objects}
        union = sorted(set(ra) | set(rb))
        if union:
            mad.append(float(np.mean([abs(ra.get(i, 0.0) - rb.get(i, 0.0)) for i in union])))
        if la.objects and lb.objects:
            top1.append(float(la.objects[0].object_id == lb.objects[0].object_id))
        ids = sorted(set(ra) & set(rb))
        if len(ids) < min_shared:
            continue
        c = spearman([ra[i] for i in ids], [rb[i] for i in ids])
        if math.isfinite(c):
            rank.append(c)
    maps, map_mad = [], []
    if maps_a is not None and maps_b is not None:
        for fid in sorted(set(maps_a) & set(maps_b)):
            ma, mb = np.asarray(maps_a[fid], np.float64), np.asarray(maps_b[fid], np.float64)
            if ma.shape == mb.shape:
                map_mad.append(float(np.abs(ma - mb).mean()))
            c = pearson(ma, mb)
            if math.isfinite(c):
                maps.append(c)
    fa = np.array([labels_a[f].frame_risk for f in shared])
    fb = np.array([labels_b[f].frame_risk for f in shared])
    fr = pearson(fa, fb) if len(shared) >= 2 else math.nan

    def mean(v: list[float]) -> float:
        return float(np.mean(v)) if v else math.nan

    return Agreement(
        score_mad=mean(mad),
        rank_corr_mean=mean(rank),
        rank_frames=len(rank),
        top1_agreement=mean(top1),
        top1_frames=len(top1),
        map_mad=mean(map_mad),
        map_corr_mean=mean(maps),
        map_frames=len(maps),
        shared_frames=len(shared),
        frame_risk_mad=float(np.abs(fa - fb).mean()) if len(shared) else math.nan,
        frame_risk_corr=fr,
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


# ------------------------------------------------------------------------------------------ hazard recall
HAZARD_MAX_DISTANCE_M = 40.0
HAZARD_MAX_TTC_S = 4.0
HAZARD_MIN_RISK = 0.5
_REASON_ACTOR = re.compile(r"actor (\d+)")


def expert_reacting_to(expert_reason: str) -> int | None:
    """The actor id the expert driver was slowing for (``"actor 7 in path"``, ``"forecast conflict with actor
    7 ..."``), or None (free road, a stop line)."""
    m = _REASON_ACTOR.search(expert_reason or "")
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class HazardFrame:
    """One frame's hazard check (see the module docstring)."""

    qualifying: bool  # a named hazard within max_distance_m with counterfactual TTC < max_ttc_s
    hit: bool  # qualifying, and its best-ranked qualifying hazard is above min_risk, no non-hazard above it
    hazard_risk: float  # the best-ranked qualifying hazard's risk (NaN when not qualifying)
    non_hazard: int  # annotated actors that are not named hazards
    non_hazard_high: int  # of those, scored above min_risk


def check_hazard_frame(
    label: FrameLabel,
    annotation: Mapping[str, np.ndarray],
    ego_speed_mps: float,
    *,
    max_distance_m: float = HAZARD_MAX_DISTANCE_M,
    max_ttc_s: float = HAZARD_MAX_TTC_S,
    min_risk: float = HAZARD_MIN_RISK,
    reacting_to: int | None = None,
) -> HazardFrame | None:
    """The hazard check of one labelled frame, or None when its annotation names no hazards (an old data
    set: no ``actor_is_hazard`` key). ``reacting_to``: an independent qualification instead of the
    counterfactual TTC: the frame qualifies when this actor (e.g. the one the expert driver brakes for,
    ``expert_reason``) is a named hazard within ``max_distance_m``, and every named hazard within that
    distance counts as qualifying (the expert may brake for one flow vehicle while the next is the
    sooner conflict)."""
    from riskdistill.teacher.conflict import ConflictParams, compute_conflicts, scene_from_annotation

    if "actor_is_hazard" not in annotation:
        return None
    ids = np.asarray(annotation["actor_id"], dtype=np.int64).reshape(-1)
    hazard = np.asarray(annotation["actor_is_hazard"], dtype=bool).reshape(-1)
    risk = {o.object_id: o.risk for o in label.objects}
    rank = {o.object_id: o.rank for o in label.objects}
    scores = np.array([risk.get(int(i), 0.0) for i in ids])
    non_hazard = int((~hazard).sum())
    non_high = int(((scores > min_risk) & ~hazard).sum())
    if not hazard.any():
        return HazardFrame(False, False, math.nan, non_hazard, non_high)
    c = compute_conflicts(scene_from_annotation(annotation, ego_speed_mps), ConflictParams())
    near = hazard & (c.gap_now_m <= max_distance_m)
    if reacting_to is None:
        q = near & (c.ttc_s < max_ttc_s)
    else:  # the frame qualifies through the reaction; any named hazard within reach may then be ranked first
        q = near if (near & (ids == int(reacting_to))).any() else np.zeros_like(near)
    if not q.any():
        return HazardFrame(False, False, math.nan, non_hazard, non_high)
    unranked = len(label.objects) + 1
    q_ids = [int(i) for i in ids[q]]
    best = min(q_ids, key=lambda i: (rank.get(i, unranked), i))
    best_rank = rank.get(best, unranked)
    hazard_ids = {int(i) for i in ids[hazard]}
    outranked = any(o.rank < best_rank and o.object_id not in hazard_ids for o in label.objects)
    r = risk.get(best, 0.0)
    return HazardFrame(True, bool(r > min_risk and not outranked), r, non_hazard, non_high)


def summarise_hazard_frames(
    frames: Iterable[tuple[str, HazardFrame | None]], types_without_hazard: Iterable[str] = ()
) -> dict[str, Any]:
    """Per scenario type and over all of them: qualifying frames, hits, recall, mean hazard risk, non-hazard
    objects and the share above the threshold. ``frames``: ``(scenario type, check)``; None checks (no
    hazard metadata) are counted as ``frames_without_metadata``."""
    per: dict[str, dict[str, Any]] = {}
    missing = 0
    for scenario, hf in frames:
        d = per.setdefault(
            scenario,
            {
                "frames": 0,
                "qualifying": 0,
                "hits": 0,
                "hazard_risk_sum": 0.0,
                "non_hazard": 0,
                "non_hazard_high": 0,
            },
        )
        d["frames"] += 1
        if hf is None:
            missing += 1
            continue
        d["qualifying"] += hf.qualifying
        d["hits"] += hf.hit
        d["hazard_risk_sum"] += hf.hazard_risk if hf.qualifying else 0.0
        d["non_hazard"] += hf.non_hazard
        d["non_hazard_high"] += hf.non_hazard_high
    no_hazard = set(types_without_hazard)

    def finish(d: dict[str, Any]) -> dict[str, Any]:
        q = d["qualifying"]
        return {
            "frames": d["frames"],
            "qualifying": q,
            "hits": d["hits"],
            "recall": d["hits"] / q if q else math.nan,
            "mean_hazard_risk": d["hazard_risk_sum"] / q if q else math.nan,
            "non_hazard": d["non_hazard"],
            "non_hazard_high": d["non_hazard_high"],
            "non_hazard_high_share": d["non_hazard_high"] / d["non_hazard"] if d["non_hazard"] else math.nan,
        }

    keys = ("frames", "qualifying", "hits", "hazard_risk_sum", "non_hazard", "non_hazard_high")
    total = {k: sum(d[k] for d in per.values()) for k in keys}
    by_type = {k: finish(v) | {"has_hazard": k not in no_hazard} for k, v in sorted(per.items())}
    with_q = [v for v in by_type.values() if v["qualifying"]]
    return {
        "by_scenario": by_type,
        "all": finish(total),
        "min_recall_over_types": min((v["recall"] for v in with_q), default=math.nan),
        "frames_without_metadata": missing,
        "thresholds": {
            "max_distance_m": HAZARD_MAX_DISTANCE_M,
            "max_ttc_s": HAZARD_MAX_TTC_S,
            "min_risk": HAZARD_MIN_RISK,
        },
    }


def hazard_recall(
    labels: Mapping[str, FrameLabel], data_root: str | Path, frame_ids: Iterable[str] | None = None
) -> dict[str, Any]:
    """:func:`summarise_hazard_frames` of the labels of a recorded data set (reads the annotations' geometry
    and hazard keys and the frames' ego speeds). Frames without a label are left out (not misses)."""
    from riskdistill.data.storage import RecordedDataset, resolve_inside
    from riskdistill.sim.scenarios import REGISTRY
    from riskdistill.teacher.runner import LazyAnnotation

    ds = RecordedDataset(data_root)
    wanted = sorted(set(labels) if frame_ids is None else set(frame_ids) & set(labels))
    out: list[tuple[str, HazardFrame | None]] = []
    for fid in wanted:
        try:
            frame = ds.frame(ds.index_of(fid))
        except KeyError:
            continue
        ann = LazyAnnotation(resolve_inside(frame.root, frame.annotation_path, "annotation_path", fid))
        try:
            out.append((frame.scenario, check_hazard_frame(labels[fid], ann, frame.ego.speed_mps)))
        finally:
            ann.close()
    no_hazard = [k for k, v in REGISTRY.items() if v.hazard == ""]
    return summarise_hazard_frames(out, no_hazard)
