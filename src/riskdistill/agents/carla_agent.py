"""A riskdistill student as a CARLA leaderboard agent (Bench2Drive's ``leaderboard_evaluator`` loads it).

    python leaderboard/leaderboard/leaderboard_evaluator.py \
        --agent <site-packages>/riskdistill/agents/bench2drive_agent.py \
        --agent-config agent.json ...           # or --agent-config <checkpoint folder>

Every step (``run_step(input_data, timestamp)``) converts CARLA's sensor dictionary into our frames once
(:mod:`~riskdistill.agents.carla_convert`): cameras BGRA -> RGB with the rig's ``K`` / ``T_ego_from_cam``,
GNSS -> the vehicle origin, IMU compass -> yaw, IMU accelerometer / gyroscope -> longitudinal acceleration
and yaw rate, speedometer -> speed; the route's GPS waypoints (``set_global_plan``) -> the target point and
the command (:class:`~riskdistill.agents.carla_route.RouteTracker`). The result is an
:class:`~riskdistill.contracts.agent.AgentInput`, given to :class:`riskdistill.models.StudentDriver` (the one
``AgentInput -> Observation`` conversion); the plan is tracked by the built-in waypoint controller
(``sim.vehicle.WaypointController``) and returned as a ``carla.VehicleControl`` (steer sign flipped).

The rig is the checkpoint's (``config.json`` ``rig`` / the training data's manifest, see
``evaluation.drivers.StudentDriverFactory``), at the student's image size, cameras in the student's order.
``steer`` in the ego state is the agent's own last steering command (CARLA has no steering sensor), as the
built-in environment reports its last command.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from riskdistill.agents.carla_convert import (
    GeoReference,
    camera_sensor_specs,
    carla_control_values,
    carla_to_our_xy,
    rear_axle_pose,
    rgb_from_bgra,
    world_to_ego,
    yaw_from_compass,
)
from riskdistill.agents.carla_route import COMMAND_ANNOUNCE_M, TARGET_AHEAD_M, RouteTracker, command_value
from riskdistill.config import ConfigError, StrictConfig
from riskdistill.contracts.agent import AgentInput, Controls, EgoState
from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M
from riskdistill.types import Command

log = logging.getLogger("riskdistill.agents")

GNSS_ID, IMU_ID, SPEED_ID = "GPS", "IMU", "SPEED"
CARLA_FIXED_DT_S = 0.05  # Bench2Drive runs CARLA at 20 Hz


class ControllerConfig(StrictConfig):
    """The waypoint controller (``sim.vehicle``): pure pursuit + PI on speed. Tune for the CARLA vehicle
    (the defaults are the built-in simulator's: ``max_steer_rad`` is the front-wheel angle at steer 1)."""

    wheelbase_m: float = Field(default=2.9, gt=0)
    max_steer_rad: float = Field(default=0.6, gt=0)
    kp_speed: float = 0.6
    ki_speed: float = 0.1
    lookahead_min_m: float = Field(default=3.0, gt=0)
    lookahead_gain_s: float = Field(default=0.6, ge=0)


class CarlaAgentConfig(StrictConfig):
    """The agent's JSON config (``--agent-config``); only ``checkpoint`` is required."""

    checkpoint: str = Field(
        min_length=1, description="student checkpoint folder (model.safetensors + config.json)"
    )
    rig: str | None = Field(default=None, description="rig name or JSON file; default: the checkpoint's rig")
    camera_hw: tuple[int, int] | None = Field(
        default=None, description="CARLA image size; default the student's"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    with_risk: bool = Field(default=True, description="run the RiskHead (its map is in last_outputs['risk'])")
    history_stride: int = Field(default=10, ge=1, description="CARLA steps to the previous frame (temporal)")
    occupancy_brake: bool = Field(
        default=False,
        description="stop when the student's own BEV occupancy shows an obstacle in its planned path within "
        "stopping distance (models.occupancy_brake; needs an occupancy head)",
    )
    rear_axle_to_origin_m: float = Field(default=EGO_REAR_AXLE_TO_CENTER_M, ge=0.0)
    target_ahead_m: float = Field(default=TARGET_AHEAD_M, gt=0)
    command_announce_m: float = Field(default=COMMAND_ANNOUNCE_M, ge=0)
    geo_reference: tuple[float, float] | None = Field(
        default=None, description="(lat_ref, lon_ref); default: recovered from the route's GPS/world pairs"
    )
    controller: ControllerConfig = Field(default_factory=ControllerConfig)


def resolve_agent_config(path_to_conf_file: str | Path) -> tuple[CarlaAgentConfig, str]:
    """The config of ``setup(path_to_conf_file)`` and the route's save name: Bench2Drive appends
    ``+<save_name>`` to ``--agent-config``. A JSON file is a :class:`CarlaAgentConfig`; a folder is a
    checkpoint (everything else default). ConfigError naming the path otherwise."""
    text, save_name = str(path_to_conf_file), ""
    while not Path(text).exists() and "+" in text:
        text, _, tail = text.rpartition("+")
        save_name = tail if not save_name else f"{tail}+{save_name}"
    path = Path(text)
    if path.is_dir():
        return CarlaAgentConfig(checkpoint=str(path)), save_name
    if path.is_file():
        cfg = CarlaAgentConfig.load(path)
        ckpt = Path(cfg.checkpoint)
        if not ckpt.is_absolute():  # relative to the config file
            cfg = cfg.model_copy(update={"checkpoint": str((path.parent / ckpt).resolve())})
        return cfg, save_name
    raise ConfigError(
        f"agent config {path_to_conf_file!r}: no such file or folder (give a CarlaAgentConfig JSON file or a "
        "student checkpoint folder)"
    )


def _leaderboard_base() -> type:
    """The leaderboard's ``AutonomousAgent`` inside a Bench2Drive / CARLA leaderboard checkout, else
    :class:`StandaloneAgentBase` (the same interface without a CARLA world)."""
    try:
        from leaderboard.autoagents.autonomous_agent import AutonomousAgent
    except ImportError:
        return StandaloneAgentBase
    return AutonomousAgent


class StandaloneAgentBase:
    """What the leaderboard's ``AutonomousAgent`` gives an agent, for use without a CARLA world (tests,
    replays of recorded clips): the constructor signature, ``set_global_plan`` and the track."""

    def __init__(self, carla_host: str = "localhost", carla_port: int = 2000, debug: bool = False):
        self.track = "SENSORS"
        self._global_plan: list | None = None
        self._global_plan_world_coord: list | None = None
        self.wallclock_t0 = None

    def set_global_plan(self, global_plan_gps: list, global_plan_world_coord: list) -> None:
        self._global_plan = list(global_plan_gps)
        self._global_plan_world_coord = list(global_plan_world_coord)

    @staticmethod
    def get_ros_version() -> int:
        return -1


def _location_xy(transform: Any) -> tuple[float, float]:
    """``(x, y)`` of a ``carla.Transform`` / ``carla.Location`` / ``(x, y[, z])`` sequence."""
    loc = getattr(transform, "location", transform)
    if hasattr(loc, "x"):
        return float(loc.x), float(loc.y)
    return float(loc[0]), float(loc[1])


def _gps_latlon(point: Any) -> tuple[float, float]:
    if isinstance(point, dict):
        return float(point["lat"]), float(point["lon"])
    return float(point[0]), float(point[1])


class RiskdistillAgent(_leaderboard_base()):  # type: ignore[misc]
    """The student as a leaderboard agent; see the module doc. After each ``run_step``: ``last_input``
    (the :class:`AgentInput`), ``last_plan`` (``[6, 2]`` ego waypoints), ``last_controls`` (ours, steer
    positive = left) and ``driver.last_outputs`` (the student's outputs, e.g. the risk map)."""

    def __init__(self, carla_host: str = "localhost", carla_port: int = 2000, debug: bool = False):
        self._dense_plan_gps: list | None = None
        self._dense_plan_world: list | None = None
        super().__init__(carla_host, carla_port, debug)

    # ---------------------------------------------------------------------------------- leaderboard API
    def set_global_plan(self, global_plan_gps: list, global_plan_world_coord: list) -> None:
        """Keep the dense route (the base class keeps a 50 m down-sampled copy in ``_global_plan``)."""
        self._dense_plan_gps = list(global_plan_gps)
        self._dense_plan_world = list(global_plan_world_coord) if global_plan_world_coord else None
        super().set_global_plan(global_plan_gps, global_plan_world_coord)
        self._tracker = None

    def setup(self, path_to_conf_file: str) -> None:
        import torch

        from riskdistill.contracts.rig import load_rig, resize_rig
        from riskdistill.evaluation.drivers import StudentDriverFactory
        from riskdistill.models import StudentDriver, load_student
        from riskdistill.models.occupancy_brake import OccupancyBrake
        from riskdistill.sim.vehicle import VehicleParams, WaypointController

        try:
            from leaderboard.autoagents.autonomous_agent import Track

            self.track = Track.SENSORS
        except ImportError:
            self.track = "SENSORS"
        self.config, self.save_name = resolve_agent_config(path_to_conf_file)
        cfg = self.config
        use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("agent config device='cuda' but CUDA is not available")
        self.device = torch.device("cuda" if use_cuda else "cpu")
        student = load_student(cfg.checkpoint, map_location=self.device).eval()
        self.rig_name = cfg.rig or StudentDriverFactory(str(Path(cfg.checkpoint).resolve())).checkpoint_rig()
        rig = load_rig(self.rig_name)
        names = list(student.cfg.cameras) if student.cfg.cameras else rig.camera_names
        hw = tuple(cfg.camera_hw or student.cfg.image_hw)
        rig = resize_rig(rig, int(hw[0]), int(hw[1]))
        cams = [rig.camera(n) for n in names]  # KeyError names the rig's cameras
        self.camera_names = tuple(names)
        self.camera_hw = (int(hw[0]), int(hw[1]))
        self.K = np.stack([c.K() for c in cams])
        self.T_ego_from_cam = np.stack([c.T_ego_from_cam() for c in cams])
        self.driver = StudentDriver(
            student,
            self.rig_name,
            tuple(student.cfg.image_hw),
            with_risk=cfg.with_risk,
            history_stride=cfg.history_stride,
            occupancy_brake=OccupancyBrake() if cfg.occupancy_brake else None,
        )
        c = cfg.controller
        params = VehicleParams(wheelbase_m=c.wheelbase_m, max_steer_rad=c.max_steer_rad)
        self.controller = WaypointController(
            params, kp_speed=c.kp_speed, ki_speed=c.ki_speed, lookahead_min_m=c.lookahead_min_m,
            lookahead_gain_s=c.lookahead_gain_s,
        )  # fmt: skip
        self.geo = GeoReference(*cfg.geo_reference) if cfg.geo_reference else None
        self._tracker: RouteTracker | None = None
        self._last_steer = 0.0
        self._last_yaw = 0.0
        self._last_t: float | None = None
        self.last_input: AgentInput | None = None
        self.last_plan: np.ndarray | None = None
        self.last_controls: Controls | None = None
        self.driver.reset()
        self.controller.reset()

    def sensors(self) -> list[dict[str, Any]]:
        """The rig's cameras (CARLA transforms relative to the vehicle), GNSS, IMU and speedometer."""
        specs = camera_sensor_specs(
            self.camera_names, self.K, self.T_ego_from_cam, self.camera_hw, self.config.rear_axle_to_origin_m
        )
        zero = {"x": 0.0, "y": 0.0, "z": 0.0, "roll": 0.0, "pitch": 0.0, "yaw": 0.0}
        specs += [
            {"type": "sensor.other.gnss", "id": GNSS_ID, **zero},
            {"type": "sensor.other.imu", "id": IMU_ID, **zero},
            {"type": "sensor.speedometer", "id": SPEED_ID, "reading_frequency": 1.0 / CARLA_FIXED_DT_S},
        ]
        return specs

    def run_step(self, input_data: dict[str, Any], timestamp: float) -> Any:
        """One CARLA step -> ``carla.VehicleControl``."""
        values = self.step_controls(input_data, timestamp)
        try:
            import carla
        except ImportError as exc:
            raise ImportError(
                "RiskdistillAgent.run_step returns a carla.VehicleControl: install the CARLA client that "
                "matches your server (e.g. `pip install carla==0.9.15`, or CARLA's PythonAPI egg)"
            ) from exc
        return carla.VehicleControl(**values)

    def destroy(self) -> None:
        self.driver = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    # ---------------------------------------------------------------------------------- conversion
    def _route_tracker(self) -> RouteTracker | None:
        if self._tracker is not None or not self._dense_plan_gps:
            return self._tracker
        gps = [_gps_latlon(p) for p, _ in self._dense_plan_gps]
        if self.geo is None:
            if self._dense_plan_world:
                x0, y0 = _location_xy(self._dense_plan_world[0][0])
                self.geo = GeoReference.from_pair(gps[0][0], gps[0][1], x0, y0)
            else:
                self.geo = GeoReference()
                log.warning(
                    "no world coordinates with the route: GNSS uses the default geo-reference %s", self.geo
                )
        lat, lon = np.asarray(gps).T
        x_c, y_c = self.geo.to_world(lat, lon)
        cmds = [command_value(opt) for _, opt in self._dense_plan_gps]
        self._tracker = RouteTracker(
            carla_to_our_xy(x_c, y_c), cmds, self.config.target_ahead_m, self.config.command_announce_m
        )
        return self._tracker

    def agent_input(self, input_data: dict[str, Any], timestamp: float) -> AgentInput:
        """CARLA's sensor dictionary -> :class:`AgentInput` (our frames), advancing the route tracker."""
        missing = [k for k in (*self.camera_names, GNSS_ID, IMU_ID, SPEED_ID) if k not in input_data]
        if missing:
            raise KeyError(f"input_data lacks sensor(s) {missing}; it has {sorted(input_data)}")
        images = np.stack([rgb_from_bgra(input_data[n][1]) for n in self.camera_names])
        imu = np.asarray(input_data[IMU_ID][1], dtype=np.float64).reshape(-1)
        compass = float(imu[6])
        yaw = yaw_from_compass(compass) if math.isfinite(compass) else self._last_yaw  # NaN on some frames
        self._last_yaw = yaw
        tracker = self._route_tracker()
        geo = self.geo or GeoReference()
        lat, lon = (float(v) for v in np.asarray(input_data[GNSS_ID][1], dtype=np.float64)[:2])
        x_c, y_c = geo.to_world(lat, lon)
        origin = carla_to_our_xy(x_c, y_c)
        pose = rear_axle_pose(origin, yaw, self.config.rear_axle_to_origin_m)
        if tracker is not None:
            target_world, command = tracker.update(origin)
            target_ego = world_to_ego(target_world, pose)
        else:
            log.warning("no route (set_global_plan was not called): the target point is straight ahead")
            target_ego, command = np.array([self.config.target_ahead_m, 0.0]), Command.LANE_FOLLOW
        speed = input_data[SPEED_ID][1]
        speed_mps = float(speed["speed"] if isinstance(speed, dict) else np.asarray(speed).reshape(-1)[0])
        ego = EgoState(
            speed_mps=speed_mps,
            accel_mps2=float(imu[0]) if math.isfinite(imu[0]) else 0.0,
            yaw_rate_radps=-float(imu[5]) if math.isfinite(imu[5]) else 0.0,  # CARLA's z turns clockwise
            steer=self._last_steer,
        )
        return AgentInput(
            timestamp_s=float(timestamp),
            ego=ego,
            command=command,
            target_point_ego=np.asarray(target_ego, dtype=np.float64),
            images=images,
            K=self.K,
            T_ego_from_cam=self.T_ego_from_cam,
            camera_names=self.camera_names,
        )

    def step_controls(self, input_data: dict[str, Any], timestamp: float) -> dict[str, float]:
        """Everything of :meth:`run_step` but the ``carla`` type: the ``VehicleControl`` field values."""
        ai = self.agent_input(input_data, timestamp)
        action = self.driver.act(ai)
        plan = np.asarray(action.waypoints_ego, dtype=np.float64)
        dt = CARLA_FIXED_DT_S if self._last_t is None else max(float(timestamp) - self._last_t, 1e-3)
        self._last_t = float(timestamp)
        controls = self.controller.control(plan, ai.ego.speed_mps, dt).clipped()
        self._last_steer = controls.steer
        self.last_input, self.last_plan, self.last_controls = ai, plan, controls
        return carla_control_values(controls.throttle, controls.steer, controls.brake)


def get_entry_point() -> str:
    """The leaderboard's hook: the name of the agent class in this module."""
    return "RiskdistillAgent"
