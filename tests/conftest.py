"""Test-wide settings. Triton must be told to interpret before it is first imported."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
# Tests run on small CPU budgets; keep torch from oversubscribing the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Sweeps run their cells in this process unless a test asks for workers (tests/test_parallel.py).
os.environ.setdefault("SNNBENCH_JOBS", "1")


import torch  # noqa: E402

# Tiny convolutions with several OpenMP threads run far slower on a loaded 2-core machine.
torch.set_num_threads(1)
