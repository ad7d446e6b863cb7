"""Loading trained QCFS ANNs: snnbench's own state dicts and the official QCFS / FTBC layouts.

Official checkpoints differ from ours only in names:
- the QCFS threshold λ is stored as ``<module>.up`` (older QCFS code) where we say ``<module>.thresh``;
  in residual blocks that named the post-add activation ``relu`` it is ``<block>.relu.up``, our
  ``<block>.act.thresh`` (the renaming FTBC's own loader applies);
- models trained under ``nn.DataParallel`` prefix every key with ``module.``;
- some files wrap the state dict as ``{"state_dict": ...}``, ``{"model": ...}`` or ``{"net": ...}``.

A renamed key is only used when the target model has that key, so nothing is guessed silently; when
keys still do not fit, :class:`ValueError` lists the missing, unexpected and mis-shaped ones.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Union

import torch
from torch import nn

from snnbench.safe_io import MissingFileError, UnusableFileError, load_tensors

_WRAPPER_KEYS = ("state_dict", "model", "net", "model_state_dict")
_LIST_LIMIT = 20


def _unwrap(obj: Any) -> Mapping[str, Any]:
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                return _unwrap(obj[key])
    raise ValueError(
        "the checkpoint is not a state dict (a mapping of names to tensors, possibly under "
        f"{list(_WRAPPER_KEYS)}); got {type(obj).__name__}"
    )


def _candidates(key: str) -> list[str]:
    """Names the checkpoint key may have in snnbench, most specific first."""
    out = [key]
    if key.startswith("module."):
        out += _candidates(key[len("module.") :])
    if key.endswith(".relu.up"):
        out.append(key[: -len("relu.up")] + "act.thresh")
    if key.endswith(".up") or key == "up":
        out.append(key[: -len("up")] + "thresh")
    return out


def _fmt(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LIST_LIMIT])
    more = f" (+{len(keys) - _LIST_LIMIT} more)" if len(keys) > _LIST_LIMIT else ""
    return f"[{shown}]{more}"


def translate_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``state`` to ``model``'s keys; raise ValueError listing what does not fit."""
    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, value in state.items():
        name = next((c for c in _candidates(key) if c in target), None)
        if name is None or name in mapped:
            unexpected.append(key)
            continue
        mapped[name] = value
    # Old BatchNorm checkpoints lack the step counter; it has no effect on eval-mode outputs. Official
    # QCFS checkpoints lack the levels snnbench stores (``_extra_state``); load_checkpoint warns.
    missing = [k for k in target if k not in mapped and not k.endswith(("num_batches_tracked", "_extra_state"))]
    mismatched = []
    for name, value in mapped.items():
        want = target[name]
        if tuple(value.shape) == tuple(want.shape) or want.numel() == 0:
            continue  # an empty buffer (an uncalibrated IF bias) adopts the saved shape
        if name.endswith("thresh") and value.numel() == want.numel():
            mapped[name] = value.reshape(want.shape)  # λ saved as a 0-d scalar
            continue
        mismatched.append(f"{name}: checkpoint {tuple(value.shape)} vs model {tuple(want.shape)}")
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys {_fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_fmt(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches {_fmt(mismatched)}")
        raise ValueError(f"checkpoint does not fit {type(model).__name__}: " + "; ".join(parts))
    for name, value in target.items():
        if name not in mapped:
            mapped[name] = value
    return mapped


def load_state(model: nn.Module, state: Any) -> nn.Module:
    """Load an in-memory checkpoint (any supported layout) into ``model``."""
    model.load_state_dict(translate_state_dict(model, _unwrap(state)), strict=True)
    return model


_WARNED: set[str] = set()


def stores_levels(state: Mapping[str, Any]) -> bool:
    return any(k.endswith("_extra_state") for k in state)


def load_checkpoint(model: nn.Module, path: Union[str, Path], levels_given: bool = True) -> nn.Module:
    """Load the checkpoint file at ``path`` into ``model`` (in place) and return the model.

    A checkpoint that stores its QCFS levels must match the model's (ValueError otherwise). One that
    stores none (the official layout) loaded with the default L (``levels_given=False``) warns once
    per file, saying how to set L."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} not found")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    # Pickled objects other than tensors are refused, never executed; the error names the file.
    obj = load_tensors(path, "the checkpoint", map_location=device)
    try:
        state = _unwrap(obj)
        load_state(model, state)
    except ValueError as err:
        raise UnusableFileError(f"{path}: {err}") from None
    levels = sorted({m.levels for m in model.modules() if isinstance(getattr(m, "levels", None), int)})
    if levels and not levels_given and not stores_levels(state) and str(path) not in _WARNED:
        _WARNED.add(str(path))
        warnings.warn(
            f"{path} does not record its QCFS levels (an official checkpoint?); loading it with the "
            f"default L={levels[0]}. If it was trained with another L, set `levels: <L>` in the model "
            "entry (or training.levels).",
            stacklevel=2,
        )
    return model
