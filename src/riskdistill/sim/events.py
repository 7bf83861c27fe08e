"""What happens during a closed-loop route: infraction events and the route's end state.

The environment emits these; the Bench2Drive-style scoring in :mod:`riskdistill.evaluation` reads them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from riskdistill.types import Infraction


class RouteEnd(StrEnum):
    """Why a route ended. Values are Bench2Drive's status strings where one exists."""

    RUNNING = "Running"
    COMPLETED = "Completed"  # reached the end; "Perfect" vs "Completed" is decided by the scorer
    DEVIATED = "Failed - Agent deviated from the route"
    BLOCKED = "Failed - Agent got blocked"
    TIMEOUT = "Failed - Agent timed out"
    SIM_CRASHED = "Failed - Simulation crashed"
    AGENT_CRASHED = "Failed - Agent crashed"


@dataclass(frozen=True)
class InfractionEvent:
    kind: Infraction
    time_s: float
    x_m: float
    y_m: float
    message: str
    actor_id: int | None = None
    value: float | None = None  # e.g. the share of the route driven outside route lanes, in percent

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = str(self.kind)
        return d
