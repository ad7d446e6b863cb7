"""scikit-learn's bundled handwritten digits: the offline default dataset (no network needed).

1797 grey images of 8×8 pixels, 10 classes. A fixed stratified split (seed 0, 25 % test) so every
run and every machine evaluates on the same 450 test images. Pixels are scaled to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TEST_FRACTION = 0.25
SPLIT_SEED = 0
NUM_CLASSES = 10


@dataclass(frozen=True)
class TensorSplit:
    """Images ``x[N, 1, 8, 8]`` (float32 in [0, 1]) and labels ``y[N]`` (int64)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


def load_digits_split() -> tuple[TensorSplit, TensorSplit]:
    """Train and test splits of the digits, always the same ones."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0  # pixel values are 0..16
    labels = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )

    def to_split(x: np.ndarray, y: np.ndarray) -> TensorSplit:
        return TensorSplit(torch.from_numpy(x).unsqueeze(1).contiguous(), torch.from_numpy(y))

    return to_split(x_tr, y_tr), to_split(x_te, y_te)


def digits_bundle(spec, data_root=None, augment: bool = False):
    """The digits as a :class:`~snnbench.data.registry.DataBundle` (no files, no network)."""
    from torch.utils.data import TensorDataset

    from snnbench.data.registry import DataBundle, limit

    train, test = load_digits_split()
    train_ds = limit(TensorDataset(train.x, train.y), spec.limit_train)
    test_ds = limit(TensorDataset(test.x, test.y), spec.limit_test)
    return DataBundle(
        name="digits",
        train=train_ds,
        test=test_ds,
        calibration=train_ds,
        num_classes=NUM_CLASSES,
        input_shape=(1, 8, 8),
    )
