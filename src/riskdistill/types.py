"""Vocabulary shared by every layer: actor classes, route commands, light states, infraction kinds.

Frames and units follow the project convention: world and ego frames are right-handed with x forward,
y left, z up; yaw is counter-clockwise in radians; all quantities are SI.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ActorClass(IntEnum):
    """Semantic class of an actor. Values are stable: they are written into data sets."""

    CAR = 0
    VAN = 1
    TRUCK = 2
    BUS = 3
    PEDESTRIAN = 4
    CYCLIST = 5
    TRAFFIC_CONE = 6
    BARRIER = 7  # construction barrier / warning board
    OPEN_DOOR = 8  # the door of a parked vehicle, opened into the lane
    EMERGENCY_VEHICLE = 9

    @property
    def is_vehicle(self) -> bool:
        return self in _VEHICLES

    @property
    def is_vulnerable(self) -> bool:
        """Pedestrians and cyclists: road users without a protective shell."""
        return self in (ActorClass.PEDESTRIAN, ActorClass.CYCLIST)

    @property
    def is_static_obstacle(self) -> bool:
        return self in (ActorClass.TRAFFIC_CONE, ActorClass.BARRIER, ActorClass.OPEN_DOOR)


_VEHICLES = frozenset(
    {ActorClass.CAR, ActorClass.VAN, ActorClass.TRUCK, ActorClass.BUS, ActorClass.EMERGENCY_VEHICLE}
)


class Command(IntEnum):
    """High-level route command. Values equal CARLA's RoadOption, so Bench2Drive data maps 1:1."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANE_FOLLOW = 4
    CHANGE_LANE_LEFT = 5
    CHANGE_LANE_RIGHT = 6


class LightState(IntEnum):
    RED = 0
    YELLOW = 1
    GREEN = 2
    OFF = 3


class Infraction(StrEnum):
    """Infraction kinds, spelled as the keys of Bench2Drive's / CARLA leaderboard's result records."""

    COLLISION_LAYOUT = "collisions_layout"
    COLLISION_PEDESTRIAN = "collisions_pedestrian"
    COLLISION_VEHICLE = "collisions_vehicle"
    RED_LIGHT = "red_light"
    STOP_SIGN = "stop_infraction"
    OUTSIDE_ROUTE_LANES = "outside_route_lanes"
    MIN_SPEED = "min_speed_infractions"
    YIELD_EMERGENCY_VEHICLE = "yield_emergency_vehicle_infractions"
    SCENARIO_TIMEOUT = "scenario_timeouts"
    ROUTE_DEVIATION = "route_dev"
    BLOCKED = "vehicle_blocked"
    ROUTE_TIMEOUT = "route_timeout"


class Ability(StrEnum):
    """Bench2Drive's Multi-Ability groups."""

    MERGING = "Merging"
    OVERTAKING = "Overtaking"
    EMERGENCY_BRAKE = "Emergency_Brake"
    GIVE_WAY = "Give_Way"
    TRAFFIC_SIGNS = "Traffic_Signs"
