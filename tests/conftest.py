"""Test-wide settings. Triton must be told to interpret before it is first imported."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
# Tests run on small CPU budgets; keep torch from oversubscribing the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")

