"""The generalisation protocol: the same suite under a changed camera rig, or on held-out scenarios.

Rig shifts are named strings parsed into a :class:`~riskdistill.contracts.rig.RigPerturbation`; several
shifts combine with commas (``"height+0.3,pitch-3deg"``). Grammar (one term each):

========================  ========================================================================
``height+0.3``            every camera 0.3 m higher (``height-0.2``: lower), metres
``pitch-3deg``            optical axes tilted 3 deg up (positive pitch tilts down), degrees
``yaw+5deg``              every camera turned 5 deg to the left (counter-clockwise), degrees
``fov-10``                every horizontal field of view 10 % narrower (``fov+10``: wider), percent
``res-0.75``              cameras render at 0.75 x the resolution, upsampled back to the requested size
``drop-CAM_BACK``         that camera delivers a black image (``extras["camera_valid"]`` is False)
``nominal``               no change
========================  ========================================================================

:data:`RIG_SHIFTS` lists the named shifts of the protocol (what ``riskdistill eval closed-loop --rig-shift
list`` prints); any string of the grammar is accepted. Held-out scenarios: :func:`select_routes` keeps the
routes of a suite tagged as held-out (layout family or scenario type, see :mod:`riskdistill.sim.suites`).
:func:`compare_to_nominal` puts a shifted run beside the nominal one (delta DS / SR, paired per route).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from riskdistill.contracts.rig import RigPerturbation
from riskdistill.sim.suites import HELD_OUT_FAMILIES, HELD_OUT_SCENARIOS, Suite

#: The named shifts of the protocol (name -> what it means).
RIG_SHIFTS: dict[str, str] = {
    "nominal": "the driver's own rig",
    "height+0.3": "cameras 0.3 m higher (a taller vehicle)",
    "height-0.3": "cameras 0.3 m lower",
    "pitch-3deg": "cameras tilted 3 deg up",
    "pitch+3deg": "cameras tilted 3 deg down",
    "yaw+5deg": "cameras turned 5 deg left",
    "yaw-5deg": "cameras turned 5 deg right",
    "fov-10": "fields of view 10 % narrower",
    "fov+10": "fields of view 10 % wider",
    "res-0.75": "rendered at 0.75 x resolution, upsampled",
    "res-0.5": "rendered at 0.5 x resolution, upsampled",
    "drop-CAM_BACK": "the back camera is dead (black image)",
    "drop-CAM_FRONT_LEFT": "the front-left camera is dead (black image)",
}

_TERM = re.compile(
    r"^(?:(?P<kind>height|pitch|yaw|fov)(?P<sign>[+-])(?P<num>\d+(?:\.\d+)?)(?P<unit>m|deg|pct|%)?"
    r"|res[-x*]?(?P<res>\d*\.?\d+)"
    r"|drop-(?P<cam>[A-Za-z0-9_]+))$"
)
_UNITS = {"height": ("", "m"), "pitch": ("", "deg"), "yaw": ("", "deg"), "fov": ("", "pct", "%")}

SCENARIO_SELECTIONS = ("all", "heldout", "heldout-layout", "heldout-scenario", "seen")


@dataclass(frozen=True)
class EvalVariant:
    """What the evaluation changed relative to the nominal setting: a rig shift (``None`` = nominal), the
    scenario selection (``all``, ``heldout``, ...), the JPEG quality the observations pass through (``None``:
    raw renders), an optional rig override for students and an optional cap on every route's timeout
    (``route_timeout_s``; Bench2Drive's own is 300 s + 10 s x metres advanced / speed limit), for smoke tests
    and benchmarks: a route still running then ends "Failed - Agent timed out"."""

    rig_shift: str | None = None
    scenarios: str = "all"
    jpeg_quality: int | None = None
    rig: str | None = None
    route_timeout_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_rig_shift(spec: str | None) -> RigPerturbation:
    """``"height+0.3,pitch-3deg"`` -> the combined :class:`RigPerturbation` (``None``/``"nominal"``: none).

    Raises ``ValueError`` naming the bad term and listing the grammar and the named shifts.
    """
    if spec is None or spec.strip() in ("", "nominal"):
        return RigPerturbation()
    fields: dict[str, Any] = {}
    drop: list[str] = []
    for raw in spec.split(","):
        term = raw.strip()
        m = _TERM.match(term)
        if m is None or (m["kind"] and (m["unit"] or "") not in _UNITS[m["kind"]]):
            raise ValueError(
                f"rig shift {term!r} not understood; terms: height+M, pitch+-Ddeg, yaw+-Ddeg, fov+-PERCENT, "
                f"res-SCALE, drop-CAMERA (comma-separated); named shifts: {sorted(RIG_SHIFTS)}"
            )
        if m["cam"]:
            drop.append(m["cam"])
            continue
        if m["res"]:
            key, value = "resolution_scale", float(m["res"])
            if not 0.0 < value <= 4.0:
                raise ValueError(f"rig shift {term!r}: resolution scale must be in (0, 4], got {value}")
        else:
            v = float(m["num"]) * (1.0 if m["sign"] == "+" else -1.0)
            key, value = {
                "height": ("height_delta_m", v),
                "pitch": ("pitch_delta_deg", v),
                "yaw": ("yaw_delta_deg", v),
                "fov": ("fov_scale", 1.0 + v / 100.0),
            }[m["kind"]]
            if key == "fov_scale" and value <= 0.0:
                raise ValueError(f"rig shift {term!r} would make the field of view <= 0")
        if key in fields:
            raise ValueError(f"rig shift {spec!r} sets {key} twice")
        fields[key] = value
    return RigPerturbation(**fields, drop_cameras=drop)


def split_perturbation(p: RigPerturbation) -> tuple[RigPerturbation, float, list[str]]:
    """``(geometric part, resolution scale, dropped cameras)``: the evaluator tells the driver the geometric
    part as the true calibration, renders at the scaled resolution and blanks the dropped cameras."""
    geo = RigPerturbation(
        height_delta_m=p.height_delta_m,
        pitch_delta_deg=p.pitch_delta_deg,
        yaw_delta_deg=p.yaw_delta_deg,
        fov_scale=p.fov_scale,
    )
    return geo, p.resolution_scale, list(p.drop_cameras)


def is_held_out(route: Any, which: str = "heldout") -> bool:
    """Whether a :class:`~riskdistill.sim.suites.RouteSpec` is held out (by its tags, or its layout family /
    scenario type when untagged). ``which``: ``heldout`` (either), ``heldout-layout``,
    ``heldout-scenario``."""
    layout = "held_out_layout" in route.tags or route.layout.get("family") in HELD_OUT_FAMILIES
    scenario = "held_out_scenario" in route.tags or route.scenario in HELD_OUT_SCENARIOS
    return {"heldout": layout or scenario, "heldout-layout": layout, "heldout-scenario": scenario}[which]


def select_routes(suite: Suite, scenarios: str = "all") -> Suite:
    """The routes of ``suite`` for a scenario selection (:data:`SCENARIO_SELECTIONS`):
    ``all``; ``heldout`` (held-out layout family or scenario type), ``heldout-layout``, ``heldout-scenario``;
    ``seen`` (neither). ValueError for an unknown selection or when nothing is left."""
    if scenarios not in SCENARIO_SELECTIONS:
        raise ValueError(f"unknown scenario selection {scenarios!r}; valid: {list(SCENARIO_SELECTIONS)}")
    if scenarios == "all":
        return suite
    if scenarios == "seen":
        routes = [r for r in suite.routes if not is_held_out(r)]
    else:
        routes = [r for r in suite.routes if is_held_out(r, scenarios)]
    if not routes:
        raise ValueError(
            f"suite {suite.name!r} has no {scenarios} routes (held-out families {list(HELD_OUT_FAMILIES)}, "
            f"types {list(HELD_OUT_SCENARIOS)}; the 'train' suite has none, use 'bench' or 'val')"
        )
    return Suite(
        name=f"{suite.name}:{scenarios}", description=f"{scenarios} routes of {suite.name}", routes=routes
    )


def compare_to_nominal(nominal_dir: str | Path, shifted_dirs: Sequence[str | Path]) -> dict[str, Any]:
    """Each shifted run against the nominal run of the same driver: ``{"nominal": {...}, "shifts":
    [{"variant", "driving_score", "success_rate", "delta_driving_score", "delta_success_rate",
    "paired": {...}}, ...]}``.

    ``paired`` is :func:`riskdistill.evaluation.compare.paired_test` of the per-route composed scores on
    the routes both runs have (shifted - nominal).
    """
    from riskdistill.evaluation.compare import load_run, paired_test

    base = load_run(nominal_dir)
    out: dict[str, Any] = {
        "nominal": {
            "run": str(nominal_dir),
            "variant": base.variant,
            "driving_score": base.summary.get("driving_score"),
            "success_rate": base.summary.get("success_rate"),
        },
        "shifts": [],
    }
    for d in shifted_dirs:
        run = load_run(d)
        common = [r for r in base.route_ids if r in run.scores]
        ds, sr = run.summary.get("driving_score"), run.summary.get("success_rate")
        b_ds, b_sr = base.summary.get("driving_score"), base.summary.get("success_rate")
        out["shifts"].append(
            {
                "run": str(d),
                "variant": run.variant,
                "driving_score": ds,
                "success_rate": sr,
                "delta_driving_score": None if ds is None or b_ds is None else ds - b_ds,
                "delta_success_rate": None if sr is None or b_sr is None else sr - b_sr,
                "paired": paired_test(
                    [base.scores[r]["score_composed"] for r in common],
                    [run.scores[r]["score_composed"] for r in common],
                ),
            }
        )
    return out
