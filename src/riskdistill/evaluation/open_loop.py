"""Open-loop evaluation of a student over a recorded data set: planning L2 and collisions, risk-map
agreement with the teacher, perception IoU. Definitions: ``docs/metrics.md``.

Pure metric functions first (``compute_*``), then :class:`OpenLoopAccumulator` that sums them over batches,
then :func:`evaluate_open_loop`, which runs a checkpoint over a data set (``riskdistill eval open-loop``).

Planning (VAD convention, the default): the plan has 6 waypoints at 0.5 s. ``L2@t`` is, per sample, the mean
Euclidean error of the valid waypoints at times <= t (1 s: the first 2, 2 s: 4, 3 s: 6), then the mean over
samples; ``l2_avg`` is the mean of L2@1/2/3 s. (UniAD's convention, ``convention="uniad"``, takes the error of
the single waypoint at t instead.)

Collision at t: the planned ego box (``ego_size_lwh`` centred at ``ego_center_ego`` ahead of the rear axle,
heading along the plan) overlaps (SAT, :func:`riskdistill.geometry.boxes_overlap_matrix`) another actor's box
at the same future time at any waypoint <= t. Future actor boxes come from the recorded frame of the same
route at that time when the data set has it (matched by actor id and moved into the current ego frame);
otherwise, and for actors missing from that frame, each actor is extrapolated with constant velocity and
heading. Samples whose ground-truth trajectory itself collides at t are skipped (VAD); the rate is in percent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from riskdistill.contracts.agent import PLAN_DT_S
from riskdistill.contracts.labels import find_label_dir
from riskdistill.evaluation.object_recall import (
    OCCUPANCY_THRESHOLD,
    RECALL_KEYS,
    object_recall_hits,
    recall_by_range,
    recall_on_road,
)
from riskdistill.evaluation.risk_metrics import (
    AUC_THRESHOLD,
    KL_TEMPERATURE,
    compute_auc,
    compute_risk_kl_per_frame,
    compute_risk_pearson_per_frame,
    compute_student_hazard_recall,
)
from riskdistill.geometry import box_corners_2d, boxes_overlap_matrix

HORIZONS_S: tuple[float, ...] = (1.0, 2.0, 3.0)
MIN_HEADING_STEP_M = 0.1  # below this displacement a waypoint keeps the previous heading
PAIRED_HORIZON_S = 2.0  # the horizon of the paired student - baseline difference (waypoints_vs_baselines)
BASELINES = ("constant_velocity", "kinematic_arc")  # plans without learning (compute_baseline_plans)


# ------------------------------------------------------------------------------------------ planning L2
def _n_upto(horizon_s: float, dt_s: float) -> int:
    return math.floor(horizon_s / dt_s + 1e-9)


def compute_l2_per_sample(
    pred_xy: Any,
    gt_xy: Any,
    valid: Any | None = None,
    horizons_s: Sequence[float] = HORIZONS_S,
    dt_s: float = PLAN_DT_S,
    convention: Literal["vad", "uniad"] = "vad",
) -> np.ndarray:
    """``[N, len(horizons)]`` L2 error (m) per sample and horizon; NaN where a sample has no valid waypoint.

    ``pred_xy``, ``gt_xy``: ``[N, T, 2]`` waypoints at ``dt_s`` (waypoint k at ``(k + 1) * dt_s``);
    ``valid``: ``[N, T]`` bool. ``"vad"``: mean error of the valid waypoints at times <= t; ``"uniad"``: the
    error of the waypoint at t (NaN if it is invalid).
    """
    p = np.asarray(pred_xy, dtype=np.float64)
    g = np.asarray(gt_xy, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] != 2 or g.shape[:2] != p.shape[:2] or g.shape[-1] != 2:
        raise ValueError(f"pred_xy and gt_xy must both be [N, T, 2], got {p.shape} and {g.shape}")
    n, t = p.shape[:2]
    v = np.ones((n, t), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if v.shape != (n, t):
        raise ValueError(f"valid must be [N, T] = {(n, t)}, got {v.shape}")
    if convention not in ("vad", "uniad"):
        raise ValueError(f"convention must be 'vad' or 'uniad', got {convention!r}")
    err = np.linalg.norm(p - g, axis=-1)  # [N, T]
    out = np.full((n, len(horizons_s)), np.nan)
    for h, horizon in enumerate(horizons_s):
        k = _n_upto(horizon, dt_s)
        if not 1 <= k <= t:
            raise ValueError(f"horizon {horizon} s needs {k} waypoints at {dt_s} s; the plan has {t}")
        if convention == "vad":
            cnt = v[:, :k].sum(axis=1)
            tot = np.where(v[:, :k], err[:, :k], 0.0).sum(axis=1)
            out[:, h] = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
        else:
            out[:, h] = np.where(v[:, k - 1], err[:, k - 1], np.nan)
    return out


def horizon_key(prefix: str, horizon_s: float) -> str:
    return f"{prefix}_{horizon_s:g}s"


# ------------------------------------------------------------------------------------------ collisions
def plan_headings(xy: Any, min_step_m: float = MIN_HEADING_STEP_M) -> np.ndarray:
    """``[T]`` heading of each waypoint of ``xy [T, 2]`` (ego frame, starting after the ego at the origin):
    the direction from the previous point; a step shorter than ``min_step_m`` keeps the previous heading
    (0 at the start)."""
    pts = np.concatenate([np.zeros((1, 2)), np.asarray(xy, dtype=np.float64).reshape(-1, 2)])
    d = np.diff(pts, axis=0)
    out = np.zeros(len(d))
    prev = 0.0
    for k, (dx, dy) in enumerate(d):
        if math.hypot(dx, dy) >= min_step_m:
            prev = math.atan2(dy, dx)
        out[k] = prev
    return out


def ego_box_corners(
    xy: Any, yaw: Any, ego_size_lwh: Any, ego_center_ego: Any = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """``[T, 4, 2]`` corners of the ego box at rear-axle poses ``xy [T, 2]``, ``yaw [T]``. The box centre
    sits ``ego_center_ego[0]`` ahead of the rear axle (and ``[1]`` to the left) in the ego's own frame."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
    off = np.asarray(ego_center_ego, dtype=np.float64)[:2]
    c, s = np.cos(yaw), np.sin(yaw)
    centre = xy + np.stack([c * off[0] - s * off[1], s * off[0] + c * off[1]], axis=1)
    size = np.asarray(ego_size_lwh, dtype=np.float64)
    return box_corners_2d(centre, yaw, np.full(len(yaw), size[0]), np.full(len(yaw), size[1]))


@dataclass
class ActorBoxes:
    """Other actors' boxes in one ego frame: centre ``xy [A, 2]``, ``yaw [A]``, ``length``/``width [A]``."""

    xy: np.ndarray
    yaw: np.ndarray
    length: np.ndarray
    width: np.ndarray

    def corners(self) -> np.ndarray:
        return box_corners_2d(self.xy, self.yaw, self.length, self.width)

    @classmethod
    def empty(cls) -> ActorBoxes:
        z = np.zeros(0)
        return cls(np.zeros((0, 2)), z, z, z)


def extrapolate_actors(
    xy: Any, yaw: Any, velocity_xy: Any, length: Any, width: Any, t_s: float
) -> ActorBoxes:
    """Actor boxes ``t_s`` seconds ahead under constant velocity (ego axes) and constant heading."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    vel = np.asarray(velocity_xy, dtype=np.float64).reshape(-1, 2)
    return ActorBoxes(
        xy=xy + t_s * vel,
        yaw=np.asarray(yaw, dtype=np.float64).reshape(-1),
        length=np.asarray(length, dtype=np.float64).reshape(-1),
        width=np.asarray(width, dtype=np.float64).reshape(-1),
    )


def compute_box_collisions(ego_corners: np.ndarray, actors_per_step: Sequence[ActorBoxes]) -> np.ndarray:
    """``[T]`` bool: the ego box at step k overlaps any box of ``actors_per_step[k]``."""
    if len(ego_corners) != len(actors_per_step):
        raise ValueError(f"{len(ego_corners)} ego poses but {len(actors_per_step)} actor sets")
    out = np.zeros(len(ego_corners), dtype=bool)
    for k, boxes in enumerate(actors_per_step):
        if len(boxes.xy):
            out[k] = bool(boxes_overlap_matrix(ego_corners[k : k + 1], boxes.corners()).any())
    return out


def compute_collision_at_horizons(
    step_collisions: Any, horizons_s: Sequence[float] = HORIZONS_S, dt_s: float = PLAN_DT_S
) -> np.ndarray:
    """``[len(horizons)]`` bool: a collision at any waypoint up to each horizon (``step_collisions [T]``)."""
    c = np.asarray(step_collisions, dtype=bool)
    return np.array([bool(c[: _n_upto(h, dt_s)].any()) for h in horizons_s])


def compute_collision_rates(
    pred_collide: Any, gt_collide: Any, horizons_s: Sequence[float] = HORIZONS_S
) -> dict[str, float | None]:
    """Collision rate (%) per horizon over the samples whose ground truth does not collide at that horizon.

    ``pred_collide``, ``gt_collide``: ``[N, len(horizons)]`` bool. ``None`` when no sample counts.
    """
    p = np.asarray(pred_collide, dtype=bool).reshape(-1, len(horizons_s))
    g = np.asarray(gt_collide, dtype=bool).reshape(-1, len(horizons_s))
    out: dict[str, float | None] = {}
    for h, horizon in enumerate(horizons_s):
        keep = ~g[:, h]
        out[horizon_key("collision_rate_pct", horizon)] = (
            float(100.0 * p[keep, h].mean()) if keep.any() else None
        )
    return out


# ------------------------------------------------------------------------------------------ perception
def compute_iou_counts(pred_logits: Any, target: Any, threshold: float = OCCUPANCY_THRESHOLD) -> np.ndarray:
    """``[C, 2]`` (intersection, union) cell counts per channel of ``[N, C, H, W]`` logits vs {0, 1} targets.

    A predicted cell is occupied when ``sigmoid(logit) > threshold``, a target cell when it is >= 0.5.
    """
    logits = np.asarray(pred_logits, dtype=np.float64)
    tgt = np.asarray(target, dtype=np.float64)
    if logits.shape != tgt.shape or logits.ndim != 4:
        raise ValueError(f"pred_logits and target must both be [N, C, H, W], got {logits.shape}, {tgt.shape}")
    logit_thr = math.log(threshold / (1.0 - threshold))
    p = logits > logit_thr
    t = tgt >= 0.5
    inter = (p & t).sum(axis=(0, 2, 3))
    union = (p | t).sum(axis=(0, 2, 3))
    return np.stack([inter, union], axis=1).astype(np.float64)


def iou_from_counts(counts: np.ndarray, channels: Sequence[str]) -> dict[str, float | None]:
    """``{"iou_<channel>": intersection / union}`` (None where the union is empty) and ``"iou_mean"``."""
    out: dict[str, float | None] = {}
    for c, name in enumerate(channels):
        inter, union = counts[c]
        out[f"iou_{name}"] = float(inter / union) if union > 0 else None
    vals = [v for v in out.values() if v is not None]
    out["iou_mean"] = float(np.mean(vals)) if vals else None
    return out


# ------------------------------------------------------------------------------------------ accumulation
@dataclass
class OpenLoopAccumulator:
    """Sums open-loop metrics over batches; :meth:`result` gives the final numbers (see ``docs/metrics.md``).

    Per sample it keeps the L2 and collision flags, so results can also be split per route / scenario.
    """

    horizons_s: tuple[float, ...] = HORIZONS_S
    convention: Literal["vad", "uniad"] = "vad"
    kl_temperature: float = KL_TEMPERATURE
    auc_threshold: float = AUC_THRESHOLD
    occupancy_channels: tuple[str, ...] = ()
    frame_ids: list[str] = field(default_factory=list)
    l2: list[np.ndarray] = field(default_factory=list)
    pred_collide: list[np.ndarray] = field(default_factory=list)
    gt_collide: list[np.ndarray] = field(default_factory=list)
    risk_l1_sum: float = 0.0
    risk_cells: int = 0
    risk_kl: list[np.ndarray] = field(default_factory=list)
    risk_pearson: list[np.ndarray] = field(default_factory=list)
    risk_scores: list[np.ndarray] = field(default_factory=list)
    risk_labels: list[np.ndarray] = field(default_factory=list)
    hazards_found: int = 0
    hazards: int = 0
    iou_counts: np.ndarray | None = None
    object_hits: list[tuple[int, float, bool, bool | None]] = field(default_factory=list)

    def add_planning(self, frame_ids: Sequence[str], pred_xy: Any, gt_xy: Any, valid: Any) -> None:
        self.frame_ids += list(frame_ids)
        self.l2.append(
            compute_l2_per_sample(pred_xy, gt_xy, valid, self.horizons_s, convention=self.convention)
        )

    def add_collisions(self, pred_collide: Any, gt_collide: Any) -> None:
        """``[B, len(horizons)]`` bool each, in the order of :meth:`add_planning`'s samples."""
        self.pred_collide.append(np.asarray(pred_collide, dtype=bool).reshape(-1, len(self.horizons_s)))
        self.gt_collide.append(np.asarray(gt_collide, dtype=bool).reshape(-1, len(self.horizons_s)))

    def add_risk(self, pred: Any, teacher: Any) -> None:
        """``[B, 1, H, W]`` predicted and teacher risk maps."""
        p = np.asarray(pred, dtype=np.float64)
        t = np.asarray(teacher, dtype=np.float64)
        if p.shape != t.shape:
            raise ValueError(f"predicted risk {p.shape} and teacher risk {t.shape} differ in shape")
        self.risk_l1_sum += float(np.abs(p - t).sum())
        self.risk_cells += p.size
        self.risk_kl.append(compute_risk_kl_per_frame(p, t, self.kl_temperature))
        self.risk_pearson.append(compute_risk_pearson_per_frame(p, t))
        self.risk_scores.append(p.astype(np.float32).ravel())
        self.risk_labels.append((t > self.auc_threshold).ravel())
        found, n = compute_student_hazard_recall(p, t)
        self.hazards_found += found
        self.hazards += n

    def add_occupancy(self, logits: Any, target: Any) -> None:
        counts = compute_iou_counts(logits, target)
        self.iou_counts = counts if self.iou_counts is None else self.iou_counts + counts

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_samples": len(self.frame_ids), "l2_convention": self.convention}
        if self.l2:
            l2 = np.concatenate(self.l2)
            for h, horizon in enumerate(self.horizons_s):
                col = l2[:, h][np.isfinite(l2[:, h])]
                out[horizon_key("l2", horizon)] = float(col.mean()) if len(col) else None
            vals = [out[horizon_key("l2", h)] for h in self.horizons_s]
            out["l2_avg"] = float(np.mean(vals)) if all(v is not None for v in vals) else None
        if self.pred_collide:
            pc, gc = np.concatenate(self.pred_collide), np.concatenate(self.gt_collide)
            out.update(compute_collision_rates(pc, gc, self.horizons_s))
            rates = [out[horizon_key("collision_rate_pct", h)] for h in self.horizons_s]
            out["collision_rate_avg_pct"] = (
                float(np.mean(rates)) if all(r is not None for r in rates) else None
            )
            out["n_gt_colliding"] = {
                horizon_key("t", h): int(gc[:, i].sum()) for i, h in enumerate(self.horizons_s)
            }
        if self.risk_cells:
            pearson = np.concatenate(self.risk_pearson)
            pearson = pearson[np.isfinite(pearson)]
            out["risk_l1"] = self.risk_l1_sum / self.risk_cells
            out["risk_kl"] = float(np.concatenate(self.risk_kl).mean())
            out["risk_pearson"] = float(pearson.mean()) if len(pearson) else None
            out["risk_auc"] = compute_auc(np.concatenate(self.risk_scores), np.concatenate(self.risk_labels))
            out["risk_kl_temperature"] = self.kl_temperature
            out["risk_auc_threshold"] = self.auc_threshold
            out["risk_hazard_recall"] = self.hazards_found / self.hazards if self.hazards else None
            out["risk_hazards"] = self.hazards
        if self.iou_counts is not None:
            out.update(iou_from_counts(self.iou_counts, self.occupancy_channels))
        if self.iou_counts is not None or self.object_hits:  # (every bin empty when no object was shown)
            out["occupancy_recall_by_range"] = recall_by_range(self.object_hits)
        if any(len(h) > 3 and h[3] is not None for h in self.object_hits):
            out["occupancy_recall_on_road"] = recall_on_road(self.object_hits)
        return out

    def l2_column(self, horizon_s: float) -> np.ndarray:
        """``[N]`` per-sample L2 at ``horizon_s`` (NaN where no waypoint up to it was valid)."""
        if not self.l2:
            return np.zeros(0)
        return np.concatenate(self.l2)[:, list(self.horizons_s).index(horizon_s)]

    def per_sample(self) -> list[dict[str, Any]]:
        """One row per sample: frame id, L2 per horizon and collision flags (when computed)."""
        if not self.l2:
            return []
        l2 = np.concatenate(self.l2)
        pc = np.concatenate(self.pred_collide) if self.pred_collide else None
        gc = np.concatenate(self.gt_collide) if self.gt_collide else None
        rows = []
        for i, fid in enumerate(self.frame_ids):
            row: dict[str, Any] = {"frame_id": fid}
            for h, horizon in enumerate(self.horizons_s):
                row[horizon_key("l2", horizon)] = None if not np.isfinite(l2[i, h]) else float(l2[i, h])
                if pc is not None and gc is not None:
                    row[horizon_key("collide", horizon)] = bool(pc[i, h])
                    row[horizon_key("gt_collide", horizon)] = bool(gc[i, h])
            rows.append(row)
        return rows


# ------------------------------------------------------------------------------------------ baselines
def compute_baseline_plans(
    ego_state: Any, target_point: Any, dt_s: float = PLAN_DT_S, n: int = 6
) -> dict[str, np.ndarray]:
    """Plans that need no learning, ``[B, n, 2]`` each, from what a driver sees (``ego_state [B, 4]``: speed,
    acceleration, yaw rate, steer; ``target_point [B, 2]``):

    - ``constant_velocity``: straight ahead at the current speed;
    - ``kinematic_arc``: along the circular arc through the origin, tangent to the heading, that passes
      through the route's target point, at the current speed and acceleration, never reversing
      (:func:`riskdistill.models.heads.planning.kinematic_arc`).

    A network that does not beat these has not learned to plan (``docs/metrics.md``)."""
    import torch

    from riskdistill.models.heads.planning import kinematic_arc

    ego = np.asarray(ego_state, dtype=np.float64).reshape(-1, 4)
    tp = np.asarray(target_point, dtype=np.float64).reshape(-1, 2)
    t = dt_s * np.arange(1, n + 1)[None, :]
    cv = np.stack([ego[:, :1] * t, np.zeros_like(t * ego[:, :1])], axis=-1)
    arc = kinematic_arc(torch.from_numpy(ego), torch.from_numpy(tp), n).numpy()
    return {"constant_velocity": cv, "kinematic_arc": arc}


# ------------------------------------------------------------------------------------------ the data side
def _actor_arrays(ann: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "id": np.asarray(ann["actor_id"]).reshape(-1),
        "xy": np.asarray(ann["actor_center_ego"], dtype=np.float64).reshape(-1, 3)[:, :2],
        "yaw": np.asarray(ann["actor_yaw_ego"], dtype=np.float64).reshape(-1),
        "lw": np.asarray(ann["actor_size_lwh"], dtype=np.float64).reshape(-1, 3)[:, :2],
        "vel": np.asarray(ann["actor_velocity_ego"], dtype=np.float64).reshape(-1, 2),
    }


def future_actor_boxes(
    ann: dict[str, np.ndarray],
    pose_world: np.ndarray,
    t_s: float,
    future: tuple[dict[str, np.ndarray], np.ndarray] | None = None,
) -> tuple[ActorBoxes, bool]:
    """Other actors' boxes ``t_s`` ahead in the ego frame of ``ann`` (pose ``pose_world = [x, y, yaw]``).

    ``future``: the annotation and world pose of the recorded frame at that time, if any. Its actors are
    moved into the current ego frame; actors it lacks are extrapolated with constant velocity. Returns the
    boxes and whether a recorded frame was used.
    """
    now = _actor_arrays(ann)
    cv = extrapolate_actors(now["xy"], now["yaw"], now["vel"], now["lw"][:, 0], now["lw"][:, 1], t_s)
    if future is None:
        return cv, False
    f_ann, f_pose = future
    fut = _actor_arrays(f_ann)
    # future ego frame -> world -> current ego frame
    cf, sf = math.cos(f_pose[2]), math.sin(f_pose[2])
    wx = f_pose[0] + cf * fut["xy"][:, 0] - sf * fut["xy"][:, 1]
    wy = f_pose[1] + sf * fut["xy"][:, 0] + cf * fut["xy"][:, 1]
    cn, sn = math.cos(pose_world[2]), math.sin(pose_world[2])
    dx, dy = wx - pose_world[0], wy - pose_world[1]
    f_xy = np.stack([cn * dx + sn * dy, -sn * dx + cn * dy], axis=1)
    f_yaw = fut["yaw"] + f_pose[2] - pose_world[2]
    missing = ~np.isin(now["id"], fut["id"])
    return (
        ActorBoxes(
            xy=np.concatenate([f_xy, cv.xy[missing]]),
            yaw=np.concatenate([f_yaw, cv.yaw[missing]]),
            length=np.concatenate([fut["lw"][:, 0], cv.length[missing]]),
            width=np.concatenate([fut["lw"][:, 1], cv.width[missing]]),
        ),
        True,
    )


#: The annotation arrays open loop reads of a frame and of its future frames (9 of about 60): the collision
#: checks' boxes and, for the frame itself, what object recall needs (:data:`RECALL_KEYS`), read once.
FUTURE_BOX_KEYS = tuple(
    dict.fromkeys(
        (
            "actor_id",
            "actor_center_ego",
            "actor_yaw_ego",
            "actor_size_lwh",
            "actor_velocity_ego",
            "ego_size_lwh",
            "ego_center_ego",
            *RECALL_KEYS,
        )
    )
)


class FutureFrameIndex:
    """Finds the recorded frame of the same route ``t`` seconds after a frame (10 Hz steps)."""

    def __init__(self, records: Any, sim_dt_s: float = 0.1):
        table = records.table
        self.records = records
        self.sim_dt_s = sim_dt_s
        routes = table.column("route_id").to_pylist()
        steps = table.column("step").to_pylist()
        self.by_key = {(r, int(s)): i for i, (r, s) in enumerate(zip(routes, steps, strict=True))}
        self.by_frame_id = {f: i for i, f in enumerate(table.column("frame_id").to_pylist())}
        self._cache: dict[int, tuple[dict[str, np.ndarray], np.ndarray]] = {}

    def get(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``(annotation, ego pose [x, y, yaw])`` of record ``index`` (cached; small LRU-free cache)."""
        if index not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            frame = self.records.frame(index)
            self._cache[index] = (
                frame.annotation_arrays(FUTURE_BOX_KEYS),
                np.asarray(frame.ego_pose_world, dtype=np.float64),
            )
        return self._cache[index]

    def future(self, frame_id: str, t_s: float) -> int | None:
        route_id, step = frame_id.rsplit("/", 1)
        return self.by_key.get((route_id, int(step) + round(t_s / self.sim_dt_s)))


def sample_collisions(
    index: FutureFrameIndex,
    frame_id: str,
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    gt_yaw: np.ndarray,
    horizons_s: Sequence[float] = HORIZONS_S,
    dt_s: float = PLAN_DT_S,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Collision flags per horizon of the plan and of the ground truth for one recorded frame, and the
    number of waypoints whose actor boxes came from a recorded future frame."""
    idx = index.by_frame_id[frame_id]
    ann, pose = index.get(idx)
    n = len(pred_xy)
    actors, recorded = [], 0
    for k in range(n):
        t = (k + 1) * dt_s
        j = index.future(frame_id, t)
        boxes, used = future_actor_boxes(ann, pose, t, index.get(j) if j is not None else None)
        actors.append(boxes)
        recorded += int(used)
    size, centre = ann["ego_size_lwh"], ann["ego_center_ego"]
    pred_c = ego_box_corners(pred_xy, plan_headings(pred_xy), size, centre)
    gt_c = ego_box_corners(gt_xy, gt_yaw, size, centre)
    pred_hit = compute_collision_at_horizons(compute_box_collisions(pred_c, actors), horizons_s, dt_s)
    gt_hit = compute_collision_at_horizons(compute_box_collisions(gt_c, actors), horizons_s, dt_s)
    return pred_hit, gt_hit, recorded


def evaluate_open_loop(
    checkpoint: str | Path,
    data_dir: str | Path,
    labels_dir: str | Path | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    stride: int = 1,
    convention: Literal["vad", "uniad"] = "vad",
    device: str = "cpu",
    num_workers: int = 0,
    show_progress: bool = True,
    recall_cameras: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run the student of ``checkpoint`` over the recorded data set ``data_dir`` and return the metrics.

    ``labels_dir`` holds the teacher's risk maps (default ``data_dir/labels/risk`` when it exists); risk
    metrics need it and a student with its RiskHead on. ``recall_cameras``: the recording's cameras whose
    view makes an object count in ``occupancy_recall_by_range`` (None: all), so students of different
    rigs are scored on the same objects (ValueError naming the recording's cameras for an unknown one).
    Returns ``{"metrics": {...}, "per_sample": [...], "checkpoint", "data", "labels", ...}`` (the layout of
    ``docs/metrics.md``).
    """
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from torch.utils.data import DataLoader, Subset

    from riskdistill.contracts.batch import BEV_CHANNELS
    from riskdistill.contracts.observation import select_cameras
    from riskdistill.data.targets import RiskMapTarget
    from riskdistill.data.torch_dataset import DrivingDataset, collate_batch
    from riskdistill.models import load_student

    data_dir = Path(data_dir)
    student = load_student(checkpoint, map_location=device).eval()
    cfg = student.cfg
    check_checkpoint_fits_data(checkpoint, cfg, data_dir)
    grid = cfg.bev_grid()
    if labels_dir is None:
        labels_dir = find_label_dir(data_dir)
    risk_on = bool(getattr(student, "has_risk_head", False)) and labels_dir is not None
    targets: list[Any] = ["future_trajectory", "expert_plan"]
    if _occupancy_enabled(cfg):
        targets.append("bev_occupancy")
    if risk_on:
        targets.append(RiskMapTarget(labels_dir))
    ds = DrivingDataset(
        data_dir, grid, targets, cameras=cfg.cameras, image_hw=tuple(cfg.image_hw), image_dtype="uint8"
    )
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    picked = range(0, len(ds), stride)  # every stride-th frame: a quick check over every route
    dataset = ds if limit is None and stride == 1 else Subset(ds, list(picked)[:limit])
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_batch, num_workers=num_workers)
    visible_in = None
    if recall_cameras is not None:
        if not recall_cameras:
            raise ValueError(
                f"recall cameras: an empty list; cameras of data set {data_dir}: "
                f"{list(ds.records.camera_names)}"
            )
        try:
            visible_in = select_cameras(ds.records.camera_names, recall_cameras)
        except ValueError as exc:
            raise ValueError(f"recall cameras of data set {data_dir}: {exc}") from exc
    index = FutureFrameIndex(ds.records)
    acc = OpenLoopAccumulator(convention=convention, occupancy_channels=BEV_CHANNELS)
    driven = OpenLoopAccumulator(convention=convention)  # the plan the controller would track
    expert = OpenLoopAccumulator(convention=convention)  # the expert's own plan in the same form
    baselines = {name: OpenLoopAccumulator(convention=convention) for name in BASELINES}
    recorded_steps = 0
    progress = Progress(
        TextColumn("[bold]open loop[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
    )
    with progress, torch.no_grad():
        task = progress.add_task("frames", total=len(dataset))
        for batch in loader:
            batch = batch.to(device)
            out = student(batch.observation, with_risk=risk_on)
            pred = out["waypoints"].float().cpu().numpy()
            tg = batch.targets
            gt = tg.future_waypoints.cpu().numpy()
            valid = tg.future_valid.cpu().numpy()
            acc.add_planning(batch.frame_ids, pred, gt, valid)
            driven.add_planning(batch.frame_ids, student.plan(out).float().cpu().numpy(), gt, valid)
            _add_expert_plan(expert, batch.frame_ids, tg, gt, valid)
            obs = batch.observation
            plans = compute_baseline_plans(obs.ego_state.cpu().numpy(), obs.target_point.cpu().numpy())
            for name, base in baselines.items():
                base.add_planning(batch.frame_ids, plans[name], gt, valid)
            yaw = tg.future_yaw.cpu().numpy()
            pc, gc = [], []
            for b, fid in enumerate(batch.frame_ids):
                p_hit, g_hit, rec = sample_collisions(index, fid, pred[b], gt[b], yaw[b], acc.horizons_s)
                pc.append(p_hit)
                gc.append(g_hit)
                recorded_steps += rec
            acc.add_collisions(np.stack(pc), np.stack(gc))
            if risk_on and "risk" in out:
                acc.add_risk(out["risk"].float().cpu().numpy(), tg.risk_map.cpu().numpy())
            if "occupancy" in out and tg.bev_occupancy is not None:
                occ = out["occupancy"].float().cpu().numpy()
                occ_t = tg.bev_occupancy.cpu().numpy()
                acc.add_occupancy(occ, occ_t)
                road = occ_t[:, BEV_CHANNELS.index("drivable")] > 0.5
                for b, fid in enumerate(batch.frame_ids):  # arrays the collision check read (cached)
                    ann = index.get(index.by_frame_id[fid])[0]
                    acc.object_hits.extend(
                        object_recall_hits(occ[b], ann, grid, visible_in=visible_in, drivable=road[b])
                    )
            progress.advance(task, len(batch))
    metrics = acc.result()
    metrics["driven_plan"] = _l2_only(driven.result())
    metrics["baselines"] = {name: _l2_only(base.result()) for name, base in baselines.items()}
    # the student's waypoints against each plan without learning, paired per sample, routes resampled
    metrics["waypoints_vs_baselines"] = {
        name: paired_l2_difference(acc, base) for name, base in baselines.items()
    }
    metrics["expert_plan"] = _l2_only(expert.result()) if expert.frame_ids else None
    n_wp = len(acc.frame_ids) * pred.shape[1] if acc.frame_ids else 0
    return {
        "checkpoint": str(checkpoint),
        "data": str(data_dir),
        "labels": None if labels_dir is None else str(labels_dir),
        "grid": grid.to_dict(),
        "recall_cameras": None if recall_cameras is None else list(recall_cameras),
        "metrics": metrics,
        "future_boxes_recorded_share": (recorded_steps / n_wp) if n_wp else None,
        "per_sample": acc.per_sample(),
    }


def paired_l2_difference(
    student: OpenLoopAccumulator, other: OpenLoopAccumulator, horizon_s: float = PAIRED_HORIZON_S
) -> dict[str, Any]:
    """The student's L2 at ``horizon_s`` minus another plan's on the same samples (negative: the student is
    better), with a bootstrap interval that resamples whole routes (a route's frames are correlated; the
    route is the frame id's part before ``/``; the study's bootstrap, ``study_stats.bootstrap_weights``):
    ``diff_m`` (= the difference of the two L2 metrics), ``ci_low``, ``ci_high``, ``n_routes``,
    ``n_samples`` and ``student_better_share`` (of the samples)."""
    from riskdistill.evaluation.study_stats import CI_LEVEL, bootstrap_weights

    if student.frame_ids != other.frame_ids:
        raise ValueError("paired L2: the two plans were scored on different samples")
    a, b = student.l2_column(horizon_s), other.l2_column(horizon_s)
    ok = np.isfinite(a) & np.isfinite(b)
    d = (a - b)[ok]
    routes = np.asarray([f.split("/", 1)[0] for f in student.frame_ids])[ok]
    out: dict[str, Any] = {"horizon_s": horizon_s, "n_samples": int(ok.sum())}
    if not len(d):
        return {**out, "diff_m": None, "ci_low": None, "ci_high": None, "n_routes": 0}
    names, route_index = np.unique(routes, return_inverse=True)
    sums = np.bincount(route_index, weights=d, minlength=len(names))
    counts = np.bincount(route_index, minlength=len(names)).astype(np.float64)
    _, w_route = bootstrap_weights(1, len(names))  # [draws, routes]: how often each route is drawn
    lo, hi = np.quantile((w_route @ sums) / (w_route @ counts), [0.5 - CI_LEVEL / 2.0, 0.5 + CI_LEVEL / 2.0])
    return {
        **out,
        "diff_m": float(d.mean()),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "n_routes": len(names),
        "student_better_share": float((d < 0).mean()),
    }


def _add_expert_plan(
    acc: OpenLoopAccumulator, frame_ids: Sequence[str], tg: Any, gt: Any, valid: Any
) -> None:
    """Score the recorded expert's plan (its path at its target speed, the form a path + speed student
    drives, :func:`riskdistill.contracts.plan.waypoints_from_path_speed`) on the frames that hold one: the
    open-loop error of that plan form itself, a reference for the student's ``driven_plan``."""
    from riskdistill.contracts.plan import waypoints_from_path_speeds

    if tg.plan_valid is None:
        return
    keep = np.flatnonzero(tg.plan_valid.cpu().numpy().reshape(-1))
    if len(keep) == 0:
        return
    speed = tg.plan_speed_mps.cpu().numpy().reshape(-1)
    wp = waypoints_from_path_speeds(tg.plan_path.cpu().numpy()[keep], speed[keep])
    acc.add_planning([frame_ids[i] for i in keep], wp, gt[keep], valid[keep])


def _l2_only(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k.startswith("l2")}


def check_checkpoint_fits_data(checkpoint: str | Path, cfg: Any, data_dir: Path) -> None:
    """Refuse, naming both values, a data set whose images the student cannot read as trained (image size:
    ``contracts.compat.image_size_problem``) or that was recorded with another rig than the student was
    trained with (when the checkpoint tells). The label grid is checked when the labels are read."""
    from riskdistill.contracts.compat import check_image_size, check_rig
    from riskdistill.contracts.rig import Rig
    from riskdistill.data.storage import RecordedDataset
    from riskdistill.evaluation.drivers import StudentDriverFactory

    manifest = RecordedDataset(data_dir).manifest
    check_image_size(
        cfg.image_hw, manifest["image_hw"], f"checkpoint {checkpoint}", f"data set {data_dir} (manifest)"
    )
    trained = StudentDriverFactory(str(checkpoint)).trained_rig()
    stored = manifest.get("rig")
    if trained is not None and isinstance(stored, dict):
        rig = Rig.from_dict(stored, source=f"{data_dir}/manifest.json: rig")
        check_rig(
            trained[1], rig, f"rig {trained[0]}", f"rig {rig.name!r} of data set {data_dir}", cfg.cameras
        )


def _occupancy_enabled(cfg: Any) -> bool:
    heads = getattr(cfg, "heads", None)
    occ = getattr(heads, "occupancy", None) if heads is not None else None
    return bool(getattr(occ, "enabled", occ is not None))
