"""The command line: listing, preview, closed-loop evaluation with resume, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from riskdistill.cli.main import app
from riskdistill.evaluation.leaderboard import load_checkpoint_json
from riskdistill.sim.scenarios import REGISTRY

runner = CliRunner()


def test_scenarios_lists_every_type_with_abilities() -> None:
    res = runner.invoke(app, ["sim", "scenarios"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for name in REGISTRY:
        assert name in res.output
    assert "Emergency_Brake" in res.output


def test_preview_writes_an_animation(tmp_path: Path) -> None:
    out = tmp_path / "p.gif"
    res = runner.invoke(
        app, ["sim", "preview", "--scenario", "HardBreakRoute", "--seed", "1", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    with Image.open(out) as im:
        assert im.n_frames > 10


def test_preview_unknown_scenario_is_a_clear_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["sim", "preview", "--scenario", "Nope", "--out", str(tmp_path / "x.gif")])
    assert res.exit_code == 2
    assert "valid scenario types" in res.output and "PedestrianCrossing" in res.output


def test_export_routes_writes_a_bench2drive_routes_file(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    suite = tmp_path / "two.json"
    routes = [
        {"route_id": "a", "scenario": "HardBreakRoute", "seed": 1},
        {"route_id": "b", "scenario": "YieldToEmergencyVehicle", "seed": 2},
    ]
    suite.write_text(json.dumps({"name": "two", "routes": routes}))
    out = tmp_path / "routes.xml"
    res = runner.invoke(app, ["sim", "export-routes", "--suite", str(suite), "--out", str(out)])
    assert res.exit_code == 0, res.output
    got = [(r.get("id"), r.get("name")) for r in ET.parse(out).getroot().findall("route")]
    assert got == [("0", "a"), ("1", "b")]
    res = runner.invoke(app, ["sim", "export-routes", "--suite", "nope", "--out", str(out)])
    assert res.exit_code != 0 and "not found" in res.output


def test_closed_loop_eval_writes_leaderboard_json_and_resumes(tmp_path: Path) -> None:
    args = [
        "eval",
        "closed-loop",
        "--suite",
        "bench",
        "--limit",
        "2",
        "--workers",
        "1",
        "--out",
        str(tmp_path),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    records = load_checkpoint_json(tmp_path / "results.json")
    assert len(records) == 2
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["config"]["suite"] == "bench" and "packages" in run
    assert run["machine"]["cpu_count"] >= 1 and run["machine"]["torch_threads"] >= 1  # to trace a machine
    assert isinstance(run["machine"]["torch_cpu_capability"], str) and run["machine"]["cpu_model"]
    # Resume: finished routes are not redone (their files are kept byte for byte).
    route_files = sorted((tmp_path / "routes").glob("*.json"))
    before = {f: f.read_bytes() for f in route_files}
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert {f: f.read_bytes() for f in route_files} == before


def test_unknown_suite_and_driver_are_clear_errors(tmp_path: Path) -> None:
    res = runner.invoke(app, ["eval", "closed-loop", "--suite", "nosuch", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "not found" in res.output
    res = runner.invoke(
        app, ["eval", "closed-loop", "--driver", "robot", "--limit", "1", "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "valid drivers" in res.output
