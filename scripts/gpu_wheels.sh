#!/usr/bin/env bash
# Download into .whl/ the wheels a CUDA machine with torch, triton, typer, rich, pandas, pyyaml and
# scikit-learn preinstalled but no network lacks for scripts/gpu_check.sh: pydantic (the suite
# schema) with the pydantic-core it pins, SpikingJelly (the peer of the neuron, convert and layer
# benches) and snnTorch, Norse and Sinabs (the other peers of the layer bench) with what their
# imports need (Sinabs' samna, for its chip back end only, is left out). Run where pip can reach PyPI; PYVER is the target's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${PYVER:-3.12}
mkdir -p .whl
get() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "$@"
}
get pydantic
core=$(unzip -p .whl/pydantic-*.whl '*/METADATA' | sed -n 's/^Requires-Dist: pydantic-core==\([0-9.]*\).*/\1/p')
get "pydantic-core==${core}" annotated-types typing-inspection typing-extensions spikingjelly loguru scienceplots
get snntorch norse sinabs nir nirtorch pbr h5py
ls .whl
