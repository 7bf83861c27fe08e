"""Copy what a results folder keeps of one closed-loop evaluation into DEST (small JSON, no trajectories,
checkpoints or images): summary.json, eval_config.json, the per-route results as routes.jsonl, the
open-loop metrics (open_loop.json beside the route results, or --open-loop) and the training run's run.json
(--train-run) as train_run.json.

    python results/keep_eval.py EVAL_DIR DEST [--open-loop FILE] [--train-run FILE]

Used by results/overtaking/run.sh and results/range/run.sh.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

#: The keys of a route result that the folders keep (the trajectory and per-step logs stay behind).
ROUTE_KEYS = (
    "route_id",
    "scenario_type",
    "status",
    "scores",
    "route_completion_pct",
    "route_length_m",
    "duration_game_s",
    "efficiency",
    "comfort",
    "events",
    "error",
    "driver_stats",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("eval_dir", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--open-loop", type=Path, default=None, help="default: EVAL_DIR/open_loop.json")
    parser.add_argument("--train-run", type=Path, default=None, help="the student's training run.json")
    args = parser.parse_args()
    src, dest = args.eval_dir, args.dest
    open_loop = args.open_loop or src / "open_loop.json"
    closed_loop = (src / "summary.json").is_file()
    if not closed_loop and not open_loop.is_file():
        raise SystemExit(f"{src}: no summary.json and no open-loop result (the evaluation has not finished)")
    dest.mkdir(parents=True, exist_ok=True)
    if closed_loop:  # (an open-loop-only student keeps its open-loop metrics and training run)
        for name in ("summary.json", "eval_config.json"):
            shutil.copyfile(src / name, dest / name)
        docs = [json.loads(f.read_text()) for f in sorted((src / "routes").glob("*.json"))]
        lines = "".join(json.dumps({k: d.get(k) for k in ROUTE_KEYS}) + "\n" for d in docs)
        (dest / "routes.jsonl").write_text(lines)
    if open_loop.is_file():
        metrics = json.loads(open_loop.read_text())["metrics"]
        (dest / "open_loop.json").write_text(json.dumps({"metrics": metrics}, indent=1) + "\n")
    if args.train_run is not None and args.train_run.is_file():
        shutil.copyfile(args.train_run, dest / "train_run.json")


if __name__ == "__main__":
    main()
