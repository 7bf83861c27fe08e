"""The decoded-frame cache: the same samples as decoding the JPEGs (augmentations and history included), a
cache that no longer matches its data set is rebuilt, an interrupted build resumes, unreadable frames keep
their errors, and training gives the same losses with and without it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import riskdistill.data.frame_cache as fc
from riskdistill.data.frame_cache import FrameCache, default_cache_dir
from riskdistill.data.storage import DataError, RecordedDataset
from riskdistill.data.torch_dataset import AugmentConfig, DrivingDataset
from riskdistill.geometry import BevGrid
from riskdistill.training import read_metrics, train
from test_training_support import make_labelled_copy, micro_config

GRID = BevGrid.preset("tiny")
TARGETS = ["future_trajectory", "bev_occupancy"]
HW = (32, 88)  # resized from the recorded 64x176


@pytest.fixture
def copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(tiny_dataset, dst)
    return dst


def _assert_samples_equal(a, b) -> None:
    assert a.frame_id == b.frame_id and a.skipped == b.skipped
    for part in ("observation", "targets"):
        for k, v in vars(getattr(a, part)).items():
            w = getattr(getattr(b, part), k)
            assert (v is None) == (w is None), k
            if v is not None:
                assert torch.equal(v, w), (a.frame_id, k)


def test_cached_samples_equal_decoded_samples(tiny_dataset: Path, tmp_path: Path) -> None:
    cache = FrameCache.open(tiny_dataset, HW, tmp_path / "cache")
    n = len(RecordedDataset(tiny_dataset))
    assert cache.array.shape == (n, 6, *HW, 3) and cache.array.dtype == np.uint8 and not cache.errors
    aug = AugmentConfig(
        brightness=0.3, contrast=0.2, saturation=0.2, camera_drop_prob=0.3, rotation_max_deg=8
    )
    common = dict(
        cameras=["CAM_BACK", "CAM_FRONT", "CAM_FRONT_LEFT"], image_hw=HW, prev_frames=2, augment=aug
    )
    plain = DrivingDataset(tiny_dataset, GRID, TARGETS, **common)
    cached = DrivingDataset(tiny_dataset, GRID, TARGETS, image_cache=cache, **common)
    for epoch in (0, 1):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in (0, 1, 7, len(plain) - 1):
            _assert_samples_equal(plain[i], cached[i])
    # the stored size itself (no resize) and uint8 images
    full = FrameCache.open(tiny_dataset, (64, 176), tmp_path / "cache")
    a = DrivingDataset(tiny_dataset, GRID, TARGETS, image_dtype="uint8")
    b = DrivingDataset(tiny_dataset, GRID, TARGETS, image_dtype="uint8", image_cache=full)
    _assert_samples_equal(a[5], b[5])
    # a cache for another size or data set is refused, naming both
    with pytest.raises(ValueError, match=r"holds images of \[64, 176\].*\[32, 88\]"):
        DrivingDataset(tiny_dataset, GRID, TARGETS, image_hw=HW, image_cache=full)


def test_reopening_reuses_and_a_changed_data_set_rebuilds(copy: Path) -> None:
    cache = FrameCache.open(copy, HW)
    assert cache.folder.parent == default_cache_dir(copy)
    stamp = (cache.folder / fc.COMPLETE).stat().st_mtime_ns
    again = FrameCache.open(copy, HW)
    assert again.folder == cache.folder and (cache.folder / fc.COMPLETE).stat().st_mtime_ns == stamp

    # an image rewritten behind the manifest's back: the cache no longer matches and is rebuilt
    recs = RecordedDataset(copy)
    rel = recs.frame(4).image_paths[0]
    Image.fromarray(np.full((64, 176, 3), 200, dtype=np.uint8)).save(copy / rel, quality=95)
    rebuilt = FrameCache.open(copy, HW)
    assert rebuilt.folder == cache.folder and (rebuilt.folder / fc.COMPLETE).stat().st_mtime_ns != stamp
    plain = DrivingDataset(copy, GRID, TARGETS, image_hw=HW)
    _assert_samples_equal(plain[4], DrivingDataset(copy, GRID, TARGETS, image_hw=HW, image_cache=rebuilt)[4])
    assert int(rebuilt.array[4, 0].mean()) > 150

    # a re-recorded data set (new manifest hashes) gets a new key; the stale cache is removed
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"][rel] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    fresh = FrameCache.open(copy, HW)
    assert fresh.folder != rebuilt.folder and not rebuilt.folder.exists()


def test_an_interrupted_build_resumes(copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = FrameCache.open(copy, HW, tmp_path / "reference")
    monkeypatch.setattr(fc, "CHUNK_FRAMES", 4)
    read, calls = fc._read_frame, []

    def killed_after_ten(records, row, frame_id):
        calls.append(frame_id)
        if len(calls) > 10:
            raise KeyboardInterrupt  # the build is killed
        return read(records, row, frame_id)

    monkeypatch.setattr(fc, "_read_frame", killed_after_ten)
    with pytest.raises(KeyboardInterrupt):
        FrameCache.open(copy, HW, tmp_path / "cache")
    (folder,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert json.loads((folder / fc.PROGRESS).read_text())["done"] == 8 and not (folder / fc.COMPLETE).exists()

    monkeypatch.setattr(fc, "_read_frame", lambda *a: (calls.append(a[2]), read(*a))[1])
    calls.clear()
    cache = FrameCache.open(copy, HW, tmp_path / "cache")
    assert len(calls) == len(cache) - 8  # resumed where the saved progress ended
    assert np.array_equal(cache.array, reference.array) and not (folder / fc.PROGRESS).exists()


def test_unreadable_frames_keep_their_error(copy: Path) -> None:
    recs = RecordedDataset(copy)
    rel = recs.frame(3).image_paths[2]
    data = (copy / rel).read_bytes()
    (copy / rel).write_bytes(data[: len(data) // 3])  # truncated JPEG
    cache = FrameCache.open(copy, HW)
    assert list(cache.errors) == [3]
    with pytest.raises(DataError, match=rel):
        DrivingDataset(copy, GRID, TARGETS, image_hw=HW, image_cache=cache)[3]
    plain = DrivingDataset(copy, GRID, TARGETS, image_hw=HW, on_error="skip")
    cached = DrivingDataset(copy, GRID, TARGETS, image_hw=HW, on_error="skip", image_cache=cache)
    with pytest.warns(UserWarning, match="skipping frame 'r0/00015'"):
        a = plain[3]
    with pytest.warns(UserWarning, match="skipping frame 'r0/00015'"):
        b = cached[3]
    _assert_samples_equal(a, b)
    assert plain.skipped == cached.skipped


def test_training_losses_are_the_same_with_the_cache(tiny_dataset: Path, tmp_path_factory) -> None:
    root = make_labelled_copy(tiny_dataset, tmp_path_factory)
    tmp = tmp_path_factory.mktemp("cache_training")
    aug = {"rotation_max_deg": 5.0, "brightness": 0.2}
    runs = {}
    for name, cache in (("jpeg", None), ("cache", str(tmp / "frames"))):
        cfg = micro_config(root, data={"image_cache": cache, "augment": aug}, max_steps=3)
        train(cfg, tmp / name)
        runs[name] = [r for r in read_metrics(tmp / name) if r["split"] == "train"]
    assert [r["loss_total"] for r in runs["jpeg"]] == [r["loss_total"] for r in runs["cache"]]
    assert list((tmp / "frames").glob(f"*/{fc.COMPLETE}"))
    # channels_last trains too, deterministically (same losses twice)
    cl = []
    for k in range(2):
        train(micro_config(root, channels_last=True, max_steps=2), tmp / f"cl{k}")
        cl.append([r["loss_total"] for r in read_metrics(tmp / f"cl{k}") if r["split"] == "train"])
    assert cl[0] == cl[1]
