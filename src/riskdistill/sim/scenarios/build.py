"""``build_scenario(type, seed)``: a scenario type's layout, actors and triggers, plus background traffic,
frozen into a runnable :class:`~riskdistill.sim.scenarios.base.ScenarioInstance`."""

from __future__ import annotations

from typing import Any

import numpy as np

from riskdistill.sim.layouts import LayoutParams
from riskdistill.sim.road_layouts import build_layout
from riskdistill.sim.scenarios.background import add_background_traffic, add_crossing_walkers
from riskdistill.sim.scenarios.base import (
    SCENARIO_TIMEOUT_S,
    SCENARIOS_WITH_TIMEOUT,
    BuildContext,
    ScenarioError,
    ScenarioInstance,
    get_scenario_type,
    instance_from_context,
)


def build_scenario(
    scenario_type: str, seed: int, layout_overrides: dict[str, Any] | None = None, crossing_walkers: int = 0
) -> ScenarioInstance:
    """Instantiate ``scenario_type`` for ``seed``. Raises :class:`ScenarioError` naming what is wrong.

    ``crossing_walkers``: extra pedestrians who cross the ego's route ahead
    (:func:`~riskdistill.sim.scenarios.background.add_crossing_walkers`; training recordings). 0 leaves the
    route exactly as without them."""
    sc = get_scenario_type(scenario_type)
    rng = np.random.default_rng([seed, _stable_hash(scenario_type)])
    overrides = dict(layout_overrides or {})
    family = overrides.get("family", sc.families[0])
    if family not in sc.families:
        raise ScenarioError(
            f"scenario {scenario_type!r} cannot use layout family {family!r}; "
            f"valid families: {list(sc.families)}"
        )
    params = sc.layout_params(rng, family)
    params.update(overrides)
    try:
        layout = build_layout(LayoutParams(**params))
    except Exception as exc:
        raise ScenarioError(
            f"scenario {scenario_type!r} seed {seed}: invalid layout parameters: {exc}"
        ) from exc
    ctx = BuildContext(layout, rng)
    if scenario_type in SCENARIOS_WITH_TIMEOUT:
        ctx.scenario_timeout_s = SCENARIO_TIMEOUT_S
    try:
        sc.populate(ctx)
    except ScenarioError:
        raise
    except Exception as exc:
        raise ScenarioError(
            f"scenario {scenario_type!r} seed {seed} could not be instantiated: {exc!r}"
        ) from exc
    if ctx.route is None:
        raise ScenarioError(f"scenario {scenario_type!r} seed {seed}: populate() set no route")
    if sc.hazard and not ctx.hazards:
        raise ScenarioError(
            f"scenario {scenario_type!r} seed {seed}: declares hazard {sc.hazard!r} but marked no actor"
        )
    if sc.hazard == "" and ctx.hazards:
        raise ScenarioError(f"scenario {scenario_type!r} declares no hazard but marked {sorted(ctx.hazards)}")
    add_background_traffic(ctx, density=sc.background_density * float(rng.uniform(0.5, 1.5)))
    add_crossing_walkers(ctx, crossing_walkers)
    return instance_from_context(ctx, scenario_type, seed, sc.abilities)


def _stable_hash(text: str) -> int:
    """A process-independent hash (Python's ``hash`` of a str is salted per process)."""
    h = 2166136261
    for ch in text.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h
