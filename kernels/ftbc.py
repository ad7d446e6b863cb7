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
steps, keeps ``v`` and ``a`` in registers and reads each element of ``x`` exactly once (the next step's
tile is loaded before the current step is computed, so one load is always in flight).

Parallelism comes only from neurons (T is sequential), so a small late layer (512 channels × 2×2 × batch
200 = 0.4 M neurons) in tiles of 2048 gives 200 programs: too few to keep an H200's 132 SMs streaming.
:func:`ftbc_stats_plan` therefore *splits* such layers into smaller tiles until enough warps are
resident (or a floor of 256 elements is reached), first narrowing the channel block while each batch row
stays a 64-byte run, then the block of (batch, space) positions. Each program writes its per-step,
per-channel partial sum to its own slot of ``partial[T, slots, C]``; a torch sum over the slots (fixed
order, no atomics) finishes the reduction, so the result does not depend on scheduling.

There is no backward: calibration is forward-only, so this operation has no ``torch.autograd.Function``.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional, Union

import torch
import triton
import triton.language as tl

from .common import check_finite as _check_finite_params
from .common import launch
from .common import finite_scalar, interpreting, resolve_backend

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Tiling (elements per program): the unsplit tile, the floor a split stops at, on a card and in the
# interpreter (which runs programs one after another: small tiles keep tests fast).
_TILE, _TILE_FLOOR = 2048, 256
_INTERP_TILE, _INTERP_TILE_FLOOR = 128, 16
_WARPS_PER_SM = 32  # resident warps per SM a split aims for: half an H100/H200 SM's 64
_INTERP_TARGET_WARPS = 4
_ROW_RUN = (
    16  # contiguous elements (64 B of fp32, two sectors) a tile keeps per batch row when the channel block narrows
)
_MIN_BLOCK_N = 8


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
    x_next = tl.load(x_ptrs, mask=mask, other=0.0)
    for t in range(T):
        x = x_next.to(tl.float32)
        x_ptrs += step_stride
        # Prefetch step t+1 before computing step t: its latency hides behind this step's work.
        x_next = tl.load(x_ptrs, mask=mask & (t + 1 < T), other=0.0)
        if HAS_BIAS:  # bias before input: the IF neuron's floating-point order
            u = (v - tl.load(bias_ptr + t * C + c, mask=c_ok, other=0.0)[:, None]) + x
        else:
            u = v + x
        spike = tl.where(u >= theta, theta, 0.0)
        err = spike - a
        u_forced = u - err
        v = u_forced - tl.where(u_forced >= theta, theta, 0.0)
        tl.store(out_ptrs, tl.sum(tl.where(mask, err, 0.0), axis=1), mask=c_ok)
        out_ptrs += num_n_blocks * C
    if STORE_V:
        tl.store(v_out_ptr + offs, v, mask=mask)


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _spatial(x: torch.Tensor) -> int:
    return math.prod(x.shape[3:])


class StatsPlan(NamedTuple):
    """How one call tiles ``x[T, B, C, ...]``: ``grid = (channel blocks, position blocks)``; every
    position block is one slot of the partial sums the second stage adds up."""

    block_c: int
    block_n: int
    grid: tuple[int, int]
    num_warps: int
    split: bool  # smaller tiles than the unsplit rule gives, for more programs

    @property
    def programs(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def slots(self) -> int:
        return self.grid[1]


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _warps(block_c: int, block_n: int) -> int:
    # A wide channel block (32+ channels × 32+ positions) holds its per-channel θ, bias and sums
    # beside the tile: with 4 warps it spilled a register on sm_90 (Triton 3.6, the compile check).
    if block_c >= 32 and block_c * block_n >= 1024:
        return 8
    return max(1, min(4, block_c * block_n // 128))


def ftbc_stats_plan(x: torch.Tensor, split: Optional[bool] = None) -> StatsPlan:
    """The tiling of a Triton call on ``x[T, B, C, ...]``.

    ``split=None`` splits when the unsplit tiles would leave fewer than 32 warps per SM; ``True``
    splits down to the floor tile (the most programs), ``False`` never splits.
    """
    if x.is_cuda and not interpreting():
        index = torch.cuda.current_device() if x.device.index is None else x.device.index
        return tiling(x.shape[2], _spatial(x), x.shape[1], _WARPS_PER_SM * _sm_count(index), split)
    # The interpreter runs programs one after another: aim for a handful, so tests stay fast and
    # still meet both outcomes of the heuristic.
    return tiling(x.shape[2], _spatial(x), x.shape[1], _INTERP_TARGET_WARPS, split, _INTERP_TILE, _INTERP_TILE_FLOOR)


def tiling(
    channels: int,
    spatial: int,
    batch: int,
    target_warps: int,
    split: Optional[bool],
    tile: int = _TILE,
    floor: int = _TILE_FLOOR,
) -> StatsPlan:
    """:func:`ftbc_stats_plan` for a layer's sizes and the warps to keep busy (the size heuristic alone;
    on a card ``target_warps`` = 32 × its SM count)."""
    positions = batch * spatial
    if spatial >= 64:
        block_c = 1
    else:
        # Small spatial extent: widen over channels so that consecutive addresses stay in one tile.
        block_c = min(_next_pow2(channels), _next_pow2(-(-64 // spatial)), tile // 16)
    block_n = max(16, tile // block_c)

    def grid(bc: int, bn: int) -> tuple[int, int]:
        return triton.cdiv(channels, bc), triton.cdiv(positions, bn)

    bc, bn = block_c, block_n
    while split is not False and bc * bn > floor:
        if split is None and grid(bc, bn)[0] * grid(bc, bn)[1] * _warps(bc, bn) >= target_warps:
            break
        # Narrow the channel block while each batch row stays a 64-byte run, then the positions.
        if bc > 1 and (bc // 2) * spatial >= _ROW_RUN:
            bc //= 2
        elif bn > _MIN_BLOCK_N:
            bn //= 2
        else:
            break
    return StatsPlan(bc, bn, grid(bc, bn), _warps(bc, bn), (bc, bn) != (block_c, block_n))


class StatsArgs(NamedTuple):
    """Validated inputs: θ as an fp32 ``[1]`` or ``[C]`` tensor, the bias in fp32."""

    x: torch.Tensor
    a: torch.Tensor
    theta: torch.Tensor
    bias: Optional[torch.Tensor]
    v_init: Optional[torch.Tensor]


def _prepare(x, a, thresh, bias, v_init, check_finite: bool) -> StatsArgs:
    """Every check that needs no data on the host; the finiteness of parameter tensors via
    kernels.common (on CUDA one sync per new tensor or version, none for a layer's own threshold)."""
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
    steps, channels = x.shape[0], x.shape[2]
    to_check: list = []  # (name, given, prepared, positive)
    if isinstance(thresh, torch.Tensor):
        if thresh.device != x.device:
            raise ValueError(f"thresh is on {thresh.device} but x is on {x.device}")
        theta = thresh.detach().to(torch.float32).reshape(-1)
        to_check.append(("thresh", thresh, theta, True))
    else:
        theta = torch.full((1,), finite_scalar("thresh", thresh, positive=True), device=x.device)
    if theta.numel() not in (1, channels):
        raise ValueError(f"thresh must have 1 or C={channels} elements, got {theta.numel()}")
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (steps, channels):
            raise ValueError(
                f"bias must have shape [T, C] = {(steps, channels)}, got {tuple(getattr(bias, 'shape', ()))}"
            )
        if bias.device != x.device:
            raise ValueError(f"bias is on {bias.device} but x is on {x.device}")
        bias_t = bias.detach().to(torch.float32)
        to_check.append(("bias", bias, bias_t, False))
        bias = bias_t
    if v_init is not None:
        if not isinstance(v_init, torch.Tensor) or tuple(v_init.shape) != tuple(x.shape[1:]):
            raise ValueError(f"v_init must have the shape of one step of x {tuple(x.shape[1:])}")
        if v_init.device != x.device:
            raise ValueError(f"v_init is on {v_init.device} but x is on {x.device}")
        to_check.append(("v_init", v_init, v_init.detach(), False))
    _check_finite_params(to_check)
    if check_finite:
        # Off by default: a full read of x costs as much as the kernel itself.
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or infinity")
        if not bool(torch.isfinite(a).all()):
            raise ValueError("a contains NaN or infinity")
    return StatsArgs(x, a, theta, bias, v_init)


def _recurrence_torch(p: StatsArgs, return_state: bool):
    """The PyTorch oracle's time loop, in the kernel's floating-point order."""
    x, a = p.x, p.a
    view = (1, -1) + (1,) * (x.dim() - 3)
    theta = p.theta.reshape(()) if p.theta.numel() == 1 else p.theta.reshape(view)
    a32 = a.float()
    reduce_dims = [0] + list(range(2, a.dim()))
    v = torch.zeros_like(a32) + theta / 2 if p.v_init is None else p.v_init.float().clone()
    sums = torch.empty(x.shape[0], x.shape[2], dtype=torch.float32, device=x.device)
    for t in range(x.shape[0]):
        u = v if p.bias is None else v - p.bias[t].reshape(view)
        u = u + x[t].float()
        err = torch.where(u >= theta, theta, torch.zeros_like(u)) - a32
        u_forced = u - err
        v = u_forced - torch.where(u_forced >= theta, theta, torch.zeros_like(u_forced))
        sums[t] = err.sum(reduce_dims)
    return (sums, v) if return_state else sums


def stats_launch(p: StatsArgs, return_state: bool, plan: StatsPlan):
    """The launch of one call on checked arguments (the compile check drives it with meta tensors)."""
    x = p.x.contiguous()
    a = p.a.contiguous()
    steps, channels = x.shape[0], x.shape[2]
    # In the interpreter (the tests) outputs are NaN-filled: a slot the kernel failed to write poisons
    # the result. The grid covers every slot by construction, so on a card an uninitialised buffer
    # saves a fill per call.
    alloc = functools.partial(torch.full, fill_value=float("nan")) if interpreting() else torch.empty
    partial = alloc((steps, plan.slots, channels), dtype=torch.float32, device=x.device)
    unused = p.theta  # any valid pointer for an argument a constexpr flag switches off
    v_out = alloc(tuple(x.shape[1:]), dtype=torch.float32, device=x.device) if return_state else unused
    launch(
        _ftbc_stats_kernel,
        plan.grid,
        x,
        a,
        p.theta,
        p.bias.contiguous() if p.bias is not None else unused,
        p.v_init.to(torch.float32).contiguous() if p.v_init is not None else unused,
        v_out,
        partial,
        steps,
        channels,
        _spatial(x),
        x.shape[1] * _spatial(x),
        x[0].numel(),
        plan.slots,
        PER_CHANNEL_THRESH=p.theta.numel() > 1,
        HAS_BIAS=p.bias is not None,
        HAS_V_INIT=p.v_init is not None,
        STORE_V=return_state,
        BLOCK_C=plan.block_c,
        BLOCK_N=plan.block_n,
        num_warps=plan.num_warps,
    )
    # The second stage: a fixed-order sum over the slots (a view when there is only one).
    sums = partial[:, 0] if plan.slots == 1 else partial.sum(1)
    return (sums, v_out) if return_state else sums


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
    split: Optional[bool] = None,
) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Error sums ``[T, C]`` (float32) of FTBC's teacher-forced recurrence over ``x[T, B, C, ...]``.

    ``a`` is the ANN activation ``[B, C, ...]``; ``thresh`` a float, a 1-element or a ``[C]`` tensor;
    ``bias`` an optional ``[T, C]`` bias subtracted from the membrane (the layer's own bias, used by the
    iterative variant). ``v_init`` (``[B, C, ...]``, default θ/2) and ``return_state=True`` (which
    also returns the final teacher-forced membrane) let a long simulation run in chunks of time.
    ``backend``: "auto" (Triton for CUDA tensors, else the PyTorch reference), "triton" or "torch".
    ``check_finite`` also reads ``x`` and ``a`` for NaN/inf (a second full read); ``split`` forces the
    Triton tiling (:func:`ftbc_stats_plan`; None: by size). Both backends take the same checks.
    """
    p = _prepare(x, a, thresh, bias, v_init, check_finite)
    if resolve_backend(backend, p.x) == "torch":
        return _recurrence_torch(p, return_state)
    return stats_launch(p, return_state, ftbc_stats_plan(p.x, split))


def ftbc_stats_reference(*args, **kwargs) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The PyTorch oracle: :func:`ftbc_stats_forward` with ``backend="torch"`` (same arguments and checks)."""
    return ftbc_stats_forward(*args, backend="torch", **kwargs)


def ftbc_stats_bytes(
    x: torch.Tensor,
    a: torch.Tensor,
    plan: Optional[StatsPlan] = None,
    *,
    bias: bool = False,
    v_init: bool = False,
    return_state: bool = False,
) -> int:
    """Bytes one call moves: ``x`` and ``a`` read once (the floor), the ``[T, C]`` bias, the state read
    and written where used, and with a Triton ``plan`` its second stage: ``partial[T, slots, C]``
    written and read back, and the ``[T, C]`` sums written (none of it when there is one slot)."""
    steps, channels = x.shape[0], x.shape[2]
    one_step = x[0].numel() * 4
    total = x.numel() * x.element_size() + a.numel() * a.element_size()
    total += steps * channels * 4 if bias else 0
    total += one_step if v_init else 0
    total += one_step if return_state else 0
    if plan is not None and plan.slots > 1:
        total += (2 * plan.slots + 1) * steps * channels * 4
    return total
