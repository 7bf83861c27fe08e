"""Recording a suite to disk: files and shapes, future trajectories, projection, resume, validation, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from conftest import TINY_EVERY, TINY_HW, make_tiny_suite
from riskdistill.cli import data as data_cli
from riskdistill.data import FORMAT_VERSION, RecordedDataset, record_suite, validate_dataset
from riskdistill.data import format as fmt
from riskdistill.geometry import box3d_corners, project_box_to_image, project_points, wrap_angle
from riskdistill.io import load_json
from riskdistill.sim.suites import RouteSpec, Suite

H, W = TINY_HW
EVERY = TINY_EVERY
CAMS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


def _record(out: Path, suite: Suite | None = None, **kw):
    args = {"image_hw": (H, W), "every_n_steps": EVERY, "workers": 1, "show_progress": False, **kw}
    return record_suite(suite or make_tiny_suite(), "bench2drive", out, **args)


@pytest.fixture(scope="session")
def dataset(tiny_dataset: Path) -> Path:
    """Both routes recorded in parallel by two spawned workers (tests never modify it: they copy it)."""
    return tiny_dataset


def _copy(dataset: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(dataset, dst)
    return dst


# ------------------------------------------------------------------------------------------ layout
def test_recorded_files_counts_and_shapes(dataset: Path) -> None:
    m = load_json(dataset / fmt.MANIFEST)
    assert m["format_version"] == FORMAT_VERSION == 1
    assert m["camera_names"] == list(CAMS) and m["image_hw"] == [H, W]
    assert m["suite"]["name"] == "tiny" and m["rig"]["name"] == "bench2drive"
    assert m["settings"]["every_n_steps"] == EVERY and m["settings"]["jpeg_quality"] == 90
    assert "packages" in m["created"] and "git_commit" in m["created"]
    table = pq.read_table(dataset / fmt.FRAMES)
    assert set(fmt.FRAME_SCHEMA.names) <= set(table.column_names)
    dones = {r: load_json(dataset / fmt.done_rel(r)) for r in ("r0", "r1")}
    n_frames = sum(d["n_frames"] for d in dones.values())
    assert m["counts"]["routes"] == 2 and m["counts"]["frames"] == n_frames == table.num_rows > 20
    assert m["counts"]["images"] == 6 * n_frames and m["failed_routes"] == []
    assert [r["route_id"] for r in m["routes"]] == ["r0", "r1"]
    for d in dones.values():
        assert d["route_log"]["route_end"] and d["route_log"]["route_completion_pct"] > 50
    # every file on disk (but the bookkeeping) is listed with its hash, and nothing else is
    on_disk = {p.relative_to(dataset).as_posix() for p in dataset.rglob("*") if p.is_file()}
    assert on_disk - set(m["files"]) == {fmt.MANIFEST, fmt.RECORDING}
    assert set(m["files"]) <= on_disk

    rows = table.to_pylist()
    assert all(r["step"] % EVERY == 0 for r in rows)
    assert rows[0]["frame_id"] == "r0/00000" and rows[1]["frame_id"] == f"r0/{EVERY:05d}"
    assert rows[3]["image_paths"] == [f"routes/r0/{c}/{3 * EVERY:05d}.jpg" for c in CAMS]
    assert rows[3]["annotation_path"] == f"routes/r0/ann/{3 * EVERY:05d}.npz"
    assert all(np.isfinite(r["action_throttle"]) for r in rows)

    ds = RecordedDataset(dataset)
    assert len(ds) == n_frames
    rec = ds.frame(len(ds) // 2)
    assert "images" not in rec.__dict__ and "annotation" not in rec.__dict__  # lazy
    assert rec.images.shape == (6, H, W, 3) and rec.images.dtype == np.uint8
    a = rec.annotation
    dagger_only = {"expert_in_control"}  # written by DAgger recordings only (test_dagger.py)
    assert set(a) == set(fmt.ANNOTATION_KEY_NAMES) | set(fmt.OPTIONAL_ANNOTATION_KEY_NAMES) - dagger_only
    assert a["expert_path_ego"].shape == (20, 2) and float(a["expert_noise_steer"]) == 0.0
    assert 0.0 <= float(a["expert_speed_mps"]) < 20.0
    n_act = len(a["actor_id"])
    assert n_act > 0 and 0 not in a["actor_id"]  # the ego is never an actor
    assert a["K"].shape == (6, 3, 3) and a["T_ego_from_cam"].shape == (6, 4, 4)
    assert [str(s) for s in a["camera_names"]] == list(CAMS) and a["camera_names"].dtype.kind == "U"
    assert a["actor_center_ego"].shape == (n_act, 3) and a["actor_size_lwh"].shape == (n_act, 3)
    assert a["actor_velocity_ego"].shape == (n_act, 2) and a["actor_visible_px"].shape == (n_act, 6)
    assert a["actor_box2d"].shape == (n_act, 6, 4)
    assert np.array_equal(np.isnan(a["actor_box2d"]).all(axis=2), a["actor_visible_px"] == 0)
    L = len(a["lane_id"])
    assert L > 0 and a["lane_centerline"].shape[:2] == (L, a["lane_n_points"].max())
    assert a["lane_left_boundary"].shape == a["lane_centerline"].shape
    for k in range(L):
        pts = a["lane_centerline"][k, : a["lane_n_points"][k]]
        assert np.all(np.isfinite(pts)) and np.all(np.hypot(pts[:, 0], pts[:, 1]) <= 60.0 + 1e-3)
    assert a["future_xy"].shape == (6, 2) and a["future_valid"].dtype == bool
    assert np.allclose(a["ego_pose_world"], rec.ego_pose_world)
    inp = rec.to_agent_input()
    assert inp.images.shape == (6, H, W, 3) and inp.camera_names == CAMS
    # somewhere on r1 there is a signalized stop line ahead of the ego and lights in range
    states = [
        int(ds.frame(i).annotation["route_next_light_state"])
        for i in range(len(ds))
        if ds.frame(i).route_id == "r1"
    ]
    assert any(s >= 0 for s in states)


def test_privileged_keys_route_paths_releases_and_hazards(dataset: Path) -> None:
    from riskdistill.sim.scenarios import build_scenario

    ds = RecordedDataset(dataset)
    spec = make_tiny_suite().routes[0]  # VehicleTurningRoutePedestrian: a held pedestrian released later
    hazards = set(build_scenario(spec.scenario, spec.seed, spec.layout).hazards)
    assert hazards
    release_in = []
    for i in range(len(ds)):
        f = ds.frame(i)
        a = f.annotation
        n = len(a["actor_id"])
        r = a["route_ahead_ego"]
        assert r.shape == (fmt.ROUTE_AHEAD_POINTS, 2) and r.dtype == np.float32
        assert np.hypot(*r[0]) < 1.0  # starts under the ego's rear axle (it follows its route)
        steps = np.hypot(*np.diff(r, axis=0).T)
        assert np.all(steps <= fmt.ROUTE_AHEAD_STEP_M + 1e-3) and steps[0] > 0.99  # 1 m, then the end repeats
        assert np.all(a["route_ahead_speed_limit_mps"] > 0)
        p = a["actor_path_ego"]
        assert p.shape == (n, fmt.ACTOR_PATH_POINTS, 2) and a["actor_path_step_m"].shape == (n,)
        # a path starts at its actor: where World puts the box centre for that arc length
        d0 = np.hypot(*(p[:, 0] - a["actor_center_ego"][:, :2]).T)
        assert np.all(d0 < 1e-3)
        for key in ("actor_accel_mps2", "actor_release_in_m", "actor_release_speed_mps", "actor_is_hazard"):
            assert a[key].shape == (n,)
        ids = a["actor_id"].tolist()
        assert {int(x) for x, h in zip(ids, a["actor_is_hazard"], strict=True) if h} == hazards & set(
            ids
        ) or (f.route_id != "r0")
        if f.route_id == "r0":
            for h in hazards & set(ids):
                release_in.append(float(a["actor_release_in_m"][ids.index(h)]))
    # the pedestrian waits for its trigger: the distance to it shrinks, then it is released (NaN)
    held = [x for x in release_in if np.isfinite(x)]
    assert len(held) >= 2 and np.all(np.diff(held) <= 1e-6) and np.isnan(release_in[-1])
    assert validate_dataset(dataset, check_hashes=False) == []
    # students never see them: the observation builder reads the calibration only
    from riskdistill.data.torch_dataset import ObservationBuilder

    assert not set(ObservationBuilder.OBS_ANNOTATION_KEYS) & set(fmt.OPTIONAL_ANNOTATION_KEY_NAMES)


def test_data_sets_without_the_privileged_keys_still_validate(dataset: Path, tmp_path: Path) -> None:
    root = _copy(dataset, tmp_path)
    rel = pq.read_table(root / fmt.FRAMES).column("annotation_path").to_pylist()[2]
    with np.load(root / rel) as z:
        arrays = {k: z[k] for k in z.files}
    old = {k: v for k, v in arrays.items() if k not in fmt.OPTIONAL_ANNOTATION_KEY_NAMES}
    np.savez(root / rel, **old)
    problems = validate_dataset(root, check_hashes=False)
    assert problems == []
    bad = dict(arrays, actor_is_hazard=np.zeros(len(arrays["actor_id"]) + 1, dtype=bool))
    np.savez(root / rel, **bad)
    problems = validate_dataset(root, check_hashes=False)
    assert any("actor_is_hazard" in p and "entries for" in p for p in problems)


def test_future_trajectory_equals_later_recorded_poses(dataset: Path) -> None:
    table = pq.read_table(dataset / fmt.FRAMES).to_pylist()
    ds = RecordedDataset(dataset)
    checked = 0
    for route in ("r0", "r1"):
        sim_steps = load_json(dataset / fmt.done_rel(route))["sim_steps"]
        pose = {
            r["step"]: np.array([r["ego_x_m"], r["ego_y_m"], r["ego_yaw_rad"]])
            for r in table
            if r["route_id"] == route
        }
        for i, r in enumerate(table):
            if r["route_id"] != route:
                continue
            a = ds.frame(i).annotation
            x0, y0, yaw0 = pose[r["step"]]
            c, s = np.cos(yaw0), np.sin(yaw0)
            for j in range(6):
                step = r["step"] + 5 * (j + 1)  # 0.5 s at 10 Hz
                assert bool(a["future_valid"][j]) == (step <= sim_steps)
                if step in pose:
                    dx, dy = pose[step][:2] - (x0, y0)
                    want = np.array([c * dx + s * dy, -s * dx + c * dy])
                    np.testing.assert_allclose(a["future_xy"][j], want, atol=1e-3)
                    assert abs(wrap_angle(a["future_yaw"][j] - (pose[step][2] - yaw0))) < 1e-4
                    checked += 1
            assert np.all(np.isfinite(a["future_xy"]))
            last = np.flatnonzero(a["future_valid"])
            if len(last) < 6:  # padding holds the last valid waypoint (or the current pose)
                hold = a["future_xy"][last[-1]] if len(last) else np.zeros(2)
                assert np.allclose(a["future_xy"][len(last) :], hold)
    assert checked > 100
    # the route end: the last frame of each route misses (part of) its future
    for route in ("r0", "r1"):
        last_i = max(i for i, r in enumerate(table) if r["route_id"] == route)
        assert not ds.frame(last_i).annotation["future_valid"].all()


def test_visible_actors_project_into_their_2d_boxes(dataset: Path) -> None:
    ds = RecordedDataset(dataset)
    centred = inside = 0
    for i in range(0, len(ds), 2):
        a = ds.frame(i).annotation
        for c in range(6):
            T_cam_from_ego = np.linalg.inv(a["T_ego_from_cam"][c])
            for k in np.flatnonzero(a["actor_visible_px"][:, c] > 0):
                box = a["actor_box2d"][k, c]
                corners = box3d_corners(
                    a["actor_center_ego"][k], a["actor_size_lwh"][k], a["actor_yaw_ego"][k]
                )
                full = project_box_to_image(corners, a["K"][c], T_cam_from_ego, (W, H))
                assert full is not None
                # the mask of an actor lies inside the projection of its 3D box
                assert box[0] >= full[0] - 1 and box[1] >= full[1] - 1, (i, c, k)
                assert box[2] <= full[2] + 1 and box[3] <= full[3] + 1, (i, c, k)
                area = (full[2] - full[0]) * (full[3] - full[1])
                untruncated = full[0] > 0 and full[1] > 0 and full[2] < W and full[3] < H
                if untruncated and a["actor_visible_px"][k, c] >= max(20, 0.6 * area):
                    uv, _, ok = project_points(a["actor_center_ego"][k][None], a["K"][c], T_cam_from_ego)
                    assert ok[0]
                    u, v = uv[0]
                    centred += 1
                    inside += box[0] - 0.5 <= u <= box[2] + 0.5 and box[1] - 0.5 <= v <= box[3] + 0.5
    assert centred >= 10 and inside == centred


# ------------------------------------------------------------------------------------------ resume
def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for p in root.rglob("*")
        if p.is_file()
    }


def test_resume_after_a_kill_keeps_finished_routes_and_redoes_half_written_ones(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    first = _record(out, limit=1, max_steps=80)
    assert first.recorded == ["r0"] and first.n_routes == 1
    assert load_json(out / fmt.MANIFEST)["counts"]["routes"] == 1
    r0 = _snapshot(out / "routes" / "r0")
    # a run killed in the middle of route r1: some files, no marker
    half = out / "routes" / "r1"
    (half / "CAM_FRONT").mkdir(parents=True)
    (half / "CAM_FRONT" / "00000.jpg").write_bytes(b"\xff\xd8 truncated")
    (half / "CAM_FRONT" / "99999.jpg").write_bytes(b"stale")
    (half / "ann").mkdir()
    (half / "ann" / ".00000.npz.tmp").write_bytes(b"PK half")

    second = _record(out, max_steps=80)
    assert second.skipped == ["r0"] and second.recorded == ["r1"] and second.failed == []
    assert _snapshot(out / "routes" / "r0") == r0  # untouched: same bytes, same mtimes
    assert (half / fmt.DONE).is_file() and not (half / "CAM_FRONT" / "99999.jpg").exists()
    assert not list(half.rglob("*.tmp"))
    m = load_json(out / fmt.MANIFEST)
    done = load_json(half / fmt.DONE)
    assert m["counts"]["routes"] == 2 and m["counts"]["frames"] == first.n_frames + done["n_frames"]
    assert validate_dataset(out) == []
    # a third run has nothing left to do
    before = _snapshot(out / "routes")
    third = _record(out, max_steps=80)
    assert third.recorded == [] and sorted(third.skipped) == ["r0", "r1"]
    assert _snapshot(out / "routes") == before


def test_resume_with_other_settings_is_refused(dataset: Path, tmp_path: Path) -> None:
    out = _copy(dataset, tmp_path)
    with pytest.raises(ValueError, match=r"settings\.jpeg_quality 90 != 20"):
        _record(out, jpeg_quality=20)
    with pytest.raises(ValueError, match="rig"):
        _record(out, image_hw=(32, 88))


def test_a_route_that_cannot_be_built_is_reported_in_the_manifest(tmp_path: Path) -> None:
    bad = RouteSpec(route_id="bad", scenario="PedestrianCrossing", seed=1, layout={"lanes_per_direction": 99})
    res = _record(tmp_path / "ds", suite=Suite(name="broken", routes=[bad]))
    assert res.recorded == [] and [f["route_id"] for f in res.failed] == ["bad"]
    m = load_json(tmp_path / "ds" / fmt.MANIFEST)
    assert m["counts"]["failed_routes"] == 1 and m["counts"]["frames"] == 0
    (f,) = m["failed_routes"]
    assert f["route_id"] == "bad" and f["stage"] == "build" and "lanes_per_direction" in f["error"]
    assert not (tmp_path / "ds" / "routes" / "bad").exists()


# ------------------------------------------------------------------------------------------ validation
def test_validate_passes_on_a_good_data_set(dataset: Path) -> None:
    assert validate_dataset(dataset) == []


def test_validate_catches_a_corrupted_image_and_a_deleted_annotation(dataset: Path, tmp_path: Path) -> None:
    out = _copy(dataset, tmp_path)
    img = "routes/r1/CAM_BACK_LEFT/00010.jpg"
    data = bytearray((out / img).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / img).write_bytes(bytes(data))
    ann = "routes/r0/ann/00005.npz"
    (out / ann).unlink()
    problems = validate_dataset(out)
    assert any(img in p and "sha256" in p for p in problems), problems
    assert any(ann in p and "missing" in p for p in problems), problems
    assert len(problems) == 2, problems


def test_validate_catches_bad_manifest_schema_and_calibration(dataset: Path, tmp_path: Path) -> None:
    assert "manifest.json: missing" in validate_dataset(tmp_path)[0]
    out = _copy(dataset, tmp_path)
    m = load_json(out / fmt.MANIFEST)
    (out / fmt.MANIFEST).write_text(json.dumps({**m, "format_version": 99}))
    assert "format_version 99 is unknown" in validate_dataset(out)[0]
    m["rig"]["cameras"][3]["z_m"] = 7.0
    (out / fmt.MANIFEST).write_text(json.dumps(m))
    problems = validate_dataset(out, check_hashes=False, deep=False)
    assert any("CAM_BACK" in p and "camera height 7.000 m" in p for p in problems), problems
    # a frames.parquet without a column
    out2 = tmp_path / "c2"
    shutil.copytree(dataset, out2)
    pq.write_table(pq.read_table(out2 / fmt.FRAMES).drop(["ego_yaw_rad"]), out2 / fmt.FRAMES)
    problems = validate_dataset(out2, check_hashes=False)
    assert any("frames.parquet: missing column(s) ['ego_yaw_rad']" in p for p in problems), problems


# ------------------------------------------------------------------------------------------ CLI
def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(data_cli.app, name="data")
    sim = typer.Typer()
    sim.command("record")(data_cli.record)
    sim.command("noop")(lambda: None)
    app.add_typer(sim, name="sim")
    return app


def test_cli_info_and_validate(dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(_cli(), ["data", "validate", str(dataset)])
    assert res.exit_code == 0 and "OK" in res.output, res.output
    res = runner.invoke(_cli(), ["data", "info", str(dataset)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "VehicleTurningRoutePedestrian" in res.output and "CAM_BACK_RIGHT" in res.output
    assert str(load_json(dataset / fmt.MANIFEST)["counts"]["frames"]) in res.output
    out = _copy(dataset, tmp_path)
    (out / "routes/r0/CAM_FRONT/00000.jpg").unlink()
    res = runner.invoke(_cli(), ["data", "validate", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 1 and "routes/r0/CAM_FRONT/00000.jpg" in res.output


def test_cli_record_and_clear_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(_cli(), ["sim", "record", "--suite", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "train" in res.output and "bench" in res.output, res.output
    suite_file = tmp_path / "suite.json"
    suite_file.write_text(json.dumps(Suite(name="one", routes=make_tiny_suite().routes[:1]).to_dict()))
    res = runner.invoke(
        _cli(), ["sim", "record", "--suite", str(suite_file), "--rig", "nope", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "bench2drive" in res.output and "nuscenes" in res.output, res.output
    out = tmp_path / "cli_ds"
    args = ["sim", "record", "--suite", str(suite_file), "--out", str(out), "--workers", "1"]
    args += ["--image-h", "32", "--image-w", "88", "--every", "5", "--max-steps", "12", "--bench2drive-jpeg"]
    res = runner.invoke(_cli(), args)
    assert res.exit_code == 0, res.output
    m = load_json(out / fmt.MANIFEST)
    assert m["settings"]["jpeg_quality"] == 20 and m["counts"]["frames"] == 3 and m["image_hw"] == [32, 88]
    assert validate_dataset(out) == []


def test_index_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    from riskdistill.data.storage import DatasetError, resolve_inside

    (tmp_path / "a").mkdir()
    assert resolve_inside(tmp_path, "a/x.jpg", "image_paths", "frame f") == (tmp_path / "a/x.jpg").resolve()
    for bad in ("../secret.jpg", "/etc/passwd", "a/../../x"):
        with pytest.raises(DatasetError, match=r"image_paths.*outside the data set root"):
            resolve_inside(tmp_path, bad, "image_paths", "frame f")
