"""nuScenes adapter: export a recorded route, load it with the official devkit, read it back losslessly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nuscenes")  # optional extra (docs/adapters.md); installed in CI

from nuscenes.nuscenes import NuScenes

from conftest import TINY_EVERY, TINY_HW
from riskdistill.data import RecordedDataset
from riskdistill.data.adapters.bench2drive import DataError
from riskdistill.data.adapters.nuscenes import (
    EPOCH_US,
    NuScenesReader,
    class_of_category,
    export_nuscenes_scene,
    matrix_from_quat,
    quat_from_matrix,
)
from riskdistill.geometry import rotation_x, rotation_y, rotation_z, wrap_angle
from riskdistill.types import ActorClass

H, W = TINY_HW
EVERY = TINY_EVERY
VERSION = "v1.0-test"
TOL = 1e-3


def _route_frames(ds: RecordedDataset, route_id: str = "r0") -> int:
    """Frames of the exported route (the shared data set holds two; r0 comes first)."""
    return sum(ds.frame(i).route_id == route_id for i in range(len(ds)))


@pytest.fixture(scope="module")
def exported(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = export_nuscenes_scene(tiny_dataset, "r0", tmp_path_factory.mktemp("nus") / "nus", version=VERSION)
    return tiny_dataset, out


def test_quaternion_roundtrip() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b, c = rng.uniform(-np.pi, np.pi, 3)
        R = rotation_z(a) @ rotation_y(b) @ rotation_x(c)
        q = quat_from_matrix(R)
        assert abs(np.linalg.norm(q) - 1) < 1e-12 and q[0] >= 0
        np.testing.assert_allclose(matrix_from_quat(q), R, atol=1e-12)
    # [w, x, y, z] order: a yaw of 90 degrees about z
    np.testing.assert_allclose(quat_from_matrix(rotation_z(np.pi / 2)), [np.sqrt(0.5), 0, 0, np.sqrt(0.5)])


def test_official_devkit_loads_export(exported: tuple[Path, Path]) -> None:
    ds_dir, out = exported
    nusc = NuScenes(version=VERSION, dataroot=str(out), verbose=False)
    ds = RecordedDataset(ds_dir)
    assert len(nusc.scene) == 1 and nusc.scene[0]["nbr_samples"] == _route_frames(ds) == len(nusc.sample)
    # the prev/next chains are complete and in time order
    tok, times = nusc.scene[0]["first_sample_token"], []
    while tok:
        s = nusc.get("sample", tok)
        times.append(s["timestamp"])
        assert len(s["data"]) == 6 and s["data"].keys() == set(ds.camera_names)
        tok = s["next"]
    assert len(times) == _route_frames(ds) and np.all(np.diff(times) == EVERY * 100_000)  # 10 Hz steps, in us
    assert times[0] == EPOCH_US
    for inst in nusc.instance:
        n, tok = 0, inst["first_annotation_token"]
        while tok:
            ann = nusc.get("sample_annotation", tok)
            assert ann["instance_token"] == inst["token"]
            n, last, tok = n + 1, tok, ann["next"]
        assert n == inst["nbr_annotations"] and last == inst["last_annotation_token"]
    # the devkit's own image lookup gives files that exist, with boxes in the camera frame
    s = nusc.sample[len(nusc.sample) // 2]
    for cam, sd_token in s["data"].items():
        path, _boxes, K = nusc.get_sample_data(sd_token)
        assert Path(path).is_file() and Path(path).parent.name == cam and K.shape == (3, 3)
    total = sum(len(nusc.get_sample_data(t)[1]) for t in s["data"].values())
    assert total > 0
    # the devkit's camera-frame boxes equal ours mapped with inv(T_ego_from_cam): same OpenCV camera axes
    i = len(nusc.sample) // 2
    a = ds.frame(i).annotation
    for ci, cam in enumerate(ds.camera_names):
        _, boxes, _ = nusc.get_sample_data(nusc.sample[i]["data"][cam])
        T_cam_from_ego = np.linalg.inv(a["T_ego_from_cam"][ci])
        for box in boxes:
            inst = nusc.get("instance", nusc.get("sample_annotation", box.token)["instance_token"])
            k = a["actor_id"].tolist().index(inst["riskdistill_actor_id"])
            want = T_cam_from_ego[:3, :3] @ a["actor_center_ego"][k] + T_cam_from_ego[:3, 3]
            np.testing.assert_allclose(box.center, want, atol=TOL)
            assert box.center[2] > 0  # in front of the camera (z forward)
    # JSON tables are plain lists of records with 32-hex tokens
    for t in json.loads((out / VERSION / "sample.json").read_text()):
        assert len(t["token"]) == 32 and int(t["token"], 16) >= 0


def test_roundtrip_matches_recording(exported: tuple[Path, Path]) -> None:
    ds_dir, out = exported
    ds = RecordedDataset(ds_dir)
    reader = NuScenesReader(out, VERSION)
    assert len(reader) == _route_frames(ds) and reader.cameras == ds.camera_names
    saw_pedestrian = False
    for i, smp in enumerate(reader):
        rec = ds.frame(i)
        a = rec.annotation
        assert smp.scene_name == "r0"
        assert abs(smp.time_s - (rec.timestamp_s - ds.frame(0).timestamp_s)) < 1e-6
        np.testing.assert_allclose(smp.ego_pose_world[:2], rec.ego_pose_world[:2], atol=TOL)
        assert abs(wrap_angle(smp.ego_pose_world[2] - rec.ego_pose_world[2])) < TOL
        np.testing.assert_allclose(smp.K, a["K"], atol=TOL)
        np.testing.assert_allclose(smp.T_ego_from_cam, a["T_ego_from_cam"], atol=TOL)
        assert all(
            p.is_file() and p.read_bytes() == (ds.root / r).read_bytes()
            for p, r in zip(smp.image_paths, rec.image_paths, strict=True)
        )
        assert np.all(smp.image_hw == [H, W])
        # boxes, matched by actor id (kept in the instance table)
        ids = [reader.nusc.get("instance", t)["riskdistill_actor_id"] for t in smp.instance_token]
        assert sorted(ids) == sorted(a["actor_id"].tolist())
        order = [ids.index(aid) for aid in a["actor_id"].tolist()]
        np.testing.assert_allclose(smp.center_ego[order], a["actor_center_ego"], atol=TOL)
        np.testing.assert_allclose(smp.size_lwh[order], a["actor_size_lwh"], atol=TOL)
        dyaw = wrap_angle(smp.yaw_ego[order] - a["actor_yaw_ego"].astype(np.float64))
        assert np.all(np.abs(dyaw) < TOL)
        np.testing.assert_array_equal(smp.actor_class[order], a["actor_class"])
        for k in order:
            cls = ActorClass(int(smp.actor_class[k]))
            if cls == ActorClass.PEDESTRIAN:
                saw_pedestrian = True
                assert smp.category[k].startswith("human.pedestrian.")
        assert smp.velocity_ego.shape == (len(ids), 2)
    assert saw_pedestrian


def test_nuscenes_box_fields_are_global_and_width_first(exported: tuple[Path, Path]) -> None:
    ds_dir, out = exported
    rec = RecordedDataset(ds_dir).frame(3)
    a = rec.annotation
    nusc = NuScenes(version=VERSION, dataroot=str(out), verbose=False)
    ann = next(
        x
        for x in nusc.sample_annotation
        if x["sample_token"] == nusc.sample[3]["token"]
        and nusc.get("instance", x["instance_token"])["riskdistill_actor_id"] == int(a["actor_id"][0])
    )
    l_, w_, h_ = a["actor_size_lwh"][0]
    np.testing.assert_allclose(ann["size"], [w_, l_, h_], atol=TOL)
    x, y, yaw = rec.ego_pose_world
    c = a["actor_center_ego"][0]
    world = [x + np.cos(yaw) * c[0] - np.sin(yaw) * c[1], y + np.sin(yaw) * c[0] + np.cos(yaw) * c[1], h_ / 2]
    np.testing.assert_allclose(ann["translation"], world, atol=TOL)


def test_class_mapping_and_errors(exported: tuple[Path, Path], tmp_path: Path) -> None:
    assert class_of_category("human.pedestrian.child") == ActorClass.PEDESTRIAN
    assert class_of_category("vehicle.bus.bendy") == ActorClass.BUS
    assert class_of_category("animal") is None
    ds_dir, out = exported
    with pytest.raises(DataError, match="route_id 'nope'"):
        export_nuscenes_scene(ds_dir, "nope", tmp_path / "x")
    with pytest.raises(DataError, match="already holds"):
        export_nuscenes_scene(ds_dir, "r0", out, version=VERSION)
    with pytest.raises(DataError, match="missing"):
        NuScenesReader(tmp_path, "v1.0-absent")


def test_missing_devkit_error_names_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "nuscenes.nuscenes", None)
    with pytest.raises(ImportError, match=r"pip install --no-deps nuscenes-devkit.*docs/adapters\.md"):
        NuScenesReader(tmp_path, VERSION)
