"""Rerun recordings: a recorded route with teacher labels, constructed frames, and a closed-loop route, each
written to an .rrd file and read back with the SDK's reader (entity paths, timelines, row counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from riskdistill.contracts.agent import Action, AgentInput, SensorRequest
from riskdistill.data import RecordedDataset
from riskdistill.geometry import BevGrid
from riskdistill.io import atomic_write_json, atomic_write_text
from riskdistill.sim.suites import RouteSpec
from riskdistill.viz.rerun_log import (
    RerunFrame,
    RerunRecording,
    log_dataset_rrd,
    log_route_rrd,
    record_closed_loop_rrd,
)

rerun = pytest.importorskip("rerun")
from rerun.chunk import RrdReader  # noqa: E402


def _chunks(path: Path) -> dict[str, list]:
    """entity path -> its (non-empty) chunks of the first recording in ``path``."""
    out: dict[str, list] = {}
    for c in RrdReader(path).stream().to_chunks():
        if not c.is_empty:
            out.setdefault(c.entity_path, []).append(c)
    return out


def _rows(chunks: list) -> int:
    return sum(c.num_rows for c in chunks)


@pytest.fixture(scope="module")
def labels(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Oracle labels for route r0 only: maps and records."""
    from riskdistill.teacher import OracleTeacher, rasterise_risk, save_risk_map

    out = tmp_path_factory.mktemp("labels")
    ds, grid, teacher = RecordedDataset(tiny_dataset), BevGrid.preset("tiny"), OracleTeacher()
    for i in range(len(ds)):
        fr = ds.frame(i)
        if fr.route_id != "r0":
            continue
        label = teacher.label(fr)
        ann = fr.annotation
        risk_of = {o.object_id: o.risk for o in label.objects}
        risk = np.array([risk_of.get(int(a), 0.0) for a in ann["actor_id"]])
        m = rasterise_risk(
            ann["actor_center_ego"][:, :2],
            ann["actor_size_lwh"][:, :2],
            ann["actor_yaw_ego"],
            ann["actor_velocity_ego"],
            risk,
            grid,
        )
        save_risk_map(out, fr.frame_id, m, grid)
        atomic_write_text(out / "records" / f"{fr.frame_id}.json", label.model_dump_json())
    return out


def test_dataset_route_rrd(tiny_dataset: Path, labels: Path, tmp_path: Path) -> None:
    ds = RecordedDataset(tiny_dataset)
    n = sum(1 for r in ds.table.column("route_id").to_pylist() if r == "r0")
    path = log_dataset_rrd(tiny_dataset, "r0", labels, tmp_path / "sub" / "r0.rrd")
    assert path == tmp_path / "sub" / "r0.rrd" and path.stat().st_size > 10_000
    assert not list(path.parent.glob(".*tmp"))  # written atomically, no temp file left
    chunks = _chunks(path)
    for cam in ds.camera_names:
        assert _rows(chunks[f"/cameras/{cam}"]) == n
    for entity in (
        "/bev/map",
        "/bev/risk/teacher",
        "/risk_values/teacher",
        "/bev/trajectory/expert",
        "/teacher/reasons",
        "/ego/speed_mps",
    ):
        assert entity in chunks, f"{entity} missing; have {sorted(chunks)}"
    assert _rows(chunks["/bev/risk/teacher"]) == n and _rows(chunks["/teacher/reasons"]) == n
    assert "/bev/risk/predicted" not in chunks  # no student given
    assert "/route" in chunks and chunks["/route"][0].is_static
    assert "sim_time" in chunks["/cameras/CAM_FRONT"][0].timeline_names
    assert "frame" in chunks["/cameras/CAM_FRONT"][0].timeline_names
    # the teacher's reasons made it into the text documents
    text = str(chunks["/teacher/reasons"][0].to_record_batch().to_pydict())
    assert "risk" in text and "ego" in text


def test_dataset_route_without_labels_and_unknown_route(tiny_dataset: Path, tmp_path: Path) -> None:
    path = log_dataset_rrd(tiny_dataset, "r1", None, tmp_path / "r1.rrd")
    chunks = _chunks(path)
    assert "/cameras/CAM_FRONT" in chunks and "/bev/map" in chunks and "/bev/trajectory/expert" in chunks
    assert "/bev/risk/teacher" not in chunks and "/teacher/reasons" not in chunks
    with pytest.raises(KeyError, match=r"no route 'nope'.*\['r0', 'r1'\]"):
        log_dataset_rrd(tiny_dataset, "nope", None, tmp_path / "x.rrd")
    assert not (tmp_path / "x.rrd").exists()


def test_constructed_frames(tmp_path: Path) -> None:
    grid = BevGrid.preset("tiny")
    rng = np.random.default_rng(0)
    frames = [
        RerunFrame(
            time_s=0.5 * k,
            step=k,
            images=rng.integers(0, 255, (2, 16, 32, 3), dtype=np.uint8),
            camera_names=("CAM_FRONT", "CAM BACK/odd"),
            risk_teacher=rng.random(grid.shape).astype(np.float32),
            risk_predicted=rng.random((1, *grid.shape)).astype(np.float32),
            planned_xy=np.stack([np.arange(1, 7) * 2.0, np.zeros(6)], axis=1),
            expert_xy=np.stack([np.arange(1, 7) * 2.1, np.full(6, 0.3)], axis=1),
            reasons=["1. car crossing the ego path in 2.0 s"],
            events=["collisions_vehicle: boom"] if k == 2 else [],
            scalars={"speed_mps": 3.0 + k, "bad": float("nan")},
        )
        for k in range(4)
    ]
    path = log_route_rrd(tmp_path / "c.rrd", frames, grid=grid, route_id="c0", info={"scenario": "X"})
    chunks = _chunks(path)
    for entity in (
        "/bev/risk/teacher",
        "/bev/risk/predicted",
        "/risk_values/predicted",
        "/bev/trajectory/planned",
        "/bev/trajectory/expert",
        "/risk/predicted_max",
        "/events",
    ):
        assert entity in chunks, f"{entity} missing; have {sorted(chunks)}"
    assert _rows(chunks["/bev/risk/predicted"]) == 4 and _rows(chunks["/events"]) == 1
    assert "/ego/bad" not in chunks  # NaN scalars are skipped
    cams = [e for e in chunks if e.startswith("/cameras/")]
    assert len(cams) == 2 and "/cameras/CAM_FRONT" in cams
    # a map off the grid is a clear error
    bad = [RerunFrame(time_s=0.0, risk_teacher=np.zeros((3, 3)))]
    with pytest.raises(ValueError, match="does not match the BEV grid"):
        log_route_rrd(tmp_path / "bad.rrd", bad, grid=grid)
    assert not (tmp_path / "bad.rrd").exists()


def test_closed_loop_route(tmp_path: Path) -> None:
    """The expert driving a short route again, with a top-down view every 10th step."""
    from riskdistill.sim.expert import ExpertDriver

    spec = RouteSpec(
        route_id="r0", scenario="VehicleTurningRoutePedestrian", seed=7, layout={"family": "junction4"}
    )
    path = record_closed_loop_rrd(
        spec, ExpertDriver, tmp_path / "cl.rrd", grid=BevGrid.preset("tiny"), every=10
    )
    chunks = _chunks(path)
    assert "/topdown" in chunks and "/ego/speed_mps" in chunks and "/route" in chunks
    n = _rows(chunks["/topdown"])
    assert 10 <= n <= 40  # a ~20 s route at 10 Hz, every 10th step
    assert "/cameras/CAM_FRONT" not in chunks  # the expert asks for no cameras


def test_cli_rerun(tiny_dataset: Path, labels: Path, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from riskdistill.cli.report import rerun as rerun_cmd

    app = typer.Typer()
    app.command("rerun")(rerun_cmd)
    app.command("other")(lambda: None)
    runner = CliRunner()
    out = tmp_path / "r0.rrd"
    res = runner.invoke(
        app, ["rerun", str(tiny_dataset), "--route", "r0", "--labels", str(labels), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 10_000 and "rerun " in res.output
    res = runner.invoke(app, ["rerun", str(tiny_dataset), "--route", "zz", "--out", str(out)])
    assert res.exit_code == 2 and "no route 'zz'" in res.output


def test_rerun_evaluated_route(tmp_path: Path) -> None:
    """An evaluated route of a closed-loop folder, driven again with the folder's driver (the expert)."""
    import typer
    from typer.testing import CliRunner

    from riskdistill.cli.report import rerun_route
    from riskdistill.evaluation.closed_loop import evaluate_suite
    from riskdistill.io import load_json
    from riskdistill.sim.suites import Suite

    spec = RouteSpec(
        route_id="t0", scenario="OppositeVehicleRunningRedLight", seed=7, layout={"family": "junction_t"}
    )
    suite_file = tmp_path / "suite.json"
    suite = Suite(name="one", routes=[spec])
    atomic_write_text(suite_file, suite.model_dump_json())
    run = tmp_path / "run"
    evaluate_suite(suite, "expert", run, show_progress=False)
    atomic_write_json(run / "run.json", {"config": {"suite": str(suite_file)}})
    app = typer.Typer()
    app.command("rerun-route")(rerun_route)
    app.command("other")(lambda: None)
    runner = CliRunner()
    out = tmp_path / "t0.rrd"
    res = runner.invoke(app, ["rerun-route", str(run), "--route", "t0", "--out", str(out), "--every", "20"])
    assert res.exit_code == 0, res.output
    chunks = _chunks(out)
    assert "/topdown" in chunks and "/route" in chunks
    # the same drive as evaluated: as many simulated seconds
    info = str(chunks["/route"][0].to_record_batch().to_pydict())
    assert "junction_t" in info and "Completed" in info
    duration = load_json(run / "routes" / "t0.json")["duration_game_s"]
    n = _rows(chunks["/topdown"])
    assert n == pytest.approx(duration * 10 / 20, abs=2)
    res = runner.invoke(app, ["rerun-route", str(run), "--route", "zz", "--out", str(out)])
    assert res.exit_code == 2 and "no route 'zz'" in res.output


# ------------------------------------------------------------------------------------------ while evaluating
SHORT = RouteSpec(route_id="short_accident", scenario="Accident", seed=3, layout={"family": "straight"})
GRID = BevGrid(x_min_m=-8.0, x_max_m=24.0, y_min_m=-16.0, y_max_m=16.0, resolution_m=1.0)
VOLATILE = {
    "duration_system_s",
    "rerun",
    "warnings",
}  # what may differ between a run with and without recording


class CameraDriver:
    """Asks for the bench2drive rig at 32x88, steers at the target point and predicts a constant risk map."""

    sensors = SensorRequest("bench2drive", (32, 88))
    grid = GRID

    def reset(self) -> None:
        self.last_outputs: dict[str, np.ndarray] = {}

    def act(self, agent_input: AgentInput) -> Action:
        tp = agent_input.target_point_ego / np.linalg.norm(agent_input.target_point_ego)
        risk = np.zeros(GRID.shape, dtype=np.float32)
        risk[10:14, :] = 0.7
        self.last_outputs = {"risk": risk}
        return Action(waypoints_ego=np.outer(np.arange(1, 7) * 3.0, tp))


def make_camera_driver() -> CameraDriver:
    return CameraDriver()


def _times_s(chunks: list) -> list[float]:
    """The ``sim_time`` values (seconds) of the rows of ``chunks``."""
    import pyarrow as pa

    out: list[float] = []
    for c in chunks:
        col = c.to_record_batch().column("sim_time")
        out += [ns / 1e9 for ns in col.cast(pa.int64()).to_pylist()]
    return sorted(out)


def _doc(out: Path) -> dict:
    from riskdistill.io import load_json

    return load_json(out / "routes" / f"{SHORT.route_id}.json")


def _stable(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in VOLATILE}


def test_evaluate_suite_records_each_route_without_changing_results(tmp_path: Path) -> None:
    """The expert on one short route with and without ``rerun_every``: same results; the recording has the
    top-down view every 5th step, the route ahead, the expert's notes and the outcome; a resume neither
    re-records nor minds the option."""
    from riskdistill.evaluation.closed_loop import evaluate_suite
    from riskdistill.io import load_json
    from riskdistill.sim.suites import Suite

    one = Suite(name="one", routes=[SHORT])
    plain_results, plain_summary = evaluate_suite(one, "expert", tmp_path / "plain", show_progress=False)
    results, summary = evaluate_suite(
        one, "expert", tmp_path / "rec", show_progress=False, recorders=[RerunRecording(every=5)]
    )
    assert results[0].route_end == plain_results[0].route_end and results[0].events == plain_results[0].events
    plain, doc = _doc(tmp_path / "plain"), _doc(tmp_path / "rec")
    assert "rerun" not in plain and not (tmp_path / "plain" / "rerun").exists()
    assert _stable(doc) == _stable(plain)  # trajectory, events, scores: identical
    assert summary == plain_summary
    assert load_json(tmp_path / "rec" / "eval_config.json") == load_json(
        tmp_path / "plain" / "eval_config.json"
    )

    path = tmp_path / "rec" / "rerun" / f"{SHORT.route_id}.rrd"
    assert doc["rerun"]["path"] == f"rerun/{SHORT.route_id}.rrd" and doc["rerun"]["every"] == 5
    assert "warnings" not in doc and path.stat().st_size > 10_000
    assert not list(path.parent.glob(".*tmp"))
    chunks = _chunks(path)
    for entity in (
        "/topdown",
        "/bev/background",
        "/bev/trajectory/route",
        "/driver/notes",
        "/ego/speed_mps",
        "/ego/progress_m",
        "/route",
    ):
        assert entity in chunks, f"{entity} missing; have {sorted(chunks)}"
    assert not any(e.startswith("/cameras/") for e in chunks)  # the expert sees no cameras
    assert "/bev/risk/predicted" not in chunks and "/bev/trajectory/planned" not in chunks  # nor plans
    # one top-down frame on every 5th driver step: steps 0, 5, 10, ... of a drive of duration / 0.1 s steps
    n_steps = round(doc["duration_game_s"] / 0.1)
    times = _times_s(chunks["/topdown"])
    assert len(times) == -(-n_steps // 5)
    # plus a frame for each step between those with a new event (the min-speed checkpoints)
    assert len(times) < doc["rerun"]["frames"] <= len(times) + len(doc["events"])
    assert np.allclose(times, 0.5 * np.arange(len(times)), atol=1e-6)
    info = str(chunks["/route"][0].to_record_batch().to_pydict())
    assert doc["status"] in info and "Accident" in info and "straight" in info

    # a resume runs nothing, so nothing is recorded again; recorders are not part of the resume key
    mtime = path.stat().st_mtime_ns
    evaluate_suite(one, "expert", tmp_path / "rec", show_progress=False, recorders=[RerunRecording(every=2)])
    evaluate_suite(one, "expert", tmp_path / "rec", show_progress=False)
    assert path.stat().st_mtime_ns == mtime and _doc(tmp_path / "rec") == doc
    with pytest.raises(ValueError, match="every must be a positive number"):
        RerunRecording(every=0)


def test_camera_driver_recording_has_its_cameras_risk_and_plan(tmp_path: Path) -> None:
    """A driver with cameras and a risk head: camera frames exactly on every 4th of its steps, on the same
    ``sim_time`` as its path-risk series; its predicted risk map on its own grid; its plan."""
    from riskdistill.evaluation.closed_loop import evaluate_suite
    from riskdistill.evaluation.generalisation import EvalVariant
    from riskdistill.sim.suites import Suite

    variant = EvalVariant(route_timeout_s=2.5, rig_shift="drop-CAM_BACK")
    evaluate_suite(
        Suite(name="one", routes=[SHORT]),
        f"{__name__}:make_camera_driver",
        tmp_path,
        show_progress=False,
        variant=variant,
        recorders=[RerunRecording(every=4)],
    )
    doc = _doc(tmp_path)
    steps_t = doc["path_risk"]["time_s"]  # one entry per driver step
    assert len(steps_t) >= 20
    chunks = _chunks(tmp_path / "rerun" / f"{SHORT.route_id}.rrd")
    cams = sorted(e for e in chunks if e.startswith("/cameras/"))
    assert len(cams) == 6 and "/cameras/CAM_BACK" in cams  # the dropped camera is logged black, as seen
    for cam in cams:
        assert _rows(chunks[cam]) == -(-len(steps_t) // 4)
        assert np.allclose(_times_s(chunks[cam]), steps_t[::4], atol=1e-6)
    for entity in ("/bev/risk/predicted", "/risk_values/predicted", "/bev/trajectory/planned", "/topdown"):
        assert _rows(chunks[entity]) == -(-len(steps_t) // 4), entity
    info = str(chunks["/route"][0].to_record_batch().to_pydict())
    assert "'resolution_m': 1.0" in info  # the driver's own grid (not the tiny preset's)


def test_a_failing_recording_keeps_the_route_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from riskdistill.evaluation.closed_loop import evaluate_suite
    from riskdistill.evaluation.generalisation import EvalVariant
    from riskdistill.sim.suites import Suite
    from riskdistill.viz import rerun_log

    one, variant = Suite(name="one", routes=[SHORT]), EvalVariant(route_timeout_s=2.0)
    evaluate_suite(one, "expert", tmp_path / "plain", show_progress=False, variant=variant)
    calls = {"n": 0}

    def broken_step(self: object, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")

    monkeypatch.setattr(rerun_log.ClosedLoopRecorder, "step", broken_step)
    evaluate_suite(
        one, "expert", tmp_path / "rec", show_progress=False, variant=variant, recorders=[RerunRecording(1)]
    )
    doc = _doc(tmp_path / "rec")
    assert calls["n"] == 3  # dropped after the failure: no further calls
    assert _stable(doc) == _stable(_doc(tmp_path / "plain"))
    assert doc["rerun"] is None and len(doc["warnings"]) == 1
    assert "recording a step" in doc["warnings"][0] and "disk full" in doc["warnings"][0]
    assert list((tmp_path / "rec" / "rerun").iterdir()) == []  # no half-written file, no temporary file


def test_cli_closed_loop_rerun(tmp_path: Path) -> None:
    from conftest import closed_loop_cli

    out = closed_loop_cli(tmp_path, SHORT, "--route-timeout", "2", "--rerun", "--rerun-every", "10")
    path = out / "rerun" / f"{SHORT.route_id}.rrd"
    assert path.is_file()
    n_steps = round(_doc(out)["duration_game_s"] / 0.1)  # ~2 s until the capped timeout
    assert _rows(_chunks(path)["/topdown"]) == -(-n_steps // 10) >= 2  # steps 0, 10, ...


def test_experiment_records_the_nominal_rig_only(tmp_path: Path) -> None:
    """``EvalPlan.rerun`` (on by default, every 2nd step): the pipeline's nominal closed-loop runs write
    recordings, the shifted-rig runs do not."""
    from rich.console import Console

    from riskdistill.experiment.config import EvalPlan, experiment_config
    from riskdistill.experiment.pipeline import Pipeline
    from riskdistill.io import load_json

    assert EvalPlan().rerun is True and EvalPlan().rerun_every == 2
    cfg = experiment_config("quick", eval={"closed_loop_routes": 1, "max_route_steps": 10}, workers=1)
    pipe = Pipeline(cfg, tmp_path, Console(quiet=True), show_progress=False)
    nominal = Path(pipe.closed_loop("rsd", 0, "expert", None)["path"])
    shifted = Path(pipe.closed_loop("rsd", 0, "expert", "pitch-3deg")["path"])
    (rrd,) = list((nominal / "rerun").glob("*.rrd"))
    n_steps = round(load_json(nominal / "routes" / f"{rrd.stem}.json")["duration_game_s"] / 0.1)
    assert _rows(_chunks(rrd)["/topdown"]) == -(-n_steps // 2) >= 5  # ~10 steps, every 2nd
    assert not (shifted / "rerun").exists()
    off = experiment_config(
        "quick", eval={"closed_loop_routes": 1, "max_route_steps": 10, "rerun": False}, workers=1
    )
    off_dir = Path(
        Pipeline(off, tmp_path / "off", Console(quiet=True), False).closed_loop("rsd", 0, "expert", None)[
            "path"
        ]
    )
    assert not (off_dir / "rerun").exists()


# ------------------------------------------------------------------------------------------ boxes and layout
def _blueprint_views(path: Path) -> list[dict]:
    """The default blueprint's views: class, display name, origin and contents query."""
    reader = RrdReader(path)
    stores = reader.blueprints()
    assert len(stores) == 1, "one default blueprint"
    by_entity: dict[str, dict] = {}
    for c in reader.stream(store=stores[0]).to_chunks():
        d = c.to_record_batch().to_pydict()
        if c.entity_path.startswith("/view/"):
            view = by_entity.setdefault(c.entity_path.removesuffix("/ViewContents"), {})
            for key, name in (
                ("ViewBlueprint:class_identifier", "class"),
                ("ViewBlueprint:display_name", "name"),
                ("ViewBlueprint:space_origin", "origin"),
                ("ViewContents:query", "contents"),
            ):
                if key in d and d[key][0] is not None:  # paths without their leading "/"
                    v = [str(q).replace("/", "", 1) if "/" in str(q)[:3] else str(q) for q in d[key][0]]
                    view[name] = v if name == "contents" else v[0]
    return list(by_entity.values())


def _column(chunks: list, name: str) -> list:
    out = []
    for c in chunks:
        out += c.to_record_batch().to_pydict()[name]
    return out


def test_recorded_route_boxes_and_blueprint(tiny_dataset: Path, labels: Path, tmp_path: Path) -> None:
    """Actors as boxes in the BEV and 3-D views at the annotation's poses; the blueprint puts the teacher's
    risk map next to the student's, the cameras above them and the 3-D scene beside them."""
    from riskdistill.viz.rerun_scene import boxes_from_annotation

    ds = RecordedDataset(tiny_dataset)
    frames = [ds.frame(i) for i in range(len(ds)) if ds.frame(i).route_id == "r0"]
    grid = BevGrid.preset("tiny")
    predictor = lambda rec: (np.array([[2.0, 0.0], [4.0, 0.1]]), np.full(grid.shape, 0.3))  # noqa: E731
    path = log_dataset_rrd(tiny_dataset, "r0", labels, tmp_path / "r0.rrd", predictor=predictor)
    chunks = _chunks(path)
    assert _rows(chunks["/scene/actors"]) == _rows(chunks["/bev/actors"]) == len(frames)
    assert chunks["/scene/ego"][0].is_static and chunks["/bev/ego"][0].is_static
    assert "/scene/trajectory/planned" in chunks and "/scene/trajectory/expert" in chunks
    # the 3-D boxes are the annotation's actors: centres, half sizes, one per actor, frame by frame
    centers = _column(chunks["/scene/actors"], "Boxes3D:centers")
    half = _column(chunks["/scene/actors"], "Boxes3D:half_sizes")
    strips = _column(chunks["/bev/actors"], "LineStrips2D:strips")
    for rec, c, h, s in zip(frames, centers, half, strips, strict=True):
        boxes = boxes_from_annotation(rec.annotation)
        np.testing.assert_allclose(np.asarray(c), boxes.centers_ego, atol=1e-4)
        np.testing.assert_allclose(np.asarray(h), boxes.sizes_lwh / 2, atol=1e-4)
        assert len(s) == len(boxes) and all(len(p) == 5 for p in s)  # closed outlines
    # the outline of an actor ahead and to the left sits above and left of the ego on the panel
    ann = frames[0].annotation
    k = int(
        np.argmin(np.where(ann["actor_center_ego"][:, 0] > 3, np.abs(ann["actor_center_ego"][:, 1]), 1e9))
    )
    poly = np.asarray(strips[0][k])
    from riskdistill.viz.rerun_log import PANEL_PX
    from riskdistill.viz.risk import ego_to_px, panel_size

    want = ego_to_px(grid, ann["actor_center_ego"][k : k + 1, :2], panel_size(grid, PANEL_PX))[0]
    np.testing.assert_allclose(poly[:4].mean(axis=0), want, atol=0.5)

    views = {v["name"]: v for v in _blueprint_views(path)}
    for cam in ds.camera_names:
        assert views[cam]["origin"] == f"cameras/{cam}" and views[cam]["class"] == "2D"
    teacher, student = views["BEV · teacher risk"], views["BEV · student risk"]
    assert teacher["origin"] == student["origin"] == "bev"
    assert "- bev/risk/predicted" in teacher["contents"] and "- bev/risk/teacher" not in teacher["contents"]
    assert "- bev/risk/teacher" in student["contents"] and "- bev/risk/predicted" not in student["contents"]
    assert (
        views["3D · actors and plan"]["class"] == "3D" and views["3D · actors and plan"]["origin"] == "scene"
    )
    assert {"speed and risk", "events", "route", "teacher reasons"} <= set(views)


def test_closed_loop_boxes_and_blueprint(tmp_path: Path) -> None:
    from riskdistill.sim.expert import ExpertDriver
    from riskdistill.sim.scenarios import build_scenario

    spec = RouteSpec(
        route_id="r0", scenario="VehicleTurningRoutePedestrian", seed=7, layout={"family": "junction4"}
    )
    path = record_closed_loop_rrd(
        spec, ExpertDriver, tmp_path / "cl.rrd", grid=BevGrid.preset("tiny"), every=10
    )
    chunks = _chunks(path)
    n = _rows(chunks["/topdown"])
    assert _rows(chunks["/scene/actors"]) == _rows(chunks["/bev/actors"]) == n
    n_actors = build_scenario(spec.scenario, spec.seed, spec.layout).world.actors.n - 1
    assert len(_column(chunks["/scene/actors"], "Boxes3D:centers")[0]) == n_actors  # all but the ego
    labels = _column(chunks["/scene/actors"], "Boxes3D:labels")[0]
    assert any(lb.startswith("pedestrian #") for lb in labels)  # the scenario's pedestrian
    views = {v["name"]: v for v in _blueprint_views(path)}
    assert {"BEV", "3D · actors and plan", "top-down", "speed and risk", "events", "route"} <= set(views)
    assert "BEV · teacher risk" not in views  # no labels in closed loop
