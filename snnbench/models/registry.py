"""Models by name, so a suite can say ``models: [vgg16, {name: resnet20, width: 16}]``.

Each entry is "module:function"; the function takes ``levels``, ``num_classes``, ``in_channels``
and the model's own keyword parameters and returns an ``nn.Module`` with QCFS activations.
``activation: relu`` builds the same architecture with ReLU in place of every QCFS (a plain ReLU
ANN, converted with data-based thresholds); ``activation: rts`` with RTS's threshold ReLU
(``rts_thresh``, ``shift_relu``; models/rts.py). ``torchvision:<arch>`` names a torchvision classification
model (models/torchvision_models.py). Modules load lazily so that naming one model never imports
the others.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from torch import nn

MODELS: dict[str, str] = {
    "digits_cnn": "snnbench.models.digits_cnn:digits_cnn",
    "vgg16": "snnbench.models.vgg:vgg16",
    "resnet20": "snnbench.models.resnet:resnet20",
    "resnet18": "snnbench.models.resnet:resnet18",
    "resnet34": "snnbench.models.resnet:resnet34",
}


def _load(table: dict[str, str], name: str, what: str):
    """The factory ``table`` names ``name`` ("module:function"), imported only now."""
    target = table.get(name)
    if target is None:
        raise ValueError(f"unknown {what} {name!r}; expected one of {sorted(table)}")
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _factory(name: str):
    return _load(MODELS, name, "model")


ACTIVATIONS = ("qcfs", "relu", "rts")
# The RTS activation's own parameters (models/rts.py): its fixed threshold (the official ``--thresh``)
# and the training shift (``--shift_relu``). They change the trained weights, so they stay in the
# ANN's cache key.
RTS_PARAMETERS = {"rts_thresh": 1.0, "shift_relu": 0}
# Read by the conversion pipeline (ReLU thresholds, torchvision weights), never by a factory.
CONVERSION_PARAMETERS = {
    "threshold",
    "threshold_batches",
    "threshold_granularity",
    "family",
    "shift_snn",
    "spiking_output",
}
# The model parameters whose value is true or false (every other one is a number or a name).
BOOLEAN_PARAMETERS = {"spiking_output"}
TORCHVISION_PARAMETERS = {"weights"} | CONVERSION_PARAMETERS


def _relu_everywhere(model: nn.Module) -> nn.Module:
    from snnbench.models.qcfs import QCFS

    for name, module in list(model.named_modules()):
        if isinstance(module, QCFS):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, nn.ReLU())
    return model


def build_model(
    name: str, *, levels: int, num_classes: int, in_channels: int = 3, activation: str = "qcfs", **params: Any
) -> nn.Module:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    rts = {key: params.pop(key) for key in RTS_PARAMETERS if key in params}
    if rts and activation != "rts":
        raise ValueError(f"{sorted(rts)}: only for activation: rts")
    factory = _factory(name)
    accepted = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = [k for k in params if k not in accepted]
    if unknown and not takes_any:
        raise ValueError(f"model {name!r} takes no parameter(s) {unknown}; it accepts {sorted(accepted)}")
    model = factory(levels=levels, num_classes=num_classes, in_channels=in_channels, **params)
    if activation == "rts":
        from snnbench.models.rts import rts_everywhere

        rts = {**RTS_PARAMETERS, **rts}
        return rts_everywhere(model, rts["rts_thresh"], rts["shift_relu"])
    return _relu_everywhere(model) if activation == "relu" else model


# Filled in by the builder, never by a suite: a suite may still set ``levels`` per model.
_BUILDER_ARGS = {"num_classes", "in_channels"}


def model_parameters(name: str) -> set[str]:
    """The keyword parameters a suite may give model ``name`` (raises ValueError if unknown)."""
    from snnbench.models.torchvision_models import architecture, is_torchvision

    if is_torchvision(name):
        architecture(name)
        return set(TORCHVISION_PARAMETERS)
    own = set(inspect.signature(_factory(name)).parameters) - _BUILDER_ARGS
    return own | {"activation"} | CONVERSION_PARAMETERS | set(RTS_PARAMETERS)


# Spiking CNNs of the direct-training track: built with the training method's neuron options instead
# of QCFS levels. The factory takes ``num_classes``, ``in_channels``, ``neuron`` and its own parameters.
SPIKING_MODELS: dict[str, str] = {
    "spiking_cnn_small": "snnbench.models.spiking_cnn:spiking_cnn_small",
    "resnet19": "snnbench.models.spiking_cnn:resnet19",
    "vggsnn": "snnbench.models.spiking_cnn:vggsnn",
}
_SPIKING_BUILDER_ARGS = {"num_classes", "in_channels", "neuron"}


def _spiking_factory(name: str):
    return _load(SPIKING_MODELS, name, "direct-training model")


def spiking_model_parameters(name: str) -> set[str]:
    """The keyword parameters a suite may give direct-training model ``name``."""
    return set(inspect.signature(_spiking_factory(name)).parameters) - _SPIKING_BUILDER_ARGS


def build_spiking_model(
    name: str, *, num_classes: int, in_channels: int, neuron: dict[str, Any], **params: Any
) -> nn.Module:
    unknown = sorted(set(params) - spiking_model_parameters(name))
    if unknown:
        raise ValueError(
            f"model {name!r} takes no parameter(s) {unknown}; it accepts {sorted(spiking_model_parameters(name))}"
        )
    return _spiking_factory(name)(num_classes=num_classes, in_channels=in_channels, neuron=neuron, **params)
