"""SNN Calibration's BatchNorm folding (its ``models/fold_bn.py``), in its floating-point order.

torch.fx's ``fuse`` (the default fold of :func:`snnbench.conversion.graph.relu_graph`) computes the
same affine map with ``rsqrt``; SNN Calibration divides by ``sqrt(var + eps)``. The two differ in the
last bit, which moves membranes that sit on θ, so the SNN Calibration family folds this way
(``--usebn``: the ANN was trained with BN; the script folds every BN that follows a convolution).
"""

from __future__ import annotations

import torch
from torch import fx, nn


def _official_fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    w = conv.weight.data
    safe_std = torch.sqrt(bn.running_var + bn.eps)
    w_view = (conv.out_channels, 1, 1, 1)
    if bn.affine:
        weight = w * (bn.weight / safe_std).view(w_view)
        beta = bn.bias - bn.weight * bn.running_mean / safe_std
        bias = beta if conv.bias is None else bn.weight * conv.bias / safe_std + beta
    else:
        weight = w / safe_std.view(w_view)
        beta = -bn.running_mean / safe_std
        bias = beta if conv.bias is None else conv.bias / safe_std + beta
    return weight.detach(), bias.detach()


@torch.no_grad()
def fold_bn_official(gm: fx.GraphModule) -> None:
    """Fold, in place, every BatchNorm2d whose input is a Conv2d used by nothing else into it."""
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        prev = node.args[0]
        if not (isinstance(prev, fx.Node) and prev.op == "call_module" and len(prev.users) == 1):
            continue
        conv = modules[prev.target]
        if not isinstance(conv, nn.Conv2d):
            continue
        weight, bias = _official_fold(conv, modules[node.target])
        conv.weight = nn.Parameter(weight)
        conv.bias = nn.Parameter(bias)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
