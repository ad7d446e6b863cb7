"""ReLU ANNs (snnbench's own or torchvision's) made convertible by tracing their graph with torch.fx.

No per-architecture code: the model is traced, every op is checked against what an IF conversion
supports, BatchNorm is folded into the convolution or linear layer before it (torch.fx's ``fuse``),
and every ReLU call becomes its own :class:`ClipReLU` module (a ReLU module called twice, as in
torchvision's residual blocks, gets one module per call, because each call becomes a separate IF
layer with its own membrane). Thresholds then come from activation statistics on training batches
(``thresholds.relu_thresholds``).

Supported: conv, linear, BatchNorm, ReLU, average and adaptive-average pooling, residual add,
flatten / view / reshape, dropout (identity in eval), max pooling as the spiking max-pool gate
(``convert.SpikingMaxPool``). Anything else is refused by name.
"""

from __future__ import annotations

import copy
import operator
from typing import Callable

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.experimental.optimization import fuse

from snnbench.models.activations import THRESHOLD_ACTIVATIONS, ClipReLU

SUPPORTED_MODULES: tuple[type, ...] = (
    nn.Conv2d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.MaxPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
) + THRESHOLD_ACTIVATIONS
_RELU_FUNCTIONS: set[Callable] = {F.relu, torch.relu}
SUPPORTED_FUNCTIONS: set[Callable] = _RELU_FUNCTIONS | {
    operator.add,
    torch.add,
    torch.flatten,
    F.adaptive_avg_pool2d,
    F.avg_pool2d,
    F.dropout,
}
SUPPORTED_METHODS = {"relu", "add", "flatten", "view", "reshape", "size", "contiguous"}
_ALTERNATIVES = {
    "max_pool2d": "use nn.MaxPool2d (converted to the spiking max-pool gate) or average pooling",
    "adaptive_max_pool2d": "use nn.MaxPool2d with a fixed window or adaptive average pooling",
    "AdaptiveMaxPool2d": "use nn.MaxPool2d with a fixed window or adaptive average pooling",
}


class UnsupportedOpError(ValueError):
    """The model holds an op that has no IF-conversion; the message names the op and the node."""


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # Threshold activations are converted whole; the standard ones are leaves already.
        return isinstance(m, THRESHOLD_ACTIVATIONS) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    try:
        graph = _Tracer().trace(model)
    except Exception as err:  # data-dependent control flow and the like
        raise UnsupportedOpError(
            f"{type(model).__name__} cannot be traced with torch.fx ({err.__class__.__name__}: {err}); "
            "a convertible model is a static graph of conv / linear / BN / ReLU / pooling / add / flatten"
        ) from None
    return fx.GraphModule(model, graph, type(model).__name__)


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return str(node.target)


def check_ops(gm: fx.GraphModule) -> None:
    """Raise :class:`UnsupportedOpError` naming the first op an IF conversion cannot handle."""
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op == "call_module":
            ok = isinstance(modules[node.target], SUPPORTED_MODULES)
        elif node.op == "call_function":
            ok = node.target in SUPPORTED_FUNCTIONS
        elif node.op == "call_method":
            ok = node.target in SUPPORTED_METHODS
        else:  # placeholder, output, get_attr
            ok = True
        if not ok:
            op = _describe(node, modules)
            hint = _ALTERNATIVES.get(
                op,
                "supported: conv, linear, BatchNorm, ReLU, average / adaptive-average "
                "pooling, max pooling (nn.MaxPool2d), residual add, flatten, dropout",
            )
            where = f" at {node.target!r}" if node.op == "call_module" else f" (node {node.name!r})"
            raise UnsupportedOpError(f"cannot convert op {op}{where} to an SNN; {hint}")


def _relu_calls_to_modules(gm: fx.GraphModule) -> None:
    """Every ReLU call (module, function or method) becomes a call of its own ClipReLU module."""
    modules = dict(gm.named_modules())
    relu_modules = {name for name, m in modules.items() if isinstance(m, nn.ReLU)}
    used: dict[str, int] = {}
    for node in list(gm.graph.nodes):
        is_module = node.op == "call_module" and node.target in relu_modules
        is_function = node.op == "call_function" and node.target in _RELU_FUNCTIONS
        is_method = node.op == "call_method" and node.target == "relu"
        if not (is_module or is_function or is_method):
            continue
        base = node.target if is_module else node.name
        count = used.get(base, 0)
        used[base] = count + 1
        name = base if count == 0 else f"{base}_{count}"
        while name in modules and name not in relu_modules:
            name += "_"
        gm.add_submodule(name, ClipReLU())
        modules[name] = gm.get_submodule(name)
        with gm.graph.inserting_after(node):
            replacement = gm.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(replacement)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()


def relu_graph(model: nn.Module, fold: str = "torch") -> fx.GraphModule:
    """A traced, BN-folded copy of ``model`` (in eval mode) with one :class:`ClipReLU` per ReLU call.

    ``fold``: ``"torch"`` (torch.fx's fuse) or ``"snnc"`` (SNN Calibration's formula and rule, see
    bn_fold.py). Thresholds start at ∞ (a plain ReLU): the copy computes what ``model`` computes."""
    if fold not in ("torch", "snnc"):
        raise ValueError(f"fold must be 'torch' or 'snnc', got {fold!r}")
    model = model.eval()
    # The official fold changes the convolutions in place: it works on a copy.
    gm = trace(model if fold == "torch" else copy.deepcopy(model))
    check_ops(gm)
    if fold == "torch":
        gm = fuse(gm, inplace=False, no_trace=True)
    else:
        from snnbench.conversion.bn_fold import fold_bn_official

        fold_bn_official(gm)
    _relu_calls_to_modules(gm)
    if not any(isinstance(m, ClipReLU) for m in gm.modules()):
        raise UnsupportedOpError(f"{type(model).__name__} has no ReLU: nothing becomes an IF layer")
    return gm.eval()


def has_qcfs(model: nn.Module) -> bool:
    from snnbench.models.qcfs import QCFS

    return any(isinstance(m, QCFS) for m in model.modules())
