"""The peers a bench times snnbench against: the same neuron written by others. A PyTorch user's time
loop (``plain_lif_loop``, also the loop ``torch.compile`` gets) and SpikingJelly's multi-step LIF
(``spikingjelly_lif_step``, an optional extra: ``pip install 'snnbench[peers]'``). Each takes the
sweep's ``model`` mapping (tau, decay_input, threshold, reset, v_reset, alpha) and returns a function
of ``x[T, ...]``; a peer that cannot be built here raises ImportError, and the bench records the row as
skipped with that message. ``LIF_PEERS`` names the peers a bench row can ask for (the ``impls`` of
the sweep); a bench of whole layers adds its peers here beside these.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from snnbench import interrupts


class _SigmoidSpike(torch.autograd.Function):
    """H(u) forward, α·σ(αu)·(1-σ(αu)) backward: the surrogate a plain PyTorch user writes."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (u,) = ctx.saved_tensors
        sig = torch.sigmoid(ctx.alpha * u)
        return grad * ctx.alpha * sig * (1 - sig), None


def plain_lif_loop(
    x: torch.Tensor,
    *,
    tau: float = 2.0,
    decay_input: bool = True,
    threshold: float = 1.0,
    reset: str = "hard",
    v_reset: float = 0.0,
    alpha: float = 4.0,
    **_: Any,
) -> torch.Tensor:
    """A multi-step LIF as a PyTorch user writes it: a Python loop over T in x's dtype."""
    v = torch.full_like(x[0], v_reset)
    spikes = []
    for t in range(x.shape[0]):
        if decay_input:
            h = v + (x[t] - (v - v_reset)) / tau
        else:
            h = v - (v - v_reset) / tau + x[t]
        s = _SigmoidSpike.apply(h - threshold, alpha)
        v = h * (1 - s) + v_reset * s if reset == "hard" else h - threshold * s
        spikes.append(s)
    return torch.stack(spikes)


def spikingjelly_lif_step(model: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """SpikingJelly's multi-step LIF with the same neuron; raises ImportError when absent."""
    from spikingjelly.activation_based import functional as sjf
    from spikingjelly.activation_based import surrogate as sjs

    surrogate = sjs.Sigmoid(alpha=model["alpha"])
    v_reset = model["v_reset"] if model["reset"] == "hard" else None
    if hasattr(sjf, "lif_multi_step"):  # SpikingJelly 2.x: picks its CUDA/Triton kernel itself

        def step(x: torch.Tensor) -> torch.Tensor:
            v0 = torch.zeros(x.shape[1:], dtype=torch.float32, device=x.device)
            return sjf.lif_multi_step(
                x, v0, model["tau"], model["decay_input"], model["threshold"], v_reset, surrogate, False
            )[0]

        return step
    from spikingjelly.activation_based import neuron as sjn  # 0.0.0.0.x: LIFNode(backend=...)

    node = None
    for backend in ("triton", "cupy", "torch"):
        try:
            node = sjn.LIFNode(
                tau=model["tau"],
                decay_input=model["decay_input"],
                v_threshold=model["threshold"],
                v_reset=v_reset,
                surrogate_function=surrogate,
                step_mode="m",
                backend=backend,
            )
            break
        except Exception as err:  # noqa: BLE001 - that backend is not built here; try the next
            interrupts.raise_if_interrupt(err)
            continue
    if node is None:
        raise ImportError("no usable SpikingJelly LIFNode backend")

    def step_node(x: torch.Tensor) -> torch.Tensor:
        sjf.reset_net(node)
        return node(x)

    return step_node


def spikingjelly_version() -> Optional[str]:
    try:
        import spikingjelly  # noqa: F401
    except Exception as err:  # noqa: BLE001 - absent or broken: the row is skipped
        interrupts.raise_if_interrupt(err)
        return None
    try:
        from importlib.metadata import version

        return version("spikingjelly")
    except Exception as err:  # noqa: BLE001 - importable from a path without metadata
        interrupts.raise_if_interrupt(err)
        return "unknown"


def compiled_lif_loop(model: dict[str, Any], cache: dict[str, Callable]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``plain_lif_loop`` under ``torch.compile``, built once per run (``cache``) so shapes reuse it."""
    if "loop" not in cache:
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        cache["loop"] = torch.compile(lambda x: plain_lif_loop(x, **model))
    return cache["loop"]


def _torch_loop(model: dict[str, Any]) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    return (lambda x: plain_lif_loop(x, **model)), ""


def _spikingjelly(model: dict[str, Any]) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    version = spikingjelly_version()
    if version is None:
        raise ImportError("spikingjelly is not installed (pip install 'snnbench[peers]')")
    return spikingjelly_lif_step(model), f"spikingjelly {version}"


# impl name -> builder(model) -> (the step x[T, ...] -> spikes, the row's note). torch_compile is not
# here: whether a point is compiled depends on the run's budget (neuron_rows._build_step).
LIF_PEERS: dict[str, Callable[[dict[str, Any]], tuple[Callable[[torch.Tensor], torch.Tensor], str]]] = {
    "torch_loop": _torch_loop,
    "spikingjelly": _spikingjelly,
}
