"""Record expert demonstrations over a route suite: camera images, annotations and metadata on disk.

    record_suite("train", "bench2drive", Path("data/train"), image_hw=(128, 352), workers=2)

Routes run in parallel worker processes (spawned, each with its own Numba threads). A worker drives the
privileged expert through one route, renders the rig at every recorded step and writes the JPEG images at
once; the annotations need the whole rollout (the ego's future trajectory), so they are buffered and written
when the route ends. Every file is written through a temporary name and a rename (a killed run never leaves
a half-written file under its final name); the route's ``_DONE.json`` marker comes last, after the data is
flushed to disk. A rerun skips routes with a marker, wipes half-written route folders and records them again,
then rebuilds ``frames.parquet`` and ``manifest.json`` from every finished route. The layout is defined in
:mod:`riskdistill.data.format` and documented in ``docs/data-format.md``.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from riskdistill.config import StrictConfig
from riskdistill.contracts.agent import PLAN_DT_S, PLAN_HORIZON, Action, AgentInput
from riskdistill.contracts.rig import Rig, load_rig, resize_rig
from riskdistill.data import format as fmt
from riskdistill.data.encode import (
    encode_jpeg,
    encode_npz,
    make_readable,
    sha256_bytes,
    sha256_file,
    table_bytes,
    write_file,
    write_json,
)
from riskdistill.data.image_labels import image_labels
from riskdistill.io import atomic_path, load_json
from riskdistill.sim.suites import RouteSpec, Suite, load_suite

ProgressFn = Callable[[dict[str, Any]], None]


class RecordSettings(StrictConfig):
    """What and how a recording stores; written to ``recording.json`` and the manifest.

    A resumed recording must use the same settings (and rig, and suite): mixing would make one data set
    out of incompatible routes.
    """

    image_h: int = Field(default=128, gt=0)
    image_w: int = Field(default=352, gt=0)
    every_n_steps: int = Field(default=1, ge=1, description="record every N-th 10 Hz simulation step")
    jpeg_quality: int = Field(default=fmt.DEFAULT_JPEG_QUALITY, ge=1, le=100)
    max_steps: int | None = Field(default=None, ge=1, description="cut each rollout after this many steps")
    actor_range_m: float = Field(default=75.0, gt=0.0)
    map_range_m: float = Field(default=60.0, gt=0.0)
    map_point_spacing_m: float = Field(default=1.0, gt=0.0)
    future_waypoints: int = Field(default=PLAN_HORIZON, ge=1)
    future_dt_s: float = Field(default=PLAN_DT_S, gt=0.0)
    steer_noise: float = Field(
        default=0.0, ge=0.0, le=1.0, description="recovery data: largest steering offset of a noise burst"
    )
    noise_interval_s: float = Field(default=8.0, gt=0.0, description="mean time between noise bursts")
    crossing_walkers: int = Field(
        default=0,
        ge=0,
        description="pedestrians per route who cross the ego's route ahead (sim/scenarios/background.py)",
    )
    image_labels: bool = Field(default=True, description="per-camera semantics and depth at 1/4 resolution")
    dagger_learner: str | None = Field(
        default=None,
        description="DAgger-style recording (sim/dagger.py): the learner that drives (its checkpoint and "
        "weights hash); the expert's plan stays the label. None: the expert drives",
    )
    dagger_expert_share: float = Field(
        default=0.0, ge=0.0, le=1.0, description="share of segments the expert drives (DAgger's beta)"
    )
    dagger_segment_s: float = Field(default=4.0, gt=0.0, description="who drives is drawn every segment_s")
    dagger_takeover_s: float | None = Field(
        default=None,
        gt=0.0,
        description="the expert takes a segment once the learner has stood still this long while the "
        "expert would drive (sim/dagger.py); None: never",
    )


@dataclass
class RecordResult:
    out_dir: Path
    n_routes: int  # finished routes in the data set
    n_frames: int
    recorded: list[str] = field(default_factory=list)  # routes recorded by this call
    skipped: list[str] = field(default_factory=list)  # already finished before this call
    failed: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    frames_recorded: int = 0  # frames written by this call


# ------------------------------------------------------------------------------------------ small I/O
def read_done(out_dir: Path, route_id: str) -> dict[str, Any] | None:
    """The route's marker if it exists, parses and is of a known format version; else None."""
    path = out_dir / fmt.done_rel(route_id)
    if not path.is_file():
        return None
    try:
        done = load_json(path)
    except (ValueError, OSError):
        return None
    if not isinstance(done, dict) or done.get("format_version") not in fmt.KNOWN_VERSIONS:
        return None
    if not isinstance(done.get("files"), dict) or not isinstance(done.get("n_frames"), int):
        return None
    return done


# ------------------------------------------------------------------------------------------ one route
def _route_log_summary(log: Any) -> dict[str, Any]:
    return {
        "route_end": str(log.end.value),
        "route_completion_pct": float(log.route_completion_pct),
        "route_length_m": float(log.route_length_m),
        "duration_game_s": float(log.time_s[-1]) if log.time_s else 0.0,
        "n_events": len(log.events),
        "events": [e.to_dict() for e in log.events],
        "passed_first_junction_cleanly": log.passed_first_junction_cleanly,
    }


def record_route(
    spec: RouteSpec, out_dir: Path, rig: Rig, settings: RecordSettings, learner: Any = None
) -> dict[str, Any]:
    """Record one route into ``out_dir/routes/<route_id>/`` (``learner``: the driver factory of a DAgger-style
    recording, see :func:`record_suite`). Never raises: failures come back as
    ``{"ok": False, "stage": "build" | "record", "error": ...}`` and leave no route folder behind."""
    t0 = time.perf_counter()
    rdir = out_dir / fmt.route_rel(spec.route_id)
    if rdir.exists():
        shutil.rmtree(rdir)
    base = {"route_id": spec.route_id, "scenario": spec.scenario, "seed": spec.seed}
    try:
        from riskdistill.sim.scenarios import build_scenario

        instance = build_scenario(spec.scenario, spec.seed, spec.layout, settings.crossing_walkers)
    except Exception as exc:
        return {**base, "ok": False, "stage": "build", "error": f"{type(exc).__name__}: {exc}"}
    try:
        done = _record_instance(spec, instance, out_dir, rig, settings, t0, learner)
    except Exception as exc:
        shutil.rmtree(rdir, ignore_errors=True)
        return {
            **base,
            "ok": False,
            "stage": "record",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    return {
        **base,
        "ok": True,
        "n_frames": done["n_frames"],
        "sim_steps": done["sim_steps"],
        "wall_s": time.perf_counter() - t0,
        "timing": done["timing"],
    }


class _RouteRecorder:
    """The route observer that records: at every ``every_n_steps``-th step it renders the rig, writes the
    JPEGs at once and buffers the annotation and the frame's row; :meth:`finish` adds the ego futures (they
    need the whole rollout), writes the annotations, the route's frames table and its ``_DONE.json``."""

    def __init__(self, spec: RouteSpec, instance: Any, out_dir: Path, rig: Rig, settings: RecordSettings):
        from riskdistill.data.annotate import FrameAnnotator
        from riskdistill.sim.sensors.render import CameraRenderer

        self.spec, self.instance, self.out_dir, self.settings = spec, instance, out_dir, settings
        world = instance.world
        self.renderer = CameraRenderer(world.map, rig, instance.weather)
        self.annotator = FrameAnnotator(
            world.map,
            instance.route,
            actor_range_m=settings.actor_range_m,
            map_range_m=settings.map_range_m,
            map_point_spacing_m=settings.map_point_spacing_m,
            script=instance.script,
            hazards=instance.hazards,
        )
        self.names = rig.camera_names
        self.calib = {
            "camera_names": np.array(self.names, dtype=f"<U{max(len(n) for n in self.names)}"),
            "image_hw": np.array([settings.image_h, settings.image_w], dtype=np.int64),
            "K": rig.K(),
            "T_ego_from_cam": rig.T_ego_from_cam(),
        }
        self.weather = instance.weather.to_dict()
        self.family = str(instance.params.get("layout", {}).get("family", spec.layout.get("family", "")))
        rdir = out_dir / fmt.route_rel(spec.route_id)
        for sub in (*self.names, fmt.ANN_DIR):
            (rdir / sub).mkdir(parents=True, exist_ok=True)
        self.files: dict[str, str] = {}
        self.n_bytes = 0
        self.poses: list[tuple[float, float, float]] = []
        self.world_steps: list[int] = []
        self.frames: list[tuple[int, dict[str, Any], dict[str, np.ndarray]]] = []
        self.actions: list[Action] = []
        self.reasons: list[str] = []
        self.noise: list[float] = []  # steering noise applied at each step (recovery data)
        self.learner_drove: list[bool] = []  # a DAgger learner, not the expert, drove this step
        self.driver: Any = None
        self.timing = dict.fromkeys(("render_s", "jpeg_s", "annotate_s", "write_s"), 0.0)

    def put(self, rel: str, data: bytes) -> None:
        tw = time.perf_counter()
        write_file(self.out_dir / rel, data)
        self.files[rel] = sha256_bytes(data)
        self.n_bytes += len(data)
        self.timing["write_s"] += time.perf_counter() - tw

    def on_start(self, env: Any, driver: Any) -> None:
        self.driver = driver

    def on_step(self, env: Any, inp: AgentInput, action: Action) -> None:
        self.actions.append(action)
        self.reasons.append(str(getattr(self.driver, "last_reason", "") or ""))
        self.noise.append(float(getattr(self.driver, "noise_steer", 0.0)))
        self.learner_drove.append(not getattr(self.driver, "expert_in_control", True))
        k = len(self.poses)
        e = env.world.ego
        self.poses.append((float(e.x_m), float(e.y_m), float(e.yaw_rad)))
        self.world_steps.append(env.world.step_count)
        if k % self.settings.every_n_steps:
            return
        t1 = time.perf_counter()
        frame = self.renderer.render(env.world)
        self.timing["render_s"] += time.perf_counter() - t1
        image_paths = []
        for ci, cam in enumerate(self.names):
            rel = fmt.image_rel(self.spec.route_id, cam, k)
            t3 = time.perf_counter()
            data = encode_jpeg(frame.rgb[ci], self.settings.jpeg_quality)
            self.timing["jpeg_s"] += time.perf_counter() - t3
            self.put(rel, data)
            image_paths.append(rel)
        t4 = time.perf_counter()
        ann = self.annotator.annotate(env.world, env.progress_m, frame.instance)
        ann.update(self._expert_plan(env))
        if self.settings.image_labels:
            ann.update(image_labels(frame.instance, frame.depth, env.world.actors.cls[: env.world.actors.n]))
        self.timing["annotate_s"] += time.perf_counter() - t4
        self.frames.append((k, self._row(env, inp, k, ann, image_paths), ann))

    def _expert_plan(self, env: Any) -> dict[str, np.ndarray]:
        """The expert's own plan at this step, in the ego frame (the labels of recovery data): its path
        ``[P, 2]`` every metre ahead of the rear axle, its target speed and the steering noise applied now."""
        path_world = getattr(self.driver, "last_plan_path_world", None)
        if path_world is None:
            return {}
        e = env.world.ego
        c, s = np.cos(e.yaw_rad), np.sin(e.yaw_rad)
        d = np.asarray(path_world, dtype=np.float64) - np.array([e.x_m, e.y_m])
        path = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)
        plan = {
            "expert_path_ego": path.astype(np.float32),
            "expert_speed_mps": np.array(self.driver.last_plan_speed_mps, dtype=np.float32),
            "expert_noise_steer": np.array(self.noise[-1] if self.noise else 0.0, dtype=np.float32),
        }
        if self.settings.dagger_learner is not None:
            plan["expert_in_control"] = np.array(not self.learner_drove[-1], dtype=bool)
        return plan

    def _row(
        self, env: Any, inp: AgentInput, k: int, ann: dict[str, np.ndarray], image_paths: list[str]
    ) -> dict[str, Any]:
        spec = self.spec
        return {
            "frame_id": fmt.frame_id(spec.route_id, k),
            "route_id": spec.route_id,
            "scenario": spec.scenario,
            "seed": spec.seed,
            "layout_family": self.family,
            "step": k,
            "timestamp_s": float(inp.timestamp_s),
            "ego_speed_mps": float(inp.ego.speed_mps),
            "ego_accel_mps2": float(inp.ego.accel_mps2),
            "ego_yaw_rate_radps": float(inp.ego.yaw_rate_radps),
            "ego_steer": float(inp.ego.steer),
            "ego_x_m": self.poses[-1][0],
            "ego_y_m": self.poses[-1][1],
            "ego_yaw_rad": self.poses[-1][2],
            "command": int(inp.command),
            "target_point_ego_x": float(inp.target_point_ego[0]),
            "target_point_ego_y": float(inp.target_point_ego[1]),
            "route_progress_m": float(env.progress_m - self.instance.start_s_m),
            **{f"weather_{k_}": float(v) for k_, v in self.weather.items()},
            "n_actors": len(ann["actor_id"]),
            "n_visible_actors": int((ann["actor_visible_px"].sum(axis=1) > 0).sum()),
            "image_paths": image_paths,
            "annotation_path": fmt.ann_rel(spec.route_id, k),
        }

    def finish(self, log: Any, t0: float) -> dict[str, Any]:
        """Write the buffered annotations (with the ego futures), the frames table and the marker."""
        from riskdistill.data.annotate import future_in_ego

        world, settings = self.instance.world, self.settings
        poses = self.poses
        if world.step_count != (
            self.world_steps[-1] if self.world_steps else -1
        ):  # the state after the last step
            poses.append((float(world.ego.x_m), float(world.ego.y_m), float(world.ego.yaw_rad)))
        pose_arr = np.asarray(poses, dtype=np.float64)
        stride = max(1, round(settings.future_dt_s / world.dt_s))
        rows = []
        # a driven future that noise bent, or that a DAgger learner steered, is not the expert's plan
        noisy = (np.asarray([*self.noise, 0.0], dtype=np.float64) != 0.0) | np.asarray(
            [*self.learner_drove, False], dtype=bool
        )
        for k, row, ann in self.frames:
            fxy, fyaw, fvalid = future_in_ego(pose_arr, k, settings.future_waypoints, stride)
            if noisy.any():  # not a label
                fvalid = fvalid & np.array(
                    [not noisy[k : k + stride * (j + 1)].any() for j in range(len(fvalid))], dtype=bool
                )
            arrays = {"frame_id": np.array(row["frame_id"]), **self.calib, **ann}
            arrays.update(future_xy=fxy, future_yaw=fyaw, future_valid=fvalid)
            t5 = time.perf_counter()
            data = encode_npz(arrays)
            self.timing["annotate_s"] += time.perf_counter() - t5
            self.put(row["annotation_path"], data)
            act = self.actions[k] if k < len(self.actions) else None
            ctl = act.controls.clipped() if act is not None and act.controls is not None else None
            row["action_throttle"] = float(ctl.throttle) if ctl else float("nan")
            row["action_steer"] = float(ctl.steer) if ctl else float("nan")
            row["action_brake"] = float(ctl.brake) if ctl else float("nan")
            row["expert_reason"] = self.reasons[k] if k < len(self.reasons) else ""
            rows.append(row)
        self.frames.clear()
        rid = self.spec.route_id
        self.put(fmt.route_frames_rel(rid), table_bytes(pa.Table.from_pylist(rows, schema=fmt.FRAME_SCHEMA)))
        t6 = time.perf_counter()
        os.sync()  # everything above reaches the disk before the marker says the route is complete
        self.timing["write_s"] += time.perf_counter() - t6
        done = {
            "format_version": fmt.FORMAT_VERSION,
            "route": self.spec.to_dict(),
            "n_frames": len(rows),
            "sim_steps": len(poses) - 1,
            "route_log": _route_log_summary(log),
            "weather": self.weather,
            "layout_family": self.family,
            "bytes": self.n_bytes,
            "wall_s": round(time.perf_counter() - t0, 3),
            "files": dict(sorted(self.files.items())),
        }
        write_json(self.out_dir / fmt.done_rel(rid), done)
        return done


def _record_instance(
    spec: RouteSpec,
    instance: Any,
    out_dir: Path,
    rig: Rig,
    settings: RecordSettings,
    t0: float,
    learner: Any = None,
) -> dict[str, Any]:
    from riskdistill.sim.dagger import DaggerFactory, RequestedCameras
    from riskdistill.sim.env import DrivingEnv
    from riskdistill.sim.expert import ExpertConfig, ExpertDriver
    from riskdistill.sim.rollout import build_driver, run_route

    recorder = _RouteRecorder(spec, instance, out_dir, rig, settings)
    seed = int.from_bytes(hashlib.sha256(spec.route_id.encode()).digest()[:4], "big")
    config = ExpertConfig(
        steer_noise=settings.steer_noise, noise_interval_s=settings.noise_interval_s, noise_seed=seed
    )
    driver: Any = ExpertDriver.with_config(config) if settings.steer_noise > 0.0 else ExpertDriver
    env = None
    if settings.dagger_learner is not None:
        if learner is None:
            raise ValueError(
                f"recording settings name a DAgger learner ({settings.dagger_learner}) but none given"
            )
        cameras = RequestedCameras()
        env = DrivingEnv(observe=cameras)
        dagger = DaggerFactory(
            learner,
            settings.dagger_expert_share,
            settings.dagger_segment_s,
            seed=seed,
            expert_config=config,
            takeover_after_s=settings.dagger_takeover_s,
        )
        driver = build_driver(dagger, env)
        cameras.configure(driver.sensors)
    t_run = time.perf_counter()
    log = run_route(instance, driver, env=env, observers=[recorder], max_steps=settings.max_steps)
    t_end = time.perf_counter()
    timing = recorder.timing
    timing["sim_expert_s"] = (t_end - t_run) - sum(timing.values())
    done = recorder.finish(log, t0)
    timing["setup_s"] = t_run - t0
    return {**done, "timing": timing}


def _record_route_job(
    spec: dict[str, Any], out_dir: str, rig: dict[str, Any], settings: dict[str, Any], learner: Any = None
) -> dict:
    """Picklable entry point of a worker process."""
    return record_route(
        RouteSpec.from_dict(spec),
        Path(out_dir),
        Rig.from_dict(rig),
        RecordSettings.from_dict(settings),
        learner,
    )


def _job_result(fut: Any, spec: RouteSpec, out_dir: Path) -> dict[str, Any]:
    try:
        return fut.result()
    except Exception as exc:  # the worker process died (BrokenProcessPool): no marker, wipe the folder
        shutil.rmtree(out_dir / fmt.route_rel(spec.route_id), ignore_errors=True)
        return {
            "route_id": spec.route_id,
            "scenario": spec.scenario,
            "seed": spec.seed,
            "ok": False,
            "stage": "worker",
            "error": f"{type(exc).__name__}: {exc}",
        }


def _init_worker(threads: int) -> None:
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


# ------------------------------------------------------------------------------------------ the suite
def _resolve_suite(suite: Suite | str | Path) -> Suite:
    return suite if isinstance(suite, Suite) else load_suite(suite)


def _resolve_rig(rig: Rig | str | Path, image_hw: tuple[int, int]) -> Rig:
    rig = rig if isinstance(rig, Rig) else load_rig(rig)
    return resize_rig(rig, int(image_hw[0]), int(image_hw[1]))


def _check_recording(out_dir: Path, suite: Suite, rig: Rig, settings: RecordSettings) -> None:
    """Write ``recording.json`` on the first run; on a resumed run insist on the same suite, rig, settings."""
    path = out_dir / fmt.RECORDING
    want = {
        "format_version": fmt.FORMAT_VERSION,
        "suite": suite.to_dict(),
        "rig": rig.to_dict(),
        "settings": settings.to_dict(),
    }
    if path.exists():
        try:
            have = load_json(path)
        except ValueError as exc:
            raise ValueError(f"{path}: unreadable ({exc}); delete it to start the recording over") from exc
        diffs = []
        if have.get("format_version") != fmt.FORMAT_VERSION:
            diffs.append(f"format_version {have.get('format_version')} != {fmt.FORMAT_VERSION}")
        if have.get("suite", {}).get("name") != suite.name:
            diffs.append(f"suite {have.get('suite', {}).get('name')!r} != {suite.name!r}")
        if have.get("rig") != want["rig"]:
            diffs.append(f"rig {have.get('rig', {}).get('name')!r} (or its cameras / image size) differs")
        old = have.get("settings", {})
        for key, value in want["settings"].items():  # a key added since: its default
            if old.get(key, RecordSettings.model_fields[key].default) != value:
                diffs.append(f"settings.{key} {old.get(key)!r} != {value!r}")
        if diffs:
            raise ValueError(
                f"{out_dir} holds a recording with other parameters: "
                + "; ".join(diffs)
                + ". Use another --out folder (or the original parameters to resume)."
            )
    write_json(path, want)


def record_suite(
    suite: Suite | str | Path,
    rig: Rig | str | Path,
    out_dir: str | Path,
    image_hw: tuple[int, int] = (128, 352),
    every_n_steps: int = 1,
    workers: int = 2,
    limit: int | None = None,
    jpeg_quality: int = fmt.DEFAULT_JPEG_QUALITY,
    *,
    max_steps: int | None = None,
    show_progress: bool = True,
    on_route_done: ProgressFn | None = None,
    steer_noise: float = 0.0,
    noise_interval_s: float = 8.0,
    learner: Any = None,
    learner_name: str | None = None,
    expert_share: float = 0.0,
    segment_s: float = 4.0,
    takeover_s: float | None = None,
    crossing_walkers: int = 0,
) -> RecordResult:
    """Record the expert over the first ``limit`` routes of ``suite`` into ``out_dir`` (resumable).

    ``steer_noise > 0`` records recovery data: bursts of steering noise (about every ``noise_interval_s``)
    push the car off its line while the labels stay the expert's own plan (``expert_path_ego``,
    ``expert_speed_mps``); driven futures that a burst bent are marked invalid (``future_valid``).

    ``learner`` (a picklable, non-privileged driver factory, e.g. a student checkpoint's) records DAgger-style
    (``sim/dagger.py``): the learner drives, the expert drives a share ``expert_share`` of the segments of
    ``segment_s`` seconds (and, with ``takeover_s``, a segment whenever the learner has stood still that
    long while the expert would drive), and every frame is labelled with the expert's plan from the state
    the car is in;
    ``learner_name`` (required then) names it in the settings, so a resumed recording uses the same learner.

    ``crossing_walkers`` adds that many pedestrians per route who cross the ego's route ahead (training
    data with pedestrians on the carriageway outside the crossing scenarios).

    ``suite``: a :class:`Suite`, a shipped suite name or a suite JSON path; ``rig``: a :class:`Rig`, a
    built-in rig name or a rig JSON path (resized to ``image_hw``). Raises ``ConfigError`` for an unknown
    suite or rig and ValueError when ``out_dir`` holds a recording with other parameters. A route that fails
    to build or record is listed in the manifest's ``failed_routes`` (and retried by the next run).
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    suite = _resolve_suite(suite)
    rig = _resolve_rig(rig, image_hw)
    settings = RecordSettings(
        image_h=int(image_hw[0]),
        image_w=int(image_hw[1]),
        every_n_steps=every_n_steps,
        jpeg_quality=jpeg_quality,
        max_steps=max_steps,
        steer_noise=steer_noise,
        noise_interval_s=noise_interval_s,
        dagger_learner=learner_name if learner is not None else None,
        dagger_expert_share=expert_share,
        dagger_segment_s=segment_s,
        dagger_takeover_s=takeover_s,
        crossing_walkers=crossing_walkers,
    )
    if learner is not None and not learner_name:
        raise ValueError(
            "a DAgger learner needs learner_name (its checkpoint and weights hash) for the settings"
        )
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    for spec in suite.routes:
        fmt.check_route_id(spec.route_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_recording(out_dir, suite, rig, settings)

    routes = suite.routes[:limit] if limit is not None else list(suite.routes)
    result = RecordResult(out_dir=out_dir, n_routes=0, n_frames=0)
    todo: list[RouteSpec] = []
    for spec in routes:
        done = read_done(out_dir, spec.route_id)
        if done is not None and done.get("route") == spec.to_dict():
            result.skipped.append(spec.route_id)
            continue
        rdir = out_dir / fmt.route_rel(spec.route_id)
        if rdir.exists():  # half-written (killed) or recorded from another spec: start it over
            shutil.rmtree(rdir)
        todo.append(spec)

    progress = Progress(
        TextColumn("[bold]record[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[frames]} frames"),
        TimeElapsedColumn(),
        disable=not show_progress,
    )
    failed: list[dict[str, Any]] = []
    with progress:
        task = progress.add_task(suite.name, total=len(routes), completed=len(result.skipped), frames=0)

        def finished(r: dict[str, Any]) -> None:
            if r["ok"]:
                result.recorded.append(r["route_id"])
                result.frames_recorded += r["n_frames"]
            else:
                failed.append({k: r[k] for k in ("route_id", "scenario", "seed", "stage", "error")})
                progress.console.print(f"[red]route {r['route_id']} failed[/] ({r['stage']}): {r['error']}")
            progress.update(task, advance=1, frames=result.frames_recorded)
            if on_route_done is not None:
                on_route_done(r)

        n_workers = min(workers, len(todo))
        if n_workers <= 1:
            for spec in todo:
                finished(record_route(spec, out_dir, rig, settings, learner))
        else:
            threads = max(1, (os.cpu_count() or 1) // n_workers)
            ctx = mp.get_context("spawn")
            args = (str(out_dir), rig.to_dict(), settings.to_dict(), learner)
            with ProcessPoolExecutor(
                n_workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
            ) as pool:
                futs = {pool.submit(_record_route_job, spec.to_dict(), *args): spec for spec in todo}
                try:
                    for fut in as_completed(futs):
                        finished(_job_result(fut, futs[fut], out_dir))
                except KeyboardInterrupt:  # queued routes are not started; a rerun resumes
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise

    manifest = build_index(out_dir, failed=failed)
    result.failed = failed
    result.n_routes = manifest["counts"]["routes"]
    result.n_frames = manifest["counts"]["frames"]
    result.wall_s = time.perf_counter() - t_start
    return result


# ------------------------------------------------------------------------------------------ the index
def _created_info() -> dict[str, Any]:
    from riskdistill.runs import git_commit, package_versions

    packages = package_versions()
    packages["pyarrow"] = pa.__version__
    return {
        "utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "packages": packages,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "argv": list(sys.argv),
    }


def build_index(out_dir: str | Path, failed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """(Re)build ``frames.parquet`` and ``manifest.json`` from every finished route of the recording's suite
    (suite order). ``failed``: this run's failures; None keeps the previous manifest's for routes still
    unfinished. Returns the manifest."""
    out_dir = Path(out_dir)
    rec = load_json(out_dir / fmt.RECORDING)
    suite = Suite.from_dict(rec["suite"], source=str(out_dir / fmt.RECORDING))
    rig = Rig.from_dict(rec["rig"], source=str(out_dir / fmt.RECORDING))
    dones = []
    for spec in suite.routes:
        done = read_done(out_dir, spec.route_id)
        if done is not None and done.get("route") == spec.to_dict():
            dones.append(done)
    if failed is None:
        old_path = out_dir / fmt.MANIFEST
        old = load_json(old_path).get("failed_routes", []) if old_path.exists() else []
        done_ids = {d["route"]["route_id"] for d in dones}
        failed = [f for f in old if f.get("route_id") not in done_ids]
    suite_info = {"name": suite.name, "description": suite.description, "n_routes": len(suite.routes)}
    return write_index(out_dir, dones, rig, rec["settings"], suite_info, failed)


def write_index(
    out_dir: Path,
    dones: list[dict[str, Any]],
    rig: Rig,
    settings: dict[str, Any],
    suite_info: dict[str, Any],
    failed: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``frames.parquet`` and ``manifest.json`` (atomically) from the ``_DONE.json`` markers of the
    finished routes, in data set order. Each marker's ``route`` holds ``route_id``, ``scenario``, ``seed``.
    ``extra``: more manifest fields (they may replace ``sim``). Shared by the recorder and the importers
    (``data/adapters/importer.py``). Returns the manifest."""
    from riskdistill.contracts.ego import EGO_REAR_AXLE_TO_CENTER_M, EGO_SIZE_M
    from riskdistill.sim.world import SIM_DT_S

    tables: list[pa.Table] = []
    files: dict[str, str] = {}
    routes: list[dict[str, Any]] = []
    n_bytes = 0
    for done in dones:
        spec = done["route"]
        route_id = spec["route_id"]
        tables.append(pq.read_table(out_dir / fmt.route_frames_rel(route_id), schema=fmt.FRAME_SCHEMA))
        files.update(done["files"])
        files[fmt.done_rel(route_id)] = sha256_file(out_dir / fmt.done_rel(route_id))
        n_bytes += int(done.get("bytes", 0))
        log = done.get("route_log", {})
        routes.append(
            {
                "route_id": route_id,
                "scenario": spec["scenario"],
                "seed": spec["seed"],
                "layout_family": done.get("layout_family"),
                "n_frames": done["n_frames"],
                "route_end": log.get("route_end"),
                "route_completion_pct": log.get("route_completion_pct"),
                "n_events": log.get("n_events"),
            }
        )
    table = pa.concat_tables(tables) if tables else fmt.FRAME_SCHEMA.empty_table()
    frames_path = out_dir / fmt.FRAMES
    with atomic_path(frames_path) as tmp:
        pq.write_table(table, tmp, row_group_size=4096)
        make_readable(tmp)
    files[fmt.FRAMES] = sha256_file(frames_path)

    n_cam = len(rig.cameras)
    manifest = {
        "format": fmt.FORMAT_NAME,
        "format_version": fmt.FORMAT_VERSION,
        "created": _created_info(),
        "suite": suite_info,
        "rig": rig.to_dict(),
        "camera_names": rig.camera_names,
        "image_hw": [settings["image_h"], settings["image_w"]],
        "settings": settings,
        "sim": {
            "dt_s": SIM_DT_S,
            "ego_size_lwh": list(EGO_SIZE_M),
            "ego_rear_axle_to_center_m": EGO_REAR_AXLE_TO_CENTER_M,
        },
        **(extra or {}),
        "counts": {
            "routes": len(routes),
            "frames": table.num_rows,
            "images": table.num_rows * n_cam,
            "annotations": table.num_rows,
            "failed_routes": len(failed),
            "suite_routes": suite_info.get("n_routes", len(routes)),
            "bytes": n_bytes + (frames_path.stat().st_size if frames_path.exists() else 0),
        },
        "routes": routes,
        "failed_routes": failed,
        "files": dict(sorted(files.items())),
    }
    write_json(out_dir / fmt.MANIFEST, manifest, indent=1)
    return manifest
