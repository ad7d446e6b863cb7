"""Correctness on the benchmark's own device for ``snnbench bench neuron``: the Triton neuron kernels
against their PyTorch reference for a few option sets, recorded in the JSON beside the timings."""

from __future__ import annotations

import traceback
from typing import Any

import torch

from snnbench import interrupts
from snnbench.bench.timing import release_memory
from snnbench.kernels.neuron_options import SAVE_DTYPES as DTYPES

_CHECKS: list[tuple[str, str, dict[str, Any], str, bool]] = [
    # (name, neuron, options, dtype, with gradients)
    ("if_scaled_bias_per_channel", "if", {"output": "scaled", "bias": True, "per_channel": True}, "fp32", False),
    ("lif_hard_sigmoid", "lif", {"save_dtype": "fp32"}, "fp32", True),
    ("lif_hard_sigmoid_save_bf16", "lif", {"save_dtype": "bf16"}, "fp32", True),
    (
        "lif_soft_detach_atan_bf16_io",
        "lif",
        {"reset": "soft", "detach_reset": True, "surrogate": "atan", "v_init": True},
        "bf16",
        True,
    ),
    (
        "lif_localzo_normal_q5",
        "lif",
        {"surrogate": "localzo", "delta": 0.5, "q": 5, "seed": 7, "save_dtype": "fp32"},
        "fp32",
        True,
    ),
    (
        "lif_localzo_laplace_q1",
        "lif",
        {"surrogate": "localzo", "distribution": "laplace", "delta": 0.05, "seed": 9, "save_dtype": "fp32"},
        "fp32",
        True,
    ),
    ("if_uint8_fp16", "if", {"output": "uint8"}, "fp16", False),
]


def check_against_reference(device: str, T: int = 8, shape: tuple[int, ...] = (16, 64, 8, 8)) -> list[dict[str, Any]]:
    """Triton vs the PyTorch reference on ``device`` for a few option sets (recorded in the JSON).

    On a GPU the kernels contract multiply-adds into FMAs, so LIF spikes may differ from the reference
    where h lands within an ulp of θ; the rows report how often.
    """
    from snnbench.kernels.neuron import multistep_if, multistep_lif, multistep_neuron

    results = []
    gen = torch.Generator(device=device).manual_seed(0)
    for name, neuron, options, dtype_name, with_grad in _CHECKS:
        dtype = DTYPES[dtype_name]
        try:
            x = (torch.randn((T,) + shape, device=device, generator=gen) + 0.4).to(dtype)
            kw = dict(options)
            C = shape[1]
            if kw.pop("per_channel", False):
                kw["threshold"] = torch.rand(C, device=device, generator=gen) + 0.5
            if kw.pop("bias", False):
                kw["bias"] = 0.1 * torch.randn(T, C, device=device, generator=gen)
            v0 = None
            if kw.pop("v_init", False):
                v0 = 0.1 * torch.randn(shape[1:], device=device, generator=gen)
            fn = multistep_if if neuron == "if" else multistep_lif
            outs, grads = {}, {}
            for backend in ("triton", "torch"):
                xb = x.detach().clone().requires_grad_(with_grad)
                vb = v0.detach().clone().requires_grad_(with_grad) if v0 is not None else None
                spikes, v_final = fn(xb, v_init=vb, backend=backend, **kw)
                outs[backend] = (spikes.detach(), v_final.detach())
                if with_grad:
                    g = torch.randn(
                        spikes.shape, device=device, generator=torch.Generator(device=device).manual_seed(1)
                    ).to(spikes.dtype)
                    wrt = [xb] + ([vb] if vb is not None else [])
                    grads[backend] = torch.autograd.grad((spikes * g).sum() + v_final.sum(), wrt)
            (s_tr, v_tr), (s_ref, v_ref) = outs["triton"], outs["torch"]
            row: dict[str, Any] = {
                "check": name,
                "dtype": dtype_name,
                "spike_mismatch_frac": (s_tr != s_ref).float().mean().item(),
                "v_final_max_abs_diff": (v_tr - v_ref).abs().max().item(),
            }
            if with_grad:
                g_tr, g_ref = grads["triton"][0].float(), grads["torch"][0].float()
                scale = g_ref.abs().max().item() or 1.0
                row["grad_x_max_abs_diff_rel"] = (g_tr - g_ref).abs().max().item() / scale
                row["grad_x_close_frac"] = (
                    torch.isclose(g_tr, g_ref, rtol=1e-2, atol=1e-3 * scale).float().mean().item()
                )
                if len(grads["triton"]) > 1:
                    row["grad_v_init_max_abs_diff"] = (grads["triton"][1] - grads["torch"][1]).abs().max().item()
            results.append(row)
        except Exception as err:  # noqa: BLE001 - report, keep checking
            interrupts.raise_if_interrupt(err)
            results.append({"check": name, "error": f"{type(err).__name__}: {err}"[:300]})
            traceback.print_exc()
    # The int64 indexing path must give the same result as the int32 one.
    try:
        x = torch.randn((T,) + shape, device=device, generator=gen).requires_grad_(True)
        a = multistep_neuron(x, beta=0.5, leak=0.0, gain=0.5, reset="hard", save_dtype="fp32", backend="triton")
        b = multistep_neuron(
            x, beta=0.5, leak=0.0, gain=0.5, reset="hard", save_dtype="fp32", backend="triton", _force_index_64=True
        )
        ga = torch.autograd.grad(a[0].sum(), x)[0]
        gb = torch.autograd.grad(b[0].sum(), x)[0]
        results.append(
            {"check": "index64_equals_index32", "equal": bool(torch.equal(a[0], b[0]) and torch.equal(ga, gb))}
        )
    except Exception as err:  # noqa: BLE001
        interrupts.raise_if_interrupt(err)
        results.append({"check": "index64_equals_index32", "error": f"{type(err).__name__}: {err}"[:300]})
    release_memory(device)
    return results
