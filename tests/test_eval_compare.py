"""Comparison statistics on constructed runs: t and bootstrap CIs, paired tests against scipy, tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from riskdistill.evaluation.compare import (
    bootstrap_confidence_interval,
    compare_runs,
    load_run,
    paired_test,
    t_confidence_interval,
    write_comparison,
)
from riskdistill.evaluation.driving_score import RouteResult, compute_summary
from riskdistill.evaluation.generalisation import compare_to_nominal
from riskdistill.evaluation.leaderboard import save_checkpoint_json
from riskdistill.evaluation.results import result_to_dict
from riskdistill.io import atomic_write_json
from riskdistill.sim.events import InfractionEvent, RouteEnd
from riskdistill.types import Infraction


def make_run(
    path: Path, rc: list[float], collide: list[bool] | None = None, variant: dict | None = None
) -> Path:
    """A closed-loop output folder whose route i has route completion rc[i] (and a vehicle collision)."""
    collide = collide or [False] * len(rc)
    results = []
    for i, (c, hit) in enumerate(zip(rc, collide, strict=True)):
        events = [InfractionEvent(Infraction.COLLISION_VEHICLE, 1.0, 0.0, 0.0, "hit")] if hit else []
        results.append(
            RouteResult(
                route_id=f"r{i}",
                scenario_type="Accident",
                route_end=RouteEnd.COMPLETED if c >= 100.0 else RouteEnd.BLOCKED,
                route_completion_pct=c,
                events=events,
                route_length_m=100.0,
                comfort=0.5,
                efficiency=100.0,
                index=i,
            )
        )
    (path / "routes").mkdir(parents=True)
    for r in results:
        atomic_write_json(path / "routes" / f"{r.route_id}.json", result_to_dict(r))
    save_checkpoint_json(path / "results.json", results)
    summary = compute_summary(results)
    summary["variant"] = variant or {"rig_shift": None}
    atomic_write_json(path / "summary.json", summary)
    return path


def test_t_interval_by_hand() -> None:
    ci = t_confidence_interval([80.0, 85.0, 90.0])
    half = 4.302652729911275 * 5.0 / math.sqrt(3.0)  # t_{0.975, 2} * sd / sqrt(n)
    assert ci["mean"] == pytest.approx(85.0)
    assert ci["ci_low"] == pytest.approx(85.0 - half) and ci["ci_high"] == pytest.approx(85.0 + half)
    one = t_confidence_interval([70.0])
    assert one["mean"] == 70.0 and one["ci_low"] is None


def test_bootstrap_interval() -> None:
    same = bootstrap_confidence_interval([50.0] * 10)
    assert same["ci_low"] == same["ci_high"] == 50.0
    x = np.r_[np.zeros(10), np.full(10, 100.0)]
    ci = bootstrap_confidence_interval(x)
    # the mean of 20 fair coin flips x 100: sd 100 * 0.5 / sqrt(20) = 11.2, so the CI is about +-22
    assert ci["mean"] == 50.0 and 25.0 < ci["ci_low"] < 35.0 and 65.0 < ci["ci_high"] < 75.0
    assert ci == bootstrap_confidence_interval(x)  # fixed seed


def test_paired_test_matches_scipy() -> None:
    a = np.array([60.0, 72.0, 55.0, 90.0, 40.0, 81.0, 66.0, 70.0])
    b = a + np.array([5.0, 3.0, -1.0, 8.0, 12.0, 0.0, 4.0, 6.5])
    t = paired_test(a, b)
    assert t["n"] == 8 and t["mean_diff"] == pytest.approx(np.mean(b - a))
    assert t["wilcoxon_p"] == pytest.approx(stats.wilcoxon(b - a).pvalue)
    assert t["ttest_p"] == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert t["ci_low"] < t["mean_diff"] < t["ci_high"]
    same = paired_test(a, a)
    assert same["wilcoxon_p"] == 1.0 and same["ttest_p"] is None
    with pytest.raises(ValueError, match="equally many"):
        paired_test(a, b[:3])


def test_compare_runs_groups_seeds_and_pairs_routes(tmp_path: Path) -> None:
    base = [
        make_run(tmp_path / "baseline_seed1", [100, 100, 50, 100], [True, False, False, False]),
        make_run(tmp_path / "baseline_seed2", [100, 80, 50, 100], [True, False, False, True]),
    ]
    rsd = [
        make_run(tmp_path / "rsd_seed1", [100, 100, 70, 100]),
        make_run(tmp_path / "rsd_seed2", [100, 90, 60, 100], [False, False, False, True]),
    ]
    runs = [load_run(p) for p in base + rsd]
    assert [(r.label, r.seed) for r in runs] == [("baseline", 1), ("baseline", 2), ("rsd", 1), ("rsd", 2)]
    comp = compare_runs(runs)
    assert comp["reference"] == "baseline"
    ds = comp["labels"]["baseline"]["metrics"]["driving_score"]
    seed_ds = [r.summary["driving_score"] for r in runs[:2]]
    assert ds["method"] == "t" and ds["mean"] == pytest.approx(np.mean(seed_ds))
    assert ds["ci_high"] - ds["mean"] == pytest.approx(
        stats.t.ppf(0.975, 1) * np.std(seed_ds, ddof=1) / math.sqrt(2)
    )
    # per route composed score (RC x IP), averaged over the seeds
    ref = np.array([(60 + 60) / 2, (100 + 80) / 2, 50, (100 + 60) / 2])
    oth = np.array([100, (100 + 90) / 2, (70 + 60) / 2, (100 + 60) / 2])
    pair = comp["paired"][0]
    assert pair["label"] == "rsd" and pair["score_composed"]["n"] == 4
    assert pair["score_composed"]["mean_diff"] == pytest.approx(np.mean(oth - ref))
    assert pair["score_composed"]["wilcoxon_p"] == pytest.approx(stats.wilcoxon(oth - ref).pvalue)


def test_single_seed_uses_the_bootstrap_and_files_are_written(tmp_path: Path) -> None:
    a = make_run(tmp_path / "runs" / "a", [100, 50, 100, 100, 0])
    b = make_run(tmp_path / "runs" / "b", [100, 100, 100, 100, 50])
    comp = write_comparison([f"control={a}", f"rsd={b}"], tmp_path / "cmp")
    ds = comp["labels"]["control"]["metrics"]["driving_score"]
    assert ds["method"] == "bootstrap" and ds["mean"] == pytest.approx(70.0)
    assert ds["ci_low"] < 70.0 < ds["ci_high"]
    saved = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert saved["labels"].keys() == {"control", "rsd"}
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert (
        "| control | 1 | 70.00 [" in md
        and "Wilcoxon" in md
        and "| rsd - control | nominal | 0 | 5 | 20.00 [" in md
    )
    with pytest.raises(FileNotFoundError, match=r"results\.json"):
        write_comparison([str(tmp_path / "nope")], tmp_path / "cmp2")


def test_shifted_run_against_nominal(tmp_path: Path) -> None:
    nominal = make_run(tmp_path / "nominal", [100, 100, 100, 60])
    shifted = make_run(tmp_path / "shift", [100, 40, 100, 60], variant={"rig_shift": "height+0.3"})
    out = compare_to_nominal(nominal, [shifted])
    s = out["shifts"][0]
    assert s["variant"]["rig_shift"] == "height+0.3"
    assert s["delta_driving_score"] == pytest.approx(-15.0)
    assert s["delta_success_rate"] == pytest.approx(-25.0)
    assert s["paired"]["n"] == 4 and s["paired"]["mean_diff"] == pytest.approx(-15.0)


def test_cli_compare_generalisation_and_rig_shift_list(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from riskdistill.cli.main import app

    runner = CliRunner()

    def invoke(args: list[str]):
        return runner.invoke(app, args, env={"COLUMNS": "400"})

    a = make_run(tmp_path / "control_seed0", [100, 50, 100])
    b = make_run(tmp_path / "rsd_seed0", [100, 100, 100], variant={"rig_shift": "yaw+5deg"})
    res = invoke(["eval", "compare", str(a), str(b), "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "cmp" / "comparison.json").read_text())["reference"] == "control"
    res = invoke(["eval", "compare", str(tmp_path / "missing"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "not a closed-loop run folder" in res.output
    res = invoke(["eval", "generalisation", str(a), str(b), "--out", str(tmp_path / "g.json")])
    assert res.exit_code == 0, res.output
    g = json.loads((tmp_path / "g.json").read_text())
    assert g["shifts"][0]["delta_driving_score"] == pytest.approx(50 / 3)
    res = invoke(["eval", "closed-loop", "--rig-shift", "list"])
    assert res.exit_code == 0 and "drop-CAM_BACK" in res.output
    res = invoke(
        ["eval", "closed-loop", "--rig-shift", "tilt+1", "--limit", "1", "--out", str(tmp_path / "e")]
    )
    assert res.exit_code == 2 and "not understood" in res.output
    res = invoke(["eval", "risk-outcome", str(a)])
    assert res.exit_code == 2 and "no route has a path-risk series" in res.output
