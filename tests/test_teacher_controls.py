"""Control teachers write label folders like any teacher; their maps carry no risk judgement."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from riskdistill.contracts.labels import risk_map_path
from riskdistill.data.storage import RecordedDataset
from riskdistill.data.targets import box_footprint_mask
from riskdistill.geometry import BevGrid
from riskdistill.teacher.build import TEACHERS, make_teacher
from riskdistill.teacher.runner import label_dataset

GRID = BevGrid.preset("tiny")


@pytest.fixture(scope="module")
def data_copy(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("controls") / "data"
    shutil.copytree(tiny_dataset, root)
    return root


def test_footprint_teacher_paints_every_object_at_one_score(data_copy: Path, tmp_path: Path) -> None:
    teacher = make_teacher("footprint", {"score": 0.7})
    res = label_dataset(data_copy, tmp_path / "fp", teacher, GRID, show_progress=False, run_dir=False)
    assert res.n_errors == 0 and res.labelled == len(RecordedDataset(data_copy))
    ds = RecordedDataset(data_copy)
    n_hot = 0
    for i in range(0, len(ds), 7):
        f = ds[i]
        m = np.load(risk_map_path(tmp_path / "fp", f.frame_id)).astype(np.float32)
        ann = f.annotation
        boxes = box_footprint_mask(
            GRID, ann["actor_center_ego"][:, :2], ann["actor_size_lwh"][:, :2], ann["actor_yaw_ego"]
        ).any(axis=0)
        inside = m[boxes]
        assert inside.size == 0 or np.allclose(inside, 0.7, atol=1e-3)  # one score on every footprint
        assert np.all(m[~boxes] < 0.7 - 1e-3) or not boxes.any()  # only a soft edge outside them
        n_hot += int(boxes.sum())
    assert n_hot > 0
    with pytest.raises(ValueError, match="score"):
        make_teacher("footprint", {"score": 0.0})
    with pytest.raises(ValueError, match=r"unknown teacher 'nope'; valid teachers: .*footprint"):
        make_teacher("nope", {})


@pytest.mark.parametrize("kind", [k for k in TEACHERS.names() if k != "vlm"])  # vlm: test_teacher_vlm_*
def test_every_registered_teacher_labels_a_recorded_frame(kind: str, data_copy: Path) -> None:
    """Registry-wide contract: a teacher built from an empty config labels a frame with a valid
    FrameLabel whose objects are actors of the frame, and has a stable config hash."""
    from riskdistill.teacher.runner import teacher_config_hash
    from riskdistill.teacher.schema import FrameLabel

    teacher = make_teacher(kind, {})
    frame = RecordedDataset(data_copy)[3]
    label = FrameLabel.model_validate(teacher.label(frame).model_dump())
    assert label.frame_id == frame.frame_id
    ids = set(np.asarray(frame.annotation["actor_id"]).tolist())
    assert {o.object_id for o in label.objects} <= ids
    assert teacher_config_hash(teacher) == teacher_config_hash(make_teacher(kind, {}))
