"""Triton kernels of snnbench, installed as ``snnbench.kernels``.

Each operation has one shape: ``_x_kernel`` Triton kernels, ``x_forward``/``x_backward`` host
functions that validate and launch, one ``torch.autograd.Function`` and a PyTorch reference with the
same semantics (the test oracle and the CPU path); a small op keeps it in one module (``ftbc``), the
neuron and sparse LIF ops spread it over modules by job. Device functions several kernels share live beside
their PyTorch twins (``surrogates``, ``localzo``), host helpers in ``common``; the file map is in
docs/kernels.md. Modules import each other's public names only, and nothing of the rest of snnbench.
"""

from .neuron import multistep_if, multistep_lif  # noqa: E402,F401

from .ftbc import ftbc_stats_bytes, ftbc_stats_forward, ftbc_stats_reference  # noqa: E402,F401

from .sparse_backward import (  # noqa: E402,F401
    ActiveSet,
    SparseLIFStackFunction,
    SpikeRule,
    lif_record_forward,
    sparse_input_grad,
    sparse_weight_grad,
)
