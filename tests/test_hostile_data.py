"""Hostile data sets: every corrupt file gets a clear error naming the file and the field from ``data
validate``, ``label`` and ``train`` (run through their Typer commands), no traceback, nothing outside the
data set root is read, files already written stay byte-identical, and a rerun repairs what it can."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from riskdistill.cli.data import info as info_command
from riskdistill.cli.data import validate as validate_command
from riskdistill.cli.label import label as label_command
from riskdistill.cli.train import train as train_command
from riskdistill.data import format as fmt
from riskdistill.data.storage import DataError, RecordedDataset
from riskdistill.data.targets import RiskMapTarget
from riskdistill.data.torch_dataset import DrivingDataset, collate_batch
from riskdistill.geometry import BevGrid
from test_hostile_support import cli, copy_dataset, flat, rehash, set_frame_column, snapshot
from test_training_support import MICRO

GRID = BevGrid.preset("tiny")
SRC = Path(__file__).resolve().parents[1] / "src"
F0, F1, F2, F3 = "r0/00000", "r0/00005", "r0/00010", "r0/00015"


@pytest.fixture
def data(tiny_dataset: Path, tmp_path: Path) -> Path:
    return copy_dataset(tiny_dataset, tmp_path / "data")


def ann_rel(frame_id: str) -> str:
    route, step = frame_id.split("/")
    return fmt.ann_rel(route, int(step))


def edit_annotation(root: Path, frame_id: str, **arrays: np.ndarray) -> str:
    """Replace annotation arrays of a frame (the manifest's sha256 updated: a writer that made this file)."""
    rel = ann_rel(frame_id)
    with np.load(root / rel, allow_pickle=False) as z:
        ann = {k: z[k] for k in z.files}
    ann.update(arrays)
    with open(root / rel, "wb") as f:
        np.savez(f, **ann)
    rehash(root, rel)
    return rel


def annotation(root: Path, frame_id: str) -> dict[str, np.ndarray]:
    with np.load(root / ann_rel(frame_id), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def validate(root: Path, *args: str) -> tuple[int, str]:
    code, out = cli(validate_command, "validate", root, *args)
    assert "Traceback" not in out, out
    return code, flat(out)


def label(root: Path, out: Path, *args: str) -> tuple[int, str]:
    code, text = cli(
        label_command, "label", "--data", root, "--out", out, "--no-progress", "--no-card", *args
    )
    assert "Traceback" not in text, text
    return code, flat(text)


def train(root: Path, run: Path, tmp_path: Path, *args: str) -> tuple[int, str]:
    """The micro baseline student (future trajectory and BEV occupancy targets) on the first 6 frames."""
    cfg = tmp_path / "micro.json"
    cfg.write_text(
        json.dumps(
            {
                "model": MICRO,
                "data": {"batch_size": 2, "val_fraction": 0.0, "max_train_samples": 6},
                "device": "cpu",
                "cpu_threads": 1,
                "progress": False,
                "max_steps": 3,
                "checkpoint_every_steps": None,
            }
        )
    )
    code, text = cli(
        train_command, "train", "--data", root, "--out", run, "--config", cfg, "--risk", "off", *args
    )
    assert "Traceback" not in text, text
    return code, flat(text)


def error_record(out: Path, frame_id: str) -> dict:
    return json.loads((out / "errors" / f"{frame_id}.json").read_text())


# ------------------------------------------------------------------------------------------ paths
def test_index_paths_outside_the_data_set_are_refused_by_every_reader(data: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.npz").write_bytes((data / ann_rel(F2)).read_bytes())  # readable, were it allowed
    (outside / "x.jpg").write_bytes((data / f"routes/r0/CAM_FRONT/{F3[3:]}.jpg").read_bytes())
    imgs = RecordedDataset(data).frame(1).image_paths
    set_frame_column(data, 1, "image_paths", ["/etc/passwd", *imgs[1:]])
    set_frame_column(data, 2, "annotation_path", "../outside/x.npz")
    imgs = list(RecordedDataset(data).frame(3).image_paths)
    back = RecordedDataset(data).camera_names.index("CAM_BACK")  # a camera the student reads
    imgs[back] = "routes/../../outside/x.jpg"
    set_frame_column(data, 3, "image_paths", imgs)
    rehash(data, fmt.FRAMES)

    code, out = validate(data)
    assert code == 1
    want = f"frames.parquet: frame '{F1}': field 'image_paths[0]' = '/etc/passwd' points outside the data set"
    assert want in out
    assert f"frame '{F2}': field 'annotation_path' = '../outside/x.npz' points outside" in out
    assert f"frame '{F3}': field 'image_paths[{back}]' = 'routes/../../outside/x.jpg' points outside" in out

    labels = tmp_path / "risk"
    code, out = label(data, labels, "--limit", "6")
    assert code == 1 and "1 frame(s) failed" in out  # the oracle reads no image: only F2 fails
    assert (
        "field 'annotation_path' = '../outside/x.npz' points outside the data set root"
        in (error_record(labels, F2)["message"])
    )

    code, out = train(data, tmp_path / "run", tmp_path)
    assert code == 0 and "skipped frames │ 3" in out, out
    log = (tmp_path / "run" / "log.txt").read_text()
    for fid, field in ((F1, "image_paths"), (F2, "annotation_path"), (F3, "image_paths")):
        line = next(ln for ln in log.splitlines() if f"skipped frame {fid}:" in ln)
        assert f"field '{field}'" in line and "points outside the data set root" in line, line
    ds = DrivingDataset(data, GRID, ["future_trajectory"])
    with pytest.raises(DataError, match="'/etc/passwd' points outside"):
        ds.load(1)


def test_frame_ids_that_would_escape_the_label_folder_are_refused(data: Path, tmp_path: Path) -> None:
    set_frame_column(data, 4, "frame_id", "../../../tmp/evil")
    rehash(data, fmt.FRAMES)
    want = "frames.parquet: frame_id '../../../tmp/evil' (row 4) is not '<route_id>/<step>'"
    code, out = validate(data)
    assert code == 1 and want in out
    code, out = label(data, tmp_path / "risk")
    assert code == 2 and want in out and not (tmp_path / "risk" / "maps").exists()
    code, out = train(data, tmp_path / "run", tmp_path)
    assert code == 2 and want in out


# ------------------------------------------------------------------------------------------ annotations
def test_nan_actor_positions_are_named_by_validate_label_and_train(data: Path, tmp_path: Path) -> None:
    center = annotation(data, F1)["actor_center_ego"].copy()
    center[0, 1] = np.nan
    rel = edit_annotation(data, F1, actor_center_ego=center)
    code, out = validate(data)
    assert code == 1 and "1 problem(s)" in out
    assert f"{rel}: field 'actor_center_ego' contains 1 NaN/inf value(s), first at index [0, 1]" in out

    labels = tmp_path / "risk"
    code, out = label(data, labels, "--limit", "6")
    err = error_record(labels, F1)
    assert code == 1 and err["kind"] == "DataError"
    assert f"{rel}: field 'actor_center_ego' contains 1 NaN/inf" in err["message"]
    assert "(needed by oracle teacher)" in err["message"] and f"{F1}: DataError:" in out
    assert len(list((labels / "records").rglob("*.json"))) == 5  # never a silently empty label

    code, out = train(data, tmp_path / "run", tmp_path)
    assert code == 0 and "skipped frames │ 1" in out
    assert f"skipped frame {F1}:" in (tmp_path / "run" / "log.txt").read_text()
    assert "'actor_center_ego' contains 1 NaN/inf" in (tmp_path / "run" / "log.txt").read_text()


def test_annotation_arrays_of_the_wrong_shape_are_named_by_validate_label_and_train(
    data: Path, tmp_path: Path
) -> None:
    box = annotation(data, F1)["actor_box2d"][:, :5]  # a camera short
    rel1 = edit_annotation(data, F1, actor_box2d=box)
    fut = annotation(data, F2)
    rel2 = edit_annotation(
        data, F2, future_xy=np.concatenate([fut["future_xy"], fut["future_xy"][-1:]])
    )  # one waypoint too many
    a = len(box)
    code, out = validate(data)
    assert code == 1 and "2 problem(s)" in out
    assert (
        f"{rel1}: field 'actor_box2d' has shape ({a}, 5, 4), expected [A, N, 4] "
        f"(N = 6 from the data set's manifest)" in out
    )
    assert (
        f"{rel2}: field 'future_xy' has shape (7, 2), expected [F, 2] (F = 6 from the data set's manifest)"
        in out
    )

    labels = tmp_path / "risk"
    code, out = label(data, labels, "--limit", "6")
    assert code == 1 and "2 frame(s) failed" in out
    assert "field 'actor_box2d' has shape" in error_record(labels, F1)["message"]
    assert "field 'future_xy' has shape (7, 2)" in error_record(labels, F2)["message"]

    code, out = train(data, tmp_path / "run", tmp_path)  # the student reads future_xy, not actor_box2d
    assert code == 0 and "skipped frames │ 1" in out
    assert (
        f"skipped frame {F2}: {data / rel2}: field 'future_xy' has shape (7, 2)"
        in (tmp_path / "run" / "log.txt").read_text()
    )


def test_collate_names_the_frames_when_sample_shapes_differ(data: Path) -> None:
    m = json.loads((data / fmt.MANIFEST).read_text())
    del m["settings"]["future_waypoints"]  # no data-set-wide F: each frame alone looks fine
    (data / fmt.MANIFEST).write_text(json.dumps(m))
    fut = annotation(data, F2)
    edit_annotation(
        data,
        F2,
        future_xy=np.concatenate([fut["future_xy"], fut["future_xy"][-1:]]),
        future_yaw=np.concatenate([fut["future_yaw"], fut["future_yaw"][-1:]]),
        future_valid=np.concatenate([fut["future_valid"], fut["future_valid"][-1:]]),
    )
    ds = DrivingDataset(data, GRID, ["future_trajectory"])
    with pytest.raises(DataError, match=rf"field 'future_waypoints' has shape \(7, 2\) in frame '{F2}' but"):
        collate_batch([ds[0], ds[2]])


def test_pickled_objects_are_never_loaded(data: Path, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ann = annotation(data, F1)
    ann["actor_id"] = np.array([Payload()], dtype=object)
    with open(data / ann_rel(F1), "wb") as f:
        np.savez(f, **ann)  # an object array: stored as a pickle
    rehash(data, ann_rel(F1))
    code, out = validate(data)
    assert (
        code == 1
        and f"{ann_rel(F1)}: unreadable annotation file (ValueError: Object arrays cannot be loaded" in out
    )
    labels = tmp_path / "risk"
    code, out = label(data, labels, "--limit", "4")
    assert (
        code == 1
        and "Object arrays cannot be loaded when allow_pickle=False" in error_record(labels, F1)["message"]
    )
    # a pickled risk map: a rerun relabels the frame instead of loading it
    with open(labels / "maps" / f"{F0}.npy", "wb") as f:
        np.save(f, np.array([Payload()], dtype=object), allow_pickle=True)
    code, out = label(data, labels, "--limit", "4")
    assert "re-rasterised │ 1" in out
    assert not marker.exists()
    assert pickle.loads(pickle.dumps(1)) == 1  # (pickle itself works: nothing above called it)


# ------------------------------------------------------------------------------------------ tables, images
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_broken_frame_table_is_a_clear_error_everywhere(data: Path, tmp_path: Path, damage: str) -> None:
    path = data / fmt.FRAMES
    body = path.read_bytes()
    path.write_bytes(body[: len(body) // 2] if damage == "truncated" else b"PAR1 this is not parquet at all")
    before = snapshot(data)
    want = f"{path}: unreadable frame table"
    code, out = label(data, tmp_path / "risk")
    assert code == 2 and want in out
    code, out = train(data, tmp_path / "run", tmp_path)
    assert code == 2 and want in out
    code, out = cli(info_command, "info", data)
    assert code == 2 and want in flat(out) and "Traceback" not in out
    code, out = validate(data)
    assert code == 1 and "frames.parquet: unreadable" in out
    assert snapshot(data) == before  # nothing written into the data set


def test_validate_decodes_every_image_whether_or_not_hashes_are_checked(data: Path) -> None:
    cut = f"routes/r0/CAM_FRONT/{F1[3:]}.jpg"
    (data / cut).write_bytes((data / cut).read_bytes()[:600])  # a JPEG cut short: its header is intact
    empty = f"routes/r0/CAM_BACK/{F2[3:]}.jpg"
    (data / empty).write_bytes(b"")
    png = f"routes/r1/CAM_FRONT_LEFT/{F3[3:]}.jpg"
    from PIL import Image

    Image.new("RGB", (176, 64)).save(data / png, format="PNG")
    for rel in (cut, empty, png):
        rehash(data, rel)  # the hashes agree: only decoding can tell
    for args in ((), ("--no-hashes",)):
        code, out = validate(data, *args)
        assert code == 1 and "3 problem(s)" in out, out
        assert f"{cut}: corrupt or unreadable image" in out
        assert f"{empty}: image file is empty (0 bytes)" in out
        assert f"{png}: not a JPEG image (PNG)" in out


def test_a_skipped_frame_has_its_reason_in_the_training_log(data: Path, tmp_path: Path) -> None:
    cut = f"routes/r0/CAM_BACK/{F1[3:]}.jpg"
    (data / cut).write_bytes((data / cut).read_bytes()[:600])
    code, out = train(data, tmp_path / "run", tmp_path)
    assert code == 0 and "skipped frames │ 1 (reasons in" in out
    log = (tmp_path / "run" / "log.txt").read_text()
    assert f"skipped frame {F1}: {data / cut}: corrupt or unreadable image (camera 'CAM_BACK' of frame" in log


# ------------------------------------------------------------------------------------------ risk maps
def test_corrupt_risk_maps_are_refused_by_train_and_repaired_by_a_rerun(data: Path, tmp_path: Path) -> None:
    labels = tmp_path / "risk"
    code, out = label(data, labels, "--limit", "8")
    assert code == 0, out
    good = snapshot(labels, ("records/**/*.json", "maps/**/*.npy"))
    maps = labels / "maps"
    np.save(maps / f"{F1}.npy", np.zeros((10, 10), np.float16))  # wrong size
    np.save(maps / f"{F2}.npy", np.full(GRID.shape, np.nan, np.float16))  # all NaN
    (maps / f"{F3}.npy").write_bytes((maps / f"{F3}.npy").read_bytes()[:100])  # truncated
    target = RiskMapTarget(labels)
    ds = RecordedDataset(data)
    for fid, why in (
        (F1, r"risk map has shape \(1, 10, 10\)"),
        (F2, "contains NaN"),
        (F3, "unreadable risk map"),
    ):
        with pytest.raises(DataError, match=why):
            target.build(ds.frame(ds.index_of(fid)), GRID)
    code, out = label(data, labels, "--limit", "8")
    assert code == 0 and "re-rasterised │ 3" in out and "already done │ 5" in out, out
    assert snapshot(labels, ("records/**/*.json", "maps/**/*.npy")) == good  # repaired, the rest untouched


# ------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize(
    ("command", "args", "names"),
    [
        ("label", ["--teacher-config", {"horizon_sec": 3}], ["horizon_sec", "horizon_s"]),
        ("label", ["--teacher", "vlm", "--backend", "openai", "--model-name", "m", "--teacher-config",
                   {"backend": {"timeout": 3}}], ["timeout", "timeout_s"]),
        ("label", ["--grid", "huge"], ["unknown --grid 'huge'", "tiny"]),
        ("train", ["--set", "optimzer.lr=1"], ["optimzer", "optimizer"]),
        ("train", ["--config", {"data": {"batchsize": 2}}], ["batchsize", "batch_size"]),
    ],
)  # fmt: skip
def test_config_typos_name_the_key_and_the_valid_ones(data, tmp_path, command, args, names) -> None:
    for k, a in enumerate(args):
        if isinstance(a, dict):
            (tmp_path / "c.json").write_text(json.dumps(a))
            args[k] = tmp_path / "c.json"
    if command == "label":
        code, out = label(data, tmp_path / "risk", *args)
    else:
        code, out = cli(train_command, "train", "--data", data, "--out", tmp_path / "run", *args)
        assert "Traceback" not in out
        out = flat(out)
    assert code == 2 and all(n in out for n in names), out
    assert not (tmp_path / "risk" / "records").exists() and not (tmp_path / "run" / "checkpoints").exists()


# ------------------------------------------------------------------------------------------ kill
def test_killed_training_resumes_from_its_last_checkpoint(data: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "micro.json"
    cfg.write_text(json.dumps({
        "model": MICRO, "data": {"batch_size": 2, "val_fraction": 0.0, "max_train_samples": 8},
        "device": "cpu", "cpu_threads": 1, "progress": False, "max_steps": 40, "checkpoint_every_steps": 2,
        "keep_last_checkpoints": 100,
    }))  # fmt: skip
    run = tmp_path / "run"
    args = ["train", "--data", data, "--out", run, "--config", cfg, "--risk", "off"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "riskdistill.cli.main", *map(str, args)],
        env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    latest = run / "checkpoints" / "latest.json"
    try:
        deadline = time.monotonic() + 300
        while not latest.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "training ended before a checkpoint"
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    step = json.loads(latest.read_text())["step"]
    assert step < 40, "the run finished before it was killed"
    kept = {  # the checkpoints the killed run had finished (up to the one latest.json names)
        k: v
        for k, v in snapshot(run / "checkpoints", ("step_*/**/*",)).items()
        if int(k.split("/")[0].removeprefix("step_")) <= step
    }
    assert kept
    code, out = cli(train_command, "train", "--out", run, "--resume")
    assert code == 0 and "Traceback" not in out, out
    assert "40 / 40" in flat(out) and "resumed from" in flat(out)
    after = snapshot(run / "checkpoints", ("step_*/**/*",))
    assert {k: after[k] for k in kept} == kept  # checkpoints of the killed run are untouched
