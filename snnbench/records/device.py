"""Which device a suite or cell runs on, and waiting for it: one rule for the whole package."""

from __future__ import annotations

from typing import Union

DEVICES = ("auto", "cpu", "cuda")


def device_kind(requested: str = "auto") -> str:
    """The device a suite's cells run on here: ``auto`` means CUDA when torch sees a GPU. A named
    device is returned as asked, so a CUDA suite expands (and keys) the same on any machine."""
    if requested not in DEVICES:
        from snnbench.errors import UsageError

        raise UsageError(f"device: expected one of {', '.join(DEVICES)}, got {requested!r}")
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(name: str = "auto"):
    """The ``torch.device`` to run on; asking for CUDA where torch sees none is an error."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        from snnbench.errors import UsageError

        raise UsageError("device: cuda was asked for, but torch sees no CUDA device (use device: cpu or auto)")
    return torch.device(device_kind(name))


def synchronize(device: Union[str, "object"]) -> None:
    """Wait for queued GPU work, so a host clock measures it; nothing to do on the CPU."""
    import torch

    if str(getattr(device, "type", device)) == "cuda":
        torch.cuda.synchronize()
