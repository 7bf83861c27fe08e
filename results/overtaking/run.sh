#!/usr/bin/env bash
# Can the student learn to pass a blocked lane? (issue 14) The study's baseline student fails every bench route
# that needs the ego to leave its lane around a standing obstacle (results/cpu-student-2026-12-04). Each arm
# retrains seed 0's study baseline with one change, on seed 0's own recording, with the same 1,000 fine-tuning
# steps from builtin:cpu_sim_student and the same seed, drives the study's 125 bench routes (nominal rig), runs
# open loop on seed 0's bench recording, and is paired per route with seed 0's study baseline.
# Arms:
#   repeat3  repeat factor sampling (`data.scenario_repeat`): every training frame of the six train-suite
#            scenario types that need this manoeuvre is drawn 3 times per epoch instead of once;
#   dagger   DAgger-style data: seed 0's study baseline drives the 48 train routes of those six types (the
#            expert drives 30 % of the 4 s segments, and takes a segment whenever the student has stood still
#            for 3 s while the expert would drive) and every frame is labelled with the expert's plan from
#            where the student brought the car (`sim record --dagger`); trained on together with the
#            recording (`data.extra_roots`).
#   prior    (2026-12-05, second session) the waypoints as a learned correction to the kinematic arc to the
#            target point (`waypoint_prior`, the cpu preset's default; the study turns it off): open loop
#            below the arc without costing the drive?
#   brake    (no retraining) the study's baseline drives with the occupancy brake (`--occupancy-brake`):
#            it stops when its own BEV occupancy shows an obstacle in its planned path within stopping
#            distance, instead of driving into what it sees
#   prior_brake  both: the prior arm's student with the occupancy brake (after `prior`)
#   draws    (2026-12-06, third session) is the brake's gain, and DS >= 60, more than one draw? The study's
#            baseline retrained with training seeds 1 and 2 (data order, augmentations; the same seed-0
#            recording and initial weights), each driving without and with the brake (folders `*-t1`,
#            `*-t2`: training seed N on seed 0's recording); compared over the three training draws
#   prior_wp (third session, no retraining) the prior arm's student driving its waypoints, the arc + learned
#            correction that beats the arc in open loop, instead of its path + speed (`--plan-output
#            waypoints`): does the better open-loop plan drive better?
#   prior_wp_brake  the same with the occupancy brake
#   rate10   (2026-12-06, fourth session, no retraining; not about overtaking) the study's baseline planning
#            on every 10 Hz step (`--plan-every-steps 1`) instead of the evaluation's 2 Hz: is the 2 Hz
#            planning rate, 5x cheaper, the same drive on the whole suite? (issue 14's "at equal results")
# Then diagnose.py: on seed 0's bench recording, does each student see the obstacle in its lane, and does its
# plan swerve or stop where the expert's does?
# From the repository root, with the seed-0 experiment folder of results/study-cpu (reproduce.sh 0; its
# recording and its baseline's nominal closed-loop cell are what is read):
#   bash results/overtaking/run.sh [EXP] [OUT] [ARM...]      # about 35 min per arm on 2 free cores
#   bash results/overtaking/run.sh runs/study-cpu-s0 runs/overtaking prior brake     # the second session's arms
#   bash results/overtaking/run.sh runs/study-cpu-s0 runs/overtaking prior_brake
# Runs with the current code (training and evaluation are unchanged since the study's commit; run.json and
# eval_config.json record the commit). Resumable: finished stages are skipped.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXP=${1:-runs/study-cpu-s0}
OUT=${2:-runs/overtaking}
shift $(( $# > 2 ? 2 : $# ))
ARMS=("$@")
[ ${#ARMS[@]} -gt 0 ] || ARMS=(repeat3 dagger)
RD=".venv/bin/riskdistill"
PY=".venv/bin/python"
TYPES='["Accident", "ConstructionObstacle", "ConstructionObstacleTwoWays", "ParkedObstacle", "ParkedObstacleTwoWays", "VehicleOpensDoorTwoWays"]'
mkdir -p "$OUT"
# seed 0's baseline training config, as the study's pipeline builds it (experiment.pipeline.variant_train_config)
$PY - "$EXP" "$OUT/baseline-s0.json" <<'PY'
import json, sys
from riskdistill.experiment import config_for_seeds, experiment_config
from riskdistill.experiment.pipeline import variant_train_config
cfg = variant_train_config(config_for_seeds(experiment_config("study"), [0]), sys.argv[1], "baseline", 0)
json.dump(cfg.model_dump(mode="json"), open(sys.argv[2], "w"), indent=1)
PY
# the training draw: TAG names the folders (s0: the study's own seed), DRAW is the training and eval seed
TAG=s0
DRAW=0
# one student: its label (folders LABEL-TAG), then the --set overrides that are the change
student() {
    local label=$1 name="$1-$TAG" sets=() a
    shift
    for a in "$@"; do sets+=(--set "$a"); done
    local ckpt="$OUT/train/$name/checkpoints/final"
    [ -e "$ckpt" ] || $RD train --config "$OUT/baseline-s0.json" "${sets[@]}" --out "$OUT/train/$name" \
        $( [ -e "$OUT/train/$name/checkpoints/latest.json" ] && echo --resume )
    drive "$label" "$ckpt"
}
# one closed-loop run of a student (and the open loop of one this script trained): its label, its checkpoint,
# then closed-loop options that are the change (a driver option: no retraining, the open loop is the study's)
drive() {
    local label=$1 name="$1-$TAG" ckpt=$2
    shift 2
    $RD eval closed-loop --suite "$EXP/study_suite.json" --driver "$ckpt" --out "$OUT/eval/$name" --workers 2 \
        --label "$label" --seed "$DRAW" "$@"
    [ -e "$OUT/eval/$name/open_loop.json" ] || [ ! -e "$OUT/train/$name" ] || $RD eval open-loop \
        --checkpoint "$ckpt" --data "$EXP/data/bench" --out "$OUT/eval/$name/open_loop.json"
}
for arm in "${ARMS[@]}"; do
    case $arm in
        repeat3)
            student repeat3 "data.scenario_repeat=$($PY -c 'import json, sys; print(json.dumps(dict.fromkeys(json.loads(sys.argv[1]), 3)))' "$TYPES")" ;;
        dagger)
            $PY - "$OUT/train_overtaking_suite.json" "$TYPES" <<'PY'
import json, sys
from riskdistill.sim.suites import Suite, load_suite
types = set(json.loads(sys.argv[2]))
train = load_suite("train").spread(192)  # the study's train routes (config.json data.train_routes)
routes = [r for r in train.routes if r.scenario in types]
sub = Suite(name="train-overtaking", description=f"the {len(routes)} train routes of {sorted(types)}", routes=routes)
json.dump(sub.to_dict(), open(sys.argv[1], "w"), indent=1)
PY
            $RD sim record --suite "$OUT/train_overtaking_suite.json" --rig bench2drive --out "$OUT/data/dagger" \
                --image-h 64 --image-w 176 --every 2 --workers 2 \
                --dagger "$EXP/train/baseline-s0/checkpoints/final" --dagger-expert-share 0.3 \
                --dagger-takeover-s 3
            student dagger "data.extra_roots=[\"$OUT/data/dagger\"]" ;;
        prior)
            # the waypoints as a learned correction to the kinematic arc (the cpu preset's default, which the
            # study turns off because builtin:cpu_sim_student was trained without it): every tensor of that
            # student is copied except the waypoint output layer, which starts at zero (the arc itself)
            student prior "model.heads.planning.waypoint_prior=kinematic_arc" \
                "init_weights_prefixes=$($PY -c 'import json, sys; print(json.dumps(sys.argv[1:]))' backbone. \
                    view_transform. bev_encoder. heads.occupancy. heads.image_aux. \
                    heads.planning.{command_embed.,ego_encoder.,layers.,step_embed,path_embed,path_out.,speed_embed,speed_out.})" ;;
        brake)
            # the study's baseline, unchanged, driving with the occupancy brake (models.occupancy_brake): it
            # stops when its own BEV occupancy shows an obstacle in its planned path within stopping distance
            drive brake "$EXP/train/baseline-s0/checkpoints/final" --occupancy-brake ;;
        prior_brake)
            # the prior arm's student (run `prior` first) driving with the occupancy brake
            drive prior_brake "$OUT/train/prior-s0/checkpoints/final" --occupancy-brake ;;
        prior_wp)
            drive prior_wp "$OUT/train/prior-s0/checkpoints/final" --plan-output waypoints ;;
        prior_wp_brake)
            drive prior_wp_brake "$OUT/train/prior-s0/checkpoints/final" --plan-output waypoints --occupancy-brake ;;
        rate10)
            drive rate10 "$EXP/train/baseline-s0/checkpoints/final" --plan-every-steps 1 ;;
        draws)
            for DRAW in 1 2; do
                TAG=t$DRAW
                student baseline "seed=$DRAW" "shuffle_seed=$DRAW"
                drive brake "$OUT/train/baseline-$TAG/checkpoints/final" --occupancy-brake
            done
            TAG=s0 DRAW=0 ;;
        *) echo "unknown arm $arm (repeat3 | dagger | prior | brake | prior_brake | draws | prior_wp | prior_wp_brake | rate10)" >&2; exit 2 ;;
    esac
done
# the arms of this invocation against seed 0's study baseline, paired per route: comparison-ARM[-ARM...]/
labels=(baseline="$EXP/eval/baseline-s0/closed_loop-nominal")
pairs=()
for label in "${ARMS[@]}"; do
    if [ "$label" = draws ]; then  # brake against baseline over the three training draws (seeds 0, 1, 2)
        labels+=(baseline="$OUT/eval/baseline-t1" baseline="$OUT/eval/baseline-t2")
        labels+=(brake="$OUT/eval/brake-s0" brake="$OUT/eval/brake-t1" brake="$OUT/eval/brake-t2")
        pairs+=(--pair brake:baseline)
        continue
    fi
    labels+=("$label=$OUT/eval/$label-s0")
    pairs+=(--pair "$label:baseline")
done
$RD eval compare "${labels[@]}" "${pairs[@]}" --out "$HERE/comparison-$(IFS=-; echo "${ARMS[*]}")"
# what this folder keeps per arm: summary, eval config, per-route results (no trajectories), open-loop
# metrics, the training run's config and commit (no checkpoints)
for d in "$OUT"/eval/*-s0 "$OUT"/eval/*-t[0-9]*; do
    [ -e "$d/summary.json" ] || continue
    # (no training run for a driver option: the study's baseline drives)
    $PY "$HERE/../keep_eval.py" "$d" "$HERE/$(basename "$d")" --train-run "$OUT/train/$(basename "$d")/run.json"
done
students=()
[ -e "$EXP/train/baseline-s0/checkpoints/final" ] && students+=(baseline="$EXP/train/baseline-s0/checkpoints/final")
for d in "$OUT"/eval/*-s0; do
    ckpt="$OUT/train/$(basename "$d")/checkpoints/final"
    [ -e "$d/summary.json" ] && [ -e "$ckpt" ] && students+=("$(basename "$d" -s0)=$ckpt")
done
# (students already in diagnostics.json are kept: delete it to measure them again)
$PY "$HERE/diagnose.py" "$EXP/data/bench" "${students[@]}" --out "$HERE/diagnostics.json" --only-new
