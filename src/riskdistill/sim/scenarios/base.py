"""Scenario machinery: the registry, the build context scenarios use, and the scripted triggers.

A scenario type is a class with a name, the abilities it tests, the layout families it can use and a
``populate`` method that places the route and the actors through a :class:`BuildContext`. An instance
is fully determined by ``(type, seed)`` plus optional layout overrides from a suite file.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from riskdistill.registry import Registry
from riskdistill.sim.layouts import Layout
from riskdistill.sim.roadmap import Lane
from riskdistill.sim.route import Path, Route, plan_route
from riskdistill.sim.world import World
from riskdistill.types import Ability, ActorClass, LightState


class ScenarioError(ValueError):
    """A scenario could not be built (unknown type, bad parameters, or no valid instance for a seed)."""


#: Bench2Drive's ``ScenarioTimeout`` (``_scenario_timeout = 240`` s in scenario_runner): only these scenario
#: types have one; the others never time out as a scenario (only the route timeout applies).
SCENARIO_TIMEOUT_S = 240.0
SCENARIOS_WITH_TIMEOUT: frozenset[str] = frozenset(
    {
        "Accident", "AccidentTwoWays", "BlockedIntersection", "ConstructionObstacle",
        "ConstructionObstacleTwoWays", "CrossingBicycleFlow", "EnterActorFlow", "EnterActorFlowV2",
        "HazardAtSideLane", "HazardAtSideLaneTwoWays", "HighwayExit", "InterurbanActorFlow",
        "InterurbanAdvancedActorFlow", "InvadingTurn", "MergerIntoSlowTraffic", "MergerIntoSlowTrafficV2",
        "NonSignalizedJunctionLeftTurn", "NonSignalizedJunctionLeftTurnEnterFlow",
        "NonSignalizedJunctionRightTurn", "ParkedObstacle", "ParkedObstacleTwoWays", "ParkingExit",
        "SequentialLaneChange", "SignalizedJunctionLeftTurn", "SignalizedJunctionLeftTurnEnterFlow",
        "SignalizedJunctionRightTurn", "T_Junction", "VehicleOpensDoorTwoWays",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Weather:
    """Lighting and weather of an instance; the renderer uses it, physics does not."""

    sun_altitude_deg: float  # < 0: night
    cloudiness: float  # 0..1
    fog_density: float  # 0..1
    wetness: float  # 0..1 (rain / wet road)

    @property
    def brightness(self) -> float:
        """Overall light level in [0.15, 1]: night is dark, clouds dim the scene."""
        sun = np.clip((self.sun_altitude_deg + 10.0) / 50.0, 0.0, 1.0)
        return float(np.clip(0.15 + 0.85 * sun * (1.0 - 0.4 * self.cloudiness), 0.15, 1.0))

    def to_dict(self) -> dict[str, float]:
        return {
            "sun_altitude_deg": self.sun_altitude_deg,
            "cloudiness": self.cloudiness,
            "fog_density": self.fog_density,
            "wetness": self.wetness,
        }


def sample_weather(rng: np.random.Generator) -> Weather:
    kind = rng.choice(["clear_noon", "cloudy", "wet", "sunset", "night", "fog"])
    table = {
        "clear_noon": (70.0, 0.1, 0.0, 0.0),
        "cloudy": (45.0, 0.8, 0.05, 0.1),
        "wet": (40.0, 0.6, 0.1, 0.8),
        "sunset": (5.0, 0.3, 0.05, 0.0),
        "night": (-30.0, 0.2, 0.0, 0.2),
        "fog": (35.0, 0.5, 0.6, 0.3),
    }
    alt, cloud, fog, wet = table[str(kind)]
    j = rng.uniform(-1, 1, size=4)
    return Weather(
        sun_altitude_deg=float(alt + 8.0 * j[0]),
        cloudiness=float(np.clip(cloud + 0.1 * j[1], 0, 1)),
        fog_density=float(np.clip(fog + 0.05 * j[2], 0, 1)),
        wetness=float(np.clip(wet + 0.1 * j[3], 0, 1)),
    )


Action = Callable[[World], None]


@dataclass
class Trigger:
    """Runs ``actions`` once when the ego's route progress reaches ``ego_s_m`` (or at ``time_s``);
    with ``repeat``, on every step from then on."""

    actions: list[Action]
    ego_s_m: float | None = None
    time_s: float | None = None
    starts_scenario: bool = True  # the first such trigger starts the scenario-timeout clock
    repeat: bool = False  # once due, run on every step (a monitor) instead of once
    fired: bool = False


@dataclass
class ScenarioScript:
    triggers: list[Trigger] = field(default_factory=list)
    triggered_at_s: float | None = None

    def update(self, world: World, ego_progress_m: float) -> None:
        for trig in self.triggers:
            if trig.fired:
                continue
            due = (trig.ego_s_m is not None and ego_progress_m >= trig.ego_s_m) or (
                trig.time_s is not None and world.time_s >= trig.time_s
            )
            if due:
                trig.fired = not trig.repeat
                if trig.starts_scenario and self.triggered_at_s is None:
                    self.triggered_at_s = world.time_s
                for act in trig.actions:
                    act(world)


# Reusable trigger actions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Release:
    """The action "let held actor ``actor`` go (optionally with a new desired speed)". A plain object, not a
    closure, so privileged readers (the annotator) can see which actor a pending trigger releases."""

    actor: int
    speed_mps: float | None = None

    def __call__(self, world: World) -> None:
        world.actors.hold[self.actor] = False
        if self.speed_mps is not None:
            world.actors.desired_speed[self.actor] = self.speed_mps
            if world.actors.behavior[self.actor] != 1:  # walkers move at their desired speed at once
                world.actors.speed[self.actor] = self.speed_mps


def release(actor: int, speed_mps: float | None = None) -> Action:
    """Let a held actor go (optionally with a new desired speed)."""
    return Release(actor, speed_mps)


def pending_releases(script: ScenarioScript) -> dict[int, tuple[float, float | None]]:
    """``{actor: (route progress of the trigger, speed on release)}`` for every held actor a not yet fired
    progress trigger will release (the earliest trigger wins)."""
    out: dict[int, tuple[float, float | None]] = {}
    for trig in script.triggers:
        if trig.fired or trig.ego_s_m is None:
            continue
        for act in trig.actions:
            if isinstance(act, Release) and (act.actor not in out or trig.ego_s_m < out[act.actor][0]):
                out[act.actor] = (float(trig.ego_s_m), act.speed_mps)
    return out


def hard_brake(actor: int, decel_mps2: float) -> Action:
    def act(world: World) -> None:
        world.actors.brake_override[actor] = decel_mps2

    return act


def switch_path(actor: int, path_id: int) -> Action:
    def act(world: World) -> None:
        world.set_path(actor, path_id)

    return act


def set_light(light_ids: list[int], state: LightState) -> Action:
    def act(world: World) -> None:
        for lid in light_ids:
            world.light_override[lid] = state

    return act


@dataclass
class ScenarioInstance:
    """A ready-to-run instance: world with actors, ego route, scripted triggers and metadata."""

    scenario_type: str
    seed: int
    layout: Layout
    world: World
    route: Route
    start_s_m: float
    script: ScenarioScript
    weather: Weather
    allowed_lane_ids: set[int]
    scenario_end_s_m: float
    scenario_timeout_s: float | None  # None: the scenario type has no scenario timeout
    route_timeout_s: float  # a cap on Bench2Drive's route timeout (inf: none; see sim.env)
    abilities: tuple[Ability, ...]
    params: dict[str, Any] = field(default_factory=dict)
    #: The scenario's hazard actors (actor id -> role, e.g. "crossing pedestrian"): privileged scenario
    #: ground truth for label quality (recorded in the annotations, never shown to a driver).
    hazards: dict[int, str] = field(default_factory=dict)
    emergency_vehicle_id: int | None = None  # the actor the ego must yield to (YieldToEmergencyVehicle)


VEHICLE_COLORS = [
    (200, 30, 30), (30, 60, 200), (240, 240, 240), (20, 20, 20), (120, 120, 130),
    (230, 190, 40), (40, 140, 60), (150, 80, 30), (100, 30, 120), (60, 170, 200),
]  # fmt: skip
WALKER_COLORS = [(220, 120, 40), (60, 200, 220), (200, 60, 160), (240, 220, 60), (90, 200, 90)]


class BuildContext:
    """Helpers a scenario uses to place its route and actors. Randomness only through ``self.rng``."""

    def __init__(self, layout: Layout, rng: np.random.Generator):
        self.layout = layout
        self.map = layout.road_map
        self.rng = rng
        self.world = World(layout.road_map)
        self.script = ScenarioScript()
        self.route: Route | None = None
        self.start_s_m = 0.0
        self.scenario_end_s_m: float | None = None
        self.scenario_timeout_s: float | None = None  # build_scenario sets Bench2Drive's, if the type has one
        self.extra_allowed_lanes: set[int] = set()
        self.keep_clear_lane_ids: set[int] = set()  # no background traffic is spawned on these lanes
        self.emergency_vehicle_id: int | None = None
        self.params: dict[str, Any] = {}
        self.hazards: dict[int, str] = {}

    # --------------------------------------------------------------------------- randomness
    def uniform(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def choice(self, options: list[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def vehicle_class(self, allow_large: bool = True) -> ActorClass:
        opts = [ActorClass.CAR] * 6 + [ActorClass.VAN] * 2
        if allow_large:
            opts += [ActorClass.TRUCK, ActorClass.BUS]
        return self.choice(opts)

    def size_of(self, cls: ActorClass) -> tuple[float, float, float]:
        from riskdistill.sim.actors import CLASS_SIZE_M

        length, width, height = CLASS_SIZE_M[cls]
        k = self.uniform(0.92, 1.08)
        return (length * k, width * self.uniform(0.95, 1.05), height * self.uniform(0.95, 1.05))

    def color_of(self, cls: ActorClass) -> tuple[int, int, int]:
        if cls in (ActorClass.PEDESTRIAN, ActorClass.CYCLIST):
            return self.choice(WALKER_COLORS)
        if cls == ActorClass.TRAFFIC_CONE:
            return (255, 120, 0)
        if cls == ActorClass.BARRIER:
            return (250, 200, 0)
        if cls == ActorClass.EMERGENCY_VEHICLE:
            return (250, 250, 250)
        return self.choice(VEHICLE_COLORS)

    # --------------------------------------------------------------------------- route and ego
    def set_route(
        self, lane_ids: list[int], start_s_m: float, end_s_m: float | None = None, ego_speed_mps: float = 0.0
    ) -> Route:
        """Plan the ego route along ``lane_ids`` and spawn the ego at its start."""
        self.route = plan_route(self.map, lane_ids, start_s_m=start_s_m, end_s_m=end_s_m)
        self.start_s_m = 0.0
        p = self.route.path.point_at(0.0)
        yaw = float(self.route.path.heading_at(0.0))
        self.world.spawn_ego(float(p[0]), float(p[1]), yaw, ego_speed_mps)
        return self.route

    def route_s_of(self, xy: np.ndarray) -> float:
        """Arc length along the ego route of the point nearest to ``xy``."""
        assert self.route is not None, "set_route first"
        return self.route.path.project(np.asarray(xy, dtype=np.float64))[0]

    # --------------------------------------------------------------------------- actors
    def lane_path(self, lane_ids: list[int], start_s_m: float = 0.0, end_s_m: float | None = None) -> int:
        """Add the path along a lane sequence (lane changes allowed) to the world; return its id."""
        return self.world.add_path(plan_route(self.map, lane_ids, start_s_m=start_s_m, end_s_m=end_s_m).path)

    def add_vehicle(
        self,
        path_id: int,
        s_m: float,
        speed_mps: float,
        desired_speed_mps: float | None = None,
        cls: ActorClass | None = None,
        **flags: float | bool,
    ) -> int:
        cls = cls if cls is not None else self.vehicle_class()
        from riskdistill.sim.actors import Behavior

        return self.world.add_path_actor(
            cls,
            Behavior.VEHICLE,
            path_id,
            s_m,
            speed_mps,
            desired_speed_mps if desired_speed_mps is not None else speed_mps,
            size_lwh=self.size_of(cls),
            color=self.color_of(cls),
            **flags,
        )

    def add_walker(
        self,
        points: np.ndarray,
        speed_mps: float,
        cls: ActorClass = ActorClass.PEDESTRIAN,
        hold: bool = True,
        s_m: float = 0.0,
    ) -> int:
        from riskdistill.sim.actors import Behavior

        pid = self.world.add_path(Path.from_points(points))
        return self.world.add_path_actor(
            cls,
            Behavior.WALKER,
            pid,
            s_m,
            0.0 if hold else speed_mps,
            speed_mps,
            size_lwh=self.size_of(cls),
            color=self.color_of(cls),
            hold=hold,
        )

    def add_static(
        self, cls: ActorClass, xy: np.ndarray, yaw: float, size_lwh: tuple[float, float, float] | None = None
    ) -> int:
        return self.world.add_static(
            cls, float(xy[0]), float(xy[1]), yaw, size_lwh or self.size_of(cls), color=self.color_of(cls)
        )

    def add_parked(self, lane: Lane, s_m: float, cls: ActorClass | None = None) -> int:
        """A parked vehicle centred on a (parking) lane at ``s_m``."""
        cls = cls if cls is not None else self.vehicle_class(allow_large=False)
        p = lane.point_at(s_m)
        from riskdistill.sim.actors import Behavior

        return self.world.actors.add(
            cls,
            Behavior.STATIC,
            float(p[0]),
            float(p[1]),
            float(lane.heading_at(s_m)),
            self.size_of(cls),
            color=self.color_of(cls),
        )

    def mark_hazard(self, actors: int | list[int] | tuple[int, ...], role: str) -> None:
        """Name scenario actors as the scenario's hazard (``role``: what they are, e.g. "crossing
        pedestrian"). Scenario ground truth for label quality (``teacher.quality.hazard_recall``)."""
        for a in [actors] if isinstance(actors, int) else actors:
            if not 0 < int(a) < self.world.actors.n:
                raise ScenarioError(f"mark_hazard: no actor {a} (the ego, 0, cannot be a hazard)")
            self.hazards[int(a)] = role

    def trigger(self, ego_s_m: float, *actions: Action, starts_scenario: bool = True) -> None:
        self.script.triggers.append(Trigger(list(actions), ego_s_m=ego_s_m, starts_scenario=starts_scenario))


class ScenarioType(ABC):
    """One parameterised scenario family, named after Bench2Drive's."""

    name: ClassVar[str]
    abilities: ClassVar[tuple[Ability, ...]]
    families: ClassVar[tuple[str, ...]]  # layout families it supports; the first is the default
    summary: ClassVar[str]
    background_density: ClassVar[float] = 0.5  # vehicles per 20 m of lane, before jitter
    #: What the scenario's hazard actors are ("crossing pedestrian", "braking lead vehicle"): populate()
    #: names them with ``ctx.mark_hazard``. ``""``: the type has no hazard actor (it tests traffic signs).
    #: ``None``: not declared (tests require every registered type to declare it).
    hazard: ClassVar[str | None] = None

    def layout_params(self, rng: np.random.Generator, family: str) -> dict[str, Any]:
        """Random layout parameters for this scenario on ``family`` (may be overridden by a suite)."""
        params: dict[str, Any] = {
            "family": family,
            "lane_width_m": float(rng.uniform(3.2, 3.8)),
            "rotation_rad": float(rng.uniform(-np.pi, np.pi)),
            "seed": int(rng.integers(1 << 30)),
        }
        if family in ("junction4", "junction_t"):
            params["lanes_per_direction"] = int(rng.integers(1, 3))
            params["arm_angle_jitter_deg"] = float(rng.uniform(0, 8))
        elif family == "highway":
            params["lanes_per_direction"] = int(rng.integers(2, 4))
        else:
            params["lanes_per_direction"] = int(rng.integers(1, 3))
        return params

    @abstractmethod
    def populate(self, ctx: BuildContext) -> None:
        """Set the route, place the scenario actors and triggers, and background traffic."""


REGISTRY: Registry[type[ScenarioType]] = Registry("scenario type", error=ScenarioError)
register_scenario = (
    REGISTRY.register
)  # class decorator: @register_scenario makes a type available by ``name``


def get_scenario_type(name: str) -> ScenarioType:
    """A fresh instance of the scenario type ``name``; an unknown name lists the valid ones."""
    return REGISTRY.get(name)()


def instance_from_context(
    ctx: BuildContext, scenario_type: str = "custom", seed: int = 0, abilities: tuple[Ability, ...] = ()
) -> ScenarioInstance:
    """Freeze a populated :class:`BuildContext` into a runnable instance (also for hand-built tests)."""
    if ctx.route is None:
        raise ScenarioError(f"scenario {scenario_type!r}: no route set")
    route = ctx.route
    layout = ctx.layout
    allowed = set(route.lane_ids) | ctx.extra_allowed_lanes
    for lid in list(allowed):
        lane = layout.road_map.lanes[lid]
        allowed |= {n for n in (lane.left_neighbor, lane.right_neighbor) if n is not None}
    return ScenarioInstance(
        scenario_type=scenario_type,
        seed=seed,
        layout=layout,
        world=ctx.world,
        route=route,
        start_s_m=ctx.start_s_m,
        script=ctx.script,
        weather=sample_weather(ctx.rng),
        allowed_lane_ids=allowed,
        scenario_end_s_m=ctx.scenario_end_s_m if ctx.scenario_end_s_m is not None else route.length_m,
        scenario_timeout_s=ctx.scenario_timeout_s,
        route_timeout_s=math.inf,
        abilities=abilities,
        params={"layout": layout.params.model_dump(mode="json"), **ctx.params},
        hazards=dict(ctx.hazards),
        emergency_vehicle_id=ctx.emergency_vehicle_id,
    )
