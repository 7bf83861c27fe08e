"""Label quality of the oracle teacher per scenario type: hazard recall and non-hazard objects above 0.5.

Runs the privileged expert over a route suite (default: ``bench``, 24 scenario types x 5 routes) in the
simulator without rendering cameras, annotates every ``--every``-th step as the recorder does (with the
privileged keys: route ahead, actor paths, scripted releases, the scenario's hazard actors), labels each
annotation with the oracle teacher and checks it (``teacher.quality.check_hazard_frame``):

- a frame *qualifies* when a named hazard actor is within 40 m (box gap) and its counterfactual time to
  conflict (the ego driving its route regardless, ``teacher.conflict``) is under 4 s;
- it is a *hit* when the best-ranked qualifying hazard scores above 0.5 and no object other than a named
  hazard ranks above it.

By construction the oracle scores a qualifying hazard above 0.5 (a conflict within 4 s at most 40 m away
scores at least 0.53), so for the oracle the TTC rule measures its ranking against the other road users.
An independent cross-check ("expert brakes") qualifies a frame instead when the privileged expert driver
brakes for a named hazard (its ``expert_reason`` names it) that is within 40 m and getting closer to the
real ego, whatever the oracle's geometry says. The expert is cautious (it keeps long gaps and waits for
flows well before they arrive), so this figure is a diagnostic, not a target.

Target: recall >= 90 % on every scenario type with hazard actors, and at most 10 % of the non-hazard
objects above 0.5. Prints the table (and writes it as JSON with ``--json``).

    python benchmarks/bench_hazard_recall.py [--suite bench] [--every 5] [--workers 2] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from rich.console import Console
from rich.table import Table

TARGET_RECALL = 0.90
TARGET_NON_HAZARD_SHARE = 0.10


def label_annotation(teacher: Any, frame_id: str, ann: dict, ego_speed_mps: float) -> Any:
    """The teacher's label of an in-memory annotation."""
    return teacher.label_annotation(frame_id, ann, ego_speed_mps)


def _approaching(ann: dict, actor: int, ego_speed_mps: float) -> bool:
    """Whether ``actor`` gets closer to the real ego (closing speed above 0.5 m/s)."""
    import numpy as np

    ids = np.asarray(ann["actor_id"]).tolist()
    if actor not in ids:
        return False
    i = ids.index(actor)
    r = np.asarray(ann["actor_center_ego"][i][:2], dtype=np.float64) - [1.45, 0.0]
    rel = np.asarray(ann["actor_velocity_ego"][i], dtype=np.float64) - [ego_speed_mps, 0.0]
    return float(-(r @ rel) / max(np.linalg.norm(r), 1e-6)) > 0.5


def run_route(args: tuple[dict[str, Any], int, int | None, dict[str, Any]]) -> dict[str, Any]:
    spec_d, every, max_steps, oracle_cfg = args
    import numba

    numba.set_num_threads(1)
    from riskdistill.data.annotate import annotate_route
    from riskdistill.sim.scenarios import build_scenario
    from riskdistill.sim.suites import RouteSpec
    from riskdistill.teacher.oracle import OracleConfig, OracleTeacher
    from riskdistill.teacher.quality import check_hazard_frame, expert_reacting_to

    spec = RouteSpec.from_dict(spec_d)
    t0 = time.perf_counter()
    try:
        instance = build_scenario(spec.scenario, spec.seed, spec.layout)
        frames = annotate_route(instance, every_n_steps=every, max_steps=max_steps)
    except Exception as exc:  # report, do not stop the benchmark
        return {"route_id": spec.route_id, "scenario": spec.scenario, "error": f"{type(exc).__name__}: {exc}"}
    t1 = time.perf_counter()
    teacher = OracleTeacher(OracleConfig.from_dict(oracle_cfg, source="--oracle-config"))
    checks, expert = [], []
    label_s = 0.0
    for meta, ann in frames:
        t2 = time.perf_counter()
        label = label_annotation(teacher, f"{spec.route_id}/{meta['step']:05d}", ann, meta["ego_speed_mps"])
        label_s += time.perf_counter() - t2
        hf = check_hazard_frame(label, ann, meta["ego_speed_mps"])
        checks.append(None if hf is None else hf.__dict__)
        actor = expert_reacting_to(meta["expert_reason"]) if meta["expert_brake"] > 0.05 else None
        if actor is not None and not _approaching(ann, actor, meta["ego_speed_mps"]):
            actor = None
        he = check_hazard_frame(label, ann, meta["ego_speed_mps"], reacting_to=-1 if actor is None else actor)
        expert.append(None if he is None else he.__dict__)
    return {
        "route_id": spec.route_id,
        "scenario": spec.scenario,
        "checks": checks,
        "expert_checks": expert,
        "sim_annotate_s": t1 - t0,
        "label_s": label_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="bench")
    ap.add_argument("--every", type=int, default=5, help="annotate every N-th 10 Hz step (5: 2 Hz)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="first N routes of the suite")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--oracle-config", default=None, help="JSON file with OracleConfig fields")
    ap.add_argument("--json", default=None, help="write the summary here")
    args = ap.parse_args()

    from riskdistill.sim.scenarios import REGISTRY
    from riskdistill.sim.suites import load_suite
    from riskdistill.teacher.quality import HazardFrame, summarise_hazard_frames

    suite = load_suite(args.suite)
    routes = suite.routes[: args.limit] if args.limit else suite.routes
    cfg = {}
    if args.oracle_config:
        with open(args.oracle_config) as f:
            cfg = json.load(f)
    jobs = [(r.to_dict(), args.every, args.max_steps, cfg) for r in routes]
    t0 = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
            results = list(pool.map(run_route, jobs))
    else:
        results = [run_route(j) for j in jobs]
    wall = time.perf_counter() - t0
    errors = [r for r in results if "error" in r]

    def checks(key: str) -> list[tuple[str, HazardFrame | None]]:
        return [
            (r["scenario"], None if c is None else HazardFrame(**c))
            for r in results
            if key in r
            for c in r[key]
        ]

    no_hazard = [k for k, v in REGISTRY.items() if v.hazard == ""]
    frames = checks("checks")
    summary = summarise_hazard_frames(frames, no_hazard)
    expert = summarise_hazard_frames(checks("expert_checks"), no_hazard)
    n_frames = len(frames)
    label_s = sum(r.get("label_s", 0.0) for r in results)

    def pct(x: float) -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"

    table = Table(
        title=f"oracle hazard recall on suite {suite.name!r} ({len(routes)} routes, {n_frames} frames)"
    )
    cols = ("frames", "qualifying", "hits", "recall", "mean hazard risk", "non-hazard > 0.5")
    table.add_column("scenario type")
    for col in (*cols, "expert brakes: frames", "recall "):
        table.add_column(col, justify="right")
    rows = [*summary["by_scenario"].items(), ("[bold]all[/]", summary["all"] | {"has_hazard": True})]
    for (name, d), e in zip(rows, [*expert["by_scenario"].values(), expert["all"]], strict=True):
        risk = "n/a" if math.isnan(d["mean_hazard_risk"]) else f"{d['mean_hazard_risk']:.2f}"
        table.add_row(
            name,
            str(d["frames"]),
            str(d["qualifying"]),
            str(d["hits"]),
            pct(d["recall"]) if d["has_hazard"] else "n/a (no hazard actor)",
            risk,
            f"{d['non_hazard_high']}/{d['non_hazard']} ({pct(d['non_hazard_high_share'])})",
            str(e["qualifying"]),
            pct(e["recall"]) if d["has_hazard"] else "n/a",
        )
    a = summary["all"]
    console = Console(width=170)
    console.print(table)
    worst = summary["min_recall_over_types"]
    ok_recall = not math.isnan(worst) and worst >= TARGET_RECALL
    ok_share = a["non_hazard_high_share"] <= TARGET_NON_HAZARD_SHARE
    console.print(
        f"lowest recall over scenario types {pct(worst)} (target >= {pct(TARGET_RECALL)}): "
        f"{'[green]OK[/]' if ok_recall else '[red]BELOW[/]'}; non-hazard objects above 0.5 "
        f"{pct(a['non_hazard_high_share'])} (target <= {pct(TARGET_NON_HAZARD_SHARE)}): "
        f"{'[green]OK[/]' if ok_share else '[red]ABOVE[/]'}"
    )
    console.print(
        f"wall {wall:.0f} s with {args.workers} workers; labelling "
        f"{1e3 * label_s / max(n_frames, 1):.2f} ms/frame; load average {os.getloadavg()[0]:.1f}"
    )
    for e in errors:
        console.print(f"[red]route {e['route_id']} failed: {e['error']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"suite": suite.name, "routes": len(routes), "summary": summary, "expert_reacts": expert}
                | {"errors": errors},
                f,
                indent=1,
            )
    sys.exit(0)


if __name__ == "__main__":
    main()
