"""Image-space heatmaps -> BEV by ground-plane inverse perspective mapping (IPM).

For teachers that answer with a per-pixel risk heatmap instead of per-object scores: every BEV cell centre
``(x, y, z_m)`` of the :class:`~riskdistill.geometry.BevGrid` (on the ground, ``z_m = 0``) is projected
into each camera (``K``, ``T_ego_from_cam``); where it lands in front of the camera and inside the image,
the camera's heatmap is sampled bilinearly (pixel ``u`` covers ``[u, u + 1)``, so its centre is
``u + 0.5``); cameras are combined by max; cells no camera sees stay 0.

A heatmap smaller than the image (a model's output stride) is handled by scaling ``K`` with the size
ratio (``image_hw`` = the size ``K`` was made for). Anything standing above the ground (a car's roof)
is smeared along the viewing ray: IPM is exact only for risk painted on the ground, such as a
pedestrian's feet or a road-edge band.
"""

from __future__ import annotations

import numpy as np

from riskdistill.geometry import BevGrid


def bilinear_sample(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``image [H, W]`` at continuous pixel coordinates (pixel centres at ``+0.5``) -> values and a
    validity mask (inside the image); border pixels are clamped within half a pixel of the edge."""
    h, w = image.shape
    x = u - 0.5
    y = v - 0.5
    inside = (u >= 0.0) & (u <= w) & (v >= 0.0) & (v <= h) & np.isfinite(u) & np.isfinite(v)
    x = np.clip(np.where(inside, x, 0.0), 0.0, w - 1.0)
    y = np.clip(np.where(inside, y, 0.0), 0.0, h - 1.0)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    img = np.asarray(image, dtype=np.float64)
    val = (
        img[y0, x0] * (1 - fx) * (1 - fy)
        + img[y0, x1] * fx * (1 - fy)
        + img[y1, x0] * (1 - fx) * fy
        + img[y1, x1] * fx * fy
    )
    return np.where(inside, val, 0.0), inside


def project_heatmaps_to_bev(
    heatmaps: np.ndarray,
    K: np.ndarray,
    T_ego_from_cam: np.ndarray,
    grid: BevGrid,
    image_hw: tuple[int, int] | None = None,
    z_m: float = 0.0,
    near_m: float = 0.5,
) -> np.ndarray:
    """BEV map ``[H_bev, W_bev]`` float32 from per-camera heatmaps ``[N, Hh, Wh]`` (or ``[Hh, Wh]`` for one
    camera), intrinsics ``K [N, 3, 3]`` for images of ``image_hw`` (default: the heatmap size) and
    extrinsics ``T_ego_from_cam [N, 4, 4]`` (OpenCV camera -> ego). Points closer than ``near_m`` to a
    camera plane are ignored."""
    hm = np.asarray(heatmaps, dtype=np.float64)
    if hm.ndim == 2:
        hm = hm[None]
    K = np.asarray(K, dtype=np.float64).reshape(-1, 3, 3)
    T = np.asarray(T_ego_from_cam, dtype=np.float64).reshape(-1, 4, 4)
    if not len(hm) == len(K) == len(T):
        raise ValueError(f"heatmaps {hm.shape}, K {K.shape} and T_ego_from_cam {T.shape} differ in cameras")
    centres = grid.cell_centers().reshape(-1, 2)  # [C, 2]
    pts = np.concatenate([centres, np.full((len(centres), 1), z_m), np.ones((len(centres), 1))], axis=1)
    out = np.zeros(len(centres))
    for n in range(len(hm)):
        hh, wh = hm[n].shape
        k = K[n].copy()
        if image_hw is not None:
            sy, sx = hh / image_hw[0], wh / image_hw[1]
            k[0] *= sx
            k[1] *= sy
        p = pts @ np.linalg.inv(T[n]).T  # [C, 4] in the camera frame
        depth = p[:, 2]
        front = depth > near_m
        safe = np.where(front, depth, 1.0)
        u = k[0, 0] * p[:, 0] / safe + k[0, 1] * p[:, 1] / safe + k[0, 2]
        v = k[1, 1] * p[:, 1] / safe + k[1, 2]
        val, inside = bilinear_sample(hm[n], u, v)
        out = np.maximum(out, np.where(front & inside, val, 0.0))
    return out.reshape(grid.shape).astype(np.float32)
