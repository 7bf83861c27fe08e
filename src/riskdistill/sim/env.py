"""The closed-loop environment: a scenario instance, a driver's actions, and Bench2Drive's infractions.

    env = DrivingEnv()
    agent_input = env.reset(instance)
    while not done:
        agent_input, events, done = env.step(driver.act(agent_input))
    log = env.route_log()

An action is a plan of ego waypoints (tracked by the built-in controller, as Bench2Drive agents do
with a PID) or direct controls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from riskdistill.contracts.agent import Action, AgentInput, EgoState
from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M
from riskdistill.geometry import box_corners_2d, boxes_overlap_matrix
from riskdistill.sim.actors import Behavior
from riskdistill.sim.events import InfractionEvent, RouteEnd
from riskdistill.sim.scenarios.base import ScenarioInstance
from riskdistill.sim.vehicle import WaypointController
from riskdistill.sim.world import World
from riskdistill.types import ActorClass, Command, Infraction, LightState

ROUTE_DEVIATION_M = 30.0
BLOCKED_SPEED_MPS = 0.1
BLOCKED_TIME_S = 60.0
STOP_SPEED_MPS = 0.1
STOP_ZONE_M = 4.0  # the ego must come to a stop within this distance before a stop-sign line
ROUTE_END_TOLERANCE_M = 2.0
TARGET_POINT_AHEAD_M = 20.0

ObservationFn = Callable[[ScenarioInstance, World], dict]  # e.g. sim.sensors.observe.CameraObserver


@dataclass
class RouteLog:
    """Everything the scorer needs about one route, recorded at 10 Hz."""

    route_length_m: float
    end: RouteEnd = RouteEnd.RUNNING
    events: list[InfractionEvent] = field(default_factory=list)
    progress_m: list[float] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)
    x_m: list[float] = field(default_factory=list)
    y_m: list[float] = field(default_factory=list)
    yaw_rad: list[float] = field(default_factory=list)
    speed_mps: list[float] = field(default_factory=list)
    traffic_speed_mps: list[float] = field(default_factory=list)  # NaN when no traffic around
    passed_first_junction_cleanly: bool | None = None

    @property
    def route_completion_pct(self) -> float:
        if not self.progress_m:
            return 0.0
        return float(min(100.0, 100.0 * max(self.progress_m) / max(self.route_length_m, 1e-6)))


class DrivingEnv:
    """Runs one route at a time. Ground truth stays inside; the driver sees :class:`AgentInput`."""

    def __init__(self, observe: ObservationFn | None = None, record_log: bool = True):
        self._observe = observe
        self._record_log = record_log
        #: None: observe (render the sensors) at every step; else only when it returns True, e.g. a driver's
        #: ``needs_sensors`` (``sim.rollout.run_route`` sets it): the other steps' inputs carry no images.
        self.observe_when: Callable[[], bool] | None = None
        self.instance: ScenarioInstance | None = None
        self.world: World | None = None
        self.controller: WaypointController | None = None
        self.progress_m = 0.0
        self.log: RouteLog | None = None
        self._last_controls_steer = 0.0

    # ----------------------------------------------------------------------------- API
    def reset(self, instance: ScenarioInstance) -> AgentInput:
        self.instance = instance
        self.world = instance.world
        self.controller = WaypointController(self.world.ego_params)
        self.progress_m = self.instance.start_s_m
        self.log = RouteLog(route_length_m=instance.route.length_m - instance.start_s_m)
        self._colliding: set[int] = set()
        self._blocked_s = 0.0
        self._outside_m = 0.0
        self._stop_zone_min_speed: dict[int, float] = {}
        self._route_stop_lines = self._stop_lines_on_route()
        self._passed_lines: set[int] = set()
        self._scenario_timeout_reported = False
        self._junction_infraction = False
        self._last_controls_steer = 0.0
        self._record()
        return self.agent_input()

    def step(self, action: Action) -> tuple[AgentInput, list[InfractionEvent], bool]:
        if self.world is None or self.instance is None or self.log is None:
            raise RuntimeError("call reset() before step()")
        if self.log.end != RouteEnd.RUNNING:
            raise RuntimeError("the route has ended; call reset()")
        world = self.world
        if action.controls is not None:
            controls = action.controls
        else:
            assert self.controller is not None and action.waypoints_ego is not None
            controls = self.controller.control(action.waypoints_ego, world.ego.speed_mps, world.dt_s)
        self._last_controls_steer = controls.clipped().steer
        prev_front = self._ego_front()
        self.instance.script.update(world, self.progress_m)
        world.step(controls)
        events: list[InfractionEvent] = []
        self._update_progress()
        events += self._check_collisions()
        events += self._check_stop_lines(prev_front, self._ego_front())
        self._check_outside_lanes()
        events += self._check_scenario_timeout()
        self._check_termination()
        if self.log.end != RouteEnd.RUNNING:
            events += self._final_events()
        self.log.events += events
        self._record()
        return self.agent_input(), events, self.log.end != RouteEnd.RUNNING

    def agent_input(self) -> AgentInput:
        """The driver's view: ego state, command, target point, and sensors if an observer is set."""
        world, route = self.world, self.instance.route
        e = world.ego
        target_world = route.target_point(self.progress_m, TARGET_POINT_AHEAD_M)
        c, s = np.cos(e.yaw_rad), np.sin(e.yaw_rad)
        d = target_world - np.array([e.x_m, e.y_m])
        target_ego = np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1]])
        inp = AgentInput(
            timestamp_s=world.time_s,
            ego=EgoState(
                speed_mps=e.speed_mps,
                accel_mps2=world.ego_accel_mps2,
                yaw_rate_radps=world.ego_yaw_rate_radps,
                steer=self._last_controls_steer,
            ),
            command=Command(route.command_at(self.progress_m)),
            target_point_ego=target_ego,
        )
        if self._observe is not None and (self.observe_when is None or self.observe_when()):
            obs = self._observe(self.instance, world)
            inp.images = obs.get("images")
            inp.K = obs.get("K")
            inp.T_ego_from_cam = obs.get("T_ego_from_cam")
            inp.camera_names = tuple(obs.get("camera_names", ()))
            inp.extras.update(obs.get("extras") or {})  # e.g. camera_valid under a dropped camera
        return inp

    def route_log(self) -> RouteLog:
        if self.log is None:
            raise RuntimeError("no route has run")
        return self.log

    def abort(self, end: RouteEnd) -> None:
        """Mark the route as ended from outside (a crashed agent or simulation)."""
        if self.log is not None and self.log.end == RouteEnd.RUNNING:
            self.log.end = end

    # ----------------------------------------------------------------------------- internals
    def _ego_front(self) -> np.ndarray:
        e = self.world.ego
        d = EGO_REAR_AXLE_TO_CENTER_M + 0.5 * self.world.actors.length[0]
        return np.array([e.x_m + d * np.cos(e.yaw_rad), e.y_m + d * np.sin(e.yaw_rad)])

    def _ego_centre(self) -> np.ndarray:
        return np.array([self.world.actors.x[0], self.world.actors.y[0]])

    def _update_progress(self) -> None:
        route = self.instance.route
        s, lat = route.path.project(self._ego_centre(), s_hint=self.progress_m, window_m=12.0)
        self._lateral_m = abs(lat)
        if abs(lat) < 4.0:
            self.progress_m = max(self.progress_m, s)

    def _check_collisions(self) -> list[InfractionEvent]:
        a = self.world.actors
        n = a.n
        if n <= 1 and not self.world.map.layout_obstacles:
            return []
        ego_c = box_corners_2d(np.array([[a.x[0], a.y[0]]]), a.yaw[:1], a.length[:1], a.width[:1])
        events = []
        if n > 1:
            others = np.arange(1, n)
            near = (a.x[1:n] - a.x[0]) ** 2 + (a.y[1:n] - a.y[0]) ** 2 < 15.0**2
            idx = others[near]
            hits: set[int] = set()
            if len(idx):
                corners = box_corners_2d(
                    np.stack([a.x[idx], a.y[idx]], axis=1), a.yaw[idx], a.length[idx], a.width[idx]
                )
                overlap = boxes_overlap_matrix(ego_c, corners)[0]
                hits = {int(j) for j in idx[overlap]}
            for j in sorted(hits - self._colliding):
                cls = ActorClass(int(a.cls[j]))
                if cls == ActorClass.PEDESTRIAN:
                    kind, type_name = Infraction.COLLISION_PEDESTRIAN, "walker.pedestrian"
                elif cls.is_static_obstacle:
                    kind, type_name = Infraction.COLLISION_LAYOUT, f"static.prop.{cls.name.lower()}"
                else:
                    kind, type_name = Infraction.COLLISION_VEHICLE, f"vehicle.{cls.name.lower()}"
                events.append(
                    self._event(kind, f"Agent collided against object with type={type_name} and id={j}", j)
                )
                # Physical response: both come to rest.
                self.world.ego.speed_mps = 0.0
                if a.behavior[j] in (Behavior.VEHICLE, Behavior.WALKER):
                    a.speed[j] = 0.0
                    a.hold[j] = True
            self._colliding = hits
        for k, ob in enumerate(self.world.map.layout_obstacles):
            key = -1 - k
            if (ob.center[0] - a.x[0]) ** 2 + (ob.center[1] - a.y[0]) ** 2 > 12.0**2:
                self._colliding.discard(key)
                continue
            oc = box_corners_2d(
                ob.center[None], np.array([ob.yaw]), np.array([ob.length_m]), np.array([ob.width_m])
            )
            if boxes_overlap_matrix(ego_c, oc)[0, 0]:
                if key not in self._colliding:
                    events.append(
                        self._event(
                            Infraction.COLLISION_LAYOUT,
                            "Agent collided against object with type=static.prop.pole",
                        )
                    )
                    self.world.ego.speed_mps = 0.0
                self._colliding.add(key)
            else:
                self._colliding.discard(key)
        return events

    def _stop_lines_on_route(self) -> list[int]:
        lanes = self.instance.route.route_lanes_set()
        return [sid for sid, sl in self.world.map.stop_lines.items() if sl.lane_id in lanes]

    def _check_stop_lines(self, front_before: np.ndarray, front_after: np.ndarray) -> list[InfractionEvent]:
        events = []
        world = self.world
        speed = world.ego.speed_mps
        for sid in self._route_stop_lines:
            sl = world.map.stop_lines[sid]
            lane = world.map.lanes[sl.lane_id]
            line_pt = lane.point_at(sl.s_m)
            heading = float(lane.heading_at(sl.s_m))
            fwd = np.array([np.cos(heading), np.sin(heading)])
            d_before = float((line_pt - front_before) @ fwd)
            d_after = float((line_pt - front_after) @ fwd)
            lateral = abs(float((front_after - line_pt) @ np.array([-fwd[1], fwd[0]])))
            if lateral > 0.5 * lane.width_m + 1.0:
                continue
            if sl.traffic_light_id is None and sl.stop_sign and 0.0 <= d_after <= STOP_ZONE_M:
                self._stop_zone_min_speed[sid] = min(self._stop_zone_min_speed.get(sid, np.inf), speed)
            crossed = d_before > 0.0 >= d_after and sid not in self._passed_lines
            if not crossed:
                continue
            self._passed_lines.add(sid)
            if sl.traffic_light_id is not None:
                if world.light_state(sl.traffic_light_id) == LightState.RED:
                    self._junction_infraction = True
                    events.append(
                        self._event(Infraction.RED_LIGHT, f"Agent ran a red light {sl.traffic_light_id}")
                    )
            elif sl.stop_sign and self._stop_zone_min_speed.get(sid, np.inf) > STOP_SPEED_MPS:
                self._junction_infraction = True
                events.append(self._event(Infraction.STOP_SIGN, f"Agent ran a stop with id={sid}"))
            if self.log.passed_first_junction_cleanly is None:
                self.log.passed_first_junction_cleanly = not self._junction_infraction
        return events

    def _check_outside_lanes(self) -> None:
        if len(self.log.x_m) == 0:
            return
        step_m = float(
            np.hypot(
                self.world.actors.x[0] - self._prev_centre[0], self.world.actors.y[0] - self._prev_centre[1]
            )
        )
        if self._outside_route_lanes():
            self._outside_m += step_m

    def _outside_route_lanes(self) -> bool:
        """True when the ego centre is not on a driving lane of the route's direction (or its neighbours)."""
        world = self.world
        xy = self._ego_centre()
        lanes = self.instance.allowed_lane_ids
        for lid in lanes:
            lane = world.map.lanes[lid]
            s, lat = lane.project(xy)
            if abs(lat) <= 0.5 * lane.width_m + 0.3 and -0.5 < s < lane.length_m + 0.5:
                return False
        return True

    def _check_scenario_timeout(self) -> list[InfractionEvent]:
        sc = self.instance.script
        if self._scenario_timeout_reported or sc.triggered_at_s is None:
            return []
        if self.progress_m >= self.instance.scenario_end_s_m:
            return []
        if self.world.time_s - sc.triggered_at_s > self.instance.scenario_timeout_s:
            self._scenario_timeout_reported = True
            return [self._event(Infraction.SCENARIO_TIMEOUT, "Agent timed out a scenario")]
        return []

    def _check_termination(self) -> None:
        log = self.log
        route = self.instance.route
        if self.progress_m >= route.length_m - ROUTE_END_TOLERANCE_M:
            log.end = RouteEnd.COMPLETED
            return
        dist = float(np.min(np.linalg.norm(route.path.points - self._ego_centre(), axis=1)))
        if dist > ROUTE_DEVIATION_M:
            log.end = RouteEnd.DEVIATED
            return
        if self.world.ego.speed_mps < BLOCKED_SPEED_MPS:
            self._blocked_s += self.world.dt_s
        else:
            self._blocked_s = 0.0
        if self._blocked_s >= BLOCKED_TIME_S:
            log.end = RouteEnd.BLOCKED
            return
        if self.world.time_s >= self.instance.route_timeout_s:
            log.end = RouteEnd.TIMEOUT

    def _final_events(self) -> list[InfractionEvent]:
        events = []
        log = self.log
        if self._outside_m > 0.0:
            pct = 100.0 * self._outside_m / max(log.route_length_m, 1e-6)
            events.append(
                self._event(
                    Infraction.OUTSIDE_ROUTE_LANES,
                    f"Agent went outside its route lanes for about {pct:.3f}% of the route",
                    value=round(pct, 3),
                )
            )
        if log.end == RouteEnd.DEVIATED:
            events.append(self._event(Infraction.ROUTE_DEVIATION, "Agent deviated from the route"))
        elif log.end == RouteEnd.BLOCKED:
            events.append(self._event(Infraction.BLOCKED, "Agent got blocked"))
        elif log.end == RouteEnd.TIMEOUT:
            events.append(self._event(Infraction.ROUTE_TIMEOUT, "Route timeout"))
        return events

    def _event(
        self, kind: Infraction, message: str, actor_id: int | None = None, value: float | None = None
    ) -> InfractionEvent:
        x, y = float(self.world.actors.x[0]), float(self.world.actors.y[0])
        return InfractionEvent(
            kind=kind,
            time_s=self.world.time_s,
            x_m=x,
            y_m=y,
            message=f"{message} at (x={x:.3f}, y={y:.3f}, z=0.000)",
            actor_id=actor_id,
            value=value,
        )

    def _record(self) -> None:
        a = self.world.actors
        self._prev_centre = (float(a.x[0]), float(a.y[0]))
        if not self._record_log:
            return
        log = self.log
        log.progress_m.append(self.progress_m - self.instance.start_s_m)
        log.time_s.append(self.world.time_s)
        log.x_m.append(float(a.x[0]))
        log.y_m.append(float(a.y[0]))
        log.yaw_rad.append(float(a.yaw[0]))
        log.speed_mps.append(float(a.speed[0]))
        n = a.n
        moving = np.flatnonzero(a.behavior[1:n] == Behavior.VEHICLE) + 1
        if len(moving):
            d2 = (a.x[moving] - a.x[0]) ** 2 + (a.y[moving] - a.y[0]) ** 2
            near = moving[d2 < 50.0**2]
            log.traffic_speed_mps.append(float(a.speed[near].mean()) if len(near) else float("nan"))
        else:
            log.traffic_speed_mps.append(float("nan"))
