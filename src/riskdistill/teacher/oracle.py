"""The oracle teacher: per-object risk from ground truth in the ego frame (no VLM).

For each actor (all quantities in the current ego frame, x forward, y left):

- the ego follows its recorded future trajectory ``future_xy`` (valid part, preceded by the origin at
  t = 0, linearly interpolated, held at the last valid point), the actor moves at constant velocity;
- over ``t in [0, horizon_s]`` (step ``time_step_s``) the *gap* is the centre distance minus the two
  footprint radii (half widths); ``gap_min`` is its minimum, ``t_min`` the time of closest approach;
- ``s_ttc = exp(-t_min / ttc_scale_s) * clip(1 - gap_min / conflict_margin_m, 0, 1)``
  (a conflict with the ego's path soon);
- ``s_dist = exp(-dist_now / distance_scale_m)`` with ``dist_now`` the current gap;
- ``s_close = clip(closing_speed / closing_speed_scale_mps, 0, 1)``, ``closing_speed`` the rate at which the
  actor approaches the ego (relative velocity projected on the line of sight);
- ``s_occ``: actors of vehicle class standing still (speed < ``static_speed_mps``), at least
  ``occluder_min_length_m`` long, ahead of the ego and within ``occlusion_lateral_m`` of its path
  (lateral gap), get ``s_occ = exp(-dist_now / occlusion_range_m)`` ("someone may emerge here");

combined as::

    dynamic = clip(w_ttc * s_ttc + w_distance * s_dist + w_closing * s_close, 0, 1)
    vul     = 1 - w_vulnerability * (1 - class_level)   class_level: vulnerable 1, vehicle 0.6, static 0.3
    risk    = max(dynamic * vul, w_occlusion * s_occ)

Deterministic (no randomness, stable sort by risk then actor id).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
from pydantic import Field

import riskdistill
from riskdistill.config import StrictConfig
from riskdistill.data.storage import FrameRecord
from riskdistill.teacher.schema import MAX_REASON_CHARS, FrameLabel, ObjectRisk, Provenance
from riskdistill.types import ActorClass

_N_CLASSES = max(int(c) for c in ActorClass) + 1
_CLASS_NAMES = [
    ActorClass(i).name.lower() if i in ActorClass._value2member_map_ else "unknown" for i in range(_N_CLASSES)
]


def _refuse_non_finite(frame_id: str, **arrays: np.ndarray) -> None:
    """A clear error for NaN / inf input (the scores would be NaN and every object silently dropped)."""
    for name, a in arrays.items():
        a = np.asarray(a, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            at = [int(v) for v in np.argwhere(~np.isfinite(a))[0]]
            raise ValueError(f"oracle teacher: frame {frame_id!r}: {name} has NaN or inf (first at {at})")


def _construct_object(values: dict) -> ObjectRisk:
    """``ObjectRisk.model_construct(**values)`` (which cannot take the field named ``cls``): an instance
    from already valid values, every field given."""
    m = ObjectRisk.__new__(ObjectRisk)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", set(values))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


class OracleConfig(StrictConfig):
    horizon_s: float = Field(default=4.0, gt=0.0)
    time_step_s: float = Field(default=0.1, gt=0.0)
    future_dt_s: float = Field(default=0.5, gt=0.0)  # spacing of future_xy (data set settings.future_dt_s)
    ego_half_width_m: float = Field(default=1.0, ge=0.0)  # half width of the ego's path
    ttc_scale_s: float = Field(default=2.5, gt=0.0)
    conflict_margin_m: float = Field(default=2.0, gt=0.0)
    distance_scale_m: float = Field(default=8.0, gt=0.0)
    closing_speed_scale_mps: float = Field(default=8.0, gt=0.0)
    w_ttc: float = Field(default=0.6, ge=0.0)
    w_distance: float = Field(default=0.25, ge=0.0)
    w_closing: float = Field(default=0.15, ge=0.0)
    w_vulnerability: float = Field(default=0.5, ge=0.0, le=1.0)
    level_vulnerable: float = Field(default=1.0, ge=0.0, le=1.0)
    level_vehicle: float = Field(default=0.6, ge=0.0, le=1.0)
    level_static: float = Field(default=0.3, ge=0.0, le=1.0)
    w_occlusion: float = Field(default=0.4, ge=0.0, le=1.0)
    static_speed_mps: float = Field(default=0.5, ge=0.0)
    occluder_min_length_m: float = Field(default=3.5, ge=0.0)
    occlusion_lateral_m: float = Field(default=3.0, ge=0.0)
    occlusion_range_m: float = Field(default=20.0, gt=0.0)
    min_risk: float = Field(default=0.0, ge=0.0, le=1.0)  # objects below are left out of the label

    def config_hash(self) -> str:
        blob = json.dumps(self.model_dump(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class OracleScores:
    """Per-actor risk and its components (all ``[A]``)."""

    risk: np.ndarray
    s_ttc: np.ndarray
    s_dist: np.ndarray
    s_close: np.ndarray
    s_occ: np.ndarray
    t_min: np.ndarray
    gap_min: np.ndarray
    dist_now: np.ndarray
    closing_speed: np.ndarray


class OracleTeacher:
    """Ground-truth risk teacher: ``label(frame)`` reads the annotation, ``label_arrays`` plain arrays."""

    def __init__(self, config: OracleConfig | None = None, validate: bool = False):
        self.config = config or OracleConfig()
        self.validate = validate
        c = self.config
        level = np.full(_N_CLASSES, c.level_vehicle)
        for cl in ActorClass:
            if cl.is_vulnerable:
                level[int(cl)] = c.level_vulnerable
            elif cl.is_static_obstacle:
                level[int(cl)] = c.level_static
        self._vul = 1.0 - c.w_vulnerability * (1.0 - level)
        self._is_vehicle = np.array([ActorClass(i).is_vehicle for i in range(_N_CLASSES)])
        self._t = np.arange(0.0, c.horizon_s + 1e-9, c.time_step_s)
        self._provenance = Provenance(
            teacher="oracle",
            model_id="riskdistill.teacher.oracle",
            package_version=riskdistill.__version__,
            config_hash=c.config_hash(),
            created_utc="",
        )

    # -------------------------------------------------------------------------------------- scoring
    def ego_path(self, future_xy: np.ndarray, future_valid: np.ndarray) -> np.ndarray:
        """Ego positions ``[T, 2]`` at the oracle's time samples."""
        c = self.config
        xy = np.asarray(future_xy, dtype=np.float64).reshape(-1, 2)
        valid = np.asarray(future_valid, dtype=bool).reshape(-1)
        n = int(np.argmin(valid)) if not valid.all() else len(valid)  # leading valid part
        pts = np.concatenate([np.zeros((1, 2)), xy[:n]], axis=0)
        tk = np.arange(len(pts)) * c.future_dt_s
        return np.stack([np.interp(self._t, tk, pts[:, 0]), np.interp(self._t, tk, pts[:, 1])], axis=-1)

    def score(
        self,
        actor_class: np.ndarray,
        center_xy: np.ndarray,
        size_lw: np.ndarray,
        velocity_xy: np.ndarray,
        future_xy: np.ndarray,
        future_valid: np.ndarray,
    ) -> OracleScores:
        c = self.config
        cls = np.clip(np.asarray(actor_class, dtype=np.int64).reshape(-1), 0, _N_CLASSES - 1)
        p0 = np.asarray(center_xy, dtype=np.float64).reshape(-1, 2)
        size = np.abs(np.asarray(size_lw, dtype=np.float64).reshape(-1, 2))
        vel = np.asarray(velocity_xy, dtype=np.float64).reshape(-1, 2)
        ego = self.ego_path(future_xy, future_valid)  # [T, 2]
        t = self._t
        radius = 0.5 * size[:, 1] + c.ego_half_width_m  # [A]
        actor = p0[:, None, :] + vel[:, None, :] * t[None, :, None]  # [A, T, 2]
        rel = actor - ego[None]
        gap = np.sqrt((rel**2).sum(-1)) - radius[:, None]  # [A, T]
        k = np.argmin(gap, axis=1)
        gap_min = np.maximum(gap[np.arange(len(k)), k], 0.0)
        t_min = t[k]
        dist_now = np.maximum(gap[:, 0], 0.0)
        ego_vel = (ego[1] - ego[0]) / max(t[1] - t[0], 1e-9) if len(t) > 1 else np.zeros(2)
        rv = vel - ego_vel[None]
        r0 = p0 - ego[0][None]
        closing = -(r0 * rv).sum(-1) / np.maximum(np.linalg.norm(r0, axis=-1), 1e-6)
        s_ttc = np.exp(-t_min / c.ttc_scale_s) * np.clip(1.0 - gap_min / c.conflict_margin_m, 0.0, 1.0)
        s_dist = np.exp(-dist_now / c.distance_scale_m)
        s_close = np.clip(closing / c.closing_speed_scale_mps, 0.0, 1.0)
        # occlusion: large standing vehicles ahead and next to the ego path
        lateral = np.sqrt(((p0[:, None, :] - ego[None]) ** 2).sum(-1)).min(axis=1) - radius
        occluder = (
            self._is_vehicle[cls]
            & (np.linalg.norm(vel, axis=-1) < c.static_speed_mps)
            & (size[:, 0] >= c.occluder_min_length_m)
            & (p0[:, 0] > 0.0)
            & (lateral <= c.occlusion_lateral_m)
        )
        s_occ = np.where(occluder, np.exp(-dist_now / c.occlusion_range_m), 0.0)
        dynamic = np.clip(c.w_ttc * s_ttc + c.w_distance * s_dist + c.w_closing * s_close, 0.0, 1.0)
        risk = np.clip(np.maximum(dynamic * self._vul[cls], c.w_occlusion * s_occ), 0.0, 1.0)
        return OracleScores(risk, s_ttc, s_dist, s_close, s_occ, t_min, gap_min, dist_now, closing)

    # -------------------------------------------------------------------------------------- labels
    def _reason(
        self,
        name: str,
        ttc: float,
        dist: float,
        close: float,
        occ: float,
        risk: float,
        t_min: float,
        dist_now: float,
        closing: float,
    ) -> str:
        """Templated reason from the weighted components (which term dominates)."""
        if occ > 0 and occ >= risk - 1e-9:
            return f"parked {name} next to the ego path may hide someone ({dist_now:.1f} m ahead)"
        if ttc > 0.05 and ttc >= max(dist, close):
            if t_min <= 1e-6:
                return f"{name} in conflict with the ego path now"
            return f"{name} crossing the ego path in {t_min:.1f} s"
        if close > 0.02 and close >= dist:
            return f"{name} approaching at {closing:.1f} m/s, {dist_now:.1f} m away"
        if risk >= 0.1:
            return f"{name} close to the ego ({dist_now:.1f} m)"
        return f"{name} not in conflict with the ego path"

    def label_arrays(
        self,
        frame_id: str,
        actor_id: np.ndarray,
        actor_class: np.ndarray,
        center_xy: np.ndarray,
        size_lw: np.ndarray,
        velocity_xy: np.ndarray,
        future_xy: np.ndarray,
        future_valid: np.ndarray,
        camera_names: tuple[str, ...] | list[str] = (),
        visible_px: np.ndarray | None = None,
        box2d: np.ndarray | None = None,
    ) -> FrameLabel:
        """The label of one frame from plain ego-frame arrays (``[A]``, ``[A, 2]``; ``visible_px [A, N]``,
        ``box2d [A, N, 4]`` with N = len(camera_names)). NaN or inf in the positions, sizes, velocities or
        the ego future raise a ``ValueError`` naming the frame and the field (never a silent empty label)."""
        _refuse_non_finite(
            frame_id, center_xy=center_xy, size_lw=size_lw, velocity_xy=velocity_xy, future_xy=future_xy
        )
        ids = np.asarray(actor_id, dtype=np.int64).reshape(-1)
        cls = np.asarray(actor_class, dtype=np.int64).reshape(-1)
        s = self.score(cls, center_xy, size_lw, velocity_xy, future_xy, future_valid)
        order = np.lexsort((ids, -s.risk))
        keep = order[s.risk[order] >= self.config.min_risk]
        c = self.config
        cols = zip(
            ids[keep].tolist(),
            np.clip(cls[keep], 0, _N_CLASSES - 1).tolist(),
            s.risk[keep].tolist(),
            (c.w_ttc * s.s_ttc[keep]).tolist(),
            (c.w_distance * s.s_dist[keep]).tolist(),
            (c.w_closing * s.s_close[keep]).tolist(),
            (c.w_occlusion * s.s_occ[keep]).tolist(),
            s.t_min[keep].tolist(),
            s.dist_now[keep].tolist(),
            s.closing_speed[keep].tolist(),
            strict=True,
        )
        cams = list(camera_names)
        vis = (np.asarray(visible_px)[keep] > 0).tolist() if visible_px is not None and cams else None
        boxes_all = np.asarray(box2d, dtype=np.float64)[keep] if box2d is not None and cams else None
        boxes_list = boxes_all.tolist() if boxes_all is not None else None
        finite = np.isfinite(boxes_all).all(-1).tolist() if boxes_all is not None else None
        objects = []
        for k, (oid, ci, r, ttc, dist, close, occ, t_min, dist_now, closing) in enumerate(cols):
            name = _CLASS_NAMES[ci]
            seen_idx = [j for j, v in enumerate(vis[k]) if v] if vis is not None else []
            boxes = None
            if seen_idx and boxes_list is not None:
                boxes = {cams[j]: boxes_list[k][j] for j in seen_idx if finite[k][j]} or None
            objects.append(
                {
                    "object_id": oid,
                    "cls": name,
                    "cameras": [cams[j] for j in seen_idx],
                    "box2d": boxes,
                    "risk": r,
                    "rank": k + 1,
                    "reason": self._reason(name, ttc, dist, close, occ, r, t_min, dist_now, closing),
                }
            )
        frame_risk = objects[0]["risk"] if objects else 0.0
        summary = f"highest risk: {objects[0]['reason']}" if objects else "no actors"
        fields = {
            "frame_id": frame_id,
            "objects": objects,
            "frame_risk": frame_risk,
            "summary": summary,
            "provenance": self._provenance,
        }
        # Valid by construction (ranks from the sort, risks clipped to [0, 1], frame_risk = the first risk,
        # finite boxes, short templated reasons); tests/test_teacher_oracle.py re-validates random frames.
        # Building without validation saves ~10 % of the oracle's time. Inputs that could break the
        # construction (NaN, repeated ids, inverted boxes, overlong reasons) go through validation, which
        # raises a clear error.
        suspicious = (
            not np.all(np.isfinite(s.risk[keep]))
            or len(np.unique(ids)) != len(ids)
            or any(len(o["reason"]) > MAX_REASON_CHARS for o in objects)
            or (
                boxes_all is not None
                and bool(
                    np.any((boxes_all[..., 2] < boxes_all[..., 0]) | (boxes_all[..., 3] < boxes_all[..., 1]))
                )
            )
        )
        if self.validate or suspicious:
            return FrameLabel.model_validate(fields)
        fields["objects"] = [_construct_object(o) for o in objects]
        return FrameLabel.model_construct(**fields)

    def frame_arrays(self, frame: FrameRecord) -> dict[str, np.ndarray]:
        """The annotation arrays the oracle uses, as keyword arguments of :meth:`label_arrays`."""
        from riskdistill.teacher.grounding import frame_annotation

        keys = (
            "actor_id",
            "actor_class",
            "actor_center_ego",
            "actor_size_lwh",
            "actor_velocity_ego",
            "future_xy",
            "future_valid",
            "camera_names",
            "actor_visible_px",
            "actor_box2d",
        )
        a = frame_annotation(frame, keys, "oracle teacher")
        return {
            "actor_id": a["actor_id"],
            "actor_class": a["actor_class"],
            "center_xy": np.asarray(a["actor_center_ego"])[:, :2],
            "size_lw": np.asarray(a["actor_size_lwh"])[:, :2],
            "velocity_xy": a["actor_velocity_ego"],
            "future_xy": a["future_xy"],
            "future_valid": a["future_valid"],
            "camera_names": tuple(str(x) for x in a["camera_names"]),
            "visible_px": a["actor_visible_px"],
            "box2d": a["actor_box2d"],
        }

    def label(self, frame: FrameRecord) -> FrameLabel:
        return self.label_arrays(frame.frame_id, **self.frame_arrays(frame))
