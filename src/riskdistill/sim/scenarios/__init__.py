"""The scenario library. Each module registers its scenario types; this import makes them available."""

from riskdistill.sim.scenarios import crossing, cut_in, emergency, junction, obstacles  # noqa: F401  (registration)
from riskdistill.sim.scenarios.base import (
    REGISTRY,
    ScenarioError,
    ScenarioInstance,
    ScenarioType,
    get_scenario_type,
)
from riskdistill.sim.scenarios.build import build_scenario

__all__ = [
    "REGISTRY",
    "ScenarioError",
    "ScenarioInstance",
    "ScenarioType",
    "build_scenario",
    "get_scenario_type",
]
