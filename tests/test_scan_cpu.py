"""The compiled CPU scans of the sparse training path against their PyTorch references, bit for bit."""

from __future__ import annotations

import pytest
import torch

from snnbench.kernels import lif_record
from snnbench.kernels.scan_cpu import input_trace_cpu, lif_scan_cpu


@pytest.mark.parametrize("shape", [(100, 8, 37), (7, 3), (1, 5, 2, 2), (4, 0)])
@pytest.mark.parametrize("beta,theta", [(0.9048374180359595, 1.0), (0.5, 0.7), (1.0, 1.3)])
def test_lif_scan_matches_the_reference(shape, beta, theta):
    gen = torch.Generator().manual_seed(hash((shape, beta, theta)) % 2**31)
    current = torch.randn(shape, generator=gen) * 0.9 + 0.5
    if current.numel():  # membranes exactly on θ: the strict comparison decides
        current.view(shape[0], -1)[0, 0] = theta
    u, spikes = lif_scan_cpu(current, beta, theta)
    u_ref, spikes_ref = lif_record.reference_lif_scan(current, beta, theta)
    assert torch.equal(u, u_ref) and torch.equal(spikes, spikes_ref)
    assert spikes.shape == current.shape and (current.numel() == 0 or 0 < spikes.sum() < spikes.numel())


@pytest.mark.parametrize("beta", [0.951229424500714, 0.3])
def test_input_trace_matches_the_reference(beta):
    x = (torch.rand(60, 4, 9, generator=torch.Generator().manual_seed(7)) < 0.1).float()
    assert torch.equal(input_trace_cpu(x, beta), lif_record.reference_input_trace(x, beta))


def test_other_inputs_keep_the_reference():
    assert lif_scan_cpu(torch.zeros(3, 2, dtype=torch.float64), 0.5, 1.0) is None
    assert input_trace_cpu(torch.zeros(3, 2, requires_grad=True), 0.5) is None
    # The public CPU path gives the reference's spikes whichever loop ran.
    current = torch.randn(20, 3, 4, generator=torch.Generator().manual_seed(3)) + 0.4
    got = lif_record.lif_forward(current, 0.8, backend="torch")
    assert torch.equal(got, lif_record.reference_lif_scan(current, 0.8)[1])
