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
    compute_agreement,
    compute_rank_consistency,
    compute_sample_spread,
    compute_temporal_stability,
    load_labels,
    pearson,
    rank_pairs,
    spearman,
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
    ag = compute_agreement(a, a, {"f/00000": np.eye(3)}, {"f/00000": np.eye(3) * 0.5})
    assert ag.rank_corr_mean == pytest.approx(1.0) and ag.map_corr_mean == pytest.approx(1.0)


@pytest.fixture(scope="module")
def two_runs(tiny_dataset, tmp_path_factory):
    base = tmp_path_factory.mktemp("quality")
    grid = BevGrid.preset("tiny")
    a, b, c = base / "a", base / "b", base / "c"
    label_dataset(tiny_dataset, a, OracleTeacher(), grid, show_progress=False)
    label_dataset(tiny_dataset, b, OracleTeacher(), grid, show_progress=False)  # an identical teacher
    label_dataset(
        tiny_dataset, c, OracleTeacher(OracleConfig(w_distance=0.6, w_ttc=0.2)), grid, show_progress=False
    )
    return a, b, c


def test_identical_teachers_agree_perfectly_and_different_ones_less(two_runs) -> None:
    a, b, c = two_runs
    same = agreement_between(a, b)
    assert same.rank_frames > 0 and same.map_frames > 0
    assert same.rank_corr_mean == pytest.approx(1.0) and same.map_corr_mean == pytest.approx(1.0)
    other = agreement_between(a, c)
    assert other.rank_frames == same.rank_frames
    assert other.rank_corr_mean < 1.0 - 1e-6 and other.map_corr_mean < 1.0 - 1e-6


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
    md = (label_dir / CARD_MD).read_text()
    assert f"| {n_total} | {n_total - 1} |" in md and "| timeout | 1 |" in md
    assert f"{card['diff_risk']['temporal']['diff_risk']:.3f}" in md
    assert f"{card['agreement']['rank_corr_mean']:.3f}" in md
