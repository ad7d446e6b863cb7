"""The spiking MLP of the sparse-training track (docs/design.md §5) and its four training methods.

``input → LIF hidden → LIF hidden → non-spiking leaky readout``, no recurrence, no biases::

    u_t = β·u_{t-1} + W x_{t-d} − θ·s_{t-1},  s_t = H(u_t − θ),  θ = 1,  β = exp(−dt/τ_mem)  (reset not differentiated)
    v_t = β_out·v_{t-1} + (1 − β_out)·W_out s_{t-d}                                (readout)
    loss = NLL(log_softmax(pool_t v_t)) + spike-rate regularisers per hidden layer

``delay`` d = 0 (default) or 1: the official SparseProp / LocalZO code computes ``u[t+1]`` from
``x[t]`` starting at ``u[0] = 0`` in every layer, so the readout lags the input by depth + 1 steps and the
last input steps never reach it. ``pool``: ``max`` over time, ``max_with_zero`` (the official max, whose
record starts with the initial 0: logits ≥ 0, and a class whose readout stays negative gets no gradient;
with ``delay: 1`` the first readout step is that 0, so ``max`` is the same), or ``sum``. ``init`` /
``weight_multiplier``: the init scale (Fashion-MNIST: 20 in SparseProp, 10 in LocalZO).

Methods (their ``params`` are validated by snnbench.config's models):
- ``surrogate``: dense BPTT with a surrogate spike derivative (the fused neuron kernels on CUDA, autograd
  through the PyTorch time loop on the CPU);
- ``sparseprop``: sparse backward over |u − 1| < B_th, fast-sigmoid g (kernels/sparse_backward.py);
- ``localzo``: sparse backward over the LocalZO estimate's nonzero g;
- ``localzo_dense``: the same forward and g as ``localzo`` with a dense masked backward (the twin
  that checks the sparse path; its gradients equal the sparse ones for the same seed and backend);
- ``surrogate_normal``: the LocalZO paper's dense baseline, BPTT with the normal pdf of std δ = 0.05;
- ``sparseprop_normal``: the LocalZO paper's S3GD baseline, SparseProp's band δ·E|z| with the normal
  pdf of std δ inside it (``sparseprop`` with ``b_th: null`` keeps SparseProp's fast sigmoid).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from torch import nn

from snnbench.kernels.neuron import multistep_lif
from snnbench.kernels.sparse_backward import (
    SpikeRule,
    StackConfig,
    layer_seed,
    lif_forward,
    lif_record_forward,
    matched_b_th,
    delayed,
    sparse_lif_stack,
)

THETA = 1.0

# Published settings (SparseProp / LocalZO SparseGrad configs): dt, time constants, readout pooling,
# weight init and the spike-rate regularisers (upper bound on mean spikes per neuron and sample,
# lower bound on each neuron's spike count).
DATASET_PRESETS: dict[str, dict[str, Any]] = {
    "digits_spiking": dict(
        dt=1e-3, tau_mem=10e-3, tau_out=10e-3, pool="max", init="normal", weight_multiplier=40.0, f_upper=1.0
    ),
    "fmnist": dict(
        dt=1e-3, tau_mem=10e-3, tau_out=10e-3, pool="max", init="normal", weight_multiplier=10.0, f_upper=1.0
    ),
    "nmnist": dict(
        dt=1e-3, tau_mem=10e-3, tau_out=10e-3, pool="max", init="uniform", weight_multiplier=1.0, f_upper=1.0
    ),
    "shd": dict(dt=2e-3, tau_mem=10e-3, tau_out=20e-3, pool="sum", init="uniform", weight_multiplier=1.0, f_upper=10.0),
}
DATASET_PRESETS["synthetic_spiking"] = DATASET_PRESETS["shd"]  # SHD's shapes, SHD's settings
_GENERIC_PRESET = DATASET_PRESETS["nmnist"]
POOLS = ("max", "max_with_zero", "sum")


@dataclass(frozen=True)
class SNNConfig:
    inputs: int
    outputs: int
    hidden: tuple[int, ...] = (200, 200)
    dt: float = 1e-3
    tau_mem: float = 10e-3
    tau_out: float = 10e-3
    pool: str = "max"  # "max", "max_with_zero" or "sum" over time of the readout
    delay: int = 0  # 1: the official one-step synaptic delay per layer (module doc)
    init: str = "uniform"  # "normal": N(0, (m·(1-β))²/n); "uniform": U(±m/√n)
    weight_multiplier: float = 1.0
    lambda_upper: float = 0.06
    f_upper: float = 1.0
    lambda_lower: float = 100.0
    f_lower: float = 1e-3

    def __post_init__(self) -> None:
        if self.inputs < 1 or self.outputs < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError(
                f"layer sizes must be positive, got inputs={self.inputs}, hidden={self.hidden}, outputs={self.outputs}"
            )
        for name in ("dt", "tau_mem", "tau_out", "weight_multiplier"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.delay not in (0, 1):
            raise ValueError(f"delay must be 0 or 1, got {self.delay!r}")
        if self.init not in ("normal", "uniform"):
            raise ValueError(f"init must be 'normal' or 'uniform', got {self.init!r}")

    @property
    def beta(self) -> float:
        return math.exp(-self.dt / self.tau_mem)

    @property
    def beta_out(self) -> float:
        return math.exp(-self.dt / self.tau_out)


MODEL_PARAMETERS = {"hidden", "layers"} | set(SNNConfig.__dataclass_fields__) - {"inputs", "outputs"}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def config_for(dataset: str, inputs: int, outputs: int, params: Optional[dict[str, Any]] = None) -> SNNConfig:
    """The network of ``dataset`` with the published time constants, overridden by model ``params``.

    ``hidden`` is one size (used for every hidden layer) or a list; ``layers`` (default 2) repeats it.
    """
    params = dict(params or {})
    unknown = set(params) - MODEL_PARAMETERS
    if unknown:
        raise ValueError(f"unknown snn_mlp parameter(s) {sorted(unknown)}; expected some of {sorted(MODEL_PARAMETERS)}")
    preset = dict(DATASET_PRESETS.get(dataset, _GENERIC_PRESET))
    hidden = params.pop("hidden", 200)
    layers = params.pop("layers", 2)
    if not _positive_int(layers):
        raise ValueError(f"layers: expected a positive integer, got {layers!r}")
    if _positive_int(hidden):
        hidden = (hidden,) * layers
    if not isinstance(hidden, (list, tuple)) or not hidden or not all(_positive_int(h) for h in hidden):
        raise ValueError(f"hidden: expected a positive integer or a list of them, got {hidden!r}")
    preset.update(params)
    return SNNConfig(inputs=inputs, outputs=outputs, hidden=tuple(int(h) for h in hidden), **preset)


# ---------------------------------------------------------------------------------------------
# Methods


@dataclass(frozen=True)
class TrainingMethod:
    """A validated training method: dense surrogate, or a spike rule for the sparse / twin paths."""

    name: str
    surrogate: str = "fast_sigmoid"
    width: float = 10.0
    rule: Optional[SpikeRule] = None

    @property
    def sparse(self) -> bool:
        return self.name in ("sparseprop", "sparseprop_normal", "localzo")

    @property
    def dense_surrogate(self) -> bool:
        return self.rule is None


def training_method(name: str, params: Optional[dict[str, Any]] = None) -> TrainingMethod:
    """Validate ``params`` with the method's model in snnbench.config; raise ValueError if bad.

    SparseProp with ``b_th: null`` gets B_th = δ·E|z| of a LocalZO run with the default δ = 0.05 and a
    normal z (0.0399): a cell cannot see its sibling cells, so the default δ is the match.
    """
    from pydantic import ValidationError

    from snnbench.config import METHOD_PARAMS, TRAINING_METHODS

    if name not in TRAINING_METHODS:
        raise ValueError(f"unknown training method {name!r}; expected one of {sorted(TRAINING_METHODS)}")
    try:
        p = METHOD_PARAMS[name].model_validate(dict(params or {})).model_dump()
    except ValidationError as err:
        raise ValueError(f"bad parameters for method {name!r}: {err}") from None
    if name == "surrogate":
        return TrainingMethod(name, surrogate=p["surrogate"], width=p["width"])
    if name == "surrogate_normal":  # the normal pdf of std δ is neuron.py's gaussian with α = 1/δ
        return TrainingMethod(name, surrogate="gaussian", width=1.0 / p["delta"])
    if name == "sparseprop_normal":
        b_th = p["b_th"] if p["b_th"] is not None else matched_b_th(p["delta"], "normal")
        return TrainingMethod(
            name, rule=SpikeRule("sparseprop", THETA, b_th=b_th, width=1.0 / p["delta"], surrogate="gaussian")
        )
    if name == "sparseprop":
        default_delta = METHOD_PARAMS["localzo"].model_fields["delta"].default
        b_th = p["b_th"] if p["b_th"] is not None else matched_b_th(default_delta, "normal")
        return TrainingMethod(name, rule=SpikeRule("sparseprop", THETA, b_th=b_th, width=p["width"]))
    rule = SpikeRule("localzo", THETA, delta=p["delta"], q=p["q"], distribution=p["distribution"])
    return TrainingMethod(name, rule=rule)


def dense_baseline(method: TrainingMethod) -> TrainingMethod:
    """The dense surrogate the speed-ups are measured against: the method's own surrogate shape."""
    if method.dense_surrogate:
        return method
    if method.rule is not None and method.rule.rule == "sparseprop":
        return TrainingMethod("surrogate", surrogate=method.rule.surrogate, width=method.rule.width)
    return TrainingMethod("surrogate", surrogate="fast_sigmoid", width=100.0)


# ---------------------------------------------------------------------------------------------
# Dense pieces


def dense_lif_bptt(
    current: torch.Tensor, beta: float, kind: str, width: float, theta: float = THETA, backend: str = "auto"
) -> torch.Tensor:
    """Dense BPTT of the LIF scan with the surrogate ``kind`` (sharpness ``width``), reset detached.

    snnbench.kernels.neuron's ``subtract`` reset is exactly this layer's ``u_t = β·u_{t-1} + I_t − θ·s_{t-1}``
    with ``s_t = H(u_t − θ)`` strict, so on CUDA the fused Triton scans run the forward and the whole
    reverse-time backward in one launch each; ``backend="torch"`` (and any CPU tensor) runs the
    PyTorch time loop that autograd differentiates.
    """
    spikes, _ = multistep_lif(
        current,
        beta=beta,
        decay_input=False,
        reset="subtract",
        detach_reset=True,
        threshold=theta,
        v_init=0.0,
        surrogate=kind,
        alpha=width,
        save_dtype="fp32",
        backend=backend,
    )
    return spikes


class DenseMaskedLIF(torch.autograd.Function):
    """Spikes from a recorded forward; backward ∂L/∂I_t = Σ_{t'≥t} β^{t'-t} g_{t'} ∂L/∂s_{t'} (dense)."""

    @staticmethod
    def forward(ctx, current, spikes, g, beta: float):
        ctx.save_for_backward(g)
        ctx.beta = beta
        return spikes

    @staticmethod
    def backward(ctx, grad_s):
        (g,) = ctx.saved_tensors
        delta = g * grad_s
        grad_current = torch.empty_like(delta)
        acc = torch.zeros_like(delta[0])
        for t in range(delta.shape[0] - 1, -1, -1):
            acc = ctx.beta * acc + delta[t]
            grad_current[t] = acc
        return grad_current, None, None, None


def leaky_readout(current: torch.Tensor, beta_out: float) -> torch.Tensor:
    """``v_t = β·v_{t-1} + (1-β)·I_t`` over ``current[T, B, C]`` as one matmul with the decay kernel."""
    T = current.shape[0]
    t = torch.arange(T, device=current.device, dtype=torch.float32)
    lag = t[:, None] - t[None, :]
    kernel = torch.where(lag >= 0, (1.0 - beta_out) * beta_out ** lag.clamp(min=0), torch.zeros_like(lag))
    return (kernel @ current.reshape(T, -1)).view_as(current)


def pool_readout(v: torch.Tensor, pool: str) -> torch.Tensor:
    """Logits ``[B, C]`` from the readout ``v[T, B, C]``: ``max``, ``max_with_zero`` (max of 0 and v) or ``sum``."""
    if pool == "sum":
        return v.sum(0)
    logits = v.amax(0)
    return logits.clamp(min=0.0) if pool == "max_with_zero" else logits


# ---------------------------------------------------------------------------------------------
# The network


@dataclass
class SNNOutput:
    readout: torch.Tensor  # v[T, B, C]
    logits: torch.Tensor  # pooled over time, [B, C]
    counts: list[torch.Tensor]  # spike counts per hidden layer, [B, H_l]
    active_fraction: list[float] = field(default_factory=list)  # per hidden layer; 1.0 for dense surrogates


class SpikingMLP(nn.Module):
    def __init__(self, cfg: SNNConfig, generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.cfg = cfg
        sizes = (cfg.inputs, *cfg.hidden, cfg.outputs)
        self.weights = nn.ParameterList()
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            w = torch.empty(n_in, n_out)
            if w.is_meta:
                pass  # the preflight's build holds no values; a first meta normal_ costs ~2 s of imports
            elif cfg.init == "normal":
                w.normal_(0.0, cfg.weight_multiplier * (1.0 - cfg.beta) / math.sqrt(n_in), generator=generator)
            else:
                bound = cfg.weight_multiplier / math.sqrt(n_in)
                w.uniform_(-bound, bound, generator=generator)
            self.weights.append(nn.Parameter(w))

    def forward(
        self,
        x: torch.Tensor,
        method: Optional[TrainingMethod] = None,
        seed: int = 0,
        timer=None,
        backend: str = "auto",
    ) -> SNNOutput:
        """``x[T, B, inputs]``; ``method=None`` runs the forward only (evaluation, no graph)."""
        if x.dim() != 3 or x.shape[2] != self.cfg.inputs:
            raise ValueError(f"x must be [T, B, {self.cfg.inputs}], got shape {tuple(x.shape)}")
        timer = timer if timer is not None else _no_timer
        weights = list(self.weights)
        if method is None:
            return self._inference(x, weights, backend)
        if method.sparse:
            stats: dict = {}
            cfg = StackConfig(self.cfg.beta, method.rule, seed, backend, timer=timer, stats=stats, delay=self.cfg.delay)
            current, counts = sparse_lif_stack(x, weights, cfg)
            return self._readout(current, counts, stats["active_fraction"], timer)
        T, B, _ = x.shape
        h, counts, fractions = x, [], []
        for layer, w in enumerate(weights[:-1]):
            with timer(f"hidden{layer + 1}.fwd"):
                current = delayed((h.reshape(T * B, -1) @ w).view(T, B, -1), self.cfg.delay)
                if method.dense_surrogate:
                    s = dense_lif_bptt(current, self.cfg.beta, method.surrogate, method.width, backend=backend)
                    fractions.append(1.0)
                else:  # localzo_dense: the sparse path's forward and g, then a dense backward
                    spikes, active, g = lif_record_forward(
                        current.detach(), self.cfg.beta, method.rule, layer_seed(seed, layer), backend, dense_g=True
                    )
                    s = DenseMaskedLIF.apply(current, spikes, g, self.cfg.beta)
                    fractions.append(active.fraction)
                counts.append(s.sum(0))
            if hasattr(timer, "on_backward"):
                s.register_hook(timer.on_backward(f"hidden{layer + 1}.bwd"))
            h = s
        with timer("readout.fwd"):
            current = (h.reshape(T * B, -1) @ weights[-1]).view(T, B, -1)
        return self._readout(current, counts, fractions, timer)

    def _readout(self, current, counts, fractions, timer) -> SNNOutput:
        with timer("readout.fwd"):
            v = leaky_readout(delayed(current, self.cfg.delay), self.cfg.beta_out)
            logits = pool_readout(v, self.cfg.pool)
        return SNNOutput(v, logits, counts, list(fractions))

    @torch.no_grad()
    def _inference(self, x, weights, backend) -> SNNOutput:
        T, B, _ = x.shape
        h, counts = x, []
        for w in weights[:-1]:
            current = delayed((h.reshape(T * B, -1) @ w).view(T, B, -1), self.cfg.delay)
            h = lif_forward(current, self.cfg.beta, THETA, backend)
            counts.append(h.sum(0))
        current = (h.reshape(T * B, -1) @ weights[-1]).view(T, B, -1)
        return self._readout(current, counts, [], _no_timer)

    def regularizer(self, counts: Sequence[torch.Tensor]) -> torch.Tensor:
        """Spike-rate regularisers: mean spikes per neuron and sample above ``f_upper`` (λ_upper, linear),
        each neuron's count below ``f_lower`` (λ_lower, squared); summed over layers, mean over batch."""
        cfg = self.cfg
        total = counts[0].new_zeros(())
        for c in counts:
            B, H = c.shape
            upper = cfg.lambda_upper * (c.sum(1) / H - cfg.f_upper).clamp(min=0.0)
            lower = cfg.lambda_lower * ((cfg.f_lower - c).clamp(min=0.0) ** 2).sum(1) / H
            total = total + (upper + lower).sum() / B
        return total

    def loss(self, out: SNNOutput, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(out.logits, y) + self.regularizer(out.counts)


def _no_timer(name: str):
    return contextlib.nullcontext()
