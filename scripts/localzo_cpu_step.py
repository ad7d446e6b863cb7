"""CPU step time (forward + backward) of LocalZO vs the dense surrogate on the digits demo's shapes.

digits_spiking, 64-100-100-10, T = 100, batch 32, LocalZO δ = 0.2 (as suites/digits_spiking.yaml), one
thread. LocalZO runs twice: with the compiled Philox bound (kernels/philox_cpu.py) and without it
(the PyTorch stream on every entry of the reach band, the path before the bound existed). Rounds
interleave the three so that a shared machine's load hits all alike; medians over all timed steps.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/localzo_cpu_step.py
"""

from __future__ import annotations

import statistics
import time

import torch

from snnbench.config import DatasetSpec
from snnbench.data.registry import load_dataset
from snnbench.kernels import philox_cpu
from snnbench.training.snn_mlp import SpikingMLP, config_for, training_method
from snnbench.training.sparse_train import batches

torch.set_num_threads(1)
bundle = load_dataset(DatasetSpec.model_validate("digits_spiking"))
model = SpikingMLP(config_for("digits_spiking", 64, 10, {"hidden": 100}), generator=torch.Generator().manual_seed(0))
data = list(batches(bundle.train, 32, 100, torch.device("cpu"), limit=10))
surrogate = training_method("surrogate", {"surrogate": "fast_sigmoid", "width": 10})
localzo = training_method("localzo", {"delta": 0.2})
reachable = philox_cpu.reachable
runs = {
    "dense surrogate": (surrogate, reachable),
    "localzo": (localzo, reachable),
    "localzo without the bound": (localzo, lambda *args: None),
}
times: dict[str, list[float]] = {name: [] for name in runs}
for rnd in range(5):
    for name, (method, bound) in runs.items():
        philox_cpu.reachable = bound
        for k, (x, y) in enumerate(data):
            t0 = time.perf_counter()
            loss = model.loss(model(x, method, seed=k), y)
            model.zero_grad()
            loss.backward()
            if rnd:  # the first round warms up (numba compile, allocator)
                times[name].append(time.perf_counter() - t0)
philox_cpu.reachable = reachable
dense = statistics.median(times["dense surrogate"])
for name, ts in times.items():
    ms = statistics.median(ts)
    print(f"{name:26s} median step {1e3 * ms:6.1f} ms   dense / this = {dense / ms:.2f}")
