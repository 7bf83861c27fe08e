"""The study end to end on the ``quick`` preset: two seeds run as two local parts and merged give the same
result files as the one-part run of both seeds, which here runs its training jobs and closed-loop route
batches as Ray tasks (a local ``ray.init(num_cpus=2)`` bound to 127.0.0.1): so the split by seed and the
Ray path are both checked against a local run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from riskdistill import runs
from riskdistill.experiment import Execution, config_for_seeds, experiment_config, merge_study, run_experiment

#: Files of a result folder that depend only on the cells (not on how the study was split or timed).
SAME = ("comparison.json", "comparison.md", "diagnostics.json", "diagnostics.md", "config.json", "suite.json")


def tiny_study():
    return experiment_config(
        "quick",
        seeds=[0, 1],
        variants=["baseline", "rsd", "corridor"],
        eval={"rig_shifts": [], "rerun": False},  # shifted rigs: tests/test_study_merge.py
    )


def result_files(folder: Path) -> dict[str, object]:
    files = {name: (folder / name).read_text() for name in SAME}
    for sub in ("seeds", "routes"):
        for p in sorted((folder / sub).rglob("*.json")):
            files[str(p.relative_to(folder))] = json.loads(p.read_text())
    return files


@pytest.mark.slow
def test_two_parts_merged_equal_the_one_part_ray_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    # Merge refuses parts from different commits; pin the commit read at the start so that a commit made
    # while the test runs (minutes) cannot split its parts. Every reader imports it from runs at call time.
    pinned = runs.git_commit()
    monkeypatch.setattr(runs, "git_commit", lambda cwd=None: pinned)
    quiet = Console(quiet=True)
    cfg = tiny_study()
    for seed in (0, 1):  # one part per seed, locally
        run_experiment(config_for_seeds(cfg, [seed]), tmp_path / f"part-s{seed}", quiet, show_progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:  # both seeds in one folder, training and closed loop as Ray tasks
        execution = Execution(ray_address="auto", routes_per_task=1)
        res = run_experiment(cfg, tmp_path / "one", quiet, show_progress=False, execution=execution)
    finally:
        ray.shutdown()
    assert {k.split("/")[0] for k in res.summaries} == {f"{v}-s{s}" for v in cfg.variants for s in (0, 1)}

    split = merge_study([tmp_path / "part-s0", tmp_path / "part-s1"], tmp_path / "results" / "split")
    whole = merge_study([tmp_path / "one"], tmp_path / "results" / "whole")
    assert split.missing == [] and whole.missing == []
    a, b = result_files(split.out_dir), result_files(whole.out_dir)
    assert a.keys() == b.keys() and len(a) == len(SAME) + 2 + 3 * 2  # seeds/s*.json, routes/*/*.json
    for name in a:
        assert a[name] == b[name], name
    study = json.loads((split.out_dir / "study.json").read_text())
    assert [p["seeds"] for p in study["parts"]] == [[0], [1]] and study["seeds"] == [0, 1]
    # the corridor control's maps share the teacher's statistics (label_stats.json of each part)
    stats = json.loads(
        (tmp_path / "part-s0" / "data/train/labels/control-corridor/label_stats.json").read_text()
    )
    assert stats["corridor"]["hot_fraction_mean"] == pytest.approx(
        stats["teacher"]["hot_fraction_mean"], rel=0.1
    )
    # the statistics cover every pair on every rig and route selection present in the routes
    comps = {(c["a"], c["b"], c["rig"]) for c in split.statistics["comparisons"]}
    assert comps == {("rsd", "baseline", "nominal"), ("rsd", "corridor", "nominal")}
    readme = (split.out_dir / "README.md").read_text()
    assert "rsd - baseline" in readme and "Missing: nothing" in readme
