"""Generalisation protocol: rig-shift parsing and application, held-out route selection; risk vs outcome."""

from __future__ import annotations

import numpy as np
import pytest

from riskdistill.contracts.rig import RigPerturbation, load_rig, perturb_rig
from riskdistill.evaluation.generalisation import (
    RIG_SHIFTS,
    parse_rig_shift,
    select_routes,
    split_perturbation,
)
from riskdistill.evaluation.risk_outcome import (
    compact_path_risk,
    compute_lead_time,
    path_risk_series,
    summarise_risk_outcome,
)
from riskdistill.sim.suites import HELD_OUT_FAMILIES, HELD_OUT_SCENARIOS, load_suite


def test_parse_named_and_combined_shifts() -> None:
    assert parse_rig_shift(None) == RigPerturbation() == parse_rig_shift("nominal")
    assert parse_rig_shift("height+0.3").height_delta_m == pytest.approx(0.3)
    assert parse_rig_shift("height-0.25m").height_delta_m == pytest.approx(-0.25)
    assert parse_rig_shift("pitch-3deg").pitch_delta_deg == pytest.approx(-3.0)
    assert parse_rig_shift("yaw+5deg").yaw_delta_deg == pytest.approx(5.0)
    assert parse_rig_shift("fov-10").fov_scale == pytest.approx(0.9)
    assert parse_rig_shift("fov+20%").fov_scale == pytest.approx(1.2)
    assert parse_rig_shift("res-0.75").resolution_scale == pytest.approx(0.75)
    assert parse_rig_shift("drop-CAM_BACK").drop_cameras == ["CAM_BACK"]
    combo = parse_rig_shift("height+0.3, pitch-3deg,drop-CAM_BACK,drop-CAM_FRONT_LEFT")
    assert combo.height_delta_m == pytest.approx(0.3) and combo.pitch_delta_deg == pytest.approx(-3.0)
    assert combo.drop_cameras == ["CAM_BACK", "CAM_FRONT_LEFT"]
    for name in RIG_SHIFTS:  # every named shift parses
        parse_rig_shift(name)


@pytest.mark.parametrize(
    "bad", ["height+", "pitch-3rad", "fov-100", "res-0", "tilt+3deg", "height+1,height+2"]
)
def test_bad_shifts_are_clear_errors(bad: str) -> None:
    with pytest.raises(ValueError, match="rig shift"):
        parse_rig_shift(bad)


def test_shift_applied_to_a_rig() -> None:
    rig = load_rig("bench2drive")
    p = parse_rig_shift("height+0.3,pitch-3deg,yaw+5deg,fov-10,res-0.5,drop-CAM_BACK")
    geo, res, drop = split_perturbation(p)
    assert res == pytest.approx(0.5) and drop == ["CAM_BACK"] and geo.drop_cameras == []
    shifted = perturb_rig(rig, p)
    assert "CAM_BACK" not in shifted.camera_names and len(shifted.cameras) == 5
    front, base = shifted.camera("CAM_FRONT"), rig.camera("CAM_FRONT")
    assert front.z_m == pytest.approx(base.z_m + 0.3)
    assert front.pitch_deg == pytest.approx(-3.0) and front.yaw_deg == pytest.approx(5.0)
    assert front.hfov_deg == pytest.approx(63.0) and (front.width_px, front.height_px) == (800, 450)
    with pytest.raises(ValueError, match="unknown camera"):
        perturb_rig(rig, parse_rig_shift("drop-CAM_NOPE"))


def test_select_held_out_routes() -> None:
    bench = load_suite("bench")
    held = select_routes(bench, "heldout")
    assert held.routes and all(
        r.layout.get("family") in HELD_OUT_FAMILIES or r.scenario in HELD_OUT_SCENARIOS for r in held.routes
    )
    layout = select_routes(bench, "heldout-layout")
    assert all(r.layout["family"] in HELD_OUT_FAMILIES for r in layout.routes)
    scen = select_routes(bench, "heldout-scenario")
    assert {r.scenario for r in scen.routes} == set(HELD_OUT_SCENARIOS)
    seen = select_routes(bench, "seen")
    assert len(seen.routes) + len(held.routes) == len(bench.routes)
    assert select_routes(bench, "all") is bench
    with pytest.raises(ValueError, match="no heldout routes"):
        select_routes(load_suite("train"), "heldout")
    with pytest.raises(ValueError, match="valid"):
        select_routes(bench, "novel")


# ------------------------------------------------------------------------------------------ risk vs outcome
def test_lead_time_by_hand() -> None:
    t = np.arange(0.0, 10.01, 0.5)
    risk = np.where(t >= 6.5, 0.9, 0.1)
    assert compute_lead_time(t, risk, 8.0, threshold=0.5, window_s=5.0) == pytest.approx(1.5)
    # the first exceedance inside the window counts, even if it dips again
    risk2 = risk.copy()
    risk2[t == 4.0] = 0.7
    assert compute_lead_time(t, risk2, 8.0, threshold=0.5, window_s=5.0) == pytest.approx(4.0)
    assert compute_lead_time(t, risk2, 8.0, threshold=0.5, window_s=3.0) == pytest.approx(1.5)
    assert compute_lead_time(t, np.full_like(t, 0.2), 8.0) is None


def test_risk_outcome_aggregates_over_routes() -> None:
    t = np.arange(0.0, 20.01, 1.0)
    warned = np.where((t >= 12) & (t <= 15), 0.9, 0.1)  # collision at 15 s, risk up from 12 s: lead 3 s
    missed = np.full_like(t, 0.2)  # collision at 10 s with no warning
    alarm = np.where(t == 5, 0.8, 0.0)  # no event, one false alarm
    routes = [
        {
            "route_id": "a",
            "path_risk": {"time_s": t.tolist(), "risk": warned.tolist()},
            "events": [{"kind": "collisions_vehicle", "time_s": 15.0}],
        },
        {
            "route_id": "b",
            "path_risk": {"time_s": t.tolist(), "risk": missed.tolist()},
            "events": [
                {"kind": "collisions_pedestrian", "time_s": 10.0},
                {"kind": "red_light", "time_s": 3.0},
            ],
        },
        {"route_id": "c", "path_risk": {"time_s": t.tolist(), "risk": alarm.tolist()}, "events": []},
        {"route_id": "d", "path_risk": None, "events": [{"kind": "collisions_vehicle", "time_s": 1.0}]},
    ]
    s = summarise_risk_outcome(routes, threshold=0.5, window_s=5.0)
    assert s["n_routes_with_risk"] == 3 and s["n_events"] == 2  # red light not analysed; d has no risk
    assert s["detection_rate"] == pytest.approx(0.5)
    assert s["lead_time_mean_s"] == pytest.approx(3.0)
    # pre-event windows: a at 10..15 (6 samples: 0.1, 0.1, 0.9 x 4), b at 5..10 (6 x 0.2)
    assert s["pre_event_risk_mean"] == pytest.approx((2 * 0.1 + 4 * 0.9 + 6 * 0.2) / 12)
    # background: 15 + 15 + 21 samples, above threshold only c at t = 5
    assert s["false_alarm_rate"] == pytest.approx(1 / 51)
    assert 0.5 < s["warning_auc"] <= 1.0


def test_compacted_path_risk_is_the_same_series_and_gives_the_same_statistics() -> None:
    """Result folders keep path risk run-length encoded on a regular time axis: nothing is lost (lead
    times, AUC and rates equal the full series'), an irregular axis stays in full, bad input is named."""
    rng = np.random.default_rng(0)
    routes = []
    for k in range(6):
        n = int(rng.integers(40, 400))
        t = np.round(np.arange(n) * 0.1 + 0.05 * k, 3)  # 10 Hz steps, as the route runner stores them
        plans = np.round(rng.random(n // 5 + 1), 5)
        r = np.repeat(plans, 5)[:n]  # the risk changes at the planning rate only
        events = [{"kind": "collisions_vehicle", "time_s": float(t[n // 2])}] if k % 2 else []
        routes.append({"route_id": f"r{k}", "path_risk": {"time_s": t.tolist(), "risk": r.tolist()},
                       "events": events})  # fmt: skip
    compact = [{**r, "path_risk": compact_path_risk(r["path_risk"])} for r in routes]
    for full, small in zip(routes, compact, strict=True):
        assert "risk_runs" in small["path_risk"]
        assert len(small["path_risk"]["risk_runs"]) <= len(full["path_risk"]["risk"]) // 5 + 1
        t, r = path_risk_series(small["path_risk"])
        assert t.tolist() == full["path_risk"]["time_s"] and r.tolist() == full["path_risk"]["risk"]
        assert compact_path_risk(small["path_risk"]) == small["path_risk"]  # idempotent
    assert summarise_risk_outcome(compact) == summarise_risk_outcome(routes)
    irregular = {"time_s": [0.0, 0.1, 0.3], "risk": [0.1, 0.1, 0.2]}
    assert compact_path_risk(irregular) == irregular
    assert compact_path_risk(None) is None
    with pytest.raises(ValueError, match="risk_runs cover 3 samples, n says 4"):
        path_risk_series({"t0_s": 0.0, "dt_s": 0.1, "n": 4, "risk_runs": [[0.1, 3]]})
    with pytest.raises(ValueError, match="missing field 'risk'"):
        path_risk_series({"time_s": [0.0]})
