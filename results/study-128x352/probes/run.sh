#!/usr/bin/env bash
# Probes beside the study-128x352 (not part of it). Each retrains one of seed 0's study students with one
# change, on seed 0's own 128x352 recording and oracle labels, at the study's commit; drives it on the study's
# 125 routes (nominal rig, seed 0) and pairs it per route with seed 0's study cells.
#   hazard  the RSD student with the risk loss's foreground on the teacher's hazard cells (risk >= 0.5)
#           instead of every cell above 0.05 (`model.heads.risk.loss.fg_threshold=0.5`): a RiskHead that marks
#           the hazards (results/study-cpu/probes' `hazard`, results/perception's hires_rsd_hazard on seed 2)
#   prior   the baseline with its waypoints as a learned correction to the kinematic arc to the target point
#           (`model.heads.planning.waypoint_prior=kinematic_arc`; issue 14's open-loop L2 target). It copies
#           every planning tensor of the init weights, the waypoint output layer too, which was trained without
#           the prior: its correction starts as a second whole plan on top of the arc (a mistake, kept because
#           its results are committed; prior_zero is the probe as meant)
#   prior_zero  prior with that output layer left out of init_weights_prefixes, so it starts at zero and the
#           untrained correction plans the arc itself (as results/overtaking's `prior`)
# From the repository root, with seed 0's part of the study (`bash results/study-128x352/reproduce.sh 0`
# keeps it in runs/study-128x352-s0; the probes need its training runs, not its closed loop):
#   bash results/study-128x352/probes/run.sh [EXP] [OUT] [PROBE...]
# About 26 min per probe on 2 free cores (training 14, open loop 6, closed loop 6). Resumable. What each
# finished probe keeps (results/keep_eval.py) lands in PROBE-s0/ here; the comparison covers every probe in
# OUT.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXP=${1:-runs/study-128x352-s0}
OUT=${2:-runs/study-128x352-probes}
shift $(( $# > 2 ? 2 : $# ))
PROBES=("$@")
[ ${#PROBES[@]} -gt 0 ] || PROBES=(hazard prior prior_zero)
if [ ! -x .venv/bin/riskdistill ] || [ ! -f "$EXP/run.json" ]; then
    echo "run this from the repository root after \`make test\` created .venv, with seed 0's experiment folder" \
        "($EXP/run.json not found: bash results/study-128x352/reproduce.sh 0)" >&2
    exit 2
fi
PY=.venv/bin/python
RD=.venv/bin/riskdistill
COMMIT=$($PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["git_commit"])' "$EXP/run.json")
SRC=runs/study-128x352-src-${COMMIT:0:7}
[ -d "$SRC" ] || git worktree add --detach "$SRC" "$COMMIT"
[ "$(git -C "$SRC" rev-parse HEAD)" = "$COMMIT" ] || { echo "$SRC is not at the study's commit $COMMIT" >&2; exit 1; }
export PYTHONPATH="$PWD/$SRC/src"
mkdir -p "$OUT"
# one probe: LABEL, the study variant whose seed-0 training config it changes, then the --set overrides
probe() {
    local label=$1 variant=$2 name="$1-s0" sets=() a
    shift 2
    for a in "$@"; do sets+=(--set "$a"); done
    $PY -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["config"], open(sys.argv[2], "w"), indent=1)' \
        "$EXP/train/$variant-s0/run.json" "$OUT/$variant-s0.json"
    local ckpt="$OUT/train/$name/checkpoints/final"
    [ -e "$ckpt" ] || $RD train --config "$OUT/$variant-s0.json" "${sets[@]}" --out "$OUT/train/$name" \
        $( [ -e "$OUT/train/$name/checkpoints/latest.json" ] && echo --resume )
    [ -e "$OUT/eval/$name/open_loop.json" ] || $RD eval open-loop --checkpoint "$ckpt" --data "$EXP/data/bench" \
        --out "$OUT/eval/$name/open_loop.json"
    $RD eval closed-loop --suite "$EXP/study_suite.json" --driver "$ckpt" --out "$OUT/eval/$name" --workers 2 \
        --label "$label" --seed 0
    $PY results/keep_eval.py "$OUT/eval/$name" "$HERE/$name" --train-run "$OUT/train/$name/run.json"
}
for p in "${PROBES[@]}"; do
    case $p in
        hazard) probe hazard rsd model.heads.risk.loss.fg_threshold=0.5 ;;
        prior) probe prior baseline model.heads.planning.waypoint_prior=kinematic_arc ;;
        prior_zero)
            probe prior_zero baseline model.heads.planning.waypoint_prior=kinematic_arc \
                "init_weights_prefixes=$($PY -c 'import json, sys; print(json.dumps(sys.argv[1:]))' backbone. \
                    view_transform. bev_encoder. heads.occupancy. heads.image_aux. \
                    heads.planning.{command_embed.,ego_encoder.,layers.,step_embed,path_embed,path_out.,speed_embed,speed_out.})" ;;
        *) echo "unknown probe $p (hazard | prior | prior_zero)" >&2; exit 2 ;;
    esac
done
# every finished probe against seed 0's study cells: hazard against RSD and the baseline, prior against the
# baseline (a pair is left out until its study cell has run)
labels=() pairs=()
for v in baseline rsd; do
    [ -e "$EXP/eval/$v-s0/closed_loop-nominal/summary.json" ] && labels+=("$v=$EXP/eval/$v-s0/closed_loop-nominal")
done
for d in "$OUT"/eval/*-s0; do
    [ -e "$d/summary.json" ] || continue
    label=$(basename "$d" -s0)
    labels+=("$label=$d")
    for side in $( [ "$label" = hazard ] && echo rsd baseline || echo baseline ); do
        [[ " ${labels[*]} " == *" $side="* ]] && pairs+=(--pair "$label:$side")
    done
done
[ ${#pairs[@]} -gt 0 ] && $RD eval compare "${labels[@]}" "${pairs[@]}" --out "$HERE/comparison"
