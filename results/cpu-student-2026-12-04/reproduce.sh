#!/usr/bin/env bash
# Reproduce results/cpu-student-2026-12-04 (about 3.5 h on 2 cores: recording 35 min, training about 80 min,
# evaluation 15 min). Run from the repository root after `make test` or `make demo` created .venv:
#   bash results/cpu-student-2026-12-04/reproduce.sh [OUT]
# The train suite has grown by the YieldToEmergencyVehicle routes since (192 routes instead of 184), so the
# numbers will differ a little; the bench suite's 125 routes are the ones evaluated here.
set -euo pipefail
OUT=${1:-runs/cpu-student}
HERE=$(dirname "$0")
RD=.venv/bin/riskdistill
$RD sim record --suite train --rig bench2drive --out "$OUT/data/train" --image-h 128 --image-w 352 --every 2 \
    --steer-noise 0.25 --workers 2
$RD sim record --suite bench --rig bench2drive --out "$OUT/data/bench" --image-h 128 --image-w 352 --every 4 \
    --workers 2
$RD train --data "$OUT/data/train" --out "$OUT/train" --config "$HERE/train_config.json"
$RD eval open-loop --checkpoint "$OUT/train/checkpoints/final" --data "$OUT/data/bench" --stride 8 \
    --out "$OUT/open_loop.json"
$RD eval closed-loop --suite bench --driver "$OUT/train/checkpoints/final" --out "$OUT/cl-cameras" --workers 2
$RD eval closed-loop --suite bench --driver "$OUT/train/checkpoints/final" --out "$OUT/cl-front-blind" --workers 2 \
    --rig-shift drop-CAM_FRONT,drop-CAM_FRONT_LEFT,drop-CAM_FRONT_RIGHT,drop-CAM_BACK_LEFT,drop-CAM_BACK_RIGHT
$RD eval compare cameras="$OUT/cl-cameras" front_blind="$OUT/cl-front-blind" --out "$OUT/compare"
