"""Image-space labels the simulator gives for free: per camera, what each pixel shows and how far it is.

They supervise the image backbone directly (``models/heads/image_aux.py``), which teaches it what cars and
pedestrians look like far faster than the BEV losses alone. Stored at ``1 / IMAGE_LABEL_STRIDE`` of the
recorded resolution, pooled so that small things survive: a label cell shows a vulnerable road user if any
of its pixels does, else a vehicle, else a static obstacle, else the background; its depth is the nearest
surface in it (metres along the optical axis, capped at ``MAX_DEPTH_M``; the sky counts as the cap).
"""

from __future__ import annotations

import numpy as np

from riskdistill.types import ActorClass

IMAGE_LABEL_STRIDE = 4
MAX_DEPTH_M = 80.0
#: ``image_semantics`` classes (0 = map, layout objects, sky).
IMAGE_CLASSES: tuple[str, ...] = ("background", "vehicle", "vulnerable", "static_obstacle")

_GROUP = np.zeros(max(int(c) for c in ActorClass) + 2, dtype=np.uint8)  # last slot: not an actor
for _c in ActorClass:
    _GROUP[int(_c)] = 1 if _c.is_vehicle else 2 if _c.is_vulnerable else 3 if _c.is_static_obstacle else 0


def image_labels(
    instance: np.ndarray, depth: np.ndarray, actor_class: np.ndarray, stride: int = IMAGE_LABEL_STRIDE
) -> dict[str, np.ndarray]:
    """``instance [N, H, W]`` actor indices (-1: not an actor; 0, the ego, counts as background), ``depth
    [N, H, W]`` metres, ``actor_class``
    ``[n_actors]`` -> ``image_semantics [N, H/s, W/s]`` uint8 (:data:`IMAGE_CLASSES`) and ``image_depth_m``
    ``[N, H/s, W/s]`` float16 (H and W are cropped to multiples of ``s``)."""
    n, h, w = instance.shape
    hs, ws = h // stride, w // stride
    inst = instance[:, : hs * stride, : ws * stride]
    cls = np.asarray(actor_class, dtype=np.int64)
    idx = np.where(inst > 0, np.minimum(inst, len(cls) - 1), -1)  # index 0 is the ego itself
    group = np.where(idx >= 0, _GROUP[np.clip(cls[np.maximum(idx, 0)], 0, len(_GROUP) - 1)], 0)
    blocks = group.reshape(n, hs, stride, ws, stride)
    sem = np.zeros((n, hs, ws), dtype=np.uint8)
    for k in (3, 1, 2):  # later classes win: vulnerable > vehicle > static obstacle
        sem[(blocks == k).any(axis=(2, 4))] = k
    d = np.nan_to_num(depth[:, : hs * stride, : ws * stride], nan=MAX_DEPTH_M, posinf=MAX_DEPTH_M)
    near = np.clip(d, 0.0, MAX_DEPTH_M).reshape(n, hs, stride, ws, stride).min(axis=(2, 4))
    return {"image_semantics": sem, "image_depth_m": near.astype(np.float16)}
