"""Bench2Drive scoring, comfort / efficiency and the checkpoint file, on hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from riskdistill.evaluation.comfort import (
    COMFORT_BOUNDS,
    compute_comfort,
    compute_comfort_signals,
    compute_efficiency,
    min_speed_percent,
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
    record_route_name,
    save_checkpoint_json,
)
from riskdistill.sim.criteria import OutsideRouteLanes, min_speed_message
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
    # CARLA's rule; min-speed checkpoints make every completed route "Completed" in practice
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
    # ability_benchmark.py: a failed Traffic_Signs route counts when its completion passed the first junction
    # point + 8 and it has no stop-sign or red-light infraction; it never counts for the other abilities
    failed_past = route(
        "RouteScenario_1_rep0",
        scenario="OppositeVehicleRunningRedLight",
        end=RouteEnd.BLOCKED,
        rc=60.0,
        events=[ev(Infraction.COLLISION_VEHICLE)],
        junction_completion=0.55,
    )
    failed_red = route(
        "RouteScenario_2_rep0",
        scenario="VanillaSignalizedTurnEncounterRedLight",
        end=RouteEnd.BLOCKED,
        rc=60.0,
        events=[ev(Infraction.RED_LIGHT)],
        junction_completion=0.55,
    )
    failed_before = route(
        "RouteScenario_4_rep0",
        scenario="OppositeVehicleTakingPriority",
        end=RouteEnd.BLOCKED,
        rc=50.0,
        junction_completion=0.55,
    )
    no_junction = route("RouteScenario_5_rep0", scenario="PedestrianCrossing", end=RouteEnd.BLOCKED, rc=90.0)
    ok = route("RouteScenario_3_rep0", scenario="InvadingTurn")
    results = [failed_past, failed_red, failed_before, no_junction, ok]
    rates = compute_ability_success_rates(results)
    assert rates["Traffic_Signs"] == pytest.approx(25.0)
    assert rates["Emergency_Brake"] == pytest.approx(0.0)
    assert rates["Give_Way"] == pytest.approx(100.0)
    assert rates["Overtaking"] is None and rates["Merging"] is None
    s = compute_summary(results)
    assert s["success_rate"] == pytest.approx(100.0 / 5)
    assert s["ability_mean"] is None  # Bench2Drive's script divides by all five abilities


def test_ability_mean_is_over_all_five():
    names = [
        "Accident",
        "HighwayCutIn",
        "HardBreakRoute",
        "InvadingTurn",
        "VanillaNonSignalizedTurnEncounterStopsign",
    ]
    results = [route(f"RouteScenario_{k}_rep0", scenario=n) for k, n in enumerate(names)]
    results[0] = route("RouteScenario_0_rep0", scenario="Accident", end=RouteEnd.BLOCKED, rc=10.0)
    s = compute_summary(results)
    assert s["abilities"]["Overtaking"] == 0.0
    assert s["ability_mean"] == pytest.approx(400.0 / 5)


# -----------------------------------------------------------------------------
# efficiency


def test_efficiency_reads_the_min_speed_messages_like_bench2drive():
    messages = [min_speed_message(v) for v in (50.0, 2000.0, 100, 86.25)]
    assert messages[2] == "Average speed is 100% of the surrounding traffic's one"
    assert [min_speed_percent(m) for m in messages] == [50.0, 2000.0, 100.0, 86.25]
    assert compute_efficiency(messages) == pytest.approx((50.0 + 100.0 + 86.25) / 3)  # > 1000 % dropped
    assert compute_efficiency([]) is None
    assert compute_efficiency([min_speed_message(1500.0)]) is None
    with pytest.raises(ValueError, match="no percentage"):
        min_speed_percent("Average speed is fast")


def test_summary_efficiency_is_over_routes_that_have_one():
    results = [route("RouteScenario_1_rep0", efficiency=50.0), route("RouteScenario_2_rep0")]
    assert compute_summary(results)["efficiency"] == pytest.approx(50.0)


# -----------------------------------------------------------------------------
# comfort


def test_segments_are_cut_like_bench2drive():
    assert segment_bounds(15) == [(0, 15)]
    assert segment_bounds(20) == [(0, 20)]
    assert segment_bounds(45) == [(0, 20), (20, 40)]  # trailing 5 samples dropped


def samples(lon_acc, yaw_rate_degps=None, lat_acc=None, yaw=0.3):
    """metric_info-style arrays [N, 3] for a car heading ``yaw`` (CARLA frame), given its accelerations."""
    lon_acc = np.asarray(lon_acc, dtype=np.float64)
    n = len(lon_acc)
    lat = np.zeros(n) if lat_acc is None else np.asarray(lat_acc, dtype=np.float64)
    rate = np.zeros(n) if yaw_rate_degps is None else np.asarray(yaw_rate_degps, dtype=np.float64)
    fwd = np.tile([math.cos(yaw), math.sin(yaw), 0.0], (n, 1))
    right = np.tile([-math.sin(yaw), math.cos(yaw), 0.0], (n, 1))
    acc = lon_acc[:, None] * fwd + lat[:, None] * right
    ang = np.stack([np.zeros(n), np.zeros(n), rate], axis=1)
    return acc, ang, fwd, right


def test_constant_speed_straight_line_is_comfortable():
    assert compute_comfort(*samples(np.zeros(100))) == 1.0


def test_violent_brake_is_uncomfortable():
    lon = np.zeros(100)
    lon[30:49] = -8.0  # a hard stop inside chunks [20, 40) and [40, 60)
    assert compute_comfort(*samples(lon)) == pytest.approx(3 / 5)
    sig = compute_comfort_signals(*(a[20:40] for a in samples(lon)))
    assert sig["lon_acc"][15] == pytest.approx(-8.0, abs=1e-9)  # inside the stop, away from the edges
    assert "lon_acc" in violated_bounds(sig)


def test_moderate_acceleration_is_comfortable_but_strong_is_not():
    assert compute_comfort(*samples(np.full(40, 2.0))) == 1.0  # 2.0 < 2.40
    assert compute_comfort(*samples(np.full(40, 3.0))) == 0.0  # 3.0 > 2.40
    assert compute_comfort(*samples(np.zeros(40), lat_acc=np.full(40, 4.5))) == 1.0
    assert compute_comfort(*samples(np.zeros(40), lat_acc=np.full(40, 5.0))) == 0.0


def test_yaw_rate_bound_applies_to_carlas_degrees_per_second():
    # Bench2Drive's tool bounds CARLA's angular velocity (deg/s) by nuPlan's 0.95 (rad/s): 0.9 deg/s passes,
    # a gentle 1 deg/s turn (0.017 rad/s) does not
    assert compute_comfort(*samples(np.zeros(40), yaw_rate_degps=np.full(40, 0.9))) == 1.0
    sig = compute_comfort_signals(*samples(np.zeros(20), yaw_rate_degps=np.full(20, 1.0)))
    assert violated_bounds(sig) == ["yaw_rate"]
    sig = compute_comfort_signals(*samples(np.zeros(20), yaw_rate_degps=np.full(20, 2.0)))
    assert violated_bounds(sig) == ["yaw_acc", "yaw_rate"]  # the "yaw acceleration" is the smoothed rate
    assert set(COMFORT_BOUNDS) == {"lon_acc", "lat_acc", "jerk", "lon_jerk", "yaw_acc", "yaw_rate"}


def test_route_comfort_is_the_share_of_chunks_each_judged_on_its_own():
    # compute_comfort smooths all chunks in one batch; each chunk must be judged exactly as on its own
    rng = np.random.default_rng(3)
    for n in (3, 19, 20, 21, 147, 600):
        lon = rng.normal(0.0, 0.05, n)
        for start in rng.integers(0, n, size=max(1, n // 60)):  # hard stops in some chunks
            lon[start : start + 6] = -6.0
        acc, ang, fwd, right = samples(lon, yaw_rate_degps=rng.normal(0.0, 0.2, n))
        chunks = segment_bounds(n)
        ok = [
            not violated_bounds(compute_comfort_signals(*(a[s:e] for a in (acc, ang, fwd, right))))
            for s, e in chunks
        ]
        assert len(ok) < 3 or 0 < sum(ok) < len(ok)  # long routes mix comfortable and uncomfortable chunks
        assert compute_comfort(acc, ang, fwd, right) == sum(ok) / len(ok)


def test_comfort_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        compute_comfort(*samples(np.zeros(2)))
    acc, ang, fwd, right = samples(np.zeros(5))
    with pytest.raises(ValueError, match="length"):
        compute_comfort_signals(acc, ang[:4], fwd, right)
    with pytest.raises(ValueError, match="length"):
        compute_comfort(acc, ang, fwd[:4], right)
    with pytest.raises(ValueError, match="finite"):
        compute_comfort(acc * np.nan, ang, fwd, right)


# -----------------------------------------------------------------------------
# checkpoint file


def _suite() -> list[RouteResult]:
    off = OutsideRouteLanes(outside_m=50.0, completed_m=500.0)  # 10 % of the completed 500 m
    outside = InfractionEvent(Infraction.OUTSIDE_ROUTE_LANES, 9.0, 0.0, 0.0, off.message(), value=off.percent)
    return [
        route(
            "bench_Accident_0",
            scenario="Accident",
            events=[ev(Infraction.MIN_SPEED)],
            leaderboard_id="RouteScenario_1711_rep0",
            town_name="RiskDistill_straight",
            index=0,
            weather_id=3,
            save_name="RouteScenario_1711_rep0_Town12_Accident_1_3",
            route_length_m=500.0,
            duration_game_s=40.0,
            duration_system_s=80.0,
        ),
        route(
            "bench_ParkingExit_0",
            scenario="ParkingExit",
            end=RouteEnd.BLOCKED,
            rc=50.0,
            events=[ev(Infraction.COLLISION_VEHICLE), outside],
            leaderboard_id="RouteScenario_1712_rep0",
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
    assert r0["route_id"] == "RouteScenario_1711_rep0" and r0["route_name"] == "bench_Accident_0"
    assert r0["town_name"] == "RiskDistill_straight" and record_route_name(r0) == "bench_Accident_0"
    assert r1["infractions"]["outside_route_lanes"] == [
        "Agent went outside its route lanes for about 50.0 meters (10.0% of the completed route)"
    ]
    assert r0["meta"] == {"route_length": 500.0, "duration_game": 40.0, "duration_system": 80.0}
    assert r1["status"] == "Failed - Agent got blocked"
    assert r1["scores"]["score_composed"] == pytest.approx(50.0 * 0.6 * 0.9)  # 27
    g = ckpt["global_record"]
    assert g["index"] == -1 and g["route_id"] == -1 and g["status"] == "Failed"
    assert g["scores_mean"]["score_composed"] == pytest.approx((100.0 + 27.0) / 4)
    assert g["meta"]["exceptions"] == [["RouteScenario_1712_rep0", 1, "Failed - Agent got blocked"]]
    assert g["meta"]["total_length"] == 1500.0
    # 0.5 km + 0.5 km driven; 1 vehicle collision -> 1 per km; outside lanes: the message's 50 m = 0.05 km
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
