"""Pair a kept closed-loop run (``ARM-s0/routes.jsonl``, written by results/keep_eval.py) with a study cell
kept in the repository (``results/study-128x352/routes/<variant>-s<seed>/nominal.json``), per route, with
the study's statistics (``evaluation.study_stats.compare_pair``: bootstrap over routes, Wilcoxon on DS,
McNemar on success), and write the comparison as JSON and Markdown. Needs no run folder of the study: its
per-route outcomes are in the repository.

    python results/pair_with_study.py results/train-30min/perception30-s0 \
        results/study-128x352/routes/baseline-s0/nominal.json --out OUT
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from riskdistill.evaluation.driving_score import UNPENALISED_INFRACTIONS
from riskdistill.evaluation.study_stats import COLLISION_KINDS, CellMatrix, RouteOutcome, compare_pair
from riskdistill.io import atomic_write_json, atomic_write_text, load_json_object
from riskdistill.sim.events import RouteEnd

PEDESTRIAN = "collisions_pedestrian"


def kept_route_outcome(doc: dict) -> RouteOutcome:
    """The study's :class:`RouteOutcome` of a kept route (keep_eval.py's keys: no ``route_end``, whose value
    is the ``status``; success by Bench2Drive's rule, ``driving_score.is_success``)."""
    rc = min(max(float(doc["route_completion_pct"]), 0.0), 100.0)
    kinds = [str(e["kind"]) for e in doc.get("events") or []]
    unpenalised = {str(k) for k in UNPENALISED_INFRACTIONS}
    return RouteOutcome(
        route_id=doc["route_id"],
        scenario=doc["scenario_type"],
        driving_score=float(doc["scores"]["score_composed"]),
        success=doc["status"] == str(RouteEnd.COMPLETED) and all(k in unpenalised for k in kinds),
        collisions=sum(k in COLLISION_KINDS for k in kinds),
        km_driven=float(doc["route_length_m"]) * rc / 100.0 / 1000.0,
        route_end=doc["status"],
    )


def kept_outcomes(folder: Path) -> tuple[dict[str, RouteOutcome], list[str]]:
    """``({route_id: outcome}, routes with a pedestrian collision)`` of a kept run's ``routes.jsonl`` (one
    route file per line)."""
    path = folder / "routes.jsonl"
    out, ped = {}, []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}: line {n} is not JSON ({exc.msg})") from exc
        o = kept_route_outcome(doc)
        out[o.route_id] = o
        if any(e["kind"] == PEDESTRIAN for e in doc.get("events") or []):
            ped.append(o.route_id)
    return out, sorted(ped)


def study_outcomes(path: Path) -> tuple[dict[str, RouteOutcome], list[str]]:
    """The same of a study cell kept in the repository (``events`` as ``[kind, time_s]`` pairs)."""
    doc = load_json_object(path, what="a study cell's per-route outcomes")
    out = {r["route_id"]: RouteOutcome.from_dict(r) for r in doc["routes"]}
    ped = [r["route_id"] for r in doc["routes"] if any(e[0] == PEDESTRIAN for e in r.get("events") or [])]
    return out, sorted(ped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kept", type=Path, help="a kept closed-loop run (routes.jsonl)")
    parser.add_argument(
        "study_cell", type=Path, help="results/study-128x352/routes/<variant>-s<seed>/nominal.json"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--labels", nargs=2, default=None, metavar=("A", "B"))
    args = parser.parse_args()
    (a, ped_a), (b, ped_b) = kept_outcomes(args.kept), study_outcomes(args.study_cell)
    if set(a) != set(b):
        raise SystemExit(
            f"{args.kept} and {args.study_cell} hold different routes: {sorted(set(a) ^ set(b))[:5]} ..."
        )
    routes = sorted(a)
    label_a, label_b = args.labels or (args.kept.name, f"study {args.study_cell.parent.name}")
    res = compare_pair(CellMatrix.build({0: a}, [0], routes), CellMatrix.build({0: b}, [0], routes))
    ped = {label_a: ped_a, label_b: ped_b}
    doc = {"a": label_a, "b": label_b, "kept": str(args.kept), "study_cell": str(args.study_cell), **res}
    doc["pedestrian_collision_routes"] = ped
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "comparison.json", doc)
    ds, sr, ck = res["driving_score"], res["success_rate"], res["collisions_per_km"]
    md = [
        f"## {label_a} - {label_b}, paired per route ({res['n_routes']} routes, nominal rig)",
        "",
        "| metric | a | b | a - b [95 % CI] | test |",
        "|---|---|---|---|---|",
        f"| DS | {ds['mean_a']:.2f} | {ds['mean_b']:.2f} | {ds['diff']:+.2f} [{ds['ci_low']:+.2f}, "
        f"{ds['ci_high']:+.2f}] | Wilcoxon p {ds['wilcoxon_p']:.3g} |",
        f"| SR % | {sr['mean_a']:.1f} | {sr['mean_b']:.1f} | {sr['diff']:+.1f} [{sr['ci_low']:+.1f}, "
        f"{sr['ci_high']:+.1f}] | McNemar p {sr['mcnemar_p']:.3g} "
        f"({sr['a_only']} / {sr['b_only']} discordant) |",
        f"| collisions / km | {ck['mean_a']:.3f} | {ck['mean_b']:.3f} | {ck['diff']:+.3f} "
        f"[{ck['ci_low']:+.3f}, {ck['ci_high']:+.3f}] | |",
        "",
        *(
            f"Pedestrian collisions, {label}: {len(r)} routes ({', '.join(r) or 'none'})."
            for label, r in ped.items()
        ),
        "",
    ]
    atomic_write_text(args.out / "comparison.md", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
