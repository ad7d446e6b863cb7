"""Options of the multi-step neuron: the mode ids its kernels compile for, the frozen
:class:`NeuronOptions` (every scalar keyword, checked once when built: a module builds them once),
:func:`neuron_call`, the per-call check of ``x`` and the parameter tensors that returns a
:class:`NeuronCall`, and :func:`prepare`, both at once for the functional entry points. Also the byte model of the kernels
(:func:`traffic_bytes`), per element and step (``x``/``out`` in the I/O dtype, ``u`` in ``save_dtype``)::

    inference forward   sizeof(x) + sizeof(out)                 fp32: 8   bf16: 4   fp32→uint8: 5
    training forward    sizeof(x) + sizeof(out) + sizeof(u)     fp32/bf16 u: 10
    backward            sizeof(grad_out) + sizeof(u) + sizeof(grad_x)           fp32/bf16 u: 10

plus ``4·N`` bytes for ``v_final`` (and ``v_init``/its gradient when they are tensors).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Optional, Union

import torch
import triton.language as tl

from .common import check_finite, choice, f32, finite_scalar
from .localzo import DISTRIBUTION_ID, DISTRIBUTIONS
from .surrogates import DEFAULT_ALPHA, SURROGATE_ID, SURROGATES

__all__ = [
    "OUTPUT_ID",
    "RESET_ID",
    "OUTPUT_SCALED",
    "OUTPUT_UINT8",
    "RESET_SOFT",
    "RESET_HARD",
    "RESET_SUBTRACT",
    "BIAS_ORDERS",
    "SAVE_DTYPES",
    "SAVE_ID",
    "IO_DTYPES",
    "MAX_SEED",
    "NeuronOptions",
    "NeuronCall",
    "neuron_call",
    "with_v_init",
    "prepare",
    "traffic_bytes",
]

OUTPUT_ID = {"spike": 0, "scaled": 1, "uint8": 2}
RESET_ID = {"soft": 0, "hard": 1, "subtract": 2}
# Where the bias b_t comes off the membrane: before the input goes on (the FTBC/QCFS code's IF) or
# after it (the RTS code's SPIKE_layer); the two orders round differently.
BIAS_ORDERS = ("before_input", "after_input")
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
    """The scalar options of a neuron, checked and rounded to fp32 once, when built.

    The fields (with their defaults) are the keywords of every neuron entry point, held here only:
    a module builds its options once and each call passes them straight to the launch. ``v_init=None``
    starts at θ/2 (per channel when θ is); ``alpha=None`` is the surrogate's ``DEFAULT_ALPHA``;
    ``seed=None`` has LocalZO draw a fresh seed per call (:meth:`call_seed`). Tensors (threshold,
    bias, v_init) travel per call, in a :class:`NeuronCall`.
    """

    beta: float = 1.0
    leak: float = 0.0  # (1-β)·v_reset term added every step (0 for IF)
    gain: float = 1.0  # γ, the weight of x_t
    threshold: float = 1.0  # used when no threshold tensor is given
    v_init: Optional[float] = None  # used when no v_init tensor is given
    reset: str = "soft"  # "soft", "hard" or "subtract"
    v_reset: float = 0.0
    output: str = "spike"
    surrogate: str = "sigmoid"
    alpha: Optional[float] = None
    detach_reset: bool = False
    distribution: str = "normal"
    delta: float = 0.05
    q: int = 1
    seed: Optional[int] = None
    save_dtype: Union[str, torch.dtype] = "bf16"
    bias_order: str = "before_input"
    # The kernels' switches, derived once from the fields above.
    output_id: int = field(init=False, repr=False, compare=False)
    reset_id: int = field(init=False, repr=False, compare=False)
    surrogate_id: int = field(init=False, repr=False, compare=False)
    distribution_id: int = field(init=False, repr=False, compare=False)
    save_id: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Checked in the order a caller reads the options; the first bad one is named.
        normal = {
            "reset": choice("reset", self.reset, RESET_ID),
            "output": choice("output", self.output, OUTPUT_ID),
            "surrogate": choice("surrogate", self.surrogate, SURROGATES),
            "distribution": choice("distribution", self.distribution, DISTRIBUTIONS),
            "bias_order": choice("bias_order", self.bias_order, BIAS_ORDERS),
            "v_reset": finite_scalar("v_reset", self.v_reset),
            "alpha": finite_scalar(
                "alpha", DEFAULT_ALPHA.get(self.surrogate, 1.0) if self.alpha is None else self.alpha, positive=True
            ),
            "delta": finite_scalar("delta", self.delta, positive=True),
        }
        q = self.q
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 64:
            raise ValueError(f"q: expected an integer number of samples in 1..64, got {q!r}")
        seed = self.seed
        if seed is None and self.surrogate != "localzo":
            seed = 0  # only LocalZO reads it
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_SEED):
            raise ValueError(f"seed: expected an integer in [0, 2**63), got {seed!r}")
        normal["seed"] = seed
        normal["save_dtype"] = _save_dtype(self.save_dtype)
        normal["threshold"] = finite_scalar("threshold", self.threshold, positive=True)
        normal["v_init"] = None if self.v_init is None else finite_scalar("v_init", self.v_init)
        normal.update(
            beta=f32(self.beta), leak=f32(self.leak), gain=f32(self.gain), detach_reset=bool(self.detach_reset)
        )
        normal["output_id"] = OUTPUT_ID[self.output]
        normal["reset_id"] = RESET_ID[self.reset]
        normal["surrogate_id"] = SURROGATE_ID[self.surrogate]
        normal["distribution_id"] = DISTRIBUTION_ID[self.distribution]
        normal["save_id"] = SAVE_ID[normal["save_dtype"]]
        for name, value in normal.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    def call_seed(self) -> int:
        """This call's LocalZO seed: the fixed one, or a fresh draw from torch's generator."""
        return self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)).item())


class NeuronCall(NamedTuple):
    """What one call passes beside ``x`` and the options: θ ([1] or [C], fp32), the bias ([T, C],
    fp32) and v_init (broadcasting to one step) as checked tensors or None, and the LocalZO seed."""

    thresh: Optional[torch.Tensor]
    bias: Optional[torch.Tensor]
    v_init: Optional[torch.Tensor]
    seed: int


def _save_dtype(value) -> torch.dtype:
    if isinstance(value, torch.dtype):
        if value not in SAVE_ID:
            raise ValueError(f"save_dtype: expected float32, bfloat16 or float16, got {value}")
        return value
    return SAVE_DTYPES[choice("save_dtype", value, SAVE_DTYPES)]


def _check_x(x) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x: expected a tensor [T, ...], got {type(x).__name__}")
    if not (x.is_cuda or x.is_cpu):
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
        raise ValueError(f"{name}: requires grad, but the neuron treats it as a constant; pass {name}.detach()")


def _fp32(t: torch.Tensor) -> torch.Tensor:
    """``t`` as the contiguous fp32 constant a kernel reads; a module's buffer already is one."""
    if t.dtype == torch.float32 and not t.requires_grad and t.is_contiguous():
        return t
    return t.detach().to(torch.float32).contiguous()


def _threshold_arg(threshold: torch.Tensor, x: torch.Tensor, to_check: list) -> torch.Tensor:
    """θ as an fp32 tensor [1] or [C]."""
    _check_param_tensor("threshold", threshold, x)
    if threshold.numel() != 1:
        channels = _channels(x, "threshold")
        if threshold.dim() != 1 or threshold.numel() != channels:
            raise ValueError(
                f"threshold: expected a scalar or [C] = [{channels}] per-channel tensor, got shape {list(threshold.shape)}"
            )
    thresh_t = _fp32(threshold if threshold.dim() == 1 else threshold.reshape(-1))
    to_check.append(("threshold", threshold, thresh_t, True))
    return thresh_t


def _bias_arg(bias, x: torch.Tensor, to_check: list) -> torch.Tensor:
    """The [T, C] bias in fp32."""
    if not isinstance(bias, torch.Tensor):
        raise ValueError(f"bias: expected a tensor [T, C], got {type(bias).__name__}")
    _check_param_tensor("bias", bias, x)
    channels = _channels(x, "bias")
    if tuple(bias.shape) != (x.shape[0], channels):
        raise ValueError(f"bias: expected shape [T, C] = [{x.shape[0]}, {channels}], got {list(bias.shape)}")
    bias_t = _fp32(bias)
    to_check.append(("bias", bias, bias_t, False))
    return bias_t


def _v_init_arg(v_init: torch.Tensor, x: torch.Tensor, to_check: list) -> torch.Tensor:
    if v_init.device != x.device:
        raise ValueError(f"v_init: on {v_init.device}, but x is on {x.device}")
    if not v_init.is_floating_point():
        raise ValueError(f"v_init: expected a floating-point tensor, got {v_init.dtype}")
    try:
        ok = torch.broadcast_shapes(v_init.shape, x.shape[1:]) == x.shape[1:]
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"v_init: shape {list(v_init.shape)} does not broadcast to one step of x, {list(x.shape[1:])}")
    to_check.append(("v_init", v_init, v_init.detach(), False))
    return v_init


def neuron_call(
    x: torch.Tensor,
    opts: NeuronOptions,
    threshold: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    v_init: Optional[torch.Tensor] = None,
    check_tensors: bool = True,
) -> NeuronCall:
    """Check one call's ``x`` and tensors against prepared options; the hot path's only checks.

    ``check_tensors=False`` skips the data-dependent finiteness check (under torch.compile); on CUDA
    it runs once per parameter version (:func:`kernels.common.check_finite`), so a module's call
    does not sync the host.
    """
    _check_x(x)
    if opts.output == "uint8" and x.requires_grad and torch.is_grad_enabled():
        raise ValueError("output: uint8 spikes are not differentiable; use output='spike' when training")
    if threshold is None and bias is None and v_init is None:
        return NeuronCall(None, None, None, opts.call_seed())
    to_check: list = []  # (name, given, prepared, positive) for check_finite
    thresh_t = None if threshold is None else _threshold_arg(threshold, x, to_check)
    bias_t = None if bias is None else _bias_arg(bias, x, to_check)
    v_init_t = None if v_init is None else _v_init_arg(v_init, x, to_check)
    if check_tensors:
        check_finite(to_check)
    return NeuronCall(thresh_t, bias_t, v_init_t, opts.call_seed())


@functools.lru_cache(maxsize=512)
def _built_by_key(build, key: tuple) -> NeuronOptions:
    return build(**{name: value for name, _, value, _ in key})


def _built(build, options: dict) -> NeuronOptions:
    """``build(**options)``, remembered: a functional caller passes the same keywords every step. The
    key holds each value's type and a float's sign, so 1, 1.0 and True stay apart, and -0.0 and 0.0; unhashable values are built directly
    (and refused there), and so is everything Dynamo traces (it would only warn about the cache)."""
    if torch.compiler.is_compiling():
        return build(**options)
    key = tuple(
        (name, type(value), value, math.copysign(1.0, value) if type(value) is float else None)
        for name, value in sorted(options.items())
    )
    try:
        hash(key)
    except TypeError:
        return build(**options)
    return _built_by_key(build, key)


def with_v_init(opts: NeuronOptions, v_init) -> tuple[NeuronOptions, Optional[torch.Tensor]]:
    """(options, v_init tensor or None) for a call of prepared options: a number given for one call
    replaces the options' ``v_init`` (checked again, the rare path); a tensor travels with the call."""
    if v_init is None or isinstance(v_init, torch.Tensor):
        return opts, v_init
    return replace(opts, v_init=v_init), None


def prepare(
    x: torch.Tensor,
    threshold: Union[float, torch.Tensor] = 1.0,
    bias: Optional[torch.Tensor] = None,
    v_init: Union[None, float, torch.Tensor] = None,
    *,
    build=NeuronOptions,
    check_tensors: bool = True,
    **options,
) -> tuple[NeuronOptions, NeuronCall]:
    """The functional entry points' per-call preparation: the options ``build(**options)`` gives
    (threshold and v_init join them when they are numbers) and the call's :class:`NeuronCall`."""
    tensors = {
        name: value for name, value in (("threshold", threshold), ("v_init", v_init)) if isinstance(value, torch.Tensor)
    }
    scalars = {
        "threshold": 1.0 if "threshold" in tensors else threshold,
        "v_init": None if "v_init" in tensors else v_init,
    }
    opts = _built(build, {**scalars, **options})
    return opts, neuron_call(x, opts, bias=bias, check_tensors=check_tensors, **tensors)


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
