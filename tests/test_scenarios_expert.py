"""Every scenario type instantiates for several seeds and the expert completes it without collisions."""

from __future__ import annotations

import pytest

from riskdistill.sim.events import RouteEnd
from riskdistill.sim.expert import ExpertDriver
from riskdistill.sim.rollout import run_route
from riskdistill.sim.scenarios import REGISTRY, build_scenario

SEEDS = (0, 1, 2)


def test_library_covers_sixteen_types_and_all_five_abilities() -> None:
    assert len(REGISTRY) >= 16
    abilities = {a for sc in REGISTRY.values() for a in sc.abilities}
    assert {str(a) for a in abilities} == {
        "Merging",
        "Overtaking",
        "Emergency_Brake",
        "Give_Way",
        "Traffic_Signs",
    }


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_expert_completes_scenario(name: str) -> None:
    for seed in SEEDS:
        instance = build_scenario(name, seed)
        log = run_route(instance, ExpertDriver)
        collisions = [e for e in log.events if e.kind.value.startswith("collisions")]
        assert log.end == RouteEnd.COMPLETED, (name, seed, log.end, [e.message for e in log.events])
        assert not collisions, (name, seed, [e.message for e in collisions])
