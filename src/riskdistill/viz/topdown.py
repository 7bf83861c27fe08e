"""Top-down (bird's-eye) rendering of a simulated scene with PIL: map, actors, lights, route, plans, risk.

Pure rendering: nothing here changes the world. One frame of a 100 m x 100 m view at 512 px takes a few
milliseconds (PIL ``ImageDraw`` plus a little NumPy; no matplotlib).

Frames and pixels
-----------------
A :class:`TopDownView` is a square window onto the world. Its centre ``center_xy`` (world metres) lands in
the middle of the image, the world heading ``yaw_rad`` points UP the image and the view's left
(``yaw_rad + pi/2``) points to the image LEFT. ``yaw_rad = pi/2`` therefore shows the world the usual
map way (+x right, +y up); an ego-centred view with ``yaw_rad`` = the ego's yaw shows the ego heading up,
like a :class:`riskdistill.geometry.BevGrid` displayed as an image.

Pixel coordinates are continuous ``(u, v)`` = (column, row), as PIL uses them: the pixel in row ``i`` and
column ``j`` covers ``u`` in ``[j, j + 1)`` and ``v`` in ``[i, i + 1)``; its centre is ``(j + 0.5, i + 0.5)``.
So ``world_to_px(center_xy)`` is ``(size_px / 2, size_px / 2)``, the corner shared by the four middle
pixels.

Typical use::

    view = ego_view(world)
    frames.append(render_topdown(world, view, route=env.route, plan_world=plan_xy))
    save_gif(frames, "episode.gif", fps=10)

For a fixed view (a whole-junction overview) render the static map once with :func:`render_map_layer`
and pass it as ``map_layer=`` to every :func:`render_topdown` call.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from riskdistill.geometry import BevGrid, box_corners_2d
from riskdistill.io import atomic_path
from riskdistill.sim.actors import Behavior
from riskdistill.sim.roadmap import (
    LaneKind,
    MarkingKind,
    RoadMap,
    dash_polyline,
    zebra_bars,
)
from riskdistill.types import ActorClass, LightState

if TYPE_CHECKING:
    from riskdistill.sim.world import World

RGB = tuple[int, int, int]

# ------------------------------------------------------------------------------------------ palette
GROUND_COLOR: RGB = (74, 98, 62)  # grass
SIDEWALK_COLOR: RGB = (178, 178, 172)
DRIVING_COLOR: RGB = (62, 62, 66)
PARKING_COLOR: RGB = (84, 82, 96)
JUNCTION_COLOR: RGB = (68, 68, 72)
ZEBRA_COLOR: RGB = (235, 235, 235)
MARKING_COLORS: dict[MarkingKind, RGB] = {
    MarkingKind.SOLID_WHITE: (225, 225, 225),
    MarkingKind.DASHED_WHITE: (225, 225, 225),
    MarkingKind.SOLID_YELLOW: (236, 192, 40),
}
STOP_LINE_COLOR: RGB = (245, 245, 245)
POLE_COLOR: RGB = (32, 32, 32)
LIGHT_COLORS: dict[LightState, RGB] = {
    LightState.RED: (235, 30, 30),
    LightState.YELLOW: (245, 200, 0),
    LightState.GREEN: (30, 220, 70),
    LightState.OFF: (110, 110, 110),
}
LIGHT_OUTLINE: RGB = (10, 10, 10)
EGO_HIGHLIGHT: RGB = (0, 235, 255)  # bright cyan outline around the ego
STATIC_OBSTACLE_OUTLINE: RGB = (255, 140, 0)
ROUTE_COLOR: RGB = (40, 110, 255)
ROUTE_ALPHA = 0.55
PLAN_COLOR: RGB = (40, 230, 80)
FUTURE_COLOR: RGB = (255, 150, 30)
FUTURE_OUTLINE: RGB = (255, 255, 255)
RISK_MAX_ALPHA = 0.65  # overlay opacity at risk 1 (opacity grows linearly with risk)
TEXT_COLOR: RGB = (255, 255, 255)
TEXT_BG: RGB = (0, 0, 0)

# ------------------------------------------------------------------------------------------ sizes (metres)
MARKING_WIDTH_M = 0.15
DASH_M = 3.0
DASH_GAP_M = 3.0
STOP_LINE_WIDTH_M = 0.4
LIGHT_RADIUS_M = 0.9
PEDESTRIAN_MIN_RADIUS_M = 0.35
DARKEN = 0.45  # outline colour = fill colour * DARKEN
SIMPLIFY_TOL_M = 0.03  # map outlines are simplified to this tolerance (well under a pixel)


# ------------------------------------------------------------------------------------------ the view
@dataclass(frozen=True)
class TopDownView:
    """A square top-down window: ``extent_m`` wide, centred on ``center_xy``, world heading ``yaw_rad`` up.

    See the module docstring for the pixel convention.
    """

    center_xy: tuple[float, float]
    yaw_rad: float = 0.0
    extent_m: float = 80.0
    size_px: int = 512

    def __post_init__(self) -> None:
        cx, cy = (float(v) for v in self.center_xy)
        object.__setattr__(self, "center_xy", (cx, cy))
        object.__setattr__(self, "yaw_rad", float(self.yaw_rad))
        values = (cx, cy, self.yaw_rad, self.extent_m)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"TopDownView: non-finite field in {self}")
        if self.extent_m <= 0:
            raise ValueError(f"TopDownView.extent_m must be > 0, got {self.extent_m}")
        if int(self.size_px) != self.size_px or self.size_px < 8:
            raise ValueError(f"TopDownView.size_px must be an integer >= 8, got {self.size_px}")
        object.__setattr__(self, "size_px", int(self.size_px))

    @property
    def px_per_m(self) -> float:
        return self.size_px / self.extent_m

    @property
    def radius_m(self) -> float:
        """Radius of the circle around ``center_xy`` that contains the whole (square) view."""
        return 0.5 * math.sqrt(2.0) * self.extent_m

    def world_to_px(self, points: Any) -> np.ndarray:
        """World ``[..., 2]`` metres -> continuous pixel ``(u, v)`` = (column, row) ``[..., 2]``."""
        p = np.asarray(points, dtype=np.float64)
        dx, dy = p[..., 0] - self.center_xy[0], p[..., 1] - self.center_xy[1]
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        fwd = c * dx + s * dy
        left = -s * dx + c * dy
        half, k = 0.5 * self.size_px, self.px_per_m
        return np.stack([half - k * left, half - k * fwd], axis=-1)

    def px_to_world(self, px: Any) -> np.ndarray:
        """Inverse of :meth:`world_to_px`: pixel ``(u, v)`` ``[..., 2]`` -> world ``[..., 2]`` metres."""
        q = np.asarray(px, dtype=np.float64)
        half, k = 0.5 * self.size_px, self.px_per_m
        left = (half - q[..., 0]) / k
        fwd = (half - q[..., 1]) / k
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        return np.stack(
            [self.center_xy[0] + c * fwd - s * left, self.center_xy[1] + s * fwd + c * left], axis=-1
        )

    def sees_box(self, lo: np.ndarray, hi: np.ndarray, margin_m: float = 0.0) -> bool:
        """Whether the axis-aligned world box ``[lo, hi]`` may intersect the view (conservative)."""
        c = np.asarray(self.center_xy)
        nearest = np.clip(c, lo, hi)
        return float(np.hypot(*(nearest - c))) <= self.radius_m + margin_m


def ego_view(
    world: World, extent_m: float = 60.0, size_px: int = 384, ahead_fraction: float = 0.25
) -> TopDownView:
    """A view with the ego heading up, centred ``ahead_fraction * extent_m`` ahead of the ego's box centre.

    With the default 0.25 the ego sits three quarters of the way down the image, so more of the road ahead
    is visible than behind.
    """
    if world.actors.n == 0:
        raise ValueError("ego_view: the world has no ego (actor 0)")
    a = world.actors
    x, y, yaw = float(a.x[0]), float(a.y[0]), float(a.yaw[0])
    shift = ahead_fraction * extent_m
    return TopDownView((x + shift * math.cos(yaw), y + shift * math.sin(yaw)), yaw, extent_m, size_px)


# ------------------------------------------------------------------------------------------ drawing helpers
def _flat(px: np.ndarray) -> list[float]:
    return px.reshape(-1).tolist()


def _darken(color: Sequence[int], f: float = DARKEN) -> RGB:
    return (int(color[0] * f), int(color[1] * f), int(color[2] * f))


def _dashes(points: np.ndarray, dash_m: float = DASH_M, gap_m: float = DASH_GAP_M) -> list[np.ndarray]:
    return dash_polyline(points, dash_m, gap_m)


def _simplify(points: np.ndarray, tol_m: float = SIMPLIFY_TOL_M, closed: bool = False) -> np.ndarray:
    """Ramer-Douglas-Peucker: drop vertices within ``tol_m`` of the simplified line (lanes are sampled every
    0.5 m, so straight stretches collapse to their end points and drawing gets much cheaper)."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) <= 3:
        return pts
    if closed:  # split a ring at its two mutually farthest-apart vertices (roughly) and simplify both halves
        j = int(np.argmax(((pts - pts[0]) ** 2).sum(axis=1)))
        if j == 0:
            return pts
        first = _simplify(pts[: j + 1], tol_m)
        second = _simplify(np.concatenate([pts[j:], pts[:1]]), tol_m)
        return np.concatenate([first, second[1:-1]], axis=0)
    keep = np.zeros(len(pts), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, d = pts[i], pts[j] - pts[i]
        rel = pts[i + 1 : j] - a
        norm = math.hypot(d[0], d[1])
        if norm < 1e-12:
            dist = np.hypot(rel[:, 0], rel[:, 1])
        else:
            dist = np.abs(d[0] * rel[:, 1] - d[1] * rel[:, 0]) / norm
        k = int(np.argmax(dist))
        if dist[k] > tol_m:
            m = i + 1 + k
            keep[m] = True
            stack += [(i, m), (m, j)]
    return pts[keep]


@functools.cache
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


# ------------------------------------------------------------------------------------------ map layer
_Style = tuple[str, RGB, RGB | None, float, int]


@dataclass
class _MapPrimitives:
    """The static map as drawing primitives in world metres, in painting order (built once per map).

    Primitive ``k`` has vertices ``points[starts[k]:starts[k + 1]]``, bounding box ``lo[k]``..``hi[k]`` and
    style ``styles[k] = (kind, fill, outline, line_width_m, min_px)`` with kind "polygon", "line" or "pole"
    (a small square drawn at least ``min_px`` wide).
    """

    points: np.ndarray  # [M, 2]
    starts: np.ndarray  # [K + 1]
    lo: np.ndarray  # [K, 2]
    hi: np.ndarray  # [K, 2]
    styles: list[_Style]


def _build_map_primitives(road_map: RoadMap) -> _MapPrimitives:
    items: list[tuple[np.ndarray, _Style]] = []

    def polygon(points: Any, fill: RGB, outline: RGB | None = None, kind: str = "polygon") -> None:
        pts = _simplify(points, closed=True)
        if len(pts) >= 3:
            items.append((pts, (kind, fill, outline, 0.0, 2)))

    def line(points: Any, fill: RGB, width_m: float, min_px: int = 1) -> None:
        pts = _simplify(points)
        if len(pts) >= 2:
            items.append((pts, ("line", fill, None, width_m, min_px)))

    for poly in road_map.sidewalks:
        polygon(poly, SIDEWALK_COLOR, SIDEWALK_COLOR)
    for junction in road_map.junctions.values():
        polygon(junction.polygon, JUNCTION_COLOR, JUNCTION_COLOR)
    lanes = sorted(road_map.lanes.values(), key=lambda lane: lane.kind == LaneKind.DRIVING)  # parking first
    for lane in lanes:
        color = DRIVING_COLOR if lane.kind == LaneKind.DRIVING else PARKING_COLOR
        polygon(lane.polygon(), color, color)  # outline too: no seams between neighbouring lanes
    for cw in road_map.crosswalks.values():
        for bar in zebra_bars(cw):
            polygon(bar, ZEBRA_COLOR)
    for marking in road_map.markings:
        color = MARKING_COLORS.get(marking.kind, MARKING_COLORS[MarkingKind.SOLID_WHITE])
        pieces = _dashes(marking.polyline) if marking.kind == MarkingKind.DASHED_WHITE else [marking.polyline]
        for piece in pieces:
            line(piece, color, MARKING_WIDTH_M)
    for sl in road_map.stop_lines.values():
        line(np.stack([sl.p0, sl.p1]), STOP_LINE_COLOR, STOP_LINE_WIDTH_M, min_px=2)
    for ob in road_map.layout_obstacles:
        # Poles are tiny (0.3 m): drawn as squares of at least 2 px, see render_map_layer.
        polygon(box_corners_2d(ob.center[None], ob.yaw, ob.length_m, ob.width_m)[0], POLE_COLOR, kind="pole")

    if not items:
        return _MapPrimitives(
            np.zeros((0, 2)), np.zeros(1, dtype=np.int64), np.zeros((0, 2)), np.zeros((0, 2)), []
        )
    pts = [p for p, _ in items]
    return _MapPrimitives(
        points=np.concatenate(pts, axis=0),
        starts=np.concatenate([[0], np.cumsum([len(p) for p in pts])]).astype(np.int64),
        lo=np.stack([p.min(axis=0) for p in pts]),
        hi=np.stack([p.max(axis=0) for p in pts]),
        styles=[style for _, style in items],
    )


_MAP_CACHE: dict[int, tuple[weakref.ref[RoadMap], _MapPrimitives]] = {}
_MAP_CACHE_SIZE = 16


def _map_primitives(road_map: RoadMap) -> _MapPrimitives:
    """Primitives of ``road_map``, cached per map object (maps are built once and never edited)."""
    key = id(road_map)
    hit = _MAP_CACHE.get(key)
    if hit is not None and hit[0]() is road_map:
        return hit[1]
    prims = _build_map_primitives(road_map)
    if len(_MAP_CACHE) >= _MAP_CACHE_SIZE:
        _MAP_CACHE.pop(next(iter(_MAP_CACHE)))
    _MAP_CACHE[key] = (weakref.ref(road_map), prims)
    return prims


def clear_map_cache() -> None:
    """Forget the cached map primitives (only needed if a RoadMap is edited after it was first rendered)."""
    _MAP_CACHE.clear()


def render_map_layer(road_map: RoadMap, view: TopDownView) -> Image.Image:
    """The static map seen through ``view`` as an RGB image (size_px x size_px).

    Ground, sidewalks, junction areas, lanes (parking strips in a slightly bluer grey), zebra crossings,
    lane markings (solid/dashed white, solid yellow), stop lines and poles (dark squares). It depends on the
    map and the view only, so a caller with a fixed view can render it once and pass it to
    :func:`render_topdown`. The map's drawing primitives are cached per RoadMap object.
    """
    n = view.size_px
    img = Image.new("RGB", (n, n), GROUND_COLOR)
    prims = _map_primitives(road_map)
    if not prims.styles:
        return img
    draw = ImageDraw.Draw(img)
    # Cull whole primitives against the view's bounding circle, then project every vertex at once.
    c = np.asarray(view.center_xy)
    nearest = np.clip(c, prims.lo, prims.hi)
    visible = np.hypot(*(nearest - c).T) <= view.radius_m + 1.0
    px = view.world_to_px(prims.points)
    k = view.px_per_m
    for i in np.flatnonzero(visible):
        kind, fill, outline, width_m, min_px = prims.styles[i]
        q = px[prims.starts[i] : prims.starts[i + 1]]
        if kind == "pole" and max(np.ptp(q[:, 0]), np.ptp(q[:, 1])) < min_px:
            u, v = q.mean(axis=0)  # smaller than min_px: a min_px square
            h = 0.5 * min_px
            draw.rectangle((u - h, v - h, u + h, v + h), fill=fill)
        elif kind in ("polygon", "pole"):
            draw.polygon(q.ravel().tolist(), fill=fill, outline=outline)
        else:
            w = max(min_px, round(width_m * k))
            draw.line(q.ravel().tolist(), fill=fill, width=w, joint="curve" if w > 2 else None)
    return img


# ------------------------------------------------------------------------------------------ dynamic layers
def render_route(img: Image.Image, view: TopDownView, points: np.ndarray) -> None:
    """Blend the route polyline (world ``[P, 2]``) into ``img`` in place: thin, translucent blue."""
    if len(points) < 2:
        return
    px = view.world_to_px(points)
    width = max(2, round(0.5 * view.px_per_m))
    n = view.size_px
    u0, v0 = (max(0, math.floor(val) - width) for val in px.min(axis=0))
    u1, v1 = (min(n, math.ceil(val) + width) for val in px.max(axis=0))
    if u1 <= u0 or v1 <= v0:
        return  # entirely outside the view
    # Draw the opacity mask for the bounding box only; one paste blends the whole line uniformly.
    mask = Image.new("L", (u1 - u0, v1 - v0), 0)
    ImageDraw.Draw(mask).line(
        (px - [u0, v0]).ravel().tolist(), fill=round(255 * ROUTE_ALPHA), width=width, joint="curve"
    )
    img.paste(ROUTE_COLOR, (u0, v0, u1, v1), mask)


def _route_points(route: Any) -> np.ndarray:
    """Route points ``[P, 2]`` from a :class:`~riskdistill.sim.route.Route`, a ``Path`` or an array."""
    obj = getattr(route, "path", route)
    obj = getattr(obj, "points", obj)
    pts = np.asarray(obj, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"route: expected points [P, 2], got {pts.shape}")
    return pts


def _points_2d(name: str, points: Any) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{name}: expected world-frame points [N, 2], got {pts.shape}")
    return pts[np.isfinite(pts).all(axis=1)]


def _risk_colors(risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heat colours ``[H, W, 3]`` (yellow at low risk -> red at high risk) and opacity ``[H, W]``, uint8."""
    r = np.clip(np.nan_to_num(np.asarray(risk, dtype=np.float32), nan=0.0), 0.0, 1.0)
    heat = np.empty((*r.shape, 3), dtype=np.uint8)
    heat[..., 0] = 255
    heat[..., 1] = np.round(230.0 * (1.0 - r)).astype(np.uint8)
    heat[..., 2] = 0
    alpha = np.round(255.0 * RISK_MAX_ALPHA * r).astype(np.uint8)
    return heat, alpha


def render_risk_overlay(
    img: Image.Image, world: World, view: TopDownView, risk_map: Any, risk_extent: BevGrid
) -> None:
    """Blend an ego-frame risk raster into ``img`` in place (see :func:`render_topdown`)."""
    risk = np.asarray(risk_map)
    if risk.ndim != 2:
        raise ValueError(f"risk_map must be 2-D [H_bev, W_bev], got shape {risk.shape}")
    if tuple(risk.shape) != risk_extent.shape:
        raise ValueError(f"risk_map shape {risk.shape} does not match risk_extent.shape {risk_extent.shape}")
    if world.ego is None:
        raise ValueError("risk overlay needs the ego pose (world.ego is None)")
    ex, ey, eyaw = world.ego.x_m, world.ego.y_m, world.ego.yaw_rad
    c, s = math.cos(eyaw), math.sin(eyaw)

    def px_to_bev(px: np.ndarray) -> np.ndarray:  # pixel (u, v) -> BEV (col, row): an affine map
        w = view.px_to_world(px)
        dx, dy = w[..., 0] - ex, w[..., 1] - ey
        ego_xy = np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)
        return risk_extent.metric_to_index(ego_xy)[..., ::-1]

    # Only the part of the image the grid covers is resampled: its footprint's pixel bounding box.
    g = risk_extent
    corners_ego = np.array(
        [[g.x_max_m, g.y_max_m], [g.x_max_m, g.y_min_m], [g.x_min_m, g.y_min_m], [g.x_min_m, g.y_max_m]]
    )
    corners_world = np.stack(
        [
            ex + c * corners_ego[:, 0] - s * corners_ego[:, 1],
            ey + s * corners_ego[:, 0] + c * corners_ego[:, 1],
        ],
        axis=1,
    )
    foot = view.world_to_px(corners_world)
    u0, v0 = (max(0, math.floor(val) - 1) for val in foot.min(axis=0))
    u1, v1 = (min(view.size_px, math.ceil(val) + 1) for val in foot.max(axis=0))
    if u1 <= u0 or v1 <= v0:
        return  # the grid is outside the view

    o, du, dv = px_to_bev(np.array([[u0, v0], [u0 + 1.0, v0], [u0, v0 + 1.0]], dtype=np.float64))
    coeffs = (du[0] - o[0], dv[0] - o[0], o[0], du[1] - o[1], dv[1] - o[1], o[1])
    heat, alpha = _risk_colors(risk)
    rgba = Image.fromarray(np.concatenate([heat, alpha[..., None]], axis=-1), "RGBA")
    warped = rgba.transform(
        (u1 - u0, v1 - v0),
        Image.Transform.AFFINE,
        coeffs,
        resample=Image.Resampling.BILINEAR,
        fillcolor=(*(int(v) for v in heat[0, 0]), 0),  # transparent outside the grid, no dark fringe
    )
    img.paste(warped, (u0, v0), warped)


def render_actors(draw: ImageDraw.ImageDraw, world: World, view: TopDownView, show_ids: bool = False) -> None:
    """Actors as oriented boxes (pedestrians as circles, static obstacles with an orange outline and a cross).

    Vehicles get a heading tick at the front; the ego (actor 0) is drawn last with a bright cyan outline.
    """
    a = world.actors
    n = a.n
    if n == 0:
        return
    x, y, yaw = a.x[:n], a.y[:n], a.yaw[:n]
    length, width = a.length[:n], a.width[:n]
    reach = np.hypot(x - view.center_xy[0], y - view.center_xy[1]) - 0.5 * np.hypot(length, width)
    visible = np.flatnonzero(reach <= view.radius_m)
    ego_first = a.behavior[0] == Behavior.EGO
    order = [i for i in visible if not (i == 0 and ego_first)] + ([0] if ego_first and 0 in visible else [])
    if not order:
        return
    k = view.px_per_m
    corners = view.world_to_px(box_corners_2d(np.stack([x, y], axis=1), yaw, length, width))  # [n, 4, 2]
    centre_px = view.world_to_px(np.stack([x, y], axis=1))
    fwd = np.stack([np.cos(yaw), np.sin(yaw)], axis=1)
    tick_px = view.world_to_px(
        np.stack([np.stack([x, y], axis=1) + (f * length)[:, None] * fwd for f in (0.15, 0.5)], axis=1)
    )  # [n, 2, 2] from just ahead of the centre to the front edge
    thin = max(1, round(0.12 * k))
    for i in order:
        fill = tuple(int(v) for v in a.color[i])
        dark = _darken(fill)
        cls = ActorClass(int(a.cls[i]))
        is_ego = i == 0 and ego_first
        outline = EGO_HIGHLIGHT if is_ego else dark
        outline_w = max(2, round(0.25 * k)) if is_ego else 1
        if cls == ActorClass.PEDESTRIAN:
            r = max(0.5 * max(length[i], width[i]), PEDESTRIAN_MIN_RADIUS_M) * k
            r = max(r, 2.0)
            u, v = centre_px[i]
            draw.ellipse((u - r, v - r, u + r, v + r), fill=fill, outline=outline, width=outline_w)
            continue
        if cls.is_static_obstacle:
            draw.polygon(
                _flat(corners[i]), fill=fill, outline=STATIC_OBSTACLE_OUTLINE, width=max(1, outline_w)
            )
            q = corners[i]
            draw.line(_flat(q[[0, 2]]), fill=STATIC_OBSTACLE_OUTLINE, width=1)
            draw.line(_flat(q[[1, 3]]), fill=STATIC_OBSTACLE_OUTLINE, width=1)
            continue
        draw.polygon(_flat(corners[i]), fill=fill, outline=outline, width=outline_w)
        draw.line(_flat(tick_px[i]), fill=dark if not is_ego else EGO_HIGHLIGHT, width=thin)
    if show_ids:
        font = _font()
        for i in order:
            u, v = centre_px[i]
            draw.text((u + 3, v - 12), str(int(i)), fill=TEXT_COLOR, font=font)


def render_traffic_lights(draw: ImageDraw.ImageDraw, world: World, view: TopDownView) -> None:
    """Each signal head as a filled circle at its pole position, coloured by its current state."""
    r = max(LIGHT_RADIUS_M * view.px_per_m, 3.0)
    for light_id, light in world.map.traffic_lights.items():
        pos = np.asarray(light.position, dtype=np.float64)
        if not view.sees_box(pos, pos, LIGHT_RADIUS_M):
            continue
        u, v = view.world_to_px(pos)
        color = LIGHT_COLORS.get(world.light_state(light_id), LIGHT_COLORS[LightState.OFF])
        draw.ellipse((u - r, v - r, u + r, v + r), fill=color, outline=LIGHT_OUTLINE, width=1)


def _render_dots(
    draw: ImageDraw.ImageDraw, view: TopDownView, pts: np.ndarray, fill: RGB, outline: RGB | None, r_px: float
) -> None:
    for u, v in view.world_to_px(pts):
        if -r_px <= u <= view.size_px + r_px and -r_px <= v <= view.size_px + r_px:
            draw.ellipse((u - r_px, v - r_px, u + r_px, v + r_px), fill=fill, outline=outline)


def render_label(draw: ImageDraw.ImageDraw, text: str) -> None:
    """Small white text on a black box at the top-left corner."""
    font = _font()
    left, top, right, bottom = draw.textbbox((4, 3), text, font=font)
    draw.rectangle((left - 3, top - 2, right + 3, bottom + 2), fill=TEXT_BG)
    draw.text((4, 3), text, fill=TEXT_COLOR, font=font)


def render_topdown(
    world: World,
    view: TopDownView,
    route: Any = None,
    plan_world: Any = None,
    future_world: Any = None,
    risk_map: Any = None,
    risk_extent: BevGrid | None = None,
    show_ids: bool = False,
    map_layer: Image.Image | None = None,
) -> np.ndarray:
    """Render one frame ``[size_px, size_px, 3]`` uint8 (RGB) of ``world`` through ``view``.

    Layers, bottom to top: the map (``map_layer`` if given, else :func:`render_map_layer`), the risk
    overlay, the route, actors (ego last, cyan outline), traffic lights, the plan, the future trajectory and
    a ``t / v`` label at the top-left.

    - ``route``: a Route, a Path or world points ``[P, 2]``; drawn as a thin translucent blue line.
    - ``plan_world``: planned waypoints ``[N, 2]`` in the WORLD frame; a green line with dots.
    - ``future_world``: a future trajectory ``[N, 2]`` in the WORLD frame (e.g. the expert's); orange dots.
    - ``risk_map``: ``[H_bev, W_bev]`` floats in [0, 1] laid out on ``risk_extent`` (a BevGrid in the EGO
      frame, row 0 = front, column 0 = left), placed with the ego's rear-axle pose (``world.ego``). Drawn as
      a yellow (low) to red (high) heat map whose opacity grows linearly with risk (0 = invisible).
    - ``show_ids``: write each actor's index next to it.
    """
    n = view.size_px
    if map_layer is None:
        img = render_map_layer(world.map, view)
    else:
        if map_layer.size != (n, n):
            raise ValueError(f"map_layer size {map_layer.size} does not match the view ({n}, {n})")
        img = map_layer.convert("RGB") if map_layer.mode != "RGB" else map_layer.copy()

    if risk_map is not None:
        if risk_extent is None:
            raise ValueError("risk_map needs risk_extent (the BevGrid it is laid out on)")
        render_risk_overlay(img, world, view, risk_map, risk_extent)

    if route is not None:
        render_route(img, view, _route_points(route))

    draw = ImageDraw.Draw(img)
    render_actors(draw, world, view, show_ids=show_ids)
    render_traffic_lights(draw, world, view)

    dot_r = max(2.0, 0.25 * view.px_per_m)
    if plan_world is not None:
        plan = _points_2d("plan_world", plan_world)
        if len(plan) >= 2:
            draw.line(
                _flat(view.world_to_px(plan)), fill=PLAN_COLOR, width=max(1, round(0.15 * view.px_per_m))
            )
        _render_dots(draw, view, plan, PLAN_COLOR, None, dot_r)
    if future_world is not None:
        _render_dots(
            draw, view, _points_2d("future_world", future_world), FUTURE_COLOR, FUTURE_OUTLINE, dot_r
        )

    speed = (
        world.ego.speed_mps
        if world.ego is not None
        else (float(world.actors.speed[0]) if world.actors.n else 0.0)
    )
    render_label(draw, f"t={world.time_s:5.1f} s  v={speed:4.1f} m/s")
    return np.array(img, dtype=np.uint8)


# ------------------------------------------------------------------------------------------ files
def _to_image(frame: Any) -> Image.Image:
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB frame [H, W, 3] uint8, got {arr.shape} {arr.dtype}")
    return Image.fromarray(arr, "RGB")


def save_png(frame: Any, path: str | Path) -> None:
    """Write one ``[H, W, 3]`` uint8 frame as a PNG, atomically."""
    img = _to_image(frame)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def save_gif(frames: Sequence[Any], path: str | Path, fps: float = 10.0) -> None:
    """Write frames ``[H, W, 3]`` uint8 (all the same size) as a looping animated GIF, atomically.

    GIF stores frame durations in 10 ms steps, so ``fps`` is honoured to that precision. Pillow merges
    consecutive identical frames into one longer frame (the playback time stays right).
    """
    if len(frames) == 0:
        raise ValueError("save_gif: no frames")
    if not fps > 0:
        raise ValueError(f"save_gif: fps must be > 0, got {fps}")
    images = [_to_image(f) for f in frames]
    if any(im.size != images[0].size for im in images):
        raise ValueError(f"save_gif: frames differ in size: {sorted({im.size for im in images})}")
    duration_ms = max(10, round(1000.0 / fps / 10.0) * 10)
    with atomic_path(path) as tmp:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0
        )
