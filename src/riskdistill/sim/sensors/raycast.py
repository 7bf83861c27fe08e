"""Analytic ray casting of a flat world with yawed boxes: the compiled (Numba) kernel.

Everything here works in the ego frame (x forward, y left, z up, origin on the ground below the rear axle).
For each pixel centre ``(u + 0.5, v + 0.5)`` the ray is ``o + t * d`` with ``o`` the camera centre and
``d = R_ego_from_cam @ ((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1)``; since ``d`` has unit component
along the optical axis, the ray parameter ``t`` IS the depth along the optical axis.

* Background: the cameras are rigidly mounted and the ground is the plane z = 0, so what each pixel sees
  without boxes never changes with the ego's motion: its ground hit point in the ego frame (or sky), its
  depth and its fog factor. :func:`camera_background` computes those once per rig (and the sky colours and a
  ground colour table once per weather). Per frame a ground pixel only moves its hit point to the world
  frame with the ego pose, looks up the material in the baked :class:`GroundRaster` and reads its colour
  from ``ground_lut[material, fog level]``.
* Boxes ("items": actors, poles, traffic-light heads and lamps): the slab test in each box's own frame. The
  entering face picks one of six per-face colours; side faces may carry two horizontal bands (tyres and
  windows of vehicles, trousers of pedestrians) that scale the colour; fog ``exp(-sigma * distance)``.
* Culling: :func:`screen_rects` projects each box (clipped to the near plane) to a conservative pixel
  rectangle and the kernel tests only the pixels inside it (z-buffer style), never every box per pixel.

:mod:`riskdistill.sim.sensors.oracle` is the NumPy reference: the same arithmetic in the same order on every
pixel and every box (no culling), so instance ids and depths match the kernel exactly and RGB to within one
level (``exp`` may round differently).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

NEAR_M = 0.05  # box hits closer than this to the camera plane are ignored
N_FACES = 6  # +x (front), -x (back), +y (left), -y (right), +z (top), -z (bottom)
FOG_LEVELS = 256  # ground fog factors are quantised to this many levels (< 0.5 RGB level of error)
TILE_SHIFT = 3  # the ground raster is stored in 8 x 8 tiles (64 bytes = one cache line)
TILE = 1 << TILE_SHIFT
TILE_MASK = TILE - 1
FAR_CELL = float(2**40)  # ground cells beyond this index (rays grazing the horizon) are grass


@dataclass
class Background:
    """Per-pixel constants of a rig ([C, H, W] arrays), see the module docstring.

    ``depth`` float32 (inf for sky), ``hit`` float32 [C, H, W, 2] ego-frame ground hit (0 for sky),
    ``dist`` float32 distance from the camera centre to the hit (inf for sky), ``elev`` float32 sine of the
    ray's elevation. About 26 MB for 6 cameras at 256 x 704.
    """

    depth: np.ndarray
    hit: np.ndarray
    dist: np.ndarray
    elev: np.ndarray


@dataclass
class Scene:
    """Everything one frame's ray casting needs, as packed arrays.

    Cameras (C): ``cam_rot`` [C, 3, 3] R_ego_from_cam, ``cam_o`` [C, 3] centres, ``cam_f`` [C, 4]
    (fx, fy, cx, cy); images are ``height`` x ``width``.
    Background (:func:`camera_background`, :func:`weather_layers`): ``bg_depth`` [C, H, W] float32,
    ``bg_hit`` [C, H, W, 2] float32, ``bg_fogq`` [C, H, W] uint8 fog level, ``bg_sky`` [C, H, W, 3] uint8
    sky colour (used where ``bg_depth`` is inf).
    Items (M): ``item_xy`` [M, 2] box centre, ``item_cs`` [M, 2] (cos, sin) of the yaw in the ego frame,
    ``item_half`` [M, 2] half length / half width, ``item_z`` [M, 2] bottom / top, ``item_rgb`` [M, 6, 3]
    lit face colours, ``item_band`` [M, 5] ``(z_lo, f_lo, z_hi0, z_hi1, f_hi)``: side faces below ``z_lo``
    are scaled by ``f_lo``, between ``z_hi0`` and ``z_hi1`` by ``f_hi``; ``item_inst`` [M] instance ids;
    ``rects`` [C, M, 4] pixel rectangles ``(u0, u1, v0, v1)`` (end exclusive) from :func:`screen_rects`.
    Ground: ``raster`` flat uint8 material ids of the tiled mip levels and ``levels`` [L, 3] their
    (offset, tile rows, tile columns) (:func:`pack_levels`), ``bg_level`` [C, H, W] uint8 the level each
    pixel samples (:func:`mip_levels`), ``ground_geo`` (x0, y0, 1 / resolution) of level 0, ``ego_pose``
    (x, y, cos yaw, sin yaw) of the ego origin in the world, ``ground_lut`` [n_materials, FOG_LEVELS, 3]
    uint8 colour per material and fog level. Fog on boxes: ``fog_rgb`` [3], ``fog`` [sigma per metre,
    sky_fog].
    """

    height: int
    width: int
    cam_rot: np.ndarray
    cam_o: np.ndarray
    cam_f: np.ndarray
    bg_depth: np.ndarray
    bg_hit: np.ndarray
    bg_fogq: np.ndarray
    bg_level: np.ndarray
    bg_sky: np.ndarray
    item_xy: np.ndarray
    item_cs: np.ndarray
    item_half: np.ndarray
    item_z: np.ndarray
    item_rgb: np.ndarray
    item_band: np.ndarray
    item_inst: np.ndarray
    rects: np.ndarray
    raster: np.ndarray
    levels: np.ndarray
    ground_geo: np.ndarray
    ego_pose: np.ndarray
    ground_lut: np.ndarray
    fog_rgb: np.ndarray
    fog: np.ndarray

    @property
    def n_cameras(self) -> int:
        return int(self.cam_rot.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_xy.shape[0])


# ------------------------------------------------------------------------------------------ per rig / weather
def pixel_rays(
    cam_rot: np.ndarray, cam_f: np.ndarray, height: int, width: int, c: int
) -> tuple[np.ndarray, ...]:
    """Ray directions (dx, dy, dz), each [H, W], of camera ``c``, in the kernel's arithmetic order."""
    R = cam_rot[c]
    fx, fy, cx, cy = cam_f[c]
    b = ((np.arange(height) + 0.5 - cy) * (1.0 / fy))[:, None]
    a = ((np.arange(width) + 0.5 - cx) * (1.0 / fx))[None, :]
    px, py, pz = R[0, 1] * b + R[0, 2], R[1, 1] * b + R[1, 2], R[2, 1] * b + R[2, 2]
    return R[0, 0] * a + px, R[1, 0] * a + py, R[2, 0] * a + pz


def camera_background(
    cam_rot: np.ndarray, cam_o: np.ndarray, cam_f: np.ndarray, height: int, width: int
) -> Background:
    """What every pixel sees of the flat ground or the sky (weather independent)."""
    C = cam_rot.shape[0]
    depth = np.empty((C, height, width), dtype=np.float32)
    hit = np.zeros((C, height, width, 2), dtype=np.float32)
    dist = np.empty((C, height, width), dtype=np.float32)
    elev = np.empty((C, height, width), dtype=np.float32)
    for c in range(C):
        dx, dy, dz = pixel_rays(cam_rot, cam_f, height, width, c)
        ox, oy, oz = cam_o[c]
        down = dz < 0.0
        t = np.where(down, -oz / np.where(down, dz, -1.0), np.inf)
        norm = np.sqrt(dx * dx + dy * dy + dz * dz)
        depth[c] = t
        hit[c, ..., 0] = np.where(down, ox + t * dx, 0.0)
        hit[c, ..., 1] = np.where(down, oy + t * dy, 0.0)
        dist[c] = t * norm
        elev[c] = dz / norm
    return Background(depth, hit, dist, elev)


def tile_raster(material: np.ndarray) -> np.ndarray:
    """Material raster [R, Q] -> tiles [ceil(R / 8), ceil(Q / 8), 8, 8] (padded with 0 = grass): neighbouring
    cells in any direction then mostly share a cache line, which keeps far-away ground lookups cheap."""
    R, Q = material.shape
    pr, pq = -R % TILE, -Q % TILE
    padded = np.pad(material, ((0, pr), (0, pq)))
    tiles = padded.reshape((R + pr) // TILE, TILE, (Q + pq) // TILE, TILE).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(tiles)


def pack_levels(levels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A mip pyramid as one flat uint8 array of tiled levels plus a table [L, 3] of
    (offset, tile rows, tile columns) per level."""
    tiled = [tile_raster(m) for m in levels]
    sizes = [t.size for t in tiled]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    table = np.array(
        [[o, t.shape[0], t.shape[1]] for o, t in zip(offsets, tiled, strict=True)], dtype=np.int64
    )
    return np.concatenate([t.ravel() for t in tiled]), table


def mip_levels(bg: Background, cam_f: np.ndarray, resolution_m: float, n_levels: int) -> np.ndarray:
    """Per-pixel mip level uint8 [C, H, W]: level l has cells 2**l times larger, picked so a cell is about as
    large as the pixel's ground footprint: the geometric mean of its width across the view (distance / focal
    length) and its length along it (that width / sin(elevation))."""
    f = cam_f[:, 0][:, None, None]
    ground = np.isfinite(bg.dist)
    dist = np.where(ground, bg.dist, 0.0)
    sin_el = np.maximum(np.abs(bg.elev), 1e-6)
    ratio = dist / f / resolution_m / np.sqrt(sin_el)
    level = np.floor(np.log2(np.maximum(ratio, 1.0)))
    return np.where(ground, np.clip(level, 0, n_levels - 1), 0).astype(np.uint8)


def to_u8(x: np.ndarray) -> np.ndarray:
    """Round half up and clamp to uint8 (the kernel's rounding)."""
    return np.clip(np.floor(np.asarray(x) + 0.5), 0.0, 255.0).astype(np.uint8)


def weather_layers(
    bg: Background, palette: np.ndarray, sky: np.ndarray, fog_rgb: np.ndarray, fog: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weather-dependent per-pixel constants: (fog level uint8 [C, H, W], sky colour uint8 [C, H, W, 3],
    ground colour table uint8 [n_materials, FOG_LEVELS, 3]). ``sky`` [2, 3] is (horizon, zenith)."""
    sigma, sky_fog = float(fog[0]), float(fog[1])
    with np.errstate(invalid="ignore"):
        keep = np.where(
            np.isfinite(bg.dist), np.exp(-sigma * np.where(np.isfinite(bg.dist), bg.dist, 0.0)), 0.0
        )
    fogq = to_u8(keep * (FOG_LEVELS - 1))
    q = 1.0 - bg.elev
    w = np.where(bg.elev > 0.0, 1.0 - q * q * q, 0.0)[..., None]
    sky_rgb = to_u8((sky[0] + (sky[1] - sky[0]) * w) * (1.0 - sky_fog) + fog_rgb * sky_fog)
    level = (np.arange(FOG_LEVELS) / (FOG_LEVELS - 1))[None, :, None]
    lut = to_u8(palette[:, None, :] * level + fog_rgb[None, None, :] * (1.0 - level))
    return fogq, sky_rgb, lut


# ------------------------------------------------------------------------------------------ culling
_BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
)
_CORNER_SIGNS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])


@numba.njit(cache=True)
def _screen_rects(
    item_xy, item_cs, item_half, item_z, cam_rot, cam_o, cam_f, height, width, edges, signs, out
):
    pc = np.empty((8, 3))
    for m in range(item_xy.shape[0]):
        cs, sn = item_cs[m, 0], item_cs[m, 1]
        for c in range(cam_rot.shape[0]):
            R = cam_rot[c]
            fx, fy, cx, cy = cam_f[c, 0], cam_f[c, 1], cam_f[c, 2], cam_f[c, 3]
            for j in range(8):  # corners in camera coordinates: R^T (p - o)
                lx = signs[j % 4, 0] * item_half[m, 0]
                ly = signs[j % 4, 1] * item_half[m, 1]
                px = item_xy[m, 0] + cs * lx - sn * ly - cam_o[c, 0]
                py = item_xy[m, 1] + sn * lx + cs * ly - cam_o[c, 1]
                pz = item_z[m, j // 4] - cam_o[c, 2]
                for i in range(3):
                    pc[j, i] = R[0, i] * px + R[1, i] * py + R[2, i] * pz
            umin, umax, vmin, vmax = 1e18, -1e18, 1e18, -1e18
            found = False
            for j in range(20):  # 8 corners in front of the near plane, then 12 edge crossings
                if j < 8:
                    if pc[j, 2] < NEAR_M:
                        continue
                    x, y, z = pc[j, 0], pc[j, 1], pc[j, 2]
                else:
                    a, b = edges[j - 8, 0], edges[j - 8, 1]
                    if (pc[a, 2] >= NEAR_M) == (pc[b, 2] >= NEAR_M):
                        continue
                    t = (NEAR_M - pc[a, 2]) / (pc[b, 2] - pc[a, 2])
                    x = pc[a, 0] + t * (pc[b, 0] - pc[a, 0])
                    y = pc[a, 1] + t * (pc[b, 1] - pc[a, 1])
                    z = NEAR_M
                u = fx * x / z + cx
                v = fy * y / z + cy
                umin, umax = min(umin, u), max(umax, u)
                vmin, vmax = min(vmin, v), max(vmax, v)
                found = True
            if not found:
                out[c, m, 0] = out[c, m, 1] = out[c, m, 2] = out[c, m, 3] = 0
                continue
            # pixel u is tested iff its centre u + 0.5 can lie in [umin, umax]; 1 px of margin for rounding
            out[c, m, 0] = int(min(max(math.ceil(umin - 0.5) - 1.0, 0.0), width))
            out[c, m, 1] = int(min(max(math.floor(umax - 0.5) + 2.0, 0.0), width))
            out[c, m, 2] = int(min(max(math.ceil(vmin - 0.5) - 1.0, 0.0), height))
            out[c, m, 3] = int(min(max(math.floor(vmax - 0.5) + 2.0, 0.0), height))


def screen_rects(
    item_xy: np.ndarray,
    item_cs: np.ndarray,
    item_half: np.ndarray,
    item_z: np.ndarray,
    cam_rot: np.ndarray,
    cam_o: np.ndarray,
    cam_f: np.ndarray,
    height: int,
    width: int,
) -> np.ndarray:
    """Conservative pixel rectangles [C, M, 4] ``(u0, u1, v0, v1)`` (end exclusive; empty when u0 >= u1 or
    v0 >= v1) of the item boxes, clipped to the near plane.

    The part of a box in front of the near plane is a convex polytope whose vertices are the corners in
    front plus the crossings of the box edges with the plane; a ray entering the box at depth >= ``NEAR_M``
    enters it in that polytope, so its pixel centre lies within the bounds of their projections.
    """
    out = np.zeros((cam_rot.shape[0], item_xy.shape[0], 4), dtype=np.int64)
    _screen_rects(
        item_xy,
        item_cs,
        item_half,
        item_z,
        cam_rot,
        cam_o,
        cam_f,
        height,
        width,
        _BOX_EDGES,
        _CORNER_SIGNS,
        out,
    )
    return out


# ------------------------------------------------------------------------------------------ the kernel
@numba.njit(cache=True, inline="always")
def _slab(lo: float, hi: float, o: float, d: float, face_pos: int, face_neg: int) -> tuple[float, float, int]:
    """One slab: (t_near, t_far, face entered at t_near); t_near > t_far means a miss."""
    if d != 0.0:
        inv = 1.0 / d
        t1 = (lo - o) * inv
        t2 = (hi - o) * inv
        if d > 0.0:
            return t1, t2, face_neg
        return t2, t1, face_pos
    if o < lo or o > hi:
        return math.inf, -math.inf, face_pos
    return -math.inf, math.inf, face_pos


@numba.njit(cache=True, inline="always")
def _to_u8(x: float) -> np.uint8:
    y = math.floor(x + 0.5)
    if y < 0.0:
        y = 0.0
    elif y > 255.0:
        y = 255.0
    return np.uint8(y)


@numba.njit(cache=True, inline="always")
def _ground_material(hx32, hy32, level, ex, ey, ec, es, gx0, gy0, ginv, raster, levels) -> int:
    """Material under the ego-frame ground point (hx, hy) at mip ``level``: world transform, level-0 cell,
    then the cell of that level in its tiles."""
    hx = np.float64(hx32)
    hy = np.float64(hy32)
    col = math.floor((ex + ec * hx - es * hy - gx0) * ginv)
    row = math.floor((ey + es * hx + ec * hy - gy0) * ginv)
    if col < 0.0 or row < 0.0 or col >= FAR_CELL or row >= FAR_CELL:
        return 0
    r, q = int(row) >> level, int(col) >> level
    tr, tq = r >> TILE_SHIFT, q >> TILE_SHIFT
    n_tq = levels[level, 2]
    if tr >= levels[level, 1] or tq >= n_tq:
        return 0
    return raster[
        levels[level, 0]
        + ((tr * n_tq + tq) << (2 * TILE_SHIFT))
        + ((r & TILE_MASK) << TILE_SHIFT)
        + (q & TILE_MASK)
    ]


@numba.njit(parallel=True, cache=True)
def _render_kernel(
    height,
    width,
    cam_rot,
    cam_o,
    cam_f,
    bg_depth,
    bg_hit,
    bg_fogq,
    bg_level,
    bg_sky,
    item_xy,
    item_cs,
    item_half,
    item_z,
    item_rgb,
    item_band,
    item_inst,
    rects,
    raster,
    levels,
    ground_geo,
    ego_pose,
    ground_lut,
    fog_rgb,
    fog,
    scratch_t,
    scratch_k,
    out_rgb,
    out_depth,
    out_inst,
):
    n_cam = cam_rot.shape[0]
    n_items = item_xy.shape[0]
    gx0, gy0, ginv = ground_geo[0], ground_geo[1], ground_geo[2]
    ex, ey, ec, es = ego_pose[0], ego_pose[1], ego_pose[2], ego_pose[3]
    sigma = fog[0]
    for idx in numba.prange(n_cam * height):
        c = idx // height
        v = idx - c * height
        # 1. the background: ground or sky, for the whole row
        for u in range(width):
            out_depth[c, v, u] = bg_depth[c, v, u]
            out_inst[c, v, u] = -1
            if bg_depth[c, v, u] == np.float32(math.inf):
                for ch in range(3):
                    out_rgb[c, v, u, ch] = bg_sky[c, v, u, ch]
            else:
                m = _ground_material(
                    bg_hit[c, v, u, 0], bg_hit[c, v, u, 1], bg_level[c, v, u], ex, ey, ec, es, gx0, gy0, ginv,
                    raster, levels,
                )  # fmt: skip
                q = bg_fogq[c, v, u]
                for ch in range(3):
                    out_rgb[c, v, u, ch] = ground_lut[m, q, ch]
        # 2. boxes: only over the span of the rectangles that cover this row
        lo, hi = width, 0
        for k in range(n_items):
            if rects[c, k, 2] <= v < rects[c, k, 3] and rects[c, k, 0] < rects[c, k, 1]:
                lo = min(lo, rects[c, k, 0])
                hi = max(hi, rects[c, k, 1])
        if lo >= hi:
            continue
        thread = numba.get_thread_id()
        best_t = scratch_t[thread]
        best_k = scratch_k[thread]
        for u in range(lo, hi):
            best_t[u] = bg_depth[c, v, u]
            best_k[u] = -1
        r00, r01, r02 = cam_rot[c, 0, 0], cam_rot[c, 0, 1], cam_rot[c, 0, 2]
        r10, r11, r12 = cam_rot[c, 1, 0], cam_rot[c, 1, 1], cam_rot[c, 1, 2]
        r20, r21, r22 = cam_rot[c, 2, 0], cam_rot[c, 2, 1], cam_rot[c, 2, 2]
        ox, oy, oz = cam_o[c, 0], cam_o[c, 1], cam_o[c, 2]
        cx, ifx = cam_f[c, 2], 1.0 / cam_f[c, 0]
        b = (v + 0.5 - cam_f[c, 3]) * (1.0 / cam_f[c, 1])
        # the ray direction is (px + qx * a, py + qy * a, pz + qz * a) with a = (u + 0.5 - cx) / fx
        px, py, pz = r01 * b + r02, r11 * b + r12, r21 * b + r22
        for k in range(n_items):
            u0, u1, v0, v1 = rects[c, k, 0], rects[c, k, 1], rects[c, k, 2], rects[c, k, 3]
            if v < v0 or v >= v1 or u0 >= u1:
                continue
            cs, sn = item_cs[k, 0], item_cs[k, 1]
            rx, ry = ox - item_xy[k, 0], oy - item_xy[k, 1]
            lx = cs * rx + sn * ry
            ly = -sn * rx + cs * ry
            hl, hw = item_half[k, 0], item_half[k, 1]
            z0, z1 = item_z[k, 0], item_z[k, 1]
            for u in range(u0, u1):
                a = (u + 0.5 - cx) * ifx
                dx = r00 * a + px
                dy = r10 * a + py
                dz = r20 * a + pz
                tn, tf, face = _slab(-hl, hl, lx, cs * dx + sn * dy, 0, 1)
                tny, tfy, facey = _slab(-hw, hw, ly, -sn * dx + cs * dy, 2, 3)
                tnz, tfz, facez = _slab(z0, z1, oz, dz, 4, 5)
                if tny > tn:
                    tn, face = tny, facey
                if tnz > tn:
                    tn, face = tnz, facez
                tf = min(tf, tfy, tfz)
                if tn <= tf and tn >= NEAR_M and tn < best_t[u]:
                    best_t[u] = tn
                    best_k[u] = k * N_FACES + face
        # 3. shade the box pixels
        for u in range(lo, hi):
            kf = best_k[u]
            if kf < 0:
                continue
            k = kf // N_FACES
            f = kf - k * N_FACES
            t = best_t[u]
            a = (u + 0.5 - cx) * ifx
            dx = r00 * a + px
            dy = r10 * a + py
            dz = r20 * a + pz
            scale = 1.0
            if f < 4:
                zh = oz + t * dz
                if zh < item_band[k, 0]:
                    scale = item_band[k, 1]
                elif zh >= item_band[k, 2] and zh < item_band[k, 3]:
                    scale = item_band[k, 4]
            keep = math.exp(-sigma * t * math.sqrt(dx * dx + dy * dy + dz * dz))
            for ch in range(3):
                out_rgb[c, v, u, ch] = _to_u8(item_rgb[k, f, ch] * scale * keep + fog_rgb[ch] * (1.0 - keep))
            out_inst[c, v, u] = item_inst[k]
            out_depth[c, v, u] = t


def alloc_outputs(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    C, H, W = scene.n_cameras, scene.height, scene.width
    return (
        np.empty((C, H, W, 3), dtype=np.uint8),
        np.empty((C, H, W), dtype=np.float32),
        np.empty((C, H, W), dtype=np.int32),
    )


def render_numba(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``scene`` with the compiled kernel: rgb uint8 [C, H, W, 3], depth float32 [C, H, W] (inf for
    sky), instance int32 [C, H, W] (-1 for map and sky)."""
    rgb, depth, inst = alloc_outputs(scene)
    s = scene
    n_threads = numba.get_num_threads()
    scratch_t = np.empty((n_threads, s.width))
    scratch_k = np.empty((n_threads, s.width), dtype=np.int64)
    with numba.parallel_chunksize(
        4
    ):  # rows differ a lot in cost (sky vs. boxes): hand them out in small chunks
        _render_kernel(
            s.height,
            s.width,
            s.cam_rot,
            s.cam_o,
            s.cam_f,
            s.bg_depth,
            s.bg_hit,
            s.bg_fogq,
            s.bg_level,
            s.bg_sky,
            s.item_xy,
            s.item_cs,
            s.item_half,
            s.item_z,
            s.item_rgb,
            s.item_band,
            s.item_inst,
            s.rects,
            s.raster,
            s.levels,
            s.ground_geo,
            s.ego_pose,
            s.ground_lut,
            s.fog_rgb,
            s.fog,
            scratch_t,
            scratch_k,
            rgb,
            depth,
            inst,
        )
    return rgb, depth, inst
