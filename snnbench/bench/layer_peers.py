"""The spiking neuron of every SNN library, each configured to an snnbench LIF, for ``bench layer``.

A :class:`Peer` names the snnbench neuron it equals (``neuron``: the keywords of
:func:`snnbench.kernels.neuron.lif_options`) and builds a time-major step ``x[T, B, ...] → spikes``.
Libraries differ in what they can express, so each peer is matched to the snnbench neuron it *can*
be, and :func:`check_peer` proves the match before anything is timed: the same spikes, bit for bit,
and input gradients within :data:`GRAD_TOLERANCE` of the snnbench PyTorch reference under autograd
(the oracle). A peer that is absent is skipped with a one-line reason; one whose spikes differ is
reported as such and never timed.

This module must not import ``snnbench.config`` (pydantic is absent on the GPU machines).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Optional

import torch

from snnbench import interrupts
from snnbench.errors import BenchInputError

Step = Callable[[torch.Tensor], torch.Tensor]

# max |Δ∂L/∂x| over max |∂L/∂x|: fp32 rounding of the same recurrence in another order.
GRAD_TOLERANCE = 1e-4
# The neuron of the Open Neuromorphic protocol and of SpikingJelly's LIFNode defaults.
SJ_NEURON = {
    "tau": 2.0,
    "decay_input": True,
    "threshold": 1.0,
    "reset": "hard",
    "v_reset": 0.0,
    "surrogate": "sigmoid",
    "alpha": 4.0,
}


@dataclass(frozen=True)
class Peer:
    """One implementation: ``build(device, dtype) -> step``; ``package`` is the distribution whose
    absence skips it; ``neuron`` the snnbench LIF it equals; ``match`` how its semantics were mapped."""

    name: str
    package: Optional[str]
    neuron: dict[str, Any]
    build: Callable[[str, torch.dtype], Step]
    match: str
    cuda_only: str = ""  # why it is timed on CUDA only ("" when it runs anywhere)
    ours: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def version(package: Optional[str]) -> Optional[str]:
    """The installed version of ``package`` (None when absent or not importable)."""
    if package is None:
        return torch.__version__
    try:
        __import__(package.replace("-", "_"))
        return metadata.version(package)
    except Exception as err:  # noqa: BLE001 - absent, or present but broken: the peer is skipped
        interrupts.raise_if_interrupt(err)
        return None


# --------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------


def _snnbench(save_dtype: str) -> Callable[[str, torch.dtype], Step]:
    def build(device: str, dtype: torch.dtype) -> Step:
        from snnbench.neurons import MultiStepLIF

        return MultiStepLIF(backend="auto", save_dtype=save_dtype, **SJ_NEURON)

    return build


def _torch_loop(device: str, dtype: torch.dtype) -> Step:
    from snnbench.bench.peers import plain_lif_loop

    return lambda x: plain_lif_loop(x, **SJ_NEURON)


def _torch_compile(device: str, dtype: torch.dtype) -> Step:
    return torch.compile(_torch_loop(device, dtype))


def _spikingjelly(device: str, dtype: torch.dtype) -> Step:
    from snnbench.bench.peers import spikingjelly_lif_step

    return spikingjelly_lif_step(SJ_NEURON)


def _snntorch(device: str, dtype: torch.dtype) -> Step:
    import snntorch
    from snntorch import surrogate

    cell = snntorch.Leaky(beta=0.5, threshold=1.0, spike_grad=surrogate.atan(alpha=2.0), reset_mechanism="subtract")
    cell.to(device)

    def step(x: torch.Tensor) -> torch.Tensor:
        mem = torch.zeros_like(x[0])
        spikes = []
        for t in range(x.shape[0]):
            spk, mem = cell(x[t], mem)
            spikes.append(spk)
        return torch.stack(spikes)

    return step


def _norse_cell(device: str):
    from norse.torch import LIFBoxCell
    from norse.torch.functional.lif_box import LIFBoxParameters

    dt = 1e-3  # Norse's default; τ_mem = 2 steps
    params = LIFBoxParameters(
        tau_mem_inv=torch.as_tensor(1.0 / (2.0 * dt)),
        v_leak=torch.as_tensor(0.0),
        v_th=torch.as_tensor(1.0),
        v_reset=torch.as_tensor(0.0),
        method="super",
        alpha=torch.as_tensor(100.0),
    )
    return LIFBoxCell(p=params, dt=dt).to(device)


def _norse(device: str, dtype: torch.dtype) -> Step:
    cell = _norse_cell(device)

    def step(x: torch.Tensor) -> torch.Tensor:
        state, spikes = None, []
        for t in range(x.shape[0]):
            z, state = cell(x[t], state)
            spikes.append(z)
        return torch.stack(spikes)

    return step


def _norse_compile(device: str, dtype: torch.dtype) -> Step:
    return torch.compile(_norse(device, dtype))


def _sinabs(exodus: bool) -> Callable[[str, torch.dtype], Step]:
    def build(device: str, dtype: torch.dtype) -> Step:
        from sinabs.activation import Gaussian, MembraneSubtract, SingleSpike

        if exodus:
            from sinabs.exodus.layers import LIF
        else:
            from sinabs.layers import LIF
        layer = LIF(
            tau_mem=2.0,
            spike_threshold=1.0,
            spike_fn=SingleSpike,
            reset_fn=MembraneSubtract(),
            surrogate_grad_fn=Gaussian(sigma=0.5),
            norm_input=True,
        ).to(device)

        def step(x: torch.Tensor) -> torch.Tensor:
            layer.reset_states()
            return layer(x.transpose(0, 1)).transpose(0, 1)  # Sinabs is batch-major [B, T, ...]

        return step

    return build


SNNTORCH_NEURON = {
    "beta": 0.5,
    "decay_input": False,
    "reset": "subtract",
    "detach_reset": True,
    "surrogate": "atan",
    "alpha": 2.0,
}
# Norse 1.1's SuperSpike backward ignores its alpha: grad/(|u| + 1)², snnbench's fast_sigmoid at α = 1.
NORSE_NEURON = {**SJ_NEURON, "surrogate": "fast_sigmoid", "alpha": 1.0}
SINABS_NEURON = {
    "beta": float(torch.exp(torch.tensor(-1.0 / 2.0))),
    "decay_input": True,
    "reset": "soft",
    "surrogate": "gaussian",
    "alpha": 2.0,
}
_COMPILE_CPU = "timed on CUDA only (Inductor's CPU compile of a T-step loop costs minutes here)"

PEERS: tuple[Peer, ...] = (
    Peer("snnbench", None, SJ_NEURON, _snnbench("fp32"), "the neuron itself", ours=True),
    Peer(
        "snnbench_save_bf16",
        None,
        SJ_NEURON,
        _snnbench("bf16"),
        "u saved in bf16 for the backward",
        cuda_only="the CPU path keeps u in fp32",
        ours=True,
        extra={"grad_tolerance": 2e-2},
    ),
    Peer("torch_loop", None, SJ_NEURON, _torch_loop, "a plain PyTorch time loop under autograd"),
    Peer("torch_compile", None, SJ_NEURON, _torch_compile, "that loop under torch.compile", cuda_only=_COMPILE_CPU),
    Peer(
        "spikingjelly",
        "spikingjelly",
        SJ_NEURON,
        _spikingjelly,
        "lif_multi_step: LIFNode(tau=2, decay_input, v_reset=0)",
    ),
    Peer(
        "snntorch",
        "snntorch",
        SNNTORCH_NEURON,
        _snntorch,
        "Leaky(beta=0.5, subtract reset, detached, fires above θ, atan α=2): snnbench reset='subtract'",
    ),
    Peer(
        "norse",
        "norse",
        NORSE_NEURON,
        _norse,
        "LIFBoxCell(τ=2 steps, hard reset, SuperSpike; its backward ignores α=100): snnbench fast_sigmoid α=1",
    ),
    Peer(
        "norse_compile", "norse", NORSE_NEURON, _norse_compile, "LIFBoxCell under torch.compile", cuda_only=_COMPILE_CPU
    ),
    Peer(
        "sinabs",
        "sinabs",
        SINABS_NEURON,
        _sinabs(False),
        "LIF(τ=2 → β=e^-1/2, norm_input, SingleSpike, MembraneSubtract, Gaussian σ=0.5): snnbench soft reset",
    ),
    Peer(
        "sinabs_exodus",
        "sinabs-exodus",
        SINABS_NEURON,
        _sinabs(True),
        "Sinabs LIF on its EXODUS CUDA extension",
        cuda_only="EXODUS is a CUDA extension",
    ),
)


def peer_named(name: str) -> Peer:
    for peer in PEERS:
        if peer.name == name:
            return peer
    raise BenchInputError(f"impls: unknown implementation {name!r}; expected one of {[p.name for p in PEERS]}")


def unavailable(peer: Peer, device: str) -> str:
    """Why ``peer`` cannot run here ("" when it can): a one-line reason."""
    if peer.cuda_only and device != "cuda":
        return f"skipped: {peer.cuda_only}"
    if peer.package is not None and version(peer.package) is None:
        return f"skipped: {peer.package} is not installed (pip install 'snnbench[peers]')"
    return ""


# --------------------------------------------------------------------------------------------------
# The equivalence check
# --------------------------------------------------------------------------------------------------


def _oracle(x: torch.Tensor, neuron: dict[str, Any]) -> torch.Tensor:
    """The snnbench neuron ``neuron`` as the PyTorch reference under autograd (fp32 u)."""
    from snnbench.kernels.neuron import lif_options
    from snnbench.kernels.neuron_options import neuron_call
    from snnbench.kernels.neuron_reference import neuron_reference_autograd

    opts = lif_options(save_dtype="fp32", **neuron)
    return neuron_reference_autograd(x, opts, neuron_call(x, opts, None, None, None))[0]


def _spikes_and_grad(step: Step, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xr = x.detach().clone().requires_grad_(True)
    spikes = step(xr)
    (gx,) = torch.autograd.grad(spikes, xr, grad.to(spikes.dtype))
    return spikes.detach().float(), gx.float()


def check_peer(peer: Peer, device: str, T: int = 16, shape: tuple[int, ...] = (4, 64)) -> dict[str, Any]:
    """Spikes and input gradient of ``peer`` against the snnbench neuron it claims to equal, on one
    fixed fp32 input ``x[T, *shape]`` of ``device``; ``equal`` is True only when every spike agrees and
    the gradients are within the peer's tolerance. Errors are reported, not raised."""
    tolerance = peer.extra.get("grad_tolerance", GRAD_TOLERANCE)
    row: dict[str, Any] = {"impl": peer.name, "neuron": dict(peer.neuron), "match": peer.match}
    row["grad_tolerance"] = tolerance
    gen = torch.Generator(device="cpu").manual_seed(22)
    x = (1.5 * torch.randn((T, *shape), generator=gen) + 0.3).to(device)
    grad = torch.randn((T, *shape), generator=gen).to(device)
    try:
        s_peer, g_peer = _spikes_and_grad(peer.build(device, torch.float32), x, grad)
        s_ref, g_ref = _spikes_and_grad(lambda v: _oracle(v, peer.neuron), x, grad)
    except Exception as err:  # noqa: BLE001 - a broken peer is reported, the others still run
        interrupts.raise_if_interrupt(err)
        row.update(
            equal=False, note=f"error: {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
        )
        return row
    mismatch = (s_peer != s_ref).float().mean().item()
    scale = g_ref.abs().max().item() or 1.0
    grad_diff = (g_peer - g_ref).abs().max().item() / scale
    row.update(
        spike_rate=s_ref.mean().item(),
        spike_mismatch_frac=mismatch,
        grad_max_abs_diff_rel=grad_diff,
        equal=mismatch == 0.0 and math.isfinite(grad_diff) and grad_diff <= tolerance,
    )
    if mismatch:
        row["note"] = f"spikes differ from the snnbench neuron ({100 * mismatch:.3g}% of spikes): not timed"
    elif not row["equal"]:
        row["note"] = f"input gradients differ by {grad_diff:.2g} (> {tolerance:g} of max |grad|): not timed"
    return row
