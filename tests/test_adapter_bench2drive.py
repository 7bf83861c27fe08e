"""Bench2Drive adapter: export a recorded route as a clip, read it back, CARLA's y-right frame, bad input."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_HW
from riskdistill.data import RecordedDataset
from riskdistill.data.adapters import Bench2DriveClipReader, DataError, export_bench2drive_clip
from riskdistill.data.adapters.bench2drive import camera_folder
from riskdistill.geometry import wrap_angle

H, W = TINY_HW
TOL = 1e-3


@pytest.fixture(scope="session")
def dataset(tiny_dataset: Path) -> Path:
    return tiny_dataset


@pytest.fixture(scope="session")
def clip(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bench2drive_clip(
        dataset, "r1", tmp_path_factory.mktemp("clip") / "Scenario_Town01_Route1_Weather0"
    )


def _route_frames(dataset: Path, route_id: str) -> list:
    ds = RecordedDataset(dataset)
    return [ds.frame(i) for i in range(len(ds)) if ds.frame(i).route_id == route_id]


def test_clip_layout(dataset: Path, clip: Path) -> None:
    recs = _route_frames(dataset, "r1")
    annos = sorted(p.name for p in (clip / "anno").glob("*.json.gz"))
    assert annos == [f"{r.step:05d}.json.gz" for r in recs]
    for cam in recs[0].camera_names:
        imgs = sorted(p.name for p in (clip / "camera" / camera_folder(cam)).glob("*.jpg"))
        assert imgs == [f"{r.step:05d}.jpg" for r in recs]
    assert (clip / "camera" / "rgb_front_left").is_dir()
    a = json.loads(gzip.decompress((clip / "anno" / annos[0]).read_bytes()))
    for key in ("x", "y", "theta", "speed", "throttle", "steer", "brake", "acceleration", "angular_velocity"):
        assert key in a
    for key in ("command_near", "command_far", "x_command_near", "y_command_far", "x_target", "y_target"):
        assert key in a
    cam = a["sensors"]["CAM_FRONT"]
    for key in (
        "location",
        "rotation",
        "intrinsic",
        "world2cam",
        "cam2ego",
        "fov",
        "image_size_x",
        "image_size_y",
    ):
        assert key in cam
    assert cam["image_size_x"] == W and cam["image_size_y"] == H
    assert cam["fov"] == pytest.approx(70.0)
    assert a["bounding_boxes"][0]["class"] == "ego_vehicle"


def test_round_trip(dataset: Path, clip: Path) -> None:
    recs = _route_frames(dataset, "r1")
    reader = Bench2DriveClipReader(clip)
    assert len(reader) == len(recs)
    n_actors = 0
    for rec, fr in zip(recs, reader, strict=True):
        ann = rec.annotation
        assert fr.frame == rec.step
        np.testing.assert_allclose(fr.ego_pose_world[:2], rec.ego_pose_world[:2], atol=TOL)
        assert abs(wrap_angle(fr.ego_pose_world[2] - rec.ego_pose_world[2])) < TOL
        assert fr.ego.speed_mps == pytest.approx(rec.ego.speed_mps, abs=TOL)
        assert fr.ego.accel_mps2 == pytest.approx(rec.ego.accel_mps2, abs=TOL)
        assert fr.ego.yaw_rate_radps == pytest.approx(rec.ego.yaw_rate_radps, abs=TOL)
        assert fr.ego.steer == pytest.approx(rec.ego.steer, abs=TOL)
        assert fr.command == rec.command
        np.testing.assert_allclose(fr.target_point_ego, rec.target_point_ego, atol=TOL)
        # calibration
        assert fr.camera_names == rec.camera_names
        assert fr.image_hw == (H, W)
        np.testing.assert_allclose(fr.K, ann["K"], atol=TOL)
        np.testing.assert_allclose(fr.T_ego_from_cam, ann["T_ego_from_cam"], atol=TOL)
        assert all(p.is_file() for p in fr.image_paths)
        assert fr.images().shape == (len(rec.camera_names), H, W, 3)
        # actors
        np.testing.assert_array_equal(fr.actor_id, ann["actor_id"])
        np.testing.assert_array_equal(fr.actor_class, ann["actor_class"])
        np.testing.assert_allclose(fr.actor_center_ego, ann["actor_center_ego"], atol=TOL)
        np.testing.assert_allclose(fr.actor_size_lwh, ann["actor_size_lwh"], atol=TOL)
        dyaw = wrap_angle(fr.actor_yaw_ego - ann["actor_yaw_ego"].astype(np.float64))
        assert np.all(np.abs(dyaw) < TOL)
        speed = np.hypot(*ann["actor_velocity_ego"].T) if len(ann["actor_id"]) else np.zeros(0)
        np.testing.assert_allclose(np.hypot(*fr.actor_velocity_ego.T), speed, atol=TOL)
        np.testing.assert_array_equal(fr.light_id, ann["light_id"])
        np.testing.assert_array_equal(fr.light_state, ann["light_state"])
        np.testing.assert_allclose(fr.light_position_ego, ann["light_position_ego"], atol=TOL)
        n_actors += len(fr.actor_id)
    assert n_actors > 0


def test_carla_y_right(dataset: Path, clip: Path) -> None:
    """A box on our left (y > 0) has a negative y in CARLA's ego frame; the left camera sits at y < 0."""
    recs = _route_frames(dataset, "r1")
    checked = 0
    for rec in recs:
        a = json.loads(gzip.decompress((clip / "anno" / f"{rec.step:05d}.json.gz").read_bytes()))
        assert a["sensors"]["CAM_FRONT_LEFT"]["location"][1] < 0
        assert a["sensors"]["CAM_FRONT_RIGHT"]["location"][1] > 0
        assert a["sensors"]["CAM_FRONT_LEFT"]["rotation"][2] == pytest.approx(-55.0)
        world2ego = np.array(a["bounding_boxes"][0]["world2ego"])
        by_id = {b["id"]: b for b in a["bounding_boxes"][1:] if b["class"] != "traffic_light"}
        ann = rec.annotation
        for k, aid in enumerate(ann["actor_id"]):
            y_ours = float(ann["actor_center_ego"][k][1])
            if abs(y_ours) < 1.0:
                continue
            p = world2ego @ np.array([*by_id[int(aid)]["location"][:2], 0.0, 1.0])
            assert np.sign(p[1]) == -np.sign(y_ours)
            assert p[1] == pytest.approx(-y_ours, abs=TOL)
            checked += 1
    assert checked > 0


def test_bench2drive_conventions(dataset: Path, clip: Path) -> None:
    """Compass ``theta`` (Bench2DriveZoo: heading = pi/2 - theta), UE4-axis ``cam2ego``, and ``world2cam``
    projecting a world point to the same pixel as our calibration does."""
    ue4_from_cv = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    projected = 0
    for rec in _route_frames(dataset, "r1"):
        a = json.loads(gzip.decompress((clip / "anno" / f"{rec.step:05d}.json.gz").read_bytes()))
        assert abs(wrap_angle(np.pi / 2 - a["theta"] - rec.ego_pose_world[2])) < TOL
        np.testing.assert_allclose(
            np.array(a["sensors"]["CAM_FRONT"]["cam2ego"])[:3, :3], np.eye(3), atol=TOL
        )
        ann = rec.annotation
        boxes = {b["id"]: b for b in a["bounding_boxes"][1:] if b["class"] != "traffic_light"}
        for ci, cam in enumerate(rec.camera_names):
            K = ann["K"][ci]
            T_cam_from_ego = np.linalg.inv(ann["T_ego_from_cam"][ci])
            world2cam = np.array(a["sensors"][cam]["world2cam"])
            for k, aid in enumerate(ann["actor_id"]):
                p_ours = T_cam_from_ego @ np.array([*ann["actor_center_ego"][k].astype(np.float64), 1.0])
                if p_ours[2] < 1.0:
                    continue
                p_ue = world2cam @ np.array([*boxes[int(aid)]["center"], 1.0])
                p_cv = ue4_from_cv.T @ p_ue[:3]
                uv_b2d = (K @ p_cv)[:2] / p_cv[2]
                uv_ours = (K @ p_ours[:3])[:2] / p_ours[2]
                np.testing.assert_allclose(uv_b2d, uv_ours, atol=1e-3)
                projected += 1
    assert projected > 0


def _edit(path: Path, fn) -> None:
    a = json.loads(gzip.decompress(path.read_bytes()))
    fn(a)
    path.write_bytes(gzip.compress(json.dumps(a).encode()))


@pytest.fixture
def bad_clip(clip: Path, tmp_path: Path) -> tuple[Path, Path]:
    dst = tmp_path / "clip"
    shutil.copytree(clip, dst)
    return dst, sorted((dst / "anno").glob("*.json.gz"))[1]


def _read_all(clip_dir: Path) -> None:
    for _ in Bench2DriveClipReader(clip_dir):
        pass


def test_missing_field(bad_clip: tuple[Path, Path]) -> None:
    clip_dir, anno = bad_clip
    _edit(anno, lambda a: a.pop("theta"))
    with pytest.raises(DataError, match=rf"{anno.name}.*'theta'"):
        _read_all(clip_dir)


def test_missing_box_field(bad_clip: tuple[Path, Path]) -> None:
    clip_dir, anno = bad_clip
    _edit(anno, lambda a: a["bounding_boxes"][1].pop("extent"))
    with pytest.raises(DataError, match=rf"{anno.name}.*bounding_boxes\[1\]\.'extent'"):
        _read_all(clip_dir)


def test_nan_pose(bad_clip: tuple[Path, Path]) -> None:
    clip_dir, anno = bad_clip
    _edit(anno, lambda a: a.__setitem__("x", float("nan")))
    with pytest.raises(DataError, match=rf"{anno.name}.*'x' is not finite"):
        _read_all(clip_dir)


def test_nan_calibration(bad_clip: tuple[Path, Path]) -> None:
    clip_dir, anno = bad_clip
    _edit(anno, lambda a: a["sensors"]["CAM_BACK"]["cam2ego"][0].__setitem__(3, float("nan")))
    with pytest.raises(DataError, match=rf"{anno.name}.*sensors\.CAM_BACK\.'cam2ego'"):
        _read_all(clip_dir)


def test_truncated_gz(bad_clip: tuple[Path, Path]) -> None:
    clip_dir, anno = bad_clip
    data = anno.read_bytes()
    anno.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"{anno.name}.*gzip JSON"):
        _read_all(clip_dir)


def test_path_outside_clip(bad_clip: tuple[Path, Path]) -> None:
    clip_dir, anno = bad_clip

    def escape(a: dict) -> None:
        a["sensors"]["CAM_../../../../evil"] = a["sensors"].pop("CAM_FRONT")

    _edit(anno, escape)
    with pytest.raises(
        DataError,
        match=re.escape(anno.name) + ".*" + re.escape("sensors.CAM_../../../../evil") + ".*outside the clip",
    ):
        _read_all(clip_dir)


def test_not_a_clip_and_unknown_route(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="anno"):
        Bench2DriveClipReader(tmp_path)
    with pytest.raises(DataError, match="nope"):
        export_bench2drive_clip(dataset, "nope", tmp_path / "out")
    reader = Bench2DriveClipReader(export_bench2drive_clip(dataset, "r0", tmp_path / "r0"))
    with pytest.raises(IndexError):
        reader[len(reader)]
