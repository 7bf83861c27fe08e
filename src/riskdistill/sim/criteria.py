"""Bench2Drive's route criteria, rule by rule, for the closed-loop environment.

Each class mirrors one criterion of the CARLA leaderboard 2.0 / scenario_runner code that Bench2Drive 0.0.3 /
0.0.4 ships (``srunner/scenariomanager/scenarioatomics/atomic_criteria.py``, ``timer.py``,
``leaderboard/scenarios/route_scenario.py``); ``docs/metrics.md`` lists the rules side by side with the tests
that pin them. They are plain state machines: :class:`riskdistill.sim.env.DrivingEnv` feeds them the
simulator state every 0.1 s step and turns what they report into :class:`InfractionEvent` s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# CollisionTest
COLLISION_RADIUS_M = 5.0  # a new contact this close to the last counted one is the same collision
COLLISION_MAX_ID_TIME_S = 5.0  # contacts with the same actor within this time are the same collision
COLLISION_MIN_EGO_SPEED_MPS = 0.1  # contacts while the ego is slower are not its fault (EPSILON)
STATIC_OBJECT_ID = 0  # CARLA's id of map objects (poles, walls); it never sets the same-actor filter

# MinimumSpeedRouteTest (route_scenario.py: checkpoints=20)
MIN_SPEED_CHECKPOINTS = 20
MIN_SPEED_NO_TRAFFIC_PCT = 100
MIN_SPEED_FINAL_SHARE = 0.95  # the last checkpoint is recorded at the end when the ego got this far

# RouteTimeoutBehavior
ROUTE_TIMEOUT_MIN_S = 300.0
ROUTE_TIMEOUT_SPEED_SHARE = 0.10  # each metre advanced adds 1 / (10 % of the speed limit) seconds

# ability_benchmark.py's Traffic_Signs rule, on the route as Bench2Drive's route files list it
ROUTE_FILE_SPACING_M = 2.0  # route files list a position every 2 m
JUNCTION_TRACE_M = 1.0  # the tool traces the route between positions at 1 m (GlobalRoutePlanner(map, 1.0))
JUNCTION_EXTRA_POINTS = 8  # the first junction point + 8 more must be passed

# YieldToEmergencyVehicle (scenario) and YieldToEmergencyVehicleTest
EV_TRIGGER_DISTANCE_M = 50.0  # InTriggerDistanceToVehicle(ego, ev, 50)
EV_IDLE_S = 10.0  # then Idle(10): the ego has this long to let the EV pass
EV_IN_FRONT_DISTANCE_M = 10.0  # WaitUntilInFront(ev, ego): close to the point ahead of the ego
EV_END_DISTANCE_M = 50.0  # DriveDistance(ev, 50) after it got in front


def route_file_s(start_s_m: float, end_s_m: float) -> np.ndarray:
    """Arc lengths of the positions a Bench2Drive route file lists for a route: every 2 m and the end."""
    s = np.arange(start_s_m, end_s_m, ROUTE_FILE_SPACING_M)
    return np.append(s, end_s_m) if end_s_m - s[-1] > 0.05 else s


def junction_completion(
    path_xy_at: Any, path_s: np.ndarray, in_junction: np.ndarray, s_pos: np.ndarray
) -> float | None:
    """Bench2Drive's ``ability_benchmark.py``: trace the route between its listed positions ``s_pos`` at 1 m
    (``max(round(chord), 1)`` points per gap, each gap's start included), find the first point in a junction,
    and return ``(its index + 1 + 8) / number of points``; None when no point is in a junction.

    ``path_xy_at(s)`` gives route points, ``in_junction[k]`` whether route point ``path_s[k]`` lies on a
    junction lane. Positions are rounded to 0.1 m, as route files write them.
    """
    xy = np.round(path_xy_at(s_pos), 1)
    n_per_gap = np.maximum(np.round(np.hypot(*np.diff(xy, axis=0).T) / JUNCTION_TRACE_M), 1).astype(int)
    s_points = np.concatenate(
        [s_pos[i] + (s_pos[i + 1] - s_pos[i]) * np.arange(n) / n for i, n in enumerate(n_per_gap)]
    )
    k = np.minimum(np.searchsorted(path_s, s_points), len(path_s) - 1)
    flags = in_junction[k]
    if not flags.any():
        return None
    return (int(np.argmax(flags)) + 1 + JUNCTION_EXTRA_POINTS) / len(s_points)


class CollisionCounter:
    """``CollisionTest``: which contacts count as a collision event.

    A contact is ignored when it is with the same actor as the last counted collision within 5 s, when the
    ego is still within 5 m of where the last counted collision happened (that place is forgotten once the
    ego is farther away), or when the ego is slower than 0.1 m/s. Static map objects (id 0) never set the
    same-actor filter.
    """

    def __init__(self) -> None:
        self._last_id: int | None = None
        self._last_time_s: float | None = None
        self._last_xy: np.ndarray | None = None

    def update(self, time_s: float, ego_xy: np.ndarray) -> None:
        """Forget the last collision's place and actor once they no longer apply (every step)."""
        if self._last_xy is not None and float(np.hypot(*(ego_xy - self._last_xy))) > COLLISION_RADIUS_M:
            self._last_xy = None
        if self._last_id is not None and time_s - self._last_time_s > COLLISION_MAX_ID_TIME_S:
            self._last_id = None

    def counts(self, other_id: int, time_s: float, ego_xy: np.ndarray, ego_speed_mps: float) -> bool:
        """Whether a contact with actor ``other_id`` (0: a map object) is a new collision; remembers it."""
        if self._last_id is not None and other_id == self._last_id:
            return False
        if self._last_xy is not None and float(np.hypot(*(ego_xy - self._last_xy))) <= COLLISION_RADIUS_M:
            return False
        if ego_speed_mps < COLLISION_MIN_EGO_SPEED_MPS:
            return False
        self._last_time_s = time_s
        self._last_xy = np.asarray(ego_xy, dtype=np.float64).copy()
        if other_id != STATIC_OBJECT_ID:
            self._last_id = other_id
        return True


class MinSpeedMonitor:
    """``MinimumSpeedRouteTest``: the ego's mean speed against the background traffic's, per checkpoint.

    The route is cut into 20 stretches of equal length. Every step the ego's speed and the mean speed of all
    background vehicles are summed (steps without background vehicles are skipped). When the ego has advanced
    more than one stretch since the last checkpoint, the checkpoint value ``round(100 * sum(ego) /
    sum(traffic), 2)`` % is recorded (100 when no sample had moving traffic) and the sums restart; at the end
    of the route one more is recorded if the ego got past 95 % of it.
    """

    def __init__(self, route_length_m: float, checkpoints: int = MIN_SPEED_CHECKPOINTS):
        self.route_length_m = float(route_length_m)
        self.checkpoint_m = self.route_length_m / checkpoints
        self._current_m = 0.0
        self._ego_sum = 0.0
        self._traffic_sum = 0.0
        self._points = 0

    def update(self, progress_m: float, ego_speed_mps: float, traffic_speed_mps: float) -> float | int | None:
        """Feed one step; returns a checkpoint value (%) when a checkpoint was passed."""
        value = None
        if progress_m - self._current_m > self.checkpoint_m:
            value = self._close()
            self._current_m = progress_m
        if math.isfinite(traffic_speed_mps):
            self._traffic_sum += traffic_speed_mps
            self._ego_sum += ego_speed_mps
            self._points += 1
        return value

    def finish(self, progress_m: float) -> float | int | None:
        """The last checkpoint value, recorded when the route ends past 95 % of its length."""
        if self.route_length_m > 0.0 and progress_m / self.route_length_m > MIN_SPEED_FINAL_SHARE:
            return self._close()
        return None

    def _close(self) -> float | int:
        if self._points > 0 and self._traffic_sum:
            value: float | int = round(self._ego_sum / self._traffic_sum * 100.0, 2)
        else:
            value = MIN_SPEED_NO_TRAFFIC_PCT
        self._ego_sum = self._traffic_sum = 0.0
        self._points = 0
        return value


def min_speed_message(value: float | int) -> str:
    """Bench2Drive's message of a min-speed checkpoint (its efficiency tool parses the number back)."""
    return f"Average speed is {value}% of the surrounding traffic's one"


class RouteTimeout:
    """``RouteTimeoutBehavior``: 300 s, plus for every metre of route advanced ``1 / (0.1 x speed limit)`` s.

    ``cap_s`` (default none) is an extra limit for smoke tests and benchmarks.
    """

    def __init__(self, cap_s: float = math.inf):
        self.timeout_s = ROUTE_TIMEOUT_MIN_S
        self.cap_s = float(cap_s)
        self._progress_m = 0.0

    def update(self, progress_m: float, speed_limit_mps: float) -> None:
        if progress_m > self._progress_m:
            self.timeout_s += (progress_m - self._progress_m) / (ROUTE_TIMEOUT_SPEED_SHARE * speed_limit_mps)
            self._progress_m = progress_m

    def expired(self, elapsed_s: float) -> bool:
        return elapsed_s > self.timeout_s or elapsed_s >= self.cap_s


@dataclass
class OutsideRouteLanes:
    """``OutsideRouteLanesTest``: the route distance completed while outside the route lanes, as a share
    of the route distance completed. The penalty uses the share; the message states both."""

    outside_m: float = 0.0
    completed_m: float = 0.0

    def update(self, advanced_m: float, outside: bool) -> None:
        if advanced_m > 0.0:
            self.completed_m += advanced_m
            if outside:
                self.outside_m += advanced_m

    @property
    def percent(self) -> float:
        return 100.0 * self.outside_m / self.completed_m if self.completed_m > 0.0 else 0.0

    def message(self) -> str:
        return (
            f"Agent went outside its route lanes for about {round(self.outside_m, 3)} meters "
            f"({round(self.percent, 2)}% of the completed route)"
        )


@dataclass
class YieldToEmergencyVehicle:
    """The YieldToEmergencyVehicle scenario's end conditions and ``YieldToEmergencyVehicleTest``.

    Active from the scenario's start. Every step the test fails while the ego is ahead of the emergency
    vehicle (EV) along the EV's heading and succeeds otherwise. The scenario ends 10 s after the EV first came
    within 50 m of the ego, or once the EV got in front of the ego and then drove 50 m; the test's last state
    then decides (a failure is one ``yield_emergency_vehicle_infractions`` event). A route that ends while
    the scenario runs is judged by the last state as well.
    """

    failing: bool | None = None  # None: never updated (the scenario did not start)
    ended: bool = False
    close_since_s: float | None = None
    front_xy: np.ndarray | None = None
    ev_driven_m: float = 0.0
    _ev_last_xy: np.ndarray | None = field(default=None, repr=False)

    def update(
        self,
        time_s: float,
        ego_xy: np.ndarray,
        ego_half_length_m: float,
        ev_xy: np.ndarray,
        ev_yaw: float,
        ev_half_length_m: float,
    ) -> bool:
        """Feed one step of the running scenario; returns True when the scenario ended at this step."""
        if self.ended:
            return False
        ev_dir = np.array([math.cos(ev_yaw), math.sin(ev_yaw)])
        self.failing = bool(ev_dir @ (ego_xy - ev_xy) > 0.0)
        if self.close_since_s is None and float(np.hypot(*(ego_xy - ev_xy))) < EV_TRIGGER_DISTANCE_M:
            self.close_since_s = time_s
        if self.front_xy is None:
            ahead = ego_xy + (ego_half_length_m + ev_half_length_m) * ev_dir
            if ev_dir @ (ev_xy - ahead) > 0.0 and float(np.hypot(*(ev_xy - ahead))) < EV_IN_FRONT_DISTANCE_M:
                self.front_xy = ev_xy.copy()
                self._ev_last_xy = ev_xy.copy()
        elif self._ev_last_xy is not None:
            self.ev_driven_m += float(np.hypot(*(ev_xy - self._ev_last_xy)))
            self._ev_last_xy = ev_xy.copy()
        idle_over = self.close_since_s is not None and time_s - self.close_since_s > EV_IDLE_S
        if idle_over or self.ev_driven_m > EV_END_DISTANCE_M:
            self.ended = True
        return self.ended
