"""The HTML report: built from real closed-loop runs (the expert on two short routes), constructed open-loop /
risk-outcome JSON, a recorded data set with oracle labels and a (random) tiny student; checked as HTML
and rendered in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_tiny_suite
from riskdistill.evaluation.closed_loop import evaluate_suite
from riskdistill.evaluation.driving_score import compute_summary
from riskdistill.evaluation.leaderboard import save_checkpoint_json
from riskdistill.io import atomic_write_json, atomic_write_text, load_json
from riskdistill.viz.report import HEADER_COLOR, build_report
from riskdistill.viz.report_data import ReportInputError, ReportInputs, route_result_from_dict

CHROMIUM = Path("/usr/bin/chromium")
NASTY = 'Agent collided <script>alert("x")</script> & <b>vehicle</b>'


def _rewrite_summary(run: Path) -> dict:
    """Recompute summary.json and results.json of a run folder from its (edited) route files."""
    docs = [load_json(f) for f in sorted((run / "routes").glob("*.json"))]
    results = sorted((route_result_from_dict(d, "test") for d in docs), key=lambda r: r.index)
    summary = {
        **compute_summary(results, n_routes_in_suite=len(results)),
        "variant": load_json(run / "summary.json").get("variant"),
    }
    atomic_write_json(run / "summary.json", summary)
    save_checkpoint_json(run / "results.json", results, n_routes_in_suite=len(results))
    return summary


def _add_collision(run: Path, route_id: str, t_s: float, message: str = NASTY) -> None:
    f = run / "routes" / f"{route_id}.json"
    doc = load_json(f)
    traj = doc["trajectory"]
    k = int(np.argmin(np.abs(np.asarray(traj["time_s"]) - t_s)))
    doc["events"].append(
        {"kind": "collisions_vehicle", "time_s": t_s, "x_m": traj["x_m"][k], "y_m": traj["y_m"][k],
         "message": message, "actor_id": 3, "value": None}
    )  # fmt: skip
    doc.pop("scores", None)
    doc.pop("status", None)
    atomic_write_json(f, doc)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Closed-loop folders: the expert (seed 0 as run, seed 1 with an added collision), a second label
    ("care<ful>") and the expert under a rig shift."""
    root = tmp_path_factory.mktemp("runs")
    suite = make_tiny_suite()
    suite_file = root / "tiny_suite.json"
    atomic_write_json(suite_file, suite.model_dump())
    s0 = root / "expert_s0"
    evaluate_suite(suite, "expert", s0, show_progress=False)
    atomic_write_json(s0 / "run.json", {"command": "eval closed-loop", "config": {"suite": str(suite_file)}})
    out = {"s0": s0}
    for name, route, t in (("expert_s1", "r0", 6.0), ("careful_s0", "r1", 8.0), ("expert_shift", "r0", 4.0)):
        d = root / name
        shutil.copytree(s0, d)
        _add_collision(d, route, t)
        out[name] = d
    summary = load_json(out["expert_shift"] / "summary.json")
    summary["variant"] = {"rig_shift": "height+0.3", "scenarios": "all", "jpeg_quality": None, "rig": None}
    atomic_write_json(out["expert_shift"] / "summary.json", summary)
    for name in ("expert_s1", "careful_s0", "expert_shift"):
        _rewrite_summary(out[name])
    atomic_write_json(
        out["careful_s0"] / "risk_outcome.json",
        {"threshold": 0.5, "window_s": 5.0, "n_events": 2, "detection_rate": 0.5, "lead_time_mean_s": 1.75,
         "lead_time_median_s": 1.75, "warning_auc": 0.625,
         "events": [{"route_id": "r1", "kind": "collisions_vehicle", "time_s": 8.0, "lead_time_s": 1.75},
                    {"route_id": "r1", "kind": "collisions_vehicle", "time_s": 9.0, "lead_time_s": None}]},
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def labels(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Oracle teacher labels of the tiny data set: maps/<frame_id>.npy and records/<frame_id>.json."""
    from riskdistill.data import RecordedDataset
    from riskdistill.geometry import BevGrid
    from riskdistill.teacher import OracleTeacher, rasterise_risk, save_risk_map

    out = tmp_path_factory.mktemp("labels")
    ds, grid, teacher = RecordedDataset(tiny_dataset), BevGrid.preset("tiny"), OracleTeacher()
    for i in range(len(ds)):
        fr = ds.frame(i)
        label = teacher.label(fr)
        ann = fr.annotation
        risk_of = {o.object_id: o.risk for o in label.objects}
        risk = np.array([risk_of.get(int(a), 0.0) for a in ann["actor_id"]])
        m = rasterise_risk(
            ann["actor_center_ego"][:, :2], ann["actor_size_lwh"][:, :2], ann["actor_yaw_ego"],
            ann["actor_velocity_ego"], risk, grid,
        )  # fmt: skip
        save_risk_map(out, fr.frame_id, m, grid)
        atomic_write_text(out / "records" / f"{fr.frame_id}.json", label.model_dump_json())
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from riskdistill.models import build_student, save_student, student_config

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ckpt") / "rsd_tiny"
    save_student(build_student(student_config("tiny")), out)
    return out


@pytest.fixture(scope="module")
def open_loop_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("ol") / "open_loop.json"
    atomic_write_json(
        p,
        {"checkpoint": "ckpt/rsd_tiny", "data": "data/val",
         "metrics": {"n_samples": 86, "l2_1s": 0.4321, "l2_2s": 0.8765, "l2_3s": 1.3579,
                     "collision_rate_avg_pct": 2.4681, "risk_l1": 0.0567, "risk_auc": 0.7531},
         "per_sample": [{"frame_id": "r0/00000", "l2_1s": 9.8765}]},
    )  # fmt: skip
    return p


@pytest.fixture(scope="module")
def full_report(runs, open_loop_json, tiny_dataset, labels, checkpoint, tmp_path_factory) -> Path:
    inputs = ReportInputs.from_folders(
        closed_loop=[
            runs["s0"],
            runs["expert_s1"],
            f"care<ful>={runs['careful_s0']}",
            f"expert={runs['expert_shift']}",
        ],
        open_loop=[open_loop_json],
        data=tiny_dataset,
        labels=labels,
        checkpoints=[checkpoint],
        n_sample_frames=2,
    )
    return build_report(inputs, tmp_path_factory.mktemp("report"))


def _images(html: str) -> list[Image.Image]:
    out = []
    for mime, b64 in re.findall(r'<img[^>]*src="data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)"', html):
        im = Image.open(io.BytesIO(base64.b64decode(b64)))
        assert im.format.lower() == ("jpeg" if mime == "jpeg" else "png")
        out.append(im)
    return out


# ------------------------------------------------------------------------------------------ HTML
def test_full_report_tables_and_structure(full_report: Path, runs: dict[str, Path]) -> None:
    html = full_report.read_text()
    assert full_report.name == "report.html" and html.startswith("<!DOCTYPE html>")
    for sid in (
        "closed-loop",
        "generalisation",
        "significance",
        "open-loop",
        "risk-vs-outcome",
        "routes",
        "frames",
    ):
        assert f'id="{sid}"' in html, sid

    # closed loop: the expert's two seeds as mean +- t interval; the other label as its value
    from scipy.stats import t

    ds = [load_json(runs[k] / "summary.json")["driving_score"] for k in ("s0", "expert_s1")]
    assert ds[0] > ds[1]  # the added collision cost points
    half = t.ppf(0.975, 1) * np.std(ds, ddof=1) / np.sqrt(2)
    assert f"{np.mean(ds):.2f} &plusmn; {half:.2f}" in html
    careful = load_json(runs["careful_s0"] / "summary.json")
    assert f"{careful['driving_score']:.2f}" in html
    # generalisation: the shifted condition from the run's variant, and its delta against the nominal mean
    shifted = load_json(runs["expert_shift"] / "summary.json")["driving_score"]
    assert "rig height+0.3" in html
    assert f"{shifted - np.mean(ds):.2f}" in html
    # paired tests: computed with riskdistill.evaluation.compare (expert vs care<ful>)
    from riskdistill.evaluation.compare import compare_runs, load_run

    cmp = compare_runs([load_run(runs["s0"], "expert"), load_run(runs["expert_s1"], "expert"),
                        load_run(runs["careful_s0"], "care<ful>")])  # fmt: skip
    p = cmp["paired"][0]["score_composed"]
    assert f"{p['mean_diff']:.2f}" in html and f"{p['wilcoxon_p']:.4f}" in html
    # open loop: the metrics object, not the per-sample rows
    for v in ("0.4321", "0.8765", "1.3579", "2.4681", "0.0567", "0.7531"):
        assert v in html
    assert "9.8765" not in html
    # risk vs outcome
    assert "1.750" in html and "0.625" in html
    # per-route thumbnails (4 runs x 2 routes) and sample frames with the student's panel
    assert html.count("<figcaption>r0 &middot;") == 4 and html.count("<figcaption>r1 &middot;") == 4
    assert "r0/" in html and "rsd_tiny" in html
    assert "crossing" in html or "approaching" in html or "not in conflict" in html  # teacher reasons


def test_report_is_self_contained_and_escaped(full_report: Path) -> None:
    html = full_report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|file:|ftp:)""", html, re.I)
    assert not re.search(r"<script|<link|<iframe|@import|url\(", html, re.I)
    assert "http://" not in html and "https://" not in html
    srcs = re.findall(r'<img[^>]*src="([^"]{0,30})', html)
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    # input text is escaped: the infraction message and the label with angle brackets
    assert NASTY not in html and "<b>vehicle" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;vehicle&lt;/b&gt;" in html
    assert "care&lt;ful&gt;" in html and "care<ful>" not in html
    images = _images(html)
    assert len(images) >= 8 + 2 * 2 + 3  # thumbnails, mosaics and risk panels, plots
    thumbs = [im for im in images if im.size == (256, 256)]
    assert len(thumbs) == 8
    for im in thumbs:  # a map, not a blank square: the expert trajectory (cyan) is drawn on it
        a = np.asarray(im.convert("RGB")).astype(int)
        assert a.std() > 10
        assert (np.abs(a - np.array([0, 235, 255])).max(axis=-1) <= 10).sum() > 20


def test_minimal_report_only_closed_loop(runs: dict[str, Path], tmp_path: Path) -> None:
    path = build_report(ReportInputs.from_folders(closed_loop=[runs["s0"]]), tmp_path)
    html = path.read_text()
    assert 'id="closed-loop"' in html and 'id="routes"' in html
    for sid in ("open-loop", "frames", "generalisation", "risk-vs-outcome"):
        assert f'id="{sid}"' not in html
    assert "no open-loop results given" in html and "no data set given" in html
    summary = load_json(runs["s0"] / "summary.json")
    assert f"{summary['driving_score']:.2f}" in html and f"{summary['efficiency']:.2f}" in html


def test_bad_inputs_name_the_file(tmp_path: Path, runs: dict[str, Path]) -> None:
    with pytest.raises(ReportInputError, match=re.escape(str(tmp_path))):
        ReportInputs.from_folders(closed_loop=[tmp_path])
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "r0.json").write_text('{"route_id": "r0"}')
    with pytest.raises(ReportInputError, match=r"r0\.json: not a closed-loop route result"):
        ReportInputs.from_folders(closed_loop=[tmp_path])
    bad = tmp_path / "ol.json"
    bad.write_text("{not json")
    with pytest.raises(ReportInputError, match=r"ol\.json"):
        ReportInputs.from_folders(closed_loop=[runs["s0"]], open_loop=[bad])
    with pytest.raises(ReportInputError, match="not a student checkpoint"):
        ReportInputs.from_folders(closed_loop=[runs["s0"]], checkpoints=[tmp_path])


def test_cli_report(runs: dict[str, Path], open_loop_json: Path, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from riskdistill.cli.report import report

    app = typer.Typer()
    app.command("report")(report)
    app.command("other")(lambda: None)
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "report",
            "--closed-loop",
            str(runs["s0"]),
            "--open-loop",
            str(open_loop_json),
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report.html").is_file() and "0.4321" in (tmp_path / "report.html").read_text()
    res = runner.invoke(app, ["report", "--closed-loop", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "nope" in res.output
    res = runner.invoke(app, ["report", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "nothing to report" in res.output


# ------------------------------------------------------------------------------------------ browser
def _screenshot(html: Path, png: Path, tmp: Path, size: tuple[int, int] = (1280, 2000)) -> None:
    profile = tmp / "chromium-profile"
    profile.mkdir()
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
        f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={size[0]},{size[1]}",
        html.resolve().as_uri(),
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert png.is_file(), f"chromium wrote no screenshot (rc {res.returncode}): {res.stderr[-2000:]}"


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (apt-get install chromium)"
)
def test_report_renders_in_chromium(full_report: Path, tmp_path: Path) -> None:
    png = tmp_path / "shot.png"
    _screenshot(full_report, png, tmp_path)
    with Image.open(png) as im:
        assert im.size == (1280, 2000)
        img = np.asarray(im.convert("RGB")).astype(int)
    # not an error page: the page's header band (HEADER_COLOR) spans the top, then a light page with content
    header = np.array([int(HEADER_COLOR[i : i + 2], 16) for i in (1, 3, 5)])
    band = img[2:60, :, :]
    is_header = np.abs(band - header).max(axis=-1) <= 3
    assert is_header.mean() > 0.6, f"header band missing: {is_header.mean():.2f} of the top rows"
    assert is_header[:, 1180:1250].mean() > 0.9  # full width (left of the scroll bar)
    body = img[200:, :, :]
    assert body.std() > 20  # tables, plots, thumbnails: far from uniform
    assert len(np.unique(body.reshape(-1, 3) // 16, axis=0)) > 50
    light = (body > 235).all(axis=-1).mean()
    assert light > 0.3  # white sections and the light page background
    # the inlined plots decoded and drew: the first series' bar colour (#1f77b4 at alpha 0.85 on white)
    bar = np.abs(img - np.array([65, 139, 191])).max(axis=-1) <= 8
    assert bar.sum() > 2000


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (apt-get install chromium)"
)
def test_error_page_is_told_apart(tmp_path: Path) -> None:
    """The screenshot checks fail on what Chromium shows for a missing file (its error page)."""
    png = tmp_path / "missing.png"
    _screenshot(tmp_path / "does_not_exist.html", png, tmp_path)
    with Image.open(png) as im:
        img = np.asarray(im.convert("RGB")).astype(int)
    header = np.array([int(HEADER_COLOR[i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(img[2:60] - header).max(axis=-1) <= 3).mean() < 0.1


def test_json_artifacts_untouched(runs: dict[str, Path], tmp_path: Path) -> None:
    """Building a report reads the run folders only: nothing in them changes."""
    before = {p: p.read_bytes() for p in runs["s0"].rglob("*") if p.is_file()}
    build_report(ReportInputs.from_folders(closed_loop=[runs["s0"]]), tmp_path)
    after = {p: p.read_bytes() for p in runs["s0"].rglob("*") if p.is_file()}
    assert before == after
    assert json.loads((runs["s0"] / "summary.json").read_text())["n_routes"] == 2


# ------------------------------------------------------------------------------------------ BEV risk figure
def test_risk_comparison_geometry() -> None:
    """Heat and trajectories land where the grid puts them: forward up, left left."""
    from riskdistill.geometry import BevGrid
    from riskdistill.viz.risk import GAP_PX, render_risk_comparison
    from riskdistill.viz.topdown import PLAN_COLOR

    grid = BevGrid.preset("tiny")  # 64 x 64 cells of 1 m, x in (-16, 48], y in (-32, 32]
    teacher = np.zeros(grid.shape, np.float32)
    r, c = grid.metric_to_cell([20.5, 10.5])  # 20 m ahead, 10 m to the left
    teacher[r - 1 : r + 2, c - 1 : c + 2] = 1.0
    pred = np.zeros(grid.shape, np.float32)
    plan = np.stack([np.linspace(2, 30, 6), np.full(6, -8.0)], axis=1)  # 8 m to the right
    h = 256
    img = render_risk_comparison(teacher, [pred], grid, planned_xy=[plan], names=["rsd"], height_px=h)
    assert img.shape == (h, 2 * h + GAP_PX, 3) and img.dtype == np.uint8
    k = h / 64  # px per cell
    left, right = img[:, :h].astype(int), img[:, h + GAP_PX :].astype(int)
    # teacher panel: a red spot at the cell, i.e. above the ego (row < ego row) and left of the centre
    v, u = (r + 0.5) * k, (c + 0.5) * k
    spot = left[int(v) - 2 : int(v) + 3, int(u) - 2 : int(u) + 3]
    assert spot[..., 0].min() > 200 and spot[..., 1].max() < 120
    assert u < h / 2 and v < grid.metric_to_index([0.0, 0.0])[0] * k
    # predicted panel: no heat, the plan (green) right of the centre line, ahead of the ego
    green = np.all(np.abs(right - np.array(PLAN_COLOR)) <= 3, axis=-1)
    rows, cols = np.nonzero(green)
    assert len(rows) > 20
    assert np.median(cols) > h / 2 + 6 * k and rows.min() < grid.metric_to_index([20.0, 0.0])[0] * k
    with pytest.raises(ValueError, match="does not match the BEV grid"):
        render_risk_comparison(np.zeros((3, 3)), [pred], grid)


# ------------------------------------------------------------------------------------------ explore it
def _chromium(url: str, tmp: Path) -> tuple[str, list[str]]:
    """Load ``url`` in headless Chromium: its DOM after load and the console messages it logged."""
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    profile.mkdir()
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom", url,
    ]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout, [line for line in res.stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def student_run(runs: dict[str, Path], checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny student driven on the tiny suite (routes cut at 6 s): failed routes with plans, path
    risk and a Rerun recording per route."""
    from riskdistill.evaluation.generalisation import EvalVariant
    from riskdistill.viz.rerun_log import RerunRecording

    out = tmp_path_factory.mktemp("student_cl") / "rsd-s0"
    evaluate_suite(
        make_tiny_suite(), str(checkpoint), out, show_progress=False,
        variant=EvalVariant(route_timeout_s=6.0), recorders=[RerunRecording(every=10)],
    )  # fmt: skip
    atomic_write_json(
        out / "run.json", {"command": "eval closed-loop", "config": {"label": "rsd", "seed": 0}}
    )
    return out


@pytest.fixture(scope="module")
def explore_report(runs, student_run, open_loop_json, tmp_path_factory) -> Path:
    return build_report(
        ReportInputs.from_folders(
            closed_loop=[runs["s0"], student_run], open_loop=[f"rsd-s0={open_loop_json}"]
        ),
        tmp_path_factory.mktemp("explore"),
    )


def test_route_pages_rendered_in_worker_processes_are_the_same(
    runs: dict[str, Path], student_run: Path, explore_report: Path, tmp_path: Path
) -> None:
    """Route pages rendered by two processes are byte for byte those rendered by one."""
    path = build_report(ReportInputs.from_folders(closed_loop=[runs["s0"], student_run]), tmp_path, workers=2)
    one = sorted(
        p.relative_to(explore_report.parent) for p in (explore_report.parent / "routes").rglob("*.html")
    )
    two = sorted(p.relative_to(path.parent) for p in (path.parent / "routes").rglob("*.html"))
    assert len(one) >= 4 and one == two
    for rel in one:
        assert (path.parent / rel).read_bytes() == (explore_report.parent / rel).read_bytes(), rel


def _failed_route_links(html: str) -> list[tuple[str, str]]:
    """``(route id, href)`` of the failed rows of the routes tables."""
    return re.findall(r'<tr class="fail"><td class="l"><a href="([^"]+)">([^<]+)</a>', html)


def test_failed_route_page_says_why(explore_report: Path, student_run: Path) -> None:
    html = explore_report.read_text()
    links = _failed_route_links(html)
    assert links, "the student's routes failed and link to their pages"
    for href, route_id in links:
        doc = load_json(student_run / "routes" / f"{route_id}.json")
        page = explore_report.parent / href
        assert page.is_file() and page.parent.parent.name == "routes"
        text = page.read_text()
        assert "Why this route failed" in text and doc["status"] in text and route_id in text
        if doc["route_end"] != "Completed":
            assert f"Route end: {doc['route_end']}." in text
        for e in doc["events"]:
            assert e["kind"] in text
        # the overview (map, trajectory, plans) and the timeline (speed, progress, path risk) are inlined
        images = _images(text)
        assert any(im.size == (480, 480) for im in images) and len(images) >= 2
        assert doc["plans"] and doc["path_risk"]  # what the timeline drew
        # links: the route's .rrd and its route file, relative to the page, both exist
        hrefs = re.findall(r'<a (?:class="rrd" )?href="([^"]+)"', text)
        rrd = [h for h in hrefs if h.endswith(".rrd")]
        assert (
            len(rrd) == 1
            and (page.parent / rrd[0]).resolve() == (student_run / doc["rerun"]["path"]).resolve()
        )
        assert (page.parent / rrd[0]).is_file()
        assert any(
            (page.parent / h).resolve() == (student_run / "routes" / f"{route_id}.json").resolve()
            for h in hrefs
        )
        back = [h for h in hrefs if h.endswith("report.html#routes")]
        assert back and (page.parent / back[0].split("#")[0]).resolve() == explore_report.resolve()


def test_run_names_and_intervals(explore_report: Path, student_run: Path) -> None:
    html = explore_report.read_text()
    # one name per run in every section: the open-loop column "rsd-s0" and the closed-loop run "rsd" seed 0
    assert "<th>rsd · seed 0</th>" in html and "<th>rsd-s0</th>" not in html
    assert "<h3>rsd · seed 0 <span" in html and "<h3>expert · seed 0 <span" in html  # seed: folder name
    assert "compared:</b> expert, rsd</span>" in html
    # one run per configuration: the DS cell carries the 95 % bootstrap interval over its routes
    from riskdistill.evaluation.compare import bootstrap_confidence_interval

    scores = [
        load_json(f)["scores"]["score_composed"] for f in sorted((student_run / "routes").glob("*.json"))
    ]
    ci = bootstrap_confidence_interval(scores)
    ds = load_json(student_run / "summary.json")["driving_score"]
    assert f"{ds:.2f} [{ci['ci_low']:.2f}, {ci['ci_high']:.2f}]" in html


def test_long_infraction_lists_are_wrapped(runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "noisy_s0"
    shutil.copytree(runs["s0"], run)
    f = run / "routes" / "r1.json"
    doc = load_json(f)
    t = doc["trajectory"]
    doc["events"] = [
        {"kind": "collisions_vehicle", "time_s": 1.0 + 0.01 * k, "x_m": t["x_m"][3], "y_m": t["y_m"][3],
         "message": f"{NASTY} " + "very long message " * 20, "actor_id": 3, "value": None}
        for k in range(2000)
    ]  # fmt: skip
    doc.pop("scores"), doc.pop("status")
    atomic_write_json(f, doc)
    _rewrite_summary(run)
    path = build_report(ReportInputs.from_folders(closed_loop=[run]), tmp_path / "report")
    html = path.read_text()
    cells = re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)
    assert max(len(c) for c in cells) < 1500  # was 68,000 characters for such a route
    cell = next(c for c in cells if "2000 &times; collisions vehicle" in c)
    assert "all 2000 on the route page" in cell and 'class="q"' in cell
    assert re.search(r'<td class="wrap">', html)
    page = (path.parent / _failed_route_links(html)[0][0]).read_text()
    from riskdistill.viz.report_route import MAX_EVENT_ROWS

    assert page.count(">collisions_vehicle</td>") == MAX_EVENT_ROWS
    assert f"{2000 - MAX_EVENT_ROWS} more infractions not listed" in page
    assert "&lt;script&gt;" in page and "<script" not in page


def test_training_curves(labelled_micro_run: Path, tmp_path: Path) -> None:
    path = build_report(ReportInputs.from_folders(training=[labelled_micro_run]), tmp_path)
    html = path.read_text()
    assert 'id="training"' in html and "micro · seed 3" in html
    imgs = _images(html[html.index('id="training"') :])
    assert len(imgs) == 1 and imgs[0].size[0] > 600  # the training-loss panels
    with pytest.raises(ReportInputError, match=r"metrics\.csv"):
        ReportInputs.from_folders(training=[tmp_path])


@pytest.fixture(scope="module")
def labelled_micro_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from riskdistill.training import train
    from test_training_support import make_labelled_copy, micro_config

    root = make_labelled_copy(tiny_dataset, tmp_path_factory)
    run = tmp_path_factory.mktemp("train") / "micro_seed3"
    train(micro_config(root, max_steps=3, seed=3), run)
    return run


def test_camera_names_on_mosaics() -> None:
    from riskdistill.viz.cameras import render_camera_mosaic

    names = ["CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT", "CAM_BACK"]
    m = render_camera_mosaic(np.full((5, 64, 176, 3), 128, np.uint8), names)
    tile = lambda r, c: m[r * 64 : (r + 1) * 64, c * 176 : (c + 1) * 176]  # noqa: E731
    for r, c in ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1)):
        corner = tile(r, c)[:14, :100]
        assert (corner == 0).all(axis=-1).sum() > 100 and (corner > 200).all(axis=-1).sum() > 20  # label
    missing = tile(1, 2)[:14, :150]  # CAM_BACK_RIGHT: black tile, its name in red
    assert ((missing[..., 0] > 200) & (missing[..., 1] < 180)).sum() > 20
    assert (tile(0, 1)[30:] == 128).all()  # the image below the label is untouched
    np.testing.assert_array_equal(
        render_camera_mosaic(m[None, :64, :176], ["X"], labels=False)[:64, :176], m[:64, :176]
    )


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (apt-get install chromium)"
)
def test_click_a_failed_route_in_chromium(explore_report: Path, tmp_path: Path) -> None:
    """Open the report in Chromium, follow the link of a failed route as a click would, see why it failed."""
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><body><script>console.error("control")</script></body></html>')
    assert _chromium(control.as_uri(), tmp_path)[1], "console messages are seen (control page)"

    dom, console = _chromium(explore_report.resolve().as_uri(), tmp_path)
    assert console == [], console
    for sid in ("closed-loop", "open-loop", "routes"):
        assert f'id="{sid}"' in dom
    href, route_id = _failed_route_links(dom)[0]
    page_url = (explore_report.parent / href).resolve().as_uri()
    page_dom, page_console = _chromium(page_url, tmp_path)
    assert page_console == [], page_console
    assert "Why this route failed" in page_dom and route_id in page_dom
    for sid in ("verdict", "files", "drive", "infractions"):
        assert f'id="{sid}"' in page_dom
    png = tmp_path / "route.png"
    _screenshot(explore_report.parent / href, png, tmp_path, size=(1280, 1400))
    with Image.open(png) as im:
        img = np.asarray(im.convert("RGB")).astype(int)
    header = np.array([int(HEADER_COLOR[i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(img[2:50] - header).max(axis=-1) <= 3).mean() > 0.6  # the page's header band
    body = img[120:]
    assert body.std() > 20 and len(np.unique(body.reshape(-1, 3) // 16, axis=0)) > 50  # map, plots, text
    # the overview map is on screen: its grass-green ground (topdown.GROUND) fills a large block
    from riskdistill.viz.topdown import GROUND_COLOR

    grass = np.abs(body - np.array(GROUND_COLOR)).max(axis=-1) <= 6
    assert grass.sum() > 20_000


def test_cli_report_training_and_route_pages(
    runs: dict[str, Path], labelled_micro_run: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from riskdistill.cli.main import app

    res = CliRunner().invoke(
        app,
        ["report", "--closed-loop", str(runs["expert_s1"]), "--training", f"micro={labelled_micro_run}",
         "--route-pages", "1", "--out", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    html = (tmp_path / "report.html").read_text()
    assert 'id="training"' in html and "micro · seed 3" in html
    pages = sorted((tmp_path / "routes").rglob("*.html"))
    assert [p.name for p in pages] == ["r0.html"]  # one page per run: the route with the collision first
    assert (
        'href="routes/00-expert-seed-1/r0.html"' in html
        and 'href="routes/00-expert-seed-1/r1.html"' not in html
    )
    res = CliRunner().invoke(app, ["report", "--training", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "metrics.csv" in res.output
