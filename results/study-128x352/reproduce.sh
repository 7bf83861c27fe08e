#!/usr/bin/env bash
# Run one seed of the study in results/study-128x352 (the `study` with the better-seeing student: recorded at
# 128x352, every variant fine-tuning builtin:cpu_sim_student_128x352; experiment preset `study-128x352`) at
# the study's commit and merge it into this folder. Seed 0's baseline and RSD took 2.30 h in one part on 2
# cores of an Intel Xeon with AVX512 (2026-12-07, with two probes and `make test` beside it; alone about
# 1.6 h, from results/perception's stage costs); the corridor control about 0.8 h more. Split by VARIANTS to fit shorter sessions (each part records and labels the seed's data again, about
# 13 min):
#   bash results/study-128x352/reproduce.sh SEED [OUT]
#   VARIANTS=baseline,rsd bash results/study-128x352/reproduce.sh SEED
#   VARIANTS=corridor bash results/study-128x352/reproduce.sh SEED
# A later part can start from an earlier part's recorded and labelled data instead (every part records the
# same frames; checked on seeds 0 and 1), which skips those 15-20 min (each seed's corridor part so: 0.70-0.77 h alone):
#   DATA_FROM=runs/study-128x352-s1-baseline-rsd VARIANTS=corridor bash results/study-128x352/reproduce.sh 1
# How it runs (a worktree at the study's commit, then the merge): results/reproduce_study.sh.
exec bash "$(dirname "$0")/../reproduce_study.sh" "$(dirname "$0")" "$@"
