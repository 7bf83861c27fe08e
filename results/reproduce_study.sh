#!/usr/bin/env bash
# Run one seed of a committed study at the study's own commit and merge it into the study's folder.
# Each study folder's reproduce.sh calls this with its folder; from the repository root, after `make test`
# or `make demo` created .venv:
#   bash results/reproduce_study.sh STUDY_DIR SEED [OUT]
#   VARIANTS=baseline,rsd bash results/reproduce_study.sh STUDY_DIR SEED   # a seed split into parts, e.g.
#   VARIANTS=corridor bash results/reproduce_study.sh STUDY_DIR SEED       # over two sessions
#   DATA_FROM=runs/<an earlier part> VARIANTS=corridor bash results/reproduce_study.sh STUDY_DIR SEED
# DATA_FROM starts a new part from an earlier part's recorded and labelled data (hard links; `riskdistill
# experiment reuse-data` checks that the data plan, teacher and commit are the study's): the recording does
# not depend on the seed or the variants, so every part of a study records the same frames, and a part that
# reuses them skips about 15-20 min of recording and labelling.
# A fixed seed gives identical results on one machine, not across CPU kinds (results/overtaking/README.md),
# so a rerun of a seed elsewhere is a new draw of it. The parts of one study must share one git commit, so
# the study's code runs from a git worktree at the commit named in STUDY_DIR/study.json (the installed .venv
# provides only the dependencies); the merge runs with the current code and reads the seeds already in the
# folder from it (docs/experiment.md).
set -euo pipefail
STUDY=$(cd "${1:?usage: reproduce_study.sh STUDY_DIR SEED [OUT]}" && pwd)
SEED=${2:?usage: reproduce_study.sh STUDY_DIR SEED [OUT]}
if [ ! -x .venv/bin/riskdistill ] || [ ! -e .git ]; then
    echo "run this from the repository root after \`make test\` or \`make demo\` created .venv ($PWD has no .venv/bin/riskdistill or .git)" >&2
    exit 2
fi
if [ ! -f "$STUDY/study.json" ] || [ ! -f "$STUDY/config.json" ]; then
    echo "$STUDY/study.json or config.json not found: STUDY_DIR must be a committed study folder (results/<study>/)" >&2
    exit 2
fi
NAME=$(basename "$STUDY")
VARIANTS=${VARIANTS:-}
OUT=${3:-runs/$NAME-s$SEED${VARIANTS:+-${VARIANTS//,/-}}}
SET=()
if [ -n "$VARIANTS" ]; then
    SET=(--set "variants=$(.venv/bin/python -c 'import json, sys; print(json.dumps(sys.argv[1].split(",")))' "$VARIANTS")")
fi
COMMIT=$(.venv/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["git_commit"])' "$STUDY/study.json")
# the experiment preset the study was run with (study, study-128x352): the name in its resolved config
PRESET=$(.venv/bin/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["name"])' "$STUDY/config.json")
SRC=runs/$NAME-src-${COMMIT:0:7}
[ -d "$SRC" ] || git worktree add --detach "$SRC" "$COMMIT"
if [ "$(git -C "$SRC" rev-parse HEAD)" != "$COMMIT" ]; then
    echo "$SRC is not at the study's commit $COMMIT" >&2
    exit 1
fi
if [ -n "${DATA_FROM:-}" ] && [ ! -e "$OUT/data" ]; then
    .venv/bin/riskdistill experiment reuse-data "$DATA_FROM" "$OUT" --config "$STUDY/config.json" --commit "$COMMIT"
fi
PYTHONPATH="$PWD/$SRC/src" .venv/bin/riskdistill experiment --preset "$PRESET" --seeds "$SEED" --out "$OUT" "${SET[@]}"
.venv/bin/riskdistill experiment merge "$STUDY" "$OUT" --out "$STUDY" --allow-missing
