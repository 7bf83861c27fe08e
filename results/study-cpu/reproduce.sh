#!/usr/bin/env bash
# Run one seed of the study in results/study-cpu at its commit 38b66d9 and merge it into this folder (about
# 3.3 h on 2 free cores; split by VARIANTS to fit shorter sessions: baseline,rsd about 2.3 h, corridor about
# 1.45 h; per-stage medians of the study's parts: python benchmarks/bench_study.py). Seeds 0, 1 and 2 are
# here; a rerun of one replaces it. The study's rerun at a faster commit is results/study-cpu-2.
#   bash results/study-cpu/reproduce.sh SEED [OUT]
#   VARIANTS=baseline,rsd bash results/study-cpu/reproduce.sh SEED
# How it runs (a worktree at the study's commit, then the merge): results/reproduce_study.sh.
exec bash "$(dirname "$0")/../reproduce_study.sh" "$(dirname "$0")" "$@"
