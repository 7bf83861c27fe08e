"""The oracle teacher: per-object risk from privileged ground truth, as a careful driver would judge it.

Every term is measured against a *counterfactual* ego that drives its route regardless of the other road
users (``teacher/conflict.py``: route ahead at the current speed, accelerating to the speed limit, slowing
only for curves and a red light), never against the expert's recorded future, which already avoids the
hazard. For each actor, with its predicted motion (its lane or walking line, a scenario trigger that will
release it, braking) and real footprints (oriented boxes; the ego's length and rear-axle-to-centre offset):

- ``ttc`` (s): time to conflict, the first time the predicted box gap falls to the margin
  (``conflict_margin_m`` for a standing actor, ``conflict_margin_moving_m`` for a moving one);
  ``gap_min`` / ``t_min``: the smallest predicted gap and when; ``gap_now`` (m): the current box gap;
- time decay ``f(t) = 1 / (1 + (t / ttc_half_s)^ttc_power)`` (1 now, 1/2 at ``ttc_half_s``);
- distance decay ``g(d) = 1 / (1 + (d / distance_half_m)^2)`` (the prediction is less sure far away);
- conflict ``c = f(ttc)``; without a conflict, a near miss
  ``c = w_near_miss * clip((m0 + near_miss_m - gap_min) / (m0 + near_miss_m - margin), 0, 1) * f(t_min)``
  (``m0 = conflict_margin_m``: the band ends at 2 m for every actor); a moving pedestrian or
  cyclist that would be in conflict if it stopped where it is: ``c >= w_may_stop * f(ttc_if_stops)``;
- ``s_conflict = severity(class) * g(gap_now) * c`` (severity: vulnerable 1.0, vehicle 0.95, static 0.9);
- ``s_occ`` ("someone may appear"): a standing vehicle or hoarding at least ``occluder_min_length_m``
  long, not in conflict, passing within ``occlusion_lateral_m`` of the ego path ahead:
  ``w_occlusion * clip(1 - (gap_min - margin) / occlusion_lateral_m, 0, 1) * f(t_min) * g(gap_now)``;
- ``s_prox = w_proximity * exp(-gap_now / proximity_scale_m)`` (something right next to the ego);

    risk = clip(max(s_conflict, s_occ, s_prox), 0, 1)

Near misses, occluders and proximity stay below 0.5 by construction (``w_near_miss``, ``w_occlusion``,
``w_proximity`` < 0.5): only a predicted conflict (or a walker that would be in the way if it stopped)
scores above 0.5. Deterministic (no randomness; stable
sort by risk then actor id). See ``docs/teachers.md`` for the figure and the units.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np
from pydantic import Field

import riskdistill
from riskdistill.config import StrictConfig
from riskdistill.data.storage import FrameRecord
from riskdistill.teacher.conflict import (
    ConflictParams,
    Conflicts,
    Scene,
    compute_conflicts,
    scene_from_annotation,
)
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
    """Parameters of the oracle (units in the names; see the module docstring and ``docs/teachers.md``)."""

    # the counterfactual ego and the predicted actors (teacher/conflict.py)
    horizon_s: float = Field(default=6.0, gt=0.0)
    time_step_s: float = Field(default=0.2, gt=0.0)
    cf_accel_mps2: float = Field(default=2.0, gt=0.0)
    cf_decel_mps2: float = Field(default=3.0, gt=0.0)
    lateral_accel_mps2: float = Field(default=3.0, gt=0.0)
    default_speed_limit_mps: float = Field(default=13.9, gt=0.0)  # when the annotation has no route
    offset_return_m: float = Field(default=60.0, gt=0.0)
    release_accel_mps2: float = Field(default=2.5, gt=0.0)
    conflict_margin_m: float = Field(default=0.5, ge=0.0)
    conflict_margin_moving_m: float = Field(default=1.0, ge=0.0)
    w_may_stop: float = Field(default=0.8, ge=0.0, le=1.0)
    future_dt_s: float = Field(default=0.5, gt=0.0)  # spacing of future_xy (data set settings.future_dt_s)
    # scoring
    ttc_half_s: float = Field(default=5.0, gt=0.0)
    ttc_power: float = Field(default=3.0, gt=0.0)
    distance_half_m: float = Field(default=120.0, gt=0.0)
    near_miss_m: float = Field(default=1.5, gt=0.0)
    w_near_miss: float = Field(default=0.45, ge=0.0, le=1.0)
    severity_vulnerable: float = Field(default=1.0, ge=0.0, le=1.0)
    severity_vehicle: float = Field(default=0.95, ge=0.0, le=1.0)
    severity_static: float = Field(default=0.9, ge=0.0, le=1.0)
    w_occlusion: float = Field(default=0.45, ge=0.0, le=1.0)
    occluder_min_length_m: float = Field(default=3.0, ge=0.0)
    occlusion_lateral_m: float = Field(default=3.0, gt=0.0)
    static_speed_mps: float = Field(default=0.5, ge=0.0)
    w_proximity: float = Field(default=0.25, ge=0.0, le=1.0)
    proximity_scale_m: float = Field(default=4.0, gt=0.0)
    min_risk: float = Field(default=0.0, ge=0.0, le=1.0)  # objects below are left out of the label

    def config_hash(self) -> str:
        blob = json.dumps(self.model_dump(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def conflict_params(self) -> ConflictParams:
        return ConflictParams(
            horizon_s=self.horizon_s,
            time_step_s=self.time_step_s,
            accel_mps2=self.cf_accel_mps2,
            decel_mps2=self.cf_decel_mps2,
            lateral_accel_mps2=self.lateral_accel_mps2,
            default_speed_limit_mps=self.default_speed_limit_mps,
            offset_return_m=self.offset_return_m,
            release_accel_mps2=self.release_accel_mps2,
            margin_m=self.conflict_margin_m,
            margin_moving_m=self.conflict_margin_moving_m,
            cull_m=max(self.near_miss_m, self.occlusion_lateral_m)
            + max(self.conflict_margin_m, self.conflict_margin_moving_m)
            + 0.5,
            future_dt_s=self.future_dt_s,
        )


@dataclass(frozen=True)
class OracleScores:
    """Per-actor risk, its terms and the geometry behind them (all ``[A]``)."""

    risk: np.ndarray
    s_conflict: np.ndarray
    s_occ: np.ndarray
    s_prox: np.ndarray
    ttc: np.ndarray  # s, inf: no conflict within the horizon
    gap_min: np.ndarray  # m
    t_min: np.ndarray  # s
    gap_now: np.ndarray  # m
    closing_speed: np.ndarray  # m/s, > 0: the gap shrinks
    shielded: np.ndarray  # bool: in the ego path only behind a nearer road user
    ttc_if_stops: np.ndarray  # s, moving walkers: the time to conflict if it stopped where it is


class OracleTeacher:
    """Ground-truth risk teacher: ``label(frame)`` reads the annotation, ``label_annotation`` an in-memory
    one, ``label_arrays`` plain arrays."""

    def __init__(self, config: OracleConfig | None = None, validate: bool = False):
        self.config = config or OracleConfig()
        self.validate = validate
        c = self.config
        sev = np.full(_N_CLASSES, c.severity_vehicle)
        for cl in ActorClass:
            if cl.is_vulnerable:
                sev[int(cl)] = c.severity_vulnerable
            elif cl.is_static_obstacle:
                sev[int(cl)] = c.severity_static
        self._severity = sev
        occ = np.array([ActorClass(i).is_vehicle for i in range(_N_CLASSES)])
        occ[int(ActorClass.BARRIER)] = True  # hoarding; short barriers fail the length test
        self._occluder_class = occ
        self._params = c.conflict_params()
        self._provenance = Provenance(
            teacher="oracle",
            model_id="riskdistill.teacher.oracle",
            package_version=riskdistill.__version__,
            config_hash=c.config_hash(),
            created_utc="",
        )

    # -------------------------------------------------------------------------------------- scoring
    def conflicts(self, scene: Scene) -> Conflicts:
        return compute_conflicts(scene, self._params)

    def score(self, actor_class: np.ndarray, scene: Scene) -> OracleScores:
        c = self.config
        cls = np.clip(np.asarray(actor_class, dtype=np.int64).reshape(-1), 0, _N_CLASSES - 1)
        k = self.conflicts(scene)
        size = np.abs(np.asarray(scene.size_lw, dtype=np.float64).reshape(-1, 2))
        vel = np.asarray(scene.velocity_xy, dtype=np.float64).reshape(-1, 2)

        def f(t: np.ndarray) -> np.ndarray:
            return 1.0 / (1.0 + (np.maximum(t, 0.0) / c.ttc_half_s) ** c.ttc_power)

        g = 1.0 / (1.0 + (k.gap_now_m / c.distance_half_m) ** 2)
        conflict = np.isfinite(k.ttc_s)
        near_end = c.conflict_margin_m + c.near_miss_m  # near misses end there, whatever the margin
        near = np.clip((near_end - k.gap_min_m) / np.maximum(near_end - k.margin_m, 1e-6), 0.0, 1.0)
        cterm = np.where(conflict, f(np.where(conflict, k.ttc_s, 0.0)), c.w_near_miss * near * f(k.t_min_s))
        may_stop = c.w_may_stop * f(k.ttc_if_stops_s)  # 0 where inf
        cterm = np.maximum(cterm, np.where(k.shielded, 0.0, may_stop))
        s_conflict = self._severity[cls] * g * cterm
        # occluders: standing, long enough, beside the ego path ahead (not in it)
        plan = k.plan
        p = self._params
        r2c = p.rear_to_center_m if scene.rear_to_center_m is None else scene.rear_to_center_m
        front_x = r2c + 0.5 * (p.ego_length_m if scene.ego_length_m is None else scene.ego_length_m)
        cx = np.asarray(scene.center_xy, dtype=np.float64).reshape(-1, 2)[:, 0]
        ahead = (cx + 0.5 * size[:, 0] > front_x) & (plan.s[-1] > 1.0)
        occluder = (
            self._occluder_class[cls]
            & (np.hypot(vel[:, 0], vel[:, 1]) < c.static_speed_mps)
            & (size[:, 0] >= c.occluder_min_length_m)
            & ~conflict
            & ~k.shielded
            & (k.gap_min_m > k.margin_m)
            & ahead
        )
        lateral = np.clip(1.0 - (k.gap_min_m - k.margin_m) / c.occlusion_lateral_m, 0.0, 1.0)
        s_occ = np.where(occluder, c.w_occlusion * lateral * f(k.t_min_s) * g, 0.0)
        s_prox = c.w_proximity * np.exp(-k.gap_now_m / c.proximity_scale_m)
        risk = np.clip(np.maximum(np.maximum(s_conflict, s_occ), s_prox), 0.0, 1.0)
        risk = np.where(np.isfinite(k.gap_now_m), risk, np.nan)  # non-finite geometry: left out
        return OracleScores(
            risk,
            s_conflict,
            s_occ,
            s_prox,
            k.ttc_s,
            k.gap_min_m,
            k.t_min_s,
            k.gap_now_m,
            k.closing_mps,
            k.shielded,
            k.ttc_if_stops_s,
        )

    # -------------------------------------------------------------------------------------- labels
    @staticmethod
    def _reason(
        name: str,
        conflict: float,
        occ: float,
        prox: float,
        risk: float,
        ttc: float,
        gmin: float,
        tmin: float,
        gap: float,
        closing: float,
        shielded: bool,
        ttc_stop: float = math.inf,
    ) -> str:
        """Templated reason from the dominating term."""
        if (
            not math.isfinite(ttc)
            and math.isfinite(ttc_stop)
            and conflict >= max(occ, prox)
            and conflict > 0.05
        ):
            return f"{name} on the ego path: met in {ttc_stop:.1f} s if it stops ({gap:.0f} m away)"
        if shielded and conflict >= max(occ, prox):
            return f"{name} in the ego path behind a nearer road user ({gap:.0f} m away)"
        if occ > 0 and occ >= max(conflict, prox) - 1e-12:
            return f"parked {name} beside the ego path may hide someone ({gap:.0f} m ahead)"
        if conflict >= prox and math.isfinite(ttc):
            if ttc <= 0.05:
                return f"{name} in the ego path now ({gap:.1f} m away)"
            where = (
                f"{gap:.0f} m away, closing at {closing:.1f} m/s" if closing > 0.5 else f"{gap:.0f} m away"
            )
            return f"{name} meets the ego path in {ttc:.1f} s ({where})"
        if conflict >= prox and conflict >= 0.02:
            return f"{name} passes {gmin:.1f} m from the ego path in {tmin:.1f} s"
        if risk >= 0.05:
            return f"{name} close to the ego ({gap:.1f} m)"
        return f"{name} not in conflict with the ego path"

    def label_scene(
        self,
        frame_id: str,
        actor_id: np.ndarray,
        actor_class: np.ndarray,
        scene: Scene,
        camera_names: tuple[str, ...] | list[str] = (),
        visible_px: np.ndarray | None = None,
        box2d: np.ndarray | None = None,
    ) -> FrameLabel:
        """The label of one frame from its :class:`~riskdistill.teacher.conflict.Scene` (``visible_px
        [A, N]``, ``box2d [A, N, 4]`` with N = len(camera_names)). NaN or inf in the positions, sizes,
        velocities or the ego future raise a ``ValueError`` naming the frame and the field (never a silent
        empty label)."""
        fields = {"center_xy": scene.center_xy, "size_lw": scene.size_lw, "velocity_xy": scene.velocity_xy}
        if scene.future_xy is not None:
            fields["future_xy"] = scene.future_xy
        _refuse_non_finite(frame_id, **fields)
        ids = np.asarray(actor_id, dtype=np.int64).reshape(-1)
        cls = np.asarray(actor_class, dtype=np.int64).reshape(-1)
        s = self.score(cls, scene)
        finite = np.isfinite(s.risk)
        order = np.lexsort((ids, -np.where(finite, s.risk, -1.0)))
        keep = order[finite[order] & (s.risk[order] >= self.config.min_risk)]
        cols = zip(
            ids[keep].tolist(),
            np.clip(cls[keep], 0, _N_CLASSES - 1).tolist(),
            s.risk[keep].tolist(),
            s.s_conflict[keep].tolist(),
            s.s_occ[keep].tolist(),
            s.s_prox[keep].tolist(),
            s.ttc[keep].tolist(),
            s.gap_min[keep].tolist(),
            s.t_min[keep].tolist(),
            s.gap_now[keep].tolist(),
            s.closing_speed[keep].tolist(),
            s.shielded[keep].tolist(),
            s.ttc_if_stops[keep].tolist(),
            strict=True,
        )
        cams = list(camera_names)
        vis = (np.asarray(visible_px)[keep] > 0).tolist() if visible_px is not None and cams else None
        boxes_all = np.asarray(box2d, dtype=np.float64)[keep] if box2d is not None and cams else None
        boxes_list = boxes_all.tolist() if boxes_all is not None else None
        finite_box = np.isfinite(boxes_all).all(-1).tolist() if boxes_all is not None else None
        objects = []
        for k, (oid, ci, r, sc, so, sp, ttc, gmin, tmin, gap, closing, sh, tts) in enumerate(cols):
            name = _CLASS_NAMES[ci]
            seen_idx = [j for j, v in enumerate(vis[k]) if v] if vis is not None else []
            boxes = None
            if seen_idx and boxes_list is not None:
                boxes = {cams[j]: boxes_list[k][j] for j in seen_idx if finite_box[k][j]} or None
            objects.append(
                {
                    "object_id": oid,
                    "cls": name,
                    "cameras": [cams[j] for j in seen_idx],
                    "box2d": boxes,
                    "risk": r,
                    "rank": k + 1,
                    "reason": self._reason(name, sc, so, sp, r, ttc, gmin, tmin, gap, closing, sh, tts),
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
        # construction (repeated ids, inverted boxes, overlong reasons) go through validation, which
        # raises a clear error.
        suspicious = (
            len(np.unique(ids)) != len(ids)
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
        *,
        yaw: np.ndarray | None = None,
        ego_speed_mps: float | None = None,
        **privileged: object,
    ) -> FrameLabel:
        """The label of one frame from plain ego-frame arrays (``[A]``, ``[A, 2]``). ``yaw`` defaults to the
        heading of the velocity (0 when standing), ``ego_speed_mps`` to the speed to the first future
        waypoint; ``privileged``: further :class:`~riskdistill.teacher.conflict.Scene` fields (``route_xy``,
        ``route_limit_mps``, ``path_xy``, ``path_step_m``, ``release_in_m``, ...). Without a route the
        counterfactual path is the recorded future's polyline, extended straight."""
        vel = np.asarray(velocity_xy, dtype=np.float64).reshape(-1, 2)
        if yaw is None:
            moving = np.hypot(vel[:, 0], vel[:, 1]) > 0.5
            yaw = np.where(moving, np.arctan2(vel[:, 1], vel[:, 0]), 0.0)
        fxy = np.asarray(future_xy, dtype=np.float64).reshape(-1, 2)
        if ego_speed_mps is None:
            fv = np.asarray(future_valid, dtype=bool).reshape(-1)
            ok = len(fxy) > 0 and bool(fv[0]) and np.isfinite(fxy[0]).all()
            ego_speed_mps = float(np.hypot(*fxy[0]) / self.config.future_dt_s) if ok else 0.0
        scene = Scene(
            ego_speed_mps=float(ego_speed_mps),
            center_xy=np.asarray(center_xy, dtype=np.float64).reshape(-1, 2),
            size_lw=np.asarray(size_lw, dtype=np.float64).reshape(-1, 2),
            yaw=np.asarray(yaw, dtype=np.float64).reshape(-1),
            velocity_xy=vel,
            future_xy=fxy,
            future_valid=future_valid,
            **privileged,  # type: ignore[arg-type]
        )
        return self.label_scene(frame_id, actor_id, actor_class, scene, camera_names, visible_px, box2d)

    def label_annotation(self, frame_id: str, annotation: dict, ego_speed_mps: float) -> FrameLabel:
        """The label of an annotation mapping (a recorded frame's, or one made in memory without cameras)."""
        a = annotation
        cams = tuple(str(x) for x in a["camera_names"]) if "camera_names" in a else ()
        vis = a["actor_visible_px"] if cams and "actor_visible_px" in a else None
        box = a["actor_box2d"] if cams and "actor_box2d" in a else None
        scene = scene_from_annotation(a, ego_speed_mps)
        return self.label_scene(frame_id, a["actor_id"], a["actor_class"], scene, cams, vis, box)

    def label(self, frame: FrameRecord) -> FrameLabel:
        """The label of a recorded frame (annotation keys of ``ORACLE_KEYS`` plus the optional privileged
        ones; the ego speed from the frame's metadata)."""
        from riskdistill.data.format import OPTIONAL_ANNOTATION_KEY_NAMES
        from riskdistill.data.storage import annotation_fields

        a = annotation_fields(frame, ORACLE_KEYS, "oracle teacher")
        ann = frame.annotation
        for key in (*OPTIONAL_ANNOTATION_KEY_NAMES, *ORACLE_OPTIONAL_KEYS):
            if key in ann:
                a[key] = ann[key]
        return self.label_annotation(frame.frame_id, a, float(frame.ego.speed_mps))


#: Annotation keys the oracle needs (plus the optional privileged keys of ``data.format`` when present).
ORACLE_KEYS = (
    "actor_id",
    "actor_class",
    "actor_behavior",
    "actor_center_ego",
    "actor_size_lwh",
    "actor_yaw_ego",
    "actor_velocity_ego",
    "future_xy",
    "future_valid",
    "camera_names",
    "actor_visible_px",
    "actor_box2d",
)
ORACLE_OPTIONAL_KEYS = (
    "ego_size_lwh",
    "ego_center_ego",
    "route_next_stop_distance_m",
    "route_next_light_state",
)
