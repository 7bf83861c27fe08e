"""The main job end to end (``riskdistill demo --quick``) and the pieces of the experiment pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from riskdistill.cli.main import app
from riskdistill.config import ConfigError
from riskdistill.experiment import ExperimentConfig, StageRunner, experiment_config, merge_study

runner = CliRunner()


def test_stage_runner_runs_once_and_resumes(tmp_path: Path) -> None:
    calls: list[str] = []

    def stage() -> dict:
        calls.append("x")
        return {"value": 41 + len(calls)}

    first = StageRunner(tmp_path).run("make thing/1", stage)
    again = StageRunner(tmp_path)
    second = again.run("make thing/1", stage)
    assert first == second == {"value": 42}
    assert calls == ["x"]  # not recomputed
    assert again.timings[0].resumed and not StageRunner(tmp_path).timings


def test_stage_runner_failed_stage_is_not_recorded(tmp_path: Path) -> None:
    def boom() -> dict:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        StageRunner(tmp_path).run("s", boom)
    assert StageRunner(tmp_path).done("s") is None
    assert StageRunner(tmp_path).run("s", lambda: {"ok": True}) == {"ok": True}


def test_stage_runner_rejects_a_foreign_record(tmp_path: Path) -> None:
    r = StageRunner(tmp_path)
    r.run("a", lambda: {})
    (tmp_path / "stages" / "b.json").write_text((tmp_path / "stages" / "a.json").read_text())
    with pytest.raises(ValueError, match="not the record of stage 'b'"):
        r.done("b")


def test_experiment_config_validation() -> None:
    with pytest.raises(ConfigError, match="valid keys"):
        ExperimentConfig.from_dict({"data": {"train_rutes": 3}})
    with pytest.raises(ValueError, match="valid presets"):
        experiment_config("huge")
    with pytest.raises(ConfigError, match="variants"):
        ExperimentConfig.from_dict({"variants": ["rsd", "rsd"]})
    cfg = experiment_config("full", train={"max_steps": 5})
    assert cfg.train.max_steps == 5 and cfg.variants == ["baseline", "rsd", "control"]
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.slow
def test_demo_quick_end_to_end_and_resume(tmp_path: Path) -> None:
    from riskdistill.data import validate_dataset
    from riskdistill.evaluation.leaderboard import load_checkpoint_json
    from riskdistill.models import load_student

    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--quick", "--workers", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "report:" in res.output and "stage timings" in res.output

    # data sets, labels and their card
    for split in ("train", "bench"):
        assert validate_dataset(out / "data" / split) == []
        card = json.loads((out / "data" / split / "labels" / "risk" / "label_card.json").read_text())
        assert card["coverage"]["fraction"] == 1.0 and card["coverage"]["frames_failed"] == 0
        assert list((out / "data" / split / "labels" / "risk" / "maps").rglob("*.npy"))

    # the two students: same budget, only the RiskHead differs
    base = load_student(out / "train" / "baseline-s0" / "checkpoints" / "final")
    rsd = load_student(out / "train" / "rsd-s0" / "checkpoints" / "final")
    assert not base.has_risk_head and rsd.has_risk_head

    # evaluations: leaderboard JSON per rig, open-loop metrics, comparison, report
    for name in ("baseline-s0", "rsd-s0"):
        ol = json.loads((out / "eval" / name / "open_loop.json").read_text())["metrics"]
        assert ol["l2_2s"] > 0.0
        for rig in ("nominal", "pitch-3deg"):
            records = load_checkpoint_json(out / "eval" / name / f"closed_loop-{rig}" / "results.json")
            assert len(records) == 2 and {"route_id", "status", "infractions", "scores"} <= set(records[0])
    assert "risk_l1" in json.loads((out / "eval" / "rsd-s0" / "open_loop.json").read_text())["metrics"]
    assert (out / "eval" / "rsd-s0" / "closed_loop-nominal" / "risk_outcome.json").is_file()
    comparison = json.loads((out / "compare" / "comparison.json").read_text())
    assert comparison
    html = (out / "report" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "baseline" in html and "rsd" in html

    # a rerun resumes: every stage is skipped and nothing is recomputed
    stamp = (out / "stages" / "train_rsd-s0.json").stat().st_mtime_ns
    res = runner.invoke(app, ["demo", "--quick", "--workers", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    n_stages = len(list((out / "stages").glob("*.json")))
    assert n_stages == 14 and res.output.count("done before, skipped") == n_stages
    assert (out / "stages" / "train_rsd-s0.json").stat().st_mtime_ns == stamp

    # the same folder with another configuration is refused
    res = runner.invoke(
        app, ["experiment", "--preset", "quick", "--out", str(out), "--set", "train.max_steps=7"]
    )
    assert res.exit_code == 2 and "another configuration" in res.output

    # a further part (the corridor control, as a study split by variant runs it) starts from this part's
    # recorded and labelled data: the same files, recording and labelling skipped, merged with it
    part = tmp_path / "corridor"
    sets = ["--set", 'variants=["corridor"]', "--set", "eval.rig_shifts=[]"]
    res = runner.invoke(app, ["experiment", "reuse-data", str(out), str(part), "--preset", "quick", *sets])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["experiment", "--preset", "quick", "--out", str(part), *sets])
    assert res.exit_code == 0, res.output
    assert res.output.count("done before, skipped") == 4 and "label train control-corridor" in res.output
    for rel in ("data/train/frames.parquet", "data/bench/labels/risk/label_card.json"):
        assert (part / rel).stat().st_ino == (out / rel).stat().st_ino
    merged = merge_study([out, part], tmp_path / "merged", allow_missing=True, draws=100)
    assert [(m["variant"], m["rig"]) for m in merged.missing] == [("corridor", "pitch-3deg")]
    assert merged.study["variants"] == ["baseline", "rsd", "corridor"]
    readme = (tmp_path / "merged" / "README.md").read_text()
    row = next(
        line
        for line in readme.splitlines()
        if line.startswith("| seeds [0], variants corridor, rigs nominal |")
    )
    assert row.split(" | ")[1] == "reused" and row.split(" | ")[2] != "reused"  # control labels ran there
    assert "whose time is counted there" in readme


def test_resume_check_accepts_an_older_config_file_and_refuses_a_different_one(tmp_path: Path) -> None:
    from riskdistill.experiment.pipeline import check_resume

    cfg = experiment_config("quick")
    check_resume(cfg, tmp_path)  # writes experiment.json
    old = json.loads((tmp_path / "experiment.json").read_text())
    del old["eval"]["rerun"]  # written before the key existed: the default fills it in
    (tmp_path / "experiment.json").write_text(json.dumps(old))
    check_resume(cfg, tmp_path)
    with pytest.raises(ValueError, match=r"another configuration \(differs in \['train'\]\)"):
        check_resume(experiment_config("quick", train={"max_steps": 9}), tmp_path)
