"""Shipped route suites load, are disjoint, and hold out a layout family and a scenario variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from riskdistill.config import ConfigError
from riskdistill.sim.scenarios import REGISTRY, ScenarioError, build_scenario
from riskdistill.sim.suites import (
    HELD_OUT_FAMILIES,
    HELD_OUT_SCENARIOS,
    SUITE_NAMES,
    generate_suites,
    load_suite,
)


def test_shipped_suites_load_and_are_disjoint() -> None:
    suites = {name: load_suite(name) for name in SUITE_NAMES}
    for a in SUITE_NAMES:
        for b in SUITE_NAMES:
            if a < b:
                assert not (suites[a].seeds() & suites[b].seeds()), (a, b)


def test_shipped_suites_match_the_generator() -> None:
    generated = generate_suites(check=False)
    for name in SUITE_NAMES:
        assert load_suite(name).to_dict() == generated[name].to_dict(), (
            "regenerate with `riskdistill sim make-suites`"
        )


def test_train_holds_out_a_family_and_a_variant_that_bench_has() -> None:
    train, bench = load_suite("train"), load_suite("bench")
    assert not any(r.layout.get("family") in HELD_OUT_FAMILIES for r in train.routes)
    assert not any(r.scenario in HELD_OUT_SCENARIOS for r in train.routes)
    assert any(r.layout.get("family") in HELD_OUT_FAMILIES for r in bench.routes)
    assert any(r.scenario in HELD_OUT_SCENARIOS for r in bench.routes)


def test_bench_has_five_routes_per_type_and_sixteen_types() -> None:
    bench = load_suite("bench")
    counts: dict[str, int] = {}
    for r in bench.routes:
        counts[r.scenario] = counts.get(r.scenario, 0) + 1
    assert len(REGISTRY) >= 16
    assert set(counts) == set(REGISTRY)
    assert min(counts.values()) >= 5


def test_unknown_scenario_in_suite_names_route_and_choices(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"name": "bad", "routes": [{"route_id": "r1", "scenario": "Nope", "seed": 1}]}))
    with pytest.raises(ConfigError, match=r"r1.*Nope.*valid types.*PedestrianCrossing"):
        load_suite(f)


def test_malformed_suite_files_are_clear_errors(tmp_path: Path) -> None:
    f = tmp_path / "typo.json"
    f.write_text(
        json.dumps({"name": "x", "routes": [{"route_id": "r", "scenario": "HardBreakRoute", "sed": 1}]})
    )
    with pytest.raises(ConfigError, match=r"sed.*valid keys"):
        load_suite(f)
    g = tmp_path / "broken.json"
    g.write_text("{not json")
    with pytest.raises(ConfigError, match=r"broken\.json"):
        load_suite(g)
    with pytest.raises(ConfigError, match="not found"):
        load_suite(tmp_path / "missing.json")


def test_unknown_scenario_type_and_bad_layout_are_reported() -> None:
    with pytest.raises(ScenarioError, match="valid scenario types"):
        build_scenario("NoSuchScenario", 0)
    name = sorted(REGISTRY)[0]
    with pytest.raises(ScenarioError, match="valid families"):
        build_scenario(name, 0, {"family": "moon_base"})
    with pytest.raises(ScenarioError, match="lanes_per_direction"):
        build_scenario("HardBreakRoute", 0, {"lanes_per_direction": 9})
