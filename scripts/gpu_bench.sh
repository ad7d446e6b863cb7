#!/usr/bin/env bash
# Every GPU benchmark in one command, for a machine with a CUDA build of torch and triton already
# installed (e.g. a lent H100/H200 with no network):
#
#   scripts/gpu_bench.sh OUT_DIR          -> OUT_DIR/{neuron,sparse,ftbc}.json and a log
#
# Wheels of what that machine lacks (pydantic, spikingjelly and their pure-Python needs) may be put
# in .whl/ beforehand; they are installed into a private folder, never over the system packages.
# Commit the JSON files under results/bench/<gpu>/ (see README, "GPU benchmarks").
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_bench.sh OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/snnbench-site .whl/*.whl
    export PYTHONPATH=/tmp/snnbench-site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
# The copy of the tree on such a machine has no .git: record the commit it was made from.
export SNNBENCH_GIT_SHA=${SNNBENCH_GIT_SHA:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
python3 -m snnbench env | tee "$out/log.txt"
for bench in neuron sparse ftbc; do
    python3 -m snnbench bench "$bench" --device cuda --out "$out" 2>&1 | tee -a "$out/log.txt"
done
