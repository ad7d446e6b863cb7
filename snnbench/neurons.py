"""Multi-step spiking neuron modules over time-major tensors ``x[T, B, ...]``.

``MultiStepIF`` is what a QCFS activation becomes after conversion: θ = λ, v₀ = θ/2, soft reset, and
output θ·s. It holds an optional per-step, per-channel bias ``bias[T, C]`` (FTBC / light calibration)
that is subtracted from the membrane at step t. ``MultiStepLIF`` is the trainable leaky neuron of the
direct-training track (surrogate or LocalZO backward). Both run the fused kernels of
``snnbench.kernels.neuron`` on CUDA and its PyTorch reference elsewhere (``backend``), with options
prepared once per module (a call checks only its input), and under ``torch.compile`` the kernels as
the ``snnbench::neuron_forward`` custom op.
"""

from __future__ import annotations

import dataclasses
import inspect
from types import MappingProxyType
from typing import Any, Optional

import torch
from torch import nn

from snnbench.kernels.common import BACKENDS, choice, resolve_backend
from snnbench.kernels.neuron import NeuronOptions, lif_options, run_neuron
from snnbench.kernels.neuron_op import launch_op

# What a QCFS activation becomes after conversion: soft reset, v₀ = θ/2, output θ·s.
_IF_OPTIONS = NeuronOptions(output="scaled")
# What the RTS code's SPIKE_layer runs: v₀ = 0 and the bias taken off after the input (its order).
_RTS_OPTIONS = NeuronOptions(output="scaled", v_init=0.0, bias_order="after_input")


def _run(opts: NeuronOptions, x: torch.Tensor, backend: str, **tensors: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """One call of a module's prepared options; under torch.compile Triton runs as the custom op."""
    if torch.compiler.is_compiling() and resolve_backend(backend, x) == "triton":
        return run_neuron(x, opts, launch=launch_op, **tensors)
    return run_neuron(x, opts, backend=backend, **tensors)


class MultiStepIF(nn.Module):
    """Integrate-and-fire layer with soft reset, threshold ``thresh`` and a calibrated bias."""

    def __init__(self, threshold: float | torch.Tensor, channels: Optional[int] = None, backend: str = "auto") -> None:
        super().__init__()
        self.backend = choice("backend", backend, BACKENDS)  # "auto": Triton on CUDA, the reference elsewhere
        thresh = torch.as_tensor(threshold, dtype=torch.float32).detach().clone().reshape(-1)
        self.register_buffer("thresh", thresh)
        self.channels = channels
        # [T, C] once calibrated; empty means "no bias". A buffer so it is saved in the state dict.
        self.register_buffer("bias", torch.zeros(0, channels or 0))
        self.options = _IF_OPTIONS
        self.input_shift: Optional[torch.Tensor] = None  # added to every step's input (RTS's shift)

    def use_rts(self, shift_snn: int) -> None:
        """Run as the RTS code's SPIKE_layer: v₀ = 0, ``x_t + θ/(2·shift_snn)`` as each step's input
        (no shift when ``shift_snn`` is 0) and ``u = (v + x_t) - b_t``."""
        if self.thresh.numel() != 1:
            raise ValueError("the RTS neuron has one threshold per layer")
        self.options = _RTS_OPTIONS
        # The official ``thresh / (2 * shift_snn)``: an fp32 tensor divided by the integer.
        self.input_shift = self.thresh.reshape(()) / (2 * shift_snn) if shift_snn > 0 else None

    def set_bias(self, bias: torch.Tensor) -> None:
        self.bias = bias.detach().to(self.thresh.device, torch.float32).contiguous()

    def has_bias(self) -> bool:
        return self.bias.numel() > 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A saved calibrated model carries a [T, C] bias; adopt its shape before copying into it.
        key = prefix + "bias"
        if key in state_dict:
            self.bias = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def bias_for(self, steps: int, t_offset: int = 0) -> Optional[torch.Tensor]:
        """The bias of steps ``t_offset .. t_offset+steps-1``; steps past the calibrated T get none."""
        if not self.has_bias():
            return None
        # Calibration is causal in t: a model calibrated for T_max serves every T <= T_max.
        rows = self.bias[t_offset : t_offset + steps]
        if rows.shape[0] < steps:
            rows = torch.cat([rows, rows.new_zeros(steps - rows.shape[0], self.bias.shape[1])])
        return rows

    def simulate(
        self, x: torch.Tensor, v_init: Optional[torch.Tensor] = None, t_offset: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run steps ``x[T, B, ...]`` from membrane ``v_init`` (θ/2 if None); return (θ·s, v_final).

        ``t_offset`` is the global index of ``x[0]``, so a simulation split into chunks of time
        applies the right rows of the per-step bias.
        """
        if self.input_shift is not None:
            x = x + self.input_shift
        return _run(
            self.options,
            x,
            self.backend,
            threshold=self.thresh,
            bias=self.bias_for(x.shape[0], t_offset),
            v_init=v_init,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.simulate(x)[0]

    def extra_repr(self) -> str:
        return f"thresh={self.thresh.tolist() if self.thresh.numel() <= 4 else list(self.thresh.shape)}"


def _lif_defaults() -> dict[str, Any]:
    """Every keyword of a LIF neuron with its default: :func:`lif_options`' own, then the fields of
    :class:`NeuronOptions` it passes on (not the β, leak and gain it derives)."""
    own = {n: p.default for n, p in inspect.signature(lif_options).parameters.items() if p.kind is p.KEYWORD_ONLY}
    passed = {f.name: f.default for f in dataclasses.fields(NeuronOptions) if f.init and f.name not in ("leak", "gain")}
    return {**passed, **own}


class MultiStepLIF(nn.Module):
    """Leaky integrate-and-fire layer over ``x[T, B, ...]``; ``forward`` returns the spikes.

    The options are the keywords of :func:`snnbench.kernels.neuron.lif_options` (τ or β, decay_input,
    threshold, hard, soft or subtract reset, surrogate and its ``alpha``, LocalZO
    ``distribution``/``delta``/``q``/``seed``, ``save_dtype``, ``output``), checked and prepared once,
    here or in :meth:`set_options`: a call only checks its input. Each call starts from ``v_init``
    (default ``v_reset``); :meth:`simulate` also returns the final membrane (with the subtract reset,
    before the reset its last spike still owes, so it does not resume a run across calls). A LocalZO
    layer draws a fresh seed per call unless ``seed`` is set.
    """

    def __init__(self, tau: Optional[float] = None, *, backend: str = "auto", **options: Any) -> None:
        super().__init__()
        self.backend = choice("backend", backend, BACKENDS)  # "auto": Triton on CUDA, the reference elsewhere
        self._given: dict[str, Any] = {}
        self.set_options(tau=tau, **options)

    def set_options(self, **changes: Any) -> None:
        """Change options; they are checked and prepared again now, not at the next call."""
        given = {**self._given, **changes}
        if given.get("tau") is None and given.get("beta") is None:
            given["tau"] = 2.0
        self._prepared = lif_options(**given)
        self._given = given
        self._options = {**_lif_defaults(), **given}

    @property
    def options(self) -> MappingProxyType:
        """Every option's value, read-only: a change goes through :meth:`set_options`."""
        return MappingProxyType(self._options)

    def simulate(
        self, x: torch.Tensor, v_init: Optional[torch.Tensor | float] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Spikes for every step of ``x[T, B, ...]`` and the final membrane (fp32)."""
        return _run(self._prepared, x, self.backend, v_init=v_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.simulate(x)[0]

    def extra_repr(self) -> str:
        shown = ("tau", "beta", "threshold", "reset", "surrogate", "alpha", "delta", "q")
        return ", ".join(f"{k}={self.options[k]}" for k in shown if self.options[k] is not None)
