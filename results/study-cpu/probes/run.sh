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
# instead of every cell above 0.05: aimed at the student's map never reaching 0.5 on a hazard).
# Runs at the study's commit (the worktree reproduce.sh makes); about 25 min per probe on 2 free cores.
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
mkdir -p "$OUT"
for probe in "${PROBES[@]}"; do
    case $probe in
        w20) SET=model.heads.risk.weight=20.0 ;;
        gated) SET=model.risk_gated_features=true ;;
        hazard) SET=model.heads.risk.loss.fg_threshold=0.5 ;;
        *) echo "unknown probe $probe (w20 | gated | hazard)" >&2; exit 2 ;;
    esac
    name="rsd-$probe-s0"
    # seed 0's RSD training configuration; the probe's change is a --set override of it
    .venv/bin/python -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["config"], open(sys.argv[2], "w"), indent=1)' \
        "$EXP/train/rsd-s0/run.json" "$OUT/rsd-s0.json"
    ckpt="$OUT/train/$name/checkpoints/final"
    [ -e "$ckpt" ] || $RD train --config "$OUT/rsd-s0.json" --set "$SET" --out "$OUT/train/$name" $( [ -e "$OUT/train/$name/checkpoints/latest.json" ] && echo --resume )
    $RD eval closed-loop --suite "$EXP/study_suite.json" --driver "$ckpt" --out "$OUT/eval/$name" --workers 2 \
        --label "rsd-$probe" --seed 0
done
labels=(baseline="$EXP/eval/baseline-s0/closed_loop-nominal" rsd="$EXP/eval/rsd-s0/closed_loop-nominal")
pairs=()
for probe in "${PROBES[@]}"; do
    labels+=("rsd-$probe=$OUT/eval/rsd-$probe-s0")
    pairs+=(--pair "rsd-$probe:baseline" --pair "rsd-$probe:rsd")
done
$RD eval compare "${labels[@]}" "${pairs[@]}" --out "$HERE"
