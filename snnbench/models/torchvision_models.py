"""torchvision classification models by name: ``{name: "torchvision:resnet34", weights: ...}``.

``weights`` is a local state-dict file (``/path/resnet34.pth``, a torchvision download or your own
fine-tuned weights) or the name of a torchvision weights enum member (``IMAGENET1K_V1``), which is
fetched through torchvision only when the suite allows downloading. The model is a plain ReLU ANN;
the conversion pipeline traces it (conversion/graph.py), so any architecture made of supported ops
works without code of its own here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from torch import nn

PREFIX = "torchvision:"


def is_torchvision(name: str) -> bool:
    return name.startswith(PREFIX)


def architecture(name: str) -> str:
    arch = name[len(PREFIX) :]
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if arch not in available:
        raise ValueError(f"unknown torchvision classification model {arch!r}; expected one of {available}")
    return arch


def weights_enum(arch: str, weights: str):
    """The torchvision weights enum member ``weights`` of ``arch`` (ValueError if it has none such)."""
    import torchvision

    members = torchvision.models.get_model_weights(arch)
    try:
        return members[weights]
    except KeyError:
        raise ValueError(
            f"torchvision model {arch!r} has no weights {weights!r}; expected a file path or one of "
            f"{[m.name for m in members]}"
        ) from None


def _is_path(weights: str) -> bool:
    return isinstance(weights, str) and "/" in weights or weights.startswith("~") or weights.endswith((".pth", ".pt"))


def _cached(member) -> bool:
    """Whether torchvision's download of ``member`` is already in torch's hub cache."""
    import torch

    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(member.url).name).is_file()


def build_torchvision(
    name: str,
    *,
    num_classes: Optional[int] = None,
    weights: Optional[str] = None,
    download: bool = False,
    fetch: bool = True,
) -> nn.Module:
    """The torchvision model ``name`` (``torchvision:<arch>``), with ``weights`` loaded if given.

    ``fetch=False`` (the preflight) resolves enum weights (the member exists, it is cached or may be
    downloaded) without reading them and returns the bare architecture of their class count."""
    import torchvision

    arch = architecture(name)
    if weights is not None and not isinstance(weights, str):
        raise ValueError(f"weights: expected a state-dict file path or a weights enum name, got {weights!r}")
    if weights is None:
        kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
        return torchvision.models.get_model(arch, weights=None, **kwargs)
    if _is_path(weights):
        path = Path(weights).expanduser()
        if not path.is_file():
            from snnbench.safe_io import MissingFileError

            raise MissingFileError(
                f"weights file {path} not found: save a state dict there (torch.save(model.state_dict(), ...)), "
                f"or name a torchvision weights enum member (e.g. weights: IMAGENET1K_V1) and allow downloading "
                f"with `download: true` under the dataset"
            )
        from snnbench.models.checkpoint import _unwrap, load_state
        from snnbench.safe_io import load_tensors

        # Any wrapper the checkpoint loader accepts (state_dict, model, net ...) before the class count is read.
        state = _unwrap(load_tensors(path, "the torchvision weights file"))
        classes = _classes_of(state)
        model = torchvision.models.get_model(arch, weights=None, **({"num_classes": classes} if classes else {}))

        return load_state(model, state)
    member = weights_enum(arch, weights)
    if not download and not _cached(member):
        raise FileNotFoundError(
            f"weights {arch} {member.name} are not downloaded without permission: set `download: true` under "
            f"the dataset to let torchvision fetch {member.url}, or download that file and give its path as "
            f"`weights: /path/{Path(member.url).name}`"
        )
    if not fetch:
        return torchvision.models.get_model(arch, weights=None, num_classes=len(member.meta["categories"]))
    return torchvision.models.get_model(arch, weights=member)


def _classes_of(state) -> Optional[int]:
    """The class count of a classification state dict: the rows of its last 2-D weight."""
    last = None
    for key, value in state.items():
        if key.endswith("weight") and getattr(value, "dim", lambda: 0)() == 2:
            last = value
    return int(last.shape[0]) if last is not None else None


def eval_transform(name: str, weights: Optional[str]):
    """The weights' own evaluation transform (torchvision enum weights), else None."""
    if weights is None or _is_path(weights):
        return None
    return weights_enum(architecture(name), weights).transforms()
