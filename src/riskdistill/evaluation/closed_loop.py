"""Closed-loop evaluation of a driver over a route suite, Bench2Drive style.

Routes run in parallel worker processes. Each finished route is written atomically to
``OUT/routes/<route_id>.json``, so a killed run resumes where it stopped. A route whose instance fails
to build is recorded as "Failed - Simulation crashed"; a driver that raises, as "Failed - Agent crashed".
Both score 0 and never abort the suite. At the end ``OUT/results.json`` holds the CARLA leaderboard
checkpoint file and ``OUT/summary.json`` the DS / SR / Efficiency / Comfortness / ability table.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from riskdistill.agent import Driver
from riskdistill.evaluation.comfort import compute_comfort, compute_efficiency
from riskdistill.evaluation.driving_score import RouteResult, compute_summary
from riskdistill.evaluation.leaderboard import save_checkpoint_json
from riskdistill.io import atomic_write_json, load_json
from riskdistill.sim.env import DrivingEnv, RouteLog
from riskdistill.sim.events import InfractionEvent, RouteEnd
from riskdistill.sim.suites import RouteSpec, Suite
from riskdistill.types import Infraction

DriverFactory = Callable[[DrivingEnv], Driver]


def make_driver_factory(spec: str) -> DriverFactory:
    """Turn a driver spec into a factory. ``expert`` is built in; later issues add checkpoints."""
    if spec == "expert":
        from riskdistill.sim.expert import ExpertDriver

        return ExpertDriver
    raise ValueError(f"unknown driver {spec!r}; valid drivers: ['expert']")


def result_from_log(spec: RouteSpec, index: int, log: RouteLog, wall_s: float) -> RouteResult:
    comfort = None
    if len(log.x_m) >= 3:
        comfort = compute_comfort(log.x_m, log.y_m, log.yaw_rad)
    efficiency = compute_efficiency(log.progress_m, log.speed_mps, log.traffic_speed_mps, log.route_length_m)
    return RouteResult(
        route_id=spec.route_id,
        scenario_type=spec.scenario,
        route_end=log.end if log.end != RouteEnd.RUNNING else RouteEnd.SIM_CRASHED,
        route_completion_pct=log.route_completion_pct,
        events=list(log.events),
        route_length_m=log.route_length_m,
        duration_game_s=log.time_s[-1] if log.time_s else 0.0,
        duration_system_s=wall_s,
        efficiency=efficiency,
        comfort=comfort,
        passed_first_junction_cleanly=log.passed_first_junction_cleanly,
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
        "passed_first_junction_cleanly": r.passed_first_junction_cleanly,
        "index": r.index,
        "weather_id": r.weather_id,
        "save_name": r.save_name,
    }


def result_from_dict(d: dict[str, Any]) -> RouteResult:
    d = dict(d)
    d["route_end"] = RouteEnd(d["route_end"])
    d["events"] = [InfractionEvent(**{**e, "kind": Infraction(e["kind"])}) for e in d["events"]]
    return RouteResult(**d)


def run_one_route(spec: RouteSpec, index: int, driver_spec: str) -> dict[str, Any]:
    """Build, drive and score one route. Never raises: failures become crashed results."""
    from riskdistill.sim.rollout import run_route
    from riskdistill.sim.scenarios import build_scenario

    t0 = time.perf_counter()
    try:
        instance = build_scenario(spec.scenario, spec.seed, spec.layout)
    except Exception as exc:  # the simulation could not even start
        r = crashed_result(spec, index, RouteEnd.SIM_CRASHED, time.perf_counter() - t0)
        return {**result_to_dict(r), "error": repr(exc)}
    try:
        log = run_route(instance, make_driver_factory(driver_spec))
    except Exception as exc:
        r = crashed_result(spec, index, RouteEnd.SIM_CRASHED, time.perf_counter() - t0)
        return {**result_to_dict(r), "error": repr(exc)}
    return result_to_dict(result_from_log(spec, index, log, time.perf_counter() - t0))


def evaluate_suite(
    suite: Suite,
    driver_spec: str,
    out_dir: Path,
    workers: int = 1,
    limit: int | None = None,
    show_progress: bool = True,
) -> tuple[list[RouteResult], dict[str, Any]]:
    """Run ``driver_spec`` over ``suite`` (first ``limit`` routes); resumable. Returns results and summary."""
    make_driver_factory(driver_spec)  # fail fast on an unknown driver
    routes = suite.routes[:limit] if limit is not None else list(suite.routes)
    route_dir = out_dir / "routes"
    route_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, RouteResult] = {}
    todo: list[tuple[int, RouteSpec]] = []
    for i, spec in enumerate(routes):
        f = route_dir / f"{spec.route_id}.json"
        if f.exists():
            try:
                results[spec.route_id] = result_from_dict(load_json(f))
                continue
            except (ValueError, KeyError, TypeError):
                pass  # unreadable: run it again
        todo.append((i, spec))

    progress = Progress(
        TextColumn("[bold]closed loop[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
    )
    with progress:
        task = progress.add_task(driver_spec, total=len(routes), completed=len(results))

        def done(d: dict[str, Any]) -> None:
            atomic_write_json(route_dir / f"{d['route_id']}.json", d)
            d = {k: v for k, v in d.items() if k != "error"}
            results[d["route_id"]] = result_from_dict(d)
            progress.advance(task)

        if workers <= 1:
            for i, spec in todo:
                done(run_one_route(spec, i, driver_spec))
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                futs = [pool.submit(run_one_route, spec, i, driver_spec) for i, spec in todo]
                for fut in as_completed(futs):
                    done(fut.result())

    ordered = [results[s.route_id] for s in routes]
    summary = compute_summary(ordered, n_routes_in_suite=len(routes))
    save_checkpoint_json(out_dir / "results.json", ordered, n_routes_in_suite=len(routes))
    atomic_write_json(out_dir / "summary.json", summary)
    return ordered, summary
