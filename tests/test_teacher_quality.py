"""Diff_Risk on hand-computed cases, teacher agreement, and the label card of a labelling run."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from riskdistill.geometry import BevGrid
from riskdistill.teacher import OracleConfig, OracleTeacher
from riskdistill.teacher.card import CARD_JSON, CARD_MD, CARD_PNG, build_label_card
from riskdistill.teacher.quality import (
    agreement_between,
    check_hazard_frame,
    compute_agreement,
    compute_rank_consistency,
    compute_sample_spread,
    compute_temporal_stability,
    expert_reacting_to,
    hazard_recall,
    load_labels,
    pearson,
    rank_pairs,
    spearman,
    summarise_hazard_frames,
)
from riskdistill.teacher.runner import label_dataset
from riskdistill.teacher.schema import FrameLabel


def _label(frame_id: str, risks: dict[int, float], raw: str | None = None) -> FrameLabel:
    order = sorted(risks, key=lambda k: (-risks[k], k))
    return FrameLabel.model_validate(
        {
            "frame_id": frame_id,
            "objects": [
                {"object_id": k, "cls": "car", "risk": risks[k], "rank": i + 1, "reason": "r"}
                for i, k in enumerate(order)
            ],
            "frame_risk": max(risks.values(), default=0.0),
            "summary": "s",
            "provenance": {"teacher": "vlm", "raw_response": raw},
        }
    )


def test_rank_pairs_hand_computed() -> None:
    # ranks 1..4, scores 0.9, 0.5, 0.7, 0.5: pairs (1,3) discordant... rank 2 (0.5) above rank 3 (0.7)
    p, d, t = rank_pairs([0.9, 0.5, 0.7, 0.5], [1, 2, 3, 4])
    assert (p, d, t) == (6, 1, 1)  # 6 pairs; (2,3) discordant; (2,4) tie
    assert rank_pairs([0.9, 0.5, 0.1], [1, 2, 3]) == (3, 0, 0)
    assert rank_pairs([0.1, 0.5, 0.9], [1, 2, 3]) == (3, 3, 0)


def test_rank_consistency_reads_the_raw_reply_order() -> None:
    # the reply lists object 2 first (rank 1) but scores it lower than object 1 -> 1 discordant of 3
    raw = json.dumps({"objects": [{"id": 2, "risk": 0.4}, {"id": 1, "risk": 0.8}, {"id": 3, "risk": 0.1}]})
    rc = compute_rank_consistency([_label("r/00000", {1: 0.8, 2: 0.4, 3: 0.1}, raw)])
    assert (rc.pairs, rc.discordant, rc.ties, rc.frames_from_reply) == (3, 1, 0, 1)
    assert rc.diff_risk == pytest.approx(1 / 3)
    # without a parseable reply the label's own (schema-consistent) ranks are used
    rc = compute_rank_consistency([_label("r/00000", {1: 0.8, 2: 0.4}, "not json")])
    assert rc.diff_risk == 0.0 and rc.frames_from_reply == 0 and rc.pairs == 1


def test_temporal_stability_hand_computed() -> None:
    labels = [
        _label("a/00000", {1: 0.5, 2: 0.2}),
        _label("a/00005", {1: 0.7, 2: 0.2, 3: 0.9}),  # |0.2| and |0|; 3 is new
        _label("a/00010", {1: 0.6, 3: 0.5}),  # |0.1| and |0.4|
        _label("b/00000", {1: 0.0}),  # another route: object 1 there is not compared with route a
        _label("b/00050", {1: 1.0}),  # far apart in steps
    ]
    ts = compute_temporal_stability(labels)
    assert ts.pairs == 5 and ts.routes == 2
    assert ts.mean_abs_delta == pytest.approx((0.2 + 0.0 + 0.1 + 0.4 + 1.0) / 5)
    ts = compute_temporal_stability(labels, max_gap_steps=10)
    assert ts.pairs == 4 and ts.diff_risk == pytest.approx(0.7 / 4)
    assert math.isnan(compute_temporal_stability([_label("a/00000", {1: 0.5})]).diff_risk)


def test_sample_spread_hand_computed() -> None:
    s1 = {"a/00000": _label("a/00000", {1: 0.2, 2: 0.5})}
    s2 = {"a/00000": _label("a/00000", {1: 0.4})}
    s3 = {"a/00000": _label("a/00000", {1: 0.6, 2: 0.5})}
    sp = compute_sample_spread([s1, s2, s3])
    want = (np.std([0.2, 0.4, 0.6]) + 0.0) / 2
    assert sp.objects == 2 and sp.samples == 3 and sp.mean_std == pytest.approx(want)
    assert sp.max_std == pytest.approx(np.std([0.2, 0.4, 0.6]))


def test_agreement_hand_computed() -> None:
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([0, 1, 2, 3], [0, 2, 4, 6]) == pytest.approx(1.0)
    assert math.isnan(pearson([1, 1], [0, 2]))
    a = {"f/00000": _label("f/00000", {1: 0.9, 2: 0.5, 3: 0.1}), "f/00005": _label("f/00005", {1: 0.3})}
    b = {
        "f/00000": _label("f/00000", {1: 0.1, 2: 0.5, 3: 0.9, 4: 0.2}),
        "f/00005": _label("f/00005", {1: 0.3}),
    }
    ag = compute_agreement(a, b)
    assert ag.rank_frames == 1 and ag.rank_corr_mean == pytest.approx(-1.0) and ag.shared_frames == 2
    # scores: frame 0 over objects 1-4 (4 missing in a: 0), frame 1 identical
    assert ag.score_mad == pytest.approx(((0.8 + 0.0 + 0.8 + 0.2) / 4 + 0.0) / 2)
    assert ag.top1_agreement == pytest.approx(0.5) and ag.top1_frames == 2  # 1 vs 3, then 1 vs 1
    assert ag.frame_risk_mad == pytest.approx(0.0)
    ag = compute_agreement(a, a, {"f/00000": np.eye(3)}, {"f/00000": np.eye(3) * 0.5})
    assert ag.rank_corr_mean == pytest.approx(1.0) and ag.map_corr_mean == pytest.approx(1.0)
    assert ag.map_mad == pytest.approx(0.5 / 3)  # the scale differs: the correlation cannot see it


def test_agreement_respects_scale_not_only_correlation() -> None:
    """The issue's case: a teacher marking one object at 1.0 where the other says 0.0009 'agrees' by
    correlation of maps, but not by score difference or scale."""
    oracle = {"f/00000": _label("f/00000", {1: 0.0009, 2: 0.0002, 3: 0.0001})}
    vlm = {"f/00000": _label("f/00000", {1: 1.0})}
    m_oracle = np.zeros((4, 4))
    m_oracle[1, 1] = 0.0009
    m_vlm = np.zeros((4, 4))
    m_vlm[1, 1] = 1.0
    ag = compute_agreement(oracle, vlm, {"f/00000": m_oracle}, {"f/00000": m_vlm})
    assert ag.map_corr_mean == pytest.approx(1.0)  # scale-free: "perfect"
    assert ag.top1_agreement == 1.0  # the same object first
    assert ag.score_mad > 0.3 and ag.frame_risk_mad == pytest.approx(0.9991)
    assert ag.map_mad == pytest.approx((1.0 - 0.0009) / 16)


@pytest.fixture(scope="module")
def two_runs(tiny_dataset, tmp_path_factory):
    base = tmp_path_factory.mktemp("quality")
    grid = BevGrid.preset("tiny")
    a, b, c = base / "a", base / "b", base / "c"
    label_dataset(tiny_dataset, a, OracleTeacher(), grid, show_progress=False)
    label_dataset(tiny_dataset, b, OracleTeacher(), grid, show_progress=False)  # an identical teacher
    label_dataset(
        tiny_dataset,
        c,
        OracleTeacher(OracleConfig(ttc_half_s=2.0, w_proximity=0.45)),
        grid,
        show_progress=False,
    )
    return a, b, c


def test_identical_teachers_agree_perfectly_and_different_ones_less(two_runs) -> None:
    a, b, c = two_runs
    same = agreement_between(a, b)
    assert same.rank_frames > 0 and same.map_frames > 0
    assert same.rank_corr_mean == pytest.approx(1.0) and same.map_corr_mean == pytest.approx(1.0)
    assert same.score_mad == 0.0 and same.map_mad == 0.0 and same.top1_agreement == 1.0
    other = agreement_between(a, c)
    assert other.rank_frames == same.rank_frames
    assert other.rank_corr_mean < 1.0 - 1e-6 and other.map_corr_mean < 1.0 - 1e-6
    assert other.score_mad > 0.0 and other.map_mad > 0.0


# ------------------------------------------------------------------------------------------ hazard recall
def _hazard_annotation(ped_x: float = 17.0, car_x: float = 8.0, hazard=(True, False)) -> dict:
    """A pedestrian crossing the straight route ahead (actor 1) and a car parked beside it (actor 2)."""
    path = np.stack([np.full(32, ped_x), 3.0 - np.arange(32.0)], 1)
    return {
        "actor_id": np.array([1, 2]),
        "actor_class": np.array([4, 0]),
        "actor_behavior": np.array([2, 3]),
        "actor_center_ego": np.array([[ped_x, 3.0, 0.9], [car_x, -2.8, 0.7]]),
        "actor_size_lwh": np.array([[0.5, 0.5, 1.8], [4.6, 1.9, 1.5]]),
        "actor_yaw_ego": np.array([-np.pi / 2, 0.0]),
        "actor_velocity_ego": np.array([[0.0, -1.5], [0.0, 0.0]]),
        "actor_path_ego": np.stack([path, np.repeat([[car_x, -2.8]], 32, 0)]),
        "actor_path_step_m": np.array([1.0, 0.0]),
        "actor_is_hazard": np.array(hazard),
        "route_ahead_ego": np.stack([np.arange(151.0), np.zeros(151)], 1),
        "route_ahead_speed_limit_mps": np.full(151, 10.0),
    }


def test_hazard_check_rules() -> None:
    ann = _hazard_annotation()
    hit = check_hazard_frame(_label("h/00000", {1: 0.8, 2: 0.3}), ann, 8.0)
    assert (
        hit.qualifying
        and hit.hit
        and hit.hazard_risk == 0.8
        and (hit.non_hazard, hit.non_hazard_high) == (1, 0)
    )
    outranked = check_hazard_frame(_label("h/00000", {1: 0.8, 2: 0.9}), ann, 8.0)
    assert outranked.qualifying and not outranked.hit and outranked.non_hazard_high == 1
    low = check_hazard_frame(_label("h/00000", {1: 0.4}), ann, 8.0)
    assert low.qualifying and not low.hit
    unlisted = check_hazard_frame(_label("h/00000", {2: 0.1}), ann, 8.0)  # a teacher that left it out: 0
    assert unlisted.qualifying and not unlisted.hit and unlisted.hazard_risk == 0.0
    far = check_hazard_frame(_label("h/00000", {1: 0.8}), _hazard_annotation(ped_x=60.0), 8.0)
    assert not far.qualifying  # beyond 40 m
    both = _hazard_annotation(hazard=(True, True))  # another named hazard may rank first
    assert check_hazard_frame(_label("h/00000", {1: 0.8, 2: 0.9}), both, 8.0).hit
    old = {k: v for k, v in ann.items() if k != "actor_is_hazard"}
    assert check_hazard_frame(_label("h/00000", {1: 0.8}), old, 8.0) is None
    # the independent qualification: the actor the expert brakes for (the parked car is not a hazard)
    assert check_hazard_frame(_label("h/00000", {1: 0.8}), ann, 8.0, reacting_to=1).hit
    assert not check_hazard_frame(_label("h/00000", {1: 0.8}), ann, 8.0, reacting_to=2).qualifying
    assert expert_reacting_to("forecast conflict with actor 7 at t=1.25s") == 7
    assert expert_reacting_to("actor 12 in path") == 12 and expert_reacting_to("stop line 3") is None
    summary = summarise_hazard_frames(
        [("A", hit), ("A", low), ("A", far), ("B", None), ("C", hit)], types_without_hazard=["C"]
    )
    a = summary["by_scenario"]["A"]
    assert (a["frames"], a["qualifying"], a["hits"], a["recall"]) == (3, 2, 1, 0.5)
    assert a["mean_hazard_risk"] == pytest.approx(0.6) and a["non_hazard"] == 3
    assert summary["by_scenario"]["C"]["has_hazard"] is False and summary["frames_without_metadata"] == 1
    assert summary["all"]["qualifying"] == 3 and summary["min_recall_over_types"] == 0.5


def test_label_card_files_hold_the_numbers(two_runs, tiny_dataset, tmp_path) -> None:
    a, _, c = two_runs
    label_dir = tmp_path / "risk"
    shutil.copytree(a, label_dir)
    # one failure record, and one frame whose record went missing
    recs = sorted((label_dir / "records").rglob("*.json"))
    fid = recs[0].relative_to(label_dir / "records").with_suffix("").as_posix()
    recs[0].unlink()
    (label_dir / "errors").mkdir()
    (label_dir / "errors" / "x.json").write_text(
        json.dumps({"frame_id": fid, "kind": "timeout", "message": "m"})
    )
    card = build_label_card(label_dir, other_label_dir=c, sample_dirs=[a])
    for name in (CARD_JSON, CARD_MD, CARD_PNG):
        assert (label_dir / name).is_file()
    assert (label_dir / CARD_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    on_disk = json.loads((label_dir / CARD_JSON).read_text())
    assert on_disk == card
    labels = load_labels(label_dir)
    n_total = len(labels) + 1
    assert card["coverage"] == {
        "frames_total": n_total,
        "frames_labelled": n_total - 1,
        "fraction": pytest.approx((n_total - 1) / n_total),
        "frames_failed": 1,
    }
    assert card["failures"]["by_kind"] == {"timeout": 1}
    n_obj = sum(len(lab.objects) for lab in labels.values())
    assert sum(card["scores"]["risk_histogram"]["counts"]) == n_obj == card["scores"]["objects"]
    assert sum(card["scores"]["frame_risk_histogram"]["counts"]) == n_total - 1
    assert card["diff_risk"]["rank"]["diff_risk"] == 0.0  # oracle labels: consistent by construction
    assert card["diff_risk"]["temporal"]["pairs"] > 0 and 0 < card["diff_risk"]["temporal"]["diff_risk"] < 1
    assert card["diff_risk"]["sample"]["diff_risk"] == 0.0  # the same deterministic labels twice
    assert 0.0 < card["agreement"]["rank_corr_mean"] < 1.0
    assert card["cost"]["runs"] == 1 and card["cost"]["frames_per_s"] > 0
    # hazard recall per scenario type, against the scenarios' named hazards (the tiny data set has them)
    hz = card["hazard_recall"]
    assert hz is not None and set(hz["by_scenario"]) == {
        "VehicleTurningRoutePedestrian",
        "OppositeVehicleRunningRedLight",
    }
    want = json.loads(json.dumps(hazard_recall(labels, tiny_dataset), allow_nan=True).replace("NaN", "null"))
    assert hz == want and hz["all"]["frames"] == n_total - 1 and hz["all"]["non_hazard"] > 0
    md = (label_dir / CARD_MD).read_text()
    assert f"| {n_total} | {n_total - 1} |" in md and "| timeout | 1 |" in md
    assert f"{card['diff_risk']['temporal']['diff_risk']:.3f}" in md
    assert f"{card['agreement']['rank_corr_mean']:.3f}" in md
    assert f"{card['agreement']['score_mad']:.3f}" in md and "top-1 agreement" in md
    assert "## Hazard recall" in md and "| VehicleTurningRoutePedestrian |" in md
