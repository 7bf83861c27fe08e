"""Wall time of a committed study, per part, per seed and per stage, from the stage records its parts wrote.

The study's stages are long (a closed-loop cell is about 10 min on 2 cores), so this benchmark does not run
them: it reads ``timings.json`` of a study result folder (written by ``riskdistill experiment merge`` from
each part's ``stages/*.json``, the wall time every stage recorded as it ran) and prints
- every seed: the sum of its parts (a seed split by variant pays its recording and labelling once per part);
- the median of each kind of stage over the parts, and the time a part with k variants costs from them
  (shared record + label + report, plus per variant one training, one open loop and one closed-loop cell
  per rig), which is what "one part in about two hours on 2 cores" is checked against.
Stage times of a part that ran beside other jobs are upper bounds (the study README says which; its "How
long it took" table gives each part's time by kind of stage).

    python benchmarks/bench_study.py [results/study-cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

#: ``closed loop rsd-s0 nominal``, ``train baseline-s1``, ``open loop corridor-s2``: per variant and seed.
CELL = re.compile(r"^(train|open loop|closed loop) (?P<variant>[\w-]+)-s(?P<seed>\d+)(?: (?P<rig>\S+))?$")
#: Stages a part runs once whatever its variants; the corridor control adds its own labels.
SHARED = ("record train", "record bench", "label train", "label bench", "report")
CORRIDOR_LABELS = "label train control-corridor"


def per_part(timings: dict[str, Any]) -> list[dict[str, Any]]:
    parts = []
    for name, part in timings.items():
        variants = sorted({m["variant"] for s in part["stages"] if (m := CELL.match(s))})
        rigs = sorted({m["rig"] for s in part["stages"] if (m := CELL.match(s)) and m["rig"]})
        parts.append(
            {
                "part": Path(name).name,
                "seeds": part["seeds"],
                "variants": variants,
                "rigs": rigs,
                "total_h": part["total_s"] / 3600,
                "stages_s": part["stages"],
            }
        )
    return parts


def stage_medians(parts: list[dict[str, Any]]) -> dict[str, float]:
    """Median minutes per kind of stage over all parts (shared stages by name, cells by kind)."""
    groups: dict[str, list[float]] = {}
    for p in parts:
        for stage, seconds in p["stages_s"].items():
            m = CELL.match(stage)
            key = m.group(1) + (" cell" if m.group(1) == "closed loop" else "") if m else stage
            groups.setdefault(key, []).append(seconds / 60)
    return {k: statistics.median(v) for k, v in sorted(groups.items())}


def part_estimate_min(med: dict[str, float], n_variants: int, n_rigs: int, corridor: bool) -> float:
    shared = sum(med.get(s, 0.0) for s in SHARED) + (med.get(CORRIDOR_LABELS, 0.0) if corridor else 0.0)
    per_variant = (
        med.get("train", 0.0) + med.get("open loop", 0.0) + n_rigs * med.get("closed loop cell", 0.0)
    )
    return shared + n_variants * per_variant


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", nargs="?", default="results/study-cpu", type=Path)
    ap.add_argument("--json", type=Path, help="also write the tables as JSON here")
    args = ap.parse_args()
    path = args.folder / "timings.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no timings.json (a study result folder written by `experiment merge`)")
    parts = per_part(json.loads(path.read_text()))
    console = Console(width=140)

    seeds: dict[int, list[dict[str, Any]]] = {}
    for p in parts:
        for s in p["seeds"]:
            seeds.setdefault(s, []).append(p)
    t = Table(title="seeds (every part that ran the seed; a part of several seeds counts in full for each)")
    for col in ("seed", "parts", "variants", "hours"):
        t.add_column(col, justify="right")
    per_seed = {}
    for s, ps in sorted(seeds.items()):
        hours = sum(p["total_h"] for p in ps)
        variants = sorted({v for p in ps for v in p["variants"]})
        per_seed[s] = {"parts": len(ps), "variants": variants, "hours": hours}
        t.add_row(str(s), str(len(ps)), ",".join(variants), f"{hours:.2f}")
    console.print(t)

    med = stage_medians(parts)
    t = Table(title="median minutes per stage over the parts")
    t.add_column("stage")
    t.add_column("median min", justify="right")
    for k, v in med.items():
        t.add_row(k, f"{v:.1f}")
    console.print(t)

    n_rigs = max((len(p["rigs"]) for p in parts), default=0)
    estimates = {
        "baseline,rsd": part_estimate_min(med, 2, n_rigs, corridor=False),
        "corridor": part_estimate_min(med, 1, n_rigs, corridor=True),
        "baseline,rsd,corridor": part_estimate_min(med, 3, n_rigs, corridor=True),
    }
    t = Table(title=f"a part's time from the medians ({n_rigs} rigs per variant)")
    t.add_column("variants")
    t.add_column("hours", justify="right")
    for k, v in estimates.items():
        t.add_row(k, f"{v / 60:.2f}")
    console.print(t)

    if args.json:
        out = {
            "parts": [{k: v for k, v in p.items() if k != "stages_s"} for p in parts],
            "seeds": per_seed,
            "stage_median_min": med,
            "part_estimate_h": {k: v / 60 for k, v in estimates.items()},
        }
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
