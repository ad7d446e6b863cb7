"""Host helpers every kernel module shares: the backend rule, the interpreter flag, scalar checks, the
finiteness cache of parameter tensors, and the launches: every kernel launch goes through :func:`launch`
or :class:`TunedLaunch`, which run it under its tensors' CUDA device, or record it instead
(:func:`recording_launches`, how the compile check learns what the host functions launch). No Triton
code and nothing op-specific lives here."""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import struct
import weakref
from typing import Any, NamedTuple, Optional

import torch
import triton

__all__ = [
    "BACKENDS",
    "interpreting",
    "numba_cache_allowed",
    "resolve_backend",
    "f32",
    "finite_scalar",
    "choice",
    "finite_key",
    "known_finite",
    "remember_finite",
    "check_finite",
    "Launch",
    "recording_launches",
    "launch",
    "fast_launch_supported",
    "TunedLaunch",
]

BACKENDS = ("auto", "triton", "torch")


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU (``TRITON_INTERPRET=1``), read at call time."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def numba_cache_allowed(module_name: str) -> bool:
    """Whether a module's numba loops may use numba's on-disk cache: under the package's own name only.
    The cache (kernels/__pycache__) is shared by every name the file is imported under, and an entry
    re-imports its module by the name that wrote it: one written as ``kernels.x`` (a script run from
    the checkout, ``python -m kernels.compile_check``) broke every later ``snnbench.kernels.x`` process
    where ``kernels`` is not importable (ModuleNotFoundError while loading the cached loop)."""
    return module_name.startswith("snnbench.kernels.")


def choice(name: str, value, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {sorted(allowed)}, got {value!r}")
    return value


def resolve_backend(backend: str, *tensors: torch.Tensor, name: str = "x") -> str:
    """The one backend rule of every op: ``"auto"`` runs Triton when all ``tensors`` are on CUDA and
    the PyTorch reference otherwise; ``"triton"`` off CUDA needs the interpreter."""
    choice("backend", backend, BACKENDS)
    on_cuda = all(t.is_cuda for t in tensors)
    if backend == "auto":
        return "triton" if on_cuda else "torch"
    if backend == "triton" and not on_cuda and not interpreting():
        device = next(t.device for t in tensors if not t.is_cuda)
        raise ValueError(
            f"{name}: the triton backend needs a CUDA tensor, got one on {device}; "
            "use backend='torch' (or set TRITON_INTERPRET=1 before importing triton)"
        )
    return backend


def f32(value: float) -> float:
    # Both backends see the same fp32-rounded scalars, so their spikes agree bit for bit.
    return struct.unpack("f", struct.pack("f", float(value)))[0]


def finite_scalar(name: str, value, positive: bool = False) -> float:
    """A finite (optionally positive) Python number, rounded to fp32; a clear error otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name}: must be positive, got {value}")
    try:
        rounded = f32(value)
    except OverflowError:
        rounded = math.inf
    if not math.isfinite(rounded):
        raise ValueError(f"{name}: {value} is outside the float32 range (|value| < 3.4e38)")
    return rounded


# Parameter tensors found finite, by identity and version. A module passes the same threshold, a
# slice of the same bias and its previous chunk's v_final on every call, so on CUDA the finiteness
# check — a host sync — runs once per parameter version instead of once per call. A view is known
# by its base tensor (alive, the same object) and its place in it; views share the base's version.
_KNOWN_FINITE: dict[tuple, tuple[weakref.ref, int]] = {}


def finite_key(t: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    base = t._base if t._base is not None else t
    return base, (id(base), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


def known_finite(t: torch.Tensor) -> bool:
    base, key = finite_key(t)
    entry = _KNOWN_FINITE.get(key)
    return entry is not None and entry[0]() is base and entry[1] == t._version


def remember_finite(t: torch.Tensor) -> None:
    base, key = finite_key(t)
    _KNOWN_FINITE[key] = (weakref.ref(base, lambda _ref: _KNOWN_FINITE.pop(key, None)), t._version)


def check_finite(checks: list[tuple[str, torch.Tensor, torch.Tensor, bool]]) -> None:
    """Refuse non-finite (or, where ``positive``, non-positive) values in parameter tensors.

    ``checks``: (name, the caller's tensor, its prepared copy, positive). CPU tensors are checked on
    every call; CUDA tensors once per version (one sync for all of them), and never while a CUDA
    graph is being captured, where a sync is not allowed.
    """
    pending = [c for c in checks if not (c[1].is_cuda and known_finite(c[1]))]
    if not pending:
        return
    if pending[0][2].is_cuda and torch.cuda.is_current_stream_capturing():
        return
    flags = torch.stack(
        [(torch.isfinite(t) & (t > 0)).all() if positive else torch.isfinite(t).all() for _, _, t, positive in pending]
    ).tolist()
    for (name, _, _, positive), ok in zip(pending, flags):
        if not ok:
            why = "finite and positive" if positive else "finite"
            raise ValueError(f"{name}: every value must be {why}")
    for _, given, _, _ in pending:
        if given.is_cuda:
            remember_finite(given)


class Launch(NamedTuple):
    """One launch as the host would make it: the kernel (a ``triton.jit`` or ``triton.autotune``
    object), its positional arguments and its keyword constants (constexprs, ``num_warps``)."""

    kernel: Any
    args: tuple
    consts: dict


_recorded: Optional[list[Launch]] = None  # a list inside recording_launches(): launches go there


@contextlib.contextmanager
def recording_launches():
    """Within it, launches are recorded (yielded list of :class:`Launch`) instead of run, so host
    functions can be driven with meta tensors to list the specialisations they launch."""
    global _recorded
    before, _recorded = _recorded, []
    try:
        yield _recorded
    finally:
        _recorded = before


def _on_device(t: torch.Tensor):
    # Triton launches on the current CUDA device: a tensor on cuda:1 needs cuda:1 current.
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def launch(kernel, grid, *args, **consts) -> None:
    """``kernel[grid](*args, **consts)`` under the device of ``args[0]`` (every kernel's first argument
    is a tensor), or recorded within :func:`recording_launches`."""
    if _recorded is not None:
        _recorded.append(Launch(kernel, args, consts))
        return
    with _on_device(args[0]):
        kernel[grid](*args, **consts)


def _keyword_only(fn, *names: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    kinds = {p.kind for p in params.values()}
    return (
        inspect.Parameter.VAR_POSITIONAL in kinds
        and inspect.Parameter.VAR_KEYWORD in kinds
        and all(n in params and params[n].kind is inspect.Parameter.KEYWORD_ONLY for n in names)
    )


def fast_launch_supported(kernel) -> bool:
    """Whether the Triton internals :class:`TunedLaunch` relies on are there, as in Triton 3.6 and
    3.8: ``kernel.fn.run(*args, grid=, warmup=, **kwargs)``, ``Config.all_kwargs()``, the autotuner's
    ``keys`` (names among its ``arg_names``) and ``configs``."""
    keys, names = getattr(kernel, "keys", None), getattr(kernel, "arg_names", None)
    return (
        _keyword_only(getattr(getattr(kernel, "fn", None), "run", None), "grid", "warmup")
        and callable(getattr(triton.Config, "all_kwargs", None))
        and isinstance(keys, (list, tuple))
        and isinstance(names, (list, tuple))
        and all(k in names for k in keys)
        and isinstance(getattr(kernel, "configs", None), list)
    )


class TunedLaunch:
    """``kernel[grid](*args, **consts)`` for a ``triton.autotune`` kernel, minus the autotuner's per-call
    Python (a dict of every argument, a key with the dtype name of each tensor: ~15 µs a launch on a
    slow host). The first launch of a key runs the autotuner, which picks (or benchmarks) the config;
    later ones launch the kernel with that config directly. The key is the autotuner's own: the values
    of its ``key`` arguments and every tensor argument's dtype. A choice stands while the autotuner
    keeps the same ``configs`` list (a test that swaps in one config is seen), and is not kept for a
    config with a ``pre_hook`` (the autotuner runs that each launch). Those internals are checked when
    built (:func:`fast_launch_supported`); where they differ, every launch is the public one. Like
    :func:`launch`, it runs under the device of ``args[0]`` and records within
    :func:`recording_launches`.
    """

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.fast = fast_launch_supported(kernel)
        self._key_at = [(kernel.arg_names.index(name), name) for name in kernel.keys] if self.fast else []
        self._chosen: dict[tuple, tuple[list, dict]] = {}

    def __call__(self, grid, *args, **consts) -> None:
        if _recorded is not None or not self.fast:
            launch(self.kernel, grid, *args, **consts)
            return
        with _on_device(args[0]):
            self._run(grid, args, consts)

    def _run(self, grid, args: tuple, consts: dict) -> None:
        kernel = self.kernel
        n = len(args)
        key = (
            tuple([args[i] if i < n else consts[name] for i, name in self._key_at]),
            tuple([a.dtype for a in args if isinstance(a, torch.Tensor)]),
        )
        chosen = self._chosen.get(key)
        if chosen is not None and chosen[0] is kernel.configs:
            kernel.fn.run(*args, grid=grid, warmup=False, **consts, **chosen[1])
            return
        kernel[grid](*args, **consts)
        best = getattr(kernel, "best_config", None)
        if best is not None and best.pre_hook is None:
            self._chosen[key] = (kernel.configs, best.all_kwargs())
