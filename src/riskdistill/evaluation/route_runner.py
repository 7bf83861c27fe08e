"""Drive and score one route of a closed-loop evaluation (runs inside a worker process).

:func:`run_one_route` builds the scenario instance and the driver, answers the driver's sensor request
with :class:`~riskdistill.evaluation.rig_observer.RigObserver` (under the variant's rig shift), drives the
route with :func:`riskdistill.sim.rollout.run_route` and returns the route file
(:func:`~riskdistill.evaluation.results.route_doc`). Next to the driver run observers:

- :class:`ArtefactObserver`: the plans (world frame, every 0.5 s), the predicted risk on the planned path
  and the driver's exception, for the route file;
- recorders passed in from above (``recorders``: factories ``(out_dir, route_id) -> RouteRecorder`` with a
  ``key``, e.g. ``viz.rerun_log.RerunRecording``), each run through :class:`SafeRecorder`: a recorder that
  fails is dropped with a warning in the route file, and never changes the drive or its result.

A route whose instance fails to build or whose simulation raises is "Failed - Simulation crashed"; a driver
that raises (while being built, reset or asked to act) or returns an unusable output is "Failed - Agent
crashed". Both score 0; nothing here raises.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from riskdistill.contracts.agent import Action, AgentInput, Driver
from riskdistill.evaluation.drivers import driver_bev_grid, make_driver_factory
from riskdistill.evaluation.generalisation import EvalVariant
from riskdistill.evaluation.results import ARTEFACT_DT_S, crashed_result, result_from_log, route_doc
from riskdistill.evaluation.rig_observer import RigObserver
from riskdistill.evaluation.risk_metrics import compute_path_risk
from riskdistill.sim.env import DrivingEnv, RouteLog
from riskdistill.sim.events import RouteEnd
from riskdistill.sim.rollout import AgentOutputError, build_driver, run_route
from riskdistill.sim.suites import RouteSpec


class RouteRecorder(Protocol):
    """Something that records a route next to the driver (e.g. ``viz.rerun_log.RouteRrdRecorder``)."""

    @property
    def n_frames(self) -> int: ...

    def start(self, env: DrivingEnv, driver: Driver) -> None: ...

    def after_act(self, env: DrivingEnv, agent_input: AgentInput, action: Action) -> None: ...

    def finish(self, env: DrivingEnv, info: dict[str, Any]) -> Path: ...

    def abort(self) -> None: ...


class RecorderFactory(Protocol):
    """Makes a route's recorder inside the worker (so it must pickle); ``key`` names its entry in the route
    file (``{"path": <relative to the output folder>, "frames": n, **describe()}``)."""

    key: str

    def __call__(self, out_dir: Path, route_id: str) -> RouteRecorder: ...

    def describe(self) -> dict[str, Any]: ...


class ArtefactObserver:
    """Records, for the route file, the plans (world frame, every 0.5 s), the predicted risk on the planned
    path at every step and the driver's exception. The evaluator (not the driver) reads the ego pose from
    the env. An output it cannot use (e.g. a risk map of the wrong shape) is the agent's fault."""

    def __init__(self) -> None:
        self.driver: Any = None
        self.error: str | None = None
        self.traceback: str | None = None
        self.plans_t: list[float] = []
        self.plans_xy: list[list[list[float]]] = []
        self.risk_t: list[float] = []
        self.risk: list[float] = []
        self._grid = None
        self._next_plan_t = 0.0

    def fail(self, exc: BaseException) -> None:
        """Remember the driver's exception (the first one)."""
        if self.error is None:
            self.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.traceback = traceback.format_exc(limit=8)

    def on_start(self, env: DrivingEnv, driver: Driver) -> None:
        self.driver = driver

    def on_crash(self, env: DrivingEnv, exc: BaseException) -> None:
        self.fail(exc)

    def on_step(self, env: DrivingEnv, agent_input: AgentInput, action: Action) -> None:
        try:
            self._record(env, agent_input.timestamp_s, action)
        except Exception as exc:
            self.fail(exc)
            raise AgentOutputError(str(exc)) from exc

    def _record(self, env: DrivingEnv, t: float, action: Action) -> None:
        wp = action.waypoints_ego
        if wp is None:
            return
        wp = np.asarray(wp, dtype=np.float64)
        if t + 1e-6 >= self._next_plan_t:
            e = env.world.ego
            c, s = np.cos(e.yaw_rad), np.sin(e.yaw_rad)
            world = np.stack(
                [e.x_m + c * wp[:, 0] - s * wp[:, 1], e.y_m + s * wp[:, 0] + c * wp[:, 1]], axis=1
            )
            self.plans_t.append(round(float(t), 3))
            self.plans_xy.append(np.round(world, 3).tolist())
            self._next_plan_t = t + ARTEFACT_DT_S
        outputs = getattr(self.driver, "last_outputs", None)
        if isinstance(outputs, dict) and outputs.get("risk") is not None:
            if self.risk and not getattr(self.driver, "planned", True):
                # the driver holds its last plan (it plans at a lower rate): the risk map and the plan are
                # those of the planning step, in its frame, so the path risk is the one computed then
                self.risk_t.append(round(float(t), 3))
                self.risk.append(self.risk[-1])
                return
            if self._grid is None:
                self._grid = driver_bev_grid(self.driver)
            if self._grid is not None:
                risk = np.asarray(outputs["risk"], dtype=np.float64)
                risk = risk.reshape(risk.shape[-2:])
                self.risk_t.append(round(float(t), 3))
                self.risk.append(round(compute_path_risk(risk, self._grid, wp), 5))


class SafeRecorder:
    """Runs a :class:`RouteRecorder` as a route observer so that its failure never touches the route: the
    first exception aborts the recording (no file is left) and becomes :attr:`warning`; later calls do
    nothing."""

    def __init__(self, make: Callable[[], RouteRecorder]):
        self.warning: str | None = None
        self.path: Path | None = None
        self._rec: RouteRecorder | None = None
        self._rec = self._call("being created", make)

    @property
    def n_frames(self) -> int:
        return int(getattr(self._rec, "n_frames", 0) or 0)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        if self.warning is not None:
            return None
        try:
            return fn()
        except Exception as exc:
            self.warning = f"recording failed while {what} and was dropped: {exc!r}"
            if self._rec is not None:
                with contextlib.suppress(Exception):  # the warning already says what went wrong
                    self._rec.abort()
            return None

    def on_start(self, env: DrivingEnv, driver: Driver) -> None:
        rec = self._rec
        if rec is not None:
            self._call("starting", lambda: rec.start(env, driver))

    def on_step(self, env: DrivingEnv, agent_input: AgentInput, action: Action) -> None:
        rec = self._rec
        if rec is not None:
            self._call("recording a step", lambda: rec.after_act(env, agent_input, action))

    def finish(self, env: DrivingEnv, info: dict[str, Any]) -> Path | None:
        rec = self._rec
        if rec is not None:
            self.path = self._call("being written", lambda: rec.finish(env, info))
        return self.path


def _finish_recorders(
    doc: dict[str, Any],
    recorders: Sequence[tuple[RecorderFactory, SafeRecorder]],
    env: DrivingEnv,
    spec: RouteSpec,
    out_dir: Path | None,
) -> dict[str, Any]:
    """Close the route's recordings (each gets the outcome) and note them in the route file."""
    events = doc.get("events") or []
    info = {
        "scenario": spec.scenario,
        "seed": spec.seed,
        "layout": spec.layout,
        "end": doc["route_end"],
        "status": doc["status"],
        "driving score": f"{doc['scores']['score_composed']:.1f}",
        "route completion %": f"{doc['route_completion_pct']:.1f}",
        "infractions": "; ".join(f"{e['kind']} at {e['time_s']:.1f} s" for e in events) or "none",
        "error": doc.get("error") or "none",
    }
    for factory, rec in recorders:
        path = rec.finish(env, info)
        doc[factory.key] = (
            {"path": path.relative_to(out_dir).as_posix(), **factory.describe(), "frames": rec.n_frames}
            if path is not None and out_dir is not None
            else None
        )
        if rec.warning:
            doc["warnings"] = [*doc.get("warnings", []), f"{factory.key} {rec.warning}"]
    return doc


def run_one_route(
    spec: RouteSpec,
    index: int,
    driver_spec: str,
    variant: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    recorders: Sequence[RecorderFactory] = (),
    driver_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build, drive and score one route; returns its route file. Never raises (see the module docstring).
    ``recorders`` (factories from above, called with ``out_dir``) record the drive next to the driver;
    ``driver_options`` configure a student's driver (``drivers.make_driver_factory``)."""
    from riskdistill.sim.scenarios import build_scenario

    v = EvalVariant(**(variant or {}))
    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None

    def crashed(end: RouteEnd, exc: BaseException) -> dict[str, Any]:
        r = crashed_result(spec, index, end, time.perf_counter() - t0)
        return route_doc(r, error=repr(exc), tb=traceback.format_exc(limit=8))

    try:
        instance = build_scenario(spec.scenario, spec.seed, spec.layout)
    except Exception as exc:  # the simulation could not even start
        return crashed(RouteEnd.SIM_CRASHED, exc)
    if v.route_timeout_s is not None:
        instance.route_timeout_s = min(instance.route_timeout_s, float(v.route_timeout_s))
    observer = RigObserver(v.rig_shift, v.jpeg_quality)
    env = DrivingEnv(observe=observer)
    try:
        driver = build_driver(make_driver_factory(driver_spec, v.rig, driver_options), env)
        observer.configure(driver.sensors)
    except Exception as exc:  # the driver could not be built, or asked for a rig that does not exist
        return crashed(RouteEnd.AGENT_CRASHED, exc)
    artefacts = ArtefactObserver()
    recs = []
    if out is not None:
        recs = [(f, SafeRecorder(lambda f=f: f(out, spec.route_id))) for f in recorders]
    try:
        log: RouteLog = run_route(instance, driver, env=env, observers=[artefacts, *(r for _, r in recs)])
    except Exception as exc:
        r = crashed_result(spec, index, RouteEnd.SIM_CRASHED, time.perf_counter() - t0)
        doc = route_doc(r, env.log, artefacts, error=repr(exc), tb=traceback.format_exc(limit=8))
        return _finish_recorders(_add_driver_stats(doc, driver), recs, env, spec, out)
    r = result_from_log(spec, index, log, time.perf_counter() - t0)
    doc = route_doc(r, log, artefacts, error=artefacts.error, tb=artefacts.traceback)
    return _finish_recorders(_add_driver_stats(doc, driver), recs, env, spec, out)


def _add_driver_stats(doc: dict[str, Any], driver: Any) -> dict[str, Any]:
    """``driver_stats``: the counts of a driver that keeps them (``stats()``, e.g. a student's planning steps
    and occupancy brakes); absent for one that does not (the expert)."""
    stats = getattr(driver, "stats", None)
    if callable(stats):
        doc["driver_stats"] = {str(k): int(v) for k, v in stats().items()}
    return doc


def run_route_batch(
    items: Sequence[tuple[int, RouteSpec]],
    driver_spec: str,
    variant: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    recorders: Sequence[RecorderFactory] = (),
    driver_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """:func:`run_one_route` for each ``(index, spec)`` of a batch, in order: one task of a distributed
    evaluation (e.g. a Ray task of ``riskdistill experiment --ray-address``). Never raises."""
    return [
        run_one_route(spec, i, driver_spec, variant, out_dir, recorders, driver_options) for i, spec in items
    ]
