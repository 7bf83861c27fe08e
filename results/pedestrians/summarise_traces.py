"""What a driver saw and did before each pedestrian collision, from closed-loop traces (``eval closed-loop
--trace``): per route and driver, the collision's time and speed, and over the 4 s before it the hit
pedestrian's distance at its start, how strongly the driver's own BEV occupancy marked it (its VRU
channel and any actor channel), the planner's highest stop probability and the lowest speed. Routes
without a pedestrian collision are listed with the lowest speed while a pedestrian was within 10 m ahead.

    python results/pedestrians/summarise_traces.py LABEL=EVAL_DIR [LABEL=EVAL_DIR ...] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from riskdistill.evaluation.trace import TRACE_DIR, read_trace
from riskdistill.io import atomic_write_text

BEFORE_S = 4.0
WALKERS = ("PEDESTRIAN", "CYCLIST")


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def route_rows(label: str, run: Path) -> list[str]:
    rows = []
    for path in sorted((run / TRACE_DIR).glob("*.jsonl")):
        steps, end = read_trace(path)
        events = [(e, s) for s in steps for e in s["events"]] + [(e, None) for e in end["events"]]
        hits = [(e, s) for e, s in events if e["kind"] == "collisions_pedestrian"]
        route = path.stem.removeprefix("bench_")
        if not hits:
            near = [
                s["speed_mps"]
                for s in steps
                if any(a["class"] in WALKERS and a["x_m"] > 0 and a["distance_m"] < 10 for a in s["actors"])
            ]
            rows.append(f"| {route} | {label} | none | | | | | | {_f(min(near) if near else None)} |")
            continue
        event, at = hits[0]
        t = float(event["time_s"])
        at = at or steps[-1]
        # the pedestrian it hit: the nearest walker at the collision
        walkers = [a for a in at["actors"] if a["class"] in WALKERS]
        victim = min(walkers, key=lambda a: a["distance_m"])["id"] if walkers else None
        window = [s for s in steps if t - BEFORE_S <= s["time_s"] < t]  # before the contact's response
        seen = [(s, a) for s in window for a in s["actors"] if a["id"] == victim]
        occ = [a["occupancy_p"] for _, a in seen if "occupancy_p" in a]
        occ_any = [a["occupancy_any_p"] for _, a in seen if "occupancy_any_p" in a]
        stop = [s["p_stop"] for s in window if "p_stop" in s]
        speed = window[-1]["speed_mps"] if window else None
        lowest = min(s["speed_mps"] for s in window) if window else None
        rows.append(
            f"| {route} | {label} | {t:.1f} s at {_f(speed, '.1f')} m/s "
            f"| {_f(seen[0][1]['distance_m'] if seen else None, '.1f')} m "
            f"| {_f(max(occ) if occ else None)} | {_f(max(occ_any) if occ_any else None)} "
            f"| {_f(max(stop) if stop else None)} | {_f(lowest)} | |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=EVAL_DIR (a closed-loop folder run with --trace)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines = [
        "| route | driver | pedestrian collision (time, speed) "
        f"| hit pedestrian's distance {BEFORE_S:.0f} s before | its VRU occupancy, max "
        "| any actor channel, max | stop probability, max | lowest speed before, m/s "
        "| no collision: lowest speed with a pedestrian < 10 m ahead |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in args.runs:
        label, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"{spec!r}: expected LABEL=EVAL_DIR")
        lines += route_rows(label, Path(folder))
    text = "\n".join(lines) + "\n"
    if args.out is not None:
        atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
