"""Closed-loop evaluation of a driver over a route suite, Bench2Drive style.

    evaluate_suite(load_suite("bench"), "runs/rsd/checkpoint", Path("runs/eval_rsd"), workers=2,
                   variant=EvalVariant(rig_shift="height+0.3"))

``driver_spec`` is ``"expert"`` or a student checkpoint folder (``model.safetensors`` + ``config.json``);
:func:`make_driver_factory` turns it into a picklable factory that worker processes rebuild from the string.
The evaluator renders the camera observations from the rig the driver asks for (``driver.sensors``), changed
by the variant's rig shift (:mod:`riskdistill.evaluation.generalisation`).

Routes run in parallel worker processes. Each finished route is written atomically to
``OUT/routes/<route_id>.json`` (the scored result plus artefacts for reports: the ego trajectory every 0.5 s,
the plans, the predicted risk on the planned path over time), so a killed run resumes where it stopped.
A route whose instance fails to build or whose simulation raises is recorded as "Failed - Simulation
crashed"; a driver that raises (while being built, reset or asked to act) as "Failed - Agent crashed".
Both score 0 and never abort the suite. At the end ``OUT/results.json`` holds the CARLA leaderboard
checkpoint file, ``OUT/summary.json`` the DS / SR / Efficiency / Comfortness / ability table and the
variant, ``OUT/risk_outcome.json`` the risk-vs-outcome analysis when the driver predicted risk, and
``OUT/bench2drive/`` the folder Bench2Drive's own tools read (:mod:`riskdistill.evaluation.bench2drive_io`).
File layouts: ``docs/metrics.md``.

With ``rerun_every=N`` each route evaluated in this call is also recorded, from inside its worker, to
``OUT/rerun/<route_id>.rrd`` (a Rerun recording: the cameras the driver saw, a top-down view, the predicted
risk map, the plan, the route, infractions; every N-th step; ``riskdistill.viz.rerun_log``). Recording is an
observer only: it changes neither the drive nor the results, it is not part of the resume key, routes
resumed from their files are not recorded again, and a recording that fails is dropped with a warning in the
route file (``warnings``) while the route keeps its result.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import re
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from riskdistill.agent import Action, AgentInput, Driver, SensorRequest
from riskdistill.evaluation import bench2drive_io as b2d
from riskdistill.evaluation.comfort import compute_efficiency
from riskdistill.evaluation.driving_score import (
    RouteResult,
    compute_route_scores,
    compute_status,
    compute_summary,
)
from riskdistill.evaluation.generalisation import parse_rig_shift, select_routes, split_perturbation
from riskdistill.evaluation.leaderboard import leaderboard_route_id, save_checkpoint_json
from riskdistill.evaluation.risk_metrics import compute_path_risk
from riskdistill.io import atomic_write_json, load_json
from riskdistill.sim.env import DrivingEnv, RouteLog
from riskdistill.sim.events import InfractionEvent, RouteEnd
from riskdistill.sim.suites import RouteSpec, Suite
from riskdistill.types import Infraction

DriverFactory = Callable[[DrivingEnv], Driver]

# OMP_WAIT_POLICY=PASSIVE (set in riskdistill/__init__.py) must reach the OpenMP runtimes before torch starts;
# student drivers therefore always run in spawned workers, which inherit it.

ARTEFACT_DT_S = 0.5  # ego trajectory and plans are stored every 0.5 s
RERUN_DIR = "rerun"  # OUT/rerun/<route_id>.rrd with evaluate_suite(rerun_every=N)
DEFAULT_STUDENT_RIG = "bench2drive"
EVAL_CONFIG = "eval_config.json"
SCORING = "bench2drive-0.0.4 criteria, riskdistill scoring v2"  # part of the resume key
ROUTE_RESULT_FIELDS = tuple(f.name for f in fields(RouteResult))
_IMPORT_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


# ------------------------------------------------------------------------------------------ drivers
_STUDENT_CACHE: dict[str, Any] = {}


@dataclass(frozen=True)
class StudentDriverFactory:
    """Builds a ``riskdistill.models.StudentDriver`` for a checkpoint folder. Picklable (it holds strings
    only); the student is loaded once per process and shared by the routes that process runs.

    The rig is ``rig`` if given, else the checkpoint's ``config.json`` key ``"rig"`` (top level or under
    ``"data"``), else the built-in rig named in the manifest of the training data (``data.root``), else
    :data:`DEFAULT_STUDENT_RIG`; the image size is the student config's ``image_hw``.
    """

    checkpoint: str
    rig: str | None = None

    def load(self) -> Any:
        if self.checkpoint not in _STUDENT_CACHE:
            import torch

            from riskdistill.models import load_student

            torch.set_num_threads(1)  # routes run in parallel processes
            _STUDENT_CACHE[self.checkpoint] = load_student(self.checkpoint, map_location="cpu").eval()
        return _STUDENT_CACHE[self.checkpoint]

    def check(self) -> None:
        """Load the checkpoint once (not cached) so that a broken one fails the evaluation up front instead
        of crashing every route; ValueError naming the folder."""
        from riskdistill.models import load_student

        try:
            load_student(self.checkpoint, map_location="cpu")
        except Exception as exc:
            raise ValueError(f"driver checkpoint {self.checkpoint} cannot be loaded: {exc}") from exc

    def checkpoint_rig(self) -> str:
        if self.rig:
            return self.rig
        cfg_path = Path(self.checkpoint) / "config.json"
        cfg = load_json(cfg_path) if cfg_path.is_file() else {}
        data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
        rig = cfg.get("rig") or data.get("rig")
        if not rig and data.get("root"):  # the training data's manifest names its rig
            from riskdistill.sim.sensors.rig import BUILTIN_RIGS

            manifest = Path(data["root"]) / "manifest.json"
            name = (load_json(manifest).get("rig") or {}).get("name") if manifest.is_file() else None
            rig = name if name in BUILTIN_RIGS else None
        return str(rig or DEFAULT_STUDENT_RIG)

    def __call__(self, env: DrivingEnv) -> Driver:
        from riskdistill.models import StudentDriver

        student = self.load()
        return StudentDriver(student, self.checkpoint_rig(), tuple(student.cfg.image_hw))


def is_checkpoint_dir(spec: str) -> bool:
    p = Path(spec)
    return p.is_dir() and (p / "model.safetensors").is_file() and (p / "config.json").is_file()


def make_driver_factory(spec: str, rig: str | None = None) -> DriverFactory:
    """Turn a driver spec into a factory ``env -> Driver``: ``"expert"`` (the privileged expert), a student
    checkpoint folder (:class:`StudentDriverFactory`) or ``"package.module:name"``, an importable callable
    ``env -> Driver`` (scripted baselines, tests). ValueError names the valid drivers otherwise. The spec is a
    string, so worker processes rebuild the factory from it."""
    if spec == "expert":
        from riskdistill.sim.expert import ExpertDriver

        return ExpertDriver
    if is_checkpoint_dir(spec):
        return StudentDriverFactory(str(Path(spec).resolve()), rig)
    if _IMPORT_SPEC.match(spec) and not Path(spec).exists():
        import importlib

        module, _, name = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"driver {spec!r}: cannot import {name!r} from {module!r} ({exc})") from exc
        if not callable(factory):
            raise ValueError(f"driver {spec!r}: {name!r} is not callable")
        return factory
    hint = ""
    if Path(spec).is_dir():
        hint = " (the folder has no model.safetensors + config.json)"
    raise ValueError(
        f"unknown driver {spec!r}{hint}; valid drivers: ['expert'], a student checkpoint folder "
        "(model.safetensors + config.json, written by riskdistill.models.save_student) or "
        "'package.module:factory' (a callable env -> Driver)"
    )


# ------------------------------------------------------------------------------------------ variants
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


class RigObserver:
    """``DrivingEnv(observe=...)`` for the rig a driver requests, under a rig shift.

    The driver is told the calibration of the shifted rig (K, T_ego_from_cam at the requested size); a
    resolution shift renders at the scaled size and resizes the images back (bilinear); a dropped camera
    delivers a black image and ``camera_valid`` False in ``extras`` (set by :class:`_RecordingDriver`).
    Until :meth:`configure` is called (or for a driver without cameras) it observes nothing.
    """

    def __init__(self, rig_shift: str | None = None, jpeg_quality: int | None = None):
        self.rig_shift = rig_shift
        self.jpeg_quality = jpeg_quality
        self._inner: Any = None
        self.camera_valid: np.ndarray | None = None

    def configure(self, sensors: SensorRequest) -> None:
        if sensors is None or sensors.rig is None:
            return
        from riskdistill.sim.sensors.observe import CameraObserver
        from riskdistill.sim.sensors.rig import RigPerturbation, load_rig, perturb_rig, resize_rig

        rig = load_rig(sensors.rig)
        if sensors.image_hw is not None:
            rig = resize_rig(rig, int(sensors.image_hw[0]), int(sensors.image_hw[1]))
        geo, res_scale, drop = split_perturbation(parse_rig_shift(self.rig_shift))
        self.rig_told = perturb_rig(rig, geo)
        self.rig_render = perturb_rig(
            self.rig_told, RigPerturbation(resolution_scale=res_scale, drop_cameras=drop)
        )
        self.hw = self.rig_told.image_size()
        names = self.rig_told.camera_names
        self.kept = [names.index(n) for n in self.rig_render.camera_names]
        self.camera_valid = np.array([n not in drop for n in names])
        self._inner = CameraObserver(self.rig_render, self.jpeg_quality)

    def __call__(self, instance: Any, world: Any) -> dict[str, Any]:
        if self._inner is None:
            return {}
        from PIL import Image

        obs = self._inner(instance, world)
        rgb = obs["images"]
        h, w = self.hw
        images = np.zeros((len(self.rig_told.cameras), h, w, 3), dtype=np.uint8)
        for k, i in enumerate(self.kept):
            img = rgb[k]
            if img.shape[:2] != (h, w):
                img = np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR))
            images[i] = img
        return {
            "images": images,
            "K": self.rig_told.K(),
            "T_ego_from_cam": self.rig_told.T_ego_from_cam(),
            "camera_names": tuple(self.rig_told.camera_names),
        }


# ------------------------------------------------------------------------------------------ recording
def driver_bev_grid(driver: Any) -> Any:
    """The BEV grid of a driver's risk map: ``driver.grid`` / ``driver.bev_grid`` or its student's config."""
    for name in ("grid", "bev_grid"):
        g = getattr(driver, name, None)
        if g is not None:
            return g() if callable(g) else g
    student = getattr(driver, "student", None)
    cfg = getattr(student, "cfg", None)
    return cfg.bev_grid() if cfg is not None and hasattr(cfg, "bev_grid") else None


class _RecordingDriver:
    """Wraps a driver: remembers its exception, the plans (world frame, every 0.5 s) and the predicted risk
    on the planned path at every step. The evaluator (not the driver) reads the ego pose from the env.
    ``after_act(agent_input, action)`` (an observer such as the Rerun recorder) runs after each step."""

    def __init__(
        self,
        driver: Driver,
        env: DrivingEnv,
        camera_valid: np.ndarray | None,
        after_act: Callable[[AgentInput, Action], None] | None = None,
    ):
        self.driver = driver
        self.env = env
        self.sensors = driver.sensors
        self.camera_valid = camera_valid
        self.after_act = after_act
        self.error: str | None = None
        self.plans_t: list[float] = []
        self.plans_xy: list[list[list[float]]] = []
        self.risk_t: list[float] = []
        self.risk: list[float] = []
        self._grid = None
        self._next_plan_t = 0.0

    def _fail(self, exc: BaseException) -> None:
        self.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.traceback = traceback.format_exc(limit=8)

    def reset(self) -> None:
        try:
            self.driver.reset()
        except Exception as exc:
            self._fail(exc)

    def act(self, agent_input: AgentInput) -> Action:
        if self.error is not None:  # reset failed: end the route as an agent crash
            raise RuntimeError(self.error)
        if self.camera_valid is not None:
            agent_input.extras["camera_valid"] = self.camera_valid
        try:
            action = self.driver.act(agent_input)
        except Exception as exc:
            self._fail(exc)
            raise
        try:
            self._record(agent_input.timestamp_s, action)
        except Exception as exc:  # a malformed output (e.g. risk map of the wrong shape) is the agent's fault
            self._fail(exc)
            raise
        if self.after_act is not None:
            self.after_act(agent_input, action)  # never raises (_SafeRecorder)
        return action

    def _record(self, t: float, action: Action) -> None:
        wp = action.waypoints_ego
        if wp is None:
            return
        wp = np.asarray(wp, dtype=np.float64)
        if t + 1e-6 >= self._next_plan_t:
            e = self.env.world.ego
            c, s = np.cos(e.yaw_rad), np.sin(e.yaw_rad)
            world = np.stack(
                [e.x_m + c * wp[:, 0] - s * wp[:, 1], e.y_m + s * wp[:, 0] + c * wp[:, 1]], axis=1
            )
            self.plans_t.append(round(float(t), 3))
            self.plans_xy.append(np.round(world, 3).tolist())
            self._next_plan_t = t + ARTEFACT_DT_S
        outputs = getattr(self.driver, "last_outputs", None)
        if isinstance(outputs, dict) and outputs.get("risk") is not None:
            if self._grid is None:
                self._grid = driver_bev_grid(self.driver)
            if self._grid is not None:
                risk = np.asarray(outputs["risk"], dtype=np.float64)
                risk = risk.reshape(risk.shape[-2:])
                self.risk_t.append(round(float(t), 3))
                self.risk.append(round(compute_path_risk(risk, self._grid, wp), 5))


class RouteRecorder(Protocol):
    """Something that records a route next to the driver (e.g. ``viz.rerun_log.RouteRrdRecorder``)."""

    @property
    def n_frames(self) -> int: ...

    def start(self, env: DrivingEnv, driver: Driver) -> None: ...

    def after_act(self, env: DrivingEnv, agent_input: AgentInput, action: Action) -> None: ...

    def finish(self, env: DrivingEnv, info: dict[str, Any]) -> Path: ...

    def abort(self) -> None: ...


def _rerun_recorder(rerun_dir: str, route_id: str, every: int) -> RouteRecorder:
    # viz sits above evaluation in the layering (it draws what evaluation produces), so this module never
    # imports it at module level; the recorder is imported here, inside the worker process, and only when a
    # recording was asked for. (A recorder factory passed in from above would have to survive pickling into
    # spawned workers; a folder and a step count do so trivially.)
    from riskdistill.viz.rerun_log import RouteRrdRecorder

    return RouteRrdRecorder(Path(rerun_dir) / f"{route_id}.rrd", route_id, every=every)


class _SafeRecorder:
    """Runs a :class:`RouteRecorder` so that its failure never touches the route: the first exception aborts
    the recording (no file is left) and becomes :attr:`warning`; later calls do nothing."""

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
            self.warning = f"rerun recording failed while {what} and was dropped: {exc!r}"
            if self._rec is not None:
                with contextlib.suppress(Exception):  # the warning already says what went wrong
                    self._rec.abort()
            return None

    def start(self, env: DrivingEnv, driver: Driver) -> None:
        rec = self._rec
        if rec is not None:
            self._call("starting", lambda: rec.start(env, driver))

    def after_act(self, env: DrivingEnv, agent_input: AgentInput, action: Action) -> None:
        rec = self._rec
        if rec is not None:
            self._call("recording a step", lambda: rec.after_act(env, agent_input, action))

    def finish(self, env: DrivingEnv, info: dict[str, Any]) -> Path | None:
        rec = self._rec
        if rec is not None:
            self.path = self._call("being written", lambda: rec.finish(env, info))
        return self.path


# ------------------------------------------------------------------------------------------ results
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


def _route_doc(
    r: RouteResult,
    log: RouteLog | None = None,
    rec: _RecordingDriver | None = None,
    error: str | None = None,
    tb: str | None = None,
) -> dict[str, Any]:
    """A route file: the result, its scores and status, and the artefacts (see docs/metrics.md)."""
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


def _finish_recording(
    doc: dict[str, Any], recorder: _SafeRecorder | None, env: DrivingEnv, spec: RouteSpec, every: int
) -> dict[str, Any]:
    """Close the route's recording (its ``route`` document gets the outcome) and note it in the route file."""
    if recorder is None:
        return doc
    events = doc.get("events") or []
    info = {
        "scenario": spec.scenario,
        "seed": spec.seed,
        "layout": spec.layout,
        "status": doc["status"],
        "driving score": f"{doc['scores']['score_composed']:.1f}",
        "route completion %": f"{doc['route_completion_pct']:.1f}",
        "infractions": "; ".join(f"{e['kind']} at {e['time_s']:.1f} s" for e in events) or "none",
        "error": doc.get("error") or "none",
    }
    path = recorder.finish(env, info)
    doc["rerun"] = (
        {"path": f"{RERUN_DIR}/{path.name}", "every": every, "frames": recorder.n_frames} if path else None
    )
    if recorder.warning:
        doc["warnings"] = [*doc.get("warnings", []), recorder.warning]
    return doc


def run_one_route(
    spec: RouteSpec,
    index: int,
    driver_spec: str,
    variant: dict[str, Any] | None = None,
    rerun_dir: str | None = None,
    rerun_every: int | None = None,
) -> dict[str, Any]:
    """Build, drive and score one route. Never raises: failures become crashed results (score 0).

    With ``rerun_dir`` and ``rerun_every`` the drive is also recorded to ``rerun_dir/<route_id>.rrd``
    (every ``rerun_every``-th step); a failing recording becomes a warning, never a failed route."""
    from riskdistill.sim.rollout import run_route
    from riskdistill.sim.scenarios import build_scenario

    v = EvalVariant(**(variant or {}))
    t0 = time.perf_counter()

    def crashed(end: RouteEnd, exc: BaseException) -> dict[str, Any]:
        r = crashed_result(spec, index, end, time.perf_counter() - t0)
        return _route_doc(r, error=repr(exc), tb=traceback.format_exc(limit=8))

    try:
        instance = build_scenario(spec.scenario, spec.seed, spec.layout)
    except Exception as exc:  # the simulation could not even start
        return crashed(RouteEnd.SIM_CRASHED, exc)
    if v.route_timeout_s is not None:
        instance.route_timeout_s = min(instance.route_timeout_s, float(v.route_timeout_s))
    observer = RigObserver(v.rig_shift, v.jpeg_quality)
    env = DrivingEnv(observe=observer)
    try:
        driver = make_driver_factory(driver_spec, v.rig)(env)
        observer.configure(driver.sensors)
    except Exception as exc:  # the driver could not be built, or asked for a rig that does not exist
        return crashed(RouteEnd.AGENT_CRASHED, exc)
    recorder = None
    every = max(1, int(rerun_every or 1))
    if rerun_dir is not None and rerun_every:
        recorder = _SafeRecorder(lambda: _rerun_recorder(rerun_dir, spec.route_id, every))
        recorder.start(env, driver)
    after_act = None if recorder is None else (lambda ai, a: recorder.after_act(env, ai, a))
    rec = _RecordingDriver(driver, env, observer.camera_valid, after_act=after_act)
    try:
        log = run_route(instance, rec, env=env)
    except Exception as exc:
        r = crashed_result(spec, index, RouteEnd.SIM_CRASHED, time.perf_counter() - t0)
        doc = _route_doc(r, env.log, rec, error=repr(exc), tb=traceback.format_exc(limit=8))
        return _finish_recording(doc, recorder, env, spec, every)
    if rec.error is not None and log.end == RouteEnd.RUNNING:
        env.abort(RouteEnd.AGENT_CRASHED)
    r = result_from_log(spec, index, log, time.perf_counter() - t0)
    doc = _route_doc(r, log, rec, error=rec.error, tb=getattr(rec, "traceback", None))
    return _finish_recording(doc, recorder, env, spec, every)


def _check_eval_config(out_dir: Path, config: dict[str, Any]) -> None:
    """Refuse to resume a folder that was evaluated with another driver or variant."""
    path = out_dir / EVAL_CONFIG
    if path.is_file():
        old = load_json(path)
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


def evaluate_suite(
    suite: Suite,
    driver_spec: str,
    out_dir: Path,
    workers: int = 1,
    limit: int | None = None,
    show_progress: bool = True,
    variant: EvalVariant | None = None,
    rerun_every: int | None = None,
) -> tuple[list[RouteResult], dict[str, Any]]:
    """Run ``driver_spec`` over ``suite`` (its ``variant.scenarios`` selection, then the first ``limit``
    routes); resumable. Returns results and summary (which records the variant).

    ``rerun_every=N`` also records every route run by this call to ``out_dir/rerun/<route_id>.rrd``, every
    N-th step (see the module docstring); it changes no result and is not part of the resume key."""
    if rerun_every is not None and int(rerun_every) < 1:
        raise ValueError(f"rerun_every must be a positive number of steps or None, got {rerun_every}")
    variant = variant or EvalVariant()
    factory = make_driver_factory(driver_spec, variant.rig)  # fail fast on an unknown driver
    parse_rig_shift(variant.rig_shift)  # ... and on a bad rig shift
    numbers = {spec.route_id: n for n, spec in enumerate(suite.routes)}  # leaderboard ids: suite positions
    suite = select_routes(suite, variant.scenarios)
    routes = suite.routes[:limit] if limit is not None else list(suite.routes)
    out_dir = Path(out_dir)
    route_dir = out_dir / "routes"
    route_dir.mkdir(parents=True, exist_ok=True)
    driver_key = str(Path(driver_spec).resolve()) if is_checkpoint_dir(driver_spec) else driver_spec
    _check_eval_config(out_dir, {"driver": driver_key, "variant": variant.to_dict(), "scoring": SCORING})
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
        factory.check()  # ... and on a checkpoint that does not load

    progress = Progress(
        TextColumn("[bold]closed loop[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
    )
    vdict = variant.to_dict()
    rerun_dir = str(out_dir / RERUN_DIR) if rerun_every else None
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

        if workers <= 1 and not is_checkpoint_dir(driver_spec):
            for i, spec in todo:
                done(run_one_route(spec, i, driver_spec, vdict, rerun_dir, rerun_every))
        else:
            n = max(1, min(workers, len(todo)))
            with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn")) as pool:
                futs = [
                    pool.submit(run_one_route, spec, i, driver_spec, vdict, rerun_dir, rerun_every)
                    for i, spec in todo
                ]
                for fut in as_completed(futs):
                    done(fut.result())

    ordered = [results[s.route_id] for s in routes]
    summary = compute_summary(ordered, n_routes_in_suite=len(routes))
    summary["suite"] = suite.name
    summary["driver"] = driver_key
    summary["variant"] = vdict
    checkpoint = save_checkpoint_json(out_dir / "results.json", ordered, n_routes_in_suite=len(routes))
    b2d.write_bench2drive_folder(out_dir, checkpoint, [(numbers[s.route_id], s) for s in routes])
    atomic_write_json(out_dir / "summary.json", summary)
    _write_risk_outcome(out_dir, [s.route_id for s in routes])
    return ordered, summary


def load_route_docs(out_dir: str | Path) -> list[dict[str, Any]]:
    """The route files of a closed-loop output folder, in the order of its ``results.json`` records
    (layout: ``docs/metrics.md``); for reports and viewers."""
    from riskdistill.evaluation.leaderboard import load_checkpoint_json, record_route_name

    out_dir = Path(out_dir)
    records = load_checkpoint_json(out_dir / "results.json")
    return [load_json(out_dir / "routes" / f"{record_route_name(r)}.json") for r in records]


def _write_risk_outcome(out_dir: Path, route_ids: list[str]) -> None:
    from riskdistill.evaluation.risk_outcome import summarise_risk_outcome

    docs = [load_json(out_dir / "routes" / f"{rid}.json") for rid in route_ids]  # results.json order
    if any(d.get("path_risk") for d in docs):
        atomic_write_json(out_dir / "risk_outcome.json", summarise_risk_outcome(docs))
