#!/usr/bin/env bash
# Shows that the CI gates (scripts/ci_gate.sh) are machine-independent and still sensitive: the
# conversion gate must pass with 1 and 2 threads and with oneDNN (mkldnn), MKL's fast paths and
# ATen's vector kernels switched off — what differs between CPUs — and fail on a deliberately
# worsened FTBC (its step size alpha silently divided by 4); the training gate must pass on another
# training draw. One verdict line per variant; exit 1 when a variant does not behave as expected.
# About 20-60 s per variant on a 2-core CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# prelude FILE PYTHON...: a snnbench entry point that runs PYTHON in-process first.
prelude() {
    printf 'import sys\n%s\nfrom snnbench.cli import main\nsys.argv[0] = "snnbench"\nmain()\n' "$2" > "$1"
}
prelude "$work/plain.py" ''
prelude "$work/no_onednn.py" 'import torch; torch.backends.mkldnn.enabled = False'
prelude "$work/worse_alpha.py" '
import snnbench.conversion.ftbc as ftbc
_fast = ftbc.ftbc_calibrate_fast
def _worse(ann, snn, batches, steps, alpha, **kw):
    return _fast(ann, snn, batches, steps, alpha / 4, **kw)
ftbc.ftbc_calibrate_fast = _worse'

status=0
# variant NAME EXPECTED-EXIT ENTRY [ENV=VALUE...]: the conversion gate (GATES=... in ENV overrides)
variant() {
    local name=$1 expected=$2 entry=$3
    shift 3
    env GATES=conversion "$@" OUT="$work/$name" SNNBENCH="$BIN/python $work/$entry.py" \
        scripts/ci_gate.sh > "$work/$name.log" 2>&1
    local code=$?
    if [[ $code == "$expected" ]]; then verdict=ok; else verdict=UNEXPECTED; status=1; fi
    echo "$verdict: $name exited $code (expected $expected)"
    grep -E "common cells|regressed|error" "$work/$name.log" | grep -v "━" | head -8
}
variant threads-1 0 plain OMP_NUM_THREADS=1
variant threads-2 0 plain OMP_NUM_THREADS=2
variant no-onednn-mkl-avx 0 no_onednn OMP_NUM_THREADS=2 MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default
variant ftbc-alpha-divided-by-4 1 worse_alpha OMP_NUM_THREADS=2
# The training gate on another training draw (one thread sums differently than the baseline's two).
variant training-threads-1 0 plain OMP_NUM_THREADS=1 GATES=training
exit $status
