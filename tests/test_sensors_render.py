"""Camera renderer: the Numba kernel against its NumPy oracle, projection geometry, scene content, weather."""

from __future__ import annotations

import math

import numpy as np
import pytest

from riskdistill.contracts.rig import Rig, RigPerturbation, perturb_rig
from riskdistill.geometry import box3d_corners, project_box_to_image, project_points
from riskdistill.sim.layouts import LayoutParams
from riskdistill.sim.road_layouts import build_layout
from riskdistill.sim.roadmap import Lane, LaneKind, LaneMarking, MarkingKind, RoadMap, TrafficLight
from riskdistill.sim.scenarios.base import Weather
from riskdistill.sim.sensors import CameraRenderer, Material, jpeg_roundtrip, load_rig, resize_rig
from riskdistill.sim.sensors.ground import bake_ground
from riskdistill.sim.sensors.oracle import render_numpy
from riskdistill.sim.sensors.raycast import render_numba
from riskdistill.sim.world import World
from riskdistill.types import ActorClass, LightState

H, W = 64, 176  # small images keep the oracle fast


def _rig(h: int = H, w: int = W, keep: tuple[str, ...] | None = None) -> Rig:
    rig = resize_rig(load_rig("bench2drive"), h, w)
    if keep is not None:
        rig = perturb_rig(rig, RigPerturbation(drop_cameras=[n for n in rig.camera_names if n not in keep]))
    return rig


def _straight_map(light: bool = False) -> RoadMap:
    """One straight two-lane road along +x (y in [-3.5, 3.5]), a centre line; optionally one traffic light
    25 m ahead on the right kerb facing traffic that drives +x."""
    xs = np.linspace(-150.0, 150.0, 601)
    lanes = {
        0: Lane(0, LaneKind.DRIVING, np.stack([xs, np.full_like(xs, -1.75)], 1), 3.5, 0, 10.0),
        1: Lane(1, LaneKind.DRIVING, np.stack([xs[::-1], np.full_like(xs, 1.75)], 1), 3.5, 0, 10.0),
    }
    markings = [LaneMarking(MarkingKind.SOLID_YELLOW, np.stack([xs, np.zeros_like(xs)], 1))]
    lights = {}
    if light:
        lights[0] = TrafficLight(0, 0, 0, np.array([25.0, -4.0]), 5.0, math.pi, [])
    return RoadMap("test", lanes, markings=markings, traffic_lights=lights)


def _ego_world(road_map: RoadMap, x: float = 0.0, y: float = 0.0, yaw: float = 0.0) -> World:
    world = World(road_map)
    world.spawn_ego(x, y, yaw)
    return world


def _to_world(world: World, x_ego: float, y_ego: float) -> tuple[float, float]:
    e = world.ego
    c, s = math.cos(e.yaw_rad), math.sin(e.yaw_rad)
    return e.x_m + c * x_ego - s * y_ego, e.y_m + s * x_ego + c * y_ego


def _add(world: World, cls: ActorClass, x_ego: float, y_ego: float, yaw_ego: float = 0.0, **kw) -> int:
    x, y = _to_world(world, x_ego, y_ego)
    return world.add_static(cls, x, y, world.ego.yaw_rad + yaw_ego, **kw)


@pytest.fixture(scope="module")
def straight() -> RoadMap:
    return _straight_map()


@pytest.fixture(scope="module")
def junction_map() -> RoadMap:
    return build_layout(LayoutParams(family="junction4", parking=True)).road_map


# ------------------------------------------------------------------------------------------ oracle
def _busy_world(road_map: RoadMap, pose: tuple[float, float, float]) -> World:
    world = _ego_world(road_map, *pose)
    _add(world, ActorClass.CAR, 12.0, 0.0, color=(200, 40, 40))  # straight ahead
    _add(world, ActorClass.BUS, 1.5, 3.6, 0.05, color=(40, 90, 200))  # alongside: partly behind the cameras
    _add(world, ActorClass.VAN, 10.0, -8.0, 0.4, color=(230, 230, 230))  # straddles CAM_FRONT's right edge
    _add(world, ActorClass.PEDESTRIAN, 8.0, -3.0, color=(120, 30, 150))
    _add(world, ActorClass.CYCLIST, 20.0, -4.0, 0.3, color=(20, 160, 60))
    _add(world, ActorClass.TRAFFIC_CONE, 9.0, -1.5, color=(250, 110, 0))
    _add(world, ActorClass.TRUCK, -12.0, 0.0, color=(150, 150, 40))
    _add(world, ActorClass.CAR, 0.0, -6.0, 1.2, color=(90, 90, 90))  # beside the ego, turned
    return world


@pytest.mark.parametrize(
    ("pose", "weather"),
    [
        ((40.0, 5.25, math.pi), None),
        ((-30.0, -5.25, 0.4), Weather(sun_altitude_deg=15.0, cloudiness=0.5, fog_density=0.6, wetness=0.7)),
    ],
)
def test_numba_matches_numpy_oracle(junction_map: RoadMap, pose, weather) -> None:
    world = _busy_world(junction_map, pose)
    renderer = CameraRenderer(junction_map, _rig(), weather)
    scene = renderer.build_scene(world)
    rgb, depth, inst = render_numba(scene)
    rgb_o, depth_o, inst_o = render_numpy(scene)
    np.testing.assert_array_equal(inst, inst_o)
    np.testing.assert_array_equal(np.isinf(depth), np.isinf(depth_o))
    finite = np.isfinite(depth)
    np.testing.assert_allclose(depth[finite], depth_o[finite], rtol=1e-6)
    assert np.abs(rgb.astype(int) - rgb_o).max() <= 1
    # the scene exercises the cases it is meant to: many actors seen; the van cut by the right edge of
    # CAM_FRONT; the bus alongside partly behind the front cameras (cut by their near planes)
    seen = set(np.unique(inst).tolist()) - {-1}
    assert {1, 2, 3, 4, 6} <= seen
    front = renderer.camera_names.index("CAM_FRONT")
    assert 3 in inst[front, :, -1] and 3 in inst[front, :, :-1]
    assert 2 in inst[front, :, 0]
    bus = int(np.flatnonzero(scene.item_inst == 2)[0])
    corners = box3d_corners(
        np.array([[*scene.item_xy[bus], 0.5 * scene.item_z[bus, 1]]]),
        np.array([[*(2.0 * scene.item_half[bus]), scene.item_z[bus, 1]]]),
        np.array([math.atan2(scene.item_cs[bus, 1], scene.item_cs[bus, 0])]),
    )[0]
    depth_cam = (corners - scene.cam_o[front]) @ scene.cam_rot[front][:, 2]
    assert depth_cam.min() < 0.0 < depth_cam.max()


def test_renderer_backends_agree(junction_map: RoadMap) -> None:
    world = _busy_world(junction_map, (40.0, 5.25, math.pi))
    a = CameraRenderer(junction_map, _rig(32, 88)).render(world)
    b = CameraRenderer(junction_map, _rig(32, 88), backend="numpy").render(world)
    np.testing.assert_array_equal(a.instance, b.instance)
    assert np.abs(a.rgb.astype(int) - b.rgb).max() <= 1


# ------------------------------------------------------------------------------------------ geometry
def test_frame_layout(straight: RoadMap) -> None:
    rig = _rig()
    frame = CameraRenderer(straight, rig).render(_ego_world(straight, 3.0, 1.0, 0.3))
    assert frame.rgb.shape == (6, H, W, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.shape == (6, H, W) and frame.depth.dtype == np.float32
    assert frame.instance.shape == (6, H, W) and frame.instance.dtype == np.int32
    np.testing.assert_array_equal(frame.K, rig.K())
    np.testing.assert_array_equal(frame.T_ego_from_cam, rig.T_ego_from_cam())
    assert frame.camera_names == rig.camera_names
    np.testing.assert_allclose(frame.T_world_from_ego[:2, 3], [3.0, 1.0])
    assert math.atan2(frame.T_world_from_ego[1, 0], frame.T_world_from_ego[0, 0]) == pytest.approx(0.3)


def test_box_straight_ahead_hits_the_principal_point(straight: RoadMap) -> None:
    rig = _rig(keep=("CAM_FRONT",))
    cam = rig.cameras[0]
    world = _ego_world(straight, 10.0, -1.75, 0.0)
    dist = 10.0  # from the camera to the box's near face
    i = _add(world, ActorClass.VAN, cam.x_m + dist + 1.0, 0.0, size_lwh=(2.0, 2.0, 3.0))
    frame = CameraRenderer(straight, rig).render(world)
    # the four pixels around the principal point (W / 2, H / 2)
    block = (slice(H // 2 - 1, H // 2 + 1), slice(W // 2 - 1, W // 2 + 1))
    assert (frame.instance[0][block] == i).all()
    np.testing.assert_allclose(frame.depth[0][block], dist, atol=1e-4)  # a face square to the optical axis
    # the rendered mask agrees with the box projected by riskdistill.geometry (within a pixel)
    box = box3d_corners(
        np.array([[cam.x_m + dist + 1.0, 0.0, 1.5]]), np.array([[2.0, 2.0, 3.0]]), np.zeros(1)
    )
    x0, y0, x1, y1 = project_box_to_image(box[0], cam.K(), np.linalg.inv(cam.T_ego_from_cam()), (W, H))
    rows, cols = np.nonzero(frame.instance[0] == i)
    assert abs(cols.min() - x0) <= 1 and abs(cols.max() + 1 - x1) <= 1
    assert abs(rows.min() - y0) <= 1 and abs(rows.max() + 1 - y1) <= 1


def test_box_to_the_left_is_in_the_left_of_the_front_image(straight: RoadMap) -> None:
    world = _ego_world(straight, 0.0, -1.75, 0.0)
    i = _add(world, ActorClass.CAR, 18.0, 4.0)
    rig = _rig()
    frame = CameraRenderer(straight, rig).render(world)
    front = rig.camera_names.index("CAM_FRONT")
    _, cols = np.nonzero(frame.instance[front] == i)
    assert len(cols) > 10 and cols.max() < W // 2
    right = rig.camera_names.index("CAM_FRONT_RIGHT")
    assert not (frame.instance[right] == i).any()


def test_ground_below_the_horizon_and_sky_above(straight: RoadMap) -> None:
    rig = _rig(keep=("CAM_FRONT", "CAM_BACK"))
    frame = CameraRenderer(straight, rig).render(_ego_world(straight, 0.0, -1.75, 0.0))
    for c, cam in enumerate(rig.cameras):  # level cameras: the horizon is the middle row
        depth = frame.depth[c]
        assert np.isinf(depth[: H // 2]).all()
        assert np.isfinite(depth[H // 2 :]).all()
        f = cam.K()[1, 1]
        rows = np.arange(H // 2, H) + 0.5 - H / 2
        np.testing.assert_allclose(depth[H // 2 :, W // 2], cam.z_m * f / rows, rtol=1e-5)  # flat ground
        assert (frame.instance[c] == -1).all()
    # the sky is blue-ish, the asphalt in front of the ego grey
    sky = frame.rgb[0, 0, W // 2].astype(int)
    road = frame.rgb[0, H - 1, W // 2].astype(int)
    assert sky[2] > sky[0] + 30
    assert abs(road[0] - road[2]) < 15 and road.mean() < 120


def test_ground_material_under_the_pixels(straight: RoadMap) -> None:
    rig = _rig(keep=("CAM_FRONT",))
    renderer = CameraRenderer(straight, rig)
    frame = renderer.render(_ego_world(straight, 0.0, -1.75, 0.0))
    ground = bake_ground(straight)
    # back-project the bottom rows' pixel centres onto the ground; their material sets the colour
    cam = rig.cameras[0]
    v = np.arange(H - 8, H)
    u = np.arange(W)
    uu, vv = np.meshgrid(u + 0.5, v + 0.5)
    rays = np.stack([(uu - W / 2) / cam.K()[0, 0], (vv - H / 2) / cam.K()[1, 1], np.ones_like(uu)], -1)
    d = rays @ cam.T_ego_from_cam()[:3, :3].T
    t = cam.z_m / -d[..., 2]
    xy = np.array([cam.x_m, cam.y_m]) + t[..., None] * d[..., :2] + np.array([0.0, -1.75])
    mat = ground.sample(xy)
    rgb = frame.rgb[0][v]
    road = rgb[mat == Material.ROAD].astype(int)
    yellow = rgb[mat == Material.YELLOW_MARKING].astype(int)
    grass = rgb[mat == Material.GRASS].astype(int)
    assert len(road) and len(yellow) and len(grass)
    assert (yellow[:, 0] > road[:, 0].max()).mean() > 0.9
    assert (grass[:, 1] > grass[:, 0]).all()


def test_ego_never_appears_in_its_own_cameras(straight: RoadMap) -> None:
    for name in ("bench2drive", "nuscenes"):
        rig = resize_rig(load_rig(name), 32, 88)
        world = _ego_world(straight, 0.0, -1.75, 0.0)
        _add(world, ActorClass.CAR, 0.0, 4.0)  # something else right next to it
        frame = CameraRenderer(straight, rig).render(world)
        assert not (frame.instance == 0).any()
        assert (frame.instance == 1).any()
        back = rig.camera_names.index("CAM_BACK")  # inside the ego box: still sees the road behind
        assert np.isfinite(frame.depth[back]).mean() > 0.4


def test_far_and_despawned_actors_are_dropped(straight: RoadMap) -> None:
    world = _ego_world(straight)
    _add(world, ActorClass.CAR, 1.0e5, 0.0)
    renderer = CameraRenderer(straight, _rig(keep=("CAM_FRONT",)))
    assert renderer.build_scene(world).n_items == 0
    frame = renderer.render(world)
    assert (frame.instance == -1).all()


# ------------------------------------------------------------------------------------------ lights, weather
@pytest.mark.parametrize("state", [LightState.RED, LightState.GREEN])
def test_traffic_light_shows_its_state(state: LightState) -> None:
    road_map = _straight_map(light=True)
    rig = _rig(128, 352, keep=("CAM_FRONT",))
    cam = rig.cameras[0]
    world = _ego_world(road_map, 0.0, -1.75, 0.0)
    world.light_override[0] = state
    frame = CameraRenderer(road_map, rig).render(world)
    # the repeater head (1.5 .. 2.5 m): lamp centres, red on top, green at the bottom, on the face at -x
    lamp_x = 25.0 - 0.19
    pts = np.array([[lamp_x, -4.0 + 1.75, 2.0 + 0.31], [lamp_x, -4.0 + 1.75, 2.0 - 0.31]])
    uv, _, valid = project_points(pts, cam.K(), np.linalg.inv(cam.T_ego_from_cam()))
    assert valid.all()
    (ru, rv), (gu, gv) = np.floor(uv).astype(int)
    red, green = frame.rgb[0, rv, ru].astype(int), frame.rgb[0, gv, gu].astype(int)
    assert frame.instance[0, rv, ru] == -1
    if state == LightState.RED:
        assert red[0] > 200 and red[1] < 90
        assert green.max() < 90
    else:
        assert green[1] > 200 and green[0] < 90
        assert red.max() < 90


def test_weather_darkens_fogs_and_wets(straight: RoadMap) -> None:
    rig = _rig(keep=("CAM_FRONT",))
    world = _ego_world(straight, 0.0, -1.75, 0.0)
    _add(world, ActorClass.CAR, 15.0, 0.0, color=(200, 40, 40))
    day = Weather(sun_altitude_deg=70.0, cloudiness=0.1, fog_density=0.0, wetness=0.0)
    night = Weather(sun_altitude_deg=-30.0, cloudiness=0.2, fog_density=0.0, wetness=0.0)
    renderer = CameraRenderer(straight, rig, day)
    bright = renderer.render(world).rgb.astype(float)
    renderer.set_weather(night)
    dark = renderer.render(world).rgb.astype(float)
    assert dark.mean() < 0.4 * bright.mean()
    # wet asphalt is darker; paint and grass are not all that changes, but the lane in front is asphalt
    renderer.set_weather(Weather(sun_altitude_deg=70.0, cloudiness=0.1, fog_density=0.0, wetness=1.0))
    wet = renderer.render(world)
    assert wet.rgb[0, H - 1, W // 2].mean() < 0.8 * bright[0, H - 1, W // 2].mean()
    # fog: far ground (just below the horizon) goes towards the fog colour, near ground much less
    renderer.set_weather(Weather(sun_altitude_deg=70.0, cloudiness=0.1, fog_density=0.9, wetness=0.0))
    foggy = renderer.render(world).rgb.astype(float)
    fog_rgb = renderer.lighting.fog_rgb
    far, near = (H // 2, 5), (H - 1, 5)
    assert np.abs(foggy[0][far] - fog_rgb).max() < 25
    assert np.abs(foggy[0][near] - fog_rgb).max() > np.abs(bright[0][near] - fog_rgb).max() * 0.3


def test_jpeg_roundtrip() -> None:
    rng = np.random.default_rng(0)
    img = np.repeat(np.repeat(rng.integers(0, 255, (8, 22, 3), dtype=np.uint8), 8, 0), 8, 1)
    out = jpeg_roundtrip(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert 0 < np.abs(out.astype(int) - img).mean() < 20
    batch = jpeg_roundtrip(np.stack([img, img]), quality=90)
    assert batch.shape == (2, *img.shape)
    with pytest.raises(ValueError, match="uint8"):
        jpeg_roundtrip(img.astype(float))


def test_renderer_checks_inputs(straight: RoadMap, junction_map: RoadMap) -> None:
    with pytest.raises(ValueError, match="backend"):
        CameraRenderer(straight, _rig(), backend="torch")
    renderer = CameraRenderer(straight, _rig())
    with pytest.raises(ValueError, match="no ego"):
        renderer.render(World(straight))
    with pytest.raises(ValueError, match="map"):
        renderer.render(_ego_world(junction_map))


def test_ground_pyramid_takes_the_block_mode() -> None:
    from riskdistill.sim.sensors.ground import downsample_mode

    road, white, grass = int(Material.ROAD), int(Material.WHITE_MARKING), int(Material.GRASS)
    m = np.array(
        [
            [road, road, road, white, grass],
            [road, white, white, white, grass],
            [grass, road, road, road, road],
        ],
        dtype=np.uint8,
    )
    out = downsample_mode(m)
    # 2 x 2 blocks (odd edges padded with grass): {road x3, white} -> road; {road, white x3} -> white;
    # {grass x2, pad x2} -> grass; {grass, road, pad x2} -> grass; {road x2, pad x2} -> a tie: the higher id
    # (road); {road, pad x3} -> grass
    np.testing.assert_array_equal(out, [[road, white, grass], [grass, road, grass]])
