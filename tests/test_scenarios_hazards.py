"""Scenario ground truth for label quality: every scenario type names its hazard actors."""

from __future__ import annotations

import numpy as np
import pytest

from riskdistill.sim.actors import Behavior
from riskdistill.sim.scenarios import REGISTRY, ScenarioError, build_scenario
from riskdistill.sim.scenarios.base import Release, pending_releases, release
from riskdistill.sim.suites import load_suite


def test_every_registered_type_declares_its_hazard() -> None:
    undeclared = sorted(name for name, cls in REGISTRY.items() if cls.hazard is None)
    assert undeclared == [], (
        f"scenario types without a hazard declaration (ScenarioType.hazard): {undeclared}"
    )
    without = sorted(name for name, cls in REGISTRY.items() if cls.hazard == "")
    assert without == ["VanillaNonSignalizedTurnEncounterStopsign", "VanillaSignalizedTurnEncounterRedLight"]


@pytest.mark.parametrize(
    "name", ["PedestrianCrossing", "HardBreakRoute", "OppositeVehicleTakingPriority", "AccidentTwoWays"]
)
def test_built_instances_name_real_actors_as_hazards(name: str) -> None:
    spec = next(r for r in load_suite("bench").routes if r.scenario == name)
    inst = build_scenario(spec.scenario, spec.seed, spec.layout)
    assert inst.hazards and all(role for role in inst.hazards.values())
    n = inst.world.actors.n
    assert all(0 < a < n for a in inst.hazards)  # never the ego
    beh = inst.world.actors.behavior
    if name == "PedestrianCrossing":  # the crossing walkers, each released by the scenario's trigger
        assert {int(beh[a]) for a in inst.hazards} == {int(Behavior.WALKER)}
        pending = pending_releases(inst.script)
        assert set(inst.hazards) <= set(pending)
        trig_s, speed = pending[next(iter(inst.hazards))]
        assert trig_s == pytest.approx(inst.params["trigger_s_m"], abs=1e-3) and speed > 0.5
    if name == "HardBreakRoute":
        assert list(inst.hazards) == [inst.params["lead_id"]]
    if name == "OppositeVehicleTakingPriority":
        assert list(inst.hazards) == [inst.params["violator"]["actor"]]
    if name == "AccidentTwoWays":  # the blockers and the oncoming vehicles of the lane to borrow
        roles = set(inst.hazards.values())
        assert roles == {"blocker in the ego lane", "oncoming vehicle in the lane to borrow"}
        assert set(inst.params["blocker_actors"]) | set(inst.params["oncoming"]["actors"]) == set(
            inst.hazards
        )
    # naming hazards draws no random numbers: the same seed builds the same world as before
    again = build_scenario(spec.scenario, spec.seed, spec.layout)
    np.testing.assert_array_equal(again.world.actors.x[:n], inst.world.actors.x[:n])


def test_releases_are_visible_until_they_fire() -> None:
    from riskdistill.sim.scenarios.base import ScenarioScript, Trigger

    act = release(4, 1.5)
    assert isinstance(act, Release) and act.actor == 4 and act.speed_mps == 1.5
    script = ScenarioScript([Trigger([act], ego_s_m=30.0), Trigger([release(4)], ego_s_m=10.0)])
    assert pending_releases(script) == {4: (10.0, None)}  # the earliest trigger wins
    script.triggers[1].fired = True
    assert pending_releases(script) == {4: (30.0, 1.5)}


def test_a_declared_hazard_must_be_marked(monkeypatch) -> None:
    base = REGISTRY["HardBreakRoute"]

    class Forgetful(base):  # type: ignore[misc, valid-type]
        name = "Forgetful"
        hazard = "braking lead vehicle"

        def populate(self, ctx) -> None:
            super().populate(ctx)
            ctx.hazards.clear()

    class Overeager(base):  # type: ignore[misc, valid-type]
        name = "Overeager"
        hazard = ""

    monkeypatch.setitem(REGISTRY, "Forgetful", Forgetful)
    monkeypatch.setitem(REGISTRY, "Overeager", Overeager)
    with pytest.raises(ScenarioError, match="marked no actor"):
        build_scenario("Forgetful", 1)
    with pytest.raises(ScenarioError, match="declares no hazard"):
        build_scenario("Overeager", 1)
    with pytest.raises(ScenarioError, match="cannot be a hazard"):
        from riskdistill.sim.layouts import LayoutParams
        from riskdistill.sim.road_layouts import build_layout
        from riskdistill.sim.scenarios.base import BuildContext

        BuildContext(build_layout(LayoutParams(family="straight")), np.random.default_rng(0)).mark_hazard(
            0, "x"
        )
