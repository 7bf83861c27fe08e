"""The study's statistics on synthetic cells with known effects: hierarchical bootstrap intervals, Wilcoxon
and McNemar tests, Holm's correction, missing seeds and held-out selections."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from riskdistill.evaluation.study_stats import (
    CellMatrix,
    RouteOutcome,
    compare_pair,
    compute_study_statistics,
    holm_adjust,
    mcnemar_exact,
    render_study_markdown,
    route_outcome,
    route_selections,
)

N_ROUTES = 60


def outcomes(
    ds: np.ndarray, success: np.ndarray | None = None, coll=None, km=None
) -> dict[str, RouteOutcome]:
    n = len(ds)
    success = ds >= 80.0 if success is None else success
    coll = np.zeros(n, int) if coll is None else coll
    km = np.full(n, 0.2) if km is None else km
    return {
        f"r{j}": RouteOutcome(
            route_id=f"r{j}",
            scenario=f"S{j % 4}",
            driving_score=float(ds[j]),
            success=bool(success[j]),
            collisions=int(coll[j]),
            km_driven=float(km[j]),
            route_end="Completed" if success[j] else "Failed - Agent got blocked",
            held_out_layout=j % 10 == 0,
            held_out_scenario=j % 10 == 1,
        )
        for j in range(n)
    }


def matrix(cells: dict[int, dict[str, RouteOutcome]]) -> CellMatrix:
    seeds = sorted(cells)
    return CellMatrix.build(cells, seeds, [f"r{j}" for j in range(N_ROUTES)])


def test_a_planted_difference_is_found() -> None:
    rng = np.random.default_rng(1)
    difficulty = rng.uniform(20, 90, N_ROUTES)
    base = {s: outcomes(np.clip(difficulty + rng.normal(0, 8, N_ROUTES), 0, 100)) for s in range(3)}
    rsd = {s: outcomes(np.clip(difficulty + 15 + rng.normal(0, 8, N_ROUTES), 0, 100)) for s in range(3)}
    c = compare_pair(matrix(rsd), matrix(base))
    ds = c["driving_score"]
    assert 10.0 < ds["diff"] < 18.0 and 0.0 < ds["ci_low"] < ds["diff"] < ds["ci_high"] < 25.0
    assert ds["diff"] == pytest.approx(ds["mean_a"] - ds["mean_b"])
    assert ds["wilcoxon_p"] < 1e-6 and len(ds["per_seed"]) == 3
    assert np.mean(ds["per_seed"]) == pytest.approx(ds["diff"])  # same routes in every seed
    assert c["success_rate"]["diff"] > 0 and c["success_rate"]["a_only"] > c["success_rate"]["b_only"]
    assert c == compare_pair(matrix(rsd), matrix(base))  # fixed bootstrap seed: reproducible


def test_no_difference_gives_a_wide_interval_and_no_significance() -> None:
    rng = np.random.default_rng(2)
    a = {s: outcomes(rng.uniform(0, 100, N_ROUTES)) for s in range(3)}
    b = {s: outcomes(rng.uniform(0, 100, N_ROUTES)) for s in range(3)}
    c = compare_pair(matrix(a), matrix(b))
    ds = c["driving_score"]
    assert ds["ci_low"] < 0.0 < ds["ci_high"] and ds["ci_high"] - ds["ci_low"] > 8.0
    assert ds["wilcoxon_p"] > 0.05 and c["success_rate"]["mcnemar_p"] > 0.05


def test_the_interval_carries_the_seed_variation() -> None:
    """Seeds that disagree (+30, -30, +30 on every route) give an interval that reaches both signs; the
    old test on seed-averaged routes would call this a sure +10."""
    flat = np.full(N_ROUTES, 50.0)
    b = {s: outcomes(flat) for s in range(3)}
    a = {s: outcomes(flat + d) for s, d in enumerate([30.0, -30.0, 30.0])}
    ds = compare_pair(matrix(a), matrix(b))["driving_score"]
    assert ds["diff"] == pytest.approx(10.0) and ds["per_seed"] == pytest.approx([30.0, -30.0, 30.0])
    assert ds["ci_low"] == pytest.approx(-30.0) and ds["ci_high"] == pytest.approx(30.0)
    assert ds["wilcoxon_p"] < 1e-6  # per route the seed mean is always +10: routes alone cannot see it


def test_collisions_per_km_is_a_ratio_of_sums() -> None:
    km = np.full(N_ROUTES, 0.5)  # 30 km per seed
    coll_a = np.zeros(N_ROUTES, int)
    coll_a[:3] = 1
    coll_b = np.zeros(N_ROUTES, int)
    coll_b[:6] = 2
    a = {0: outcomes(np.full(N_ROUTES, 50.0), coll=coll_a, km=km)}
    b = {0: outcomes(np.full(N_ROUTES, 50.0), coll=coll_b, km=km)}
    c = compare_pair(matrix(a), matrix(b))["collisions_per_km"]
    assert c["mean_a"] == pytest.approx(3 / 30) and c["mean_b"] == pytest.approx(12 / 30)
    assert c["diff"] == pytest.approx(-0.3) and c["ci_low"] <= -0.3 + 1e-9 <= c["ci_high"] < 0.0


def test_mcnemar_on_a_hand_made_table() -> None:
    # 8 pairs where only a succeeds, 2 where only b does, 20 concordant
    a = [True] * 8 + [False] * 2 + [True] * 10 + [False] * 10
    b = [False] * 8 + [True] * 2 + [True] * 10 + [False] * 10
    got = mcnemar_exact(a, b)
    assert got["a_only"] == 8 and got["b_only"] == 2
    assert got["p"] == pytest.approx(2 * (1 + 10 + 45) / 1024)  # 2 * P[Bin(10, 1/2) <= 2]
    assert got["p"] == pytest.approx(stats.binomtest(2, 10, 0.5).pvalue)
    assert mcnemar_exact([True, False], [True, False])["p"] == 1.0  # no discordant pair
    assert mcnemar_exact([True] * 5, [False] * 5)["p"] == pytest.approx(2 / 32)
    with pytest.raises(ValueError, match="equally many"):
        mcnemar_exact([True], [True, False])


def test_holm_adjusts_as_documented() -> None:
    # m = 4 valid p-values: 0.01 x 4, 0.03 x 3, 0.04 x 2 -> max(0.09, 0.08), 0.5 x 1
    assert holm_adjust([0.01, 0.04, 0.03, None, 0.5]) == pytest.approx([0.04, 0.09, 0.09, None, 0.5])
    assert holm_adjust([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm_adjust([]) == [] and holm_adjust([None]) == [None]
    assert holm_adjust([0.02]) == pytest.approx([0.02])  # one test: unchanged


def test_the_study_pairs_every_comparison_per_rig_and_selection_with_holm() -> None:
    rng = np.random.default_rng(3)
    ids = [f"r{j}" for j in range(N_ROUTES)]
    base_ds = rng.uniform(20, 90, N_ROUTES)
    cells = {}
    for rig, effect in (("nominal", 20.0), ("pitch-3deg", 0.0)):
        for s in range(3):
            cells["baseline", s, rig] = outcomes(np.clip(base_ds + rng.normal(0, 5, N_ROUTES), 0, 100))
            cells["rsd", s, rig] = outcomes(np.clip(base_ds + effect + rng.normal(0, 5, N_ROUTES), 0, 100))
            if s < 2:  # the control's seed 2 crashed: missing, not averaged over
                cells["shuffled", s, rig] = outcomes(np.clip(base_ds + rng.normal(0, 5, N_ROUTES), 0, 100))
    sel = route_selections(list(cells["baseline", 0, "nominal"].values()))
    assert sel["heldout-layout"] == [f"r{j}" for j in range(0, N_ROUTES, 10)]
    assert sel["heldout-scenario"] == [f"r{j}" for j in range(1, N_ROUTES, 10)]
    st = compute_study_statistics(
        cells, ids, [("rsd", "baseline"), ("rsd", "shuffled")], ["nominal", "pitch-3deg"], sel, draws=500
    )
    comps = {(c["a"], c["b"], c["rig"], c["selection"]): c for c in st["comparisons"]}
    assert len(comps) == 2 * 2 * 3
    nominal = comps["rsd", "baseline", "nominal", "all"]
    assert nominal["seeds"] == [0, 1, 2] and nominal["driving_score"]["ci_low"] > 10.0
    assert comps["rsd", "baseline", "pitch-3deg", "all"]["driving_score"]["ci_low"] < 0.0
    ctrl = comps["rsd", "shuffled", "nominal", "all"]
    assert ctrl["seeds"] == [0, 1] and ctrl["missing_seeds"] == {"rsd": [], "shuffled": [2]}
    held = comps["rsd", "baseline", "nominal", "heldout-layout"]
    assert held["n_routes"] == 6
    # Holm within the "all" family: 4 comparisons x 2 tests
    fam = [c for c in st["comparisons"] if c["selection"] == "all"]
    raw = [c["driving_score"]["wilcoxon_p"] for c in fam] + [c["success_rate"]["mcnemar_p"] for c in fam]
    adj = holm_adjust(raw)
    assert [c["driving_score"]["wilcoxon_p_holm"] for c in fam] == adj[:4]
    assert [c["success_rate"]["mcnemar_p_holm"] for c in fam] == adj[4:]
    assert all(h >= r for h, r in zip(adj, raw, strict=True))
    # variants: mean of the cells and per-seed values
    v = st["variants"]["shuffled"]["nominal"]["all"]
    assert v["seeds"] == [0, 1] and len(v["driving_score"]["per_seed"]) == 2
    md = render_study_markdown(st)
    assert "| rsd - shuffled | nominal | 0,1 (shuffled lacks [2])" in md
    assert "heldout-scenario routes (6)" in md and "McNemar p (Holm)" in md


def test_a_crashed_route_file_scores_zero() -> None:
    doc = {
        "route_id": "bench_Accident_0",
        "scenario_type": "Accident",
        "route_end": "Failed - Agent crashed",
        "route_completion_pct": 0.0,
        "events": [],
        "route_length_m": 180.0,
        "spec": {
            "route_id": "bench_Accident_0",
            "scenario": "Accident",
            "seed": 1,
            "layout": {"family": "junction_t"},
        },
    }
    o = route_outcome(doc, held_out_layout=True)
    assert o.crashed and o.driving_score == 0.0 and not o.success and o.km_driven == 0.0
    assert o.held_out_layout and not o.held_out_scenario
    assert RouteOutcome.from_dict(o.to_dict()) == o
