#!/usr/bin/env bash
# The GPU proof in one command, for a CUDA machine with torch and triton preinstalled and no network:
#
#   scripts/gpu_check.sh OUT            kernel tests on the card (pytest -m cuda), every track end to
#                                       end on CUDA, every bench; OUT/summary.json says what passed
#   scripts/gpu_check.sh OUT --dry-run  the same plumbing on a CPU at tiny sizes (CI runs this)
#
# Other options: --allow-dirty, --budget-s S (default 570), --parts a,b (see scripts/gpu_check.py).
# Wheels of what the machine lacks (pydantic and its needs, spikingjelly; scripts/gpu_wheels.sh
# downloads them) may sit in .whl/: they are installed into a private folder, never over the system's.
# A copy without .git needs SNNBENCH_GIT_SHA and SNNBENCH_TREE_DIGEST in its environment
# (`python3 scripts/gpu_check.py --print-env` in the committed checkout prints them).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
dry=0
for arg in "$@"; do [[ $arg == --dry-run ]] && dry=1; done
if [[ $dry == 0 ]]; then
    if compgen -G ".whl/*.whl" > /dev/null; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/snnbench-site .whl/*.whl
        export PYTHONPATH=/tmp/snnbench-site${PYTHONPATH:+:$PYTHONPATH}
    fi
    "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
fi
exec "$PYTHON" scripts/gpu_check.py "$@"
