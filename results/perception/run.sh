#!/usr/bin/env bash
# Does the cpu student see better, and drive better, from larger images? (issue 14: vehicle IoU >= 0.35)
# The study's students read 64x176 images; a car 30 m away is a few pixels wide, and seed 2's study baseline
# marks 22 % of the vehicles and 0 % of the pedestrians beyond 30 m in its occupancy. Each arm is seed 2 of the
# study's recipe (the shipped builtin:cpu_sim_student fine-tuned 1,000 steps, the same data order and seed,
# RiskHead off) with one change, on all 125 bench routes (nominal rig), paired per route with seed 2's study
# baseline (results/study-cpu-2):
#   hires        the study's seed-2 part, baseline only, recorded and trained at 128x352 instead of 64x176
#                (data.image_hw + model.image_hw; the same routes and frames): recording, labelling,
#                training, open loop, closed loop (`riskdistill experiment --config hires.json`)
#   hires_bev64  hires with a 64x64 BEV of 1 m cells instead of 32x32 of 2 m (model.view.bev_hw)
#   hires_brake  (no retraining) the hires student driving with the occupancy brake
#   hires_more   hires fine-tuned 1,000 steps more from its own weights (a second cosine cycle, no warm-up,
#                another data order): does the larger image want more adaptation than 1,000 steps?
#   hires_more_brake  (no retraining) the hires_more student driving with the occupancy brake
#   hires_long   hires with one 4,000-step fine-tune instead of 1,000 (max_steps; the same cosine schedule
#                stretched): does perception keep improving with steps at 128x352?
#   hires_rsd    the RSD variant of hires (RiskHead on, the oracle's risk maps as targets, recorded by the hires
#                experiment's label stage; the same seed, data order and steps): does risk reach a planner
#                that sees better? One draw of one seed, paired per route with hires
#   hires_rsd_hazard  hires_rsd with the risk loss's foreground on the teacher's hazard cells (>= 0.5) instead of
#                every cell > 0.05 (results/study-cpu/probes' `hazard`): a map that marks the hazards
#   baseline_more  the control of hires_more: seed 2's 64x176 study baseline fine-tuned 1,000 steps more the
#                same way (its own weights, the same second cycle and data order)
# From the repository root, with seed 2's part of results/study-cpu-2 (`bash results/study-cpu-2/reproduce.sh
# 2` keeps it in runs/study-cpu-2-s2):
#   bash results/perception/run.sh [EXP] [OUT] [ARM...]   # hires: about 40 min on 2 free cores, the others
#                                                         # 12-35 min each
# HI=FOLDER puts the hires arm's experiment folder elsewhere than OUT/hires-s2 (the committed run used
# HI=runs/hires-s2).
# Resumable: finished stages are skipped.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXP=${1:-runs/study-cpu-2-s2}
OUT=${2:-runs/perception}
shift $(( $# > 2 ? 2 : $# ))
ARMS=("$@")
ALL=(hires hires_bev64 hires_brake hires_more hires_more_brake baseline_more hires_long hires_rsd hires_rsd_hazard)
[ ${#ARMS[@]} -gt 0 ] || ARMS=("${ALL[@]}")
RD=".venv/bin/riskdistill"
PY=".venv/bin/python"
if [ ! -x "$RD" ]; then
    echo "run this from the repository root after \`make test\` or \`make demo\` created .venv ($PWD has no $RD)" >&2
    exit 2
fi
if [ ! -f "$EXP/train/baseline-s2/run.json" ] || [ ! -f "$EXP/study_suite.json" ]; then
    echo "$EXP is not seed 2's finished study part (no train/baseline-s2/run.json or study_suite.json):" \
        "run bash results/study-cpu-2/reproduce.sh 2 first, or pass its folder as EXP" >&2
    exit 2
fi
HI=${HI:-$OUT/hires-s2}  # the experiment folder of the hires arm (its recordings are the other arms' data)
HI_CKPT="$HI/train/baseline-s2/checkpoints/final"
mkdir -p "$OUT/eval"
# one closed-loop run: label, checkpoint, closed-loop options
closed_loop() {
    local label=$1 ckpt=$2
    shift 2
    $RD eval closed-loop --suite "$HI/study_suite.json" --driver "$ckpt" --out "$OUT/eval/$label/closed_loop-nominal" \
        --workers 2 --label "$label" --seed 2 "$@"
}
# one student trained from a finished run's resolved config (its run.json) with changes, then its open loop:
# label, that run.json, the bench recording to score it on, then `key=value` changes
student() {
    local label=$1 run_json=$2 bench=$3 ckpt="$OUT/train/$1/checkpoints/final" sets=() a
    shift 3
    for a in "$@"; do sets+=(--set "$a"); done
    $PY -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["config"], open(sys.argv[2], "w"), indent=1)' \
        "$run_json" "$OUT/$label-train.json"
    [ -e "$ckpt" ] || $RD train --config "$OUT/$label-train.json" "${sets[@]}" --out "$OUT/train/$label" \
        $( [ -e "$OUT/train/$label/checkpoints/latest.json" ] && echo --resume )
    mkdir -p "$OUT/eval/$label"
    [ -e "$OUT/eval/$label/open_loop.json" ] || $RD eval open-loop --checkpoint "$ckpt" \
        --data "$bench" --out "$OUT/eval/$label/open_loop.json"
}
HI_RUN="$HI/train/baseline-s2/run.json"
for arm in "${ARMS[@]}"; do
    case $arm in
        hires)
            # the study's seed-2 configuration with 128x352 images, baseline only, nominal rig
            $PY - "$OUT/hires.json" <<'PY'
import json, sys
from riskdistill.experiment.config import STUDENT_FINETUNE, config_for_seeds, experiment_config
cfg = experiment_config("study", name="hires", variants=["baseline"], data={"image_hw": [128, 352]},
                        train={"overrides": [*STUDENT_FINETUNE, "model.image_hw=[128,352]"]}, eval={"rig_shifts": []})
json.dump(config_for_seeds(cfg, [2]).to_dict(), open(sys.argv[1], "w"), indent=1)
PY
            $RD experiment --config "$OUT/hires.json" --out "$HI" ;;
        hires_bev64)
            student hires_bev64 "$HI_RUN" "$HI/data/bench" 'model.view.bev_hw=[64,64]'
            closed_loop hires_bev64 "$OUT/train/hires_bev64/checkpoints/final" ;;
        hires_brake)
            closed_loop hires_brake "$HI_CKPT" --occupancy-brake ;;
        hires_more)
            student hires_more "$HI_RUN" "$HI/data/bench" "init_weights=$HI_CKPT/model.safetensors" \
                shuffle_seed=102 schedule.warmup_steps=0
            closed_loop hires_more "$OUT/train/hires_more/checkpoints/final" ;;
        hires_more_brake)
            closed_loop hires_more_brake "$OUT/train/hires_more/checkpoints/final" --occupancy-brake ;;
        hires_long)
            student hires_long "$HI_RUN" "$HI/data/bench" max_steps=4000
            closed_loop hires_long "$OUT/train/hires_long/checkpoints/final" ;;
        hires_rsd)
            student hires_rsd "$HI_RUN" "$HI/data/bench" risk_targets=teacher model.heads.risk.enabled=true
            closed_loop hires_rsd "$OUT/train/hires_rsd/checkpoints/final" ;;
        hires_rsd_hazard)
            student hires_rsd_hazard "$HI_RUN" "$HI/data/bench" risk_targets=teacher model.heads.risk.enabled=true \
                model.heads.risk.loss.fg_threshold=0.5
            closed_loop hires_rsd_hazard "$OUT/train/hires_rsd_hazard/checkpoints/final" ;;
        baseline_more)
            student baseline_more "$EXP/train/baseline-s2/run.json" "$EXP/data/bench" \
                "init_weights=$EXP/train/baseline-s2/checkpoints/final/model.safetensors" shuffle_seed=102 \
                schedule.warmup_steps=0
            closed_loop baseline_more "$OUT/train/baseline_more/checkpoints/final" ;;
        *) echo "unknown arm $arm (${ALL[*]})" >&2; exit 2 ;;
    esac
done
# what this folder keeps per arm (results/keep_eval.py): summary, eval config, per-route results, open-loop
# metrics, the training run's config and commit (no checkpoints)
[ -e "$HI/eval/baseline-s2/closed_loop-nominal/summary.json" ] && $PY "$HERE/../keep_eval.py" \
    "$HI/eval/baseline-s2/closed_loop-nominal" "$HERE/hires-s2" --open-loop "$HI/eval/baseline-s2/open_loop.json" \
    --train-run "$HI/train/baseline-s2/run.json"
for label in "${ALL[@]:1}"; do
    d="$OUT/eval/$label/closed_loop-nominal"
    [ -e "$d/summary.json" ] || continue
    extra=()
    [ -e "$OUT/eval/$label/open_loop.json" ] && extra+=(--open-loop "$OUT/eval/$label/open_loop.json")
    [ -e "$OUT/train/$label/run.json" ] && extra+=(--train-run "$OUT/train/$label/run.json")
    $PY "$HERE/../keep_eval.py" "$d" "$HERE/$label-s2" "${extra[@]}"
done
# paired per route, each arm against its control (a pair is left out until both sides have run)
labels=(baseline="$EXP/eval/baseline-s2/closed_loop-nominal" hires="$HI/eval/baseline-s2/closed_loop-nominal")
pairs=(--pair hires:baseline)
for pair in hires_bev64:baseline hires_more:baseline baseline_more:baseline hires_brake:hires \
    hires_more:baseline_more hires_more_brake:hires_more hires_long:hires_more hires_long:baseline_more \
    hires_rsd:hires hires_rsd_hazard:hires hires_rsd_hazard:hires_rsd; do
    a=${pair%%:*} b=${pair#*:}
    for side in "$a" "$b"; do
        [[ " ${labels[*]} " == *" $side="* ]] && continue
        [ -e "$OUT/eval/$side/closed_loop-nominal/summary.json" ] || continue 2
        labels+=("$side=$OUT/eval/$side/closed_loop-nominal")
    done
    pairs+=(--pair "$pair")
done
$RD eval compare "${labels[@]}" "${pairs[@]}" --out "$HERE/comparison"
# the open loops side by side with object recall by range (the baseline on the study's 64x176 bench
# recording, the arms on the 128x352 one: the same routes, frames and objects)
ol=(baseline="$EXP/eval/baseline-s2/open_loop.json" hires="$HI/eval/baseline-s2/open_loop.json")
for label in "${ALL[@]:1}"; do  # the arms that scored a student of their own in open loop
    [ -e "$OUT/eval/$label/open_loop.json" ] && ol+=("$label=$OUT/eval/$label/open_loop.json")
done
$PY "$HERE/../range/recall_table.py" "${ol[@]}" --out "$HERE/open_loop.md"
