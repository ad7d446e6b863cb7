"""FTBC calibration statistics: the teacher-forced IF recurrence and its per-step, per-channel error sums.

For one IF layer with input currents ``x[T, B, C, ...]``, ANN activation ``a[B, C, ...]`` and threshold θ
(scalar or per channel), every neuron runs (docs/design.md §4)::

    v = θ/2
    for t in 0..T-1:
        u  = v + x_t               # (v - b_t[c]) + x_t with an own bias (the iterative variant)
        s  = θ·H(u − θ)            # H(z) = 1 for z >= 0, as in the IF neuron
        e  = s − a                 # error against the ANN
        u' = u − e                 # teacher forcing: the membrane continues as if it had emitted a
        v  = u' − θ·H(u' − θ)
        out[t, c] += e

and the result is ``out[T, C]``, the error summed over batch and space (divide by B·H·W for the mean).
The recurrence never uses the spikes of other neurons, so one program owns a tile of neurons for all T
steps, keeps ``v`` and ``a`` in registers and reads each element of ``x`` exactly once. Each program
writes its per-channel partial sums to its own slot; a torch sum over the slots finishes the reduction,
so the result is deterministic (no atomics).

There is no backward: calibration is forward-only, so this operation has no ``torch.autograd.Function``.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
import triton
import triton.language as tl

from .common import resolve_backend

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _ftbc_stats_kernel(
    x_ptr,
    a_ptr,
    thresh_ptr,
    bias_ptr,
    v_init_ptr,
    v_out_ptr,
    partial_ptr,
    T,
    C,
    S,
    N,
    step_stride,
    num_n_blocks,
    PER_CHANNEL_THRESH: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_V_INIT: tl.constexpr,
    STORE_V: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    # Tile: BLOCK_C channels × BLOCK_N of the (batch, space) positions of those channels.
    pid_c = tl.program_id(0)
    pid_n = tl.program_id(1)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    c_ok = c < C
    mask = c_ok[:, None] & (n < N)[None, :]
    b = n // S
    s = n - b * S
    offs = b[None, :] * (C * S) + c[:, None] * S + s[None, :]

    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if PER_CHANNEL_THRESH:
        theta = tl.load(thresh_ptr + c, mask=c_ok, other=1.0).to(tl.float32)[:, None]
    else:
        theta = tl.load(thresh_ptr).to(tl.float32)
    if HAS_V_INIT:  # continuing a simulation split into chunks of time
        v = tl.load(v_init_ptr + offs, mask=mask, other=0.0)
    else:
        v = tl.zeros([BLOCK_C, BLOCK_N], dtype=tl.float32) + theta * 0.5

    x_ptrs = x_ptr + offs  # pointer arithmetic is 64-bit: T·B·C·S may exceed 2**31
    out_ptrs = partial_ptr + pid_n * C + c
    for t in range(T):
        x = tl.load(x_ptrs, mask=mask, other=0.0).to(tl.float32)
        if HAS_BIAS:  # bias before input: the IF neuron's floating-point order
            u = (v - tl.load(bias_ptr + t * C + c, mask=c_ok, other=0.0)[:, None]) + x
        else:
            u = v + x
        spike = tl.where(u >= theta, theta, 0.0)
        err = spike - a
        u_forced = u - err
        v = u_forced - tl.where(u_forced >= theta, theta, 0.0)
        tl.store(out_ptrs, tl.sum(tl.where(mask, err, 0.0), axis=1), mask=c_ok)
        x_ptrs += step_stride
        out_ptrs += num_n_blocks * C
    if STORE_V:
        tl.store(v_out_ptr + offs, v, mask=mask)


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _tile(channels: int, spatial: int, interpreted: bool) -> tuple[int, int]:
    """Block sizes: enough contiguous elements per row for coalesced loads, ~2K elements per tile."""
    elements = 128 if interpreted else 2048
    if spatial >= 64:
        block_c = 1
    else:
        # Small spatial extent: widen over channels so that consecutive addresses stay in one tile.
        block_c = min(_next_pow2(channels), _next_pow2(-(-64 // spatial)), elements // 16)
    block_n = max(16, elements // block_c)
    return block_c, block_n


def _as_thresh(thresh: Union[float, torch.Tensor], device: torch.device) -> torch.Tensor:
    return torch.as_tensor(thresh, dtype=torch.float32, device=device).reshape(-1)


def _validate(
    x: torch.Tensor,
    a: torch.Tensor,
    thresh: torch.Tensor,
    bias: Optional[torch.Tensor],
    v_init: Optional[torch.Tensor],
    check_finite: bool,
) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 3:
        raise ValueError(f"x must be a tensor [T, B, C, ...] with at least 3 dims, got {getattr(x, 'shape', x)}")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"x is on {x.device.type}, which is not supported; expected a cpu or cuda tensor")
    if x.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"x must be float32, float16 or bfloat16, got {x.dtype}")
    if not isinstance(a, torch.Tensor) or a.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"a must be a float32, float16 or bfloat16 tensor, got {getattr(a, 'dtype', type(a))}")
    if tuple(a.shape) != tuple(x.shape[1:]):
        raise ValueError(f"a must have the shape of one step of x {tuple(x.shape[1:])}, got {tuple(a.shape)}")
    if a.device != x.device:
        raise ValueError(f"a is on {a.device} but x is on {x.device}")
    if x.shape[0] < 1 or x[0].numel() == 0:
        raise ValueError(f"x must have at least one step and one element, got shape {tuple(x.shape)}")
    if x[0].numel() >= 2**31:
        raise ValueError(f"one step of x must have fewer than 2**31 elements, got {x[0].numel()}")
    channels = x.shape[2]
    if thresh.numel() not in (1, channels):
        raise ValueError(f"thresh must have 1 or C={channels} elements, got {thresh.numel()}")
    if bias is not None:
        if tuple(bias.shape) != (x.shape[0], channels):
            raise ValueError(f"bias must have shape [T, C] = {(x.shape[0], channels)}, got {tuple(bias.shape)}")
        if bias.device != x.device:
            raise ValueError(f"bias is on {bias.device} but x is on {x.device}")
    if v_init is not None:
        if not isinstance(v_init, torch.Tensor) or tuple(v_init.shape) != tuple(x.shape[1:]):
            raise ValueError(f"v_init must have the shape of one step of x {tuple(x.shape[1:])}")
        if v_init.device != x.device:
            raise ValueError(f"v_init is on {v_init.device} but x is on {x.device}")
    # One host sync for every parameter tensor (calibration runs a few calls per layer, not a hot loop).
    flags = torch.stack([
        (torch.isfinite(thresh) & (thresh > 0)).all(),
        torch.isfinite(bias).all() if bias is not None else torch.ones((), dtype=torch.bool, device=x.device),
        torch.isfinite(v_init).all() if v_init is not None else torch.ones((), dtype=torch.bool, device=x.device),
    ]).tolist()
    if not flags[0]:
        raise ValueError(f"thresh must be finite and positive, got {thresh.tolist()[:8]}")
    if not flags[1]:
        raise ValueError("bias must be finite")
    if not flags[2]:
        raise ValueError("v_init must be finite")
    if check_finite:
        # Off by default: a full read of x costs as much as the kernel itself.
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or infinity")
        if not bool(torch.isfinite(a).all()):
            raise ValueError("a contains NaN or infinity")


def ftbc_stats_reference(
    x: torch.Tensor,
    a: torch.Tensor,
    thresh: Union[float, torch.Tensor],
    bias: Optional[torch.Tensor] = None,
    v_init: Optional[torch.Tensor] = None,
    return_state: bool = False,
) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """PyTorch oracle: error sums ``[T, C]`` (float32) of the teacher-forced recurrence."""
    theta = _as_thresh(thresh, x.device)
    view = (1, -1) + (1,) * (x.dim() - 3)
    theta = theta.reshape(()) if theta.numel() == 1 else theta.reshape(view)
    a32 = a.float()
    reduce_dims = [0] + list(range(2, a.dim()))
    v = torch.zeros_like(a32) + theta / 2 if v_init is None else v_init.float().clone()
    sums = torch.empty(x.shape[0], x.shape[2], dtype=torch.float32, device=x.device)
    for t in range(x.shape[0]):
        u = v if bias is None else v - bias[t].float().reshape(view)
        u = u + x[t].float()
        err = torch.where(u >= theta, theta, torch.zeros_like(u)) - a32
        u_forced = u - err
        v = u_forced - torch.where(u_forced >= theta, theta, torch.zeros_like(u_forced))
        sums[t] = err.sum(reduce_dims)
    return (sums, v) if return_state else sums


def ftbc_stats_forward(
    x: torch.Tensor,
    a: torch.Tensor,
    thresh: Union[float, torch.Tensor],
    bias: Optional[torch.Tensor] = None,
    v_init: Optional[torch.Tensor] = None,
    *,
    return_state: bool = False,
    backend: str = "auto",
    check_finite: bool = False,
) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Error sums ``[T, C]`` (float32) of FTBC's teacher-forced recurrence over ``x[T, B, C, ...]``.

    ``a`` is the ANN activation ``[B, C, ...]``; ``thresh`` a float, a 1-element or a ``[C]`` tensor;
    ``bias`` an optional ``[T, C]`` bias subtracted from the membrane (the layer's own bias, used by the
    iterative variant). ``v_init`` (``[B, C, ...]``, default θ/2) and ``return_state=True`` (which
    also returns the final teacher-forced membrane) let a long simulation run in chunks of time.
    ``backend``: "auto" (Triton for CUDA tensors, else the PyTorch reference), "triton" or "torch".
    """
    device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
    theta = _as_thresh(thresh, device)
    if bias is not None:
        bias = bias.to(torch.float32)
    _validate(x, a, theta, bias, v_init, check_finite)
    if resolve_backend(backend, x) == "torch":
        return ftbc_stats_reference(x, a, theta, bias, v_init, return_state)

    steps, channels = x.shape[0], x.shape[2]
    spatial = 1
    for d in x.shape[3:]:
        spatial *= d
    per_channel_n = x.shape[1] * spatial
    x = x.contiguous()
    a = a.contiguous()
    interpreted = not x.is_cuda
    block_c, block_n = _tile(channels, spatial, interpreted)
    grid = (triton.cdiv(channels, block_c), triton.cdiv(per_channel_n, block_n))
    # NaN-filled: a slot the kernel failed to write poisons the result instead of passing unnoticed.
    partial = torch.full((steps, grid[1], channels), float("nan"), dtype=torch.float32, device=x.device)
    unused = theta  # any valid pointer for an argument a constexpr flag switches off
    bias_arg = bias.contiguous() if bias is not None else unused
    v_init_arg = v_init.to(torch.float32).contiguous() if v_init is not None else unused
    v_out = torch.full(x.shape[1:], float("nan"), dtype=torch.float32, device=x.device) if return_state else unused
    _ftbc_stats_kernel[grid](
        x,
        a,
        theta,
        bias_arg,
        v_init_arg,
        v_out,
        partial,
        steps,
        channels,
        spatial,
        per_channel_n,
        x[0].numel(),
        grid[1],
        PER_CHANNEL_THRESH=theta.numel() > 1,
        HAS_BIAS=bias is not None,
        HAS_V_INIT=v_init is not None,
        STORE_V=return_state,
        BLOCK_C=block_c,
        BLOCK_N=block_n,
        num_warps=4,
    )
    sums = partial.sum(1)
    return (sums, v_out) if return_state else sums


def ftbc_stats_bytes(x: torch.Tensor, a: torch.Tensor) -> int:
    """Bytes the kernel must move: x and a read once (the [T, C] partial sums are negligible)."""
    return x.numel() * x.element_size() + a.numel() * a.element_size()
