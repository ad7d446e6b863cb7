"""The fused neuron kernels as ``torch.library`` custom ops, so they run under ``torch.compile`` and
inside CUDA graphs: ``snnbench::neuron_forward`` and ``snnbench::neuron_backward`` with fake
(meta) implementations that give the output shapes without running anything, and the backward
registered as the forward's autograd formula.

:func:`multistep_neuron_op` takes the arguments of :func:`kernels.neuron.multistep_neuron` and
validates them the same way; :func:`launch_op` launches a call of options prepared once, as the ``launch`` of
:func:`kernels.neuron.run_neuron` (the modules use it while compiling). Under ``torch.compile`` the
tensor-finiteness check (data-dependent) is left to eager calls. The options travel as three packed
arguments (floats, names, ints), packed once per options object; the call's seed is the last int. The ops run the Triton kernels (CUDA, or CPU under ``TRITON_INTERPRET=1``); the
PyTorch reference stays :func:`kernels.neuron.multistep_neuron` with ``backend="torch"``.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import torch

from .common import resolve_backend
from .neuron import generic_options, neuron_backward, neuron_forward
from .neuron_options import SAVE_DTYPES, NeuronCall, NeuronOptions, prepare

# One name per dtype, for the ops' string arguments (the I/O dtypes are the saved-state dtypes' set).
_DTYPE_NAMES = {v: k for k, v in SAVE_DTYPES.items()}


@functools.lru_cache(maxsize=256)
def _pack(opts: NeuronOptions) -> tuple[list[float], str, list[int]]:
    """NeuronOptions as op arguments: the floats, the choices joined by '|', and (q, flags); worked
    out once per options object (a call appends its seed to the ints)."""
    floats = [
        opts.beta,
        opts.leak,
        opts.gain,
        opts.v_reset,
        opts.alpha,
        opts.delta,
        opts.threshold,
        math.nan if opts.v_init is None else opts.v_init,
    ]
    names = "|".join(
        (opts.reset, opts.output, opts.surrogate, opts.distribution, _DTYPE_NAMES[opts.save_dtype], opts.bias_order)
    )
    ints = [opts.q, int(opts.detach_reset), int(opts.v_init is not None)]
    return floats, names, ints


@functools.lru_cache(maxsize=256)
def _unpack_options(floats: tuple[float, ...], names: str, ints: tuple[int, ...]) -> NeuronOptions:
    beta, leak, gain, v_reset, alpha, delta, threshold, v_init = floats
    reset, output, surrogate, distribution, save, bias_order = names.split("|")
    q, detach, has_v_init = ints
    return NeuronOptions(
        beta=beta,
        leak=leak,
        gain=gain,
        reset=reset,
        v_reset=v_reset,
        detach_reset=bool(detach),
        output=output,
        surrogate=surrogate,
        alpha=alpha,
        distribution=distribution,
        delta=delta,
        q=q,
        save_dtype=SAVE_DTYPES[save],
        bias_order=bias_order,
        threshold=threshold,
        v_init=v_init if has_v_init else None,
    )


def _unpack(
    floats: list[float],
    names: str,
    ints: list[int],
    thresh: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    v_init: Optional[torch.Tensor] = None,
):
    """(options, call) from the op arguments; the seed is the last int."""
    return _unpack_options(tuple(floats), names, tuple(ints[:-1])), NeuronCall(thresh, bias, v_init, ints[-1])


@torch.library.custom_op("snnbench::neuron_forward", mutates_args=())
def neuron_forward_op(
    x: torch.Tensor,
    thresh: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
    v_init: Optional[torch.Tensor],
    save: bool,
    floats: list[float],
    names: str,
    ints: list[int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(out, v_final, saved u or an empty tensor when ``save`` is False)."""
    out, v_final, saved = neuron_forward(x, *_unpack(floats, names, ints, thresh, bias, v_init), save)
    return out, v_final, saved if saved is not None else x.new_empty(0)


@neuron_forward_op.register_fake
def _(x, thresh, bias, v_init, save, floats, names, ints):
    output, save_name = names.split("|")[1], names.split("|")[4]
    out = x.new_empty(x.shape, dtype=torch.uint8 if output == "uint8" else x.dtype)
    v_final = x.new_empty(x.shape[1:], dtype=torch.float32)
    n = math.prod(x.shape[1:])
    saved = x.new_empty((x.shape[0], n), dtype=SAVE_DTYPES[save_name]) if save else x.new_empty(0)
    return out, v_final, saved


@torch.library.custom_op("snnbench::neuron_backward", mutates_args=())
def neuron_backward_op(
    grad_out: torch.Tensor,
    grad_v_final: Optional[torch.Tensor],
    saved: torch.Tensor,
    thresh: Optional[torch.Tensor],
    x_shape: list[int],
    x_dtype: str,
    want_grad_v_init: bool,
    floats: list[float],
    names: str,
    ints: list[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_x, grad_v_init [N] fp32, or an empty tensor when not wanted)."""
    grad_x, grad_v0 = neuron_backward(
        grad_out,
        grad_v_final,
        saved,
        *_unpack(floats, names, ints, thresh),
        torch.Size(x_shape),
        SAVE_DTYPES[x_dtype],
        want_grad_v_init,
    )
    return grad_x, grad_v0 if grad_v0 is not None else saved.new_empty(0, dtype=torch.float32)


@neuron_backward_op.register_fake
def _(grad_out, grad_v_final, saved, thresh, x_shape, x_dtype, want_grad_v_init, floats, names, ints):
    grad_x = saved.new_empty(x_shape, dtype=SAVE_DTYPES[x_dtype])
    grad_v0 = saved.new_empty(saved.shape[1] if want_grad_v_init else 0, dtype=torch.float32)
    return grad_x, grad_v0


def _setup_context(ctx, inputs, output) -> None:
    x, thresh, _bias, v_init, _save, floats, names, ints = inputs
    ctx.save_for_backward(output[2], thresh)
    ctx.packed = (floats, names, ints)
    ctx.x_shape, ctx.x_dtype = list(x.shape), _DTYPE_NAMES[x.dtype]
    ctx.v_init_shape = None if v_init is None else v_init.shape
    ctx.v_init_dtype = None if v_init is None else v_init.dtype


def _backward(ctx, grad_out, grad_v_final, _grad_saved):
    saved, thresh = ctx.saved_tensors
    want_v0 = ctx.v_init_shape is not None and ctx.needs_input_grad[3]
    if grad_out is None:
        grad_out = saved.new_zeros(ctx.x_shape, dtype=SAVE_DTYPES[ctx.x_dtype])
    grad_x, grad_v0 = neuron_backward_op(
        grad_out.contiguous(), grad_v_final, saved, thresh, ctx.x_shape, ctx.x_dtype, want_v0, *ctx.packed
    )
    grad_v_init = None
    if want_v0:
        grad_v_init = grad_v0.view(ctx.x_shape[1:]).sum_to_size(ctx.v_init_shape).to(ctx.v_init_dtype)
    return grad_x, None, None, grad_v_init, None, None, None, None


torch.library.register_autograd("snnbench::neuron_forward", _backward, setup_context=_setup_context)


def launch_op(x: torch.Tensor, opts: NeuronOptions, call: NeuronCall) -> tuple[torch.Tensor, torch.Tensor]:
    resolve_backend("triton", x)
    save = torch.is_grad_enabled() and (x.requires_grad or (call.v_init is not None and call.v_init.requires_grad))
    # Dynamo traces the packing itself (it would only warn about the cache wrapper).
    floats, names, ints = (_pack.__wrapped__ if torch.compiler.is_compiling() else _pack)(opts)
    out, v_final, _ = neuron_forward_op(x, call.thresh, call.bias, call.v_init, save, floats, names, [*ints, call.seed])
    return out, v_final


def multistep_neuron_op(
    x: torch.Tensor, *, beta: float, leak: float, gain: float, threshold=1.0, bias=None, v_init=None, **options
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`kernels.neuron.multistep_neuron` through the custom ops (Triton kernels); ``options`` as
    there (no ``backend``)."""
    opts, call = prepare(
        x,
        threshold,
        bias,
        v_init,
        build=generic_options,
        beta=beta,
        leak=leak,
        gain=gain,
        check_tensors=not torch.compiler.is_compiling(),
        **options,
    )
    return launch_op(x, opts, call)
