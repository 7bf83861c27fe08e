"""Rerun recordings: a recorded route with teacher labels, constructed frames, and a closed-loop route, each
written to an .rrd file and read back with the SDK's reader (entity paths, timelines, row counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from riskdistill.data import RecordedDataset
from riskdistill.geometry import BevGrid
from riskdistill.io import atomic_write_json, atomic_write_text
from riskdistill.sim.suites import RouteSpec
from riskdistill.viz.rerun_log import (
    RerunFrame,
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
