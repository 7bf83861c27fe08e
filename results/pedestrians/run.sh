#!/usr/bin/env bash
# Why do the students hit crossing pedestrians? Every study-128x352 student hits the pedestrian on the same
# bench routes (VehicleTurningRoutePedestrian 2-4, some PedestrianCrossing 0 and 4), with or without the
# RiskHead, and the occupancy brake does not stop it. This folder looks at what the student saw and did there:
#   traces    the expert and the shipped 128x352 student (builtin:cpu_sim_student_128x352, the weights every
#             study student fine-tunes) driven on the six pedestrian routes with a per-step trace
#             (`eval closed-loop --trace`; the student with the eager engine, so the trace holds its own BEV
#             occupancy on each road user), summarised by summarise_traces.py into traces.md
#   on_road   the shipped student's open loop on the study's 9,402 bench frames and on every 8th frame of the
#             train recording, whose `occupancy_recall_on_road` splits its pedestrian recall into those on the
#             carriageway and those beside it (open_loop-shipped.json, open_loop-shipped-train.json)
#   diagnose  the shipped student on every 16th train frame: does its image-space semantics head mark the
#             pedestrians on the road, and where does its BEV occupancy put them (diagnose_on_road.py)
#   pedrepeat seed 0's study baseline (1,000 steps from the shipped student, the same seed) with the four
#             pedestrian-crossing scenario types drawn 3 times per epoch (`data.scenario_repeat`): does seeing
#             crossing pedestrians more often make the student mark them and stop? Open loop, closed loop on
#             the 125 routes (the study's driver options), paired per route with EXP's own seed-0 baseline
#             when its closed loop ran (resume the experiment: the same commit and machine), else with seed
#             0's study baseline kept in results/study-128x352/routes
#   roadweight the same with the occupancy loss's weight on pedestrian cells on the drivable area x10
#             (`vulnerable_on_road_weight`); open loop only
#   crossing  a study-128x352 part of its own (CW_EXP, default runs/exp128-cw) whose train recording adds
#             3 pedestrians per route who cross the route (`data.crossing_walkers`): its seed-0 baseline
#             trained, evaluated in open and closed loop and paired like pedrepeat
#   logits    the occupancy head's VRU logit on pedestrians on the road, beside it and on empty road
#             (vru_logits.py): the shipped student, crossing's, roadweight's
#   ray_edge  the shipped student's marks of pedestrians on the road by how much road lies behind them
#             along the camera ray (ray_edge.py), on the crossing recording
# From the repository root, with a study-128x352 part whose training has started (it holds the recording and
# the baseline's resolved training config; every part records the same frames), e.g.
#   riskdistill experiment --preset study-128x352 --seeds 0 --set 'variants=["baseline"]' \
#       --set 'eval.rig_shifts=[]' --out runs/exp128-s0     # stopped once its training started
#   bash results/pedestrians/run.sh [EXP] [OUT] [STEP...]   # defaults: runs/exp128-s0 runs/pedestrians,
#                                                           # all steps: traces on_road diagnose
#                                                           # pedrepeat roadweight crossing logits
#                                                           # ray_edge
# About 4 min (traces), 7 min (on_road), 13 min (diagnose), 25 min (pedrepeat), 20 min (roadweight) and
# 60 min (crossing: its own recording, labels, training and evaluation) on 2 free cores. Resumable.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXP=${1:-runs/exp128-s0}
OUT=${2:-runs/pedestrians}
shift $(( $# > 2 ? 2 : $# ))
STEPS=("$@")
[ ${#STEPS[@]} -gt 0 ] || STEPS=(traces on_road diagnose pedrepeat roadweight crossing logits ray_edge)
RD=.venv/bin/riskdistill
PY=.venv/bin/python
run_json=$(ls "$EXP"/train/baseline-s0/run.json 2>/dev/null || true)
if [ ! -x "$RD" ] || [ -z "$run_json" ] || [ ! -d "$EXP/data/bench" ]; then
    echo "run this from the repository root after \`make test\` created .venv, with seed 0's study-128x352" \
        "baseline part as EXP ($EXP: no train/baseline-s0/run.json or data/bench)" >&2
    exit 2
fi
mkdir -p "$OUT"
shipped="$OUT/shipped128"
# the shipped student as a checkpoint folder: the study baseline's model config, every tensor of the weights
[ -e "$shipped/model.safetensors" ] || $PY - "$run_json" "$shipped" <<'PY'
import json, sys

from riskdistill.models import build_student, save_student
from riskdistill.models.config import StudentConfig
from riskdistill.models.io import load_init_weights

cfg = json.load(open(sys.argv[1]))["config"]
student = build_student(StudentConfig.model_validate(cfg["model"])).eval()
load_init_weights(student, cfg["init_weights"], tuple(cfg["init_weights_prefixes"]))
save_student(student, sys.argv[2], {"rig": cfg["data"].get("rig", "bench2drive")})
PY
# the six bench routes where study students hit a pedestrian, and one of the same type they pass
[ -f "$OUT/suite.json" ] || $PY - "$HERE/../study-128x352/suite.json" "$OUT/suite.json" <<'PY'
import json, sys

keep = ["PedestrianCrossing_0", "PedestrianCrossing_4", "VehicleTurningRoutePedestrian_0",
        "VehicleTurningRoutePedestrian_2", "VehicleTurningRoutePedestrian_3", "VehicleTurningRoutePedestrian_4"]
suite = json.load(open(sys.argv[1]))
suite["name"], suite["routes"] = "pedestrians", [r for r in suite["routes"] if r["route_id"][6:] in keep]
json.dump(suite, open(sys.argv[2], "w"), indent=1)
PY
# keep_open_loop SRC DEST CHECKPOINT: the perception metrics of an open-loop result (no per-frame rows)
keep_open_loop() {
    $PY -c 'import json, sys; d = json.load(open(sys.argv[1])); m = d["metrics"]
json.dump({"checkpoint": sys.argv[3], "data": d["data"], "metrics": {k: m[k] for k in
("n_samples", "iou_vehicle", "iou_vulnerable", "occupancy_recall_by_range", "occupancy_recall_on_road")}},
open(sys.argv[2], "w"), indent=1)' "$1" "$2" "$3"
}
# keep_and_pair NAME EVAL_DIR OPEN_LOOP TRAIN_RUN: keep a probe's evaluation in $HERE/NAME-s0 and pair it per
# route with the control: EXP's own seed-0 baseline once its closed loop ran (the same commit and machine),
# else seed 0's study baseline kept in the repository (another commit and machine: a new draw)
keep_and_pair() {
    local name=$1 ev=$2 ol=$3 tr=$4
    $PY "$HERE/../keep_eval.py" "$ev" "$HERE/$name-s0" --open-loop "$ol" --train-run "$tr"
    local base="$EXP/eval/baseline-s0/closed_loop-nominal"
    if [ -f "$base/summary.json" ]; then
        $PY "$HERE/../keep_eval.py" "$base" "$HERE/baseline-s0" --open-loop "$EXP/eval/baseline-s0/open_loop.json" \
            --train-run "$EXP/train/baseline-s0/run.json"
        $RD eval compare "baseline=$base" "$name=$ev" --pair "$name:baseline" --out "$HERE/comparison-$name"
    else
        $PY "$HERE/../pair_with_study.py" "$HERE/$name-s0" \
            "$HERE/../study-128x352/routes/baseline-s0/nominal.json" --labels "$name" baseline \
            --out "$HERE/comparison-$name"
    fi
}
# probe NAME PYTHON [open]: seed 0's study baseline (1,000 steps from the shipped student, the same seed)
# with its resolved config `c` changed by PYTHON; open loop on the bench recording, then (unless `open`)
# closed loop on the 125 routes (the study's driver options), kept and paired by keep_and_pair; with `open`
# only the open-loop perception metrics are kept ($HERE/NAME-s0/open_loop.json)
probe() {
    local name=$1 change=$2 only=${3:-} out="$OUT/$1"
    local ckpt="$out/train/checkpoints/final"
    mkdir -p "$out"
    [ -f "$out/config.json" ] || $PY -c "import json, sys
c = json.load(open(sys.argv[1]))['config']
$change
json.dump(c, open(sys.argv[2], 'w'), indent=1)" "$run_json" "$out/config.json"
    [ -e "$ckpt" ] || $RD train --config "$out/config.json" --out "$out/train" --risk off \
        $( [ -e "$out/train/checkpoints/latest.json" ] && echo --resume )
    [ -e "$out/open_loop.json" ] || $RD eval open-loop --checkpoint "$ckpt" --data "$EXP/data/bench" \
        --out "$out/open_loop.json"
    if [ "$only" = open ]; then
        mkdir -p "$HERE/$name-s0"
        keep_open_loop "$out/open_loop.json" "$HERE/$name-s0/open_loop.json" "$ckpt"
        cp "$out/train/run.json" "$HERE/$name-s0/train_run.json"
        return
    fi
    [ -f "$out/closed_loop-nominal/summary.json" ] || $RD eval closed-loop \
        --suite "$HERE/../study-128x352/suite.json" --driver "$ckpt" --out "$out/closed_loop-nominal" \
        --label "$name" --seed 0 --engine onnx --plan-every-steps 5
    keep_and_pair "$name" "$out/closed_loop-nominal" "$out/open_loop.json" "$out/train/run.json"
}
for step in "${STEPS[@]}"; do
    case $step in
        traces)
            $RD eval closed-loop --suite "$OUT/suite.json" --driver expert --out "$OUT/trace-expert" \
                --workers 2 --trace --trace-every 1
            $RD eval closed-loop --suite "$OUT/suite.json" --driver "$shipped" --out "$OUT/trace-shipped" \
                --workers 2 --trace --trace-every 1 --engine eager --plan-every-steps 5 --label shipped --seed 0
            $PY "$HERE/summarise_traces.py" "expert=$OUT/trace-expert" "shipped=$OUT/trace-shipped" \
                --out "$HERE/traces.md" ;;
        on_road)
            # on the bench recording, and on every 8th frame of the train recording (the frames it learnt from)
            [ -e "$OUT/open_loop-shipped.json" ] || $RD eval open-loop --checkpoint "$shipped" \
                --data "$EXP/data/bench" --out "$OUT/open_loop-shipped.json"
            [ -e "$OUT/open_loop-shipped-train.json" ] || $RD eval open-loop --checkpoint "$shipped" \
                --data "$EXP/data/train" --stride 8 --out "$OUT/open_loop-shipped-train.json"
            for f in open_loop-shipped open_loop-shipped-train; do
                keep_open_loop "$OUT/$f.json" "$HERE/$f.json" builtin:cpu_sim_student_128x352
            done ;;
        diagnose)
            # the shipped student's image head and BEV occupancy on the pedestrians of every 16th train frame
            [ -e "$HERE/diagnose-shipped-train.json" ] || $PY "$HERE/diagnose_on_road.py" "$shipped" \
                "$EXP/data/train" --stride 16 --out "$HERE/diagnose-shipped-train.json" ;;
        pedrepeat)
            probe pedrepeat 'c["data"]["scenario_repeat"] = {s: 3 for s in ("PedestrianCrossing",
    "VehicleTurningRoutePedestrian", "ParkingCrossingPedestrian", "DynamicObjectCrossing")}' ;;
        roadweight)
            # open loop only: its on-road pedestrian recall did not move, so the driving cannot have
            probe roadweight 'c["model"]["heads"]["occupancy"]["vulnerable_on_road_weight"] = 10.0' open ;;
        crossing)
            # a study-128x352 part of its own whose train recording adds 3 crossing walkers per route (the
            # bench recording is the same); its baseline is seed 0's study baseline recipe on that data
            cw=${CW_EXP:-runs/exp128-cw}
            $RD experiment --preset study-128x352 --seeds 0 --set 'variants=["baseline"]' \
                --set 'eval.rig_shifts=[]' --set data.crossing_walkers=3 --out "$cw"
            keep_and_pair crossing "$cw/eval/baseline-s0/closed_loop-nominal" "$cw/eval/baseline-s0/open_loop.json" \
                "$cw/train/baseline-s0/run.json" ;;
        logits)
            # the occupancy head's VRU logit on pedestrians on the road, beside it and on empty road, on 160
            # frames of the crossing recording: the shipped student, crossing's and roadweight's
            cw=${CW_EXP:-runs/exp128-cw}
            [ -e "$HERE/vru_logits.json" ] || $PY "$HERE/vru_logits.py" "$cw/data/train" 160 "$shipped" \
                "$cw/train/baseline-s0/checkpoints/final" "$OUT/roadweight/train/checkpoints/final" \
                --out "$HERE/vru_logits.json" ;;
        ray_edge)
            # the shipped student on the crossing recording: marked only where the pavement begins behind it?
            cw=${CW_EXP:-runs/exp128-cw}
            [ -e "$HERE/ray_edge-shipped-crossing.json" ] || $PY "$HERE/ray_edge.py" "$shipped" \
                "$cw/data/train" --stride 16 --out "$HERE/ray_edge-shipped-crossing.json" ;;
        *) echo "unknown step $step (traces on_road diagnose pedrepeat roadweight crossing logits ray_edge)" >&2; exit 2 ;;
    esac
done
