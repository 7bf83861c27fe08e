"""``riskdistill eval compare`` after the study fixes: runs grouped by label and rig, any pair of labels
(not only against the baseline), paired by seed with the hierarchical bootstrap, McNemar, Holm, and the
single-seed mean and interval over the same routes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from riskdistill.cli.main import app
from riskdistill.evaluation.compare import compare_runs, load_run
from riskdistill.evaluation.study_stats import holm_adjust, mcnemar_exact
from riskdistill.io import atomic_write_json, load_json
from test_eval_compare import make_run


def labelled(path: Path, label: str, seed: int, rc: list[float], rig: str | None = None, **kw) -> Path:
    run = make_run(path, rc, variant={"rig_shift": rig}, **kw)
    atomic_write_json(run / "run.json", {"config": {"label": label, "seed": seed}})
    return run


def test_labels_are_split_by_rig_and_every_pair_is_tested_per_rig(tmp_path: Path) -> None:
    runs = []
    for seed in (0, 1):
        for rig in (None, "pitch-3deg"):
            tag = rig or "nominal"
            runs.append(
                labelled(tmp_path / f"b{seed}{tag}", "baseline", seed, [100, 50, 50, 20, 100, 0], rig)
            )
            runs.append(labelled(tmp_path / f"r{seed}{tag}", "rsd", seed, [100, 100, 60, 40, 100, 30], rig))
            runs.append(labelled(tmp_path / f"c{seed}{tag}", "control", seed, [100, 50, 60, 20, 100, 0], rig))
    comp = compare_runs([load_run(p) for p in runs], pairs=[("rsd", "baseline"), ("rsd", "control")])
    assert set(comp["labels"]) == {
        "baseline", "rsd", "control", "baseline@pitch-3deg", "rsd@pitch-3deg", "control@pitch-3deg"
    }  # fmt: skip
    assert comp["labels"]["rsd@pitch-3deg"]["rig"] == "pitch-3deg"
    assert comp["labels"]["rsd"]["seeds"] == [0, 1]  # the nominal group holds the nominal runs only
    pairs = {(e["a"], e["b"], e["rig"]) for e in comp["paired"]}
    assert pairs == {
        ("rsd", "baseline", "nominal"), ("rsd", "control", "nominal"),
        ("rsd", "baseline", "pitch-3deg"), ("rsd", "control", "pitch-3deg"),
    }  # fmt: skip
    e = next(e for e in comp["paired"] if (e["a"], e["b"], e["rig"]) == ("rsd", "control", "nominal"))
    assert e["seeds"] == [0, 1] and e["n_routes"] == 6
    assert e["driving_score"]["diff"] == pytest.approx(np.mean([0, 50, 0, 20, 0, 30]))
    assert e["success_rate"]["a_only"] == 2 and e["success_rate"]["b_only"] == 0  # route 1 x 2 seeds
    assert e["success_rate"]["mcnemar_p"] == pytest.approx(mcnemar_exact([1, 1], [0, 0])["p"]) == 0.5
    # Holm over the family of all 4 comparisons x 2 tests
    raw = [x["driving_score"]["wilcoxon_p"] for x in comp["paired"]]
    raw += [x["success_rate"]["mcnemar_p"] for x in comp["paired"]]
    assert [x["driving_score"]["wilcoxon_p_holm"] for x in comp["paired"]] == holm_adjust(raw)[:4]
    with pytest.raises(ValueError, match="label 'nope'"):
        compare_runs([load_run(p) for p in runs], pairs=[("rsd", "nope")])


def test_a_seed_only_one_label_has_is_left_out_and_named(tmp_path: Path) -> None:
    runs = [
        labelled(tmp_path / "b0", "baseline", 0, [100, 50, 0]),
        labelled(tmp_path / "b1", "baseline", 1, [100, 50, 0]),
        labelled(tmp_path / "r0", "rsd", 0, [100, 100, 0]),
    ]
    e = compare_runs([load_run(p) for p in runs])["paired"][0]
    assert e["seeds"] == [0] and e["missing_seeds"] == {"rsd": [1], "baseline": []}
    assert e["driving_score"]["diff"] == pytest.approx(50 / 3)


def test_single_seed_mean_and_interval_cover_the_same_routes(tmp_path: Path) -> None:
    """A run missing a route of its suite: the route counts 0 in the bootstrap as it does in the mean."""
    run = make_run(tmp_path / "a", [100, 100, 100, 100])
    summary = load_json(run / "summary.json")
    summary["n_routes"] = 5  # the suite had a fifth route that never got a result
    summary["driving_score"] = 400 / 5
    atomic_write_json(run / "summary.json", summary)
    ds = compare_runs([load_run(run, "a")])["labels"]["a"]["metrics"]["driving_score"]
    assert ds["mean"] == pytest.approx(80.0) and ds["n"] == 5
    assert ds["ci_low"] < 80.0 < ds["ci_high"] <= 100.0


def test_cli_compare_takes_pairs(tmp_path: Path) -> None:
    a = labelled(tmp_path / "a", "control", 0, [100, 50, 100])
    b = labelled(tmp_path / "b", "rsd", 0, [100, 100, 100])
    c = labelled(tmp_path / "c", "baseline", 0, [50, 50, 100])
    res = CliRunner().invoke(
        app,
        ["eval", "compare", str(a), str(b), str(c), "--pair", "rsd:control", "--pair", "rsd:baseline",
         "--out", str(tmp_path / "cmp")],
        env={"COLUMNS": "300"},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    comp = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert [(e["a"], e["b"]) for e in comp["paired"]] == [("rsd", "control"), ("rsd", "baseline")]
    assert "| rsd - baseline | nominal | 0 | 3 |" in (tmp_path / "cmp" / "comparison.md").read_text()
    res = CliRunner().invoke(app, ["eval", "compare", str(a), "--pair", "rsd", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "A:B" in res.output
