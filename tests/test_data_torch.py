"""The PyTorch side of recorded data: DrivingDataset, typed batches, target builders, splits, bad input."""

from __future__ import annotations

import gc
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import TINY_HW
from riskdistill.contracts.batch import BEV_CHANNELS, Batch
from riskdistill.data.storage import RecordedDataset
from riskdistill.data.targets import DataError, RiskMapTarget, box_footprint_mask, make_target
from riskdistill.data.torch_dataset import AugmentConfig, DrivingDataset, collate_batch, split_routes
from riskdistill.geometry import BevGrid
from riskdistill.types import ActorClass

H, W = TINY_HW
GRID = BevGrid.centered(64.0, 64.0, 0.5, x_offset_m=16.0)
TARGETS = ["future_trajectory", "bev_occupancy"]


@pytest.fixture(scope="session")
def dataset(tiny_dataset: Path) -> Path:
    return tiny_dataset


@pytest.fixture
def copy(dataset: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(dataset, dst)
    return dst


def _assert_samples_equal(a, b) -> None:
    assert a.frame_id == b.frame_id
    for part in ("observation", "targets"):
        for k, v in vars(getattr(a, part)).items():
            w = getattr(getattr(b, part), k)
            assert (v is None) == (w is None), k
            if v is not None:
                assert torch.equal(v, w), k


# ------------------------------------------------------------------------------------------ shapes
def test_tensor_dataclasses_clone_and_compare_bit_for_bit(dataset: Path) -> None:
    """``clone`` copies every tensor (nested ones too); ``equals`` is exact equality of every field."""
    ds = DrivingDataset(dataset, GRID, TARGETS, prev_frames=1)
    batch = collate_batch([ds[0], ds[1]])
    copy = batch.clone()
    assert copy.equals(batch) and batch.equals(copy) and copy.frame_ids == batch.frame_ids
    assert copy.observation.images.data_ptr() != batch.observation.images.data_ptr()
    obs = copy.observation
    obs.images[0, 0, 0, 0, 0] += 1e-3  # one value in a nested tensor
    assert not copy.equals(batch) and not obs.equals(batch.observation)
    same = batch.observation.clone()
    assert same.equals(batch.observation)
    assert not replace(same, prev_images=None).equals(batch.observation)  # a tensor against None
    assert not replace(same, ego_state=same.ego_state.double()).equals(batch.observation)  # another dtype
    nan = replace(same, target_point=torch.full_like(same.target_point, float("nan")))
    assert not nan.equals(nan.clone())  # NaN never equals
    assert not same.equals(batch.targets) and not same.equals(None)


def test_batch_shapes_and_dtypes_through_workers(dataset: Path) -> None:
    ds = DrivingDataset(dataset, GRID, TARGETS, prev_frames=1)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_batch, shuffle=False)
    batch = next(iter(loader))
    assert isinstance(batch, Batch) and len(batch) == 2 and batch.frame_ids == ["r0/00000", "r0/00005"]
    o, t = batch.observation, batch.targets
    assert o.images.shape == (2, 6, 3, H, W) and o.images.dtype == torch.float32 and not o.images_uint8
    assert float(o.images.min()) >= 0.0 and float(o.images.max()) <= 1.0 and float(o.images.max()) > 0.2
    assert (
        o.camera_valid.shape == (2, 6) and o.camera_valid.dtype == torch.bool and bool(o.camera_valid.all())
    )
    assert o.K.shape == (2, 6, 3, 3) and o.K.dtype == torch.float32
    assert o.T_ego_from_cam.shape == (2, 6, 4, 4) and o.T_ego_from_cam.dtype == torch.float32
    assert o.ego_state.shape == (2, 4) and o.ego_state.dtype == torch.float32
    assert o.command.shape == (2,) and o.command.dtype == torch.int64
    assert o.target_point.shape == (2, 2) and o.target_point.dtype == torch.float32
    assert o.prev_images.shape == (2, 1, 6, 3, H, W)
    assert o.prev_valid.tolist() == [[False], [True]]  # the route's first frame has no predecessor
    assert torch.equal(o.prev_images[1, 0], o.images[0])  # frame 1's predecessor is frame 0
    assert t.future_waypoints.shape == (2, 6, 2) and t.future_waypoints.dtype == torch.float32
    assert t.future_valid.shape == (2, 6) and t.future_valid.dtype == torch.bool
    assert t.bev_occupancy.shape == (2, len(BEV_CHANNELS), *GRID.shape)
    assert t.bev_occupancy.dtype == torch.float32 and t.risk_map is None
    assert batch.skipped == []
    moved = batch.to("cpu")
    assert moved.observation.images.shape == o.images.shape

    # ego state / command / target point come from the frame table; uint8 images and resizing
    rec = RecordedDataset(dataset).frame(1)
    assert o.ego_state[1].tolist() == pytest.approx(
        [rec.ego.speed_mps, rec.ego.accel_mps2, rec.ego.yaw_rate_radps, rec.ego.steer], abs=1e-5
    )
    assert int(o.command[1]) == int(rec.command)
    small = DrivingDataset(
        dataset, GRID, [], cameras=["CAM_FRONT", "CAM_BACK"], image_hw=(32, 88), image_dtype="uint8"
    )[1]
    assert small.observation.images.shape == (2, 3, 32, 88) and small.observation.images_uint8
    K = rec.annotation["K"]
    assert small.observation.K[0, 0, 0].item() == pytest.approx(K[0, 0, 0] / 2, rel=1e-5)
    assert small.observation.K[1, 1, 2].item() == pytest.approx(K[3, 1, 2] / 2, rel=1e-5)


def test_future_waypoints_equal_annotation(dataset: Path) -> None:
    ds = DrivingDataset(dataset, GRID, ["future_trajectory"])
    recs = RecordedDataset(dataset)
    for i in (0, 7, len(ds) - 1):
        s, ann = ds[i], recs.frame(i).annotation
        np.testing.assert_array_equal(s.targets.future_waypoints.numpy(), ann["future_xy"])
        np.testing.assert_array_equal(s.targets.future_valid.numpy(), ann["future_valid"])
    assert not ds[len(ds) - 1].targets.future_valid.all()  # the route's end


def test_occupancy_marks_lane_ahead_and_actor_footprints(dataset: Path) -> None:
    ds = DrivingDataset(dataset, GRID, ["bev_occupancy"])
    recs = RecordedDataset(dataset)
    checked = {"vehicle": 0, "vulnerable": 0}
    for i in range(0, len(ds), 3):
        occ = ds[i].targets.bev_occupancy.numpy()
        assert set(np.unique(occ)) <= {0.0, 1.0}
        # the ego's lane just ahead of the ego is drivable
        r, c = np.floor(GRID.metric_to_index([3.0, 0.0])).astype(int)
        assert occ[BEV_CHANNELS.index("drivable"), r, c] == 1.0, recs.frame(i).frame_id
        assert occ[BEV_CHANNELS.index("lane_marking")].sum() > 0
        ann = recs.frame(i).annotation
        # every lane centreline point on the grid falls in a drivable cell
        pts = ann["lane_centerline"].reshape(-1, 2)
        rc = GRID.metric_to_index(pts[np.all(np.isfinite(pts), axis=1)])
        rc = np.floor(
            rc[(rc[:, 0] >= 0) & (rc[:, 0] < GRID.n_rows) & (rc[:, 1] >= 0) & (rc[:, 1] < GRID.n_cols)]
        )
        assert len(rc) > 20 and occ[BEV_CHANNELS.index("drivable")][tuple(rc.astype(int).T)].all()
        for cls, center in zip(ann["actor_class"], ann["actor_center_ego"], strict=True):
            rc = GRID.metric_to_index(center[:2])
            if not (0 <= rc[0] < GRID.n_rows and 0 <= rc[1] < GRID.n_cols):
                continue
            r, c = np.floor(rc).astype(int)
            group = "vehicle" if ActorClass(int(cls)).is_vehicle else "vulnerable"
            if ActorClass(int(cls)).is_static_obstacle:
                continue
            assert occ[BEV_CHANNELS.index(group), r, c] == 1.0
            checked[group] += 1
    assert checked["vehicle"] > 0 and checked["vulnerable"] > 0
    # a footprint covers the box's area (a car of ~4.5 x 1.9 m covers ~34 cells of 0.25 m^2)
    ann = recs.frame(60).annotation
    car = int(np.nonzero(ann["actor_class"] == int(ActorClass.CAR))[0][0])
    center, size, yaw = ann["actor_center_ego"][car], ann["actor_size_lwh"][car], ann["actor_yaw_ego"][car]
    mask = box_footprint_mask(GRID, center[None, :2], size[None, :2], yaw[None])[0]
    area = float(size[0] * size[1]) / GRID.resolution_m**2
    assert abs(mask.sum() - area) < 0.3 * area
    assert ds[60].targets.bev_occupancy[0].numpy()[mask].min() == 1.0


def test_observation_reads_no_ground_truth(copy: Path) -> None:
    """The privilege split: with no targets, a frame whose annotation holds only the calibration loads."""
    recs = RecordedDataset(copy)
    for i in (0, 1):
        ann = recs.frame(i).annotation
        with open(copy / recs.frame(i).annotation_path, "wb") as f:
            np.savez(f, K=ann["K"], T_ego_from_cam=ann["T_ego_from_cam"])
    s = DrivingDataset(copy, GRID, [], prev_frames=1)[1]
    assert s.observation.images.shape == (6, 3, H, W) and s.targets.future_waypoints is None
    with pytest.raises(DataError, match="missing annotation field 'future_xy'"):
        DrivingDataset(copy, GRID, ["future_trajectory"])[1]


# ------------------------------------------------------------------------------------------ splits
def test_split_is_deterministic_and_per_route(dataset: Path) -> None:
    ids = [f"route_{i:03d}" for i in range(200)]
    a, b = split_routes(ids, 0.2, seed=3), split_routes(list(reversed(ids)), 0.2, seed=3)
    assert sorted(a["val"]) == sorted(b["val"]) and sorted(a["train"]) == sorted(b["train"])
    assert set(a["val"]).isdisjoint(a["train"]) and len(a["val"]) + len(a["train"]) == 200
    assert 20 <= len(a["val"]) <= 60
    assert split_routes(ids, 0.2, seed=4)["val"] != a["val"]
    assert set(split_routes(ids[:100], 0.2, seed=3)["val"]) == set(a["val"]) & set(ids[:100])  # stable

    seed = next(s for s in range(100) if len(split_routes(["r0", "r1"], 0.5, s)["val"]) == 1)
    tr = DrivingDataset(dataset, GRID, [], split="train", val_fraction=0.5, split_seed=seed)
    va = DrivingDataset(dataset, GRID, [], split="val", val_fraction=0.5, split_seed=seed)
    assert len(tr) + len(va) == len(RecordedDataset(dataset))
    assert len(tr.route_ids) == len(va.route_ids) == 1 and tr.route_ids != va.route_ids
    assert all(tr.frame_id(i).startswith(tr.route_ids[0] + "/") for i in range(len(tr)))
    assert all(va.frame_id(i).startswith(va.route_ids[0] + "/") for i in range(len(va)))


# ------------------------------------------------------------------------------------------ bad input
def test_corrupt_image_raises_data_error_naming_the_file(copy: Path) -> None:
    recs = RecordedDataset(copy)
    rel = recs.frame(3).image_paths[2]
    data = (copy / rel).read_bytes()
    (copy / rel).write_bytes(data[: len(data) // 3])  # truncated JPEG
    ds = DrivingDataset(copy, GRID, TARGETS)
    with pytest.raises(DataError, match=rel):
        ds[3]
    loader = DataLoader(ds, batch_size=2, sampler=[2, 3], num_workers=1, collate_fn=collate_batch)
    it = iter(loader)
    try:
        next(it)
        msg = ""
    except DataError as exc:  # re-raised in the main process with the worker's message
        msg = str(exc)
    del it  # shut the worker down now, not in a later garbage collection
    gc.collect()
    assert rel in msg and "corrupt or unreadable image" in msg and "'r0/00015'" in msg

    skip = DrivingDataset(copy, GRID, TARGETS, on_error="skip")
    with pytest.warns(UserWarning, match="skipping frame 'r0/00015'"):
        s = skip[3]
    assert s.frame_id == recs.frame(4).frame_id and s.skipped == ["r0/00015"]
    assert list(skip.skipped) == ["r0/00015"] and rel in skip.skipped["r0/00015"]
    batch = collate_batch([skip[2], skip[3]])
    assert batch.frame_ids == ["r0/00010", "r0/00020"] and batch.skipped == ["r0/00015"]


def test_missing_annotation_field_raises_data_error(copy: Path) -> None:
    recs = RecordedDataset(copy)
    rel = recs.frame(2).annotation_path
    ann = dict(recs.frame(2).annotation)
    del ann["future_xy"]
    with open(copy / rel, "wb") as f:
        np.savez(f, **ann)
    ds = DrivingDataset(copy, GRID, TARGETS)
    with pytest.raises(DataError, match=rf"{rel}: missing annotation field 'future_xy'"):
        ds[2]
    ds[1]  # the others are fine
    (copy / recs.frame(5).annotation_path).write_bytes(b"not a zip")
    with pytest.raises(DataError, match=recs.frame(5).annotation_path):
        ds[5]


def test_annotation_arrays_read_only_the_keys_asked_for(copy: Path) -> None:
    """``annotation_arrays`` (what open-loop collision checks read of every future frame) gives the same
    arrays as the full annotation, read fresh or from it, and names the file when a key is missing."""
    recs = RecordedDataset(copy)
    keys = ("actor_id", "actor_center_ego", "ego_size_lwh")
    fresh = recs.frame(2).annotation_arrays(keys)  # a new frame object: nothing read yet
    full = recs.frame(2)
    full.annotation  # noqa: B018 (read the whole file first)
    assert list(fresh) == list(keys)
    for k in keys:
        np.testing.assert_array_equal(fresh[k], full.annotation[k])
        np.testing.assert_array_equal(full.annotation_arrays(keys)[k], full.annotation[k])
    rel = recs.frame(2).annotation_path
    ann = dict(full.annotation)
    del ann["actor_id"]
    with open(copy / rel, "wb") as f:
        np.savez(f, **ann)
    with pytest.raises(DataError, match=rf"{rel}: annotation of frame 'r0/\d+' lacks \['actor_id'\]"):
        recs.frame(2).annotation_arrays(keys)
    (copy / rel).write_bytes(b"not a zip")
    with pytest.raises(DataError, match=rf"{rel}: unreadable annotation file"):
        recs.frame(2).annotation_arrays(keys)


def test_unknown_target_and_camera_list_valid_names(dataset: Path) -> None:
    with pytest.raises(
        ValueError, match=r"unknown target 'occupancy'.*bev_occupancy.*future_trajectory.*risk_map"
    ):
        DrivingDataset(dataset, GRID, ["occupancy"])
    with pytest.raises(ValueError, match=r"valid targets"):
        make_target("nope")
    with pytest.raises(ValueError, match=r"unknown camera\(s\) \['CAM_TOP'\].*CAM_FRONT"):
        DrivingDataset(dataset, GRID, [], cameras=["CAM_TOP"])


def test_risk_map_hook(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"labels/risk/maps: missing; the 'risk_map' target"):
        DrivingDataset(dataset, GRID, ["risk_map"])
    labels = tmp_path / "labels"
    fid = RecordedDataset(dataset).frame(0).frame_id
    (labels / "maps" / fid).parent.mkdir(parents=True)
    m = np.random.default_rng(0).random(GRID.shape).astype(np.float16)
    np.save(labels / "maps" / f"{fid}.npy", m)
    ds = DrivingDataset(dataset, GRID, ["future_trajectory", RiskMapTarget(labels)])
    s = ds[0]
    assert s.targets.risk_map.shape == (1, *GRID.shape) and s.targets.risk_map.dtype == torch.float32
    np.testing.assert_array_equal(s.targets.risk_map[0].numpy(), m.astype(np.float32))
    with pytest.raises(DataError, match=r"maps/r0/00005.npy: missing risk map"):
        ds[1]


# ------------------------------------------------------------------------------------------ augmentation
def test_no_augmentation_is_deterministic_and_rotation_is_consistent(dataset: Path) -> None:
    ds = DrivingDataset(dataset, GRID, TARGETS)
    _assert_samples_equal(ds[10], ds[10])

    aug = AugmentConfig(
        brightness=0.3, contrast=0.3, saturation=0.3, camera_drop_prob=0.5, rotation_max_deg=10.0
    )
    da = DrivingDataset(dataset, GRID, TARGETS, augment=aug)
    a, b = da[10], da[10]
    _assert_samples_equal(a, b)  # same (seed, epoch, index) -> same draws
    da.set_epoch(1)
    assert not torch.equal(da[10].observation.images, a.observation.images)
    base = ds[10]
    assert not a.observation.camera_valid.all() and a.observation.camera_valid.any()
    assert float(a.observation.images[~a.observation.camera_valid].abs().max()) == 0.0
    # rotation: lengths preserved; the waypoints, target point and camera extrinsics turn by the same angle
    wp0, wp1 = base.targets.future_waypoints.double(), a.targets.future_waypoints.double()
    np.testing.assert_allclose(wp1.norm(dim=1), wp0.norm(dim=1), atol=1e-4)
    k = int(wp0.norm(dim=1).argmax())
    theta = math.atan2(wp1[k, 1], wp1[k, 0]) - math.atan2(wp0[k, 1], wp0[k, 0])
    assert 0 < abs(theta) <= math.radians(10.0) + 1e-6
    tp0, tp1 = base.observation.target_point.double(), a.observation.target_point.double()
    assert math.atan2(tp1[1], tp1[0]) - math.atan2(tp0[1], tp0[0]) == pytest.approx(theta, abs=1e-4)
    cam0, cam1 = (
        base.observation.T_ego_from_cam[0, :2, 3].double(),
        a.observation.T_ego_from_cam[0, :2, 3].double(),
    )
    rot = torch.tensor(
        [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], dtype=torch.float64
    )
    np.testing.assert_allclose(rot @ cam0, cam1, atol=1e-4)
    assert not torch.equal(a.targets.bev_occupancy, base.targets.bev_occupancy)
