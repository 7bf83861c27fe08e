"""An untrained tiny student checkpoint through closed loop (one short route, low resolution), open loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from riskdistill.evaluation.closed_loop import evaluate_suite  # noqa: E402
from riskdistill.evaluation.generalisation import EvalVariant  # noqa: E402
from riskdistill.evaluation.leaderboard import load_checkpoint_json  # noqa: E402
from riskdistill.sim.suites import RouteSpec, Suite  # noqa: E402

SHORT = RouteSpec(route_id="short_accident", scenario="Accident", seed=3, layout={"family": "straight"})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from riskdistill.models import build_student, save_student, student_config

    torch.manual_seed(0)
    cfg = student_config("tiny", image_hw=(32, 88), cameras=["CAM_FRONT", "CAM_FRONT_LEFT", "CAM_BACK"])
    return save_student(build_student(cfg), tmp_path_factory.mktemp("ckpt") / "student")


def test_student_closed_loop_on_a_short_route(checkpoint: Path, tmp_path: Path) -> None:
    variant = EvalVariant(rig_shift="drop-CAM_BACK", route_timeout_s=2.0)
    results, summary = evaluate_suite(
        Suite(name="one", routes=[SHORT]), str(checkpoint), tmp_path, show_progress=False, variant=variant
    )
    doc = json.loads((tmp_path / "routes" / "short_accident.json").read_text())
    assert doc["error"] is None, doc.get("traceback")
    assert doc["status"] == "Failed - Agent timed out" and results[0].duration_game_s == pytest.approx(2.0)
    assert load_checkpoint_json(tmp_path / "results.json")[0]["route_name"] == "short_accident"
    assert len(doc["plans"]["time_s"]) == 4 and np.asarray(doc["plans"]["xy_world"]).shape == (4, 6, 2)
    risk = np.asarray(doc["path_risk"]["risk"])
    assert len(risk) == 20 and ((risk >= 0.0) & (risk <= 1.0)).all()
    assert (
        summary["driver"] == str(checkpoint.resolve()) and summary["variant"]["rig_shift"] == "drop-CAM_BACK"
    )
    assert summary["driver_options"] == {"plan_every_steps": 5, "engine": "onnx"}  # the defaults
    outcome = json.loads((tmp_path / "risk_outcome.json").read_text())
    assert outcome["n_routes_with_risk"] == 1


def test_student_open_loop_on_the_tiny_dataset(checkpoint: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from riskdistill.cli.main import app
    from riskdistill.data.storage import RecordedDataset
    from riskdistill.models import load_student

    grid = load_student(checkpoint).cfg.bev_grid()
    labels = tmp_path / "labels"
    records = RecordedDataset(tiny_dataset)
    rng = np.random.default_rng(0)
    for fid in records.table.column("frame_id").to_pylist()[:6]:
        path = labels / "maps" / f"{fid}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, rng.random(grid.shape).astype(np.float16))
    out = tmp_path / "ol.json"
    args = ["eval", "open-loop", "--checkpoint", str(checkpoint), "--data", str(tiny_dataset)]
    args += ["--labels", str(labels), "--limit", "6", "--batch-size", "3", "--out", str(out)]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    m = doc["metrics"]
    assert m["n_samples"] == 6 and len(doc["per_sample"]) == 6
    assert 0.0 <= m["l2_1s"] <= m["l2_3s"] + 5.0 and m["l2_avg"] > 0.0
    for key in ("collision_rate_pct_1s", "collision_rate_pct_3s"):
        assert m[key] is None or 0.0 <= m[key] <= 100.0
    assert 0.0 <= m["risk_l1"] <= 1.0 and m["risk_kl"] >= 0.0 and -1.0 <= m["risk_pearson"] <= 1.0
    assert m["iou_vehicle"] is None or 0.0 <= m["iou_vehicle"] <= 1.0
    recall = m["occupancy_recall_by_range"]  # the occupancy head's object recall, per channel and range
    assert set(recall) == {"vehicle", "vulnerable", "static_obstacle"}
    bins = [b for ch in recall.values() for b in ch.values()]
    assert sum(b["objects"] for b in bins) > 0
    assert all(b["recall"] is None or 0.0 <= b["recall"] <= 1.0 for b in bins)
    road = m["occupancy_recall_on_road"]  # the same objects, split by the drivable area under them
    for ch, by_range in recall.items():
        n = sum(b["objects"] for b in by_range.values())
        assert road[ch]["on_road"]["objects"] + road[ch]["off_road"]["objects"] == n
        for side in (road[ch]["on_road"], road[ch]["off_road"]):
            assert sum(b["objects"] for b in side["by_range"].values()) == side["objects"]
    assert road["vehicle"]["on_road"]["objects"] > 0  # the recorded traffic drives on the road
    assert m["expert_plan"]["l2_2s"] >= 0.0 and "expert's plan as driven" in res.output
    vs_arc = m["waypoints_vs_baselines"]["kinematic_arc"]  # paired per frame, routes resampled
    assert vs_arc["diff_m"] == pytest.approx(m["l2_2s"] - m["baselines"]["kinematic_arc"]["l2_2s"])
    assert vs_arc["ci_low"] <= vs_arc["diff_m"] <= vs_arc["ci_high"] and vs_arc["n_routes"] >= 1
    assert "waypoints - kinematic_arc at 2 s" in res.output
    assert doc["future_boxes_recorded_share"] > 0.5  # recorded every 5 steps: most future frames exist
    # recall over the objects that one camera shows: a camera that shows none of them counts no object,
    # the predictions (and IoU) stay the same
    from riskdistill.data.storage import RecordedDataset

    rec = RecordedDataset(tiny_dataset)
    px = sum(rec[i].annotation_arrays(["actor_visible_px"])["actor_visible_px"].sum(axis=0) for i in range(6))
    blind = rec.camera_names[int(np.argmin(px))]
    assert px.min() == 0, "the tiny data set should have a camera that shows no actor in its first frames"
    out_blind = tmp_path / "ol_blind.json"
    args_blind = [*args[:-1], str(out_blind), "--recall-cameras", blind]
    res = CliRunner().invoke(app, args_blind, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    doc_blind = json.loads(out_blind.read_text())
    assert doc_blind["recall_cameras"] == [blind] and doc["recall_cameras"] is None
    recall_blind = doc_blind["metrics"]["occupancy_recall_by_range"]
    assert sum(b["objects"] for ch in recall_blind.values() for b in ch.values()) == 0
    assert doc_blind["metrics"]["iou_vehicle"] == m["iou_vehicle"]
    res = CliRunner().invoke(app, [*args_blind[:-1], "CAM_NOPE"], env={"COLUMNS": "200"})
    assert res.exit_code != 0 and "CAM_NOPE" in res.output and blind in res.output


def test_a_checkpoint_that_does_not_load_fails_up_front(checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="cannot be loaded"):
        evaluate_suite(Suite(name="one", routes=[SHORT]), str(broken), tmp_path / "out", show_progress=False)
    assert not list((tmp_path / "out" / "routes").glob("*.json"))


def test_driver_options_plan_rate_and_engine(checkpoint: Path, tmp_path: Path) -> None:
    """A student planning at 2 Hz with onnxruntime: the options are part of the folder's resume key, and the
    path risk of held plans is the one computed when the plan was made."""
    one = Suite(name="one", routes=[SHORT])
    variant = EvalVariant(route_timeout_s=2.0)
    options = {"plan_every_steps": 5, "engine": "onnx"}
    results, summary = evaluate_suite(
        one, str(checkpoint), tmp_path, show_progress=False, variant=variant, driver_options=options
    )
    doc = json.loads((tmp_path / "routes" / "short_accident.json").read_text())
    assert doc["error"] is None, doc.get("traceback")
    assert results[0].duration_game_s == pytest.approx(2.0)
    assert summary["driver_options"] == options
    assert json.loads((tmp_path / "eval_config.json").read_text())["driver_options"] == options
    risk = doc["path_risk"]["risk"]
    assert len(risk) == 20 and all(risk[k] == risk[k - k % 5] for k in range(20))  # held between plans
    # resuming with other options is refused, naming both
    with pytest.raises(ValueError, match="plan_every_steps"):
        evaluate_suite(
            one,
            str(checkpoint),
            tmp_path,
            show_progress=False,
            variant=variant,
            driver_options={"plan_every_steps": 2},
        )
    evaluate_suite(
        one, str(checkpoint), tmp_path, show_progress=False, variant=variant
    )  # the defaults: resumes
    # turning off the reuse of repeated observations changes the speed, not the drive: not in the resume key
    again = tmp_path / "noreuse"
    evaluate_suite(
        one, str(checkpoint), again, show_progress=False, variant=variant,
        driver_options={**options, "reuse_repeated": False},
    )  # fmt: skip
    other = json.loads((again / "routes" / "short_accident.json").read_text())
    assert json.loads((again / "eval_config.json").read_text())["driver_options"] == options
    assert other["driver_stats"] == {**doc["driver_stats"], "plans_reused": 0}
    assert other["trajectory"] == doc["trajectory"] and other["scores"] == doc["scores"]
    # a folder written before the options existed was evaluated every step with eager PyTorch: it resumes
    # with those options only (the defaults are 2 Hz and onnx)
    legacy = tmp_path / "legacy"
    before = {"plan_every_steps": 1, "engine": "eager"}
    evaluate_suite(one, str(checkpoint), legacy, show_progress=False, variant=variant, driver_options=before)
    cfg = json.loads((legacy / "eval_config.json").read_text())
    assert cfg.pop("driver_options") == before
    (legacy / "eval_config.json").write_text(json.dumps(cfg))
    evaluate_suite(one, str(checkpoint), legacy, show_progress=False, variant=variant, driver_options=before)
    with pytest.raises(ValueError, match="old, new"):
        evaluate_suite(one, str(checkpoint), legacy, show_progress=False, variant=variant)
    # options that do not exist, or for a driver that is not a student
    with pytest.raises(ValueError, match="valid engines"):
        evaluate_suite(one, str(checkpoint), tmp_path / "x", driver_options={"engine": "tensorrt"})
    with pytest.raises(ValueError, match="unknown driver option"):
        evaluate_suite(one, str(checkpoint), tmp_path / "x", driver_options={"plan_rate_hz": 2})
    with pytest.raises(ValueError, match="student checkpoints only"):
        evaluate_suite(one, "expert", tmp_path / "x", driver_options={"plan_every_steps": 5})
