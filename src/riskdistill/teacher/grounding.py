"""Grounding: the list of objects a teacher judges, each linked to a 3D object of the annotation.

Two sources, one output type (:class:`~riskdistill.teacher.objects.GroundedObject`):

- :func:`ground_truth_objects`: the annotation's actors, with the 2D box (from the renderer's instance
  masks) of the camera where each is most visible; actors with fewer than ``min_visible_px`` pixels in
  every camera are left out (the teacher cannot see them);
- :func:`match_detections`: 2D detections of an open-vocabulary detector (``teacher.detector``), each
  matched to the 3D object whose projected centre is nearest to the detection's box centre, among those
  whose projected 3D box overlaps the detection by at least ``iou_min`` (the IoU gate). The assignment is
  optimal per camera (Hungarian, :func:`scipy.optimize.linear_sum_assignment`). A detection without a
  match gets a negative ``object_id`` (-1, -2, ...); when several cameras see the same actor, the
  highest-scoring detection is kept and the other cameras are listed in ``cameras``.

``object_id`` is the annotation's ``actor_id``: the runner paints each object's risk onto that actor's
BEV footprint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from riskdistill.data.storage import FrameRecord, annotation_fields
from riskdistill.geometry import box3d_corners, project_box_to_image, project_points
from riskdistill.teacher.objects import GroundedObject
from riskdistill.types import ActorClass

DEFAULT_MIN_VISIBLE_PX = 20

_GT_KEYS = (
    "actor_id",
    "actor_class",
    "actor_center_ego",
    "actor_size_lwh",
    "actor_yaw_ego",
    "actor_velocity_ego",
    "actor_visible_px",
    "actor_box2d",
    "camera_names",
)


def class_name(actor_class: int) -> str:
    """Lower-case ``ActorClass`` name (``"unknown"`` for a code this version does not know)."""
    try:
        return ActorClass(int(actor_class)).name.lower()
    except ValueError:
        return "unknown"


def frame_annotation(frame: FrameRecord, keys: Sequence[str], user: str) -> dict[str, np.ndarray]:
    """``{key: frame.annotation[key]}``, or a :class:`DataError` naming the file, the field and ``user``."""
    return annotation_fields(frame, keys, user)


def _annotation(frame: FrameRecord | Mapping[str, np.ndarray], keys: Sequence[str]) -> dict[str, np.ndarray]:
    if isinstance(frame, FrameRecord):
        return frame_annotation(frame, keys, "grounding")
    missing = [k for k in keys if k not in frame]
    if missing:
        raise KeyError(f"grounding: annotation is missing field(s) {missing}")
    return {k: np.asarray(frame[k]) for k in keys}


def _ego_speed(frame: FrameRecord | Mapping[str, np.ndarray], ego_speed_mps: float | None) -> float:
    if ego_speed_mps is not None:
        return float(ego_speed_mps)
    if isinstance(frame, FrameRecord):
        return float(frame.ego.speed_mps)
    return float(np.asarray(frame.get("ego_speed_mps", 0.0)))


def _closing_speed(center_xy: np.ndarray, velocity_xy: np.ndarray, ego_speed_mps: float) -> np.ndarray:
    """Rate at which the distance to the ego origin shrinks ``[A]`` (positive = approaching); the ego
    moves along +x at ``ego_speed_mps``."""
    rel_v = velocity_xy - np.array([ego_speed_mps, 0.0])
    dist = np.maximum(np.linalg.norm(center_xy, axis=-1), 1e-6)
    return -(center_xy * rel_v).sum(-1) / dist


def _object(
    ann: dict[str, np.ndarray],
    a: int,
    camera: str,
    box2d: Sequence[float],
    confidence: float,
    cameras: Sequence[str],
    closing: float,
    cls: str | None = None,
    extras: dict | None = None,
) -> GroundedObject:
    c = np.asarray(ann["actor_center_ego"][a], dtype=np.float64)
    v = np.asarray(ann["actor_velocity_ego"][a], dtype=np.float64)
    s = np.asarray(ann["actor_size_lwh"][a], dtype=np.float64)
    return GroundedObject(
        object_id=int(ann["actor_id"][a]),
        cls=cls if cls is not None else class_name(int(ann["actor_class"][a])),
        camera=camera,
        box2d=tuple(float(b) for b in box2d),  # type: ignore[arg-type]
        confidence=float(confidence),
        cameras=tuple(cameras),
        center_xy_m=(float(c[0]), float(c[1])),
        distance_m=float(np.hypot(c[0], c[1])),
        velocity_xy_mps=(float(v[0]), float(v[1])),
        closing_speed_mps=float(closing),
        size_lw_m=(float(s[0]), float(s[1])),
        yaw_rad=float(ann["actor_yaw_ego"][a]),
        extras=extras or {},
    )


def ground_truth_objects(
    frame: FrameRecord | Mapping[str, np.ndarray],
    min_visible_px: int = DEFAULT_MIN_VISIBLE_PX,
    max_distance_m: float | None = None,
    ego_speed_mps: float | None = None,
) -> list[GroundedObject]:
    """Visible actors of a frame, nearest first (ties by id).

    ``frame``: a recorded frame, or a mapping with the annotation keys ``actor_*`` and ``camera_names``
    (``ego_speed_mps`` optional). An actor is kept when some camera sees at least ``min_visible_px`` of
    its pixels (``actor_visible_px [A, N]``); its ``camera`` / ``box2d`` are those of the camera with the
    most pixels, ``cameras`` every camera with at least ``min_visible_px``. ``max_distance_m`` drops
    farther actors. The closing speed assumes the ego moves along +x at its current speed.
    """
    ann = _annotation(frame, _GT_KEYS)
    cams = [str(c) for c in ann["camera_names"]]
    vis = np.asarray(ann["actor_visible_px"]).reshape(len(ann["actor_id"]), len(cams))
    boxes = np.asarray(ann["actor_box2d"], dtype=np.float64).reshape(len(ann["actor_id"]), len(cams), 4)
    center = np.asarray(ann["actor_center_ego"], dtype=np.float64).reshape(-1, 3)[:, :2]
    vel = np.asarray(ann["actor_velocity_ego"], dtype=np.float64).reshape(-1, 2)
    closing = _closing_speed(center, vel, _ego_speed(frame, ego_speed_mps))
    dist = np.linalg.norm(center, axis=-1)
    seen = (vis >= max(int(min_visible_px), 1)) & np.isfinite(boxes).all(-1)  # [A, N]
    keep = seen.any(axis=1)
    if max_distance_m is not None:
        keep &= dist <= max_distance_m
    idx = np.flatnonzero(keep)
    idx = idx[np.lexsort((np.asarray(ann["actor_id"])[idx], dist[idx]))]
    out = []
    for a in idx.tolist():
        best = int(np.argmax(np.where(seen[a], vis[a], -1)))
        cameras = [cams[j] for j in np.flatnonzero(seen[a])]
        out.append(
            _object(ann, a, cams[best], boxes[a, best], 1.0, cameras, closing[a], extras={"source": "gt"})
        )
    return out


# ------------------------------------------------------------------------------------------ detections
@dataclass(frozen=True)
class Detection:
    """One 2D detection: ``box2d`` ``[x0, y0, x1, y1]`` pixels in ``camera``'s image, open-vocabulary
    ``label`` (a class name) and ``score`` in [0, 1]."""

    camera: str
    box2d: tuple[float, float, float, float]
    label: str
    score: float


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a [D, 4]`` x ``b [A, 4]`` (``x0, y0, x1, y1``) -> ``[D, A]``; NaN boxes give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(ix, 0.0, None) * np.clip(iy, 0.0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0.0, None) * np.clip(a[:, 3] - a[:, 1], 0.0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0.0, None) * np.clip(b[:, 3] - b[:, 1], 0.0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.nan_to_num(iou, nan=0.0)


def match_boxes(
    det_boxes: np.ndarray,
    proj_centers: np.ndarray,
    proj_boxes: np.ndarray,
    iou_min: float = 0.1,
    max_center_px: float | None = None,
    method: str = "hungarian",
) -> np.ndarray:
    """Match detections to projected 3D objects in one camera -> ``[D]`` object index (-1: unmatched).

    ``det_boxes [D, 4]``; ``proj_centers [A, 2]`` (NaN: behind the camera); ``proj_boxes [A, 4]`` the
    projected 3D boxes (NaN: not in the image). Cost = pixel distance between the detection's box centre
    and the projected object centre; pairs with IoU < ``iou_min`` (or a distance above ``max_center_px``)
    are not allowed. ``method``: ``"hungarian"`` (minimum total distance) or ``"greedy"`` (nearest pair
    first).
    """
    det = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    pc = np.asarray(proj_centers, dtype=np.float64).reshape(-1, 2)
    pb = np.asarray(proj_boxes, dtype=np.float64).reshape(-1, 4)
    out = np.full(len(det), -1, dtype=np.int64)
    if len(det) == 0 or len(pc) == 0:
        return out
    centers = np.stack([(det[:, 0] + det[:, 2]) / 2, (det[:, 1] + det[:, 3]) / 2], axis=-1)
    dist = np.linalg.norm(centers[:, None, :] - pc[None, :, :], axis=-1)  # [D, A]
    ok = np.isfinite(dist) & (box_iou(det, pb) >= iou_min)
    if max_center_px is not None:
        ok &= dist <= max_center_px
    if not ok.any():
        return out
    if method == "hungarian":
        from scipy.optimize import linear_sum_assignment

        big = 1e9
        cost = np.where(ok, dist, big)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if ok[r, c]:
                out[r] = c
    elif method == "greedy":
        pairs = np.argwhere(ok)
        order = np.argsort(dist[ok], kind="stable")
        used_d: set[int] = set()
        used_a: set[int] = set()
        for r, c in pairs[order].tolist():
            if r not in used_d and c not in used_a:
                out[r] = c
                used_d.add(r)
                used_a.add(c)
    else:
        raise ValueError(f"match method must be 'hungarian' or 'greedy', got {method!r}")
    return out


def project_objects(
    ann: Mapping[str, np.ndarray], camera: int, image_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Projected centres ``[A, 2]`` and projected 3D boxes ``[A, 4]`` (clipped to the image; NaN when
    behind the camera or outside the image) of every actor in camera ``camera``."""
    K = np.asarray(ann["K"], dtype=np.float64)[camera]
    T_cam_from_ego = np.linalg.inv(np.asarray(ann["T_ego_from_cam"], dtype=np.float64)[camera])
    center = np.asarray(ann["actor_center_ego"], dtype=np.float64).reshape(-1, 3)
    size = np.asarray(ann["actor_size_lwh"], dtype=np.float64).reshape(-1, 3)
    yaw = np.asarray(ann["actor_yaw_ego"], dtype=np.float64).reshape(-1)
    uv, _, _ = project_points(center, K, T_cam_from_ego)
    boxes = np.full((len(center), 4), np.nan)
    corners = box3d_corners(center, size, yaw) if len(center) else np.zeros((0, 8, 3))
    h, w = image_hw
    for a in range(len(center)):
        b = project_box_to_image(corners[a], K, T_cam_from_ego, (w, h))
        if b is not None:
            boxes[a] = b
    return uv, boxes


def match_detections(
    detections: Sequence[Detection],
    frame: FrameRecord | Mapping[str, np.ndarray],
    iou_min: float = 0.1,
    max_center_px: float | None = None,
    method: str = "hungarian",
    ego_speed_mps: float | None = None,
) -> list[GroundedObject]:
    """Ground 2D detections on the frame's 3D objects (see the module docstring) -> one
    :class:`GroundedObject` per matched actor (best-scoring detection, all matching cameras) followed by
    one per unmatched detection (``object_id`` -1, -2, ... in input order; no 3D fields: centre,
    distance and velocity stay 0, ``extras["unmatched"]`` is True). Matched objects
    carry the detector's label as ``cls`` and the annotation class in ``extras["gt_cls"]``; the order is
    nearest first, as :func:`ground_truth_objects`."""
    keys = (*_GT_KEYS, "K", "T_ego_from_cam", "image_hw")
    ann = _annotation(frame, keys)
    cams = [str(c) for c in ann["camera_names"]]
    hw = (int(ann["image_hw"][0]), int(ann["image_hw"][1]))
    center = np.asarray(ann["actor_center_ego"], dtype=np.float64).reshape(-1, 3)[:, :2]
    vel = np.asarray(ann["actor_velocity_ego"], dtype=np.float64).reshape(-1, 2)
    closing = _closing_speed(center, vel, _ego_speed(frame, ego_speed_mps))
    unknown = sorted({d.camera for d in detections} - set(cams))
    if unknown:
        raise ValueError(f"match_detections: detections in unknown camera(s) {unknown}; cameras: {cams}")
    matched: dict[int, list[tuple[float, int, int]]] = {}  # actor index -> [(score, det index, cam)]
    det_actor = np.full(len(detections), -1, dtype=np.int64)
    for ci, cam in enumerate(cams):
        idx = [i for i, d in enumerate(detections) if d.camera == cam]
        if not idx:
            continue
        uv, pboxes = project_objects(ann, ci, hw)
        boxes = np.array([detections[i].box2d for i in idx], dtype=np.float64)
        m = match_boxes(boxes, uv, pboxes, iou_min, max_center_px, method)
        for k, a in zip(idx, m.tolist(), strict=True):
            if a >= 0:
                det_actor[k] = a
                matched.setdefault(a, []).append((detections[k].score, -k, ci))
    out = []
    for a in sorted(matched, key=lambda a: (float(np.hypot(*center[a])), int(ann["actor_id"][a]))):
        cands = sorted(matched[a], reverse=True)
        _, neg_k, ci = cands[0]
        d = detections[-neg_k]
        cameras = [cams[c] for c in sorted({c for _, _, c in cands})]
        out.append(
            _object(
                ann,
                a,
                d.camera,
                d.box2d,
                d.score,
                cameras,
                closing[a],
                cls=d.label,
                extras={"source": "detector", "gt_cls": class_name(int(ann["actor_class"][a]))},
            )
        )
    n_unmatched = 0
    for k, d in enumerate(detections):
        if det_actor[k] >= 0:
            continue
        n_unmatched += 1
        out.append(
            GroundedObject(
                object_id=-n_unmatched,
                cls=d.label,
                camera=d.camera,
                box2d=tuple(float(b) for b in d.box2d),  # type: ignore[arg-type]
                confidence=float(d.score),
                cameras=(d.camera,),
                extras={"source": "detector", "unmatched": True},
            )
        )
    return out
