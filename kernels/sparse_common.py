"""What the sparse LIF ops share: the spike rule, the active set they exchange, the band constants
of the LocalZO draw and the argument checks. The math is in :mod:`kernels.sparse_backward`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import torch

from .localzo import DISTRIBUTIONS

Rule = Literal["sparseprop", "localzo"]
Distribution = Literal["normal", "uniform", "laplace"]
Backend = Literal["auto", "triton", "torch"]

RULES = ("sparseprop", "localzo")
BAND_SURROGATES = ("fast_sigmoid", "gaussian")
TRACE_DTYPES = (torch.float32, torch.float16)
_SQRT3 = math.sqrt(3.0)
_LAPLACE_SCALE = 1.0 / math.sqrt(2.0)
# E|z| for one draw: the B_th that gives SparseProp the active band of a LocalZO run (docs/design.md §5).
MEAN_ABS_Z = {"normal": math.sqrt(2.0 / math.pi), "uniform": _SQRT3 / 2.0, "laplace": _LAPLACE_SCALE}
# The largest |z| the Philox stream can give: its open uniforms are at least 2⁻²⁴ (and below 1), so
# Box-Muller's radius is at most √(48·ln 2) and the exponential at most 24·ln 2/√2. 1% headroom
# covers fp32 rounding of log/sqrt; the band only has to contain every entry that can be active.
_MIN_UNIFORM_LOG = 24.0 * math.log(2.0)
MAX_ABS_Z = {
    "normal": 1.01 * math.sqrt(2.0 * _MIN_UNIFORM_LOG),
    "uniform": 1.01 * _SQRT3,
    "laplace": 1.01 * _MIN_UNIFORM_LOG * _LAPLACE_SCALE,
}


def layer_seed(seed: int, layer: int) -> int:
    """The LocalZO seed of hidden layer ``layer`` in a step seeded ``seed`` (shared by the dense twin)."""
    return (int(seed) * 1_000_003 + int(layer) * 7919) % (2**31 - 1)


def matched_b_th(delta: float, distribution: str = "normal") -> float:
    """SparseProp's band B_th = δ·E|z| that matches a LocalZO run with q = 1."""
    return delta * MEAN_ABS_Z[distribution]


@dataclass(frozen=True)
class SpikeRule:
    """How a layer picks its active entries and their g. Plain data: travels through autograd."""

    rule: Rule = "localzo"
    theta: float = 1.0  # threshold: spike when u > θ; the next step subtracts θ·s (neuron.py's "subtract")
    # sparseprop
    b_th: float = 0.04
    width: float = 100.0
    surrogate: Literal["fast_sigmoid", "gaussian"] = "fast_sigmoid"  # g inside the band
    # localzo
    delta: float = 0.05
    q: int = 1
    distribution: Distribution = "normal"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.surrogate not in BAND_SURROGATES:
            raise ValueError(f"surrogate must be one of {BAND_SURROGATES}, got {self.surrogate!r}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        for name in ("b_th", "width", "delta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not math.isfinite(self.theta):
            raise ValueError(f"theta must be finite, got {self.theta!r}")
        if int(self.q) != self.q or self.q < 1:
            raise ValueError(f"q must be a positive integer, got {self.q!r}")


@dataclass
class ActiveSet:
    """The active entries of one layer of shape (T, B, H).

    ``index``: int32 flat time-major index t·B·H + b·H + j, grouped by neuron, order (j, b, t);
    ``g``: float32 spike-derivative estimate of each entry; ``col_ptr``: int32 [H + 1], neuron j's
    entries are ``index[col_ptr[j]:col_ptr[j+1]]``; ``by_batch``: int32 positions into ``index`` in
    order (b, j, t); ``batch_ptr``: int32 [B + 1] segment starts of ``by_batch`` per batch element.
    """

    index: torch.Tensor
    g: torch.Tensor
    col_ptr: torch.Tensor
    by_batch: torch.Tensor
    batch_ptr: torch.Tensor
    shape: tuple[int, int, int]

    def __len__(self) -> int:
        return int(self.index.numel())

    @property
    def fraction(self) -> float:
        T, B, H = self.shape
        return len(self) / max(1, T * B * H)

    def decode(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t, b, j) of every entry, int64, in ``index`` order."""
        T, B, H = self.shape
        e = self.index.long()
        return e // (B * H), (e // H) % B, e % H

    def dense(self, values: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scatter ``values`` (default g) into a dense [T, B, H] tensor: for tests and the dense twin."""
        T, B, H = self.shape
        out = torch.zeros(T * B * H, dtype=torch.float32, device=self.index.device)
        out[self.index.long()] = self.g if values is None else values
        return out.view(T, B, H)


# ---------------------------------------------------------------------------------------------
# Argument checks


def check_tensor(name: str, t: torch.Tensor, ndim: int, finite: bool = True, dtypes: tuple = (torch.float32,)) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.dtype not in dtypes:
        expected = " or ".join(str(d).replace("torch.", "") for d in dtypes)
        raise ValueError(f"{name} must be {expected}, got {t.dtype}")
    if finite and t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds non-finite values")


def check_same_device(**tensors: torch.Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        raise ValueError(f"tensors must share one device, got {devices}")


def check_beta(beta: float) -> float:
    beta = float(beta)
    if not (0.0 < beta <= 1.0):
        raise ValueError(f"beta must be in (0, 1], got {beta!r}")
    return beta


def check_index_range(numel: int) -> None:
    if numel >= 2**31:
        raise ValueError(f"T·B·H = {numel} does not fit the int32 entry index")


def check_rule_and_seed(rule: SpikeRule, seed: int) -> None:
    if not isinstance(rule, SpikeRule):
        raise ValueError(f"rule must be a SpikeRule, got {type(rule).__name__}")
    if int(seed) != seed or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
