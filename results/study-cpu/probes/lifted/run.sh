#!/usr/bin/env bash
# Probe beside the study (issue 15: "where in the network the risk head attaches"): seed 0's RSD student with
# its RiskHead on the lifted BEV features (the BEV encoder's input, `model.risk_reads=lifted`) instead of the
# shared BEV features every head reads. The other probes (../run.sh) fine-tune at the study's commit and pair
# with the study's own cells, which ran on another CPU kind; this one needs today's code, so it retrains its
# reference too: RSD as the study trains it (`rsd`), on the same machine, and pairs both with seed 0's
# baseline retrained on this machine kind (the experiment folder's baseline cell, results/overtaking).
# Each student: the study's seed-0 RSD config (1,000 steps from builtin:cpu_sim_student, oracle labels of seed
# 0's recording, the same data order and seed), the 125 routes on the nominal rig, open loop on seed 0's bench.
# From the repository root, with seed 0's experiment folder (results/study-cpu/reproduce.sh 0, or the
# baseline-only retrain of results/overtaking/run.sh):
#   bash results/study-cpu/probes/lifted/run.sh [EXP] [OUT]      # about 70 min on 2 free cores
# Resumable: finished stages are skipped.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXP=${1:-runs/study-cpu-s0}
OUT=${2:-runs/probe-lifted}
RD=".venv/bin/riskdistill"
PY=".venv/bin/python"
mkdir -p "$OUT"
# the oracle's labels of seed 0's recordings (the baseline-only folder has none; the bench labels score the
# students' risk maps in open loop) and RSD's config
[ -e "$OUT/rsd-s0.json" ] || $PY - "$EXP" "$OUT/rsd-s0.json" <<'PY'
import json, sys
from pathlib import Path
from rich.console import Console
from riskdistill.experiment.config import ExperimentConfig
from riskdistill.experiment.pipeline import Pipeline, variant_train_config
exp, dest = Path(sys.argv[1]), Path(sys.argv[2])
cfg = ExperimentConfig.from_dict(json.loads((exp / "experiment.json").read_text()))
pipeline = Pipeline(cfg, exp, Console(), show_progress=False)
for split in ("train", "bench"):
    pipeline.label(split)
dest.write_text(json.dumps(variant_train_config(cfg, exp, "rsd", 0).to_dict(), indent=1) + "\n")
PY
for name in rsd-lifted rsd; do
    sets=()
    [ "$name" = rsd-lifted ] && sets=(--set model.risk_reads=lifted)
    ckpt="$OUT/train/$name-s0/checkpoints/final"
    [ -e "$ckpt" ] || $RD train --config "$OUT/rsd-s0.json" "${sets[@]}" --out "$OUT/train/$name-s0" \
        $( [ -e "$OUT/train/$name-s0/checkpoints/latest.json" ] && echo --resume )
    $RD eval closed-loop --suite "$EXP/study_suite.json" --driver "$ckpt" --out "$OUT/eval/$name-s0" --workers 2 \
        --label "$name" --seed 0
    [ -e "$OUT/eval/$name-s0/open_loop.json" ] || $RD eval open-loop --checkpoint "$ckpt" --data "$EXP/data/bench" \
        --out "$OUT/eval/$name-s0/open_loop.json" --workers 1
    $PY "$HERE/../../../keep_eval.py" "$OUT/eval/$name-s0" "$HERE/$name-s0" --train-run "$OUT/train/$name-s0/run.json"
done
$RD eval compare baseline="$EXP/eval/baseline-s0/closed_loop-nominal" rsd="$OUT/eval/rsd-s0" \
    rsd-lifted="$OUT/eval/rsd-lifted-s0" --pair rsd:baseline --pair rsd-lifted:baseline --pair rsd-lifted:rsd \
    --out "$HERE/comparison"
# diagnostics.json: per student, the gradient shares of the risk loss (at the shared BEV and, for rsd-lifted,
# at the lifted features it attaches to), the open-loop metrics and the closed-loop risk-before-collision summary
$PY - "$OUT" "$HERE/diagnostics.json" <<'PY'
import json, sys
from pathlib import Path
from riskdistill.experiment.study import bev_grad_summary
out, dest = Path(sys.argv[1]), Path(sys.argv[2])
def scalars(path, key=None):
    d = json.loads(path.read_text())
    d = d[key] if key else d
    return {k: v for k, v in d.items() if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}
res = {name: {"bev_grad": bev_grad_summary(out / "train" / f"{name}-s0"),
              "open_loop": scalars(out / "eval" / f"{name}-s0" / "open_loop.json", "metrics"),
              "risk_outcome_nominal": scalars(out / "eval" / f"{name}-s0" / "risk_outcome.json")}
       for name in ("rsd", "rsd-lifted")}
dest.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
print(f"wrote {dest}")
PY
