"""The study's configuration: the ``study`` preset, controls as variants, parts by seed (``--seeds``), the
pairs compared, and a resumed part that keeps the earlier commit's run.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from riskdistill.cli.main import app
from riskdistill.config import ConfigError
from riskdistill.experiment import ExperimentConfig, config_for_seeds, experiment_config
from riskdistill.experiment.pipeline import keep_earlier_run_json
from riskdistill.runs import git_commit


def test_the_study_preset() -> None:
    cfg = experiment_config("study")
    assert cfg.seeds == [0, 1, 2] and cfg.study_seeds == [0, 1, 2] and cfg.train.preset == "cpu"
    assert cfg.variants == ["baseline", "rsd", "corridor"]
    assert cfg.pairs == [("rsd", "baseline"), ("rsd", "corridor")]
    assert cfg.eval.closed_loop_routes is None and len(cfg.eval.rig_shifts) >= 3
    assert cfg.rigs[0] == "nominal" and cfg.data.bench_routes_per_type == 5  # all 125 bench routes
    assert [cfg.control_kind(v) for v in cfg.variants] == [None, None, "corridor"]
    controls = ["shuffled", "corridor", "footprint"]
    every = experiment_config("study", variants=["baseline", "rsd", *controls])
    assert every.pairs == [("rsd", "baseline")] + [("rsd", c) for c in controls]
    assert [every.control_kind(v) for v in every.variants] == [None, None, *controls]
    assert experiment_config("demo").control_kind("control") == "shuffled"  # train.control_targets
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    # no RSD variant: every variant against the first
    assert experiment_config("quick", variants=["baseline", "corridor"]).pairs == [("corridor", "baseline")]


def test_the_128x352_study_is_the_study_with_the_larger_image_student(tmp_path: Path) -> None:
    """``study-128x352`` changes only the image size and the student every variant fine-tunes."""
    from riskdistill.experiment.config import SIM_STUDENT_128
    from riskdistill.experiment.pipeline import variant_train_config

    cfg, study = experiment_config("study-128x352"), experiment_config("study")
    assert cfg.image_hw == (128, 352) and study.image_hw == (64, 176)
    a, b = cfg.to_dict(), study.to_dict()
    for d in (a, b):
        d.pop("name"), d["data"].pop("image_hw"), d["train"].pop("overrides")
    assert a == b
    for variant in cfg.variants:
        run = variant_train_config(cfg, tmp_path, variant, seed=1)
        base = variant_train_config(study, tmp_path, variant, seed=1)
        assert run.model.image_hw == run.data.image_hw == (128, 352)
        assert run.init_weights == SIM_STUDENT_128 and run.init_weights_prefixes == base.init_weights_prefixes
        assert run.model.heads.risk.enabled == base.model.heads.risk.enabled
        assert run.optimizer == base.optimizer and run.max_steps == base.max_steps


def test_a_part_runs_some_seeds_of_the_study() -> None:
    part = config_for_seeds(experiment_config("study"), [1])
    assert part.seeds == [1] and part.all_seeds == [0, 1, 2] and part.study_seeds == [0, 1, 2]
    assert config_for_seeds(part, [0, 2]).seeds == [0, 2]  # still the same study
    with pytest.raises(ValueError, match=r"seeds \[5\] are not among the study's seeds \[0, 1, 2\]"):
        config_for_seeds(part, [5])
    with pytest.raises(ConfigError, match="not among the study's seeds"):
        ExperimentConfig.from_dict({"seeds": [3], "all_seeds": [0, 1]})
    with pytest.raises(ConfigError, match="not understood"):
        experiment_config("study", eval={"rig_shifts": ["tilt+1"]})  # fails at load, not after training
    with pytest.raises(ConfigError, match="distinct shifts other than nominal"):
        experiment_config("study", eval={"rig_shifts": ["nominal"]})


def test_cli_seeds_errors_name_the_problem(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        app, ["experiment", "--preset", "study", "--seeds", "7", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "not among the study's seeds" in res.output
    res = runner.invoke(
        app, ["experiment", "--preset", "study", "--seeds", "one", "--out", str(tmp_path / "y")]
    )
    assert res.exit_code == 2 and "comma-separated integers" in res.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_resume_on_another_commit_keeps_the_earlier_run_json(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"git_commit": "0ld"}))
    keep_earlier_run_json(tmp_path)
    kept = list(tmp_path.glob("run.before-*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["git_commit"] == "0ld"
    (tmp_path / "run.json").write_text(json.dumps({"git_commit": git_commit()}))
    keep_earlier_run_json(tmp_path)  # the same commit: nothing to keep
    assert len(list(tmp_path.glob("run.before-*.json"))) == 1


def test_each_variant_trains_on_its_own_targets_from_one_config(tmp_path: Path) -> None:
    """``variant_train_config``: what ``train_job`` trains, and what a study script retrains a cell from."""
    from riskdistill.experiment.pipeline import control_label_dir, variant_train_config

    cfg = experiment_config("study", variants=["baseline", "rsd", "corridor", "shuffled"])
    data = tmp_path / "data"
    runs = {v: variant_train_config(cfg, tmp_path, v, seed=2) for v in cfg.variants}
    assert {v: r.risk_targets for v, r in runs.items()} == {
        "baseline": "off",
        "rsd": "teacher",
        "corridor": "teacher",
        "shuffled": "shuffled",
    }
    assert runs["corridor"].data.labels == str(control_label_dir(data, "corridor"))
    assert runs["rsd"].data.labels is None and runs["baseline"].data.root == str(data / "train")
    assert all(r.seed == r.shuffle_seed == 2 and r.max_steps == cfg.train.max_steps for r in runs.values())
    assert runs["rsd"].init_weights == runs["baseline"].init_weights  # the preset's overrides, every variant
