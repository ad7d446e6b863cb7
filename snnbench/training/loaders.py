"""The seeded, shuffled training loader that the ANN and the direct-training tracks share.

The batch order depends on the seed alone (its own generator), so a cell reproduces whatever else
the process drew before it; a last partial batch is dropped unless it is the only one.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


def seeded_train_loader(
    train_set: Dataset,
    batch_size: int,
    seed: int,
    device: torch.device,
    *,
    num_workers: int = 0,
    persistent_workers: bool = False,
) -> DataLoader:
    return DataLoader(
        train_set,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        drop_last=len(train_set) > batch_size,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=persistent_workers and num_workers > 0,
    )
