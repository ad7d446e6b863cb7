"""The synthetic_spiking dataset: SHD's shapes, deterministic samples, class-coded rates."""

from __future__ import annotations

import torch

from snnbench.config import DatasetSpec
from snnbench.data.registry import load_dataset


def test_synthetic_spikes_have_shd_shapes_and_repeat():
    bundle = load_dataset(DatasetSpec(name="synthetic_spiking", limit_train=6, limit_test=3))
    assert bundle.input_shape == (700,) and bundle.num_classes == 20 and bundle.timesteps == 100
    assert len(bundle.train) == 6 and len(bundle.test) == 3
    x, y = bundle.train[2]
    assert x.shape == (100, 700) and set(x.unique().tolist()) <= {0.0, 1.0} and 0 <= int(y) < 20
    again, _ = bundle.train[2]
    assert torch.equal(x, again)
    assert not torch.equal(bundle.test[0][0], bundle.train[0][0]), "test samples are other draws"
    assert 0.001 < x.mean() < 0.05
