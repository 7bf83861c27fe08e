"""The per-step closed-loop trace (``evaluation.trace``, ``eval closed-loop --trace``): one JSON line per
traced step with the ego's motion, the driver's plan and stop probability, the nearest road users and the
driver's own occupancy on each, and the route's infractions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from riskdistill.contracts.batch import BEV_CHANNELS
from riskdistill.evaluation.route_runner import run_one_route
from riskdistill.evaluation.trace import TRACE_DIR, TraceRecording, read_trace
from riskdistill.models import build_student, save_student, student_config
from riskdistill.sim.suites import RouteSpec

torch.set_num_threads(1)
HW = (32, 88)
# a pedestrian crosses ahead of the ego from the start: road users near the car on the first steps
CROSSING = RouteSpec(
    route_id="trace_crossing", scenario="PedestrianCrossing", seed=1, layout={"family": "straight"}
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    heads = {"risk": {"enabled": False}, "planning": {"path_points": 20, "speed_bins_mps": [0, 2, 4, 8]}}
    student = build_student(student_config("tiny", image_hw=HW, heads=heads)).eval()
    return save_student(student, tmp_path_factory.mktemp("trace") / "ckpt")


def occupancy_everywhere(ckpt: Path, out: Path, logit: float, only: str | None = None) -> Path:
    """A copy of the checkpoint whose occupancy gives every channel (or only channel ``only``, the others
    -10) ``logit`` on every cell."""
    from riskdistill.models import load_student

    student = load_student(ckpt)
    conv = student.heads["occupancy"].post[-1]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(logit if only is None else -10.0)
        if only is not None:
            conv.bias[BEV_CHANNELS.index(only)] = logit
    return save_student(student, out)


def traced(
    driver: str, out: Path, seconds: float, options: dict | None = None, **kw
) -> tuple[list, dict, dict]:
    doc = run_one_route(
        CROSSING, 0, driver, {"route_timeout_s": seconds}, out, [TraceRecording(**kw)], driver_options=options
    )
    assert doc["error"] is None and doc["trace"]["path"] == f"{TRACE_DIR}/{CROSSING.route_id}.jsonl"
    rows, end = read_trace(out / doc["trace"]["path"])
    assert doc["trace"]["frames"] == len(rows)
    return rows, end, doc


def test_the_trace_follows_the_drive_every_nth_step(tmp_path: Path) -> None:
    rows, end, doc = traced("expert", tmp_path, 3.0, every=5, radius_m=200.0, max_actors=3)
    n_steps = round(doc["duration_game_s"] / 0.1)
    steps = [r["step"] for r in rows]
    evented = {r["step"] for r in rows if r["events"]}  # the expert's min-speed records, every 0.8-0.9 s
    assert evented and steps == sorted(set(range(0, n_steps, 5)) | evented)  # every 5th, and every event
    assert end["end"]["status"] == doc["status"]
    assert [e["kind"] for e in end["events"]] == ["route_timeout"]  # the last step's event
    assert [r["time_s"] for r in rows] == pytest.approx([0.1 * r["step"] for r in rows], abs=0.051)
    progress = [r["progress_m"] for r in rows]
    assert progress == sorted(progress) and progress[-1] > progress[0]  # the expert drives on
    for r in rows:
        c = r["controls"]  # the expert drives with controls, not a plan
        assert (
            "plan_xy" not in r and 0 <= c["throttle"] <= 1 and 0 <= c["brake"] <= 1 and -1 <= c["steer"] <= 1
        )
        assert "p_stop" not in r and "planned" not in r  # the expert has no planner outputs or flags
        d = [a["distance_m"] for a in r["actors"]]
        assert 1 <= len(d) <= 3 and d == sorted(d)
        for a in r["actors"]:
            assert a["distance_m"] == pytest.approx(np.hypot(a["x_m"], a["y_m"]), abs=0.02)
            assert "occupancy_p" not in a  # no occupancy from the expert
    assert any(a["class"] == "PEDESTRIAN" for r in rows for a in r["actors"])
    plain = run_one_route(CROSSING, 0, "expert", {"route_timeout_s": 3.0})  # tracing only observes
    assert plain["scores"] == doc["scores"] and plain["events"] == doc["events"]
    near = traced("expert", tmp_path / "near", 1.0, every=1, radius_m=5.0)[0]
    assert all(a["distance_m"] <= 5.0 for r in near for a in r["actors"])


def test_the_trace_reads_the_students_own_occupancy_on_each_road_user(
    checkpoint: Path, tmp_path: Path
) -> None:
    opts = {"engine": "eager"}  # the eager engine returns the occupancy
    seeing = occupancy_everywhere(checkpoint, tmp_path / "sees", 10.0)
    blind = occupancy_everywhere(checkpoint, tmp_path / "blind", -10.0)
    rows_s = traced(str(seeing), tmp_path / "s", 1.0, opts, every=1, radius_m=200.0, max_actors=50)[0]
    rows_b = traced(str(blind), tmp_path / "b", 1.0, opts, every=1, radius_m=200.0, max_actors=50)[0]
    assert len(rows_s) == len(rows_b) == 10
    for rs, rb in zip(rows_s, rows_b, strict=True):
        assert rs["planned"] == (rs["step"] % 5 == 0)  # the student plans at 2 Hz and holds in between
        assert np.asarray(rs["plan_xy"]).shape == (6, 2) and "controls" not in rs
        assert 0.0 <= rs["p_stop"] <= 1.0
        ps = {a["id"]: a.get("occupancy_p") for a in rs["actors"]}
        pb = {a["id"]: a.get("occupancy_p") for a in rb["actors"]}
        assert ps.keys() == pb.keys()
        on_grid = [i for i, p in ps.items() if p is not None]
        assert on_grid == [i for i, p in pb.items() if p is not None]  # off the BEV grid: no value
        assert all(ps[i] > 0.99 and pb[i] < 0.01 for i in on_grid)
        assert all(a["occupancy_any_p"] >= a["occupancy_p"] for a in rs["actors"] if "occupancy_p" in a)
    vehicles = occupancy_everywhere(checkpoint, tmp_path / "veh", 10.0, only="vehicle")
    rows_v = traced(str(vehicles), tmp_path / "v", 0.5, opts, every=1, radius_m=200.0, max_actors=50)[0]
    on = [a for r in rows_v for a in r["actors"] if "occupancy_p" in a]
    walkers = [a for a in on if a["class"] == "PEDESTRIAN"]
    assert walkers and all(a["occupancy_p"] < 0.01 and a["occupancy_any_p"] > 0.99 for a in walkers)
    assert all(a["occupancy_p"] > 0.99 for a in on if a["class"] in ("CAR", "VAN", "TRUCK", "BUS"))
    assert any(a.get("occupancy_p") is not None for r in rows_s for a in r["actors"])
    assert any(a.get("occupancy_p") is None for r in rows_s for a in r["actors"])  # 200 m: some are off it
    onnx = traced(str(seeing), tmp_path / "o", 0.5, {"engine": "onnx"}, every=1, radius_m=200.0)[0]
    assert all("occupancy_p" not in a for r in onnx for a in r["actors"])  # this engine returns no occupancy


def test_an_unreadable_trace_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"step": 0}\n{"step": 1, "spe\n')
    with pytest.raises(ValueError, match=r"r\.jsonl: line 2 is not JSON"):
        read_trace(bad)
    bad.write_text('{"step": 0}\n')
    with pytest.raises(ValueError, match="no end line"):
        read_trace(bad)


def test_cli_closed_loop_trace(tmp_path: Path) -> None:
    from conftest import closed_loop_cli

    out = closed_loop_cli(tmp_path, CROSSING, "--route-timeout", "1", "--trace", "--trace-every", "4")
    rows, _ = read_trace(out / TRACE_DIR / f"{CROSSING.route_id}.jsonl")
    assert [r["step"] for r in rows if not r["events"]] == [0, 4, 8]
    assert json.loads((out / "run.json").read_text())["config"]["trace_every"] == 4
    assert BEV_CHANNELS[1] == "vulnerable"  # the channel a pedestrian's occupancy_p is read from
