#!/usr/bin/env bash
# Download into .whl/ the wheels a CUDA machine with torch, triton, typer, rich, pandas, pyyaml and
# scikit-learn preinstalled but no network lacks for scripts/gpu_check.sh: pydantic (the suite
# schema) and SpikingJelly (the peer of the neuron and convert benches). Run where pip can reach
# PyPI; PYVER is the target machine's Python (default 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${PYVER:-3.12}
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl pydantic pydantic-core annotated-types typing-inspection spikingjelly
ls .whl
