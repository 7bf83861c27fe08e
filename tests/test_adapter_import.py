"""Importing real data into the recorded format: Bench2Drive clips and nuScenes scenes exported from a
recorded route come back as a valid data set with the original poses, futures, actors and calibration."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_HW
from riskdistill.contracts.rig import load_rig, resize_rig
from riskdistill.data import RecordedDataset, validate_dataset
from riskdistill.data.adapters import DataError, export_bench2drive_clip, export_nuscenes_scene
from riskdistill.data.adapters.import_bench2drive import import_bench2drive
from riskdistill.data.adapters.importer import (
    command_from_future,
    future_from_track,
    resize_matrix,
    rig_from_calibration,
    target_point_from_track,
)
from riskdistill.data.torch_dataset import DrivingDataset
from riskdistill.geometry import BevGrid, wrap_angle
from riskdistill.types import Command

H, W = TINY_HW
GRID = BevGrid.preset("tiny")
CLIP_NAMES = {"r0": "Scenario_Town01_Route0_Weather0", "r1": "Scenario_Town02_Route1_Weather0"}


def _records(root: Path) -> dict[tuple[str, int], object]:
    ds = RecordedDataset(root)
    return {(r.route_id, r.step): r for r in (ds.frame(i) for i in range(len(ds)))}


@pytest.fixture(scope="module")
def clips(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("b2d_clips")
    return {r: export_bench2drive_clip(tiny_dataset, r, root / name) for r, name in CLIP_NAMES.items()}


@pytest.fixture(scope="module")
def b2d_import(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("b2d_import") / "ds"
    res = import_bench2drive(list(clips.values()), out, show_progress=False)
    assert sorted(res.imported) == sorted(CLIP_NAMES.values()) and res.skipped == []
    return out


def _assert_actors_match(a: dict, b: dict, where: str) -> None:
    """Actors of two annotations match by id (centre, size, heading, class)."""
    ia, ib = a["actor_id"].tolist(), b["actor_id"].tolist()
    assert sorted(ia) == sorted(ib), where
    pos = {aid: k for k, aid in enumerate(ib)}
    order = [pos[aid] for aid in ia]
    np.testing.assert_allclose(b["actor_center_ego"][order], a["actor_center_ego"], atol=1e-4, err_msg=where)
    np.testing.assert_allclose(b["actor_size_lwh"][order], a["actor_size_lwh"], atol=1e-5, err_msg=where)
    dyaw = wrap_angle(b["actor_yaw_ego"][order].astype(np.float64) - a["actor_yaw_ego"])
    np.testing.assert_allclose(dyaw, 0.0, atol=1e-4, err_msg=where)
    np.testing.assert_array_equal(b["actor_class"][order], a["actor_class"], err_msg=where)


def _assert_frame_matches(orig, imp, where: str) -> None:
    a, b = orig.annotation, imp.annotation
    np.testing.assert_allclose(imp.ego_pose_world, orig.ego_pose_world, atol=1e-6, err_msg=where)
    np.testing.assert_allclose(b["ego_pose_world"], a["ego_pose_world"], atol=1e-6, err_msg=where)
    np.testing.assert_array_equal(b["future_valid"], a["future_valid"], err_msg=where)
    np.testing.assert_allclose(b["future_xy"], a["future_xy"], atol=1e-4, err_msg=where)
    np.testing.assert_allclose(b["future_yaw"], a["future_yaw"], atol=1e-5, err_msg=where)
    np.testing.assert_allclose(b["K"], a["K"], atol=1e-9, err_msg=where)
    np.testing.assert_allclose(b["T_ego_from_cam"], a["T_ego_from_cam"], atol=1e-9, err_msg=where)
    assert b["camera_names"].tolist() == a["camera_names"].tolist()
    _assert_actors_match(a, b, where)
    # no map in real data: empty, with the documented ranks
    assert b["lane_centerline"].shape[0] == 0 and b["lane_centerline"].ndim == 3
    assert int(b["route_next_stop_line_id"]) == -1


# ------------------------------------------------------------------------------------------ Bench2Drive
def test_bench2drive_roundtrip(tiny_dataset: Path, b2d_import: Path) -> None:
    assert validate_dataset(b2d_import) == []
    m = json.loads((b2d_import / "manifest.json").read_text())
    assert m["visibility_source"] == "projected_boxes" and m["map_source"] == "none"
    assert m["settings"]["source"] == "bench2drive" and m["image_hw"] == [H, W]
    assert [r["route_id"] for r in m["routes"]] == list(CLIP_NAMES.values())
    assert m["routes"][1]["scenario"] == "Scenario" and m["routes"][1]["layout_family"] == "Town02"
    orig, imp = _records(tiny_dataset), _records(b2d_import)
    assert len(imp) == len(orig)
    for (route, step), rec in orig.items():
        got = imp[(CLIP_NAMES[route], step)]
        where = f"{route}/{step}"
        _assert_frame_matches(rec, got, where)
        assert got.command == rec.command, where
        np.testing.assert_allclose(got.target_point_ego, rec.target_point_ego, atol=1e-6, err_msg=where)
        assert got.ego.speed_mps == pytest.approx(rec.ego.speed_mps, abs=1e-9)
        assert got.ego.accel_mps2 == pytest.approx(rec.ego.accel_mps2, abs=1e-6)
        assert got.ego.yaw_rate_radps == pytest.approx(rec.ego.yaw_rate_radps, abs=1e-6)
        assert got.ego.steer == pytest.approx(rec.ego.steer, abs=1e-9)
        assert got.timestamp_s == pytest.approx(rec.timestamp_s)
        a, b = rec.annotation, got.annotation
        np.testing.assert_array_equal(np.sort(b["light_id"]), np.sort(a["light_id"]))
        dyaw = wrap_angle(b["light_yaw_ego"].astype(np.float64) - a["light_yaw_ego"])
        np.testing.assert_allclose(dyaw, 0.0, atol=1e-5)
        np.testing.assert_array_equal(b["light_state"], a["light_state"])
        np.testing.assert_allclose(b["ego_size_lwh"], a["ego_size_lwh"], atol=1e-5)
        # the JPEGs are copied unchanged
        for p_orig, p_imp in zip(rec.image_paths, got.image_paths, strict=True):
            assert (b2d_import / p_imp).read_bytes() == (tiny_dataset / p_orig).read_bytes()


def test_projected_boxes_contain_the_mask_boxes(tiny_dataset: Path, b2d_import: Path) -> None:
    """Projected 3D boxes are amodal: every recorded (mask) 2D box lies inside its projection."""
    orig, imp = _records(tiny_dataset), _records(b2d_import)
    n_checked = 0
    for (route, step), rec in orig.items():
        a, b = rec.annotation, imp[(CLIP_NAMES[route], step)].annotation
        pos = {aid: k for k, aid in enumerate(b["actor_id"].tolist())}
        for k, aid in enumerate(a["actor_id"].tolist()):
            j = pos[aid]
            for c in range(len(a["camera_names"])):
                if a["actor_visible_px"][k, c] > 0:
                    mb, pb = a["actor_box2d"][k, c], b["actor_box2d"][j, c]
                    assert b["actor_visible_px"][j, c] >= 1 and np.all(np.isfinite(pb))
                    assert pb[0] <= mb[0] + 1 and pb[1] <= mb[1] + 1, (route, step, aid, c)
                    assert pb[2] >= mb[2] - 1 and pb[3] >= mb[3] - 1, (route, step, aid, c)
                    n_checked += 1
                if b["actor_visible_px"][j, c] == 0:
                    assert np.all(np.isnan(b["actor_box2d"][j, c]))
        fr = imp[(CLIP_NAMES[route], step)]
        assert fr.row["n_visible_actors"] == int((b["actor_visible_px"].sum(axis=1) > 0).sum())
    assert n_checked > 20


def test_driving_dataset_loads_the_import(tiny_dataset: Path, b2d_import: Path) -> None:
    targets = ["future_trajectory", "bev_occupancy"]
    ds_orig = DrivingDataset(tiny_dataset, GRID, targets)
    ds_imp = DrivingDataset(b2d_import, GRID, targets)
    assert len(ds_imp) == len(ds_orig)
    ids = {ds_imp.frame_id(i): i for i in range(len(ds_imp))}
    n_with_actors = 0
    for i in range(1, len(ds_orig), 6):
        s0 = ds_orig[i]
        route, step = s0.frame_id.split("/")
        s1 = ds_imp[ids[f"{CLIP_NAMES[route]}/{step}"]]
        t0, t1 = s0.targets, s1.targets
        assert np.allclose(t1.future_waypoints.numpy(), t0.future_waypoints.numpy(), atol=1e-4)
        assert bool((t1.future_valid == t0.future_valid).all())
        # actor channels equal; no map: drivable and lane-marking channels empty
        assert bool((t1.bev_occupancy[:3] == t0.bev_occupancy[:3]).all())
        n_with_actors += float(t0.bev_occupancy[:3].sum()) > 0
        assert float(t1.bev_occupancy[3:].sum()) == 0.0
        o0, o1 = s0.observation, s1.observation
        assert bool((o1.images == o0.images).all()) and int(o1.command) == int(o0.command)
        assert np.allclose(o1.K.numpy(), o0.K.numpy()) and np.allclose(o1.target_point, o0.target_point)
    assert n_with_actors >= 2


def test_every_n_steps_and_resize(clips: dict[str, Path], b2d_import: Path, tmp_path: Path) -> None:
    out = tmp_path / "small"
    res = import_bench2drive(clips["r1"], out, image_hw=(40, 88), every_n_steps=10, show_progress=False)
    assert validate_dataset(out) == []
    full, small = _records(b2d_import), _records(out)
    route = CLIP_NAMES["r1"]
    steps_full = sorted(s for r, s in full if r == route)
    assert sorted(s for _, s in small) == [s for s in steps_full if s % 10 == 0] and res.n_frames == len(
        small
    )
    for (r, step), rec in small.items():
        ref = full[(r, step)]
        a, b = ref.annotation, rec.annotation
        # the future uses every frame of the clip, whatever is kept
        np.testing.assert_array_equal(b["future_valid"], a["future_valid"])
        np.testing.assert_allclose(b["future_xy"], a["future_xy"], atol=1e-4)
        # 176x64 -> 88x40: half size (32 rows), 4 black rows padded on top and bottom; K follows
        np.testing.assert_allclose(b["K"][:, 0], a["K"][:, 0] * 0.5, atol=1e-9)
        np.testing.assert_allclose(b["K"][:, 1, 1], a["K"][:, 1, 1] * 0.5, atol=1e-9)
        np.testing.assert_allclose(b["K"][:, 1, 2], a["K"][:, 1, 2] * 0.5 + 4.0, atol=1e-9)
        img = rec.images
        assert img.shape == (6, 40, 88, 3) and img[:, :3].mean() < 6 and img[:, 4:36].mean() > 20
        vis = (a["actor_visible_px"] > 0) & (b["actor_visible_px"] > 0)
        if vis.any():
            exp = a["actor_box2d"][vis] * 0.5 + np.array([0.0, 4.0, 0.0, 4.0])
            # projections of the same box: the mask box (half scale) lies inside, up to a pixel
            got = b["actor_box2d"][vis]
            assert np.all(got[:, :2] <= exp[:, :2] + 1) and np.all(got[:, 2:] >= exp[:, 2:] - 1)
    # the manifest's rig keeps the field of view of the original rig (resize_rig semantics)
    m = json.loads((out / "manifest.json").read_text())
    want = resize_rig(load_rig("bench2drive"), 40, 88)
    for cam, ref in zip(m["rig"]["cameras"], want.cameras, strict=True):
        assert cam["hfov_deg"] == pytest.approx(ref.hfov_deg, abs=1e-6)
        assert cam["yaw_deg"] == pytest.approx(ref.yaw_deg, abs=1e-6)


def test_resume_and_other_settings(clips: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ds"
    import_bench2drive(clips["r1"], out, every_n_steps=10, show_progress=False)
    hashes = json.loads((out / "manifest.json").read_text())["files"]
    again = import_bench2drive(clips["r1"], out, every_n_steps=10, show_progress=False)
    assert again.imported == [] and again.skipped == [CLIP_NAMES["r1"]]
    # adding a clip with the same settings keeps the first one
    more = import_bench2drive(clips["r0"], out, every_n_steps=10, show_progress=False)
    assert more.imported == [CLIP_NAMES["r0"]] and more.n_routes == 2
    m = json.loads((out / "manifest.json").read_text())
    assert [r["route_id"] for r in m["routes"]] == [CLIP_NAMES["r1"], CLIP_NAMES["r0"]]
    assert all(m["files"][k] == v for k, v in hashes.items() if k != "frames.parquet")
    assert validate_dataset(out) == []
    with pytest.raises(ValueError, match="every_n_steps"):
        import_bench2drive(clips["r1"], out, every_n_steps=5, show_progress=False)


def test_bad_clips(clips: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "Broken_Town01_Route3_Weather0"
    shutil.copytree(clips["r1"], broken)
    victim = sorted((broken / "camera" / "rgb_front").glob("*.jpg"))[2]
    victim.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=str(victim.name)):
        import_bench2drive(broken, tmp_path / "out1", show_progress=False)
    small = sorted((broken / "camera" / "rgb_back").glob("*.jpg"))[1]
    shutil.copyfile(sorted((broken / "camera" / "rgb_back").glob("*.jpg"))[0], victim)
    from PIL import Image

    Image.new("RGB", (W // 2, H // 2)).save(small)
    with pytest.raises(DataError, match=f"{small.name}: image is {W // 2}x{H // 2}, its calibration is for"):
        import_bench2drive(broken, tmp_path / "out1", show_progress=False)
    with pytest.raises(DataError, match="unknown camera"):
        import_bench2drive(clips["r1"], tmp_path / "out2", cameras=["CAM_TOP"], show_progress=False)
    anno = sorted((broken / "anno").glob("*.json.gz"))[0]
    a = json.loads(gzip.decompress(anno.read_bytes()))
    del a["x_target"]
    anno.write_bytes(gzip.compress(json.dumps(a).encode()))
    with pytest.raises(DataError, match="x_target"):
        import_bench2drive(broken, tmp_path / "out3", show_progress=False)
    assert not (tmp_path / "out3").exists()  # the clip is checked before anything is written
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a Bench2Drive clip"):
        import_bench2drive(tmp_path / "empty", tmp_path / "out4", show_progress=False)


# ------------------------------------------------------------------------------------------ nuScenes
def test_nuscenes_roundtrip(tiny_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("nuscenes")  # optional extra (docs/adapters.md)
    from riskdistill.data.adapters.import_nuscenes import import_nuscenes

    nus = export_nuscenes_scene(tiny_dataset, "r0", tmp_path / "nus", version="v1.0-test")
    out = tmp_path / "ds"
    res = import_nuscenes(nus, "v1.0-test", out, scenes=["r0"], show_progress=False)
    assert res.imported == ["r0"] and validate_dataset(out) == []
    m = json.loads((out / "manifest.json").read_text())
    assert m["visibility_source"] == "projected_boxes" and m["settings"]["version"] == "v1.0-test"
    orig, imp = _records(tiny_dataset), _records(out)
    assert sorted(imp) == sorted(k for k in orig if k[0] == "r0")
    speed_err, vel_err = [], []
    for key, got in imp.items():
        rec = orig[key]
        where = f"{key}"
        _assert_frame_matches(rec, got, where)
        a, b = rec.annotation, got.annotation
        # the command comes from the future, the target point from the pose track ~20 m ahead
        assert got.command == command_from_future(a["future_xy"], a["future_valid"]), where
        assert got.command in (Command.LEFT, Command.RIGHT, Command.STRAIGHT)
        remaining = imp_route_length_after(imp, key)
        dist = float(np.hypot(*got.target_point_ego))
        assert dist <= 20.0 + 1e-6 and (dist > 5.0 or remaining < 20.0), where
        speed_err.append(abs(got.ego.speed_mps - rec.ego.speed_mps))
        assert math.isnan(got.row["action_throttle"]) and got.ego.steer == 0.0
        pos = {aid: k for k, aid in enumerate(b["actor_id"].tolist())}
        for k, aid in enumerate(a["actor_id"].tolist()):
            va, vb = a["actor_velocity_ego"][k], b["actor_velocity_ego"][pos[aid]]
            vel_err.append(float(np.hypot(*(va - vb))))
            if np.hypot(*va) > 1.0:  # the devkit's finite differences point the same way
                assert va @ vb > 0.9 * np.hypot(*va) * np.hypot(*vb), (where, aid)
    # speeds by finite differences of 2 Hz poses: close to the simulator's on average
    assert float(np.mean(speed_err)) < 0.2
    assert float(np.median(vel_err)) < 1e-3 and float(np.mean(vel_err)) < 0.3
    turns = {imp[k].command for k in imp}
    assert Command.LEFT in turns or Command.RIGHT in turns  # r0 turns at its junction
    with pytest.raises(DataError, match="unknown scene"):
        import_nuscenes(nus, "v1.0-test", tmp_path / "x", scenes=["scene-9999"], show_progress=False)


def imp_route_length_after(records: dict, key: tuple[str, int]) -> float:
    pts = np.array(
        [records[k].ego_pose_world[:2] for k in sorted(records) if k[0] == key[0] and k[1] >= key[1]]
    )
    return float(np.hypot(*np.diff(pts, axis=0).T).sum()) if len(pts) > 1 else 0.0


# ------------------------------------------------------------------------------------------ pure parts
def test_future_and_target_from_track() -> None:
    t = np.arange(0.0, 4.01, 0.1)
    speed, r = 10.0, 40.0  # a left arc: radius 40 m at 10 m/s
    ang = speed * t / r
    track = np.stack([r * np.sin(ang), r * (1 - np.cos(ang)), ang], axis=1)
    xy, yaw, valid = future_from_track(t, track, 1.0, track[10])
    assert valid.tolist() == [True] * 6
    k = 10 + 5 * np.arange(1, 7)
    c, s = math.cos(track[10, 2]), math.sin(track[10, 2])
    d = track[k, :2] - track[10, :2]
    np.testing.assert_allclose(
        xy, np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], 1), atol=1e-4
    )
    np.testing.assert_allclose(yaw, track[k, 2] - track[10, 2], atol=1e-6)
    # near the end: the last waypoints are invalid and repeat the last valid one
    xy, _, valid = future_from_track(t, track, 2.5, track[25])
    assert valid.tolist() == [True, True, True, False, False, False]
    assert np.all(xy[3:] == xy[2])
    # interpolation over short gaps only
    sparse = np.r_[0:11, 30:41]  # a 2 s hole
    xy, _, valid = future_from_track(t[sparse], track[sparse], 0.0, track[0], max_gap_s=1.0)
    assert valid.tolist() == [True, True, False, False, False, True]  # t = 3 s has a pose again
    assert np.all(xy[2:5] == xy[1])
    xy, _, valid = future_from_track(t[sparse], track[sparse], 0.0, track[0], max_gap_s=3.0)
    assert valid.tolist() == [True] * 6
    chord = track[10, :2] + 0.25 * (track[30, :2] - track[10, :2])  # t = 1.5 s: linear between 1 s and 3 s
    np.testing.assert_allclose(xy[2], chord, atol=1e-4)  # pose 0 is the origin with heading 0
    # target point: 20 m along the path; a left turn gives LEFT
    tp = target_point_from_track(t, track, 0.0, track[0], 20.0)
    np.testing.assert_allclose(tp, track[20, :2], atol=1e-3)  # polyline vs arc length
    # less than 20 m left: the track's last pose
    tp = target_point_from_track(t, track, 3.0, track[30], 20.0)
    np.testing.assert_allclose(tp, future_from_track(t, track, 3.0, track[30], 2, 0.5)[0][1], atol=1e-5)
    fxy, _, fvalid = future_from_track(t, track, 0.0, track[0])
    assert command_from_future(fxy, fvalid) == Command.LEFT
    assert command_from_future(fxy * [1, -1], fvalid) == Command.RIGHT
    assert command_from_future(fxy * [1, 0], fvalid) == Command.STRAIGHT
    assert command_from_future(fxy, np.zeros(6, bool)) == Command.STRAIGHT


def test_rig_from_calibration_and_resize_matrix() -> None:
    rig = load_rig("nuscenes")
    back = rig_from_calibration("x", rig.camera_names, rig.K(), rig.T_ego_from_cam(), rig.image_size())
    np.testing.assert_allclose(back.K(), rig.K(), atol=1e-9)
    np.testing.assert_allclose(back.T_ego_from_cam(), rig.T_ego_from_cam(), atol=1e-9)
    # resize_matrix reproduces resize_rig's intrinsics (crop and pad cases)
    h, w = rig.image_size()
    for hw in ((128, 352), (300, 352), (90, 160)):
        A, _, _ = resize_matrix((h, w), hw)
        want = resize_rig(rig, *hw).K()
        np.testing.assert_allclose(A @ rig.K()[0], want[0], atol=0.51)  # rows are whole pixels


def test_cli_import(clips: dict[str, Path], tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from riskdistill.cli.data_import import import_data

    app = typer.Typer()
    app.command("import")(import_data)
    app.command("other")(lambda: None)  # a group, so "import" is a sub-command as under `riskdistill data`
    out = tmp_path / "ds"
    args = ["import", "bench2drive", str(clips["r1"]), "--out", str(out), "--every", "10"]
    res = CliRunner().invoke(app, [*args, "--image-hw", "32", "88", "--camera", "CAM_FRONT"])
    assert res.exit_code == 0, res.output
    assert "imported 1 route" in res.output and validate_dataset(out) == []
    m = json.loads((out / "manifest.json").read_text())
    assert m["camera_names"] == ["CAM_FRONT"] and m["image_hw"] == [32, 88]
    res = CliRunner().invoke(app, ["import", "kitti", str(clips["r1"]), "--out", str(out)])
    assert res.exit_code == 2 and "unknown source" in res.output
    res = CliRunner().invoke(app, [*args, "--jpeg-quality", "50"])  # other settings, same folder
    assert res.exit_code == 2 and "jpeg_quality" in res.output
