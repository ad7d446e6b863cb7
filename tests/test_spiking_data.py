"""Spike-train datasets: latency-coded digits / Fashion-MNIST and N-MNIST / SHD through tonic.

Each loader reads a small fixture written here in the dataset's real on-disk format: FashionMNIST
idx-ubyte .gz files, N-MNIST 5-byte-per-event .bin files in Train/<digit>/ and Test/<digit>/, SHD HDF5
files with variable-length spike times and units.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from snnbench.config import DatasetSpec
from snnbench.data import spiking
from snnbench.data.paths import DatasetMissingError
from snnbench.data.registry import load_dataset


# ---------------------------------------------------------------------------------------------
# Latency code


def test_latency_times_follow_the_published_code():
    x = np.array([[1.0, 0.5, 0.21, 0.2, 0.1, 0.0]])
    t = spiking.latency_times(x)[0]
    assert t[0] == math.floor(20 * math.log(1 / 0.8))
    assert t[1] == math.floor(20 * math.log(0.5 / 0.3))
    assert t[2] == math.floor(20 * math.log(0.21 / 0.01))
    assert list(t[3:]) == [spiking.NEVER] * 3  # at or below 0.2: silent
    assert t[0] < t[1] < t[2]  # brighter fires earlier
    with pytest.raises(ValueError):
        spiking.latency_times(np.array([[1.5]]))


def test_latency_dataset_one_spike_per_firing_pixel():
    times = np.array([[0, 5, spiking.NEVER, 99], [3, 3, 150, 1]], dtype=np.int16)
    ds = spiking.LatencySpikeDataset(times, np.array([2, 7]), steps=100)
    x, y = ds[1]
    assert x.shape == (100, 4) and x.dtype == torch.float32 and int(y) == 7
    assert x.sum(0).tolist() == [1.0, 1.0, 0.0, 1.0]  # t = 150 >= T is dropped
    assert x[3, 0] == 1 and x[3, 1] == 1 and x[1, 3] == 1


def test_digits_spiking_bundle():
    bundle = load_dataset(DatasetSpec(name="digits_spiking", limit_train=50, limit_test=20))
    assert bundle.input_shape == (64,) and bundle.num_classes == 10 and bundle.timesteps == 100
    assert len(bundle.train) == 50 and len(bundle.test) == 20
    x, y = bundle.train[0]
    assert x.shape == (100, 64) and set(x.unique().tolist()) <= {0.0, 1.0}
    assert float(x.sum(0).max()) == 1.0  # one spike per pixel at most
    assert 0 <= int(y) < 10


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST (idx-ubyte gz, torchvision's layout)


def _write_idx(path: Path, array: np.ndarray) -> None:
    dims = array.shape
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fmnist_fixture(root: Path, n_train=6, n_test=4) -> tuple[np.ndarray, np.ndarray]:
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    _write_idx(raw / "train-images-idx3-ubyte.gz", train)
    _write_idx(raw / "train-labels-idx1-ubyte.gz", np.arange(n_train) % 10)
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", test)
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", (np.arange(n_test) + 3) % 10)
    return train, test


def test_fmnist_loader_reads_idx_gz_fixture(tmp_path):
    train, test = _fmnist_fixture(tmp_path)
    bundle = load_dataset(DatasetSpec(name="fmnist", root=str(tmp_path)))
    assert bundle.input_shape == (784,) and bundle.timesteps == 100
    assert len(bundle.train) == 6 and len(bundle.test) == 4
    x, y = bundle.test[2]
    assert x.shape == (100, 784) and int(y) == 5
    expected = spiking.latency_times(test[2].reshape(1, -1) / 255.0)[0]
    fired = expected < 100
    assert torch.equal(x.sum(0) > 0, torch.from_numpy(fired))
    k = int(np.flatnonzero(fired)[0])
    assert x[int(expected[k]), k] == 1.0


def test_fmnist_missing_raises_before_any_work(tmp_path):
    with pytest.raises(DatasetMissingError) as err:
        load_dataset(DatasetSpec(name="fmnist", root=str(tmp_path / "nowhere")))
    assert "nowhere" in str(err.value) and "download" in str(err.value)


# ---------------------------------------------------------------------------------------------
# N-MNIST (.bin event files read by tonic)


def _nmnist_bin(path: Path, events: list[tuple[int, int, int, int]]) -> None:
    """Events (x, y, t_us, p) in the 40-bit N-MNIST format."""
    out = bytearray()
    for x, y, t, p in events:
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.write_bytes(bytes(out))


def _nmnist_fixture(root: Path) -> None:
    for split, digits in (("Train", (0, 3, 7)), ("Test", (1, 9))):
        for d in digits:
            folder = root / "NMNIST" / split / str(d)
            folder.mkdir(parents=True)
            _nmnist_bin(
                folder / "00001.bin",
                [
                    (d, 2, 1500, 1),
                    (d, 2, 1700, 0),
                    (33, 33, 299_999, 1),
                    (5, 6, 300_000, 1),
                    (0, 0, 42_000 + d * 1000, 0),
                ],
            )


def test_nmnist_loader_reads_bin_fixture(tmp_path):
    pytest.importorskip("tonic")
    _nmnist_fixture(tmp_path)
    bundle = load_dataset(DatasetSpec(name="nmnist", root=str(tmp_path)))
    assert bundle.input_shape == (34 * 34,) and bundle.timesteps == 300 and bundle.num_classes == 10
    assert len(bundle.train) == 3 and len(bundle.test) == 2
    labels = sorted(int(bundle.train[i][1]) for i in range(3))
    assert labels == [0, 3, 7]
    x, y = next((x, y) for x, y in (bundle.train[i] for i in range(3)) if int(y) == 7)
    assert x.shape == (300, 1156)
    # Both polarities of pixel (7, 2) in the 1 ms bin 1 fold into one channel, clipped to 1.
    assert x[1, 2 * 34 + 7] == 1.0
    assert x[299, 33 * 34 + 33] == 1.0  # 299.999 ms is the last bin
    assert x[:, 6 * 34 + 5].sum() == 0  # 300 ms is past T
    assert x[49, 0] == 1.0  # 42 ms + 7 ms
    assert float(x.sum()) == 3.0


def test_nmnist_missing_raises(tmp_path):
    with pytest.raises(DatasetMissingError, match="nmnist"):
        load_dataset(DatasetSpec(name="nmnist", root=str(tmp_path)))


# ---------------------------------------------------------------------------------------------
# SHD (HDF5 read by tonic)


def _shd_file(path: Path, samples: list[tuple[list[float], list[int], int]]) -> None:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u, _) in enumerate(samples):
            times[i] = np.asarray(t, dtype=np.float32)
            units[i] = np.asarray(u, dtype=np.uint16)
        f.create_dataset("labels", data=np.asarray([s[2] for s in samples], dtype=np.uint8))
        f.create_dataset("extra/keys", data=np.asarray([f"word{k}".encode() for k in range(20)]))
        f.create_dataset("extra/speaker", data=np.zeros(len(samples), dtype=np.uint8))


def test_shd_loader_reads_h5_fixture(tmp_path):
    pytest.importorskip("tonic")
    pytest.importorskip("h5py")
    sample = ([0.0005, 0.0015, 0.0031, 0.9985, 1.2], [3, 3, 699, 10, 5], 13)
    _shd_file(tmp_path / "SHD" / "shd_train.h5", [sample, ([0.5], [1], 2)])
    _shd_file(tmp_path / "SHD" / "shd_test.h5", [([0.01], [0], 19)])
    bundle = load_dataset(DatasetSpec(name="shd", root=str(tmp_path)))
    assert bundle.input_shape == (700,) and bundle.timesteps == 500 and bundle.num_classes == 20
    assert len(bundle.train) == 2 and len(bundle.test) == 1
    x, y = bundle.train[0]
    assert int(y) == 13 and x.shape == (500, 700)
    assert x[0, 3] == 1.0  # 0.5 ms and 1.5 ms share the first 2 ms bin: clipped to 1
    assert x[1, 699] == 1.0
    assert x[499, 10] == 1.0
    assert x[:, 5].sum() == 0  # 1.2 s is past T·dt = 1 s
    assert float(x.sum()) == 3.0
    assert int(bundle.test[0][1]) == 19


def test_shd_missing_raises(tmp_path):
    with pytest.raises(DatasetMissingError) as err:
        load_dataset(DatasetSpec(name="shd", root=str(tmp_path)))
    assert "shd_train.h5" in str(err.value)
