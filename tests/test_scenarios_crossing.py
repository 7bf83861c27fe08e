"""Crossing and cut-in scenarios: they build, are deterministic, vary per seed, and the hazard happens.

"The hazard happens" is checked with a blind driver: it tracks the route at the scenario's reference speed
(the careless speed the trigger timing is designed for) and never brakes; it must hit the scripted actor.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from riskdistill.contracts.agent import Action, AgentInput, SensorRequest
from riskdistill.sim.env import DrivingEnv
from riskdistill.sim.rollout import run_route
from riskdistill.sim.scenarios import REGISTRY, ScenarioError, ScenarioInstance, build_scenario
from riskdistill.types import Ability

# scenario type -> the params key naming its hazard actor(s)
HAZARD_KEY = {
    "PedestrianCrossing": "walker_ids",
    "ParkingCrossingPedestrian": "walker_id",
    "DynamicObjectCrossing": "adversary_id",
    "VehicleTurningRoutePedestrian": "adversary_id",
    "VehicleTurningRoute": "adversary_id",
    "HardBreakRoute": "lead_id",
    "StaticCutIn": "cutter_id",
    "ParkingCutIn": "cutter_id",
    "HighwayCutIn": "merger_id",
}
NAMES = sorted(HAZARD_KEY)
ACTOR_COLUMNS = (
    "cls",
    "behavior",
    "x",
    "y",
    "yaw",
    "speed",
    "length",
    "width",
    "height",
    "path_id",
    "s",
    "hold",
)


def _hazard_ids(inst: ScenarioInstance) -> list[int]:
    value = inst.params[HAZARD_KEY[inst.scenario_type]]
    return list(value) if isinstance(value, list) else [value]


def _scenario_params(inst: ScenarioInstance) -> str:
    return json.dumps({k: v for k, v in inst.params.items() if k != "layout"}, sort_keys=True)


class BlindDriver:
    """Follows the route at a constant speed and ignores everything else."""

    sensors = SensorRequest()

    def __init__(self, env: DrivingEnv, speed_mps: float):
        self.env, self.speed_mps = env, speed_mps

    def reset(self) -> None:
        pass

    def act(self, agent_input: AgentInput) -> Action:
        env = self.env
        ego, path = env.world.ego, env.instance.route.path
        s_rear = path.project(np.array([ego.x_m, ego.y_m]), s_hint=env.progress_m - 1.45, window_m=10.0)[0]
        d = path.point_at(s_rear + self.speed_mps * 0.5 * np.arange(1, 7)) - np.array([ego.x_m, ego.y_m])
        c, s = np.cos(ego.yaw_rad), np.sin(ego.yaw_rad)
        return Action(waypoints_ego=np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1))


@pytest.mark.parametrize("name", NAMES)
def test_registered_metadata(name: str) -> None:
    sc = REGISTRY[name]
    assert sc.name == name
    assert sc.abilities and all(isinstance(a, Ability) for a in sc.abilities)
    assert sc.families and sc.summary and "\n" not in sc.summary
    expected = Ability.MERGING if name == "HighwayCutIn" else Ability.EMERGENCY_BRAKE
    assert expected in sc.abilities


@pytest.mark.parametrize("name", NAMES)
def test_builds_for_seeds(name: str) -> None:
    for seed in range(6):
        inst = build_scenario(name, seed)
        assert 100.0 <= inst.route.length_m <= 260.0, (seed, inst.route.length_m)
        assert 0.0 < inst.scenario_end_s_m <= inst.route.length_m
        limit = inst.layout.road_map.lanes[inst.route.lane_ids[0]].speed_limit_mps
        assert 0.0 <= inst.world.ego.speed_mps <= 0.9 * limit
        assert inst.script.triggers, "no scripted trigger"
        assert all(t.ego_s_m is None or 0.0 < t.ego_s_m < inst.route.length_m for t in inst.script.triggers)
        for j in _hazard_ids(inst):
            assert 0 < j < inst.world.actors.n
        json.dumps(inst.params)  # JSON-serialisable


@pytest.mark.parametrize("name", NAMES)
def test_every_family_builds(name: str) -> None:
    for family in REGISTRY[name].families:
        for seed in (0, 1):
            inst = build_scenario(name, seed, {"family": family})
            assert inst.layout.params.family == family


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_varied(name: str) -> None:
    a, b = build_scenario(name, 3), build_scenario(name, 3)
    assert a.world.actors.n == b.world.actors.n
    n = a.world.actors.n
    for col in ACTOR_COLUMNS:
        np.testing.assert_array_equal(
            getattr(a.world.actors, col)[:n], getattr(b.world.actors, col)[:n], err_msg=col
        )
    np.testing.assert_array_equal(a.route.path.points, b.route.path.points)
    assert [t.ego_s_m for t in a.script.triggers] == [t.ego_s_m for t in b.script.triggers]
    assert [t.time_s for t in a.script.triggers] == [t.time_s for t in b.script.triggers]
    assert a.params == b.params
    assert len({_scenario_params(build_scenario(name, seed)) for seed in range(6)}) == 6


@pytest.mark.parametrize("name", NAMES)
def test_blind_driver_meets_the_hazard(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver that never brakes hits the scripted actor (no background traffic gets in the way)."""
    monkeypatch.setattr(REGISTRY[name], "background_density", 0.0)
    for seed in (0, 1):
        inst = build_scenario(name, seed)
        ids = _hazard_ids(inst)
        decel = []
        speed = inst.params["reference_speed_mps"]

        class Watch:  # a route observer: the hazard's deceleration at every step
            def on_step(self, env: DrivingEnv, _: AgentInput, __: object, ids=ids, decel=decel) -> None:
                decel.append(float(-env.world.actors.accel[ids[0]]))

        env = DrivingEnv()
        log = run_route(inst, BlindDriver(env, speed), env=env, observers=[Watch()])
        hits = [e.actor_id for e in log.events if e.kind.value.startswith("collisions")]
        assert set(hits) & set(ids), (seed, hits, ids)
        if name == "HardBreakRoute":
            assert 6.0 - 1e-6 <= max(decel) <= 8.0 + 1e-6


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("StaticCutIn", {"lanes_per_direction": 1}, "lanes_per_direction >= 2"),
        ("ParkingCrossingPedestrian", {"parking": False}, "parking"),
        ("ParkingCutIn", {"parking": False}, "parking"),
        ("PedestrianCrossing", {"crosswalk": False}, "crosswalk"),
        ("PedestrianCrossing", {"speed_limit_mps": 30.0}, "too high"),
        ("ParkingCrossingPedestrian", {"speed_limit_mps": 25.0}, "too high"),
        ("HighwayCutIn", {"family": "straight"}, "cannot use layout family"),
        ("VehicleTurningRoute", {"crosswalk": False}, "crosswalk"),
    ],
)
def test_impossible_parameters_raise(name: str, overrides: dict, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        build_scenario(name, 0, overrides)
