"""Top-down renderer: view geometry, map layer, actors, lights, route, risk overlay and file output."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from riskdistill.geometry import BevGrid, box_corners_2d
from riskdistill.sim.actors import Behavior
from riskdistill.sim.layouts import Layout, LayoutParams
from riskdistill.sim.road_layouts import build_layout
from riskdistill.sim.route import plan_route
from riskdistill.sim.world import EGO_COLOR, World
from riskdistill.types import ActorClass, LightState
from riskdistill.viz.topdown import (
    DRIVING_COLOR,
    EGO_HIGHLIGHT,
    GROUND_COLOR,
    LIGHT_COLORS,
    MARKING_COLORS,
    PARKING_COLOR,
    STATIC_OBSTACLE_OUTLINE,
    ZEBRA_COLOR,
    TopDownView,
    ego_view,
    render_map_layer,
    render_topdown,
    save_gif,
    save_png,
)

CAR_COLOR = (200, 40, 40)
PED_COLOR = (40, 40, 220)
CONE_COLOR = (250, 110, 0)


@pytest.fixture(scope="module")
def layout() -> Layout:
    return build_layout(LayoutParams(family="junction4"))


def _ego_lane(layout: Layout):
    return layout.road_map.lanes[layout.roads["arm2"].forward_lane_ids[0]]


@pytest.fixture
def world(layout: Layout) -> World:
    """Ego approaching the junction from the west (heading +x), a car on the opposite arm, a pedestrian,
    a cone ahead of the ego."""
    w = World(layout.road_map)
    lane = _ego_lane(layout)
    p, h = lane.point_at(60.0), float(lane.heading_at(60.0))
    w.spawn_ego(float(p[0]), float(p[1]), h, speed_mps=4.0)
    other = layout.road_map.lanes[layout.roads["arm0"].forward_lane_ids[0]]
    pid = w.add_path(other.centerline)
    w.add_path_actor(ActorClass.CAR, Behavior.VEHICLE, pid, 70.0, 5.0, 8.0, color=CAR_COLOR)
    w.add_static(ActorClass.PEDESTRIAN, -12.0, -9.0, 0.0, color=PED_COLOR)
    w.add_static(ActorClass.TRAFFIC_CONE, float(p[0]) + 15.0, float(p[1]), 0.0, color=CONE_COLOR)
    return w


def _px(view: TopDownView, xy) -> tuple[int, int]:
    """(row, col) of the pixel containing world point ``xy``."""
    u, v = view.world_to_px(np.asarray(xy, dtype=np.float64))
    return math.floor(v), math.floor(u)


def _window(img: np.ndarray, rc: tuple[int, int], r: int) -> np.ndarray:
    row, col = rc
    return img[max(row - r, 0) : row + r + 1, max(col - r, 0) : col + r + 1].reshape(-1, 3)


def _has_color(pixels: np.ndarray, color) -> bool:
    return bool((pixels == np.asarray(color, dtype=np.uint8)).all(axis=1).any())


# ------------------------------------------------------------------------------------------ view geometry
@pytest.mark.parametrize("yaw", [0.0, 0.7, math.pi / 2, -2.5, math.pi])
def test_world_to_px_orientation(yaw: float) -> None:
    view = TopDownView((12.0, -7.0), yaw, extent_m=50.0, size_px=200)
    c = np.array(view.center_xy)
    fwd = np.array([math.cos(yaw), math.sin(yaw)])
    left = np.array([-math.sin(yaw), math.cos(yaw)])
    pc, pa, pl = view.world_to_px(np.stack([c, c + 10.0 * fwd, c + 10.0 * left]))
    np.testing.assert_allclose(pc, [100.0, 100.0], atol=1e-9)
    # Ahead along the view yaw: straight above the centre (smaller row), 10 m = 40 px.
    np.testing.assert_allclose(pa, [100.0, 60.0], atol=1e-9)
    # To the left: left of the centre (smaller column), same row.
    np.testing.assert_allclose(pl, [60.0, 100.0], atol=1e-9)
    pts = np.random.default_rng(0).uniform(-40, 40, size=(30, 2))
    np.testing.assert_allclose(view.px_to_world(view.world_to_px(pts)), pts, atol=1e-9)


def test_view_validation() -> None:
    with pytest.raises(ValueError):
        TopDownView((0.0, 0.0), extent_m=0.0)
    with pytest.raises(ValueError):
        TopDownView((0.0, float("nan")))
    with pytest.raises(ValueError):
        TopDownView((0.0, 0.0), size_px=2)


def test_ego_view_puts_ego_low_and_heading_up(world: World) -> None:
    view = ego_view(world, extent_m=60.0, size_px=384, ahead_fraction=0.25)
    assert view.yaw_rad == pytest.approx(world.actors.yaw[0])
    u, v = view.world_to_px([world.actors.x[0], world.actors.y[0]])
    assert u == pytest.approx(192.0)
    assert v == pytest.approx(0.75 * 384)


# ------------------------------------------------------------------------------------------ map layer
def test_map_layer_contents(layout: Layout) -> None:
    view = TopDownView((0.0, 0.0), math.pi / 2, extent_m=60.0, size_px=300)
    img = np.asarray(render_map_layer(layout.road_map, view))
    assert img.shape == (300, 300, 3) and img.dtype == np.uint8
    flat = img.reshape(-1, 3)
    for color in (GROUND_COLOR, ZEBRA_COLOR, MARKING_COLORS[layout.road_map.markings[0].kind]):
        assert _has_color(flat, color), color
    # The junction centre is road, not grass; far corners (off-road) are grass.
    assert not _has_color(_window(img, _px(view, (0.0, 0.0)), 2), GROUND_COLOR)
    assert _has_color(_window(img, (5, 5), 2), GROUND_COLOR)
    # Zebra bars lie inside the crosswalk polygons.
    cw = next(iter(layout.road_map.crosswalks.values()))
    assert _has_color(_window(img, _px(view, cw.polygon.mean(axis=0)), 4), ZEBRA_COLOR)


@pytest.mark.parametrize("family", ["straight", "curve", "junction_t", "highway"])
def test_every_family_renders_without_actors(family: str) -> None:
    lay = build_layout(LayoutParams(family=family, parking=family != "highway", lanes_per_direction=2))
    w = World(lay.road_map)  # no ego, no actors: map, lights and label only
    x0, y0, x1, y1 = lay.road_map.bounds()
    view = TopDownView((0.5 * (x0 + x1), 0.5 * (y0 + y1)), 0.3, extent_m=max(x1 - x0, y1 - y0), size_px=160)
    img = render_topdown(w, view)
    assert img.shape == (160, 160, 3) and img.dtype == np.uint8
    colors = {tuple(c) for c in np.unique(img.reshape(-1, 3), axis=0)}
    assert DRIVING_COLOR in colors
    if family != "highway":
        assert PARKING_COLOR in colors


def test_map_layer_cached_equals_fresh(world: World) -> None:
    view = TopDownView((0.0, 0.0), math.pi / 2, extent_m=100.0, size_px=256)
    layer = render_map_layer(world.map, view)
    a = render_topdown(world, view, map_layer=layer)
    b = render_topdown(world, view)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        render_topdown(world, TopDownView((0.0, 0.0), size_px=128), map_layer=layer)


# ------------------------------------------------------------------------------------------ actors, lights
def test_frame_shape_and_ego_pixels(world: World) -> None:
    view = ego_view(world, extent_m=40.0, size_px=320)
    img = render_topdown(world, view)
    assert img.shape == (320, 320, 3) and img.dtype == np.uint8
    a = world.actors
    # The pixel at the ego's box centre has the ego's fill colour ...
    assert tuple(img[_px(view, (a.x[0], a.y[0]))]) == EGO_COLOR
    # ... and its outline is highlighted: cyan pixels around the box, none far away from it.
    corners = box_corners_2d(np.array([[a.x[0], a.y[0]]]), a.yaw[0], a.length[0], a.width[0])[0]
    uv = view.world_to_px(corners)
    lo, hi = np.floor(uv.min(axis=0)).astype(int) - 2, np.ceil(uv.max(axis=0)).astype(int) + 2
    box = img[lo[1] : hi[1], lo[0] : hi[0]].reshape(-1, 3)
    assert _has_color(box, EGO_HIGHLIGHT)
    is_cyan = (img == np.asarray(EGO_HIGHLIGHT, dtype=np.uint8)).all(axis=2)
    rows, cols = np.nonzero(is_cyan)
    assert rows.min() >= lo[1] and rows.max() < hi[1] and cols.min() >= lo[0] and cols.max() < hi[0]


def test_other_actors_drawn(world: World) -> None:
    view = TopDownView((-10.0, 0.0), math.pi / 2, extent_m=80.0, size_px=400)
    img = render_topdown(world, view, show_ids=True)
    a = world.actors
    car, ped, cone = 1, 2, 3
    assert tuple(img[_px(view, (a.x[car], a.y[car]))]) == CAR_COLOR
    assert tuple(img[_px(view, (a.x[ped], a.y[ped]))]) == PED_COLOR
    # Static obstacles are marked with their own outline colour.
    assert _has_color(_window(img, _px(view, (a.x[cone], a.y[cone])), 3), STATIC_OBSTACLE_OUTLINE)


def test_actor_far_outside_view_is_ignored(world: World) -> None:
    view = TopDownView((-10.0, 0.0), math.pi / 2, extent_m=80.0, size_px=200)
    before = render_topdown(world, view)
    world.add_static(ActorClass.BUS, 1.0e5, 1.0e5, 0.0, color=(255, 0, 255))
    np.testing.assert_array_equal(render_topdown(world, view), before)


@pytest.mark.parametrize("state", [LightState.RED, LightState.GREEN, LightState.YELLOW])
def test_traffic_light_colour(world: World, state: LightState) -> None:
    view = TopDownView((0.0, 0.0), math.pi / 2, extent_m=60.0, size_px=300)
    light_id, light = next(iter(world.map.traffic_lights.items()))
    world.light_override[light_id] = state
    img = render_topdown(world, view)
    near = _window(img, _px(view, light.position), 3)
    assert _has_color(near, LIGHT_COLORS[state])
    others = [s for s in (LightState.RED, LightState.GREEN, LightState.YELLOW) if s != state]
    for other in others:
        assert not _has_color(near, LIGHT_COLORS[other])


def test_light_follows_world_state_over_time(world: World) -> None:
    view = TopDownView((0.0, 0.0), math.pi / 2, extent_m=60.0, size_px=300)
    light_id, light = next(iter(world.map.traffic_lights.items()))
    rc = _px(view, light.position)
    seen = set()
    for t in (0.0, 13.0, 20.0, 30.0):  # spans green, yellow and red of a 2-group, 17 s-period cycle
        world.time_s = t
        img = render_topdown(world, view)
        state = world.light_state(light_id)
        assert _has_color(_window(img, rc, 3), LIGHT_COLORS[state])
        seen.add(state)
    assert seen == {LightState.RED, LightState.GREEN, LightState.YELLOW}


# ------------------------------------------------------------------------------------------ route, plan
def test_route_plan_and_future(world: World, layout: Layout) -> None:
    lane = _ego_lane(layout)
    route = plan_route(layout.road_map, [lane.id, lane.successors[0]], start_s_m=40.0)
    view = TopDownView((-20.0, 0.0), math.pi / 2, extent_m=60.0, size_px=300)
    base = render_topdown(world, view)
    x0 = float(world.actors.x[0])
    plan = np.stack([x0 + 6.0 + 2.0 * np.arange(5), np.full(5, -1.0)], axis=1)
    future = np.stack([x0 + 4.0 + 2.0 * np.arange(3), np.full(3, 1.75)], axis=1)  # on the opposite lane
    img = render_topdown(world, view, route=route, plan_world=plan, future_world=future)
    # A route point 12 m behind the ego (the route starts 20 m behind it) is tinted blue.
    rc = _px(view, route.path.point_at(8.0))
    before, after = base[rc].astype(int), img[rc].astype(int)
    assert after[2] > before[2] and after[2] > after[0]
    # Plan dots green, future dots orange.
    plan_px = _window(img, _px(view, plan[2]), 1)
    assert (plan_px[:, 1] > 180).any() and (plan_px[:, 0] < 100).any()
    fut_px = _window(img, _px(view, future[1]), 1)
    assert ((fut_px[:, 0] > 200) & (fut_px[:, 1] > 100) & (fut_px[:, 2] < 80)).any()
    # A route given as a plain array works too.
    render_topdown(world, view, route=route.path.points)


# ------------------------------------------------------------------------------------------ risk overlay
def test_risk_overlay_only_in_front(world: World) -> None:
    grid = BevGrid.centered(40.0, 40.0, 0.5, x_offset_m=0.0)  # x in (-20, 20], y in (-20, 20]
    risk = np.zeros(grid.shape, dtype=np.float32)
    n_hot = grid.n_rows // 4
    risk[:n_hot] = 1.0  # hot where x_ego > 10 m only
    view = ego_view(world, extent_m=60.0, size_px=300, ahead_fraction=0.0)
    plain = render_topdown(world, view)
    hot = render_topdown(world, view, risk_map=risk, risk_extent=grid)
    changed = (plain != hot).any(axis=2)
    assert changed.sum() > 500

    ex, ey, eyaw = world.ego.x_m, world.ego.y_m, world.ego.yaw_rad

    def ego_xy(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        w = view.px_to_world(np.stack([cols + 0.5, rows + 0.5], axis=1))
        d = w - [ex, ey]
        c, s = math.cos(eyaw), math.sin(eyaw)
        return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)

    pts = ego_xy(*np.nonzero(changed))
    hot_x_min = grid.x_max_m - n_hot * grid.resolution_m  # 10 m
    # Bilinear blending fades out over one cell (0.5 m) past the hot band; pixels are 0.2 m. Placed at the
    # rear axle: anchoring the grid at the box centre instead would shift this edge by 1.45 m.
    assert hot_x_min - 0.6 < pts[:, 0].min() < hot_x_min + 0.2
    assert 19.0 < np.abs(pts[:, 1]).max() <= 20.0 + 0.6
    # Behind the ego nothing changed; well inside the hot band everything ground-level did.
    rc_behind = _px(view, (ex - 10.0 * math.cos(eyaw), ey - 10.0 * math.sin(eyaw)))
    rc_front = _px(view, (ex + 17.0 * math.cos(eyaw), ey + 17.0 * math.sin(eyaw)))  # beyond the cone
    assert not changed[rc_behind]
    assert changed[rc_front]
    assert hot[rc_front][0] > plain[rc_front][0]  # redder


def test_risk_overlay_validation(world: World) -> None:
    view = ego_view(world, size_px=128)
    grid = BevGrid.centered(20.0, 20.0, 0.5)
    with pytest.raises(ValueError, match="risk_extent"):
        render_topdown(world, view, risk_map=np.zeros(grid.shape))
    with pytest.raises(ValueError, match="shape"):
        render_topdown(world, view, risk_map=np.zeros((3, 4)), risk_extent=grid)
    # A zero risk map changes nothing.
    np.testing.assert_array_equal(
        render_topdown(world, view, risk_map=np.zeros(grid.shape), risk_extent=grid),
        render_topdown(world, view),
    )


# ------------------------------------------------------------------------------------------ files, speed
def test_save_gif_and_png(world: World, tmp_path) -> None:
    frames = []
    for k in range(5):
        world.time_s = 0.1 * k  # the time label differs, so no two frames are identical
        frames.append(render_topdown(world, ego_view(world, size_px=128)))
    gif = tmp_path / "sub" / "episode.gif"
    save_gif(frames, gif, fps=10)
    with Image.open(gif) as im:
        assert im.format == "GIF"
        assert im.n_frames == 5
        assert im.size == (128, 128)
        assert im.info["duration"] == 100
    png = tmp_path / "frame.png"
    save_png(frames[-1], png)
    with Image.open(png) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), frames[-1])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["episode.gif", "frame.png", "sub"]  # no temp files
    with pytest.raises(ValueError):
        save_gif([], tmp_path / "empty.gif")
    with pytest.raises(ValueError):
        save_png(frames[0].astype(np.float32), tmp_path / "bad.png")


def test_camera_mosaic_places_surround_cameras() -> None:
    from riskdistill.viz.cameras import render_camera_mosaic

    names = ("CAM_BACK", "CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT")  # one dropped
    rgb = np.stack([np.full((4, 6, 3), 10 * (k + 1), np.uint8) for k in range(len(names))])
    m = render_camera_mosaic(rgb, names)
    assert m.shape == (8, 18, 3)
    assert m[0, 6, 0] == 20  # CAM_FRONT in the middle of the top row
    assert m[4, 6, 0] == 10  # CAM_BACK in the middle of the bottom row
    assert m[4, 12, 0] == 0  # CAM_BACK_RIGHT was dropped: black tile
    # a camera beyond the surround six (bench2drive_tele's CAM_FRONT_TELE) gets a row below them
    names7 = (*names, "CAM_BACK_RIGHT", "CAM_FRONT_TELE")
    rgb7 = np.stack([np.full((4, 6, 3), 10 * (k + 1), np.uint8) for k in range(len(names7))])
    m7 = render_camera_mosaic(rgb7, names7)
    assert m7.shape == (12, 18, 3)
    assert m7[0, 6, 0] == 20 and m7[4, 12, 0] == 60  # the surround rows as before, CAM_BACK_RIGHT present
    assert m7[8, 0, 0] == 70 and m7[8, 6, 0] == 0  # CAM_FRONT_TELE first in the third row, then black
