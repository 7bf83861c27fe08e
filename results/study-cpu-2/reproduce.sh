#!/usr/bin/env bash
# Run one seed of the study in results/study-cpu-2 (the design of results/study-cpu, rerun at commit e9f56ad
# with its speed-ups) and merge it into this folder. A seed in one part on 2 free cores: 1.18 h on an AMD
# EPYC (seed 0, 2026-12-06), 1.63 h on an Intel Xeon with AVX512 (seed 2, 2026-12-07); per stage:
# python benchmarks/bench_study.py results/study-cpu-2. Split by VARIANTS to
# fit shorter sessions (each part records and labels the seed's data again):
#   bash results/study-cpu-2/reproduce.sh SEED [OUT]
#   VARIANTS=baseline,rsd bash results/study-cpu-2/reproduce.sh SEED
#   VARIANTS=corridor bash results/study-cpu-2/reproduce.sh SEED
# How it runs (a worktree at the study's commit, then the merge): results/reproduce_study.sh.
exec bash "$(dirname "$0")/../reproduce_study.sh" "$(dirname "$0")" "$@"
