"""Camera mosaics: six surround cameras in two rows (front-left, front, front-right / back row), any other
camera in rows below, each tile labelled with its camera's name."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FRONT_ROW = ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT")
BACK_ROW = ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT")
LABEL_BG = (0, 0, 0)
LABEL_FG = (255, 255, 255)
MISSING_FG = (255, 140, 140)


def _label_tile(tile: np.ndarray, text: str, color: tuple[int, int, int]) -> np.ndarray:
    """``tile`` with ``text`` on a black box at its top-left corner; unchanged when the text does not fit."""
    font = ImageFont.load_default()
    im = Image.fromarray(tile)
    draw = ImageDraw.Draw(im)
    left, top, right, bottom = draw.textbbox((3, 2), text, font=font)
    if right + 3 > im.width or bottom + 3 > im.height // 2:
        return tile
    draw.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill=LABEL_BG)
    draw.text((3, 2), text, fill=color, font=font)
    return np.asarray(im)


def render_camera_mosaic(
    rgb: np.ndarray, camera_names: tuple[str, ...] | list[str], labels: bool = True
) -> np.ndarray:
    """``rgb [N_cam, H, W, 3]`` -> one image. Known surround names go in their usual place (two rows); other
    cameras (e.g. ``CAM_FRONT_TELE``) follow in order, three per row; a missing (dropped) surround camera
    leaves a black tile. With ``labels`` each
    tile shows its camera's name (``(missing)`` on a dropped one) when the tile is large enough for it."""
    names = list(camera_names)
    n, h, w, _ = rgb.shape
    if len(names) != n:
        raise ValueError(f"got {n} images but {len(names)} camera names")
    surround = set(FRONT_ROW + BACK_ROW)
    others = [c for c in names if c not in surround]
    layout = [list(FRONT_ROW), list(BACK_ROW)] if len(others) < n else []
    layout += [others[i : i + 3] for i in range(0, len(others), 3)]
    rows = []
    for row in layout:
        tiles = []
        for c in row:
            present = c in names
            tile = np.ascontiguousarray(rgb[names.index(c)]) if present else np.zeros((h, w, 3), np.uint8)
            if labels:
                text = c if present else f"{c} (missing)"
                tile = _label_tile(tile, text, LABEL_FG if present else MISSING_FG)
            tiles.append(tile)
        tiles += [np.zeros((h, w, 3), np.uint8)] * (3 - len(tiles))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)
