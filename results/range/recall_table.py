"""Open-loop results side by side as a markdown table: occupancy object recall by range per channel (with
the object counts, so a reader sees whether two benches hold the same objects), cell IoU and L2@2s.

    python results/range/recall_table.py LABEL=open_loop.json [LABEL=open_loop.json ...] [--out FILE.md]

A label whose file does not exist is left out and named on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CHANNELS = ("vehicle", "vulnerable", "static_obstacle")


def load(specs: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"expected LABEL=FILE, got {spec!r}")
        if not Path(path).is_file():
            print(f"{label}: {path} does not exist, left out", file=sys.stderr)
            continue
        metrics = json.loads(Path(path).read_text())["metrics"]
        if "occupancy_recall_by_range" not in metrics:
            raise SystemExit(f"{path}: no occupancy_recall_by_range (an open loop older than the metric)")
        out[label] = metrics
    return out


def table(results: dict[str, dict]) -> str:
    first = next(iter(results.values()))
    bins = list(first["occupancy_recall_by_range"]["vehicle"])
    header = "| student | channel | " + " | ".join(f"{b} m" for b in bins) + " | cell IoU |"
    lines = [header, "|---" * (3 + len(bins)) + "|"]
    for label, m in results.items():
        for ch in CHANNELS:
            cells = [
                f"{r['recall']:.2f} ({r['objects']:,})" if r["objects"] else "- (0)"
                for r in (m["occupancy_recall_by_range"][ch][b] for b in bins)
            ]
            lines.append(f"| {label} | {ch} | " + " | ".join(cells) + f" | {m[f'iou_{ch}']:.3f} |")
    lines += ["", "| student | frames | L2@2s m (driven plan) | IoU drivable | IoU mean |", "|---" * 5 + "|"]
    for label, m in results.items():
        l2 = m.get("driven_plan", m)["l2_2s"]
        ious = f"{m['iou_drivable']:.3f} | {m['iou_mean']:.3f}"
        lines.append(f"| {label} | {m['n_samples']:,} | {l2:.3f} | {ious} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="LABEL=open_loop.json")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    text = table(load(args.results))
    print(text, end="")
    if args.out is not None:
        intro = (
            "Object recall by range: the share of camera-visible objects (count in brackets) that the "
            "occupancy head marks on at least one footprint cell (docs/metrics.md).\n\n"
        )
        args.out.write_text(intro + text)


if __name__ == "__main__":
    main()
