"""The IF neuron of the SNN Calibration family (Li et al., ICML 2021; the FTBC repository's ``SNNC``).

SNN Calibration's ``SpikeModule`` differs from the QCFS IF layer (``convert.SpikingLayer``) in three
ways, each reproduced here in its floating-point order:

- the membrane starts at ``mem_pot_init`` (0, or the per-neuron potential of ``advanced``), not θ/2;
  instead every step's input carries the shift ``θ·0.5/T`` (``enable_shift``), T being the simulation
  length the network was converted for;
- a per-step bias (FTBC's ``time_dependent_biases``) comes off *after* the input went on:
  ``u = (v + x_t) - b_t`` (the IF kernel's ``bias_order="after_input"``); ``bias_order: kernel`` runs
  the QCFS route's ``(v - b_t) + x_t`` instead (the two differ by rounding only);
- ``light`` moves the bias of the convolution before the layer (calibration.py does that), not the
  membrane.

Every layer runs on the fused IF kernel on CUDA and on its PyTorch reference on the CPU.
"""

from __future__ import annotations

import operator
from typing import Iterator, Optional

import torch
from torch import fx, nn

from snnbench.conversion.convert import SpikingLayer, spiking_layers
from snnbench.kernels.neuron import NeuronOptions, run_neuron

BIAS_ORDERS = ("official", "kernel")
_AFTER_INPUT = NeuronOptions(output="scaled", bias_order="after_input")


def channel_view(p: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """A ``[C]`` (or one-value) tensor shaped to broadcast over one step ``[B, C, ...]``."""
    return p.reshape(()) if p.numel() == 1 else p.reshape((-1,) + (1,) * (step.dim() - 2))


class SNNCSpikingLayer(SpikingLayer):
    """An IF layer with SNN Calibration's shift, initial membrane and bias order."""

    def __init__(self, layer: SpikingLayer, sim_length: int, bias_order: str = "official") -> None:
        super().__init__(layer.neuron.thresh, layer.neuron.channels)
        if bias_order not in BIAS_ORDERS:
            raise ValueError(f"bias_order must be one of {list(BIAS_ORDERS)}, got {bias_order!r}")
        self.neuron = layer.neuron
        self.sim_length = int(sim_length)
        self.bias_order = bias_order
        # mem_pot_init: empty means 0; ``advanced`` sets one value per neuron, [1, C, ...].
        self.register_buffer("initial", torch.zeros(0, device=layer.neuron.thresh.device))

    def shifted(self, seq: torch.Tensor) -> torch.Tensor:
        """The input currents plus the official shift ``θ·0.5/T`` (the same ops, in that order)."""
        return seq + channel_view(self.neuron.thresh, seq[0]) * 0.5 / self.sim_length

    def start(self, step: torch.Tensor) -> torch.Tensor:
        """The membrane of step 0 (``mem_pot_init``), broadcast to one step."""
        init = self.initial if self.initial.numel() else torch.zeros((), device=step.device)
        return init.expand(step.shape)

    def run(
        self, seq: torch.Tensor, v_init: Optional[torch.Tensor] = None, t_offset: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps ``seq[T, B, ...]`` of unshifted input from ``v_init`` (``start`` if None): (θ·s, v)."""
        x = self.shifted(seq)
        v0 = self.start(x[0]) if v_init is None else v_init
        bias = self.neuron.bias_for(x.shape[0], t_offset)
        if bias is None or self.bias_order == "kernel":
            return self.neuron.simulate(x, v_init=v0, t_offset=t_offset)
        # The official order, (v + x_t) - b_t: the IF kernel's after-input mode (the RTS code's order).
        return run_neuron(
            x, _AFTER_INPUT, backend=self.neuron.backend, threshold=self.neuron.thresh, bias=bias, v_init=v0
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape((self.steps, -1) + tuple(x.shape[1:]))
        out, v = self.run(seq, v_init=self.carry, t_offset=self.offset)
        self.carry, self.offset = v, self.offset + self.steps
        return out.reshape(x.shape)


def to_snnc(snn: nn.Module, sim_length: int, bias_order: str = "official") -> nn.Module:
    """``snn`` (from ``convert``) with every IF layer made an :class:`SNNCSpikingLayer`, in place."""
    for name, layer in list(spiking_layers(snn)):
        parent_name, _, child = name.rpartition(".")
        parent = snn.get_submodule(parent_name) if parent_name else snn
        setattr(parent, child, SNNCSpikingLayer(layer, sim_length, bias_order))
    return snn


_ADDS = {operator.add, torch.add, "add"}


def _is_residual_add(node: fx.Node) -> bool:
    return node.op in ("call_function", "call_method") and node.target in _ADDS


def _if_layer_sources(snn: nn.Module) -> Iterator[tuple[str, fx.Node]]:
    """Each IF layer of a traced SNN with the node whose output it integrates."""
    if not isinstance(snn, fx.GraphModule):
        raise ValueError("the SNN Calibration family needs a traced ReLU network (activation: relu)")
    modules = dict(snn.named_modules())
    for node in snn.graph.nodes:
        if node.op == "call_module" and isinstance(modules.get(node.target), SpikingLayer):
            yield node.target, node.args[0]


def residual_layers(snn: nn.Module) -> set[str]:
    """The IF layers that integrate a residual sum: the official ``SpikeResModule``s (a block's last
    convolution, its shortcut added before the shift ``θ·0.5/T``, the block output's threshold)."""
    return {name for name, source in _if_layer_sources(snn) if _is_residual_add(source)}


def preceding_affine(snn: nn.Module) -> dict[str, nn.Module]:
    """The convolution or linear layer whose output each IF layer integrates, by IF layer name.

    SNN Calibration's ``SpikeModule`` is a convolution and its neuron; ``light`` moves that
    convolution's bias. A ``SpikeResModule`` integrates its convolution plus the block's shortcut:
    its convolution is the main branch, the add's first operand in snnbench's and torchvision's
    blocks (``residual_function(x) + shortcut(x)``, ``out += identity``); the shortcut's 1×1
    convolution is no SpikeModule officially and ``light`` leaves it alone."""
    modules = dict(snn.named_modules())
    found: dict[str, nn.Module] = {}
    for name, source in _if_layer_sources(snn):
        branch = source.args[0] if _is_residual_add(source) else source
        affine = modules.get(branch.target) if getattr(branch, "op", None) == "call_module" else None
        if not isinstance(affine, (nn.Conv2d, nn.Linear)):
            raise ValueError(
                f"IF layer {name!r} integrates {getattr(branch, 'name', branch)!r}, not a convolution or "
                "linear layer (nor a residual sum whose first operand is one); SNN Calibration's light "
                "bias lives in the layer's convolution"
            )
        found[name] = affine
    return found


def shortcut_sources(snn: nn.Module) -> dict[str, nn.Module]:
    """For each IF layer that integrates a residual sum, the module whose output is the add's second
    operand (the official ``SpikeResModule``'s ``residual``): the shortcut's convolution, or the layer
    or pooling that gave the block its input."""
    modules = dict(snn.named_modules())
    found: dict[str, nn.Module] = {}
    for name, source in _if_layer_sources(snn):
        if not _is_residual_add(source):
            continue
        operand = source.args[1]
        module = modules.get(operand.target) if getattr(operand, "op", None) == "call_module" else None
        if module is None:
            raise ValueError(f"IF layer {name!r} adds {getattr(operand, 'name', operand)!r}, not a module's output")
        found[name] = module
    return found
