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


def test_a_pass_replanned_half_in_the_next_lane_starts_from_where_the_car_is() -> None:
    """A new pass planned while the car already stands 2 m to the left follows on from there instead of first
    steering back onto the blocked line (which left it standing behind the blocker, route after route, once
    crossing walkers delayed a pass)."""
    import numpy as np

    from riskdistill.sim.expert import _Avoidance, _plan_offset, _start_from_current_offset

    plan = _Avoidance(s_ramp_in=10.0, s_full=19.0, s_hold_end=40.0, s_ramp_out=50.0, offset_m=3.5)
    _start_from_current_offset(plan, s_centre=8.0, lateral_m=2.0)
    assert float(_plan_offset(plan, np.array([8.0]))[0]) == pytest.approx(2.0, abs=0.05)
    assert plan.s_full - plan.s_ramp_in == pytest.approx(9.0) and plan.s_full < 19.0
    assert np.all(np.diff(_plan_offset(plan, np.linspace(8.0, 30.0, 50))) >= 0)  # on outwards, never back
    for lateral in (0.0, -1.0):  # on the line (or right of it): the plan as it was
        same = _Avoidance(10.0, 19.0, 40.0, 50.0, 3.5)
        _start_from_current_offset(same, s_centre=8.0, lateral_m=lateral)
        assert (same.s_ramp_in, same.s_full) == (10.0, 19.0)
