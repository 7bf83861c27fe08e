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
from riskdistill.sim.actors import Behavior
from riskdistill.sim.criteria import (
    STATIC_OBJECT_ID,
    CollisionCounter,
    MinSpeedMonitor,
    OutsideRouteLanes,
    RouteTimeout,
    YieldToEmergencyVehicle,
    junction_completion,
    min_speed_message,
    route_file_s,
)
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
OUTSIDE_LANE_MARGIN_M = 0.5  # OutsideRouteLanesTest.ALLOWED_OUT_DISTANCE: beyond half the lane width

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
    accel_mps2: list[float] = field(default_factory=list)  # along the heading (rear axle)
    yaw_rate_radps: list[float] = field(default_factory=list)
    traffic_speed_mps: list[float] = field(default_factory=list)  # background vehicles; NaN when none
    passed_first_junction_cleanly: bool | None = None
    first_junction_completion: float | None = None  # share of the route at the first junction + 8 m

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
        self.log.first_junction_completion = self._first_junction_completion()
        self._collisions = CollisionCounter()
        self._min_speed = MinSpeedMonitor(self.log.route_length_m)
        self._route_timeout = RouteTimeout(instance.route_timeout_s)
        self._outside = OutsideRouteLanes()
        self._yield = YieldToEmergencyVehicle() if instance.emergency_vehicle_id is not None else None
        self._blocked_s = 0.0
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
        prev_progress = self.progress_m
        self.instance.script.update(world, self.progress_m)
        world.step(controls)
        events: list[InfractionEvent] = []
        self._update_progress()
        events += self._check_collisions()
        events += self._check_stop_lines(prev_front, self._ego_front())
        self._outside.update(self.progress_m - prev_progress, self._outside_route_lanes())
        events += self._check_scenario_timeout()
        events += self._check_min_speed()
        events += self._check_yield()
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
        """Bench2Drive's ``CollisionTest`` over the contacts the world found (it already stopped the ego or
        pushed the other back): one event per actor and place, none while the ego stands still."""
        world = self.world
        xy = self._ego_centre()
        self._collisions.update(world.time_s, xy)
        events = []
        a = world.actors
        for c in sorted(world.ego_contacts, key=lambda c: (c.layout, c.other)):
            other_id = STATIC_OBJECT_ID if c.layout else c.other
            if not self._collisions.counts(other_id, world.time_s, xy, c.ego_speed_mps):
                continue
            if c.layout:
                kind, type_name = Infraction.COLLISION_LAYOUT, "static.pole"
            else:
                cls = ActorClass(int(a.cls[c.other]))
                if cls == ActorClass.PEDESTRIAN:
                    kind, type_name = Infraction.COLLISION_PEDESTRIAN, "walker.pedestrian"
                elif cls.is_static_obstacle:
                    kind, type_name = Infraction.COLLISION_LAYOUT, f"static.prop.{cls.name.lower()}"
                else:
                    kind, type_name = Infraction.COLLISION_VEHICLE, f"vehicle.{cls.name.lower()}"
            message = f"Agent collided against object with type={type_name} and id={other_id}"
            events.append(self._event(kind, message, None if c.layout else c.other))
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

    def _outside_route_lanes(self) -> bool:
        """True when the ego centre is not on a driving lane of the route's direction (or its neighbours)."""
        world = self.world
        xy = self._ego_centre()
        lanes = self.instance.allowed_lane_ids
        for lid in lanes:
            lane = world.map.lanes[lid]
            s, lat = lane.project(xy)
            if abs(lat) <= 0.5 * lane.width_m + OUTSIDE_LANE_MARGIN_M and -0.5 < s < lane.length_m + 0.5:
                return False
        return True

    def _scenario_running(self) -> bool:
        """A scenario with a Bench2Drive scenario timeout runs (triggered, not finished, not timed out)."""
        sc = self.instance.script
        return (
            self.instance.scenario_timeout_s is not None
            and sc.triggered_at_s is not None
            and not self._scenario_timeout_reported
            and self.progress_m < self.instance.scenario_end_s_m
        )

    def _check_scenario_timeout(self) -> list[InfractionEvent]:
        if not self._scenario_running():
            return []
        if self.world.time_s - self.instance.script.triggered_at_s > self.instance.scenario_timeout_s:
            self._scenario_timeout_reported = True
            self._blocked_s = 0.0  # the blocked test restarts when the scenario ends
            return [self._event(Infraction.SCENARIO_TIMEOUT, "Agent timed out a scenario", located=False)]
        return []

    def _check_min_speed(self) -> list[InfractionEvent]:
        progress = self.progress_m - self.instance.start_s_m
        value = self._min_speed.update(progress, self.world.ego.speed_mps, self._traffic_speed())
        return [] if value is None else [self._min_speed_event(value)]

    def _min_speed_event(self, value: float | int) -> InfractionEvent:
        return self._event(Infraction.MIN_SPEED, min_speed_message(value), value=float(value), located=False)

    def _traffic_speed(self) -> float:
        """Mean speed of the background vehicles still in the scene (NaN when there are none)."""
        a = self.world.actors
        n = a.n
        bg = a.background[:n] & (a.behavior[:n] == Behavior.VEHICLE)
        return float(a.speed[:n][bg].mean()) if bg.any() else float("nan")

    def _check_yield(self) -> list[InfractionEvent]:
        ev = self.instance.emergency_vehicle_id
        if self._yield is None or self._yield.ended or self.instance.script.triggered_at_s is None:
            return []
        a = self.world.actors
        ended = self._yield.update(
            self.world.time_s,
            self._ego_centre(),
            0.5 * float(a.length[0]),
            np.array([a.x[ev], a.y[ev]]),
            float(a.yaw[ev]),
            0.5 * float(a.length[ev]),
        )
        return self._yield_events() if ended else []

    def _yield_events(self) -> list[InfractionEvent]:
        if self._yield is None or not self._yield.failing:
            return []
        self._yield.failing = False  # judged once
        message = "Agent failed to yield to an emergency vehicle"
        return [self._event(Infraction.YIELD_EMERGENCY_VEHICLE, message, located=False)]

    def _first_junction_completion(self) -> float | None:
        """The share of the route Bench2Drive's ability tool asks a failed Traffic_Signs route to have
        completed (the first junction point + 8, on the route traced at 1 m; see ``criteria``)."""
        route = self.instance.route
        lanes = self.world.map.lanes
        in_junction = np.array([lanes[int(lid)].junction_id is not None for lid in route.lane_of_point])
        s_pos = route_file_s(self.instance.start_s_m, route.length_m)
        return junction_completion(route.path.point_at, route.path.s, in_junction, s_pos)

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
        if self.world.ego.speed_mps < BLOCKED_SPEED_MPS and not self._scenario_running():
            self._blocked_s += self.world.dt_s
        else:
            self._blocked_s = 0.0  # ScenarioTimeout switches the blocked test off while its scenario runs
        if self._blocked_s >= BLOCKED_TIME_S:
            log.end = RouteEnd.BLOCKED
            return
        lane = self.world.map.lanes[self._route_lane_id()]
        self._route_timeout.update(self.progress_m - self.instance.start_s_m, lane.speed_limit_mps)
        if self._route_timeout.expired(self.world.time_s):
            log.end = RouteEnd.TIMEOUT

    def _route_lane_id(self) -> int:
        route = self.instance.route
        k = min(int(np.searchsorted(route.path.s, self.progress_m)), len(route.lane_of_point) - 1)
        return int(route.lane_of_point[k])

    def _final_events(self) -> list[InfractionEvent]:
        """Events Bench2Drive records when the route stops: the last min-speed checkpoint, the outside-lanes
        share, a yield test still running, and why the route ended."""
        events = []
        log = self.log
        value = self._min_speed.finish(self.progress_m - self.instance.start_s_m)
        if value is not None:
            events.append(self._min_speed_event(value))
        if self._outside.outside_m > 0.0:
            events.append(
                self._event(
                    Infraction.OUTSIDE_ROUTE_LANES,
                    self._outside.message(),
                    value=self._outside.percent,
                    located=False,
                )
            )
        if self._yield is not None and not self._yield.ended:
            events += self._yield_events()
        if log.end == RouteEnd.DEVIATED:
            events.append(self._event(Infraction.ROUTE_DEVIATION, "Agent deviated from the route"))
        elif log.end == RouteEnd.BLOCKED:
            events.append(self._event(Infraction.BLOCKED, "Agent got blocked"))
        elif log.end == RouteEnd.TIMEOUT:
            events.append(self._event(Infraction.ROUTE_TIMEOUT, "Route timeout.", located=False))
        return events

    def _event(
        self,
        kind: Infraction,
        message: str,
        actor_id: int | None = None,
        value: float | None = None,
        located: bool = True,
    ) -> InfractionEvent:
        """An event; ``located`` appends the ego position (world frame) to the message as Bench2Drive does for
        collisions, lights, stops, deviations and blocking."""
        x, y = float(self.world.actors.x[0]), float(self.world.actors.y[0])
        return InfractionEvent(
            kind=kind,
            time_s=self.world.time_s,
            x_m=x,
            y_m=y,
            message=f"{message} at (x={x:.3f}, y={y:.3f}, z=0.000)" if located else message,
            actor_id=actor_id,
            value=value,
        )

    def _record(self) -> None:
        a = self.world.actors
        if not self._record_log:
            return
        log = self.log
        log.progress_m.append(self.progress_m - self.instance.start_s_m)
        log.time_s.append(self.world.time_s)
        log.x_m.append(float(a.x[0]))
        log.y_m.append(float(a.y[0]))
        log.yaw_rad.append(float(a.yaw[0]))
        log.speed_mps.append(float(a.speed[0]))
        log.accel_mps2.append(float(self.world.ego_accel_mps2))
        log.yaw_rate_radps.append(float(self.world.ego_yaw_rate_radps))
        log.traffic_speed_mps.append(self._traffic_speed())
