"""kernels/neuron_op.py: the neuron kernels as torch.library custom ops — opcheck (schema, fake
implementation, autograd registration, AOT dispatch), equality with the plain path, torch.compile."""

from __future__ import annotations

import pytest
import torch

from snnbench.kernels import neuron as nk
from snnbench.kernels import neuron_op as no

LIF = {"beta": 0.5, "leak": 0.0, "gain": 0.5, "reset": "hard", "save_dtype": "fp32"}


def _args(x, save, v_init=None, thresh=None, **kw):
    opts, call = nk.prepare(
        x,
        1.0 if thresh is None else thresh,
        None,
        v_init,
        build=nk.generic_options,
        reset=kw.get("reset", "soft"),
        output=kw.get("output", "spike"),
        surrogate=kw.get("surrogate", "sigmoid"),
        delta=0.3,
        q=2,
        seed=5,
        save_dtype="fp32",
        beta=0.5,
        leak=0.0,
        gain=0.5,
    )
    floats, names, ints = no._pack(opts)
    return (x, call.thresh, call.bias, call.v_init, save, floats, names, [*ints, call.seed])


@pytest.mark.parametrize("case", ["plain", "v_init_localzo", "per_channel_uint8"])
def test_opcheck_forward(case):
    x = torch.randn(3, 2, 4, 5) + 0.5
    if case == "plain":
        args = _args(x.requires_grad_(), True)
    elif case == "v_init_localzo":
        args = _args(x.requires_grad_(), True, v_init=torch.zeros(2, 4, 5, requires_grad=True), surrogate="localzo")
    else:
        args = _args(x, False, thresh=torch.rand(4) + 0.5, output="uint8")
    torch.library.opcheck(no.neuron_forward_op, args)


def test_opcheck_backward():
    x = torch.randn(3, 2, 7) + 0.5
    _, _, saved = no.neuron_forward_op(*_args(x, True))
    packed = _args(x, True)[5:]
    torch.library.opcheck(
        no.neuron_backward_op, (torch.randn(3, 2, 7), None, saved, None, [3, 2, 7], "fp32", False, *packed)
    )


def test_op_path_equals_the_plain_path_with_gradients():
    x = torch.randn(4, 3, 9) + 0.5
    v0 = torch.zeros(9, requires_grad=True)  # broadcasts over the batch
    grads = []
    plain = lambda t, **kw: nk.multistep_neuron(t, backend="triton", **kw)  # noqa: E731 - same kernels
    for fn in (plain, no.multistep_neuron_op):
        xb = x.clone().requires_grad_()
        s, v = fn(xb, v_init=v0, **LIF)
        grads.append((s.detach(), v.detach(), *torch.autograd.grad((s * torch.arange(9.0)).sum() + v.sum(), (xb, v0))))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_runs_under_torch_compile_without_graph_breaks():
    x = torch.randn(3, 2, 6) + 0.5
    fn = torch.compile(lambda t: no.multistep_neuron_op(t, **LIF)[0] * 2.0, backend="eager", fullgraph=True)
    torch.testing.assert_close(fn(x), nk.multistep_neuron(x, backend="triton", **LIF)[0] * 2.0)


@pytest.mark.parametrize("surrogate", ["sigmoid", "localzo"])
def test_module_compiles_to_one_graph_through_the_op_forward_and_backward(surrogate):
    """MultiStepLIF under torch.compile(fullgraph=True) runs the custom op (AOT autograd traces its fake
    implementations, forward and backward) and equals the eager module, gradients included."""
    from torch._dynamo.testing import CompileCounterWithBackend

    from snnbench.neurons import MultiStepLIF

    layer = MultiStepLIF(
        tau=3.0, reset="soft", surrogate=surrogate, delta=0.5, q=2, seed=3, save_dtype="fp32", backend="triton"
    )
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(lambda t: layer(t) * 2.0, backend=counter, fullgraph=True)
    x = torch.randn(4, 2, 3, 5) + 0.5
    results = []
    for fn in (compiled, lambda t: layer(t) * 2.0):
        xb = x.clone().requires_grad_()
        out = fn(xb)
        results.append((out.detach(), *torch.autograd.grad((out * torch.arange(5.0)).sum(), xb)))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    ops = [str(n.target) for g in counter.graphs for n in g.graph.nodes if n.op == "call_function"]
    assert "snnbench.neuron_forward.default" in ops
