"""Reusing a finished part's recorded and labelled data in a new part (experiment/reuse.py) on constructed
folders: the files are hard links, the stage records point into the new folder and say where they came
from, the frame cache stays behind, and a source with other data, another commit, unfinished stages or a
target that holds data already are refused by name. The pipeline starting from reused data and the merge's
timing table: tests/test_experiment.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from riskdistill.experiment import StageRunner, experiment_config
from riskdistill.experiment.reuse import reuse_data
from riskdistill.io import atomic_write_json

COMMIT = "6fcbc3f"
DATA_STAGES = ("record train", "record bench", "label train", "label bench")


def source_part(root: Path, commit: str = COMMIT, stages=DATA_STAGES, **over) -> Path:
    """An experiment folder after its recording and labelling, as the pipeline leaves it."""
    cfg = experiment_config("quick", **over)
    atomic_write_json(root / "experiment.json", cfg.to_dict())
    atomic_write_json(root / "run.json", {"git_commit": commit})
    runner = StageRunner(root)
    for split in ("train", "bench"):
        data = root / "data" / split
        (data / "routes" / "r0").mkdir(parents=True)
        (data / "routes" / "r0" / "frames.parquet").write_bytes(b"frames of " + split.encode())
        (data / "labels" / "risk" / "maps").mkdir(parents=True)
        (data / "labels" / "risk" / "maps" / "f0.npy").write_bytes(b"map")
        (data / "cache" / "frames" / "k").mkdir(parents=True)
        (data / "cache" / "frames" / "k" / "images.npy").write_bytes(b"decoded")
        if f"record {split}" in stages:
            runner.record(f"record {split}", {"path": str(data), "frames": 3}, 12.5)
        if f"label {split}" in stages:
            out = {"path": str(data / "labels" / "risk"), "run_dir": None, "card": str(data / "labels/x.md")}
            runner.record(f"label {split}", out, 4.0)
    runner.record("train baseline-s0", {"checkpoint": str(root / "train/baseline-s0")}, 99.0)
    return root


def test_the_data_are_linked_and_the_stages_point_into_the_new_part(tmp_path: Path) -> None:
    src, out = source_part(tmp_path / "a"), tmp_path / "b"
    target = experiment_config("quick", seeds=[1], variants=["corridor"], eval={"rig_shifts": []})
    res = reuse_data(src, out, target, commit=COMMIT)
    assert res.stages == sorted(DATA_STAGES) and res.files == 4 and res.copied == 0
    for rel in ("data/train/routes/r0/frames.parquet", "data/bench/labels/risk/maps/f0.npy"):
        assert (out / rel).stat().st_ino == (src / rel).stat().st_ino  # one file, not a copy
    assert not (out / "data" / "train" / "cache").exists()  # each part builds its own frame cache
    assert not (out / "data.partial").exists()
    rec = json.loads((out / "stages" / "label_train.json").read_text())
    assert rec["stage"] == "label train" and rec["seconds"] == 0.0
    assert rec["outputs"]["path"] == str(out / "data" / "train" / "labels" / "risk")
    assert (
        rec["outputs"]["card"] == str(out / "data" / "train" / "labels/x.md")
        and rec["outputs"]["run_dir"] is None
    )
    assert rec["reused_from"] == {"folder": str(src), "seconds": 4.0, "git_commit": COMMIT}
    assert not (out / "stages" / "train_baseline-s0.json").exists()  # only the data stages
    # the new part resumes them as finished: the pipeline skips recording and labelling
    assert StageRunner(out).done("record bench")["outputs"]["path"] == str(out / "data" / "bench")


def test_a_killed_reuse_starts_its_links_again(tmp_path: Path) -> None:
    src, out = source_part(tmp_path / "a"), tmp_path / "b"
    (out / "data.partial" / "train").mkdir(parents=True)
    (out / "data.partial" / "train" / "half").write_text("left by a killed run")
    reuse_data(src, out, experiment_config("quick"))
    assert not (out / "data.partial").exists() and not (out / "data" / "train" / "half").exists()


@pytest.mark.parametrize(
    ("make_source", "target_over", "commit", "match"),
    [
        (
            lambda p: source_part(p),
            {"data": {"steer_noise": 0.25}},
            COMMIT,
            r"experiment.json: its data differ.*data:",
        ),
        (
            lambda p: source_part(p),
            {"data": {"image_hw": [128, 352]}, "train": {"overrides": ["model.image_hw=[128,352]"]}},
            COMMIT,
            r"image_hw: \[64, 176\] there, \[128, 352\]",
        ),
        (
            lambda p: source_part(p),
            {"teacher": {"options": {"min_risk": 0.2}}},
            COMMIT,
            r"\(teacher: .* there, .*'min_risk': 0.2",
        ),
        (
            lambda p: source_part(p, commit="beef"),
            {},
            COMMIT,
            r"run.json: recorded at git commit beef, the part runs at 6fcbc3f",
        ),
        (
            lambda p: source_part(p, stages=("record train", "record bench", "label train")),
            {},
            None,
            r"\['label bench'\] have not finished",
        ),
    ],
    ids=["data-plan", "image-size", "teacher", "commit", "unfinished"],
)
def test_a_source_that_does_not_match_is_refused_by_name(
    tmp_path: Path, make_source, target_over: dict, commit: str | None, match: str
) -> None:
    src, out = make_source(tmp_path / "a"), tmp_path / "b"
    with pytest.raises(ValueError, match=match):
        reuse_data(src, out, experiment_config("quick", **target_over), commit=commit)
    assert not (out / "data").exists() and not (out / "stages").exists()  # nothing half-made


def test_a_source_of_several_commits_or_a_target_with_data_is_refused(tmp_path: Path) -> None:
    src = source_part(tmp_path / "a")
    atomic_write_json(src / "run.before-20261207T000000Z.json", {"git_commit": "older"})
    with pytest.raises(ValueError, match=r"several git commits \['6fcbc3f', 'older'\]"):
        reuse_data(src, tmp_path / "b", experiment_config("quick"))
    (src / "run.before-20261207T000000Z.json").unlink()
    (tmp_path / "b" / "data").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"b/data exists: reuse data only into a new experiment folder"):
        reuse_data(src, tmp_path / "b", experiment_config("quick"))
    with pytest.raises(ValueError, match=r"no experiment.json; not an experiment folder"):
        reuse_data(tmp_path / "b", tmp_path / "c", experiment_config("quick"))
