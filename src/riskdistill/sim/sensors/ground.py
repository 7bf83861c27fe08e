"""The ground texture: a top-down material raster baked once per :class:`RoadMap`.

Every camera ray that reaches the ground plane (z = 0) looks up the material of the cell it lands in; the
material's colour comes from a small per-frame palette (so weather changes cost nothing here). The raster is
drawn with PIL in painting order: grass, sidewalks, junction areas, parking strips, driving lanes, zebra
bars, lane markings (dashed white in 3 m dashes), stop lines.

Indexing: cell ``(row, col)`` covers world ``x in [x0 + col * res, x0 + (col + 1) * res)`` and
``y in [y0 + row * res, y0 + (row + 1) * res)``; points outside the raster are grass. Memory is one byte
per cell: the ``junction4`` map (239 m x 239 m with the 20 m margin) takes 5.7 MB at the default 10 cm
(22.8 MB at 5 cm), ``straight`` 1.6 MB, ``highway`` 2.4 MB; the mip pyramid (:attr:`GroundRaster.levels`,
for far-away ground) adds a third. Baking takes about 40 ms, the pyramid about 0.1 s.
"""

from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from PIL import Image, ImageDraw

from riskdistill.sim.roadmap import (
    LaneKind,
    MarkingKind,
    RoadMap,
    dash_polyline,
    zebra_bars,
)

DEFAULT_RESOLUTION_M = 0.1
N_LEVELS = 6  # mip levels: cells of res, 2 res, ..., 32 res
MAX_CELLS = 64_000_000  # larger maps get a coarser raster (64 MB)
MARKING_WIDTH_M = 0.15
STOP_LINE_WIDTH_M = 0.4
DASH_M = 3.0
DASH_GAP_M = 3.0


class Material(IntEnum):
    GRASS = 0
    SIDEWALK = 1
    ROAD = 2
    PARKING = 3
    JUNCTION = 4
    CROSSWALK = 5  # a zebra stripe (the asphalt between stripes is ROAD)
    WHITE_MARKING = 6
    YELLOW_MARKING = 7
    STOP_LINE = 8


N_MATERIALS = len(Material)

# base albedo (RGB 0..255) in full daylight, indexed by Material
MATERIAL_COLORS = np.array(
    [
        (78, 104, 62),  # grass
        (176, 174, 168),  # sidewalk
        (74, 74, 78),  # road
        (88, 86, 100),  # parking
        (80, 80, 84),  # junction
        (228, 228, 224),  # crosswalk stripe
        (222, 222, 218),  # white marking
        (232, 186, 40),  # yellow marking
        (240, 240, 236),  # stop line
    ],
    dtype=np.float64,
)
# materials that are asphalt or paint on asphalt: the ones that a wet road darkens
WET_DARKENED = np.array([False, False, True, True, True, True, True, True, True])


@dataclass(frozen=True)
class GroundRaster:
    """Material ids ``[rows, cols]`` uint8 with origin ``(x0, y0)`` and square cells of ``resolution_m``."""

    material: np.ndarray
    x0: float
    y0: float
    resolution_m: float

    @property
    def nbytes(self) -> int:
        """Bytes of the level-0 raster (the pyramid adds a third)."""
        return int(self.material.nbytes)

    @functools.cached_property
    def levels(self) -> list[np.ndarray]:
        """Mip pyramid: level ``l`` has cells of ``resolution_m * 2**l`` (see :func:`downsample_mode`); its
        cell ``(r, c)`` covers the level-0 cells ``(r << l, c << l)`` to ``((r + 1) << l) - 1``."""
        out = [self.material]
        for _ in range(1, N_LEVELS):
            out.append(downsample_mode(out[-1]))
        return out

    def sample(self, xy: np.ndarray) -> np.ndarray:
        """Level-0 materials at world points ``[..., 2]`` (grass outside), indexed like the renderer."""
        xy = np.asarray(xy, dtype=np.float64)
        inv = 1.0 / self.resolution_m
        col = np.floor((xy[..., 0] - self.x0) * inv)
        row = np.floor((xy[..., 1] - self.y0) * inv)
        rows, cols = self.material.shape
        ok = (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
        out = np.zeros(xy.shape[:-1], dtype=np.uint8)
        out[ok] = self.material[row[ok].astype(np.int64), col[ok].astype(np.int64)]
        return out


def downsample_mode(material: np.ndarray) -> np.ndarray:
    """Halve a material raster: each 2 x 2 block becomes its most frequent material, ties going to the higher
    id (paint over asphalt, so thin markings survive one level longer). Odd edges are padded with grass."""
    R, Q = material.shape
    a = np.pad(material, ((0, R % 2), (0, Q % 2)))
    v = [a[0::2, 0::2], a[0::2, 1::2], a[1::2, 0::2], a[1::2, 1::2]]
    # key = (how many of the 4 share this value) * 16 + value: the max key is the mode, ties to the higher id
    best = np.zeros_like(v[0])
    for i in range(4):
        count = sum((v[i] == v[j]).astype(np.uint8) for j in range(4))
        best = np.maximum(best, count * 16 + v[i])
    best = best % 16
    return np.ascontiguousarray(best.astype(np.uint8))


def _dashes(points: np.ndarray, dash_m: float = DASH_M, gap_m: float = DASH_GAP_M) -> list[np.ndarray]:
    return dash_polyline(points, dash_m, gap_m)


def bake_ground(
    road_map: RoadMap, resolution_m: float = DEFAULT_RESOLUTION_M, margin_m: float = 20.0
) -> GroundRaster:
    """Rasterise the map's ground materials (see the module docstring). Coarsens the cells if the map would
    need more than ``MAX_CELLS``."""
    if resolution_m <= 0:
        raise ValueError(f"bake_ground: resolution_m must be > 0, got {resolution_m}")
    x_min, y_min, x_max, y_max = road_map.bounds(margin_m)
    area = (x_max - x_min) * (y_max - y_min)
    res = max(resolution_m, math.sqrt(area / MAX_CELLS))
    cols = max(1, math.ceil((x_max - x_min) / res))
    rows = max(1, math.ceil((y_max - y_min) / res))
    img = Image.new("L", (cols, rows), int(Material.GRASS))
    draw = ImageDraw.Draw(img)

    def px(points: np.ndarray) -> list[float]:
        p = np.asarray(points, dtype=np.float64)
        # PIL's integer coordinates are pixel centres
        q = np.stack([(p[:, 0] - x_min) / res - 0.5, (p[:, 1] - y_min) / res - 0.5], axis=1)
        return q.ravel().tolist()

    def polygon(points: np.ndarray, mat: Material) -> None:
        if len(points) >= 3:
            draw.polygon(px(points), fill=int(mat), outline=int(mat))

    def line(points: np.ndarray, mat: Material, width_m: float) -> None:
        if len(points) >= 2:
            w = max(1, round(width_m / res))
            draw.line(px(points), fill=int(mat), width=w, joint="curve" if w > 2 else None)

    for poly in road_map.sidewalks:
        polygon(poly, Material.SIDEWALK)
    for junction in road_map.junctions.values():
        polygon(junction.polygon, Material.JUNCTION)
    lanes = sorted(road_map.lanes.values(), key=lambda lane: lane.kind == LaneKind.DRIVING)  # parking first
    for lane in lanes:
        polygon(lane.polygon(), Material.ROAD if lane.kind == LaneKind.DRIVING else Material.PARKING)
    for cw in road_map.crosswalks.values():
        for bar in zebra_bars(cw):
            polygon(bar, Material.CROSSWALK)
    for marking in road_map.markings:
        mat = Material.YELLOW_MARKING if marking.kind == MarkingKind.SOLID_YELLOW else Material.WHITE_MARKING
        pieces = _dashes(marking.polyline) if marking.kind == MarkingKind.DASHED_WHITE else [marking.polyline]
        for piece in pieces:
            line(piece, mat, MARKING_WIDTH_M)
    for sl in road_map.stop_lines.values():
        line(np.stack([sl.p0, sl.p1]), Material.STOP_LINE, STOP_LINE_WIDTH_M)
    material = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    material.setflags(write=False)
    return GroundRaster(material, float(x_min), float(y_min), float(res))


_CACHE: dict[tuple[int, float], tuple[weakref.ref[RoadMap], GroundRaster]] = {}


def ground_raster(road_map: RoadMap, resolution_m: float = DEFAULT_RESOLUTION_M) -> GroundRaster:
    """:func:`bake_ground`, cached per RoadMap object (maps are built once and never edited)."""
    key = (id(road_map), float(resolution_m))
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is road_map:
        return hit[1]
    raster = bake_ground(road_map, resolution_m)
    if len(_CACHE) >= 8:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (weakref.ref(road_map), raster)
    return raster
