#!/usr/bin/env bash
# Probes beside the study (not part of it): why does RSD change nothing? Each probe retrains seed 0's RSD
# student with one change, on seed 0's own recording and oracle labels, drives it on the study's 125 routes
# (nominal rig) and pairs it per route with seed 0's baseline and RSD cells.
# From the repository root, with the seed-0 experiment folder of results/study-cpu (reproduce.sh 0):
#   bash results/study-cpu/probes/run.sh [EXP] [OUT] [PROBE...]
# EXP: the experiment folder (default runs/study-cpu-s0); OUT: scratch (default runs/study-cpu-probes).
# Probes: w20 (risk-loss weight 1 -> 20, so its gradient at the shared BEV is ~10 % of planning's, not 0.5 %),
# gated (risk_gated_features: the planner reads the BEV features scaled by the predicted risk),
# hazard (the risk loss's foreground, which carries half its weight, is the teacher's hazard cells, risk >= 0.5,
# instead of every cell above 0.05: aimed at the student's map never reaching 0.5 on a hazard),
# bb (a pair, baseline-bb and rsd-bb: both learn everything after the image backbone from scratch, starting
# from builtin:cpu_sim_backbone with the cpu recipe's lr 1e-3 and warm-up 200 for BB_STEPS steps, default
# 3000, instead of fine-tuning the finished planner builtin:cpu_sim_student for 1,000 steps; so the risk loss
# shapes the BEV features while they form, as in the paper's joint training).
# Runs at the study's commit (the worktree reproduce.sh makes); about 30 min per probe on 2 free cores (each
# bb student about 45 min at 3000 steps, 28 of them training). The comparison and diagnostics.json cover every
# probe finished in OUT.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXP=${1:-runs/study-cpu-s0}
OUT=${2:-runs/study-cpu-probes}
shift $(( $# > 2 ? 2 : $# ))
PROBES=("$@")
[ ${#PROBES[@]} -gt 0 ] || PROBES=(w20 gated)
SRC=runs/study-cpu-src
COMMIT=$(.venv/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["git_commit"])' "$HERE/../study.json")
[ "$(git -C "$SRC" rev-parse HEAD)" = "$COMMIT" ] || { echo "$SRC is not at the study's commit $COMMIT (run reproduce.sh first)" >&2; exit 1; }
export PYTHONPATH="$PWD/$SRC/src"
RD=".venv/bin/riskdistill"
BB=(init_weights=builtin:cpu_sim_backbone 'init_weights_prefixes=["backbone."]' optimizer.lr=1e-3
    schedule.warmup_steps=200 "max_steps=${BB_STEPS:-3000}")
mkdir -p "$OUT"
# one student: NAME (label; its folders are NAME-s0), the study variant whose seed-0 configuration it
# changes, then the --set overrides that are the change
student() {
    local label=$1 variant=$2 name="$1-s0" sets=() a
    shift 2
    for a in "$@"; do sets+=(--set "$a"); done
    .venv/bin/python -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["config"], open(sys.argv[2], "w"), indent=1)' \
        "$EXP/train/$variant-s0/run.json" "$OUT/$variant-s0.json"
    local ckpt="$OUT/train/$name/checkpoints/final"
    [ -e "$ckpt" ] || $RD train --config "$OUT/$variant-s0.json" "${sets[@]}" --out "$OUT/train/$name" \
        $( [ -e "$OUT/train/$name/checkpoints/latest.json" ] && echo --resume )
    $RD eval closed-loop --suite "$EXP/study_suite.json" --driver "$ckpt" --out "$OUT/eval/$name" --workers 2 \
        --label "$label" --seed 0
    # open loop on seed 0's bench recording: the student's risk map against the teacher's (hazard recall)
    [ -e "$OUT/eval/$name/open_loop.json" ] || $RD eval open-loop --checkpoint "$ckpt" --data "$EXP/data/bench" \
        --out "$OUT/eval/$name/open_loop.json"
}
for probe in "${PROBES[@]}"; do
    case $probe in
        w20) student rsd-w20 rsd model.heads.risk.weight=20.0 ;;
        gated) student rsd-gated rsd model.risk_gated_features=true ;;
        hazard) student rsd-hazard rsd model.heads.risk.loss.fg_threshold=0.5 ;;
        bb) student baseline-bb baseline "${BB[@]}"; student rsd-bb rsd "${BB[@]}" ;;
        *) echo "unknown probe $probe (w20 | gated | hazard | bb)" >&2; exit 2 ;;
    esac
done
# every finished probe student against seed 0's study cells (rsd-X against RSD and the baseline; rsd-bb also
# against baseline-bb, its own control)
labels=(baseline="$EXP/eval/baseline-s0/closed_loop-nominal" rsd="$EXP/eval/rsd-s0/closed_loop-nominal")
pairs=()
for d in "$OUT"/eval/*-s0; do
    [ -e "$d/summary.json" ] || continue
    label=$(basename "$d" -s0)
    labels+=("$label=$d")
    case $label in
        rsd-bb) pairs+=(--pair rsd-bb:baseline-bb --pair rsd-bb:rsd) ;;
        rsd-*) pairs+=(--pair "$label:baseline" --pair "$label:rsd") ;;
        baseline-*) pairs+=(--pair "$label:baseline") ;;
    esac
done
$RD eval compare "${labels[@]}" "${pairs[@]}" --out "$HERE"
# diagnostics.json: per student (seed 0's study cells and every probe run so far), the open-loop metrics on
# bench, the risk / planning gradient at the shared BEV and the closed-loop risk-to-collision summary (nominal)
.venv/bin/python - "$EXP" "$OUT" "$HERE/diagnostics.json" <<'PY'
import json, sys
from pathlib import Path
from riskdistill.experiment.study import bev_grad_summary
exp, out, dest = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
study_cells = (f"{v}-s0" for v in ("baseline", "rsd", "corridor"))
cells = {n: (exp / "train" / n, exp / "eval" / n, exp / "eval" / n / "closed_loop-nominal") for n in study_cells}
cells |= {d.name: (out / "train" / d.name, d, d) for d in sorted((out / "eval").iterdir()) if d.is_dir()}
def scalars(path, key=None):
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    d = d[key] if key else d
    return {k: v for k, v in d.items() if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}
res = {name: {"open_loop": scalars(ev / "open_loop.json", "metrics"), "bev_grad": bev_grad_summary(tr),
              "risk_outcome_nominal": scalars(cl / "risk_outcome.json")}
       for name, (tr, ev, cl) in cells.items()}
dest.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
print(f"wrote {dest}")
PY
