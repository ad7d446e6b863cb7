#!/usr/bin/env bash
# Every GPU benchmark in one command (the bench parts of scripts/gpu_check.sh):
#
#   scripts/gpu_bench.sh OUT_DIR   -> OUT_DIR/{neuron,sparse,ftbc,convert}.json, summary.json, log.txt
#
# Commit the JSON files under results/bench/<gpu>/ (see README, "GPU check").
exec "$(dirname "$0")/gpu_check.sh" "$@" --parts bench_neuron,bench_sparse,bench_ftbc,bench_convert
