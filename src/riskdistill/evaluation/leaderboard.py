"""Results files in the CARLA leaderboard 2.0 / Bench2Drive checkpoint format.

Layout (as Bench2Drive's ``leaderboard/utils/statistics_manager.py`` writes it)::

    {
      "_checkpoint": {
        "global_record": {index: -1, route_id: -1, status, infractions, scores_mean, scores_std_dev, meta},
        "progress": [routes done, routes in the suite],
        "records": [{route_id, index, scenario_name, weather_id, save_name, town_name, route_name, status,
                     num_infractions, infractions: {12 keys: [message, ...]},
                     scores: {score_route, score_penalty, score_composed},
                     meta: {route_length, duration_game, duration_system}}, ...]
      },
      "entry_status": "Finished", "eligible": true, "sensors": [], "values": [...], "labels": [...]
    }

Global record, as CARLA computes it: ``scores_mean`` divides by the suite size (missing routes count 0);
``scores_std_dev`` is the sample deviation over the written records (denominator suite size - 1, 0 for a
one-route suite); ``status`` is the worst route status (Perfect > Completed > Failed) and ``meta.exceptions``
lists ``[route_id, index, status]`` of the failed routes; ``infractions`` are events per km driven (route
length x RC), except ``outside_route_lanes`` which CARLA reports as the kilometres driven outside the route
lanes (read, as CARLA does, from the ninth word of the event message). Scores are rounded to 6 digits, the
rest to 3.

Route ids are the leaderboard's ``RouteScenario_<n>_rep<k>`` (``n``: the route's position in its suite file,
``k``: the repetition, always 0), which Bench2Drive's statistics and ability code parse; ``route_name`` holds
the suite's readable id and ``save_name`` the folder of the route's ``metric_info.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from riskdistill.evaluation.driving_score import (
    _MIN_KM_DRIVEN,
    RouteResult,
    compute_route_scores,
    compute_status,
)
from riskdistill.io import atomic_write_json, load_json
from riskdistill.types import Infraction

ROUND_DIGITS = 3
ROUND_DIGITS_SCORE = 6

INFRACTION_KEYS: tuple[str, ...] = tuple(str(kind) for kind in Infraction)  # the 12 record keys

ENTRY_STATUS_VALUES = ("Started", "Finished", "Rejected", "Crashed", "Invalid")
ELIGIBLE_VALUES = {"Started": False, "Finished": True, "Rejected": False, "Crashed": False, "Invalid": False}

SCORE_KEYS = ("score_route", "score_penalty", "score_composed")
RECORD_META_KEYS = ("route_length", "duration_game", "duration_system")
RECORD_KEYS = ("route_id", "index", "status", "num_infractions", "infractions", "scores", "meta")

#: ``values`` / ``labels`` of the results file, in CARLA's order: (label, key in the global record).
SUMMARY_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("Avg. driving score", "scores_mean", "score_composed"),
    ("Avg. route completion", "scores_mean", "score_route"),
    ("Avg. infraction penalty", "scores_mean", "score_penalty"),
    ("Collisions with pedestrians", "infractions", "collisions_pedestrian"),
    ("Collisions with vehicles", "infractions", "collisions_vehicle"),
    ("Collisions with layout", "infractions", "collisions_layout"),
    ("Red lights infractions", "infractions", "red_light"),
    ("Stop sign infractions", "infractions", "stop_infraction"),
    ("Off-road infractions", "infractions", "outside_route_lanes"),
    ("Route deviations", "infractions", "route_dev"),
    ("Route timeouts", "infractions", "route_timeout"),
    ("Agent blocked", "infractions", "vehicle_blocked"),
    ("Yield emergency vehicles infractions", "infractions", "yield_emergency_vehicle_infractions"),
    ("Scenario timeouts", "infractions", "scenario_timeouts"),
    ("Min speed infractions", "infractions", "min_speed_infractions"),
)


class CheckpointFormatError(ValueError):
    """A results file that does not have the checkpoint layout; the message names the file and the key."""


def build_route_record(result: RouteResult) -> dict[str, Any]:
    """One entry of ``_checkpoint.records``."""
    infractions: dict[str, list[str]] = {key: [] for key in INFRACTION_KEYS}
    for event in result.events:
        infractions[str(Infraction(event.kind))].append(event.message)
    scores = compute_route_scores(result)
    return {
        "index": int(result.index),
        "route_id": result.leaderboard_id or leaderboard_route_id(result.index),
        "scenario_name": result.scenario_type,
        "weather_id": result.weather_id,
        "save_name": result.save_name,
        "town_name": result.town_name,
        "route_name": result.route_id,
        "status": compute_status(result),
        "num_infractions": sum(len(v) for v in infractions.values()),
        "infractions": infractions,
        "scores": {key: round(scores[key], ROUND_DIGITS_SCORE) for key in SCORE_KEYS},
        "meta": {
            "route_length": round(float(result.route_length_m), ROUND_DIGITS),
            "duration_game": round(float(result.duration_game_s), ROUND_DIGITS),
            "duration_system": round(float(result.duration_system_s), ROUND_DIGITS),
        },
    }


def leaderboard_route_id(number: int, repetition: int = 0) -> str:
    """``RouteScenario_<number>_rep<repetition>``, the CARLA leaderboard's route id."""
    return f"RouteScenario_{int(number)}_rep{int(repetition)}"


def record_route_name(record: dict[str, Any]) -> str:
    """The readable route id of a results record (``route_name``; ``route_id`` in files without one)."""
    return str(record.get("route_name") or record["route_id"])


def _outside_lanes_km(record: dict[str, Any]) -> float:
    """Kilometres driven outside the route lanes, as CARLA reads them: the metres are the ninth word of the
    first outside-lanes message ("Agent went outside its route lanes for about X meters (...)")."""
    messages = record["infractions"][str(Infraction.OUTSIDE_ROUTE_LANES)]
    return float(messages[0].split(" ")[8]) / 1000.0 if messages else 0.0


def build_global_record(
    results: Sequence[RouteResult], records: Sequence[dict[str, Any]], n_total: int
) -> dict[str, Any]:
    """``_checkpoint.global_record`` for the given routes and their records (see the module doc)."""
    scores_mean = {"score_composed": 0.0, "score_route": 0.0, "score_penalty": 0.0}
    meta: dict[str, Any] = {
        "total_length": 0.0,
        "duration_game": 0.0,
        "duration_system": 0.0,
        "exceptions": [],
    }
    status = "Perfect"
    for rec in records:
        for key in scores_mean:
            scores_mean[key] += rec["scores"][key] / n_total
        meta["total_length"] += rec["meta"]["route_length"]
        meta["duration_game"] += rec["meta"]["duration_game"]
        meta["duration_system"] += rec["meta"]["duration_system"]
        if "Failed" in rec["status"]:
            meta["exceptions"].append([rec["route_id"], rec["index"], rec["status"]])
            status = "Failed"
        elif status == "Perfect" and rec["status"] != "Perfect":
            status = rec["status"]
    scores_mean = {key: round(v, ROUND_DIGITS_SCORE) for key, v in scores_mean.items()}
    for key in ("total_length", "duration_game", "duration_system"):
        meta[key] = round(meta[key], ROUND_DIGITS)

    scores_std_dev = dict.fromkeys(scores_mean, 0.0)
    if n_total > 1:
        for rec in records:
            for key in scores_std_dev:
                scores_std_dev[key] += (rec["scores"][key] - scores_mean[key]) ** 2
        scores_std_dev = {
            key: round(math.sqrt(v / (n_total - 1)), ROUND_DIGITS) for key, v in scores_std_dev.items()
        }

    # as CARLA: from the (rounded) record values
    km = sum(rec["meta"]["route_length"] / 1000.0 * rec["scores"]["score_route"] / 100.0 for rec in records)
    km = max(km, _MIN_KM_DRIVEN)
    infractions: dict[str, float] = {}
    for key in INFRACTION_KEYS:
        if key == str(Infraction.OUTSIDE_ROUTE_LANES):
            value = sum(_outside_lanes_km(rec) for rec in records)
        else:
            value = sum(len(rec["infractions"][key]) for rec in records) / km
        infractions[key] = round(value, ROUND_DIGITS)

    return {
        "index": -1,
        "route_id": -1,
        "status": status,
        "infractions": infractions,
        "scores_mean": scores_mean,
        "scores_std_dev": scores_std_dev,
        "meta": meta,
    }


def build_checkpoint_json(
    results: Sequence[RouteResult], entry_status: str = "Finished", n_routes_in_suite: int | None = None
) -> dict[str, Any]:
    """The whole results file for ``results`` (``n_routes_in_suite`` defaults to ``len(results)``).

    ``eligible`` follows ``entry_status`` as in CARLA (only ``"Finished"`` is eligible). Records are sorted
    by their ``index``.
    """
    if entry_status not in ENTRY_STATUS_VALUES:
        raise ValueError(f"entry_status must be one of {ENTRY_STATUS_VALUES}, got {entry_status!r}")
    results = sorted(results, key=lambda r: r.index)
    n_total = len(results) if n_routes_in_suite is None else int(n_routes_in_suite)
    if n_total < len(results):
        raise ValueError(f"n_routes_in_suite={n_total} is smaller than the {len(results)} results given")
    records = [build_route_record(r) for r in results]
    global_record = build_global_record(results, records, n_total) if n_total > 0 else {}
    values = [str(global_record[group][key]) for _, group, key in SUMMARY_FIELDS] if global_record else []
    return {
        "_checkpoint": {
            "global_record": global_record,
            "progress": [len(records), n_total],
            "records": records,
        },
        "entry_status": entry_status,
        "eligible": ELIGIBLE_VALUES[entry_status],
        "sensors": [],
        "values": values,
        "labels": [label for label, _, _ in SUMMARY_FIELDS],
    }


def save_checkpoint_json(
    path: str | Path,
    results: Sequence[RouteResult],
    entry_status: str = "Finished",
    n_routes_in_suite: int | None = None,
) -> dict[str, Any]:
    """Write :func:`build_checkpoint_json` atomically to ``path``; returns what was written."""
    data = build_checkpoint_json(results, entry_status=entry_status, n_routes_in_suite=n_routes_in_suite)
    atomic_write_json(path, data)
    return data


def _require(obj: Any, key: str, where: str, path: Path, kind: type | tuple[type, ...] | None = None) -> Any:
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path}: {where} is not an object")
    if key not in obj:
        raise CheckpointFormatError(f"{path}: missing key '{key}' in {where}")
    value = obj[key]
    if kind is not None and not isinstance(value, kind):
        raise CheckpointFormatError(f"{path}: '{key}' in {where} has type {type(value).__name__}")
    return value


def validate_checkpoint(data: Any, path: str | Path = "<checkpoint>") -> list[dict[str, Any]]:
    """Check the checkpoint layout of ``data`` and return its route records.

    Every record needs ``route_id, index, status, num_infractions, infractions`` (all 12 keys, each a list),
    ``scores`` (``score_route, score_penalty, score_composed``) and ``meta`` (``route_length, duration_game,
    duration_system``). Raises :class:`CheckpointFormatError` naming the file, the record and the key.
    """
    path = Path(path)
    if not isinstance(data, dict):
        raise CheckpointFormatError(f"{path}: top level is not an object")
    checkpoint = _require(data, "_checkpoint", "the top level", path, dict)
    _require(checkpoint, "global_record", "'_checkpoint'", path, dict)
    progress = _require(checkpoint, "progress", "'_checkpoint'", path, list)
    if progress and len(progress) != 2:
        raise CheckpointFormatError(f"{path}: '_checkpoint.progress' must be [done, total], got {progress}")
    records = _require(checkpoint, "records", "'_checkpoint'", path, list)
    number = (int, float)
    for i, rec in enumerate(records):
        where = f"record {i}"
        if isinstance(rec, dict) and "route_id" in rec:
            where = f"record {i} ({rec['route_id']!r})"
        for key in RECORD_KEYS:
            _require(rec, key, where, path)
        _require(rec, "status", where, path, str)
        infractions = _require(rec, "infractions", where, path, dict)
        for key in INFRACTION_KEYS:
            _require(infractions, key, f"{where}.infractions", path, list)
        scores = _require(rec, "scores", where, path, dict)
        for key in SCORE_KEYS:
            _require(scores, key, f"{where}.scores", path, number)
        meta = _require(rec, "meta", where, path, dict)
        for key in RECORD_META_KEYS:
            _require(meta, key, f"{where}.meta", path, number)
    return records


def load_checkpoint_json(path: str | Path) -> list[dict[str, Any]]:
    """Read a results file and return its validated route records (see :func:`validate_checkpoint`).

    Errors name the file: :class:`CheckpointFormatError` for a bad layout or invalid JSON,
    ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    try:
        data = load_json(path)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path}: results file not found") from exc
    except ValueError as exc:  # load_json's message already names the file
        raise CheckpointFormatError(str(exc)) from exc
    return validate_checkpoint(data, path)
