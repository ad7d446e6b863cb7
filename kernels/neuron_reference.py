"""The multi-step neuron in plain PyTorch: the CPU path of the fused kernels and their test oracle.

Two forms with the kernels' semantics (:mod:`kernels.neuron`) and the same fp32 operations in the same
order, so their spikes are identical:

- :func:`neuron_reference` — the CPU path every CPU user, the demo and CI run. Its forward walks t with
  buffers allocated once, spikes as 0/1 floats, and keeps ``u_t``; its backward is written by hand
  (``_ReferenceScan``): the kernel's reverse recurrence a step at a time, so that one step's tensors
  stay in cache. Autograd through the loop was 2× slower than SpikingJelly's hand-written CPU
  backward; this path is 1.7–1.9× faster than it (``snnbench bench layer --device cpu``).
- :func:`neuron_reference_autograd` — the same loop differentiated by autograd through a spike
  function whose backward is the surrogate (or LocalZO with the kernels' z): the independent oracle
  the hand-written backward is tested against (threshold and bias are constants in both, as in the
  kernels: :func:`kernels.neuron_options.neuron_call` refuses them requiring a gradient).
"""

from __future__ import annotations

from typing import Optional

import torch

from .localzo import localzo_gain_reference
from .localzo_banded import localzo_gain_banded
from .neuron_options import NeuronCall, NeuronOptions
from .surrogates import surrogate_grad_reference

__all__ = ["neuron_reference", "neuron_reference_autograd"]


def _per_channel_view(p: torch.Tensor, step_shape: torch.Size) -> torch.Tensor:
    """A [C] (or one-value) parameter shaped to broadcast over one step [B, C, ...]."""
    if p.numel() == 1:
        return p.reshape(())
    return p.reshape((-1,) + (1,) * (len(step_shape) - 2))


def _theta(opts: NeuronOptions, call: NeuronCall, step_shape: torch.Size):
    return opts.threshold if call.thresh is None else _per_channel_view(call.thresh, step_shape)


def _initial_v(x: torch.Tensor, opts: NeuronOptions, call: NeuronCall, theta) -> torch.Tensor:
    step_shape = x.shape[1:]
    if call.v_init is not None:
        return call.v_init.to(torch.float32).expand(step_shape)
    if opts.v_init is None:
        return torch.zeros(step_shape, dtype=torch.float32, device=x.device) + torch.as_tensor(theta) * 0.5
    return torch.full(step_shape, opts.v_init, dtype=torch.float32, device=x.device)


def _surrogate(u: torch.Tensor, opts: NeuronOptions, seed: int, t: int) -> torch.Tensor:
    """σ'(u_t): the dense surrogate, or LocalZO with the kernel's z for step t."""
    if opts.surrogate == "localzo":
        index = torch.arange(u.numel(), device=u.device).view(u.shape)
        return localzo_gain_reference(u, seed, t, index, opts.delta, opts.q, opts.distribution)
    return surrogate_grad_reference(u, opts.surrogate, opts.alpha)


# σ' of several steps at once when a step is small: per step, a [B, H] of a few thousand neurons costs
# more in op dispatch than in arithmetic (the demo's spiking MLP: 62 % of its backward). Blocks of
# about this many elements stay in cache for the recurrence; steps larger than that go one by one.
_SURROGATE_BLOCK = 1 << 16


def _surrogate_steps(u_steps: torch.Tensor, opts: NeuronOptions, seed: int, first_step: int) -> torch.Tensor:
    """σ'(u_t) of steps ``first_step…`` of ``u_steps[k, ...]`` at once: :func:`_surrogate`'s values
    (elementwise ops; LocalZO's z is a function of (seed, t, flat index), computed only where it can
    reach, :mod:`kernels.localzo_banded`)."""
    if opts.surrogate != "localzo":
        return surrogate_grad_reference(u_steps, opts.surrogate, opts.alpha)
    k = u_steps.shape[0]
    flat = u_steps.reshape(k, 1, -1)  # neuron b·H + j with B = 1: the flat index within a step
    g = localzo_gain_banded(flat, seed, opts.delta, opts.q, opts.distribution, first_step)
    return g.view(u_steps.shape)


# --------------------------------------------------------------------------------------------------
# The CPU path: forward with buffers, hand-written backward
# --------------------------------------------------------------------------------------------------


def _scan_forward(
    x: torch.Tensor, opts: NeuronOptions, call: NeuronCall, save: bool
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """(out, v_final, u[T, ...] fp32 or None): the loop of :func:`neuron_reference_autograd`, its
    operations done into buffers allocated once, spikes as 0/1 floats (bool tensors take the CPU's
    slow unvectorised paths): the same values, so the same spikes."""
    T, step_shape = x.shape[0], x.shape[1:]
    theta = torch.as_tensor(_theta(opts, call, step_shape), dtype=torch.float32, device=x.device)
    v = _initial_v(x, opts, call, theta).clone()
    h, gx, spike = (torch.empty(step_shape, dtype=torch.float32, device=x.device) for _ in range(3))
    u_all = torch.empty(x.shape, dtype=torch.float32, device=x.device) if save else None
    u_buf = None if save else torch.empty_like(h)
    out = torch.empty(x.shape, dtype=torch.uint8 if opts.output == "uint8" else x.dtype, device=x.device)
    fire = torch.gt if opts.reset == "subtract" else torch.ge
    pending = torch.zeros_like(h) if opts.reset == "subtract" else None  # θ·s_{t-1}
    # RTS takes its bias off after the input, QCFS/FTBC before it: the order changes rounding.
    bias_before = call.bias is not None and opts.bias_order != "after_input"
    bias_after = call.bias is not None and not bias_before
    for t in range(T):
        if opts.beta != 1.0:
            torch.mul(v, opts.beta, out=h)
        else:
            h.copy_(v)
        if opts.leak != 0.0:
            h.add_(opts.leak)
        if bias_before:
            h.sub_(_per_channel_view(call.bias[t], step_shape))
        if opts.gain == 1.0:
            h.add_(x[t])  # an fp32 add of a bf16/fp16 x_t converts it exactly, as x_t.to(fp32) does
        else:
            h.add_(gx.copy_(x[t]).mul_(opts.gain))  # converted first: γ·x_t is an fp32 product
        if bias_after:
            h.sub_(_per_channel_view(call.bias[t], step_shape))
        if pending is not None and t > 0:
            h.sub_(pending)
        u = u_all[t] if save else u_buf
        torch.sub(h, theta, out=u)
        fire(u, 0.0, out=spike)
        out[t] = spike if opts.output != "scaled" else spike * theta
        if opts.reset == "hard":  # h·(1 - s) + v_reset·s
            torch.addcmul(h, h, spike, value=-1.0, out=v)
            if opts.v_reset != 0.0:
                v.add_(spike, alpha=opts.v_reset)
        elif opts.reset == "soft":  # h - θ·s
            torch.addcmul(h, spike, theta, value=-1.0, out=v)
        else:
            v, h = h, v
            torch.mul(spike, theta, out=pending)
    return out, v, u_all


def _reset_factor(u: torch.Tensor, sg: torch.Tensor, opts: NeuronOptions, theta) -> Optional[torch.Tensor]:
    """q_t, the factor of the carried ∂L/∂v on ∂L/∂h_t through the reset (None: 1), as the kernel's
    backward: 1 - s (+ (v_reset - h)·σ') hard, 1 (- θ·σ') soft, 1 subtract."""
    if opts.reset == "hard":
        q = torch.lt(u, 0.0, out=torch.empty_like(u))  # as floats: bool tensors are slow on a CPU
        if not opts.detach_reset:
            q.addcmul_(torch.add(u, theta).sub_(opts.v_reset), sg, value=-1.0)
        return q
    if opts.reset == "soft" and not opts.detach_reset:
        return torch.mul(sg, theta).neg_().add_(1.0)
    return None


def _scan_backward(grad_out, grad_v_final, u_all: torch.Tensor, opts: NeuronOptions, call: NeuronCall, x_dtype):
    """(∂L/∂x, ∂L/∂h_0 fp32): the kernel's reverse recurrence, a step at a time so that one step's
    tensors stay in cache (whole-[T, N] passes per term were memory-bound)::

        gh_t = ∂L/∂s_t·σ'_t (·θ scaled) + β·gh_{t+1}·q_t (- θ·σ'_t·gh_{t+1} subtract)
    """
    T, step_shape = u_all.shape[0], u_all.shape[1:]
    theta = torch.as_tensor(_theta(opts, call, step_shape), dtype=torch.float32, device=u_all.device)
    grad_x = torch.empty(u_all.shape, dtype=x_dtype, device=u_all.device)
    gh, gh_next = (torch.empty(step_shape, dtype=torch.float32, device=u_all.device) for _ in range(2))
    per_block = max(1, _SURROGATE_BLOCK // max(1, step_shape.numel()))
    block_start, sg_block = T, None
    for t in range(T - 1, -1, -1):
        u = u_all[t]
        if t < block_start:  # the block of steps ending at t
            block_start = max(0, t + 1 - per_block)
            sg_block = _surrogate_steps(u_all[block_start : t + 1], opts, call.seed, block_start)
        sg = sg_block[t - block_start]
        q = _reset_factor(u, sg, opts, theta)
        if grad_out is None:
            gh.zero_()
        else:
            torch.mul(grad_out[t], sg, out=gh)
            if opts.output == "scaled":
                gh.mul_(theta)
        carried = grad_v_final if t == T - 1 else gh_next  # ∂L/∂v_t is β·gh_{t+1} before the last step
        scale = 1.0 if t == T - 1 else opts.beta
        if carried is not None and q is None:
            gh.add_(carried, alpha=scale)
        elif carried is not None:
            gh.addcmul_(carried, q, value=scale)
        if opts.reset == "subtract" and not opts.detach_reset and t < T - 1:
            gh.addcmul_(gh_next, sg * theta, value=-1.0)
        if x_dtype == torch.float32:
            torch.mul(gh, opts.gain, out=grad_x[t])
        else:
            grad_x[t] = gh * opts.gain
        gh, gh_next = gh_next, gh
    return grad_x, gh_next


class _ReferenceScan(torch.autograd.Function):
    """The CPU path's forward and hand-written backward; differentiable w.r.t. ``x`` and a tensor
    ``v_init`` (passed again as an argument so autograd sees it), as the kernels' function."""

    @staticmethod
    def forward(ctx, x, v_init_t, opts, call):
        out, v_final, u_all = _scan_forward(x, opts, call, save=True)
        ctx.save_for_backward(u_all)
        ctx.opts, ctx.call, ctx.x_dtype = opts, call, x.dtype
        ctx.set_materialize_grads(False)  # uint8 spikes never train (refused by neuron_call)
        return out, v_final

    @staticmethod
    def backward(ctx, grad_out, grad_v_final):
        (u_all,) = ctx.saved_tensors
        opts = ctx.opts
        grad_x, gh0 = _scan_backward(grad_out, grad_v_final, u_all, opts, ctx.call, ctx.x_dtype)
        grad_v0 = None
        if ctx.needs_input_grad[1]:
            v_init = ctx.call.v_init
            grad_v0 = (opts.beta * gh0).sum_to_size(v_init.shape).to(v_init.dtype)
        return grad_x, grad_v0, None, None


def neuron_reference(x: torch.Tensor, opts: NeuronOptions, call: NeuronCall) -> tuple[torch.Tensor, torch.Tensor]:
    """The CPU path: ``(out, v_final)`` with the hand-written backward when a gradient is wanted."""
    wants_grad = x.requires_grad or (call.v_init is not None and call.v_init.requires_grad)
    if not torch.is_grad_enabled() or not wants_grad:
        out, v_final, _ = _scan_forward(x, opts, call, save=False)
        return out, v_final
    return _ReferenceScan.apply(x, call.v_init, opts, call)


# --------------------------------------------------------------------------------------------------
# The oracle: autograd through the loop
# --------------------------------------------------------------------------------------------------


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
        return grad * _surrogate(u, ctx.opts, ctx.seed, ctx.t), None, None, None


def neuron_reference_autograd(
    x: torch.Tensor, opts: NeuronOptions, call: NeuronCall
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch time loop with the kernels' semantics; autograd differentiates it."""
    step_shape = x.shape[1:]
    theta = _theta(opts, call, step_shape)
    v = _initial_v(x, opts, call, theta)
    outs = []
    pending = None  # θ·s_{t-1} of the subtract reset
    after = opts.bias_order == "after_input"
    for t in range(x.shape[0]):
        # Same order as the kernel's (β·v + leak - b) + γ·x, without the identity ops of IF
        # (β = γ = 1, leak = 0).
        h = v if opts.beta == 1.0 else opts.beta * v
        if opts.leak != 0.0:
            h = h + opts.leak
        if call.bias is not None and not after:
            h = h - _per_channel_view(call.bias[t], step_shape)
        x_t = x[t].to(torch.float32)
        h = h + (x_t if opts.gain == 1.0 else opts.gain * x_t)
        if call.bias is not None and after:
            h = h - _per_channel_view(call.bias[t], step_shape)
        if pending is not None:
            h = h - pending
        s = _Heaviside.apply(h - theta, opts, call.seed, t)
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
