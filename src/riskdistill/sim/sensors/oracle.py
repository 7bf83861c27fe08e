"""The NumPy reference renderer: the test oracle of the compiled kernel in :mod:`.raycast`.

Same arithmetic in the same order, vectorised over all pixels of a camera, but it tests EVERY box on EVERY
pixel (no screen-rectangle culling), so comparing it with the kernel also checks that culling never drops
a hit. Instance ids and depths match the kernel exactly; RGB to within one level. About 50x slower.
"""

from __future__ import annotations

import numpy as np

from riskdistill.sim.sensors.raycast import FAR_CELL, NEAR_M, TILE, Scene, alloc_outputs, pixel_rays, to_u8


def unpack_levels(flat: np.ndarray, table: np.ndarray) -> list[np.ndarray]:
    """Inverse of :func:`riskdistill.sim.sensors.raycast.pack_levels` (each level padded to whole tiles)."""
    out = []
    for off, n_tr, n_tq in table:
        tiles = flat[off : off + n_tr * n_tq * TILE * TILE].reshape(n_tr, n_tq, TILE, TILE)
        out.append(tiles.transpose(0, 2, 1, 3).reshape(n_tr * TILE, n_tq * TILE))
    return out


def _slab_np(lo: float, hi: float, o: float, d: np.ndarray, face_pos: int, face_neg: int):
    nz = d != 0.0
    inv = 1.0 / np.where(nz, d, 1.0)
    t1 = (lo - o) * inv
    t2 = (hi - o) * inv
    pos = d > 0.0
    inside = lo <= o <= hi
    tn = np.where(nz, np.where(pos, t1, t2), -np.inf if inside else np.inf)
    tf = np.where(nz, np.where(pos, t2, t1), np.inf if inside else -np.inf)
    face = np.where(nz & pos, face_neg, face_pos)
    return tn, tf, face


def render_numpy(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``scene`` like :func:`riskdistill.sim.sensors.raycast.render_numba` (same outputs)."""
    s = scene
    rgb, depth, inst = alloc_outputs(s)
    pyramid = unpack_levels(s.raster, s.levels)
    gx0, gy0, ginv = s.ground_geo
    ex, ey, ec, es = s.ego_pose
    sigma = s.fog[0]
    for c in range(s.n_cameras):
        dx, dy, dz = pixel_rays(s.cam_rot, s.cam_f, s.height, s.width, c)
        ox, oy, oz = s.cam_o[c]
        best_t = s.bg_depth[c].astype(np.float64)
        best_k = np.full(best_t.shape, -1, dtype=np.int64)
        best_f = np.zeros(best_t.shape, dtype=np.int64)
        for k in range(s.n_items):
            cs, sn = s.item_cs[k]
            rx, ry = ox - s.item_xy[k, 0], oy - s.item_xy[k, 1]
            lx = cs * rx + sn * ry
            ly = -sn * rx + cs * ry
            hl, hw = s.item_half[k]
            z0, z1 = s.item_z[k]
            tn, tf, face = _slab_np(-hl, hl, lx, cs * dx + sn * dy, 0, 1)
            tny, tfy, facey = _slab_np(-hw, hw, ly, -sn * dx + cs * dy, 2, 3)
            tnz, tfz, facez = _slab_np(z0, z1, oz, dz, 4, 5)
            face = np.where(tny > tn, facey, face)
            tn = np.where(tny > tn, tny, tn)
            face = np.where(tnz > tn, facez, face)
            tn = np.where(tnz > tn, tnz, tn)
            tf = np.minimum(np.minimum(tf, tfy), tfz)
            hit = (tn <= tf) & (tn >= NEAR_M) & (tn < best_t)
            best_t = np.where(hit, tn, best_t)
            best_k = np.where(hit, k, best_k)
            best_f = np.where(hit, face, best_f)
        item_px = best_k >= 0
        sky_px = ~item_px & (best_t == np.inf)
        ground_px = ~item_px & ~sky_px
        out = np.zeros((*best_t.shape, 3), dtype=np.uint8)
        # boxes
        kk, ff, tt = best_k[item_px], best_f[item_px], best_t[item_px]
        dxi, dyi, dzi = dx[item_px], dy[item_px], dz[item_px]
        zh = oz + tt * dzi
        band = s.item_band[kk]
        scale = np.where(
            zh < band[:, 0], band[:, 1], np.where((zh >= band[:, 2]) & (zh < band[:, 3]), band[:, 4], 1.0)
        )
        scale = np.where(ff < 4, scale, 1.0)
        keep = np.exp(-sigma * tt * np.sqrt(dxi * dxi + dyi * dyi + dzi * dzi))[:, None]
        out[item_px] = to_u8(s.item_rgb[kk, ff] * scale[:, None] * keep + s.fog_rgb * (1.0 - keep))
        # sky
        out[sky_px] = s.bg_sky[c][sky_px]
        # ground
        hx = s.bg_hit[c, ..., 0][ground_px].astype(np.float64)
        hy = s.bg_hit[c, ..., 1][ground_px].astype(np.float64)
        gcol = np.floor((ex + ec * hx - es * hy - gx0) * ginv)
        grow = np.floor((ey + es * hx + ec * hy - gy0) * ginv)
        level = s.bg_level[c][ground_px].astype(np.int64)
        mat = np.zeros(len(hx), dtype=np.int64)
        for lv, material in enumerate(pyramid):
            sel = (level == lv) & (gcol >= 0) & (grow >= 0) & (gcol < FAR_CELL) & (grow < FAR_CELL)
            r = grow[sel].astype(np.int64) >> lv
            q = gcol[sel].astype(np.int64) >> lv
            ok = (r < material.shape[0]) & (q < material.shape[1])
            idx = np.flatnonzero(sel)[ok]
            mat[idx] = material[r[ok], q[ok]]
        out[ground_px] = s.ground_lut[mat, s.bg_fogq[c][ground_px]]
        rgb[c] = out
        depth[c] = best_t
        inst[c] = np.where(item_px, s.item_inst[np.maximum(best_k, 0)] if s.n_items else -1, -1)
    return rgb, depth, inst
