"""Triton kernels of snnbench, installed as ``snnbench.kernels``.

Each module holds one operation: ``_x_kernel`` Triton kernels, ``x_forward``/``x_backward`` host
functions that validate and launch, one ``torch.autograd.Function`` and a PyTorch reference with the
same semantics (the test oracle and the CPU path). Nothing here imports the rest of snnbench.
"""
