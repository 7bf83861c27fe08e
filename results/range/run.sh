#!/usr/bin/env bash
# Does the cpu student see further with a telephoto front camera? (issue 14) The study's students read 64x176
# images: a pedestrian 25 m ahead is about 2.5 px wide in CAM_FRONT, and seed 0's study baseline marks 3 % of
# the VRUs 20-30 m away in its occupancy (results/overtaking/README.md, "object recall by range"), so no student
# stops for the demo's crossing pedestrian. The rig `bench2drive_tele` adds CAM_FRONT_TELE, a seventh camera on
# CAM_FRONT's mount with half its field of view (38.6 deg): twice the pixels per degree at the same image size,
# about 17 % more backbone compute. Arms, each with seed 0 of the study's recipe (1,000 fine-tuning steps from
# builtin:cpu_sim_student, the same data order and seed), on all 125 bench routes (nominal rig):
#   tele        the study's seed-0 part with the tele rig, baseline only: recording (train and bench, the
#               same routes and frames as the study's, plus the seventh camera), training, open loop, closed
#               loop (`riskdistill experiment --preset study --set data.rig=bench2drive_tele`)
#   tele_brake  (no retraining) the tele student driving with the occupancy brake
#   six         the control: the same recipe on the same tele recording reading only the six surround
#               cameras (model.cameras), so tele - six is the seventh camera and nothing else
#   bev64       (no closed loop yet) the study's recipe and recording with a finer lifting: a 64x64 BEV of
#               1 m cells instead of 32x32 of 2 m (model.view.bev_hw), fine-tuned the same way
#   baseline_ol the open loop of the study's seed-0 baseline on the study's bench recording with today's
#               metrics (object recall by range is newer than the study)
# Compared per route with the study recipe's three training draws of seed 0 (the study's baseline and
# results/overtaking's draws t1, t2, without and with the brake) and, for tele, with six.
# From the repository root, with the seed-0 part of the study (results/study-cpu/reproduce.sh 0) and the
# `draws` arm of results/overtaking/run.sh:
#   bash results/range/run.sh [EXP] [OVERTAKING] [OUT] [ARM...]       # tele: about 55 min on 2 free cores
#   bash results/range/run.sh runs/study-cpu-s0 runs/overtaking runs/range tele tele_brake six
# Resumable: finished stages are skipped.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXP=${1:-runs/study-cpu-s0}
OVT=${2:-runs/overtaking}
OUT=${3:-runs/range}
shift $(( $# > 3 ? 3 : $# ))
ARMS=("$@")
[ ${#ARMS[@]} -gt 0 ] || ARMS=(tele tele_brake six baseline_ol)
RD=".venv/bin/riskdistill"
PY=".venv/bin/python"
SIX=CAM_FRONT,CAM_FRONT_LEFT,CAM_FRONT_RIGHT,CAM_BACK,CAM_BACK_LEFT,CAM_BACK_RIGHT  # bench2drive's cameras
TELE="$OUT/tele-s0"  # the experiment folder of the tele arm (its recordings are the other arms' data)
CKPT="$TELE/train/baseline-s0/checkpoints/final"
mkdir -p "$OUT/eval"
closed_loop() {  # label, checkpoint, closed-loop options
    local label=$1 ckpt=$2
    shift 2
    $RD eval closed-loop --suite "$TELE/study_suite.json" --driver "$ckpt" --out "$OUT/eval/$label-s0" \
        --workers 2 --label "$label" --seed 0 "$@"
}
for arm in "${ARMS[@]}"; do
    case $arm in
        tele)
            $RD experiment --preset study --seeds 0 --set 'variants=["baseline"]' \
                --set data.rig=bench2drive_tele --set 'eval.rig_shifts=[]' --out "$TELE"
            # its object recall over the objects the six surround cameras show: the baseline's object set
            mkdir -p "$OUT/eval/tele-s0"
            [ -e "$OUT/eval/tele-s0/open_loop_six_visible.json" ] || $RD eval open-loop --checkpoint "$CKPT" \
                --data "$TELE/data/bench" --out "$OUT/eval/tele-s0/open_loop_six_visible.json" --workers 1 \
                --recall-cameras "$SIX" ;;
        tele_brake)
            closed_loop tele_brake "$CKPT" --occupancy-brake ;;
        six)
            six_ckpt="$OUT/train/six-s0/checkpoints/final"
            # the tele arm's resolved training config (its run.json), reading six of the seven cameras
            $PY -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["config"], open(sys.argv[2], "w"), indent=1)' \
                "$TELE/train/baseline-s0/run.json" "$OUT/tele-s0-train.json"
            [ -e "$six_ckpt" ] || $RD train --config "$OUT/tele-s0-train.json" \
                --set "model.cameras=$($PY -c 'import json, sys; print(json.dumps(sys.argv[1].split(",")))' "$SIX")" \
                --out "$OUT/train/six-s0" $( [ -e "$OUT/train/six-s0/checkpoints/latest.json" ] && echo --resume )
            closed_loop six "$six_ckpt"
            [ -e "$OUT/eval/six-s0/open_loop.json" ] || $RD eval open-loop --checkpoint "$six_ckpt" \
                --data "$TELE/data/bench" --out "$OUT/eval/six-s0/open_loop.json" --workers 1 ;;
        bev64)
            # the study's six cameras, lifted to a 64x64 BEV (1 m cells) instead of 32x32 (2 m): the study's
            # seed-0 config as results/overtaking/run.sh writes it, with model.view.bev_hw changed
            bev_ckpt="$OUT/train/bev64-s0/checkpoints/final"
            [ -e "$bev_ckpt" ] || $RD train --config "$OVT/baseline-s0.json" --set 'model.view.bev_hw=[64,64]' \
                --out "$OUT/train/bev64-s0" $( [ -e "$OUT/train/bev64-s0/checkpoints/latest.json" ] && echo --resume )
            mkdir -p "$OUT/eval/bev64-s0"
            [ -e "$OUT/eval/bev64-s0/open_loop.json" ] || $RD eval open-loop --checkpoint "$bev_ckpt" \
                --data "$EXP/data/bench" --out "$OUT/eval/bev64-s0/open_loop.json" --workers 1 ;;
        baseline_ol)
            mkdir -p "$OUT/eval/baseline-s0"
            [ -e "$OUT/eval/baseline-s0/open_loop.json" ] || $RD eval open-loop \
                --checkpoint "$EXP/train/baseline-s0/checkpoints/final" --data "$EXP/data/bench" \
                --out "$OUT/eval/baseline-s0/open_loop.json" --workers 1 ;;
        *) echo "unknown arm $arm (tele | tele_brake | six | bev64 | baseline_ol)" >&2; exit 2 ;;
    esac
done
# what this folder keeps per arm (results/keep_eval.py): summary, eval config, per-route results, open-loop
# metrics, the training run's config and commit (no checkpoints)
[ -e "$TELE/eval/baseline-s0/closed_loop-nominal/summary.json" ] && $PY "$HERE/../keep_eval.py" \
    "$TELE/eval/baseline-s0/closed_loop-nominal" "$HERE/tele-s0" --open-loop "$TELE/eval/baseline-s0/open_loop.json" \
    --train-run "$TELE/train/baseline-s0/run.json"
[ -e "$OUT/eval/tele_brake-s0/summary.json" ] && $PY "$HERE/../keep_eval.py" "$OUT/eval/tele_brake-s0" "$HERE/tele_brake-s0"
[ -e "$OUT/eval/six-s0/summary.json" ] && $PY "$HERE/../keep_eval.py" "$OUT/eval/six-s0" "$HERE/six-s0" \
    --train-run "$OUT/train/six-s0/run.json"
[ -e "$OUT/eval/bev64-s0/open_loop.json" ] && $PY "$HERE/../keep_eval.py" "$OUT/eval/bev64-s0" "$HERE/bev64-s0" \
    --train-run "$OUT/train/bev64-s0/run.json"  # (open loop only)
# paired per route: the arms against the study recipe's three draws of seed 0, and tele against six
base=(baseline="$EXP/eval/baseline-s0/closed_loop-nominal" baseline="$OVT/eval/baseline-t1" baseline="$OVT/eval/baseline-t2")
brake=(brake="$OVT/eval/brake-s0" brake="$OVT/eval/brake-t1" brake="$OVT/eval/brake-t2")
labels=("${base[@]}" "${brake[@]}" tele="$TELE/eval/baseline-s0/closed_loop-nominal")
pairs=(--pair tele:baseline)
[ -e "$OUT/eval/tele_brake-s0/summary.json" ] && labels+=(tele_brake="$OUT/eval/tele_brake-s0") && pairs+=(--pair tele_brake:brake)
[ -e "$OUT/eval/six-s0/summary.json" ] && labels+=(six="$OUT/eval/six-s0") && pairs+=(--pair six:baseline --pair tele:six)
$RD eval compare "${labels[@]}" "${pairs[@]}" --out "$HERE/comparison"
# the open loops side by side, with object recall by range (the study's baseline draws on the study's bench,
# the arms on the tele bench: the same frames and objects, plus the seventh camera's pictures)
$PY "$HERE/recall_table.py" baseline="$OUT/eval/baseline-s0/open_loop.json" \
    "tele (objects the six surround cameras show)=$OUT/eval/tele-s0/open_loop_six_visible.json" \
    "tele (objects any of its seven cameras shows)=$TELE/eval/baseline-s0/open_loop.json" \
    six="$OUT/eval/six-s0/open_loop.json" "bev64=$OUT/eval/bev64-s0/open_loop.json" --out "$HERE/open_loop.md"
