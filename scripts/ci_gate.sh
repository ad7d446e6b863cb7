#!/usr/bin/env bash
# Regression gates, run by .ci/run after the test suite (about a minute on a 2-core CPU):
#   1. the digits conversion gate: run suites/ci/digits_gate.yaml from scratch (fixed seed, fixed
#      thread count) and compare it with results/baseline/digits_gate.jsonl — accuracy must not
#      drop beyond the tolerances below; wall times are not gated on a shared CPU;
#   2. the micro-benchmarks of tests/test_perf_bench.py against
#      results/baseline/pytest-bench/perf_baseline.json (fail when a minimum time grows by more than 150 %, i.e. 2.5×: CI machines vary).
#
#   scripts/ci_gate.sh                    run both gates (exit 1 on a regression, 2 on bad input)
#   scripts/ci_gate.sh --update-baseline  rerun both and overwrite the committed baselines
#                                         (do this when a change is meant to move the numbers)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
OUT=${OUT:-build/ci}
# CPU sums depend on the thread count: fix it so the gate computes the same numbers everywhere.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
BASELINE=results/baseline/digits_gate.jsonl
PERF_BASELINE=results/baseline/pytest-bench/perf_baseline.json

update=0
if [[ "${1:-}" == "--update-baseline" ]]; then update=1; fi

rm -rf "$OUT"
"$BIN/snnbench" run suites/ci/digits_gate.yaml --results-dir "$OUT" --cache-dir "$OUT/cache"

if [[ $update == 1 ]]; then
    cp "$OUT/digits_gate.jsonl" "$BASELINE"
    "$BIN/python" -m pytest -q -p no:cacheprovider tests/test_perf_bench.py --benchmark-only \
        --benchmark-json="$PERF_BASELINE"
    echo "baselines updated: $BASELINE $PERF_BASELINE"
    exit 0
fi

"$BIN/snnbench" compare "$BASELINE" "$OUT/digits_gate.jsonl" \
    --ignore '*_s' \
    --tolerance 'ann_acc=1pt' \
    --tolerance 'snn_acc.*=2pt'

"$BIN/python" -m pytest -q -p no:cacheprovider tests/test_perf_bench.py --benchmark-only \
    --benchmark-compare="$PERF_BASELINE" --benchmark-compare-fail=min:150%
