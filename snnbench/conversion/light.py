"""Light calibration (Li et al., ICML 2021, the "bias correction" of SNN_Calibration): a baseline.

From one batch of training images, layer by layer in forward order: run the SNN up to layer l with the
biases of layers < l already corrected, compare the mean output of layer l over T steps with the ANN's,
per channel, and move the layer's time-invariant bias by the difference:
``b ← b + (mean SNN output − mean ANN output)`` (the bias is subtracted from the membrane, so a layer
that fires too much gets a larger bias). Done in one SNN forward: each layer corrects itself just
before it runs and then feeds the next layer with its corrected output.
"""

from __future__ import annotations

import torch
from torch import nn

from snnbench.conversion.convert import simulate
from snnbench.conversion.layers import (
    LayerPair,
    ann_activations,
    before_each_layer,
    bias_rows,
    channel_dims,
    layer_pairs,
    unfold,
)


@torch.no_grad()
def light_calibrate(ann: nn.Module, snn: nn.Module, x: torch.Tensor, steps: int) -> None:
    """Calibrate ``snn`` in place from the image batch ``x`` for a simulation of ``steps`` steps."""
    ann.eval()
    snn.eval()
    pairs = layer_pairs(ann, snn)
    acts = ann_activations(ann, pairs, x)

    def correct_layer(pair: LayerPair, folded: torch.Tensor) -> None:
        currents = unfold(folded, steps)
        activation = acts.pop(pair.name)
        output, _ = pair.spiking.neuron.simulate(currents)  # with the layer's current bias
        dims = channel_dims(activation)
        snn_mean = output.float().mean(0).mean(dims)
        ann_mean = activation.float().mean(dims)
        bias = bias_rows(pair.spiking, steps, activation.shape[1])
        bias[:steps] += snn_mean - ann_mean
        pair.spiking.neuron.set_bias(bias)

    with before_each_layer(pairs, correct_layer):
        simulate(snn, x, steps)
