"""viz frame: a recorded frame drawn as camera mosaic + BEV panel, saved as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_HW
from riskdistill.cli.report import frame
from riskdistill.data import RecordedDataset
from riskdistill.viz.frame import (
    BEV_AHEAD_FRACTION,
    BEV_EXTENT_M,
    bev_panel_box,
    render_frame,
    save_frame_png,
)
from riskdistill.viz.topdown import FUTURE_COLOR

H, W = TINY_HW


@pytest.fixture(scope="session")
def dataset(tiny_dataset: Path) -> Path:
    return tiny_dataset


def _moving_index(dataset: Path) -> int:
    ds = RecordedDataset(dataset)
    for i in range(len(ds)):
        ann = ds.frame(i).annotation
        if ann["future_valid"].any() and float(ann["future_xy"][ann["future_valid"]][-1, 0]) > 3.0:
            return i
    raise AssertionError("no frame with the ego moving forward")


def test_render_frame_png(dataset: Path, tmp_path: Path) -> None:
    i = _moving_index(dataset)
    out = save_frame_png(dataset, i, tmp_path / "sub" / "frame.png")
    with Image.open(out) as im:
        assert im.format == "PNG"
        img = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(img, render_frame(dataset, i))
    h, w = img.shape[:2]
    assert h >= 2 * H and 200 <= h <= 2000
    assert w > h  # mosaic plus a square BEV
    x0, y0, x1, y1 = bev_panel_box(img)
    assert x1 - x0 == y1 - y0 == h
    bev = img[y0:y1, x0:x1].astype(int)
    is_future = np.all(np.abs(bev - np.array(FUTURE_COLOR)) <= 2, axis=-1)
    rows, cols = np.nonzero(is_future)
    assert len(rows) > 10
    # the ego rear axle sits BEV_AHEAD_FRACTION * extent below the panel centre; the future lies above it
    ego_row = h / 2 + BEV_AHEAD_FRACTION * BEV_EXTENT_M * h / BEV_EXTENT_M
    assert rows.min() < ego_row - 5
    assert abs(np.median(cols) - h / 2) < h / 6


def test_out_of_range_index(dataset: Path, tmp_path: Path) -> None:
    n = len(RecordedDataset(dataset))
    with pytest.raises(IndexError, match=f"index {n} out of range"):
        render_frame(dataset, n)
    with pytest.raises(IndexError, match="out of range"):
        render_frame(dataset, -1)


def test_frame_command(dataset: Path, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command("frame")(frame)
    app.command("other")(lambda: None)
    runner = CliRunner()
    out = tmp_path / "f.png"
    res = runner.invoke(app, ["frame", str(dataset), "--index", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.is_file()
    res = runner.invoke(app, ["frame", str(dataset), "--index", "999", "--out", str(out)])
    assert res.exit_code != 0
    assert "out of range" in " ".join(res.output.split())
