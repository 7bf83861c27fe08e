#!/usr/bin/env bash
# Can the cpu student be trained in 30 minutes on 2 cores? (issue 14: "the cpu baseline student, trained on 2
# cores in <= 30 min", with "a pretrained-in-simulation image backbone that every variant starts from".) The
# study-128x352 students fine-tune a whole trained student (builtin:cpu_sim_student_128x352: 132 min of training
# behind it). Each arm here trains a 128x352 student for 2,100 steps of batch 8 (about 27 min at the 10.6
# samples/s the study's fine-tunes ran at) from less than that, with the study-128x352 baseline's training config
# (128x352 images, recovery data, the study's augmentation), the waypoints as a correction to the kinematic arc,
# AdamW 1e-3 with 200 warm-up steps, cosine to 5 % (the pretraining run's own schedule), training seed 0:
#   backbone30    only `backbone.` from builtin:cpu_sim_backbone (the image backbone of the 6,000-step run at
#                 64x176); the view transform, BEV encoder and every head start from random weights
#   perception30  the perception of that same 6,000-step 64x176 run (builtin:cpu_sim_student: backbone, view
#                 transform, BEV encoder, occupancy and image-space heads); the planning head starts from random
#                 weights, so all the driving is learnt in the 30 minutes
#   student30     the whole 64x176 student of that run except the waypoint output layer (which starts at zero
#                 on the arc prior, as results/study-128x352/probes' prior_zero)
# Each arm is scored in open loop on the study's 9,402 bench frames and driven on the study's 125 bench routes
# (nominal rig, the study's driver options), and paired per route with seed 0's study baseline: its part's
# closed-loop folder (EXP_SEED0) when it is there, else its per-route outcomes kept in results/study-128x352.
# From the repository root, with a study-128x352 part whose training has started (it holds the recording and
# the baseline's resolved training config; every part records the same frames):
#   bash results/train-30min/run.sh [EXP] [OUT] [EXP_SEED0] [ARM...]
#   SEED=1 bash results/train-30min/run.sh ... student30    # another draw: training seed and data order 1,
#                                                           # paired with seed 1's study baseline
#   defaults: runs/study-128x352-s1-baseline-rsd  runs/train-30min  runs/study-128x352-s0  backbone30
# e.g. a part of seed 0, baseline only, nominal rig, stopped once its training started:
#   riskdistill experiment --preset study-128x352 --seeds 0 --set 'variants=["baseline"]' \
#       --set 'eval.rig_shifts=[]' --out runs/exp128-s0
# About 45 min per arm on 2 free cores (training 28, open loop 8, closed loop 7). Resumable: finished steps are
# skipped. What it keeps (results/keep_eval.py) lands in ARM-s0/ here, the paired comparison in comparison-ARM/
# (backbone30's in comparison/).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
EXP=${1:-runs/study-128x352-s1-baseline-rsd}
OUT=${2:-runs/train-30min}
EXP0=${3:-runs/study-128x352-s0}
shift $(( $# > 3 ? 3 : $# ))
ARMS=("$@")
SEED=${SEED:-0}  # training seed (and data order); SEED=1 bash ... trains and pairs seed 1's draw
ALL=(backbone30 perception30 student30)
[ ${#ARMS[@]} -gt 0 ] || ARMS=(backbone30)
RD=.venv/bin/riskdistill
PY=.venv/bin/python
run_json=$(ls "$EXP"/train/baseline-s*/run.json 2>/dev/null | head -1 || true)
if [ ! -x "$RD" ] || [ -z "$run_json" ] || [ ! -d "$EXP/data/bench" ]; then
    echo "run this from the repository root after \`make test\` created .venv, with a study-128x352 baseline" \
        "part whose training has started as EXP ($EXP: no train/baseline-s*/run.json or data/bench;" \
        "bash results/study-128x352/reproduce.sh 1)" >&2
    exit 2
fi
# the study's 125 closed-loop routes: the part's own list once its closed loop started, else the study's
suite="$EXP/study_suite.json"
[ -f "$suite" ] || suite="$HERE/../study-128x352/suite.json"
for arm in "${ARMS[@]}"; do
    case " ${ALL[*]} " in *" $arm "*) ;; *) echo "unknown arm $arm (${ALL[*]})" >&2; exit 2 ;; esac
    out="$OUT/$arm"
    [ "$SEED" = 0 ] || out="$OUT/$arm-s$SEED"
    ckpt="$out/train/checkpoints/final"
    mkdir -p "$out"
    # the baseline's resolved training config with the arm's changes (written once; a rerun resumes with it)
    [ -f "$out/config.json" ] || $PY - "$run_json" "$out/config.json" "$arm" "$SEED" <<'PY'
import json, sys

c = json.load(open(sys.argv[1]))["config"]
arm = sys.argv[3]
perception = ["backbone.", "view_transform.", "bev_encoder.", "heads.occupancy.", "heads.image_aux."]
c["init_weights"], c["init_weights_prefixes"] = {
    "backbone30": ("builtin:cpu_sim_backbone", ["backbone."]),
    "perception30": ("builtin:cpu_sim_student", perception),
    "student30": ("builtin:cpu_sim_student", [*perception, "heads.planning.", "!heads.planning.out."]),
}[arm]
c["model"]["heads"]["planning"]["waypoint_prior"] = "kinematic_arc"
c["optimizer"]["lr"] = 1e-3
c["schedule"]["warmup_steps"] = 200
c["max_steps"] = 2100
c["seed"] = int(sys.argv[4])
c["shuffle_seed"] = int(sys.argv[4])
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
    [ -e "$ckpt" ] || $RD train --config "$out/config.json" --out "$out/train" --risk off \
        $( [ -e "$out/train/checkpoints/latest.json" ] && echo --resume )
    [ -e "$out/open_loop.json" ] || $RD eval open-loop --checkpoint "$ckpt" --data "$EXP/data/bench" \
        --out "$out/open_loop.json"
    $RD eval closed-loop --suite "$suite" --driver "$ckpt" --out "$out/closed_loop-nominal" \
        --label "$arm" --seed "$SEED" --engine onnx --plan-every-steps 5
    $PY results/keep_eval.py "$out/closed_loop-nominal" "$HERE/$arm-s$SEED" --open-loop "$out/open_loop.json" \
        --train-run "$out/train/run.json"
    base="$EXP0/eval/baseline-s$SEED/closed_loop-nominal"
    cmp="$HERE/comparison-$arm"
    [ "$SEED" = 0 ] || cmp="$cmp-s$SEED"
    [ "$arm" = backbone30 ] && [ "$SEED" = 0 ] && cmp="$HERE/comparison"
    if [ -f "$base/summary.json" ]; then
        $RD eval compare "baseline=$base" "$arm=$out/closed_loop-nominal" --pair "$arm:baseline" --out "$cmp"
    else  # the seed's study baseline as kept in the repository (its per-route outcomes)
        $PY results/pair_with_study.py "$HERE/$arm-s$SEED" \
            "$HERE/../study-128x352/routes/baseline-s$SEED/nominal.json" \
            --labels "$arm" baseline --out "$cmp"
    fi
done
