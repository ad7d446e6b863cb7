"""Static images as latency-coded spike trains (docs/design.md §5): the digits and Fashion-MNIST.

Every pixel of intensity x ∈ [0, 1] fires exactly once, at ``t = τ_eff·ln(x / (x − 0.2))`` (in steps of
dt = 1 ms, τ_eff = 20 ms), the time a leaky integrator driven by x needs to reach the threshold 0.2;
pixels below 0.2 never fire and spikes at or after T are dropped. Brighter pixels fire earlier.
Samples are stored as one spike time per pixel and expanded to a dense ``[T, N]`` train on access.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from snnbench.data.paths import DatasetMissingError, resolve_data_root

TAU_EFF_STEPS = 20.0  # τ_eff = 20 ms at dt = 1 ms
THRESHOLD = 0.2
LATENCY_STEPS = 100
NEVER = np.iinfo(np.int16).max


def latency_times(
    x: np.ndarray, tau: float = TAU_EFF_STEPS, thr: float = THRESHOLD, steps: int = LATENCY_STEPS
) -> np.ndarray:
    """Spike step of every pixel (int16); ``NEVER`` for pixels below ``thr`` or firing at/after ``steps``."""
    x = np.asarray(x, dtype=np.float64)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError("pixel intensities must lie in [0, 1]")
    fires = x > thr
    safe = np.where(fires, x, 1.0)
    t = np.floor(tau * np.log(safe / (safe - thr)))
    t = np.where(fires & (t < steps), t, NEVER)
    return t.astype(np.int16)


class LatencySpikeDataset(Dataset):
    """``(spikes[T, N] float32, label)`` from one spike time per input (``NEVER`` = silent)."""

    def __init__(self, times: np.ndarray, labels: np.ndarray, steps: int = LATENCY_STEPS) -> None:
        if times.ndim != 2 or len(times) != len(labels):
            raise ValueError("times must be [samples, inputs] with one label per sample")
        self.times = torch.from_numpy(np.ascontiguousarray(times).astype(np.int64))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.steps = steps

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int):
        t = self.times[index]
        fires = t < self.steps
        x = torch.zeros(self.steps, t.shape[0], dtype=torch.float32)
        x[t[fires], torch.nonzero(fires).squeeze(1)] = 1.0
        return x, self.labels[index]


def _bundle(name: str, train: Dataset, test: Dataset, spec, num_classes: int, inputs: int, info: dict):
    from snnbench.data.registry import sequence_bundle

    latency = {"encoding": "latency", "tau_eff_ms": 20.0, "threshold": THRESHOLD, "dt_ms": 1.0, **info}
    return sequence_bundle(
        name, train, test, spec, num_classes=num_classes, inputs=inputs, steps=LATENCY_STEPS, info=latency
    )


def digits_spiking_bundle(spec, data_root: Optional[Path] = None, augment: bool = False):
    """scikit-learn's 8×8 digits as 64-input latency spike trains (offline, no files)."""
    from snnbench.data.digits import NUM_CLASSES, load_digits_split

    train, test = load_digits_split()

    def encode(split) -> LatencySpikeDataset:
        return LatencySpikeDataset(latency_times(split.x.reshape(len(split), -1).numpy()), split.y.numpy())

    return _bundle("digits_spiking", encode(train), encode(test), spec, NUM_CLASSES, 64, {"source": "sklearn"})


_FMNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _prepare_fmnist_raw(root: Path) -> bool:
    """Make sure torchvision finds the idx files: unpack any that exist only as ``.gz``."""
    raw = root / "FashionMNIST" / "raw"
    for name in _FMNIST_FILES:
        plain, packed = raw / name, raw / f"{name}.gz"
        if not plain.is_file() and packed.is_file():
            with gzip.open(packed, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return all((raw / name).is_file() for name in _FMNIST_FILES)


def fmnist_bundle(spec, data_root: Optional[Path] = None, augment: bool = False):
    """Fashion-MNIST through torchvision, 784-input latency spike trains, T = 100."""
    root = resolve_data_root(data_root or spec.root)
    present = _prepare_fmnist_raw(root)
    import torchvision

    if not present:
        hint = (
            "set `download: true` for the dataset in the suite (torchvision fetches it), or place the four "
            f"idx-ubyte(.gz) files in {root / 'FashionMNIST' / 'raw'}"
        )
        if not spec.download:
            raise DatasetMissingError("fmnist", root / "FashionMNIST" / "raw", hint)
        try:
            torchvision.datasets.FashionMNIST(str(root), train=True, download=True)
        except Exception as err:  # network errors come in many types
            raise DatasetMissingError(
                "fmnist", root / "FashionMNIST" / "raw", f"{hint} (download failed: {err})"
            ) from err

    def encode(train: bool) -> LatencySpikeDataset:
        ds = torchvision.datasets.FashionMNIST(str(root), train=train, download=False)
        pixels = ds.data.reshape(len(ds.data), -1).numpy().astype(np.float32) / 255.0
        return LatencySpikeDataset(latency_times(pixels), ds.targets.numpy())

    return _bundle("fmnist", encode(True), encode(False), spec, 10, 784, {"source": "torchvision", "root": str(root)})


SYNTHETIC_SPIKING = {"inputs": 700, "classes": 20, "steps": 100, "train": 512, "test": 256}


class SyntheticSpikeDataset(Dataset):
    """Bernoulli spike trains ``[T, 700]`` in SHD's shapes, each class with its own per-channel rates
    (0.2–5 % per step), so a network can learn it. Sample ``i`` is drawn from a generator seeded with
    ``offset + i``: the same on every call, nothing is stored."""

    def __init__(self, n: int, offset: int, inputs: int, classes: int, steps: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.rates = 0.002 + 0.048 * torch.rand(classes, inputs, generator=generator) ** 3
        self.labels = torch.randint(classes, (n,), generator=generator)
        self.offset, self.steps = offset, steps

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int):
        label = self.labels[index]
        generator = torch.Generator().manual_seed(self.offset + int(index))
        x = (torch.rand(self.steps, self.rates.shape[1], generator=generator) < self.rates[label]).float()
        return x, label


def synthetic_spiking_bundle(spec, data_root: Optional[Path] = None, augment: bool = False):
    """Random class-coded spike trains with SHD's shapes (700 inputs, 20 classes, T = 100): for
    timing the training track on machines that hold no datasets."""
    from snnbench.data.registry import sequence_bundle

    s = SYNTHETIC_SPIKING
    make = lambda n, offset: SyntheticSpikeDataset(n, offset, s["inputs"], s["classes"], s["steps"])  # noqa: E731
    return sequence_bundle(
        "synthetic_spiking",
        make(spec.limit_train or s["train"], 0),
        make(spec.limit_test or s["test"], 10**6),
        spec,
        num_classes=s["classes"],
        inputs=s["inputs"],
        steps=s["steps"],
        info={"source": "synthetic", "shapes": "shd"},
    )
