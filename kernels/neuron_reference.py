"""The multi-step neuron in plain PyTorch: the test oracle of the fused kernels and their CPU path.

The same time loop as the kernels (semantics in :mod:`kernels.neuron`), the same fp32 operations in
the same order, and a spike function whose backward is the chosen surrogate or LocalZO with the
kernels' z; autograd differentiates the rest.
"""

from __future__ import annotations


import torch

from .localzo import localzo_gain_reference
from .neuron_options import NeuronCall, NeuronOptions
from .surrogates import surrogate_grad_reference

__all__ = ["neuron_reference"]


class _Heaviside(torch.autograd.Function):
    """s = H(u) forward; the chosen surrogate (or LocalZO with the kernel's z) backward."""

    @staticmethod
    def forward(ctx, u, opts: NeuronOptions, seed: int, t: int):
        ctx.save_for_backward(u)
        ctx.opts, ctx.seed, ctx.t = opts, seed, t
        return ((u > 0) if opts.reset == "subtract" else (u >= 0)).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        opts = ctx.opts
        if opts.surrogate == "localzo":
            index = torch.arange(u.numel(), device=u.device).view(u.shape)
            sg = localzo_gain_reference(u, ctx.seed, ctx.t, index, opts.delta, opts.q, opts.distribution)
        else:
            sg = surrogate_grad_reference(u, opts.surrogate, opts.alpha)
        return grad * sg, None, None, None


def _per_channel_view(p: torch.Tensor, step_shape: torch.Size) -> torch.Tensor:
    """A [C] (or one-value) parameter shaped to broadcast over one step [B, C, ...]."""
    if p.numel() == 1:
        return p.reshape(())
    return p.reshape((-1,) + (1,) * (len(step_shape) - 2))


def neuron_reference(x: torch.Tensor, opts: NeuronOptions, call: NeuronCall) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch time loop with the kernels' semantics; autograd differentiates it."""
    thresh_t, bias_t, v_init_t, seed = call
    step_shape = x.shape[1:]
    theta = opts.threshold if thresh_t is None else _per_channel_view(thresh_t, step_shape)
    if v_init_t is not None:
        v = v_init_t.to(torch.float32).expand(step_shape)
    elif opts.v_init is None:
        v = torch.zeros(step_shape, dtype=torch.float32, device=x.device) + torch.as_tensor(theta) * 0.5
    else:
        v = torch.full(step_shape, opts.v_init, dtype=torch.float32, device=x.device)
    outs = []
    pending = None  # θ·s_{t-1} of the subtract reset
    for t in range(x.shape[0]):
        # Same order as the kernel's (β·v + leak - b) + γ·x, without the identity ops of IF
        # (β = γ = 1, leak = 0): this loop is the CPU path of every converted network.
        h = v if opts.beta == 1.0 else opts.beta * v
        if opts.leak != 0.0:
            h = h + opts.leak
        after = opts.bias_order == "after_input"
        if bias_t is not None and not after:
            h = h - _per_channel_view(bias_t[t], step_shape)
        x_t = x[t].to(torch.float32)
        h = h + (x_t if opts.gain == 1.0 else opts.gain * x_t)
        if bias_t is not None and after:
            h = h - _per_channel_view(bias_t[t], step_shape)
        if pending is not None:
            h = h - pending
        s = _Heaviside.apply(h - theta, opts, seed, t)
        s_reset = s.detach() if opts.detach_reset else s
        if opts.reset == "hard":
            v = h * (1.0 - s_reset) + opts.v_reset * s_reset
        elif opts.reset == "soft":
            v = h - theta * s_reset
        else:
            v = h
            pending = theta * s_reset
        if opts.output == "uint8":
            outs.append(s.detach().to(torch.uint8))
        elif opts.output == "scaled":
            outs.append((theta * s).to(x.dtype))
        else:
            outs.append(s.to(x.dtype))
    return torch.stack(outs), v
