"""Small statistics for the report's closed-loop tables: run groups (label x condition), seed means with
Student-t confidence intervals (the definition of :mod:`riskdistill.evaluation.compare`), and the
nominal / shifted pairs of the generalisation table. Paired tests come from ``evaluation.compare``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from riskdistill.types import Ability
from riskdistill.viz.report_data import NOMINAL, ClosedLoopRun

#: (key in summary.json, column title) of the closed-loop table, in order.
CLOSED_LOOP_METRICS: tuple[tuple[str, str], ...] = (
    ("driving_score", "DS"),
    ("success_rate", "SR %"),
    ("route_completion", "RC %"),
    ("infraction_penalty", "IP"),
    ("efficiency", "Efficiency"),
    ("comfortness", "Comfortness"),
    ("ability_mean", "Ability mean"),
)
ABILITY_NAMES: tuple[str, ...] = tuple(str(a) for a in Ability)
#: The per-route value behind a summary metric (its mean over routes), for intervals over routes.
ROUTE_VALUES: dict[str, Any] = {
    "driving_score": lambda o: o.scores["score_composed"],
    "success_rate": lambda o: 100.0 * float(o.success),
    "route_completion": lambda o: o.scores["score_route"],
    "infraction_penalty": lambda o: o.scores["score_penalty"],
}


def mean_ci(values: Sequence[float | None], confidence: float = 0.95) -> tuple[float, float] | None:
    """``(mean, half_width)`` of the Student-t interval of ``evaluation.compare.t_confidence_interval`` over
    the finite values (half width 0 for one value); None when there is none."""
    from riskdistill.evaluation.compare import t_confidence_interval

    ci = t_confidence_interval([x for x in values if x is not None and math.isfinite(x)], confidence)
    if ci["mean"] is None:
        return None
    half = 0.0 if ci["ci_high"] is None else float(ci["ci_high"]) - float(ci["mean"])
    return float(ci["mean"]), half


def summary_value(summary: dict[str, Any], key: str) -> float | None:
    """A metric of a summary.json; abilities are looked up in ``summary["abilities"]``."""
    v = summary.get(key)
    if v is None and key in ABILITY_NAMES:
        v = (summary.get("abilities") or {}).get(key)
    return float(v) if isinstance(v, (int, float)) else None


@dataclass
class RunGroup:
    """The runs (seeds) of one label under one condition."""

    label: str
    condition: str
    runs: list[ClosedLoopRun] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.label if self.condition == NOMINAL else f"{self.label} [{self.condition}]"

    def stat(self, key: str) -> tuple[float, float] | None:
        return mean_ci([summary_value(r.summary, key) for r in self.runs])

    def interval(self, key: str) -> tuple[float, float, float, str] | None:
        """``(value, low, high, method)`` of the 95 % interval shown as an error bar: over the seeds
        (``"t"``, two or more runs), else over the routes of the one run (``"routes"``: percentile
        bootstrap of the per-route values, for the metrics that have one), else ``(value, value, value,
        "none")``. None when the metric is missing."""
        st = self.stat(key)
        if st is None:
            return None
        mean, half = st
        if len(self.runs) > 1:
            return mean, mean - half, mean + half, "t"
        per_route = ROUTE_VALUES.get(key)
        if per_route is None or not self.runs[0].routes:
            return mean, mean, mean, "none"
        from riskdistill.evaluation.compare import bootstrap_confidence_interval

        ci = bootstrap_confidence_interval([per_route(o) for o in self.runs[0].routes])
        if ci["ci_low"] is None or ci["ci_high"] is None:
            return mean, mean, mean, "none"
        return mean, min(mean, float(ci["ci_low"])), max(mean, float(ci["ci_high"])), "routes"

    def route_scores(self) -> dict[str, float]:
        """Composed score per route id, averaged over the seeds that ran it."""
        acc: dict[str, list[float]] = {}
        for run in self.runs:
            for o in run.routes:
                acc.setdefault(o.route_id, []).append(o.scores["score_composed"])
        return {k: float(np.mean(v)) for k, v in acc.items()}


def group_runs(runs: Sequence[ClosedLoopRun]) -> list[RunGroup]:
    """Group runs by (label, condition), in order of first appearance."""
    groups: dict[tuple[str, str], RunGroup] = {}
    for r in runs:
        groups.setdefault((r.label, r.condition), RunGroup(r.label, r.condition)).runs.append(r)
    return list(groups.values())


def generalisation_deltas(groups: Sequence[RunGroup]) -> list[tuple[RunGroup, RunGroup]]:
    """``(nominal, shifted)`` group pairs of the same label."""
    nominal = {g.label: g for g in groups if g.condition == NOMINAL}
    return [(nominal[g.label], g) for g in groups if g.condition != NOMINAL and g.label in nominal]
