"""Start an experiment part from another part's recorded and labelled data.

A study split into parts (by variant: ``baseline,rsd`` then ``corridor``) records and labels the same data in
every part: the recording depends on the data plan, the teacher and the code, not on the seed or the variants.
:func:`reuse_data` hard-links (copies where links are impossible) the finished recordings and labels of one
experiment folder into a new one and marks their stages finished, so the new part starts at training::

    riskdistill experiment reuse-data runs/study-s0-baseline-rsd runs/study-s0-corridor \\
        --config results/study/config.json --commit <the study's commit>
    riskdistill experiment --preset study --seeds 0 --set 'variants=["corridor"]' --out runs/study-s0-corridor

The data are the very frames the source part's students trained and were evaluated on, which keeps the
variants of a seed paired on identical data. Refused, naming the field or file: a source whose data plan,
teacher, image size or teacher grid differ from the target configuration; a source run on another commit (or
on several); a source without finished recording and labelling stages; a target that already holds data.
The reused stage records say where they came from (``reused_from``) and count 0 s in this part (the study
merge lists them as reused, not as time spent twice). The frame cache (``cache/``) is not linked: a part
builds its own, so nothing it writes can reach the source folder through a shared file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riskdistill.experiment.config import ExperimentConfig
from riskdistill.experiment.pipeline import run_commits
from riskdistill.experiment.stages import StageRunner
from riskdistill.io import load_json_object

#: Stages whose outputs live under ``data/`` and depend only on DATA_FIELDS and the code.
DATA_STAGE_KINDS = ("record ", "label ")
#: The folders under a recorded data set that are not linked (each part builds its own).
SKIPPED_DIRS = ("cache",)


@dataclass(frozen=True)
class ReuseResult:
    stages: list[str]  # the stages marked finished in the target
    files: int  # files linked or copied
    copied: int  # of those, copied because a hard link was impossible


def data_fields(cfg: ExperimentConfig) -> dict[str, Any]:
    """What the recording and the labels depend on (besides the code)."""
    d = cfg.to_dict()
    return {
        "data": d["data"],
        "teacher": d["teacher"],
        "image_hw": list(cfg.image_hw),
        "teacher_grid": cfg.teacher_grid,
    }


def _load_config(path: Path) -> ExperimentConfig:
    return ExperimentConfig.from_dict(
        load_json_object(path, ValueError, "an experiment configuration"), source=str(path)
    )


def _source_commit(src: Path) -> str | None:
    commits = set(run_commits(src))
    if not commits:
        raise ValueError(f"{src}: no run.json; not an experiment folder")
    if len(commits) > 1:
        raise ValueError(
            f"{src}: ran on several git commits {sorted(map(str, commits))}; its data are not one run's"
        )
    return commits.pop()


def _rewrite(obj: Any, old: str, new: str) -> Any:
    """``obj`` with every string under the folder ``old`` moved under ``new``."""
    if isinstance(obj, str):
        return new + obj[len(old) :] if obj == old or obj.startswith(old + "/") else obj
    if isinstance(obj, dict):
        return {k: _rewrite(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rewrite(v, old, new) for v in obj]
    return obj


def _link_tree(src: Path, dst: Path) -> tuple[int, int]:
    """Hard-link every file of ``src`` into ``dst`` (copy across file systems), skipping SKIPPED_DIRS."""
    files = copied = 0
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            a, b = Path(dirpath) / name, dst / rel / name
            try:
                os.link(a, b)
            except OSError:
                shutil.copy2(a, b)
                copied += 1
            files += 1
    return files, copied


def reuse_data(
    src: str | Path, out: str | Path, target: ExperimentConfig, commit: str | None = None
) -> ReuseResult:
    """Link ``src``'s recorded and labelled data into the new experiment folder ``out`` (see the module
    docstring); ``target`` is the configuration the part in ``out`` will run, ``commit`` the git commit it
    will run at (None: not checked)."""
    src, out = Path(src), Path(out)
    cfg_path = src / "experiment.json"
    if not cfg_path.is_file():
        raise ValueError(f"{src}: no experiment.json; not an experiment folder")
    have, want = data_fields(_load_config(cfg_path)), data_fields(target)
    diff = sorted(k for k in want if have[k] != want[k])
    if diff:
        detail = "; ".join(f"{k}: {have[k]!r} there, {want[k]!r} wanted" for k in diff)
        raise ValueError(f"{cfg_path}: its data differ from the target configuration's ({detail})")
    src_commit = _source_commit(src)
    if commit is not None and src_commit != commit:
        raise ValueError(
            f"{src / 'run.json'}: recorded at git commit {src_commit}, the part runs at {commit}"
        )
    if (out / "data").exists():
        raise ValueError(f"{out / 'data'} exists: reuse data only into a new experiment folder")

    stage_dir = src / "stages"
    reused = {}
    # only the data stages' records (record_*.json, label_*.json; StageRunner's file names) are read
    for path in sorted(p for k in DATA_STAGE_KINDS for p in stage_dir.glob(f"{k.strip()}_*.json")):
        rec = load_json_object(path, ValueError, "a stage record")
        if str(rec.get("stage", "")).startswith(DATA_STAGE_KINDS):
            reused[rec["stage"]] = rec
    missing = [s for s in ("record train", "record bench", "label train", "label bench") if s not in reused]
    if missing:
        raise ValueError(f"{stage_dir}: stages {missing} have not finished; nothing to reuse yet")
    old_prefix = str(Path(reused["record train"]["outputs"]["path"]).parent.parent)

    partial = out / "data.partial"  # left by a killed run: start the links again
    if partial.exists():
        shutil.rmtree(partial)
    files, copied = _link_tree(src / "data", partial)
    partial.rename(out / "data")
    runner = StageRunner(out)
    for name, rec in sorted(reused.items()):
        provenance = {"folder": str(src), "seconds": rec.get("seconds"), "git_commit": src_commit}
        runner.record(name, _rewrite(rec["outputs"], old_prefix, str(out)), 0.0, {"reused_from": provenance})
    return ReuseResult(stages=sorted(reused), files=files, copied=copied)
