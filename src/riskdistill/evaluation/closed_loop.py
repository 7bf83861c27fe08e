"""Closed-loop evaluation of a driver over a route suite, Bench2Drive style.

    evaluate_suite(load_suite("bench"), "runs/rsd/checkpoint", Path("runs/eval_rsd"), workers=2,
                   variant=EvalVariant(rig_shift="height+0.3"))

The pieces, by meaning:

- :mod:`.drivers`: a driver spec (``"expert"``, a student checkpoint folder, ``package.module:factory``) ->
  a picklable factory that worker processes rebuild from the string;
- :mod:`.rig_observer` and :mod:`.generalisation`: the variant (rig shift, scenario selection) and the
  observations rendered for the rig the driver asks for (``driver.sensors``) under that shift;
- :mod:`.route_runner`: one route driven and scored (in a worker), with the artefact observer and the
  recorders passed in from above;
- :mod:`.results`: the route files, the folder's settings, risk vs outcome;
- this module: the suite, run in parallel worker processes and resumable.

Each finished route is written atomically to ``OUT/routes/<route_id>.json`` (the scored result plus
artefacts for reports: the ego trajectory every 0.5 s, the plans, the predicted risk on the planned path
over time), so a killed run resumes where it stopped. Crashes score 0 and never abort the suite. At the end
``OUT/results.json`` holds the CARLA leaderboard checkpoint file, ``OUT/summary.json`` the DS / SR /
Efficiency / Comfortness / ability table and the variant, ``OUT/risk_outcome.json`` the risk-vs-outcome
analysis when the driver predicted risk, and ``OUT/bench2drive/`` the folder Bench2Drive's own tools read
(:mod:`riskdistill.evaluation.bench2drive_io`). File layouts: ``docs/metrics.md``.

Recorders (``recorders=[viz.rerun_log.RerunRecording(every=2)]``: a Rerun recording
``OUT/rerun/<route_id>.rrd`` per route) run inside the workers next to the driver: they change neither
the drive nor the results, are not part of the resume key, routes resumed from their files are not
recorded again, and a recording that fails is dropped with a warning in the route file.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from riskdistill.evaluation import bench2drive_io as b2d
from riskdistill.evaluation.drivers import (
    LEGACY_DRIVER_OPTIONS,
    StudentDriverFactory,
    is_checkpoint_dir,
    make_driver_factory,
)
from riskdistill.evaluation.driving_score import RouteResult, compute_summary
from riskdistill.evaluation.generalisation import EvalVariant, parse_rig_shift, select_routes
from riskdistill.evaluation.leaderboard import leaderboard_route_id, save_checkpoint_json
from riskdistill.evaluation.results import SCORING, check_eval_config, result_from_dict, write_risk_outcome
from riskdistill.evaluation.route_runner import RecorderFactory, run_one_route
from riskdistill.io import atomic_write_json, load_json
from riskdistill.sim.suites import RouteSpec, Suite

#: Runs the routes left to do somewhere else (e.g. as Ray tasks) and yields their route files as they
#: finish: ``(todo [(index, spec)], driver_spec, variant dict, out_dir, recorders) -> route files``; a route
#: file is what :func:`~riskdistill.evaluation.route_runner.run_one_route` returns
#: (``route_runner.run_route_batch`` runs a batch of them).
RouteExecutor = Callable[
    [
        list[tuple[int, RouteSpec]],
        str,
        dict[str, Any],
        Path,
        tuple[RecorderFactory, ...],
        dict[str, Any] | None,
    ],
    Iterable[dict[str, Any]],
]


def evaluate_suite(
    suite: Suite,
    driver_spec: str,
    out_dir: Path,
    workers: int = 1,
    limit: int | None = None,
    show_progress: bool = True,
    variant: EvalVariant | None = None,
    recorders: Sequence[RecorderFactory] = (),
    driver_options: dict[str, Any] | None = None,
    executor: RouteExecutor | None = None,
) -> tuple[list[RouteResult], dict[str, Any]]:
    """Run ``driver_spec`` over ``suite`` (its ``variant.scenarios`` selection, then the first ``limit``
    routes); resumable. Returns results and summary (which records the variant). ``executor`` runs the
    routes instead of the local worker processes (a route's result does not depend on where it runs).

    ``recorders`` (e.g. ``viz.rerun_log.RerunRecording(every=2)``) also record every route run by this call
    next to the driver (see the module docstring); they change no result and are not part of the resume
    key. ``driver_options`` (``evaluation.drivers.DRIVER_OPTIONS``) configure a student checkpoint's driver
    (``models.StudentDriver``); they are part of the resume key and of the summary."""
    variant = variant or EvalVariant()
    # fail fast on an unknown driver or option
    factory = make_driver_factory(driver_spec, variant.rig, driver_options)
    parse_rig_shift(variant.rig_shift)  # ... and on a bad rig shift
    numbers = {spec.route_id: n for n, spec in enumerate(suite.routes)}  # leaderboard ids: suite positions
    suite = select_routes(suite, variant.scenarios)
    routes = suite.routes[:limit] if limit is not None else list(suite.routes)
    out_dir = Path(out_dir)
    route_dir = out_dir / "routes"
    route_dir.mkdir(parents=True, exist_ok=True)
    driver_key = str(Path(driver_spec).resolve()) if is_checkpoint_dir(driver_spec) else driver_spec
    eval_config: dict[str, Any] = {"driver": driver_key, "variant": variant.to_dict(), "scoring": SCORING}
    resolved_options: dict[str, Any] | None = None
    if isinstance(factory, StudentDriverFactory):
        resolved_options = factory.options()
        eval_config["driver_options"] = resolved_options
    check_eval_config(out_dir, eval_config, defaults={"driver_options": LEGACY_DRIVER_OPTIONS})
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
    if todo and isinstance(factory, StudentDriverFactory):
        factory.check()  # ... and on a checkpoint that does not load or a rig it was not trained with
        factory.prepare()  # the onnx engine's graph: exported once here, loaded by the workers
    results = _run_routes(
        routes, numbers, todo, results, driver_spec, driver_key, variant, out_dir, recorders,
        resolved_options, workers, show_progress, executor,
    )  # fmt: skip

    ordered = [results[s.route_id] for s in routes]
    summary = compute_summary(ordered, n_routes_in_suite=len(routes))
    summary["suite"] = suite.name
    summary["driver"] = driver_key
    summary["variant"] = variant.to_dict()
    if resolved_options is not None:
        summary["driver_options"] = resolved_options
    checkpoint = save_checkpoint_json(out_dir / "results.json", ordered, n_routes_in_suite=len(routes))
    b2d.write_bench2drive_folder(out_dir, checkpoint, [(numbers[s.route_id], s) for s in routes])
    atomic_write_json(out_dir / "summary.json", summary)
    write_risk_outcome(out_dir, [s.route_id for s in routes])
    return ordered, summary


def _run_routes(
    routes: list[RouteSpec],
    numbers: dict[str, int],
    todo: list[tuple[int, RouteSpec]],
    results: dict[str, RouteResult],
    driver_spec: str,
    driver_key: str,
    variant: EvalVariant,
    out_dir: Path,
    recorders: Sequence[RecorderFactory],
    driver_options: dict[str, Any] | None,
    workers: int,
    show_progress: bool,
    executor: RouteExecutor | None = None,
) -> dict[str, RouteResult]:
    """Run the routes of ``todo`` (in worker processes for a student), writing each route file as it ends."""
    route_dir = out_dir / "routes"
    progress = Progress(
        TextColumn("[bold]closed loop[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
    )
    vdict = variant.to_dict()
    recorders = tuple(recorders)
    with progress:
        task = progress.add_task(Path(driver_spec).name, total=len(routes), completed=len(results))

        specs = {s.route_id: s for s in routes}

        def done(d: dict[str, Any]) -> None:
            spec = specs[d["route_id"]]
            d = {**d, "spec": spec.to_dict(), "driver": driver_key, "variant": vdict}
            d["leaderboard_id"] = leaderboard_route_id(numbers[spec.route_id])
            d["town_name"] = b2d.town_name(spec)
            b2d.save_metric_info(out_dir, d["save_name"], d.pop("metric_info"))
            atomic_write_json(route_dir / f"{d['route_id']}.json", d)
            results[d["route_id"]] = result_from_dict(d)
            progress.advance(task)

        if executor is not None and todo:
            for d in executor(todo, driver_spec, vdict, out_dir, recorders, driver_options):
                done(d)
        elif workers <= 1 and not is_checkpoint_dir(driver_spec):
            for i, spec in todo:
                done(run_one_route(spec, i, driver_spec, vdict, out_dir, recorders, driver_options))
        else:
            n = max(1, min(workers, len(todo)))
            with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn")) as pool:
                futs = [
                    pool.submit(
                        run_one_route, spec, i, driver_spec, vdict, out_dir, recorders, driver_options
                    )
                    for i, spec in todo
                ]
                for fut in as_completed(futs):
                    done(fut.result())

    return results
