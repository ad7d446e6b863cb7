"""CIFAR / ImageNet / synthetic loaders, read from fixtures written in the real on-disk formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from snnbench.config import DatasetSpec
from snnbench.data.paths import DatasetMissingError
from snnbench.data.registry import load_dataset
from snnbench.data.vision import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, Cutout

PER_BATCH = 3


def _pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar10(root: Path) -> np.ndarray:
    """cifar-10-batches-py as the official archive unpacks: 5 training batches, a test batch, meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = []
    for i in range(1, 6):
        data = _images(PER_BATCH, i)
        train.append(data)
        _pickle(folder / f"data_batch_{i}", {"batch_label": f"batch {i}", "data": data, "labels": [i % 10] * PER_BATCH})
    _pickle(folder / "test_batch", {"data": _images(4, 9), "labels": [0, 1, 2, 3]})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072})
    return np.concatenate(train)


def write_cifar100(root: Path) -> np.ndarray:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    data = _images(5, 1)
    _pickle(folder / "train", {"data": data, "fine_labels": [0, 1, 99, 5, 7], "coarse_labels": [0] * 5})
    _pickle(folder / "test", {"data": _images(2, 2), "fine_labels": [3, 4], "coarse_labels": [0, 0]})
    _pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)], "coarse_label_names": []})
    return data


def _normalized(row: np.ndarray, mean, std) -> torch.Tensor:
    img = torch.from_numpy(row.reshape(3, 32, 32).astype(np.float32) / 255.0)
    return (img - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def test_cifar10_from_pickled_batches(tmp_path):
    raw = write_cifar10(tmp_path)
    bundle = load_dataset(DatasetSpec(name="cifar10"), tmp_path, augment=False)
    assert (len(bundle.train), len(bundle.test), len(bundle.calibration)) == (15, 4, 15)
    assert bundle.num_classes == 10 and bundle.input_shape == (3, 32, 32)
    x, y = bundle.train[PER_BATCH]  # first image of data_batch_2
    assert y == 2
    torch.testing.assert_close(x, _normalized(raw[PER_BATCH], CIFAR10_MEAN, CIFAR10_STD), rtol=1e-5, atol=1e-5)
    assert bundle.test[3][1] == 3


def test_cifar100_augmented_training_but_plain_calibration(tmp_path):
    raw = write_cifar100(tmp_path)
    bundle = load_dataset(DatasetSpec(name="cifar100", limit_train=4), tmp_path, augment=True)
    assert bundle.num_classes == 100 and len(bundle.train) == 4 and len(bundle.calibration) == 4
    assert bundle.info["cutout"] == 16  # the official CIFAR-100 loaders' length
    # Plain calibration sees the training images exactly, never augmented.
    x, y = bundle.calibration[2]
    assert y == 99
    torch.testing.assert_close(x, _normalized(raw[2], CIFAR100_MEAN, CIFAR100_STD), rtol=1e-5, atol=1e-5)
    torch.manual_seed(0)
    views = [bundle.train[2][0] for _ in range(4)]
    assert all(v.shape == (3, 32, 32) for v in views)
    assert any(not torch.allclose(v, x) for v in views), "augmentation must change the training images"
    # FTBC's default calibration set is augmented even when the ANN trained without augmentation.
    plain = load_dataset(DatasetSpec(name="cifar100", limit_train=4), tmp_path, augment=False)
    assert len(plain.calibration_augmented) == 4
    assert any(not torch.allclose(plain.calibration_augmented[2][0], x) for _ in range(4))


def test_missing_cifar_names_the_path_and_the_url(tmp_path):
    with pytest.raises(DatasetMissingError) as err:
        load_dataset(DatasetSpec(name="cifar100"), tmp_path)
    message = str(err.value)
    assert str(tmp_path / "cifar-100-python") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message
    assert "download: true" in message


def test_failed_download_becomes_a_missing_dataset_error(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(DatasetMissingError, match="network unreachable"):
        load_dataset(DatasetSpec(name="cifar10", download=True), tmp_path)


def write_imagefolder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 2), ("val", 1)):
        for cls in ("n01440764", "n01443537", "n01484850"):
            folder = root / "imagenet" / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(40 + 7 * i, 50, 3), dtype=np.uint8)
                ext = "JPEG" if i % 2 == 0 else "png"
                Image.fromarray(pixels).save(folder / f"img{i}.{ext}")


def test_imagenet_from_an_imagefolder_tree(tmp_path):
    write_imagefolder(tmp_path)
    bundle = load_dataset(DatasetSpec(name="imagenet"), tmp_path, augment=True)
    assert bundle.num_classes == 3 and (len(bundle.train), len(bundle.test)) == (6, 3)
    x, y = bundle.test[2]
    assert x.shape == (3, 224, 224) and y == 2
    assert bundle.train[0][0].shape == (3, 224, 224)
    assert torch.equal(bundle.calibration[1][0], bundle.calibration[1][0])  # no randomness


def test_imagenet_with_a_torchvision_weights_transform(tmp_path):
    """Evaluating torchvision weights uses the weights' own transforms (here ViT-B/16's crop and
    resize, which differ from ours), for the test and the plain calibration split alike."""
    from torchvision.models import ViT_B_16_Weights

    from snnbench.data.vision import with_eval_transform

    write_imagefolder(tmp_path)
    bundle = load_dataset(DatasetSpec(name="imagenet", limit_test=2), tmp_path)
    own = ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1.transforms()  # crop 384
    changed = with_eval_transform(bundle, own)
    assert len(changed.test) == 2 and changed.test[1][1] == bundle.test[1][1]
    assert changed.test[1][0].shape == (3, 384, 384) and changed.calibration[0][0].shape == (3, 384, 384)
    assert bundle.test[1][0].shape == (3, 224, 224)  # the cached bundle is left as it was


def test_missing_imagenet_explains_how_to_get_it(tmp_path):
    with pytest.raises(DatasetMissingError, match="image-net.org") as err:
        load_dataset(DatasetSpec(name="imagenet"), tmp_path)
    assert str(tmp_path / "imagenet") in str(err.value)


def test_synthetic_has_cifar100_shapes():
    bundle = load_dataset(DatasetSpec(name="synthetic", limit_train=10, limit_test=4))
    assert (len(bundle.train), len(bundle.test), bundle.num_classes) == (10, 4, 100)
    x, y = bundle.train[0]
    assert x.shape == (3, 32, 32) and 0 <= int(y) < 100
    again = load_dataset(DatasetSpec(name="synthetic", limit_train=10, limit_test=4))
    assert torch.equal(again.train[0][0], x)


def test_cutout_zeroes_one_clipped_square():
    img = torch.ones(3, 32, 32)
    torch.manual_seed(0)
    holes = [(Cutout(16)(img) == 0).all(0) for _ in range(50)]
    for hole in holes:
        rows, cols = hole.any(1).sum().item(), hole.any(0).sum().item()
        assert 8 <= rows <= 16 and 8 <= cols <= 16  # centre anywhere: clipped at the border
        assert hole.sum().item() == rows * cols  # one rectangle
    assert any(h.sum().item() == 256 for h in holes)
    assert torch.equal(img, torch.ones(3, 32, 32)), "the input must not be modified"
    with pytest.raises(ValueError):
        Cutout(0)
