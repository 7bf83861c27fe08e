"""Camera images of a simulated world: RGB, depth and instance ids for every camera of a rig.

Typical use::

    renderer = CameraRenderer(world.map, resize_rig(load_rig("bench2drive"), 128, 352), weather)
    frame = renderer.render(world)       # frame.rgb [6, 128, 352, 3] uint8, frame.depth, frame.instance

Scene content (see :mod:`riskdistill.sim.sensors.raycast` for the maths):

* the ground: the map's material raster (:mod:`riskdistill.sim.sensors.ground`), baked once per map;
* actors: boxes in their ``color``, faces shaded by a sun direction, with per-class bands on the sides
  (dark tyres and windows on vehicles, darker legs and a lighter head on pedestrians and cyclists,
  a light stripe on cones and barriers). The ego (actor 0) is never drawn: cameras sit inside its box;
* layout poles (``RoadMap.layout_obstacles``) and traffic lights: a pole, a signal head at the top and a
  repeater head at about 2 m (so a vehicle waiting at the stop line still sees the signal, as with
  near-side repeaters), each with red/yellow/green lamps on the face that points at the approaching
  traffic; the lamp of the current state (``world.light_state``) glows, the others are dark;
* the sky, a vertical gradient; weather: everything lit is scaled by ``Weather.brightness``, wetness
  darkens asphalt and paint, fog (plus a little haze) blends surfaces towards a fog colour with distance.

Instance ids are actor indices (``world.actors`` rows), -1 for the map, poles, lights and sky. Depth is
metres along each camera's optical axis, inf for the sky.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from riskdistill.contracts.rig import Rig
from riskdistill.sim.roadmap import RoadMap
from riskdistill.sim.sensors.ground import (
    DEFAULT_RESOLUTION_M,
    MATERIAL_COLORS,
    WET_DARKENED,
    GroundRaster,
    ground_raster,
)
from riskdistill.sim.sensors.oracle import render_numpy
from riskdistill.sim.sensors.raycast import (
    Scene,
    camera_background,
    mip_levels,
    pack_levels,
    render_numba,
    screen_rects,
    weather_layers,
)
from riskdistill.types import ActorClass, LightState

if TYPE_CHECKING:
    from riskdistill.sim.world import World


class WeatherLike(Protocol):
    """What the renderer reads from :class:`riskdistill.sim.scenarios.base.Weather`."""

    sun_altitude_deg: float
    cloudiness: float
    fog_density: float
    wetness: float

    @property
    def brightness(self) -> float: ...


# ------------------------------------------------------------------------------------------ look
SKY_HORIZON = np.array([204.0, 216.0, 228.0])
SKY_ZENITH = np.array([96.0, 140.0, 206.0])
SUNSET_HORIZON = np.array([236.0, 168.0, 116.0])
FOG_RGB = np.array([188.0, 192.0, 198.0])
HAZE_PER_M = 0.0015  # extinction without fog
FOG_PER_M = 0.06  # extra extinction at fog_density 1
WET_DARKEN = 0.45  # asphalt albedo x (1 - WET_DARKEN * wetness)
SUN_AZIMUTH_RAD = math.radians(215.0)  # fixed, world frame
SIDE_AMBIENT = 0.6
BOTTOM_SHADE = 0.35

POLE_RGB = (70, 72, 76)
LIGHT_HOUSING_RGB = (28, 30, 28)
LAMP_ON_RGB = {
    LightState.RED: (255, 40, 30),
    LightState.YELLOW: (255, 200, 20),
    LightState.GREEN: (40, 255, 110),
}
LAMP_OFF_FACTOR = 0.16
POLE_HALF_M = 0.1
HEAD_DEPTH_M, HEAD_WIDTH_M, HEAD_HEIGHT_M = 0.3, 0.42, 1.0
LAMP_DEPTH_M, LAMP_SIZE_M, LAMP_PITCH_M = 0.1, 0.26, 0.31
REPEATER_BOTTOM_M = 1.5

_VEHICLES = (ActorClass.CAR, ActorClass.VAN, ActorClass.TRUCK, ActorClass.BUS, ActorClass.EMERGENCY_VEHICLE)
# per class: (z_lo / H, f_lo, z_hi0 / H, z_hi1 / H, f_hi) with heights as fractions of the box height
_CLASS_BANDS = np.tile(np.array([-1.0, 1.0, 2.0, 2.0, 1.0]), (max(ActorClass) + 1, 1))
for _cls in _VEHICLES:
    _CLASS_BANDS[_cls] = (0.2, 0.3, 0.56, 0.88, 0.42)
for _cls in (ActorClass.TRUCK, ActorClass.BUS):
    _CLASS_BANDS[_cls] = (0.12, 0.3, 0.6, 0.86, 0.42)
_CLASS_BANDS[ActorClass.PEDESTRIAN] = (0.47, 0.55, 0.86, 1.01, 1.35)
_CLASS_BANDS[ActorClass.CYCLIST] = (0.4, 0.35, 0.86, 1.01, 1.35)
_CLASS_BANDS[ActorClass.TRAFFIC_CONE] = (-1.0, 1.0, 0.45, 0.65, 1.7)
_CLASS_BANDS[ActorClass.BARRIER] = (0.3, 0.5, 0.55, 0.8, 1.7)
_CLASS_BANDS[ActorClass.OPEN_DOOR] = (-1.0, 1.0, 0.5, 0.95, 0.45)

# outward normals of the six box faces in the box frame (x/y only; top and bottom handled apart)
_FACE_NORMALS_XY = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])


@dataclass
class RenderedFrame:
    """One frame of every camera. Arrays are stacked over cameras in rig order."""

    rgb: np.ndarray  # [N_cam, H, W, 3] uint8
    depth: np.ndarray  # [N_cam, H, W] float32, metres along the optical axis, inf for sky
    instance: np.ndarray  # [N_cam, H, W] int32, actor index, -1 for map / static layout / sky
    K: np.ndarray  # [N_cam, 3, 3]
    T_ego_from_cam: np.ndarray  # [N_cam, 4, 4] (OpenCV camera frame)
    camera_names: list[str]
    T_world_from_ego: np.ndarray  # [4, 4], from the ego's rear-axle pose

    @property
    def n_cameras(self) -> int:
        return len(self.camera_names)


@dataclass(frozen=True)
class Lighting:
    """Per-weather constants derived once per weather."""

    brightness: float
    side_direct: float  # strength of the directional term on vertical faces
    sun_dir_xy: np.ndarray  # [2] horizontal direction towards the sun (world frame)
    palette: np.ndarray  # [n_materials, 3]
    sky: np.ndarray  # [2, 3] horizon, zenith
    fog_rgb: np.ndarray  # [3]
    fog: np.ndarray  # [2] sigma per metre, sky_fog


def lighting_for(weather: WeatherLike | None) -> Lighting:
    """Lighting constants for ``weather`` (None: clear noon at full brightness, no fog, dry)."""
    if weather is None:
        alt, cloud, fog_d, wet, bright = 70.0, 0.0, 0.0, 0.0, 1.0
    else:
        alt, cloud = float(weather.sun_altitude_deg), float(weather.cloudiness)
        fog_d, wet, bright = float(weather.fog_density), float(weather.wetness), float(weather.brightness)
    sun_up = alt > 0.0
    side_direct = (1.0 - SIDE_AMBIENT) * math.cos(math.radians(alt)) * (1.0 - 0.7 * cloud) if sun_up else 0.0
    palette = MATERIAL_COLORS * bright
    palette[WET_DARKENED] *= 1.0 - WET_DARKEN * wet
    sunset = float(np.clip(1.0 - (alt - 2.0) / 15.0, 0.0, 1.0)) if alt > -6.0 else 0.0
    horizon = SKY_HORIZON + (SUNSET_HORIZON - SKY_HORIZON) * sunset
    sky = np.stack([horizon, SKY_ZENITH]) * bright
    return Lighting(
        brightness=bright,
        side_direct=side_direct,
        sun_dir_xy=np.array([math.cos(SUN_AZIMUTH_RAD), math.sin(SUN_AZIMUTH_RAD)]),
        palette=np.ascontiguousarray(palette),
        sky=sky,
        fog_rgb=FOG_RGB * bright,
        fog=np.array([HAZE_PER_M + FOG_PER_M * fog_d, min(1.0, 1.2 * fog_d)]),
    )


def face_colors(albedo: np.ndarray, yaw_world: np.ndarray, light: Lighting) -> np.ndarray:
    """Lit colours [M, 6, 3] of boxes with base colours ``albedo`` [M, 3] and world yaws [M]."""
    c, s = np.cos(yaw_world), np.sin(yaw_world)
    nx = c[:, None] * _FACE_NORMALS_XY[None, :, 0] - s[:, None] * _FACE_NORMALS_XY[None, :, 1]
    ny = s[:, None] * _FACE_NORMALS_XY[None, :, 0] + c[:, None] * _FACE_NORMALS_XY[None, :, 1]
    lam = np.maximum(nx * light.sun_dir_xy[0] + ny * light.sun_dir_xy[1], 0.0)  # [M, 4]
    shade = np.concatenate(
        [SIDE_AMBIENT + light.side_direct * lam, np.ones((len(c), 1)), np.full((len(c), 1), BOTTOM_SHADE)],
        axis=1,
    )
    return albedo[:, None, :] * shade[..., None] * light.brightness


@dataclass
class _Static:
    """Map furniture as world-frame boxes: poles, light poles, heads; lamps with their light id and state."""

    xy: np.ndarray  # [S, 2]
    yaw: np.ndarray  # [S]
    half: np.ndarray  # [S, 2]
    z: np.ndarray  # [S, 2]
    albedo: np.ndarray  # [S, 3]
    lamp_light: np.ndarray  # [S] light id for lamps, -1 otherwise
    lamp_state: np.ndarray  # [S] which LightState the lamp shows


def _static_items(road_map: RoadMap) -> _Static:
    rows: list[tuple[float, float, float, float, float, float, float, tuple[int, int, int], int, int]] = []
    for ob in road_map.layout_obstacles:
        x, y = (float(v) for v in ob.center)
        rows.append(
            (x, y, float(ob.yaw), 0.5 * ob.length_m, 0.5 * ob.width_m, 0.0, ob.height_m, POLE_RGB, -1, 0)
        )
    for lid, tl in sorted(road_map.traffic_lights.items()):
        x, y = (float(v) for v in tl.position)
        yaw = float(tl.yaw)
        fwd = np.array([math.cos(yaw), math.sin(yaw)])
        h = float(tl.height_m)
        rows.append((x, y, yaw, POLE_HALF_M, POLE_HALF_M, 0.0, h, POLE_RGB, -1, 0))
        heads = [max(h - HEAD_HEIGHT_M, 0.0)]
        if heads[0] >= REPEATER_BOTTOM_M + HEAD_HEIGHT_M:  # else a short pole: no room for the repeater
            heads.append(REPEATER_BOTTOM_M)
        for bottom in heads:
            rows.append(
                (x, y, yaw, 0.5 * HEAD_DEPTH_M, 0.5 * HEAD_WIDTH_M, bottom, bottom + HEAD_HEIGHT_M,
                 LIGHT_HOUSING_RGB, -1, 0)
            )  # fmt: skip
            lx, ly = np.array([x, y]) + fwd * (0.5 * HEAD_DEPTH_M + 0.5 * LAMP_DEPTH_M - 0.01)
            mid = bottom + 0.5 * HEAD_HEIGHT_M
            for i, state in enumerate((LightState.RED, LightState.YELLOW, LightState.GREEN)):
                zc = mid + (1 - i) * LAMP_PITCH_M
                rows.append(
                    (float(lx), float(ly), yaw, 0.5 * LAMP_DEPTH_M, 0.5 * LAMP_SIZE_M, zc - 0.5 * LAMP_SIZE_M,
                     zc + 0.5 * LAMP_SIZE_M, LAMP_ON_RGB[state], lid, int(state))
                )  # fmt: skip
    if not rows:
        z = np.zeros((0, 2))
        return _Static(z, np.zeros(0), z, z, np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int64))
    cols = list(zip(*rows, strict=True))
    return _Static(
        xy=np.stack([cols[0], cols[1]], axis=1).astype(np.float64),
        yaw=np.array(cols[2], dtype=np.float64),
        half=np.stack([cols[3], cols[4]], axis=1).astype(np.float64),
        z=np.stack([cols[5], cols[6]], axis=1).astype(np.float64),
        albedo=np.array(cols[7], dtype=np.float64),
        lamp_light=np.array(cols[8], dtype=np.int64),
        lamp_state=np.array(cols[9], dtype=np.int64),
    )


class CameraRenderer:
    """Renders every camera of ``rig`` for a world on ``road_map`` (see the module docstring).

    ``backend`` "numba" (default) or "numpy" (the slow reference). ``max_distance_m`` drops boxes whose
    centre is farther from the ego (they would be a pixel or less). All cameras must share one image size.
    """

    def __init__(
        self,
        road_map: RoadMap,
        rig: Rig,
        weather: WeatherLike | None = None,
        *,
        ground_resolution_m: float = DEFAULT_RESOLUTION_M,
        max_distance_m: float = 250.0,
        backend: str = "numba",
    ):
        if backend not in ("numba", "numpy"):
            raise ValueError(f"CameraRenderer: backend must be 'numba' or 'numpy', got {backend!r}")
        self.road_map = road_map
        self.rig = rig
        self.height, self.width = rig.image_size()
        self.backend = backend
        self.max_distance_m = float(max_distance_m)
        self.ground: GroundRaster = ground_raster(road_map, ground_resolution_m)
        self._static = st = _static_items(road_map)
        self._static_band = np.tile(np.array([-1.0, 1.0, 1e9, 1e9, 1.0]), (len(st.yaw), 1))  # no bands
        self._lamps = np.flatnonzero(st.lamp_light >= 0)
        self._light_ids = [int(i) for i in np.unique(st.lamp_light[self._lamps])]
        self._lamp_slot = np.searchsorted(
            np.array(self._light_ids, dtype=np.int64), st.lamp_light[self._lamps]
        )
        self._lamp_on = st.albedo[self._lamps][:, None, :] * np.ones((1, 6, 1))  # emissive: never dimmed
        self._K = rig.K()
        self._T_ego_from_cam = rig.T_ego_from_cam()
        for cam in rig.cameras:
            if cam.z_m <= 0:
                raise ValueError(f"camera {cam.name!r}: z_m must be > 0 to see the ground, got {cam.z_m}")
        self._cam_rot = np.ascontiguousarray(self._T_ego_from_cam[:, :3, :3])
        self._cam_o = np.ascontiguousarray(self._T_ego_from_cam[:, :3, 3])
        self._cam_f = np.ascontiguousarray(self._K[:, [0, 1, 0, 1], [0, 1, 2, 2]])
        self._raster, self._levels = pack_levels(self.ground.levels)
        self._ground_geo = np.array([self.ground.x0, self.ground.y0, 1.0 / self.ground.resolution_m])
        self._background = camera_background(self._cam_rot, self._cam_o, self._cam_f, self.height, self.width)
        self._level = mip_levels(
            self._background, self._cam_f, self.ground.resolution_m, len(self.ground.levels)
        )
        self.set_weather(weather)

    def set_weather(self, weather: WeatherLike | None) -> None:
        """Change the weather (recomputes the per-pixel sky and fog layers, about 0.06 s at 6 x 256 x 704)."""
        self.weather = weather
        self.lighting = light = lighting_for(weather)
        self._fogq, self._sky, self._ground_lut = weather_layers(
            self._background, light.palette, light.sky, light.fog_rgb, light.fog
        )
        st = self._static
        self._static_rgb = face_colors(st.albedo, st.yaw, self.lighting)
        self._lamp_off = self._static_rgb[self._lamps] * LAMP_OFF_FACTOR

    @property
    def camera_names(self) -> list[str]:
        return self.rig.camera_names

    # ----------------------------------------------------------------------------- scene assembly
    def build_scene(self, world: World) -> Scene:
        """The packed :class:`Scene` of ``world`` seen from its ego (public for tests and tools)."""
        if world.ego is None:
            raise ValueError("CameraRenderer.render: the world has no ego (spawn_ego first)")
        if world.map is not self.road_map:
            raise ValueError("CameraRenderer.render: the world's map is not the renderer's map")
        ex, ey, eyaw = float(world.ego.x_m), float(world.ego.y_m), float(world.ego.yaw_rad)
        ec, es = math.cos(eyaw), math.sin(eyaw)
        light = self.lighting
        a = world.actors
        n = a.n
        # actors, the ego (row 0) excluded; then the static furniture: boxes in the ego frame
        wx = np.concatenate([a.x[1:n], self._static.xy[:, 0]]) - ex
        wy = np.concatenate([a.y[1:n], self._static.xy[:, 1]]) - ey
        x_e, y_e = ec * wx + es * wy, ec * wy - es * wx
        keep = np.flatnonzero(x_e * x_e + y_e * y_e <= self.max_distance_m**2)
        n_a = n - 1
        act = keep[keep < n_a]  # rows of the actor part
        idx = act + 1  # actor indices
        yaw_w = np.concatenate([a.yaw[idx], self._static.yaw[keep[keep >= n_a] - n_a]])
        yaw_e = yaw_w - eyaw
        h = a.height[idx]
        st_keep = keep[keep >= n_a] - n_a

        s_rgb = self._static_rgb
        if len(self._lamps):
            s_rgb = s_rgb.copy()
            state = np.array([int(world.light_state(lid)) for lid in self._light_ids], dtype=np.int64)
            on = state[self._lamp_slot] == self._static.lamp_state[self._lamps]
            s_rgb[self._lamps] = np.where(on[:, None, None], self._lamp_on, self._lamp_off)
        bands = _CLASS_BANDS[a.cls[idx]]
        bands[:, [0, 2, 3]] *= h[:, None]

        item_xy = np.stack([x_e[keep], y_e[keep]], axis=1)
        item_cs = np.stack([np.cos(yaw_e), np.sin(yaw_e)], axis=1)
        item_half = np.concatenate(
            [0.5 * np.stack([a.length[idx], a.width[idx]], axis=1), self._static.half[st_keep]]
        )
        item_z = np.concatenate([np.stack([np.zeros_like(h), h], axis=1), self._static.z[st_keep]])
        item_band = np.concatenate([bands, self._static_band[st_keep]])
        item_rgb = np.concatenate(
            [face_colors(a.color[idx].astype(np.float64), yaw_w[: len(idx)], light), s_rgb[st_keep]]
        )
        item_inst = np.concatenate([idx, np.full(len(st_keep), -1)]).astype(np.int32)
        rects = screen_rects(
            item_xy,
            item_cs,
            item_half,
            item_z,
            self._cam_rot,
            self._cam_o,
            self._cam_f,
            self.height,
            self.width,
        )
        return Scene(
            height=self.height,
            width=self.width,
            cam_rot=self._cam_rot,
            cam_o=self._cam_o,
            cam_f=self._cam_f,
            bg_depth=self._background.depth,
            bg_hit=self._background.hit,
            bg_fogq=self._fogq,
            bg_level=self._level,
            bg_sky=self._sky,
            item_xy=item_xy,
            item_cs=item_cs,
            item_half=item_half,
            item_z=item_z,
            item_rgb=item_rgb,
            item_band=item_band,
            item_inst=item_inst,
            rects=rects,
            raster=self._raster,
            levels=self._levels,
            ground_geo=self._ground_geo,
            ego_pose=np.array([ex, ey, ec, es]),
            ground_lut=self._ground_lut,
            fog_rgb=light.fog_rgb,
            fog=light.fog,
        )

    def render(self, world: World) -> RenderedFrame:
        """Render all cameras for the world's current state."""
        scene = self.build_scene(world)
        rgb, depth, inst = render_numba(scene) if self.backend == "numba" else render_numpy(scene)
        ex, ey, ec, es = scene.ego_pose
        T = np.eye(4)
        T[:2, :2] = [[ec, -es], [es, ec]]
        T[:2, 3] = ex, ey
        return RenderedFrame(
            rgb=rgb,
            depth=depth,
            instance=inst,
            K=self._K.copy(),
            T_ego_from_cam=self._T_ego_from_cam.copy(),
            camera_names=self.rig.camera_names,
            T_world_from_ego=T,
        )


def jpeg_roundtrip(rgb: np.ndarray, quality: int = 20) -> np.ndarray:
    """Compress and decompress with JPEG (Bench2Drive stores its camera images at quality 20; do the same at
    inference). ``rgb`` uint8 [H, W, 3] or [N, H, W, 3] -> the same shape."""
    import io

    from PIL import Image

    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.shape[-1] != 3 or arr.ndim not in (3, 4):
        raise ValueError(
            f"jpeg_roundtrip expects uint8 [H, W, 3] or [N, H, W, 3], got {arr.dtype} {arr.shape}"
        )
    if not 1 <= quality <= 100:
        raise ValueError(f"jpeg_roundtrip: quality must be in 1..100, got {quality}")
    if arr.ndim == 4:
        return np.stack([jpeg_roundtrip(im, quality) for im in arr])
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))
