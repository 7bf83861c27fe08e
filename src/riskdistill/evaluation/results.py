"""Closed-loop result files: one JSON per route (result, scores, status, artefacts), their round trip to
:class:`~riskdistill.evaluation.driving_score.RouteResult`, the folder's settings and its risk-vs-outcome
summary. Layouts: ``docs/metrics.md``."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from riskdistill.evaluation import bench2drive_io as b2d
from riskdistill.evaluation.comfort import compute_efficiency
from riskdistill.evaluation.driving_score import RouteResult, compute_route_scores, compute_status
from riskdistill.io import atomic_write_json, load_json
from riskdistill.sim.env import RouteLog
from riskdistill.sim.events import InfractionEvent, RouteEnd
from riskdistill.sim.suites import RouteSpec
from riskdistill.types import Infraction

ARTEFACT_DT_S = 0.5  # ego trajectory and plans are stored every 0.5 s
EVAL_CONFIG = "eval_config.json"
SCORING = "bench2drive-0.0.4 criteria, riskdistill scoring v2"  # part of the resume key
ROUTE_RESULT_FIELDS = tuple(f.name for f in fields(RouteResult))


def result_from_log(spec: RouteSpec, index: int, log: RouteLog, wall_s: float) -> RouteResult:
    comfort = b2d.metric_comfort(b2d.metric_samples(log))
    efficiency = compute_efficiency(e.message for e in log.events if e.kind == Infraction.MIN_SPEED)
    end = log.end if log.end != RouteEnd.RUNNING else RouteEnd.SIM_CRASHED
    return RouteResult(
        route_id=spec.route_id,
        scenario_type=spec.scenario,
        route_end=end,
        # a crashed route scores 0 (its measured completion is kept in the artefacts)
        route_completion_pct=0.0
        if end in (RouteEnd.AGENT_CRASHED, RouteEnd.SIM_CRASHED)
        else log.route_completion_pct,
        events=list(log.events),
        route_length_m=log.route_length_m,
        duration_game_s=log.time_s[-1] if log.time_s else 0.0,
        duration_system_s=wall_s,
        efficiency=efficiency,
        comfort=comfort,
        junction_completion=log.first_junction_completion,
        index=index,
        weather_id=spec.seed,
        save_name=spec.route_id,
    )


def crashed_result(spec: RouteSpec, index: int, end: RouteEnd, wall_s: float) -> RouteResult:
    return RouteResult(
        route_id=spec.route_id,
        scenario_type=spec.scenario,
        route_end=end,
        route_completion_pct=0.0,
        duration_system_s=wall_s,
        index=index,
        weather_id=spec.seed,
        save_name=spec.route_id,
    )


def result_to_dict(r: RouteResult) -> dict[str, Any]:
    return {
        "route_id": r.route_id,
        "scenario_type": r.scenario_type,
        "route_end": str(r.route_end),
        "route_completion_pct": r.route_completion_pct,
        "events": [e.to_dict() for e in r.events],
        "route_length_m": r.route_length_m,
        "duration_game_s": r.duration_game_s,
        "duration_system_s": r.duration_system_s,
        "efficiency": r.efficiency,
        "comfort": r.comfort,
        "junction_completion": r.junction_completion,
        "index": r.index,
        "weather_id": r.weather_id,
        "save_name": r.save_name,
        "leaderboard_id": r.leaderboard_id,
        "town_name": r.town_name,
    }


def result_from_dict(d: dict[str, Any]) -> RouteResult:
    """The :class:`RouteResult` of a route file (artefact keys are ignored)."""
    d = {k: v for k, v in d.items() if k in ROUTE_RESULT_FIELDS}
    d["route_end"] = RouteEnd(d["route_end"])
    d["events"] = [InfractionEvent(**{**e, "kind": Infraction(e["kind"])}) for e in d["events"]]
    return RouteResult(**d)


def route_doc(
    r: RouteResult,
    log: RouteLog | None = None,
    rec: Any = None,
    error: str | None = None,
    tb: str | None = None,
) -> dict[str, Any]:
    """A route file: the result, its scores and status, and the artefacts (see docs/metrics.md); ``rec``
    holds the plans and path risk (:class:`~riskdistill.evaluation.route_runner.ArtefactObserver`)."""
    doc = result_to_dict(r)
    doc["status"] = compute_status(r)
    doc["scores"] = compute_route_scores(r)
    doc["error"] = error
    if tb:
        doc["traceback"] = tb
    traj = None
    if log is not None and log.time_s:
        step = (
            max(1, round(ARTEFACT_DT_S / max(log.time_s[1] - log.time_s[0], 1e-6)))
            if len(log.time_s) > 1
            else 1
        )
        sl = slice(None, None, step)
        traj = {
            "time_s": [round(v, 3) for v in log.time_s[sl]],
            "x_m": [round(v, 3) for v in log.x_m[sl]],
            "y_m": [round(v, 3) for v in log.y_m[sl]],
            "yaw_rad": [round(v, 4) for v in log.yaw_rad[sl]],
            "speed_mps": [round(v, 3) for v in log.speed_mps[sl]],
            "progress_m": [round(v, 3) for v in log.progress_m[sl]],
        }
        doc["route_completion_measured_pct"] = log.route_completion_pct
    doc["trajectory"] = traj
    doc["plans"] = (
        {"time_s": rec.plans_t, "xy_world": rec.plans_xy} if rec is not None and rec.plans_t else None
    )
    doc["path_risk"] = {"time_s": rec.risk_t, "risk": rec.risk} if rec is not None and rec.risk_t else None
    doc["metric_info"] = b2d.metric_samples(log)  # moved to OUT/bench2drive/metric/ when the file is written
    doc["comfort"] = b2d.metric_comfort(doc["metric_info"])
    return doc


def check_eval_config(out_dir: Path, config: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
    """Refuse to resume a folder that was evaluated with another driver or variant. ``defaults``: values of
    keys that a folder written before they existed was evaluated with (compared as if it held them)."""
    path = out_dir / EVAL_CONFIG
    if path.is_file():
        old = load_json(path)
        old = {**{k: v for k, v in (defaults or {}).items() if k in config}, **old}
        if old != config:
            diff = {
                k: (old.get(k), config.get(k)) for k in set(old) | set(config) if old.get(k) != config.get(k)
            }
            raise ValueError(
                f"{path}: {out_dir} holds an evaluation with other settings {diff} (old, new); "
                "use another --out folder or delete it"
            )
    else:
        atomic_write_json(path, config)


def load_route_docs(out_dir: str | Path) -> list[dict[str, Any]]:
    """The route files of a closed-loop output folder, in the order of its ``results.json`` records
    (layout: ``docs/metrics.md``); for reports and viewers."""
    from riskdistill.evaluation.leaderboard import load_checkpoint_json, record_route_name

    out_dir = Path(out_dir)
    records = load_checkpoint_json(out_dir / "results.json")
    return [load_json(out_dir / "routes" / f"{record_route_name(r)}.json") for r in records]


def write_risk_outcome(out_dir: Path, route_ids: list[str]) -> None:
    from riskdistill.evaluation.risk_outcome import summarise_risk_outcome

    docs = [load_json(out_dir / "routes" / f"{rid}.json") for rid in route_ids]  # results.json order
    if any(d.get("path_risk") for d in docs):
        atomic_write_json(out_dir / "risk_outcome.json", summarise_risk_outcome(docs))
