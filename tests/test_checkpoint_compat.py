"""A checkpoint whose image size, rig, BEV grid or label grid does not match the data or the evaluation it is
given is refused up front, with an error naming both values (training, resume, open and closed loop)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from riskdistill.contracts.compat import image_size_problem, rig_difference
from riskdistill.contracts.rig import RigPerturbation, load_rig, perturb_rig, resize_rig
from riskdistill.data.targets import DataError
from riskdistill.evaluation.closed_loop import evaluate_suite
from riskdistill.evaluation.generalisation import EvalVariant
from riskdistill.evaluation.open_loop import evaluate_open_loop
from riskdistill.models import build_student, save_student, student_config
from riskdistill.sim.suites import RouteSpec, Suite
from riskdistill.training import ConfigDriftError, train
from test_training_support import make_labelled_copy, micro_config

SHORT = RouteSpec(route_id="short_accident", scenario="Accident", seed=3, layout={"family": "straight"})


@pytest.fixture(scope="module")
def labelled(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_labelled_copy(tiny_dataset, tmp_path_factory)


def _checkpoint(tmp_path: Path, data_root: Path | None, **overrides) -> Path:
    torch.manual_seed(0)
    student = build_student(student_config("tiny", **{"image_hw": (32, 88), **overrides}))
    extra = {"data": {"root": str(data_root)}} if data_root is not None else None
    return save_student(student, tmp_path / "ckpt", extra_config=extra)


def test_image_size_and_rig_rules() -> None:
    assert image_size_problem((64, 176), (64, 176)) is None
    assert image_size_problem((32, 88), (64, 176)) is None  # a downscale keeping the aspect ratio
    assert "upsampled" in image_size_problem((128, 352), (64, 176))
    assert "aspect ratio" in image_size_problem((64, 64), (64, 176))
    b2d = load_rig("bench2drive")
    assert rig_difference(b2d, resize_rig(b2d, 32, 88)) is None  # resolution is not part of the rig
    assert "CAM_FRONT differs: x_m 2.25 (trained) vs 1.7 (given)" in rig_difference(b2d, load_rig("nuscenes"))
    pitched = perturb_rig(b2d, RigPerturbation(pitch_delta_deg=3.0))
    assert "pitch_deg 0.0 (trained) vs 3.0 (given)" in rig_difference(b2d, pitched)
    dropped = perturb_rig(b2d, RigPerturbation(drop_cameras=["CAM_BACK"]))
    assert "CAM_BACK" in rig_difference(b2d, dropped)
    assert rig_difference(b2d, dropped, cameras=["CAM_FRONT", "CAM_FRONT_LEFT"]) is None


def test_training_refuses_images_the_model_cannot_read(labelled: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"image_hw \[128, 352\].*\[64, 176\].*upsampled"):
        train(micro_config(labelled, model={"image_hw": [128, 352]}), tmp_path / "big")
    with pytest.raises(ValueError, match=r"image_hw \[64, 64\].*\[64, 176\].*aspect ratio"):
        train(micro_config(labelled, model={"image_hw": [64, 64]}), tmp_path / "square")


def test_resume_refuses_another_data_set_image_size_or_grid(
    labelled: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path / "data"
    shutil.copytree(labelled, root)
    cfg = micro_config(root, max_steps=2, checkpoint_every_steps=2)
    train(cfg, tmp_path / "run")
    longer = micro_config(root, max_steps=4, checkpoint_every_steps=2)
    # the model's image size or BEV grid changed: config drift, both values named
    with pytest.raises(ConfigDriftError, match=r"model.image_hw.*\[32, 88\].*\[16, 44\]"):
        train(micro_config(root, max_steps=4, model={"image_hw": [16, 44]}), tmp_path / "run", resume=True)
    grid = dict(json.loads((root / "labels" / "risk" / "meta.json").read_text())["grid"])
    with pytest.raises(ConfigDriftError, match=r"model.grid.resolution_m"):
        bigger = {**grid, "resolution_m": 2 * grid["resolution_m"]}
        train(micro_config(root, max_steps=4, model={"grid": bigger}), tmp_path / "run", resume=True)
    # the labels were remade on another grid: refused naming both grids
    meta_path = root / "labels" / "risk" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["grid"]["resolution_m"] *= 2
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"risk labels were made on grid .*the data set uses"):
        train(longer, tmp_path / "run", resume=True)
    meta["grid"]["resolution_m"] /= 2
    meta_path.write_text(json.dumps(meta))
    # the data set changed under the run (re-recorded): refused naming what changed
    manifest = json.loads((root / "manifest.json").read_text())
    old = manifest["files"]["frames.parquet"]
    manifest["files"]["frames.parquet"] = "f" * 64
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigDriftError, match=rf"frames_sha256: checkpoint '{old}' != now 'f{{64}}'"):
        train(longer, tmp_path / "run", resume=True)
    manifest["files"]["frames.parquet"] = old
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert train(longer, tmp_path / "run", resume=True).step == 4


def test_closed_loop_refuses_a_rig_the_student_was_not_trained_with(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    ckpt = _checkpoint(tmp_path, tiny_dataset)  # trained (as far as it tells) on the bench2drive rig
    one = Suite(name="one", routes=[SHORT])
    with pytest.raises(ValueError, match=r"rig mismatch: .*'bench2drive' of the training data.*'nuscenes'"):
        evaluate_suite(one, str(ckpt), tmp_path / "out", variant=EvalVariant(rig="nuscenes"))
    assert not list((tmp_path / "out" / "routes").glob("*.json"))
    user_rig = perturb_rig(load_rig("bench2drive"), RigPerturbation(height_delta_m=0.4))
    user_rig.save(tmp_path / "tall.json")
    with pytest.raises(ValueError, match=r"z_m 1.6 \(trained\) vs 2.0 \(given\)"):
        evaluate_suite(
            one, str(ckpt), tmp_path / "out2", variant=EvalVariant(rig=str(tmp_path / "tall.json"))
        )


def test_open_loop_refuses_mismatched_images_and_rigs(tiny_dataset: Path, tmp_path: Path) -> None:
    big = _checkpoint(tmp_path / "big", None, **{"image_hw": (128, 352)})
    with pytest.raises(
        ValueError, match=r"checkpoint .* has image_hw \[128, 352\], data set .* has \[64, 176\]"
    ):
        evaluate_open_loop(big, tiny_dataset, show_progress=False)
    ckpt = _checkpoint(tmp_path, tiny_dataset)
    other = tmp_path / "pitched"
    shutil.copytree(tiny_dataset, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["rig"]["cameras"][0]["pitch_deg"] = 3.0
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ValueError, match=r"rig mismatch.*CAM_FRONT differs: pitch_deg 0.0 \(trained\) vs 3.0"
    ):
        evaluate_open_loop(ckpt, other, show_progress=False)
