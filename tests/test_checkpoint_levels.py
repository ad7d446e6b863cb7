"""Checkpoints know their QCFS L: snnbench's own store it, a contradicting model is refused, and an
official checkpoint (no L stored) loaded with the default L warns once, saying how to set it."""

from __future__ import annotations

import warnings

import pytest
import torch

from snnbench.models.checkpoint import load_checkpoint
from snnbench.models.digits_cnn import digits_cnn


def test_own_checkpoint_stores_levels_and_refuses_another_L(tmp_path):
    path = tmp_path / "ann.pt"
    torch.save(digits_cnn(levels=4, width=4).state_dict(), path)
    assert int(torch.load(path, weights_only=True)["features.2._extra_state"]) == 4
    load_checkpoint(digits_cnn(levels=4, width=4), path)  # same L: fine, no warning needed
    with pytest.raises(ValueError, match=r"ann\.pt.*trained with QCFS levels L=4.*L=8.*levels: 4"):
        load_checkpoint(digits_cnn(levels=8, width=4), path)


def test_official_checkpoint_with_default_L_warns_once(tmp_path):
    state = {k: v for k, v in digits_cnn(levels=4, width=4).state_dict().items() if not k.endswith("_extra_state")}
    state = {k.replace(".thresh", ".up"): v for k, v in state.items()}  # the official names
    path = tmp_path / "official.pth"
    torch.save(state, path)
    with pytest.warns(UserWarning, match=r"official\.pth does not record its QCFS levels.*L=4.*levels: <L>"):
        model = load_checkpoint(digits_cnn(levels=4, width=4), path, levels_given=False)
    assert all(m.levels == 4 for m in model.modules() if hasattr(m, "levels"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint(digits_cnn(levels=4, width=4), path, levels_given=False)  # once per file
        load_checkpoint(digits_cnn(levels=8, width=4), path, levels_given=True)  # L set: no warning
