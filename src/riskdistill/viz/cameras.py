"""Camera mosaics: six surround cameras in two rows (front-left, front, front-right / back row)."""

from __future__ import annotations

import numpy as np

FRONT_ROW = ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT")
BACK_ROW = ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT")


def render_camera_mosaic(rgb: np.ndarray, camera_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """``rgb [N_cam, H, W, 3]`` -> one image. Known surround names go in their usual place; other rigs
    are tiled in order, three per row; a missing (dropped) camera leaves a black tile."""
    names = list(camera_names)
    n, h, w, _ = rgb.shape
    if len(names) != n:
        raise ValueError(f"got {n} images but {len(names)} camera names")
    if set(names) <= set(FRONT_ROW + BACK_ROW):
        layout = [list(FRONT_ROW), list(BACK_ROW)]
    else:
        layout = [names[i : i + 3] for i in range(0, n, 3)]
    rows = []
    for row in layout:
        tiles = [rgb[names.index(c)] if c in names else np.zeros((h, w, 3), np.uint8) for c in row]
        tiles += [np.zeros((h, w, 3), np.uint8)] * (3 - len(tiles))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)
