"""Rerun recordings (``.rrd``) of one route, for interactive inspection: ``rerun route.rrd``.

    frames = [RerunFrame(time_s=..., images=..., camera_names=..., risk_teacher=..., ...), ...]
    log_route_rrd("r0.rrd", frames, grid=BevGrid.preset("tiny"), route_id="r0")
    log_dataset_rrd("data/val", "r0", "data/val/labels/risk", "r0.rrd")   # a recorded route
    record_closed_loop_rrd(spec, ExpertDriver, "r0.rrd")                  # drive a suite route
    record_run_route_rrd("runs/eval_rsd", "r0", "r0.rrd")                 # an evaluated route, again
    evaluate_suite(suite, driver, out, recorders=[RerunRecording(every=2)])  # OUT/rerun/<route_id>.rrd

``RrdWriter`` streams frames into the file as they come (a drive is never held in memory);
``RouteRrdRecorder`` is the recorder the closed-loop evaluator runs next to the driver, made in each worker
by the :class:`RerunRecording` factory passed to :func:`riskdistill.evaluation.closed_loop.evaluate_suite`
(evaluation never imports this module).

Entity paths (timeline ``sim_time``, seconds; also ``frame``, the step index):

=============================== =====================================================================
``cameras/<CAMERA>``            the camera image (JPEG-encoded)
``topdown``                     top-down view of the simulated scene (closed loop only)
``bev/map``                     the annotation BEV (recorded routes), on the risk-map panel
``bev/risk/teacher``            the teacher's risk map as a heat image over the BEV panel
``bev/risk/predicted``          the student's predicted risk map, same panel
``bev/trajectory/planned``      the planned waypoints (green), BEV panel pixels
``bev/trajectory/expert``       the expert's future trajectory (orange), BEV panel pixels
``bev/trajectory/route``        the route's reference path ahead of the ego (blue; closed loop)
``bev/background``              the empty BEV panel (static; when there is no annotation BEV)
``risk_values/teacher|predicted`` the raw risk maps ``[H_bev, W_bev]`` float32 (hover to read values)
``teacher/reasons``             the teacher's per-object risks and reasons (Markdown)
``events``                      infractions and route messages (text log)
``driver/notes``                what the driver says it reacts to (the expert's reason), when it changes
``ego/speed_mps``, ``risk/frame_max`` scalars over time
``route``                       static Markdown: route id, scenario, grid, result
``bev/actors``, ``bev/ego``     the actors' and the ego's boxes on the BEV panel (:mod:`.rerun_scene`)
``scene/...``                   3-D ego-frame view: ``actors`` / ``ego`` boxes, ``trajectory/<name>``
=============================== =====================================================================

Every recording carries a default blueprint (:func:`riskdistill.viz.rerun_scene.default_blueprint`): the
cameras, the teacher's and the student's BEV risk side by side, the 3-D scene, the top-down view, time
series and logs.

BEV panel pixels: forward up, left left, ``PANEL_PX`` pixels tall, the same layout as
:func:`riskdistill.viz.risk.render_risk_panel`. No viewer is spawned: everything goes to the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from riskdistill.geometry import BevGrid
from riskdistill.io import atomic_path
from riskdistill.viz.rerun_scene import (
    ActorBoxes,
    RecordingContents,
    boxes_from_annotation,
    boxes_from_world,
    default_blueprint,
    log_actor_boxes,
    log_scene_static,
    log_trajectory_3d,
)
from riskdistill.viz.risk import (
    PANEL_BG,
    as_risk_map,
    ego_to_px,
    grid_matches_frame_view,
    panel_size,
    risk_to_rgba,
)
from riskdistill.viz.topdown import FUTURE_COLOR, PLAN_COLOR, ROUTE_COLOR

APPLICATION_ID = "riskdistill"
TIMELINE = "sim_time"
PANEL_PX = 384
JPEG_QUALITY = 85
ROUTE_AHEAD_M = 40.0  # how much of the route ahead the BEV panel shows (closed loop)


@dataclass
class RerunFrame:
    """What one time step shows; every field but ``time_s`` is optional.

    Trajectories are ego-frame ``[N, 2]`` metres (the origin is prepended when drawn); risk maps are
    ``[H_bev, W_bev]`` (or ``[1, H, W]``) on the recording's grid; ``reasons`` are Markdown lines.
    """

    time_s: float
    step: int | None = None
    images: np.ndarray | None = None  # [N_cam, H, W, 3] uint8
    camera_names: Sequence[str] = ()
    topdown: np.ndarray | None = None  # [H, W, 3] uint8
    annotation: dict[str, np.ndarray] | None = None  # for the BEV map background
    risk_teacher: Any = None
    risk_predicted: Any = None
    planned_xy: Any = None
    expert_xy: Any = None
    route_xy: Any = None
    reasons: Sequence[str] = ()
    events: Sequence[str] = ()
    notes: Sequence[str] = ()
    scalars: dict[str, float] = field(default_factory=dict)
    actors: ActorBoxes | None = None  # boxes in the ego frame (BEV panel and 3-D view)


def _path_part(name: str) -> str:
    import rerun as rr

    return rr.escape_entity_path_part(str(name))


def _strip(grid: BevGrid, xy: Any, size: tuple[int, int]) -> np.ndarray | None:
    if xy is None:
        return None
    p = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    if not len(p):
        return None
    return ego_to_px(grid, np.concatenate([np.zeros((1, 2)), p]), size).astype(np.float32)


def _bev_background(annotation: dict[str, np.ndarray], grid: BevGrid, size: tuple[int, int]) -> np.ndarray:
    from riskdistill.viz.frame import render_bev

    if grid_matches_frame_view(grid) and size[0] == size[1]:
        return render_bev(annotation, size_px=size[1], extent_m=grid.x_max_m - grid.x_min_m)
    return np.full((size[1], size[0], 3), PANEL_BG, dtype=np.uint8)


def _log_frame(rec: Any, f: RerunFrame, grid: BevGrid | None, size: tuple[int, int]) -> None:
    import rerun as rr

    rec.set_time(TIMELINE, duration=float(f.time_s))
    if f.step is not None:
        rec.set_time("frame", sequence=int(f.step))
    if f.images is not None:
        imgs = np.asarray(f.images)
        names = list(f.camera_names) or [f"cam{i}" for i in range(len(imgs))]
        for name, img in zip(names, imgs, strict=True):
            rec.log(f"cameras/{_path_part(name)}", rr.Image(np.ascontiguousarray(img)).compress(JPEG_QUALITY))
    if f.topdown is not None:
        rec.log("topdown", rr.Image(np.ascontiguousarray(f.topdown)).compress(JPEG_QUALITY))
    if grid is not None:
        if f.annotation is not None:
            rec.log("bev/map", rr.Image(_bev_background(f.annotation, grid, size), draw_order=-10.0))
        for key, risk in (("teacher", f.risk_teacher), ("predicted", f.risk_predicted)):
            if risk is None:
                continue
            m = as_risk_map(risk, grid, f"{key} risk map")
            heat = Image.fromarray(risk_to_rgba(m), "RGBA").resize(size, Image.Resampling.NEAREST)
            rec.log(
                f"bev/risk/{key}", rr.Image(np.asarray(heat), draw_order=0.0 if key == "teacher" else 1.0)
            )
            rec.log(f"risk_values/{key}", rr.Image(m.astype(np.float32), color_model="L"))
            rec.log(f"risk/{key}_max", rr.Scalars(float(np.max(m))))
        trajectories = (
            ("route", f.route_xy, ROUTE_COLOR),
            ("planned", f.planned_xy, PLAN_COLOR),
            ("expert", f.expert_xy, FUTURE_COLOR),
        )
        for key, xy, color in trajectories:
            strip = _strip(grid, xy, size)
            if strip is not None:
                rec.log(
                    f"bev/trajectory/{key}",
                    rr.LineStrips2D([strip], colors=[color], radii=1.5, labels=[key], draw_order=5.0),
                )
                rec.log(f"bev/trajectory/{key}_points", rr.Points2D(strip[1:], colors=[color], radii=3.0))
    for key, xy, color in (
        ("route", f.route_xy, ROUTE_COLOR),
        ("planned", f.planned_xy, PLAN_COLOR),
        ("expert", f.expert_xy, FUTURE_COLOR),
    ):
        if xy is not None:
            log_trajectory_3d(rec, key, xy, color)
    if f.actors is not None:
        log_actor_boxes(rec, f.actors, grid, size)
    if f.reasons:
        rec.log("teacher/reasons", rr.TextDocument("\n".join(f.reasons), media_type=rr.MediaType.MARKDOWN))
    for msg in f.events:
        rec.log("events", rr.TextLog(str(msg), level=rr.TextLogLevel.WARN))
    for msg in f.notes:
        rec.log("driver/notes", rr.TextLog(str(msg), level=rr.TextLogLevel.INFO))
    for name, value in f.scalars.items():
        if value is not None and math.isfinite(float(value)):
            rec.log(f"ego/{_path_part(name)}", rr.Scalars(float(value)))


class RrdWriter:
    """Streams :class:`RerunFrame` objects into one ``.rrd`` file as they come, so a long drive is never held
    in memory. The file appears (atomically) on :meth:`close`; :meth:`abort` leaves nothing behind.

    ``grid`` is the BEV grid of the risk maps and trajectories (without it, BEV entities are skipped);
    the static ``route`` Markdown document (``info``, the grid) is written on :meth:`close`, when the outcome
    of a drive is known.
    """

    def __init__(
        self, path: str | Path, grid: BevGrid | None = None, route_id: str = "", panel_px: int = PANEL_PX
    ):
        import rerun as rr

        self.path = Path(path)
        self.grid = grid
        self.route_id = route_id or self.path.stem
        self.size = panel_size(grid, panel_px) if grid is not None else (panel_px, panel_px)
        self.n_frames = 0
        self._stack = ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        try:
            self._rec = rr.RecordingStream(APPLICATION_ID, recording_id=self.route_id)
            self._rec.save(tmp)
            if grid is not None:
                bg = np.full((self.size[1], self.size[0], 3), PANEL_BG, dtype=np.uint8)
                self._rec.log("bev/background", rr.Image(bg, draw_order=-20.0), static=True)
            log_scene_static(self._rec, grid, self.size)
            self.contents = RecordingContents(camera_names=[], bev=grid is not None)
        except BaseException as exc:
            self._stack.__exit__(type(exc), exc, exc.__traceback__)  # atomic_path removes the temporary file
            raise
        self._open = True

    def log(self, frame: RerunFrame) -> None:
        if not self._open:
            raise RuntimeError(f"{self.path}: the recording is closed")
        _log_frame(self._rec, frame, self.grid, self.size)
        self.n_frames += 1
        c = self.contents
        if frame.images is not None:
            names = list(frame.camera_names) or [f"cam{i}" for i in range(len(frame.images))]
            c.camera_names += [_path_part(n) for n in names if _path_part(n) not in c.camera_names]
        c.topdown |= frame.topdown is not None
        c.teacher |= frame.risk_teacher is not None and self.grid is not None
        c.predicted |= frame.risk_predicted is not None and self.grid is not None
        c.reasons |= bool(frame.reasons)

    def close(self, info: dict[str, Any] | None = None) -> Path:
        """Write the static ``route`` document (``info``) and move the file into place; returns its path."""
        import rerun as rr

        if not self._open:
            raise RuntimeError(f"{self.path}: the recording is closed")
        try:
            lines = [f"# route {self.route_id}"]
            for k, v in (info or {}).items():
                lines.append(f"- **{k}**: {v}")
            if self.grid is not None:
                w, h = self.size
                lines.append(f"- **BEV grid**: {self.grid.to_dict()} (panels {w}x{h} px, forward up)")
            md = rr.MediaType.MARKDOWN
            self._rec.log("route", rr.TextDocument("\n".join(lines), media_type=md), static=True)
            self._rec.send_blueprint(default_blueprint(self.contents))
            self._rec.log("route_frames", rr.TextDocument(f"{self.n_frames} frames"), static=True)
            self._rec.flush()
        except BaseException:
            self.abort()
            raise
        self._open = False
        self._rec.disconnect()
        self._stack.close()  # atomic_path: rename the temporary file onto self.path
        return self.path

    def abort(self) -> None:
        """Drop the recording: the temporary file is removed and ``path`` is left untouched."""
        if not self._open:
            return
        self._open = False
        try:
            self._rec.disconnect()
        finally:
            exc = RuntimeError("recording aborted")
            self._stack.__exit__(type(exc), exc, None)  # atomic_path removes the temporary file

    def __enter__(self) -> RrdWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        elif self._open:
            self.close()


def log_route_rrd(
    path: str | Path,
    frames: Iterable[RerunFrame],
    grid: BevGrid | None = None,
    route_id: str = "",
    info: dict[str, Any] | None = None,
    panel_px: int = PANEL_PX,
) -> Path:
    """Write the frames of one route to ``path`` (an ``.rrd`` file, atomically); returns ``path``.

    ``grid`` is the BEV grid of the risk maps and trajectories (without it, BEV entities are skipped);
    ``info`` goes into the static ``route`` Markdown document.
    """
    writer = RrdWriter(path, grid=grid, route_id=route_id, panel_px=panel_px)
    try:
        for f in frames:
            writer.log(f)
    except BaseException:
        writer.abort()
        raise
    return writer.close(info)


# ------------------------------------------------------------------------------------------ recorded routes
def _reason_lines(record: dict[str, Any] | None) -> list[str]:
    if not record:
        return []
    lines = [f"**frame risk {float(record.get('frame_risk', 0.0)):.2f}**: {record.get('summary', '')}", ""]
    for o in sorted(record.get("objects", []), key=lambda o: o.get("rank", 0)):
        lines.append(
            f"{o.get('rank')}. `{o.get('cls')}` #{o.get('object_id')} risk {float(o.get('risk', 0.0)):.2f}: "
            f"{o.get('reason', '')}"
        )
    return lines


def dataset_route_frames(
    data_root: str | Path,
    route_id: str,
    label_dir: str | Path | None = None,
    predictor: Callable[[Any], tuple[Any, Any]] | None = None,
    grid: BevGrid | None = None,
) -> tuple[list[RerunFrame], BevGrid]:
    """The frames of a recorded route as :class:`RerunFrame` objects, and the grid of their risk maps.

    Teacher maps come from ``label_dir/maps/<frame_id>.npy`` and reasons from
    ``label_dir/records/<frame_id>.json`` when present; ``predictor(frame) -> (plan_xy, risk)`` adds a
    student's outputs (maps off the grid are dropped). ``grid`` defaults to the label folder's grid, else
    the ``tiny`` preset. Raises ``KeyError`` naming the valid route ids for an unknown route.
    """
    from riskdistill.data.storage import RecordedDataset
    from riskdistill.viz.report_figures import _load_teacher_map, label_grid, load_label_record

    ds = RecordedDataset(data_root)
    route_ids = ds.table.column("route_id").to_pylist()
    idx = [i for i, r in enumerate(route_ids) if r == route_id]
    if not idx:
        raise KeyError(f"no route {route_id!r} in {ds.root}; routes: {sorted(set(route_ids))}")
    labels = Path(label_dir) if label_dir is not None else None
    grid = grid or label_grid(labels) or BevGrid.preset("tiny")
    frames = []
    for i in sorted(idx, key=lambda i: ds.frame(i).step):
        rec = ds.frame(i)
        ann = rec.annotation
        teacher = _load_teacher_map(labels, rec.frame_id)
        plan, pred = predictor(rec) if predictor is not None else (None, None)
        if pred is not None and np.asarray(pred).shape[-2:] != grid.shape:
            pred = None
        valid = np.asarray(ann["future_valid"], dtype=bool)
        frames.append(
            RerunFrame(
                time_s=rec.timestamp_s,
                step=rec.step,
                images=rec.images,
                camera_names=rec.camera_names,
                annotation=ann,
                risk_teacher=teacher if teacher is not None and teacher.shape[-2:] == grid.shape else None,
                risk_predicted=pred,
                planned_xy=plan,
                expert_xy=np.asarray(ann["future_xy"], dtype=np.float64)[valid],
                reasons=_reason_lines(load_label_record(labels, rec.frame_id)),
                scalars={"speed_mps": rec.ego.speed_mps},
                actors=boxes_from_annotation(ann),
            )
        )
    return frames, grid


def log_dataset_rrd(
    data_root: str | Path,
    route_id: str,
    label_dir: str | Path | None,
    path: str | Path,
    predictor: Callable[[Any], tuple[Any, Any]] | None = None,
    grid: BevGrid | None = None,
) -> Path:
    """A recorded route (cameras, annotation BEV, expert trajectory, teacher risk maps and reasons when the
    label folder has them, and a student's outputs with ``predictor``) as an ``.rrd`` file."""
    frames, grid = dataset_route_frames(data_root, route_id, label_dir, predictor, grid)
    scenario = ""
    if frames:
        from riskdistill.data.storage import RecordedDataset

        ds = RecordedDataset(data_root)
        scenario = ds.frame(ds.table.column("route_id").to_pylist().index(route_id)).scenario
    info = {
        "data set": str(data_root),
        "scenario": scenario,
        "labels": str(label_dir) if label_dir else "none",
    }
    return log_route_rrd(path, frames, grid=grid, route_id=route_id, info=info)


# ------------------------------------------------------------------------------------------ closed loop
def _route_ahead_ego(env: Any, ahead_m: float = ROUTE_AHEAD_M, step_m: float = 2.0) -> np.ndarray | None:
    """The route's reference path from the ego's progress ``ahead_m`` on, ego frame ``[N, 2]`` metres."""
    route = env.instance.route
    s0 = float(env.progress_m)
    s = np.arange(s0, min(s0 + ahead_m, route.length_m) + 1e-9, step_m)
    if len(s) < 2:
        return None
    pts = np.asarray(route.path.point_at(s), dtype=np.float64).reshape(-1, 2)
    ego = env.world.ego
    c, sn = math.cos(ego.yaw_rad), math.sin(ego.yaw_rad)
    dx, dy = pts[:, 0] - ego.x_m, pts[:, 1] - ego.y_m
    return np.stack([c * dx + sn * dy, -sn * dx + c * dy], axis=1)


class ClosedLoopRecorder:
    """Turns a drive into :class:`RerunFrame` objects, every ``every``-th driver step.

    A recorded step holds the camera images the driver saw (when its rig renders any), a top-down view of
    the scene with the driver's risk map (``driver.last_outputs["risk"]``, if it has one) and plan, the plan
    and the route ahead in the ego frame, the driver's note (``driver.last_reason``, when it changed) and the
    infractions raised since the previous step. An infraction on a step in between gets a frame that holds
    only the events, so images are logged exactly on steps ``0, every, 2 * every, ...``. Frames go to
    ``sink`` (e.g. :meth:`RrdWriter.log`), else to ``self.frames``.

    Call :meth:`step` with the ``action`` after the driver acted (observation, outputs and plan then belong
    to the same step), then :meth:`finish`; :class:`RouteRrdRecorder` does so as a route observer.
    """

    def __init__(
        self,
        grid: BevGrid | None = None,
        every: int = 1,
        topdown_px: int = 320,
        sink: Callable[[RerunFrame], None] | None = None,
    ):
        self.grid = grid
        self.every = max(1, int(every))
        self.topdown_px = topdown_px
        self.sink = sink
        self.frames: list[RerunFrame] = []
        self.n_frames = 0
        self._step = 0
        self._n_events = 0
        self._note = ""

    def _emit(self, frame: RerunFrame) -> None:
        self.n_frames += 1
        if self.sink is not None:
            self.sink(frame)
        else:
            self.frames.append(frame)

    def _new_events(self, env: Any) -> list[str]:
        if env.log is None or len(env.log.events) <= self._n_events:
            return []
        events = [f"{e.kind}: {e.message}" for e in env.log.events[self._n_events :]]
        self._n_events = len(env.log.events)
        return events

    def finish(self, env: Any) -> None:
        """Log the infractions of the route's last step (the steps are recorded before ``env.step``)."""
        events = self._new_events(env)
        if events and env.world is not None:
            self._emit(RerunFrame(time_s=float(env.world.time_s), step=self._step, events=events))

    def step(self, env: Any, agent_input: Any, driver: Any = None, action: Any = None) -> None:
        """Record the current step; ``action`` (the driver's answer to ``agent_input``) gives the plan,
        else ``driver.last_outputs["waypoints"]``."""
        from riskdistill.viz.topdown import ego_view, render_topdown

        step = self._step
        self._step += 1
        events = self._new_events(env)
        time_s = float(env.world.time_s)
        if step % self.every:
            if events:
                self._emit(RerunFrame(time_s=time_s, step=step, events=events))
            return
        outputs = getattr(driver, "last_outputs", None) or {}
        risk = outputs.get("risk")
        plan = getattr(action, "waypoints_ego", None)
        if plan is None:
            plan = outputs.get("waypoints")
        risk_map = None
        if risk is not None and self.grid is not None:
            try:
                risk_map = as_risk_map(risk, self.grid, "predicted risk map")
            except ValueError:
                risk_map = None
        plan_ego = None if plan is None else np.asarray(plan, dtype=np.float64).reshape(-1, 2)
        plan_world = None
        if plan_ego is not None:
            ego = env.world.ego
            c, s = math.cos(ego.yaw_rad), math.sin(ego.yaw_rad)
            p = plan_ego
            plan_world = np.stack(
                [ego.x_m + c * p[:, 0] - s * p[:, 1], ego.y_m + s * p[:, 0] + c * p[:, 1]], 1
            )
        view = ego_view(env.world, extent_m=60.0, size_px=self.topdown_px)
        top = render_topdown(
            env.world,
            view,
            route=env.instance.route,
            plan_world=plan_world,
            risk_map=risk_map,
            risk_extent=self.grid if risk_map is not None else None,
        )
        note = getattr(driver, "last_reason", None)
        notes: list[str] = []
        if isinstance(note, str) and note and note != self._note:
            notes, self._note = [note], note
        images = getattr(agent_input, "images", None)
        self._emit(
            RerunFrame(
                time_s=time_s,
                step=step,
                images=None if images is None or len(images) == 0 else np.asarray(images),
                camera_names=tuple(getattr(agent_input, "camera_names", ()) or ()),
                topdown=top,
                risk_predicted=risk_map,
                planned_xy=plan_ego,
                route_xy=_route_ahead_ego(env),
                events=events,
                notes=notes,
                scalars={"speed_mps": float(agent_input.ego.speed_mps), "progress_m": float(env.progress_m)},
                actors=boxes_from_world(env.world),
            )
        )


RERUN_DIR = "rerun"  # <out>/rerun/<route_id>.rrd


class RouteRrdRecorder:
    """Records one route into ``path`` while it is driven, streaming (:class:`RrdWriter`): the recorder the
    closed-loop evaluator runs next to the driver (made by :class:`RerunRecording`), also used by
    :func:`record_closed_loop_rrd`::

        r = RouteRrdRecorder(path, "r0", every=2)
        r.start(env, driver)                    # once the driver exists: picks the BEV grid, opens the file
        r.after_act(env, agent_input, action)   # after every driver step
        r.finish(env, info)                     # -> path (or r.abort(): nothing is left behind)

    The BEV grid is ``grid``, else the driver's (``driver.grid`` or a student's risk-map grid), else the
    ``tiny`` preset (the panel then shows the plan and the route).
    """

    def __init__(self, path: str | Path, route_id: str = "", every: int = 1, grid: BevGrid | None = None):
        self.path = Path(path)
        self.route_id = route_id or self.path.stem
        self.every = max(1, int(every))
        self.grid = grid
        self.driver: Any = None
        self.writer: RrdWriter | None = None
        self.recorder: ClosedLoopRecorder | None = None

    @property
    def n_frames(self) -> int:
        return self.writer.n_frames if self.writer is not None else 0

    def start(self, env: Any, driver: Any) -> None:
        from riskdistill.evaluation.drivers import driver_bev_grid

        grid = self.grid or driver_bev_grid(driver) or BevGrid.preset("tiny")
        self.grid, self.driver = grid, driver
        self.writer = RrdWriter(self.path, grid=grid, route_id=self.route_id)
        self.recorder = ClosedLoopRecorder(grid, every=self.every, sink=self.writer.log)

    def after_act(self, env: Any, agent_input: Any, action: Any = None) -> None:
        if self.recorder is None:
            raise RuntimeError("RouteRrdRecorder.after_act before start")
        self.recorder.step(env, agent_input, self.driver, action)

    def finish(self, env: Any, info: dict[str, Any] | None = None) -> Path:
        if self.recorder is None or self.writer is None:
            raise RuntimeError("RouteRrdRecorder.finish before start")
        try:
            self.recorder.finish(env)
        except BaseException:
            self.writer.abort()
            raise
        return self.writer.close(info)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


class RouteRrdObserver:
    """A :class:`RouteRrdRecorder` as a route observer (:func:`riskdistill.sim.rollout.run_route`)."""

    def __init__(self, recorder: RouteRrdRecorder):
        self.recorder = recorder

    def on_start(self, env: Any, driver: Any) -> None:
        self.recorder.start(env, driver)

    def on_step(self, env: Any, agent_input: Any, action: Any) -> None:
        self.recorder.after_act(env, agent_input, action)


@dataclass(frozen=True)
class RerunRecording:
    """The recorder factory for closed-loop evaluation (``evaluate_suite(..., recorders=[...])``): a
    :class:`RouteRrdRecorder` per route into ``<out>/rerun/<route_id>.rrd`` (or ``path``, for a single
    route), every ``every``-th simulator step. Picklable, so worker processes make their own recorders."""

    every: int = 2
    path: str | None = None
    key: ClassVar[str] = "rerun"  # the route file's entry: {"path", "every", "frames"}

    def __post_init__(self) -> None:
        if int(self.every) < 1:
            raise ValueError(f"rerun recording: every must be a positive number of steps, got {self.every}")

    def __call__(self, out_dir: Path, route_id: str) -> RouteRrdRecorder:
        path = Path(self.path) if self.path else Path(out_dir) / RERUN_DIR / f"{route_id}.rrd"
        return RouteRrdRecorder(path, route_id, every=self.every)

    def describe(self) -> dict[str, Any]:
        return {"every": int(self.every)}


def record_closed_loop_rrd(
    spec: Any,
    driver_factory: Any,
    path: str | Path,
    grid: BevGrid | None = None,
    every: int = 1,
    observer: Any = None,
) -> Path:
    """Drive one suite route (a :class:`~riskdistill.sim.suites.RouteSpec`) with ``driver_factory`` (a
    driver or a factory, as :func:`riskdistill.sim.rollout.run_route` takes) and write its ``.rrd``.
    ``observer`` (e.g. ``evaluation.rig_observer.RigObserver``) renders the cameras the driver asks for:
    its ``configure(driver.sensors)`` is called once the driver exists. ``grid`` defaults to the student's
    BEV grid for a student driver (see :class:`RouteRrdRecorder`). A failing recording raises (and leaves
    no file)."""
    from riskdistill.sim.env import DrivingEnv
    from riskdistill.sim.rollout import build_driver, run_route
    from riskdistill.sim.scenarios import build_scenario

    instance = build_scenario(spec.scenario, spec.seed, spec.layout or None)
    env = DrivingEnv(observe=observer) if observer is not None else DrivingEnv()
    driver = build_driver(driver_factory, env)
    if observer is not None and hasattr(observer, "configure"):
        observer.configure(getattr(driver, "sensors", None))
    recorder = RouteRrdRecorder(path, spec.route_id, every=every, grid=grid)
    try:
        log = run_route(instance, driver, env=env, observers=[RouteRrdObserver(recorder)])
    except BaseException:
        recorder.abort()
        raise
    info = {
        "scenario": spec.scenario,
        "seed": spec.seed,
        "layout": spec.layout,
        "end": str(log.end),
        "route completion %": f"{log.route_completion_pct:.1f}",
        "infractions": "; ".join(f"{e.kind} at {e.time_s:.1f} s" for e in log.events) or "none",
    }
    return recorder.finish(env, info)


def record_run_route_rrd(run_dir: str | Path, route_id: str, path: str | Path, every: int = 1) -> Path:
    """Drive one route of a closed-loop result folder again, with the folder's driver and variant
    (``eval_config.json``: driver spec, rig shift) on the same scenario instance (``(type, seed)`` and the
    layout from the route file or the suite of ``run.json``), through the evaluator's own route runner, and
    record it. The simulator and the drivers are deterministic, so the recording shows the evaluated
    drive."""
    from riskdistill.evaluation.results import EVAL_CONFIG
    from riskdistill.evaluation.route_runner import run_one_route
    from riskdistill.io import load_json
    from riskdistill.sim.suites import RouteSpec
    from riskdistill.viz.report_data import load_closed_loop_run
    from riskdistill.viz.report_figures import resolve_layout

    run_dir = Path(run_dir)
    run = load_closed_loop_run(run_dir)
    by_id = {o.route_id: o for o in run.routes}
    if route_id not in by_id:
        raise KeyError(f"no route {route_id!r} in {run_dir}; routes: {sorted(by_id)}")
    cfg_path = run_dir / EVAL_CONFIG
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: missing; cannot tell which driver evaluated {run_dir}")
    cfg = load_json(cfg_path)
    o = by_id[route_id]
    spec = RouteSpec(
        route_id=o.route_id, scenario=o.scenario, seed=int(o.seed or 0), layout=resolve_layout(o) or {}
    )
    path = Path(path).resolve()
    recording = RerunRecording(every=every, path=str(path))
    doc = run_one_route(
        spec, 0, str(cfg["driver"]), cfg.get("variant"), path.parent, [recording], cfg.get("driver_options")
    )
    if doc.get("rerun") is None:
        raise RuntimeError(f"recording route {route_id!r} failed: {doc.get('warnings') or doc.get('error')}")
    return path
