"""The default VLM prompt (risk_rank_v2) states what the oracle measures and its score scale."""

from __future__ import annotations

import re

from riskdistill.teacher.oracle import OracleConfig
from riskdistill.teacher.vlm.prompt import DEFAULT_TEMPLATE, list_templates, load_template


def _render(name: str) -> tuple[str, str]:
    return load_template(name).render(
        cameras=["CAM_FRONT"],
        object_lines=['{"id": 3, "class": "pedestrian"}'],
        ego_speed_mps=6.0,
        command="lane_follow",
        reason_max_chars=80,
        reply_schema="{}",
    )


def test_v2_is_the_default_and_v1_is_kept() -> None:
    assert DEFAULT_TEMPLATE == "risk_rank_v2"
    assert {"risk_rank_v1", "risk_rank_v2"} <= set(list_templates())
    assert load_template("risk_rank_v1").prompt_hash != load_template("risk_rank_v2").prompt_hash
    # both render with the same variables (the teacher passes one set)
    for name in ("risk_rank_v1", "risk_rank_v2"):
        _system, user = _render(name)
        assert '"id": 3' in user and "80 characters" in user and "{#" not in user


def test_v2_says_what_the_oracle_measures_on_its_scale() -> None:
    system, user = _render("risk_rank_v2")
    text = system + user
    # the counterfactual: the ego keeps driving its route without reacting
    assert "kept driving along its route" in system and "without reacting" in system
    # the terms: path, time to reach it, near miss, vulnerability, occlusion (capped as in the oracle)
    for phrase in ("in the ego's path", "time to collision", "near miss", "pedestrians and cyclists most",
                   "may hide someone"):  # fmt: skip
        assert phrase in text
    cfg = OracleConfig()
    assert f"never more than {cfg.w_occlusion:.2f}" in text
    # the scale: anchors in seconds, and only conflicts above 0.5 (as the oracle's near-miss / occlusion /
    # proximity weights guarantee)
    anchors = re.findall(r"- (\d\.\d+)-(\d\.\d+): ", user)
    assert [(float(a), float(b)) for a, b in anchors] == [
        (0.9, 1.0),
        (0.7, 0.9),
        (0.5, 0.7),
        (0.2, 0.45),
        (0.0, 0.1),
    ]
    assert "Only an object that would meet the ego's path scores above 0.5." in user
    assert max(cfg.w_near_miss, cfg.w_occlusion, cfg.w_proximity) < 0.5
