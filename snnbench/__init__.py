"""snnbench: a Triton-accelerated benchmark suite for spiking neural networks.

``import snnbench`` is cheap: the API and the kernels load on first use, so the command line and a
records reader never import torch or Triton for nothing.

    suite = snnbench.load_suite("suites/digits.yaml")
    frame = snnbench.run(suite, results_dir="build/nb")      # tidy: one row per record × metric × T
    frame.pivot_table(index="method", columns="T", values="value", aggfunc="mean")
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version as _dist_version
from typing import Any

try:
    __version__ = _dist_version("snnbench")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

_API = ("load_suite", "run", "load_results", "compare", "SuiteError")
_KERNELS = (
    "multistep_if",
    "multistep_lif",
    "ftbc_stats_forward",
    "ftbc_stats_reference",
    "ftbc_stats_bytes",
    "sparse_input_grad",
    "sparse_weight_grad",
    "lif_record_forward",
    "SparseLIFStackFunction",
    "ActiveSet",
    "SpikeRule",
)

__all__ = ["__version__", *_API, *_KERNELS]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module("snnbench.api"), name)
    if name in _KERNELS:
        return getattr(import_module("snnbench.kernels"), name)
    raise AttributeError(f"module 'snnbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
