"""The study merge on constructed parts: the result folder, refusals of parts that do not belong together
(configuration, git commit, route suite, a seed twice), missing parts reported and never averaged over,
and a crashed route scoring 0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from riskdistill.cli.main import app
from riskdistill.evaluation.driving_score import RouteResult
from riskdistill.evaluation.leaderboard import save_checkpoint_json
from riskdistill.evaluation.results import route_doc
from riskdistill.evaluation.risk_outcome import path_risk_series
from riskdistill.experiment import MergeError, StageRunner, config_for_seeds, experiment_config, merge_study
from riskdistill.experiment.pipeline import STUDY_SUITE, run_name
from riskdistill.io import atomic_write_json
from riskdistill.sim.events import InfractionEvent, RouteEnd
from riskdistill.training.logger import MetricsLogger
from riskdistill.types import Infraction

VARIANTS = ["baseline", "rsd", "shuffled"]
ROUTES = [
    {
        "route_id": f"bench_{s}_{k}",
        "scenario": s,
        "seed": 300_000 + 10 * i + k,
        "layout": {"family": fam},
        "tags": [],
    }
    for i, (s, fam) in enumerate(
        [("Accident", "straight"), ("AccidentTwoWays", "straight"), ("VehicleTurningRoute", "junction_t")]
    )
    for k in range(4)
]  # 12 routes: 4 of the held-out scenario type, 4 on the held-out layout


def study_config(seeds: list[int], variants=VARIANTS, rig_shifts=("pitch-3deg",), **over):
    cfg = experiment_config(
        "quick",
        seeds=[0, 1, 2],
        variants=list(variants),
        eval={"rig_shifts": list(rig_shifts), "rerun": False},
        **over,
    )
    return config_for_seeds(cfg, seeds)


def route_score(variant: str, seed: int, rig: str, k: int) -> float:
    """Route completion of a constructed route: RSD completes 30 points more on the nominal rig."""
    rng = np.random.default_rng([seed, k, VARIANTS.index(variant), rig == "nominal"])
    base = float(rng.uniform(20, 60))
    return min(
        100.0, base + (30.0 if variant == "rsd" and rig == "nominal" else 0.0) + (40 if k % 3 == 0 else 0)
    )


def fake_part(
    root: Path,
    seeds: list[int],
    commit: str = "c0ffee",
    routes: list[dict] | None = None,
    skip: tuple[tuple[str, int, str], ...] = (),
    crash: tuple[tuple[str, int, str, str], ...] = (),
    **over,
) -> Path:
    """An experiment part as the pipeline leaves it: config, run.json, study_suite.json, finished stages,
    closed-loop route files, training logs with BEV gradient rows and open-loop metrics."""
    cfg = study_config(seeds, **over)
    routes = routes or ROUTES
    atomic_write_json(root / "experiment.json", cfg.to_dict())
    atomic_write_json(root / "run.json", {"git_commit": commit, "config": cfg.to_dict()})
    atomic_write_json(root / STUDY_SUITE, {"name": "bench-test", "routes": routes})
    stages = StageRunner(root)
    for seed in seeds:
        for v in cfg.variants:
            name = f"{v}-s{seed}"
            stages.record(
                f"train {name}", {"steps": 6, "train_losses": {"total": 1.0}, "val_metrics": {}}, 3.0
            )
            log = MetricsLogger(root / "train" / name, tensorboard=False)
            for step in (2, 4):
                g = {"bev_grad_planning": 2.0, **({"bev_grad_risk": 0.5 * step} if v != "baseline" else {})}
                log.log(step, 0, "bev_grad", g)
            log.close()
            atomic_write_json(
                root / "eval" / name / "open_loop.json",
                {"metrics": {"l2_2s": 1.5, "risk_hazard_recall": 0.5}},
            )
            for rig in cfg.rigs:
                if (v, seed, rig) in skip:
                    continue
                folder = root / "eval" / name / f"closed_loop-{rig}"
                results = []
                for k, spec in enumerate(routes):
                    rid = spec["route_id"]
                    rc = route_score(v, seed, rig, k)
                    events = (
                        [InfractionEvent(Infraction.COLLISION_VEHICLE, 3.0, 0.0, 0.0, "hit")]
                        if k % 4 == 1
                        else []
                    )
                    end = RouteEnd.COMPLETED if rc >= 100 else RouteEnd.BLOCKED
                    if (v, seed, rig, rid) in crash:
                        end, rc, events = RouteEnd.AGENT_CRASHED, 0.0, []
                    r = RouteResult(rid, spec["scenario"], end, rc, events, route_length_m=200.0, index=k)
                    doc = route_doc(r, error="boom" if end == RouteEnd.AGENT_CRASHED else None)
                    doc["spec"] = spec
                    doc["path_risk"] = (
                        {"time_s": [0.0, 1.0, 2.0, 3.0], "risk": [0.1, 0.2, 0.7, 0.9]}
                        if v != "baseline"
                        else None
                    )
                    atomic_write_json(folder / "routes" / f"{rid}.json", doc)
                    results.append(r)
                save_checkpoint_json(folder / "results.json", results)
                stages.record(f"closed loop {name} {rig}", {"path": str(folder), "summary": {}}, 10.0)
    return root


def test_merge_writes_the_result_folder(tmp_path: Path) -> None:
    parts = [fake_part(tmp_path / f"s{s}", [s]) for s in (0, 1, 2)]
    res = merge_study(parts, tmp_path / "results" / "toy", draws=400)
    out = res.out_dir
    for f in ("README.md", "study.json", "config.json", "suite.json", "timings.json", "comparison.json",
              "comparison.md", "diagnostics.json", "diagnostics.md"):  # fmt: skip
        assert (out / f).is_file(), f
    study = json.loads((out / "study.json").read_text())
    assert study["seeds"] == [0, 1, 2] and study["missing"] == [] and study["git_commit"] == "c0ffee"
    assert study["pairs"] == [["rsd", "baseline"], ["rsd", "shuffled"]]
    assert study["selections"] == {"all": 12, "heldout-layout": 4, "heldout-scenario": 4}
    assert json.loads((out / "config.json").read_text())["seeds"] == [0, 1, 2]
    # the planted +30 RC on the nominal rig is found against both, and not on the shifted rig
    comps = {(c["a"], c["b"], c["rig"], c["selection"]): c for c in res.statistics["comparisons"]}
    for b in ("baseline", "shuffled"):
        assert comps["rsd", b, "nominal", "all"]["driving_score"]["ci_low"] > 0.0
        assert comps["rsd", b, "pitch-3deg", "all"]["driving_score"]["ci_low"] < 0.0
    # per-seed summaries and per-route files, small JSON
    s1 = json.loads((out / "seeds" / "s1.json").read_text())
    assert s1["variants"]["rsd"]["bev_grad"]["bev_grad_risk"] == pytest.approx(1.5)
    assert s1["variants"]["rsd"]["bev_grad"]["risk_over_planning"] == pytest.approx(0.75)
    assert s1["variants"]["rsd"]["open_loop"]["risk_hazard_recall"] == 0.5
    assert s1["variants"]["baseline"]["closed_loop"]["nominal"]["n_routes"] == 12
    routes = json.loads((out / "routes" / "rsd-s2" / "pitch-3deg.json").read_text())["routes"]
    assert len(routes) == 12 and routes[1]["events"] == [["collisions_vehicle", 3.0]]
    assert all("trajectory" not in r for r in routes)
    # diagnostics: collisions by scenario type (route k % 4 == 1 collides), lead times of the risk variants
    diag = json.loads((out / "diagnostics.json").read_text())
    acc = diag["collisions_by_scenario"]["nominal"]["rsd"]["Accident"]
    assert acc == {"routes": 12, "collisions": 3, "routes_with_collision": 3, "per_route": 0.25}
    by_type = diag["scores_by_scenario"]["nominal"]["rsd"]["Accident"]  # RC x 1, or x 0.6 after a crash
    want = [
        route_score("rsd", sd, "nominal", k) * (0.6 if k % 4 == 1 else 1)
        for sd in (0, 1, 2)
        for k in range(4)
    ]
    assert by_type["routes"] == 12 and by_type["driving_score"] == pytest.approx(np.mean(want))
    assert "## Driving score by scenario type" in (out / "diagnostics.md").read_text()
    assert set(diag["lead_time"]) == {"rsd", "shuffled"}  # the baseline predicts no risk
    assert diag["lead_time"]["rsd"]["n_events"] == 9 and diag["lead_time"]["rsd"]["lead_time_mean_s"] == 1.0
    readme = (out / "README.md").read_text()
    assert "## What was run" in readme and "## How long it took" in readme and "## What it shows" in readme
    assert "## What it does not show" in readme and "## Interpretation" in readme
    ds = comps["rsd", "baseline", "nominal", "all"]["driving_score"]
    assert f"{ds['diff']:+.1f} [{ds['ci_low']:+.1f}, {ds['ci_high']:+.1f}]" in readme
    assert "Missing: nothing" in readme and "| seeds [1] |" in readme  # a timing row per part
    runs = diag["lead_time"]["rsd"]["n_routes_with_risk"]
    assert f"- rsd: 9 collisions on the nominal rig in {runs} route runs" in readme


def test_merge_refuses_parts_of_different_studies(tmp_path: Path) -> None:
    a = fake_part(tmp_path / "a", [0])
    b = fake_part(tmp_path / "b", [1], train={"max_steps": 7})
    with pytest.raises(MergeError, match=r"configuration field 'train.max_steps' differs \(7 vs 6"):
        merge_study([a, b], tmp_path / "out")
    c = fake_part(tmp_path / "c", [1], commit="deadbeef")
    with pytest.raises(MergeError, match=r"field 'git commit' differs \(deadbeef vs c0ffee\)"):
        merge_study([a, c], tmp_path / "out")
    other = [dict(r, seed=r["seed"] + 1) if r["route_id"] == "bench_Accident_2" else r for r in ROUTES]
    d = fake_part(tmp_path / "d", [1], routes=other)
    with pytest.raises(MergeError, match=r"field 'route suite' differs .*\['bench_Accident_2'\]"):
        merge_study([a, d], tmp_path / "out")
    e = fake_part(tmp_path / "e", [0])
    with pytest.raises(MergeError, match="seed 0 is in two parts"):
        merge_study([a, e], tmp_path / "out")
    # a part resumed on another commit carries both in its run.json files: refused too
    atomic_write_json(a / "run.before-20260101T000000Z.json", {"git_commit": "0ld"})
    with pytest.raises(MergeError, match="several git commits"):
        merge_study([a], tmp_path / "out")
    with pytest.raises(MergeError, match="neither an experiment folder"):
        merge_study([tmp_path / "nowhere"], tmp_path / "out")
    # the workers count changes no result: parts may differ in it
    f = fake_part(tmp_path / "f", [1], workers=1)
    g = fake_part(tmp_path / "g", [2])
    merge_study([e, f, g], tmp_path / "ok", draws=100)


def test_missing_parts_are_refused_or_listed_never_averaged(tmp_path: Path) -> None:
    a = fake_part(tmp_path / "a", [0])
    b = fake_part(tmp_path / "b", [1], skip=(("shuffled", 1, "pitch-3deg"),))
    with pytest.raises(
        MergeError,
        match=r"7 missing part\(s\) of the study: seed 2: no part holds it; shuffled-s1 pitch-3deg: closed"
        r" loop.*--allow-missing",
    ):
        merge_study([a, b], tmp_path / "out")
    res = merge_study([a, b], tmp_path / "out", allow_missing=True, draws=200)
    missing = {(m["variant"], m["seed"], m["rig"]): m["reason"] for m in res.missing}
    assert missing["rsd", 2, "nominal"] == "no part holds seed 2"
    assert missing["shuffled", 1, "pitch-3deg"].startswith("closed loop not finished (0 of 12")
    assert len(missing) == 3 * 2 * 1 + 1
    comps = {(c["a"], c["b"], c["rig"], c["selection"]): c for c in res.statistics["comparisons"]}
    shifted = comps["rsd", "shuffled", "pitch-3deg", "all"]
    assert shifted["seeds"] == [0] and shifted["missing_seeds"] == {"rsd": [], "shuffled": [1]}
    assert comps["rsd", "baseline", "pitch-3deg", "all"]["seeds"] == [0, 1]
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "**Missing (7 cells" in readme and "shuffled-s1 pitch-3deg" in readme
    res = CliRunner().invoke(app, ["experiment", "merge", str(a), str(b), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 2 and "missing part" in res.output


def test_a_crashed_route_scores_zero_and_the_study_goes_on(tmp_path: Path) -> None:
    crash = (("rsd", 0, "nominal", "bench_Accident_0"),)
    parts = [
        fake_part(tmp_path / "s0", [0], crash=crash),
        fake_part(tmp_path / "s1", [1]),
        fake_part(tmp_path / "s2", [2]),
    ]
    clean = [fake_part(tmp_path / "c0", [0]), parts[1], parts[2]]
    res = merge_study(parts, tmp_path / "out", draws=200)
    ref = merge_study(clean, tmp_path / "ref", draws=200)
    assert res.study["crashed_routes"] == 1 and ref.study["crashed_routes"] == 0
    s0 = json.loads((tmp_path / "out" / "seeds" / "s0.json").read_text())["variants"]["rsd"]["closed_loop"][
        "nominal"
    ]
    assert s0["crashed_routes"] == ["bench_Accident_0"] and s0["n_routes"] == 12
    route = json.loads((tmp_path / "out" / "routes" / "rsd-s0" / "nominal.json").read_text())["routes"][0]
    assert (
        route["driving_score"] == 0.0
        and route["route_end"] == "Failed - Agent crashed"
        and route["error"] == "boom"
    )

    def ds(r):
        return next(
            c
            for c in r.statistics["comparisons"]
            if (c["a"], c["b"], c["rig"], c["selection"]) == ("rsd", "baseline", "nominal", "all")
        )["driving_score"]

    lost = route_score("rsd", 0, "nominal", 0)  # what the crashed route would have scored
    assert ds(res)["mean_a"] == pytest.approx(ds(ref)["mean_a"] - lost / 36)  # 0 over 3 seeds x 12 routes


def test_merging_again_keeps_the_interpretation_a_person_wrote(tmp_path: Path) -> None:
    first = fake_part(tmp_path / "s0", [0])
    out = tmp_path / "results" / "toy"
    merge_study([first], out, allow_missing=True, draws=200)
    readme = (out / "README.md").read_text()
    assert "_To be written" in readme and "**Missing (" in readme
    note = "Seed 0 only: no detectable difference.\n\nSecond paragraph, with a table:\n\n| a | b |\n|---|---|"
    (out / "README.md").write_text(
        readme.replace(readme[readme.index("_To be written") :].split("\n\n")[0], note)
    )
    merge_study([first, fake_part(tmp_path / "s1", [1])], out, allow_missing=True, draws=200)
    again = (out / "README.md").read_text()
    assert note in again and "_To be written" not in again
    assert again.index("## Interpretation") < again.index(note) < again.index("## Files")
    assert json.loads((out / "study.json").read_text())["seeds_with_results"] == [0, 1]


def test_a_result_folder_is_a_part_so_seeds_from_several_sessions_add_up(tmp_path: Path) -> None:
    """Seeds merged once (their experiment folders gone) plus a new seed give the statistics of merging all
    experiment folders at once; a rerun seed replaces the merged one; another commit is refused."""
    parts = [fake_part(tmp_path / f"s{s}", [s]) for s in (0, 1, 2)]
    whole = merge_study(parts, tmp_path / "whole", draws=300)
    out = tmp_path / "results" / "study"
    merge_study(parts[:2], out, allow_missing=True, draws=300)
    assert json.loads((out / "study.json").read_text())["seeds_with_results"] == [0, 1]
    nominal = json.loads((out / "routes" / "rsd-s0" / "nominal.json").read_text())["routes"]
    t, risk = path_risk_series(nominal[0]["path_risk"])  # kept (compacted) for the lead times
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0] and risk.tolist() == [0.1, 0.2, 0.7, 0.9]
    for p in parts[:2]:  # the experiment folders of the merged seeds are gone
        for f in sorted(p.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
    res = merge_study([out, parts[2]], out, draws=300)
    assert res.missing == []
    for f in ("comparison.json", "diagnostics.json", "seeds/s0.json", "seeds/s2.json", "timings.json"):
        assert json.loads((out / f).read_text()) == json.loads((whole.out_dir / f).read_text()), f
    for f in (whole.out_dir / "routes").rglob("*.json"):
        assert json.loads((out / f.relative_to(whole.out_dir)).read_text()) == json.loads(f.read_text())
    study = json.loads((out / "study.json").read_text())
    assert study["parts"] == [{"path": str(parts[s]), "seeds": [s]} for s in (0, 1, 2)]
    assert study["seeds_with_results"] == [0, 1, 2] and study["git_commit"] == "c0ffee"
    # a seed rerun in an experiment folder replaces the merged one
    rerun = fake_part(tmp_path / "s1-again", [1], skip=(("rsd", 1, "pitch-3deg"),))
    res = merge_study([out, rerun], tmp_path / "again", allow_missing=True, draws=300)
    assert res.missing == [
        {"variant": "rsd", "seed": 1, "rig": "pitch-3deg", "reason": "closed loop not finished (0 of 12 "
         "routes written)"}
    ]  # fmt: skip
    parts_again = json.loads((tmp_path / "again" / "study.json").read_text())["parts"]
    assert {"path": str(rerun), "seeds": [1]} in parts_again
    # a result folder of another commit is refused, naming the field
    with pytest.raises(MergeError, match="git commit"):
        merge_study([out, fake_part(tmp_path / "other", [2], commit="deadbeef")], tmp_path / "x", draws=100)
    # a result folder without its per-seed summaries is refused, naming the file
    (out / "seeds" / "s0.json").unlink()
    with pytest.raises(MergeError, match=r"s0\.json"):
        merge_study([out], tmp_path / "y", draws=100)


def test_a_seed_split_by_variant_merges_to_the_same_study(tmp_path: Path) -> None:
    """A seed too long for one session runs as parts that differ in variants (or rig shifts): each cell
    comes from the part that ran it and the statistics equal those of whole seeds; a cell in two parts is
    refused; a cell no part runs is listed as missing; a later part adds to a committed result folder."""
    ws = [fake_part(tmp_path / f"w{s}", [s]) for s in (0, 1, 2)]
    whole = merge_study(ws, tmp_path / "whole", draws=300)
    s0 = fake_part(tmp_path / "s0", [0])
    s1a = fake_part(tmp_path / "s1a", [1], variants=["baseline", "rsd"])
    s1b = fake_part(tmp_path / "s1b", [1], variants=["shuffled"])
    s2 = fake_part(tmp_path / "s2", [2], variants=["shuffled", "rsd"])  # another order
    s2b = fake_part(tmp_path / "s2b", [2], variants=["baseline"])
    split = merge_study([s1a, s0, s2, s1b, s2b], tmp_path / "split", draws=300)
    assert split.missing == [] and split.study["variants"] == VARIANTS
    for f in ("comparison.json", "diagnostics.json", "seeds/s0.json", "seeds/s1.json", "seeds/s2.json"):
        got = json.loads((split.out_dir / f).read_text())
        assert got == json.loads((whole.out_dir / f).read_text()), f
    for f in (whole.out_dir / "routes").rglob("*.json"):
        got = json.loads((split.out_dir / f.relative_to(whole.out_dir)).read_text())
        assert got == json.loads(f.read_text()), f
    entries = {e["path"]: e for e in split.study["parts"]}
    assert entries[str(s1a)] == {"path": str(s1a), "seeds": [1], "variants": ["baseline", "rsd"]}
    assert entries[str(s0)] == {"path": str(s0), "seeds": [0]}
    # a committed result folder with half of seed 1 (and seed 2 on the nominal rig only), then the rest
    out = tmp_path / "results" / "study"
    s2n = fake_part(tmp_path / "s2n", [2], rig_shifts=())
    part = merge_study([s0, s1a, s2n], out, allow_missing=True, draws=300)
    missing = {(m["variant"], m["seed"], m["rig"]): m["reason"] for m in part.missing}
    assert missing == {
        ("shuffled", 1, "nominal"): "no part runs shuffled-s1 on the nominal rig",
        ("shuffled", 1, "pitch-3deg"): "no part runs shuffled-s1 on the pitch-3deg rig",
        **{(v, 2, "pitch-3deg"): f"no part runs {v}-s2 on the pitch-3deg rig" for v in VARIANTS},
    }
    assert json.loads((out / "study.json").read_text())["rigs"] == ["nominal", "pitch-3deg"]
    readme = (out / "README.md").read_text()  # the README names what is missing as the parts left it
    assert "shuffled-s1: no part runs it" in readme and "seed 1:" not in readme
    assert f"{run_name('rsd', 2)} pitch-3deg: no part runs rsd-s2 on the pitch-3deg rig" in readme
    assert "seeds [1], variants baseline, rsd" in readme  # the part in "What was run" and its timings
    assert readme.count("| seeds [1], variants baseline, rsd |") == 1
    merge_study([out, s1b], out, allow_missing=True, draws=300)
    assert json.loads((out / "seeds" / "s1.json").read_text()) == json.loads(
        (whole.out_dir / "seeds" / "s1.json").read_text()
    )
    for f in (whole.out_dir / "routes").rglob("*.json"):
        if "pitch" not in f.name or "s2" not in f.parent.name:
            assert json.loads((out / f.relative_to(whole.out_dir)).read_text()) == json.loads(f.read_text())
    # the same part merged again (a re-merge after a code change) is listed once, as itself
    listed = json.loads((out / "study.json").read_text())["parts"]
    assert [e["path"] for e in listed] == [str(s0), str(s1a), str(s2n), str(s1b)]
    merge_study([out, s1b], out, allow_missing=True, draws=300)
    assert json.loads((out / "study.json").read_text())["parts"] == listed
    # two experiment folders running the same cell: refused, naming the cell
    again = fake_part(tmp_path / "s1c", [1], variants=["rsd"])
    with pytest.raises(MergeError, match=r"rsd-s1 is in two parts.*both run rsd-s1 nominal"):
        merge_study([s1a, again], tmp_path / "x", draws=100)


def test_readme_names_the_weights_every_student_fine_tunes() -> None:
    """The study preset fine-tunes a shipped whole student; the README's "What was run" must say so (the
    RiskHead is the only fresh part), and say nothing where students start from their own initialisation."""
    from riskdistill.experiment.study_readme import _init_phrase

    study = experiment_config("study").to_dict()["train"]
    assert _init_phrase(study) == ", each fine-tuning `builtin:cpu_sim_student`"
    assert _init_phrase(experiment_config("quick").to_dict()["train"]) == ""
