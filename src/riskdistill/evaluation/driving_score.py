"""Bench2Drive per-route scores and the suite summary (Driving Score, Success Rate, Multi-Ability, ...).

Definitions follow ``/work/shared/reference/bench2drive.md`` and the CARLA leaderboard 2.0
``statistics_manager`` that Bench2Drive ships:

* Route Completion RC (%) is what the environment measured, clipped to [0, 100].
* Infraction Penalty IP starts at 1.0 and is multiplied once per event by :data:`PENALTY_FACTORS`;
  driving outside the route lanes multiplies by ``1 - percent / 100`` (the percent is the event's
  ``value``). Minimum-speed events are recorded but not penalised (Bench2Drive marks them 'unused').
  Route deviation, being blocked and the route timeout end the route, which caps RC, but carry no factor.
* ``score_composed = max(RC * IP, 0)`` (so in %, like RC).
* Driving Score DS = sum of composed scores / number of routes in the suite: a missing or crashed route
  counts 0.
* Success: the route was completed and has no infraction other than ``min_speed_infractions``.
* Status: ``"Perfect"`` only for a completed route with no recorded event at all; since a route records a
  min-speed event at every checkpoint, completed routes are ``"Completed"`` in practice, as in Bench2Drive.

Per-route scores are rounded to 6 digits before they are averaged, as the results records hold them, so that
Bench2Drive's statistics code run on ``results.json`` gives the summary's numbers exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from riskdistill.sim.events import InfractionEvent, RouteEnd
from riskdistill.types import Ability, Infraction

#: Multiplicative penalty per occurrence (CARLA leaderboard 2.0 / Bench2Drive ``PENALTY_VALUE_DICT``).
PENALTY_FACTORS: dict[Infraction, float] = {
    Infraction.COLLISION_PEDESTRIAN: 0.50,
    Infraction.COLLISION_VEHICLE: 0.60,
    Infraction.COLLISION_LAYOUT: 0.65,
    Infraction.RED_LIGHT: 0.70,
    Infraction.STOP_SIGN: 0.80,
    Infraction.SCENARIO_TIMEOUT: 0.70,
    Infraction.YIELD_EMERGENCY_VEHICLE: 0.70,
}

#: Events that end the route (RC is capped where it stopped) but carry no penalty factor.
ROUTE_ENDING_INFRACTIONS: frozenset[Infraction] = frozenset(
    {Infraction.ROUTE_DEVIATION, Infraction.BLOCKED, Infraction.ROUTE_TIMEOUT}
)

#: Recorded, never penalised, and the only kind a successful route may have.
UNPENALISED_INFRACTIONS: frozenset[Infraction] = frozenset({Infraction.MIN_SPEED})

#: Bench2Drive's Multi-Ability groups, spelled as in bench2drive.md. A scenario may be in several groups.
ABILITY_SCENARIOS: dict[Ability, frozenset[str]] = {
    Ability.OVERTAKING: frozenset(
        {
            "Accident",
            "AccidentTwoWays",
            "ConstructionObstacle",
            "ConstructionObstacleTwoWays",
            "HazardAtSideLane",
            "HazardAtSideLaneTwoWays",
            "ParkedObstacle",
            "ParkedObstacleTwoWays",
            "VehicleOpensDoorTwoWays",
        }
    ),
    Ability.MERGING: frozenset(
        {
            "CrossingBicycleFlow",
            "EnterActorFlow",
            "HighwayExit",
            "InterurbanActorFlow",
            "HighwayCutIn",
            "InterurbanAdvancedActorFlow",
            "MergerIntoSlowTraffic",
            "MergerIntoSlowTrafficV2",
            "NonSignalizedJunctionLeftTurn",
            "NonSignalizedJunctionRightTurn",
            "NonSignalizedJunctionLeftTurnEnterFlow",
            "ParkingExit",
            "SequentialLaneChange",
            "SignalizedJunctionLeftTurn",
            "SignalizedJunctionRightTurn",
            "SignalizedJunctionLeftTurnEnterFlow",
        }
    ),
    Ability.EMERGENCY_BRAKE: frozenset(
        {
            "BlockedIntersection",
            "DynamicObjectCrossing",
            "HardBreakRoute",
            "OppositeVehicleTakingPriority",
            "OppositeVehicleRunningRedLight",
            "ParkingCutIn",
            "PedestrianCrossing",
            "ParkingCrossingPedestrian",
            "StaticCutIn",
            "VehicleTurningRoute",
            "VehicleTurningRoutePedestrian",
            "ControlLoss",
        }
    ),
    Ability.GIVE_WAY: frozenset({"InvadingTurn", "YieldToEmergencyVehicle"}),
    Ability.TRAFFIC_SIGNS: frozenset(
        {
            "BlockedIntersection",
            "OppositeVehicleTakingPriority",
            "OppositeVehicleRunningRedLight",
            "PedestrianCrossing",
            "VehicleTurningRoute",
            "VehicleTurningRoutePedestrian",
            "EnterActorFlow",
            "CrossingBicycleFlow",
            "NonSignalizedJunctionLeftTurn",
            "NonSignalizedJunctionRightTurn",
            "NonSignalizedJunctionLeftTurnEnterFlow",
            "SignalizedJunctionLeftTurn",
            "SignalizedJunctionRightTurn",
            "SignalizedJunctionLeftTurnEnterFlow",
            "T_Junction",
            "VanillaNonSignalizedTurn",
            "VanillaSignalizedTurnEncounterGreenLight",
            "VanillaSignalizedTurnEncounterRedLight",
            "VanillaNonSignalizedTurnEncounterStopsign",
        }
    ),
}

_NUMBERED_SUFFIX = re.compile(r"_\d+$")  # Bench2Drive record names look like "ParkedObstacle_1"
_MIN_KM_DRIVEN = 0.001  # as CARLA: avoids a division by zero when nothing was driven


@dataclass
class RouteResult:
    """The outcome of one closed-loop route, everything the scorer and the checkpoint file need.

    ``route_completion_pct`` is RC in [0, 100]. ``efficiency`` and ``comfort`` are the per-route values
    of :func:`riskdistill.evaluation.comfort.compute_efficiency` (%) and ``compute_comfort`` (a share in
    [0, 1]), ``None`` when they could not be measured. ``junction_completion`` feeds the Traffic_Signs
    ability rule: the share of the route at its first junction point plus 8 points (1 m apart), ``None``
    without a junction. ``leaderboard_id`` (``RouteScenario_<n>_rep0``) and ``town_name`` are what the
    results records show Bench2Drive's tools; ``route_id`` stays the readable name of the suite.
    """

    route_id: str
    scenario_type: str
    route_end: RouteEnd
    route_completion_pct: float
    events: list[InfractionEvent] = field(default_factory=list)
    route_length_m: float = 0.0
    duration_game_s: float = 0.0
    duration_system_s: float = 0.0
    efficiency: float | None = None
    comfort: float | None = None
    junction_completion: float | None = None
    index: int = 0
    weather_id: int | str | None = None
    save_name: str = ""
    leaderboard_id: str = ""
    town_name: str = ""

    def __post_init__(self) -> None:
        self.route_end = RouteEnd(self.route_end)
        rc = float(self.route_completion_pct)
        if not math.isfinite(rc) or rc < 0.0:
            raise ValueError(f"route {self.route_id}: route_completion_pct must be >= 0, got {rc}")
        if not math.isfinite(self.route_length_m) or self.route_length_m < 0.0:
            raise ValueError(f"route {self.route_id}: route_length_m must be >= 0, got {self.route_length_m}")
        if self.comfort is not None and not 0.0 <= self.comfort <= 1.0:
            raise ValueError(f"route {self.route_id}: comfort is a share in [0, 1], got {self.comfort}")


# -----------------------------------------------------------------------------
# per route


def penalty_factor(event: InfractionEvent) -> float:
    """The multiplicative penalty of one event (1.0 for events that carry none)."""
    kind = Infraction(event.kind)
    if kind in PENALTY_FACTORS:
        return PENALTY_FACTORS[kind]
    if kind is Infraction.OUTSIDE_ROUTE_LANES:
        if event.value is None or not math.isfinite(event.value):
            raise ValueError(
                f"outside_route_lanes event at t={event.time_s} s has no percent in 'value' "
                f"({event.message!r})"
            )
        return min(max(1.0 - event.value / 100.0, 0.0), 1.0)
    return 1.0  # min speed (recorded only), route deviation / blocked / route timeout (end the route)


def compute_penalty(events: Iterable[InfractionEvent]) -> float:
    """Infraction Penalty IP: 1.0 times the factor of every event (see :func:`penalty_factor`)."""
    ip = 1.0
    for event in events:
        ip *= penalty_factor(event)
    return ip


ROUND_DIGITS_SCORE = 6  # CARLA's statistics manager rounds the per-route scores to 6 digits


def compute_route_scores(result: RouteResult) -> dict[str, float]:
    """``{"score_route": RC (%), "score_penalty": IP, "score_composed": max(RC * IP, 0) (%)}``.

    RC is taken as measured (clipped to [0, 100]): a route-ending event has already capped it. Each value is
    rounded to 6 digits, as in the results records.
    """
    rc = min(max(float(result.route_completion_pct), 0.0), 100.0)
    ip = compute_penalty(result.events)
    scores = {"score_route": rc, "score_penalty": ip, "score_composed": max(rc * ip, 0.0)}
    return {key: round(value, ROUND_DIGITS_SCORE) for key, value in scores.items()}


def compute_status(result: RouteResult) -> str:
    """The leaderboard status string of a route.

    * ``"Perfect"``: completed with zero recorded events of any kind. As in CARLA / Bench2Drive the test is
      ``num_infractions == 0``, which counts every list entry, so a min-speed event alone already makes
      the route ``"Completed"`` (while it is still a success, see :func:`is_success`).
    * ``"Completed"``: completed with at least one event.
    * otherwise the :class:`RouteEnd` value, e.g. ``"Failed - Agent deviated from the route"``
      (``"Running"`` for a route that has not ended).
    """
    if result.route_end is RouteEnd.COMPLETED:
        return "Perfect" if not result.events else "Completed"
    return str(result.route_end)


def is_success(result: RouteResult) -> bool:
    """Bench2Drive's success rule: completed, and no infraction other than ``min_speed_infractions``."""
    if result.route_end is not RouteEnd.COMPLETED:
        return False
    return all(Infraction(e.kind) in UNPENALISED_INFRACTIONS for e in result.events)


def count_infractions(events: Iterable[InfractionEvent]) -> dict[str, int]:
    """Number of events per infraction key; every one of the 12 keys is present."""
    counts = {str(kind): 0 for kind in Infraction}
    for event in events:
        counts[str(Infraction(event.kind))] += 1
    return counts


# -----------------------------------------------------------------------------
# Multi-Ability


def abilities_of(scenario_type: str) -> list[Ability]:
    """The abilities a scenario type belongs to, in :class:`Ability` order (empty for unknown types).

    A Bench2Drive record name with a numbered suffix (``"ParkedObstacle_1"``) is matched by its type.
    """
    name = scenario_type
    if not any(name in scenarios for scenarios in ABILITY_SCENARIOS.values()):
        name = _NUMBERED_SUFFIX.sub("", name)
    return [ability for ability in Ability if name in ABILITY_SCENARIOS[ability]]


def is_ability_success(result: RouteResult, ability: Ability) -> bool:
    """Success of a route as counted for one ability.

    Traffic_Signs also counts a failed route whose completion passed the first junction plus 8 route points
    (``score_route / 100 > junction_completion``) with no stop-sign and no red-light infraction anywhere on
    the route: Bench2Drive's ``ability_benchmark.py`` rule.
    """
    if is_success(result):
        return True
    if ability is not Ability.TRAFFIC_SIGNS or result.junction_completion is None:
        return False
    kinds = {Infraction(e.kind) for e in result.events}
    if kinds & {Infraction.STOP_SIGN, Infraction.RED_LIGHT}:
        return False
    return compute_route_scores(result)["score_route"] / 100.0 > result.junction_completion


def compute_ability_success_rates(results: Sequence[RouteResult]) -> dict[str, float | None]:
    """Success rate (%) per ability over the evaluated routes of its scenarios; ``None`` without routes.

    Each route counts once per ability it belongs to (as in Bench2Drive's ``ability_benchmark.py``, whose
    junction rule adds to the successes only).
    """
    hits = {ability: 0 for ability in Ability}
    totals = {ability: 0 for ability in Ability}
    for result in results:
        for ability in abilities_of(result.scenario_type):
            totals[ability] += 1
            hits[ability] += int(is_ability_success(result, ability))
    return {
        str(ability): (100.0 * hits[ability] / totals[ability] if totals[ability] else None)
        for ability in Ability
    }


# -----------------------------------------------------------------------------
# suite summary


def km_driven(results: Iterable[RouteResult]) -> float:
    """Kilometres actually driven, ``sum(route_length * RC / 100) / 1000`` (at least 0.001, as CARLA)."""
    metres = sum(r.route_length_m * min(max(r.route_completion_pct, 0.0), 100.0) / 100.0 for r in results)
    return max(metres / 1000.0, _MIN_KM_DRIVEN)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def compute_summary(results: Sequence[RouteResult], n_routes_in_suite: int | None = None) -> dict[str, Any]:
    """Bench2Drive's benchmark numbers for a set of evaluated routes.

    ``n_routes_in_suite`` (default: ``len(results)``) is the number of routes the suite has; routes that are
    missing (never written, crashed before a record) count 0 in the Driving Score, the mean route
    completion / penalty and the Success Rate. Returned keys:

    * ``n_routes`` (suite size), ``n_evaluated``;
    * ``driving_score`` = sum of composed scores / n_routes; ``route_completion`` and
      ``infraction_penalty``: sum / n_routes likewise (CARLA's ``scores_mean``);
    * ``success_rate`` (%) = successful routes / n_routes;
    * ``efficiency`` (%): mean of the per-route values that exist (each already discards checkpoints
      above 1000 %); ``None`` when no route has one;
    * ``comfortness`` (%): 100 x mean of the per-route comfortable-chunk shares; ``None`` likewise;
    * ``abilities``: success rate (%) per ability over its evaluated routes (``None`` without routes)
      and ``ability_mean``, the mean over all five abilities (``None`` unless every ability has routes,
      as Bench2Drive's script divides by five);
    * ``infractions``: event count per key (all 12 keys), ``km_driven`` and ``infractions_per_km``
      (count / km driven, where km driven weights each route's length by its RC, as CARLA).
    """
    results = list(results)
    n_total = len(results) if n_routes_in_suite is None else int(n_routes_in_suite)
    if n_total < len(results):
        raise ValueError(f"n_routes_in_suite={n_total} is smaller than the {len(results)} results given")
    if n_total <= 0:
        raise ValueError("compute_summary needs at least one route (n_routes_in_suite or results)")
    ids = [r.route_id for r in results]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate route ids in results: {dupes}")

    scores = [compute_route_scores(r) for r in results]
    successes = sum(is_success(r) for r in results)
    efficiency = _mean([r.efficiency for r in results if r.efficiency is not None])
    comfort = _mean([r.comfort for r in results if r.comfort is not None])
    abilities = compute_ability_success_rates(results)
    present = [v for v in abilities.values() if v is not None]
    ability_mean = _mean(present) if len(present) == len(abilities) else None

    counts = count_infractions(e for r in results for e in r.events)
    km = km_driven(results)
    return {
        "n_routes": n_total,
        "n_evaluated": len(results),
        "driving_score": sum(s["score_composed"] for s in scores) / n_total,
        "route_completion": sum(s["score_route"] for s in scores) / n_total,
        "infraction_penalty": sum(s["score_penalty"] for s in scores) / n_total,
        "success_rate": 100.0 * successes / n_total,
        "efficiency": efficiency,
        "comfortness": None if comfort is None else 100.0 * comfort,
        "abilities": abilities,
        "ability_mean": ability_mean,
        "infractions": counts,
        "km_driven": km,
        "infractions_per_km": {key: n / km for key, n in counts.items()},
    }
