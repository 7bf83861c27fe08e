"""Bench2Drive scoring, comfort / efficiency and the checkpoint file, on hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from riskdistill.evaluation.comfort import (
    COMFORT_BOUNDS,
    compute_checkpoint_efficiency,
    compute_comfort,
    compute_comfort_signals,
    compute_efficiency,
    segment_bounds,
    violated_bounds,
)
from riskdistill.evaluation.driving_score import (
    ABILITY_SCENARIOS,
    PENALTY_FACTORS,
    RouteResult,
    abilities_of,
    compute_ability_success_rates,
    compute_penalty,
    compute_route_scores,
    compute_status,
    compute_summary,
    is_success,
)
from riskdistill.evaluation.leaderboard import (
    INFRACTION_KEYS,
    CheckpointFormatError,
    build_checkpoint_json,
    load_checkpoint_json,
    save_checkpoint_json,
)
from riskdistill.sim.events import InfractionEvent, RouteEnd
from riskdistill.types import Ability, Infraction

DT = 0.1


def ev(kind: Infraction, value: float | None = None, t: float = 1.0) -> InfractionEvent:
    return InfractionEvent(kind=kind, time_s=t, x_m=0.0, y_m=0.0, message=f"{kind} at t={t}", value=value)


def route(
    route_id: str = "RouteScenario_1_rep0",
    scenario: str = "Accident",
    end: RouteEnd = RouteEnd.COMPLETED,
    rc: float = 100.0,
    events: list[InfractionEvent] | None = None,
    **kw,
) -> RouteResult:
    return RouteResult(
        route_id=route_id,
        scenario_type=scenario,
        route_end=end,
        route_completion_pct=rc,
        events=events or [],
        route_length_m=kw.pop("route_length_m", 200.0),
        **kw,
    )


# -----------------------------------------------------------------------------
# penalty and per-route scores


def test_penalty_factors_are_bench2drives():
    assert PENALTY_FACTORS[Infraction.COLLISION_PEDESTRIAN] == 0.50
    assert PENALTY_FACTORS[Infraction.COLLISION_VEHICLE] == 0.60
    assert PENALTY_FACTORS[Infraction.COLLISION_LAYOUT] == 0.65
    assert PENALTY_FACTORS[Infraction.RED_LIGHT] == 0.70
    assert PENALTY_FACTORS[Infraction.STOP_SIGN] == 0.80
    assert PENALTY_FACTORS[Infraction.SCENARIO_TIMEOUT] == 0.70
    assert PENALTY_FACTORS[Infraction.YIELD_EMERGENCY_VEHICLE] == 0.70
    assert Infraction.MIN_SPEED not in PENALTY_FACTORS


def test_penalty_one_pedestrian_two_vehicles():
    events = [
        ev(Infraction.COLLISION_PEDESTRIAN),
        ev(Infraction.COLLISION_VEHICLE),
        ev(Infraction.COLLISION_VEHICLE),
    ]
    assert compute_penalty(events) == pytest.approx(0.5 * 0.6 * 0.6)  # 0.18
    assert compute_penalty(events) == pytest.approx(0.18)


def test_penalty_outside_lanes_is_percent_based():
    assert compute_penalty([ev(Infraction.OUTSIDE_ROUTE_LANES, value=10.0)]) == pytest.approx(0.9)
    both = [ev(Infraction.OUTSIDE_ROUTE_LANES, value=10.0), ev(Infraction.RED_LIGHT)]
    assert compute_penalty(both) == pytest.approx(0.9 * 0.7)
    with pytest.raises(ValueError, match="outside_route_lanes"):
        compute_penalty([ev(Infraction.OUTSIDE_ROUTE_LANES)])


def test_min_speed_and_route_ending_events_carry_no_factor():
    events = [
        ev(Infraction.MIN_SPEED),
        ev(Infraction.ROUTE_DEVIATION),
        ev(Infraction.BLOCKED),
        ev(Infraction.ROUTE_TIMEOUT),
    ]
    assert compute_penalty(events) == 1.0
    assert compute_penalty([]) == 1.0


def test_composed_is_rc_times_ip():
    r = route(
        rc=80.0, events=[ev(Infraction.COLLISION_VEHICLE), ev(Infraction.STOP_SIGN)], end=RouteEnd.BLOCKED
    )
    s = compute_route_scores(r)
    assert s["score_route"] == 80.0
    assert s["score_penalty"] == pytest.approx(0.6 * 0.8)  # 0.48
    assert s["score_composed"] == pytest.approx(80.0 * 0.48)  # 38.4


def test_route_deviation_caps_rc_without_a_factor():
    r = route(rc=40.0, end=RouteEnd.DEVIATED, events=[ev(Infraction.ROUTE_DEVIATION)])
    s = compute_route_scores(r)
    assert s == {"score_route": 40.0, "score_penalty": 1.0, "score_composed": 40.0}
    assert compute_status(r) == "Failed - Agent deviated from the route"


def test_status_perfect_completed_failed():
    assert compute_status(route()) == "Perfect"
    assert compute_status(route(events=[ev(Infraction.MIN_SPEED)])) == "Completed"  # any event counts
    assert compute_status(route(events=[ev(Infraction.RED_LIGHT)])) == "Completed"
    assert compute_status(route(end=RouteEnd.BLOCKED, rc=30.0)) == "Failed - Agent got blocked"
    assert compute_status(route(end=RouteEnd.TIMEOUT, rc=30.0)) == "Failed - Agent timed out"


def test_success_rule():
    assert is_success(route())
    assert is_success(route(events=[ev(Infraction.MIN_SPEED), ev(Infraction.MIN_SPEED)]))
    assert not is_success(route(events=[ev(Infraction.RED_LIGHT)]))
    assert not is_success(route(events=[ev(Infraction.OUTSIDE_ROUTE_LANES, value=1.0)]))
    assert not is_success(route(end=RouteEnd.BLOCKED, rc=90.0))  # failed route, no infraction
    assert not is_success(route(end=RouteEnd.SIM_CRASHED, rc=90.0))


# -----------------------------------------------------------------------------
# summary


def test_driving_score_missing_route_counts_zero():
    results = [
        route("RouteScenario_1_rep0", rc=100.0),  # 100
        route(
            "RouteScenario_2_rep0", rc=50.0, end=RouteEnd.BLOCKED, events=[ev(Infraction.COLLISION_VEHICLE)]
        ),
    ]  # 50 * 0.6 = 30
    s = compute_summary(results, n_routes_in_suite=3)
    assert s["driving_score"] == pytest.approx((100.0 + 30.0) / 3)
    assert s["route_completion"] == pytest.approx(150.0 / 3)
    assert s["success_rate"] == pytest.approx(100.0 / 3)
    assert s["n_routes"] == 3 and s["n_evaluated"] == 2
    s2 = compute_summary(results)
    assert s2["driving_score"] == pytest.approx(65.0)
    assert s2["success_rate"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="smaller"):
        compute_summary(results, n_routes_in_suite=1)


def test_summary_efficiency_comfort_and_infractions_per_km():
    results = [
        route("RouteScenario_1_rep0", efficiency=80.0, comfort=1.0, route_length_m=1000.0),
        route(
            "RouteScenario_2_rep0",
            rc=50.0,
            end=RouteEnd.DEVIATED,
            efficiency=120.0,
            comfort=0.5,
            route_length_m=2000.0,
            events=[ev(Infraction.RED_LIGHT), ev(Infraction.ROUTE_DEVIATION)],
        ),
        route("RouteScenario_3_rep0", efficiency=None, comfort=None, route_length_m=1000.0),
    ]
    s = compute_summary(results)
    assert s["efficiency"] == pytest.approx(100.0)
    assert s["comfortness"] == pytest.approx(75.0)
    assert s["km_driven"] == pytest.approx(1.0 + 1.0 + 1.0)  # second route: 2 km at 50 %
    assert s["infractions"]["red_light"] == 1 and s["infractions"]["route_dev"] == 1
    assert set(s["infractions"]) == set(INFRACTION_KEYS)
    assert s["infractions_per_km"]["red_light"] == pytest.approx(1 / 3)
    assert s["infractions_per_km"]["collisions_vehicle"] == 0.0


# -----------------------------------------------------------------------------
# Multi-Ability


def test_ability_grouping():
    assert abilities_of("Accident") == [Ability.OVERTAKING]
    assert abilities_of("YieldToEmergencyVehicle") == [Ability.GIVE_WAY]
    assert set(abilities_of("SignalizedJunctionLeftTurn")) == {Ability.MERGING, Ability.TRAFFIC_SIGNS}
    assert set(abilities_of("BlockedIntersection")) == {Ability.EMERGENCY_BRAKE, Ability.TRAFFIC_SIGNS}
    assert abilities_of("T_Junction") == [Ability.TRAFFIC_SIGNS]
    assert abilities_of("MergerIntoSlowTrafficV2") == [Ability.MERGING]
    assert abilities_of("ParkedObstacle_1") == [Ability.OVERTAKING]  # Bench2Drive record name
    assert abilities_of("NoSuchScenario") == []
    assert sum(len(v) for v in ABILITY_SCENARIOS.values()) == 9 + 16 + 12 + 2 + 19


def test_traffic_signs_first_junction_rule():
    # failed after a clean first junction: counts for Traffic_Signs, not for Emergency_Brake nor SR
    failed_clean = route(
        "RouteScenario_1_rep0",
        scenario="OppositeVehicleRunningRedLight",
        end=RouteEnd.BLOCKED,
        rc=60.0,
        events=[ev(Infraction.COLLISION_VEHICLE)],
        passed_first_junction_cleanly=True,
    )
    failed_dirty = route(
        "RouteScenario_2_rep0",
        scenario="VanillaSignalizedTurnEncounterRedLight",
        end=RouteEnd.BLOCKED,
        rc=60.0,
        events=[ev(Infraction.RED_LIGHT)],
        passed_first_junction_cleanly=False,
    )
    ok = route("RouteScenario_3_rep0", scenario="InvadingTurn")
    rates = compute_ability_success_rates([failed_clean, failed_dirty, ok])
    assert rates["Traffic_Signs"] == pytest.approx(50.0)
    assert rates["Emergency_Brake"] == pytest.approx(0.0)
    assert rates["Give_Way"] == pytest.approx(100.0)
    assert rates["Overtaking"] is None and rates["Merging"] is None
    s = compute_summary([failed_clean, failed_dirty, ok])
    assert s["success_rate"] == pytest.approx(100.0 / 3)
    assert s["ability_mean"] == pytest.approx((50.0 + 0.0 + 100.0) / 3)


# -----------------------------------------------------------------------------
# efficiency


def test_efficiency_discards_checkpoints_above_1000():
    # 100 m route, 20 checkpoints of 5 m, ten samples each
    progress = np.arange(200) * 0.5
    ego = np.full(200, 5.0)
    traffic = np.full(200, 5.0)  # 100 %
    traffic[0:10] = 10.0  # checkpoint 0: 50 %
    traffic[30:40] = 0.25  # checkpoint 3: 2000 % -> discarded
    traffic[50:60] = np.nan  # checkpoint 5: no traffic -> 100 %
    values = compute_checkpoint_efficiency(progress, ego, traffic, 100.0)
    assert values[0] == pytest.approx(50.0)
    assert values[3] == pytest.approx(2000.0)
    assert values[5] == pytest.approx(100.0)
    eff = compute_efficiency(progress, ego, traffic, 100.0)
    assert eff == pytest.approx((50.0 + 18 * 100.0) / 19)


def test_efficiency_partial_traffic_and_empty():
    # one checkpoint: ego 4 and 8 m/s with traffic 10 m/s, plus an ego sample without traffic (ignored)
    eff = compute_efficiency([1.0, 2.0, 3.0], [4.0, 8.0, 30.0], [10.0, 10.0, np.nan], 100.0, n_checkpoints=1)
    assert eff == pytest.approx(60.0)
    assert compute_efficiency([], [], [], 100.0) is None
    # route stopped halfway: only the checkpoints it reached count
    values = compute_checkpoint_efficiency([10.0, 60.0], [5.0, 5.0], [5.0, 10.0], 100.0, n_checkpoints=4)
    assert np.isnan(values[1]) and np.isnan(values[3])
    assert compute_efficiency([10.0, 60.0], [5.0, 5.0], [5.0, 10.0], 100.0, n_checkpoints=4) == pytest.approx(
        75.0
    )


# -----------------------------------------------------------------------------
# comfort


def test_segments_are_cut_like_bench2drive():
    assert segment_bounds(15) == [(0, 15)]
    assert segment_bounds(20) == [(0, 20)]
    assert segment_bounds(45) == [(0, 20), (20, 40)]  # trailing 5 samples dropped


def test_constant_speed_straight_line_is_comfortable():
    t = np.arange(100) * DT
    yaw = 0.7
    s = 10.0 * t
    assert compute_comfort(s * np.cos(yaw), s * np.sin(yaw), np.full(100, yaw)) == 1.0


def test_heading_wrapping_around_pi_is_not_a_yaw_rate():
    t = np.arange(100) * DT
    yaw = np.where(np.arange(100) % 2 == 0, math.pi - 1e-3, -math.pi + 1e-3)
    assert compute_comfort(-10.0 * t, np.zeros(100), yaw) == 1.0


def test_violent_brake_is_uncomfortable():
    # 15 m/s for 3 s, then -8 m/s^2 until standstill (t = 4.875 s), then stopped; 10 s at 10 Hz
    t = np.arange(100) * DT
    v0, a, tb = 15.0, -8.0, 3.0
    t_stop = tb + v0 / -a
    s = np.where(
        t < tb,
        v0 * t,
        np.where(t < t_stop, v0 * tb + v0 * (t - tb) + 0.5 * a * (t - tb) ** 2, v0 * tb + v0**2 / (2 * -a)),
    )
    zeros = np.zeros(100)
    # segments [0,20) cruise, [20,40) and [40,60) contain the brake, [60,100) standstill
    assert compute_comfort(s, zeros, zeros) == pytest.approx(3 / 5)
    sig = compute_comfort_signals(s[20:40], zeros[20:40], zeros[20:40])
    assert sig["lon_acc"].min() == pytest.approx(-8.0, abs=0.2)
    assert "lon_acc" in violated_bounds(sig)


def test_moderate_acceleration_is_comfortable_but_strong_is_not():
    t = np.arange(40) * DT
    zeros = np.zeros(40)
    assert compute_comfort(0.5 * 2.0 * t**2, zeros, zeros) == 1.0  # 2.0 < 2.40
    assert compute_comfort(0.5 * 3.0 * t**2, zeros, zeros) == 0.0  # 3.0 > 2.40


def test_hard_zigzag_yaw_fails():
    t = np.arange(100) * DT
    yaw = 0.4 * np.sin(2 * math.pi * 0.5 * t)  # yaw rate up to 1.26 rad/s
    x = np.cumsum(5.0 * np.cos(yaw) * DT)
    y = np.cumsum(5.0 * np.sin(yaw) * DT)
    assert compute_comfort(x, y, yaw) == 0.0


def test_slow_weave_fails_on_yaw_rate_alone():
    t = np.arange(100) * DT
    yaw = 1.2 * np.sin(t)  # yaw rate up to 1.2 rad/s, yaw acc up to 1.2 rad/s^2, at 1 m/s
    x = np.cumsum(np.cos(yaw) * DT)
    y = np.cumsum(np.sin(yaw) * DT)
    for start, stop in segment_bounds(100):
        assert violated_bounds(compute_comfort_signals(x[start:stop], y[start:stop], yaw[start:stop])) == [
            "yaw_rate"
        ]
    assert set(COMFORT_BOUNDS) == {"lon_acc", "lat_acc", "jerk", "lon_jerk", "yaw_acc", "yaw_rate"}


def test_comfort_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        compute_comfort([0.0, 1.0], [0.0, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="length"):
        compute_comfort([0.0, 1.0, 2.0], [0.0, 0.0], [0.0, 0.0, 0.0])


# -----------------------------------------------------------------------------
# checkpoint file


def _suite() -> list[RouteResult]:
    return [
        route(
            "RouteScenario_1711_rep0",
            scenario="Accident",
            events=[ev(Infraction.MIN_SPEED)],
            index=0,
            weather_id=3,
            save_name="RouteScenario_1711_rep0_Town12_Accident_1_3",
            route_length_m=500.0,
            duration_game_s=40.0,
            duration_system_s=80.0,
        ),
        route(
            "RouteScenario_1712_rep0",
            scenario="ParkingExit",
            end=RouteEnd.BLOCKED,
            rc=50.0,
            events=[ev(Infraction.COLLISION_VEHICLE), ev(Infraction.OUTSIDE_ROUTE_LANES, value=10.0)],
            index=1,
            route_length_m=1000.0,
        ),
    ]


def test_checkpoint_json_layout():
    data = build_checkpoint_json(_suite(), n_routes_in_suite=4)
    ckpt = data["_checkpoint"]
    assert ckpt["progress"] == [2, 4]
    assert data["entry_status"] == "Finished" and data["eligible"] is True
    assert len(data["values"]) == len(data["labels"]) == 15
    r0, r1 = ckpt["records"]
    for rec in (r0, r1):
        assert list(rec["infractions"]) == list(INFRACTION_KEYS) and len(INFRACTION_KEYS) == 12
    assert r0["status"] == "Completed" and r0["num_infractions"] == 1
    assert r0["scenario_name"] == "Accident" and r0["weather_id"] == 3
    assert r0["meta"] == {"route_length": 500.0, "duration_game": 40.0, "duration_system": 80.0}
    assert r1["status"] == "Failed - Agent got blocked"
    assert r1["scores"]["score_composed"] == pytest.approx(50.0 * 0.6 * 0.9)  # 27
    g = ckpt["global_record"]
    assert g["index"] == -1 and g["route_id"] == -1 and g["status"] == "Failed"
    assert g["scores_mean"]["score_composed"] == pytest.approx((100.0 + 27.0) / 4)
    assert g["meta"]["exceptions"] == [["RouteScenario_1712_rep0", 1, "Failed - Agent got blocked"]]
    assert g["meta"]["total_length"] == 1500.0
    # 0.5 km + 0.5 km driven; 1 vehicle collision -> 1 per km; outside lanes: 10 % of 500 m = 0.05 km
    assert g["infractions"]["collisions_vehicle"] == pytest.approx(1.0)
    assert g["infractions"]["outside_route_lanes"] == pytest.approx(0.05)
    assert data["values"][0] == str(g["scores_mean"]["score_composed"])
    with pytest.raises(ValueError, match="entry_status"):
        build_checkpoint_json(_suite(), entry_status="Done")
    assert build_checkpoint_json(_suite(), entry_status="Crashed")["eligible"] is False


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "results" / "checkpoint.json"
    written = save_checkpoint_json(path, _suite())
    records = load_checkpoint_json(path)
    assert records == written["_checkpoint"]["records"]
    assert [r["route_id"] for r in records] == ["RouteScenario_1711_rep0", "RouteScenario_1712_rep0"]
    assert all(set(r["infractions"]) == set(INFRACTION_KEYS) for r in records)
    assert json.loads(path.read_text())["_checkpoint"]["progress"] == [2, 2]


def test_load_broken_checkpoint_names_the_file_and_key(tmp_path):
    path = tmp_path / "broken.json"
    data = build_checkpoint_json(_suite())
    del data["_checkpoint"]["records"][1]["scores"]["score_penalty"]
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointFormatError, match=r"broken\.json.*score_penalty"):
        load_checkpoint_json(path)

    data = build_checkpoint_json(_suite())
    del data["_checkpoint"]["records"][0]["infractions"]["route_timeout"]
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointFormatError, match=r"broken\.json.*route_timeout.*RouteScenario_1711"):
        load_checkpoint_json(path)

    path.write_text(json.dumps({"records": []}))
    with pytest.raises(CheckpointFormatError, match=r"broken\.json.*_checkpoint"):
        load_checkpoint_json(path)

    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json"):
        load_checkpoint_json(path)

    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        load_checkpoint_json(tmp_path / "missing.json")
