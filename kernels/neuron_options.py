"""Options of the multi-step neuron: the mode ids its kernels compile for, one frozen
:class:`NeuronOptions` per call, and :func:`prepare`, which checks every argument before a launch and
returns the options with the fp32 parameter tensors. Also the byte model of the kernels
(:func:`traffic_bytes`), per element and step (``x``/``out`` in the I/O dtype, ``u`` in ``save_dtype``)::

    inference forward   sizeof(x) + sizeof(out)                 fp32: 8   bf16: 4   fp32→uint8: 5
    training forward    sizeof(x) + sizeof(out) + sizeof(u)     fp32/bf16 u: 10
    backward            sizeof(grad_out) + sizeof(u) + sizeof(grad_x)           fp32/bf16 u: 10

plus ``4·N`` bytes for ``v_final`` (and ``v_init``/its gradient when they are tensors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
import triton.language as tl

from .common import check_finite, choice, f32, finite_scalar
from .localzo import DISTRIBUTIONS
from .surrogates import DEFAULT_ALPHA, SURROGATES

__all__ = [
    "OUTPUT_ID",
    "RESET_ID",
    "OUTPUT_SCALED",
    "OUTPUT_UINT8",
    "RESET_SOFT",
    "RESET_HARD",
    "RESET_SUBTRACT",
    "SAVE_DTYPES",
    "SAVE_ID",
    "IO_DTYPES",
    "MAX_SEED",
    "NeuronOptions",
    "prepare",
    "traffic_bytes",
]

OUTPUT_ID = {"spike": 0, "scaled": 1, "uint8": 2}
RESET_ID = {"soft": 0, "hard": 1, "subtract": 2}
# The same ids as compile-time constants, for the kernels' branches (a @triton.jit body may read a
# global only when it is a tl.constexpr).
OUTPUT_SCALED = tl.constexpr(OUTPUT_ID["scaled"])
OUTPUT_UINT8 = tl.constexpr(OUTPUT_ID["uint8"])
RESET_SOFT = tl.constexpr(RESET_ID["soft"])
RESET_HARD = tl.constexpr(RESET_ID["hard"])
RESET_SUBTRACT = tl.constexpr(RESET_ID["subtract"])
SAVE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SAVE_ID = {torch.float32: 1, torch.bfloat16: 2, torch.float16: 3}
IO_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MAX_SEED = 2**63


@dataclass(frozen=True)
class NeuronOptions:
    """Scalar options of one call; tensors (threshold, bias, v_init) travel separately."""

    beta: float
    leak: float  # (1-β)·v_reset term added every step (0 for IF)
    gain: float  # γ, the weight of x_t
    reset: str  # "soft", "hard" or "subtract"
    v_reset: float
    detach_reset: bool
    output: str
    surrogate: str
    alpha: float
    distribution: str
    delta: float
    q: int
    seed: int
    save_dtype: torch.dtype
    threshold: float  # used when no threshold tensor is given
    v_init: Optional[float]  # scalar v_init; None with no tensor means θ/2


def _save_dtype(value) -> torch.dtype:
    if isinstance(value, torch.dtype):
        if value not in SAVE_ID:
            raise ValueError(f"save_dtype: expected float32, bfloat16 or float16, got {value}")
        return value
    return SAVE_DTYPES[choice("save_dtype", value, SAVE_DTYPES)]


def _check_x(x) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x: expected a tensor [T, ...], got {type(x).__name__}")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"x: tensors on {x.device.type} are not supported; expected a cpu or cuda tensor")
    if x.dtype not in IO_DTYPES:
        raise ValueError(f"x: unsupported dtype {x.dtype}; expected float32, float16 or bfloat16")
    if x.dim() < 2:
        raise ValueError(f"x: expected [T, ...] with at least one neuron dimension, got shape {list(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x: T = 0 time steps; need at least one")


def _channels(x: torch.Tensor, name: str) -> int:
    if x.dim() < 3:
        raise ValueError(
            f"{name}: per-channel values need x of shape [T, B, C, ...] (channel = dim 2), got {list(x.shape)}"
        )
    return x.shape[2]


def _check_param_tensor(name: str, t: torch.Tensor, x: torch.Tensor) -> None:
    if t.device != x.device:
        raise ValueError(f"{name}: on {t.device}, but x is on {x.device}")
    if not t.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    if t.requires_grad and torch.is_grad_enabled():
        raise ValueError(
            f"{name}: requires grad, but the neuron treats it as a constant; pass {name}.detach()"
        )


def _threshold_arg(threshold, x: torch.Tensor, to_check: list):
    """(θ tensor [1] or [C] in fp32, or None; the scalar θ used without one)."""
    thresh_t = None
    thresh_value = 1.0
    if isinstance(threshold, torch.Tensor):
        _check_param_tensor("threshold", threshold, x)
        if threshold.numel() != 1:
            channels = _channels(x, "threshold")
            if threshold.dim() != 1 or threshold.numel() != channels:
                raise ValueError(
                    f"threshold: expected a scalar or [C] = [{channels}] per-channel tensor, got shape {list(threshold.shape)}"
                )
        thresh_t = threshold.detach().reshape(-1).to(torch.float32).contiguous()
        to_check.append(("threshold", threshold, thresh_t, True))
    else:
        thresh_value = finite_scalar("threshold", threshold, positive=True)
    return thresh_t, thresh_value


def _bias_arg(bias, x: torch.Tensor, to_check: list):
    """The [T, C] bias in fp32, or None."""
    bias_t = None
    if bias is not None:
        if not isinstance(bias, torch.Tensor):
            raise ValueError(f"bias: expected a tensor [T, C], got {type(bias).__name__}")
        _check_param_tensor("bias", bias, x)
        channels = _channels(x, "bias")
        if tuple(bias.shape) != (x.shape[0], channels):
            raise ValueError(
                f"bias: expected shape [T, C] = [{x.shape[0]}, {channels}], got {list(bias.shape)}"
            )
        bias_t = bias.detach().to(torch.float32).contiguous()
        to_check.append(("bias", bias, bias_t, False))
    return bias_t


def _v_init_arg(v_init, x: torch.Tensor, default: Optional[float], to_check: list):
    """(the v_init tensor or None, the scalar v_init; ``default`` without either: None means θ/2)."""
    v_init_t = None
    v_init_value = None
    if isinstance(v_init, torch.Tensor):
        if v_init.device != x.device:
            raise ValueError(f"v_init: on {v_init.device}, but x is on {x.device}")
        if not v_init.is_floating_point():
            raise ValueError(f"v_init: expected a floating-point tensor, got {v_init.dtype}")
        try:
            ok = torch.broadcast_shapes(v_init.shape, x.shape[1:]) == x.shape[1:]
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"v_init: shape {list(v_init.shape)} does not broadcast to one step of x, {list(x.shape[1:])}"
            )
        v_init_t = v_init
        to_check.append(("v_init", v_init, v_init.detach(), False))
    elif v_init is not None:
        v_init_value = finite_scalar("v_init", v_init)
    else:
        v_init_value = default
    return v_init_t, v_init_value


def prepare(
    x: torch.Tensor,
    threshold: Union[float, torch.Tensor] = 1.0,
    bias: Optional[torch.Tensor] = None,
    v_init: Union[None, float, torch.Tensor] = None,
    *,
    beta: float,
    leak: float,
    gain: float,
    reset: str = "soft",
    v_reset: float = 0.0,
    output: str = "spike",
    surrogate: str = "sigmoid",
    alpha: Optional[float] = None,
    detach_reset: bool = False,
    distribution: str = "normal",
    delta: float = 0.05,
    q: int = 1,
    seed: Optional[int] = None,
    save_dtype: Union[str, torch.dtype] = "bf16",
    default_v_init_half: bool = False,
    check_tensors: bool = True,
) -> tuple[NeuronOptions, Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Validate everything that can be checked before a launch; return options and fp32 tensors.

    The keywords (and their defaults) of every neuron entry point: ``multistep_if``/``_lif`` pass
    theirs through. ``check_tensors=False`` skips the data-dependent finiteness check (under torch.compile)."""
    _check_x(x)
    choice("reset", reset, RESET_ID)
    choice("output", output, OUTPUT_ID)
    choice("surrogate", surrogate, SURROGATES)
    choice("distribution", distribution, DISTRIBUTIONS)
    v_reset = finite_scalar("v_reset", v_reset)
    if alpha is None:
        alpha = DEFAULT_ALPHA.get(surrogate, 1.0)
    alpha = finite_scalar("alpha", alpha, positive=True)
    delta = finite_scalar("delta", delta, positive=True)
    if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 64:
        raise ValueError(f"q: expected an integer number of samples in 1..64, got {q!r}")
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item()) if surrogate == "localzo" else 0
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed: expected an integer in [0, 2**63), got {seed!r}")
    save = _save_dtype(save_dtype)
    if output == "uint8" and x.requires_grad and torch.is_grad_enabled():
        raise ValueError("output: uint8 spikes are not differentiable; use output='spike' when training")

    to_check: list = []  # (name, given, prepared, positive) for check_finite
    thresh_t, thresh_value = _threshold_arg(threshold, x, to_check)
    bias_t = _bias_arg(bias, x, to_check)
    v_init_t, v_init_value = _v_init_arg(v_init, x, v_reset if not default_v_init_half else None, to_check)
    if check_tensors:
        check_finite(to_check)

    opts = NeuronOptions(
        beta=f32(beta),
        leak=f32(leak),
        gain=f32(gain),
        reset=reset,
        v_reset=v_reset,
        detach_reset=bool(detach_reset),
        output=output,
        surrogate=surrogate,
        alpha=alpha,
        distribution=distribution,
        delta=delta,
        q=q,
        seed=seed,
        save_dtype=save,
        threshold=thresh_value,
        v_init=v_init_value,
    )
    return opts, thresh_t, bias_t, v_init_t


def traffic_bytes(
    T: int,
    N: int,
    x_dtype: torch.dtype,
    *,
    output: str = "spike",
    save_dtype: Optional[torch.dtype] = torch.bfloat16,
    backward: bool = False,
) -> int:
    """DRAM bytes the kernels move for T×N neurons (v_init scalar, no v_final gradient).

    Forward: x, out, v_final and, when ``save_dtype`` is given (training), u. Backward (added when
    ``backward``): grad_out, u and grad_x.
    """
    x_b = torch.empty((), dtype=x_dtype).element_size()
    out_b = 1 if output == "uint8" else x_b
    save_b = 0 if save_dtype is None else torch.empty((), dtype=save_dtype).element_size()
    total = T * N * (x_b + out_b + save_b) + 4 * N
    if backward:
        total += T * N * (out_b + save_b + x_b)
    return total
