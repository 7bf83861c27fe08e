"""Building blocks of the data format: the .npz encoder, instance-mask statistics, the ego future."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from riskdistill.data import format as fmt
from riskdistill.data.annotate import future_in_ego, mask_stats
from riskdistill.data.encode import encode_npz


def test_encode_npz_round_trips_through_np_load_without_pickle() -> None:
    arrays = {
        "f32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "scalar_str": np.array("r0/00001"),
        "names": np.array(["CAM_FRONT", "CAM_BACK"]),
        "empty": np.zeros((0, 4, 2), np.float32),
        "mask": np.array([True, False]),
        "i32": np.array(3, np.int32),
        "i8": np.array([1, -2], np.int8),
        "nan": np.array([np.nan, np.inf, -1.5]),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    }
    data = encode_npz(arrays)
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        assert sorted(z.files) == sorted(arrays)
        for k, v in arrays.items():
            assert z[k].dtype == v.dtype and z[k].shape == v.shape, k
            assert np.array_equal(z[k], v, equal_nan=v.dtype.kind == "f"), k
    # the .npy members are byte-identical to numpy's own
    ref = io.BytesIO()
    np.savez(ref, **{k: v for k, v in arrays.items() if k != "fortran"})
    ours, theirs = zipfile.ZipFile(io.BytesIO(data)), zipfile.ZipFile(ref)
    for k in arrays:
        if k != "fortran":
            assert ours.read(f"{k}.npy") == theirs.read(f"{k}.npy"), k
    assert encode_npz(arrays) == data  # deterministic
    with pytest.raises(TypeError, match="pickle"):
        encode_npz({"obj": np.array([{"a": 1}], dtype=object)})


def test_mask_stats_counts_and_boxes() -> None:
    inst = np.full((2, 6, 8), -1, np.int32)
    inst[0, 1:3, 2:5] = 1  # 2 rows x 3 cols
    inst[1, 4, 7] = 1
    inst[1, 0:6, 0] = 3
    inst[0, 0, 0] = 9  # beyond n_ids: ignored
    count, box = mask_stats(inst, 4)
    assert count.shape == (4, 2) and box.shape == (4, 2, 4)
    assert (
        count[1].tolist() == [6, 1] and count[3].tolist() == [0, 6] and count[0].sum() == count[2].sum() == 0
    )
    assert box[1, 0].tolist() == [2, 1, 5, 3] and box[1, 1].tolist() == [7, 4, 8, 5]
    assert box[3, 1].tolist() == [0, 0, 1, 6]
    assert np.isnan(box[3, 0]).all() and np.isnan(box[0]).all()


def test_future_in_ego_transforms_and_pads() -> None:
    # the ego drives along +y in the world (yaw 90 deg) at 1 m per step
    poses = np.stack([np.full(20, 5.0), np.arange(20.0), np.full(20, np.pi / 2)], axis=1)
    xy, yaw, valid = future_in_ego(poses, 2, 6, 5)
    assert valid.tolist() == [True, True, True, False, False, False]
    np.testing.assert_allclose(xy[:3], [[5, 0], [10, 0], [15, 0]], atol=1e-5)
    np.testing.assert_allclose(xy[3:], [[15, 0]] * 3, atol=1e-5)  # holds the last valid waypoint
    np.testing.assert_allclose(yaw, 0.0, atol=1e-6)
    xy, _, valid = future_in_ego(poses, 19, 6, 5)
    assert not valid.any() and np.allclose(xy, 0.0)


def test_paths_and_route_ids() -> None:
    assert fmt.frame_id("r0", 7) == "r0/00007"
    assert fmt.image_rel("r0", "CAM_FRONT", 7) == "routes/r0/CAM_FRONT/00007.jpg"
    assert fmt.ann_rel("r0", 7) == "routes/r0/ann/00007.npz"
    assert fmt.check_route_id("bench_Accident_0") == "bench_Accident_0"
    with pytest.raises(ValueError, match="folder name"):
        fmt.check_route_id("../evil")
    assert len(set(fmt.ANNOTATION_KEY_NAMES)) == len(fmt.ANNOTATION_KEYS)
    assert len(set(fmt.FRAME_SCHEMA.names)) == len(fmt.FRAME_COLUMNS)


def test_the_format_page_documents_every_column_and_key() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-format.md").read_text()
    assert f"version {fmt.FORMAT_VERSION}" in doc
    missing = [n for n in (*fmt.FRAME_SCHEMA.names, *fmt.ANNOTATION_KEY_NAMES) if f"| `{n}` |" not in doc]
    assert not missing, f"docs/data-format.md does not document {missing}"
