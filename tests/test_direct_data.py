"""Direct-track loaders on fixtures in the real on-disk formats: DVS128 Gesture (tonic's .npy release),
DVS-CIFAR10 (SpikingJelly frame files), ImageNet-100 (ImageFolder + class list), CIFAR with the LocalZO
augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from snnbench.config import DatasetSpec
from snnbench.data.direct import DIRECT_CIFAR, direct_cifar_transforms, imagenet100_bundle
from snnbench.data.dvs import FRAME_SIZE, flip_and_roll, split_per_class
from snnbench.data.paths import DatasetMissingError
from snnbench.data.registry import load_dataset
from snnbench.training.conv_train import load_direct_dataset


def _gesture_npy(path, events):
    """tonic's DVSGesture release: one (N, 4) array per sample, columns x, y, polarity, t in ms."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(events, dtype=np.float64))


def test_dvs_gesture_frames_by_time_bins(tmp_path):
    root = tmp_path / "DVSGesture"
    # Sample 3 (label 3): 4 events at 0, 1, 2, 3 ms on pixel (10, 20), polarity 1 then 0.
    _gesture_npy(
        root / "ibmGestureTrain" / "user01_fluorescent" / "3.npy",
        [[10, 20, 1, 0], [10, 20, 1, 1], [10, 20, 0, 2], [10, 20, 0, 3]],
    )
    _gesture_npy(root / "ibmGestureTrain" / "user01_fluorescent" / "10.npy", [[0, 0, 1, 0], [127, 127, 0, 5]])
    _gesture_npy(root / "ibmGestureTest" / "user24_led" / "0.npy", [[64, 64, 1, 0], [64, 64, 1, 9]])
    spec = DatasetSpec(name="dvs_gesture")
    bundle = load_direct_dataset(spec, tmp_path, augment=False, steps=2)
    assert bundle.num_classes == 11 and (len(bundle.train), len(bundle.test)) == (2, 1)
    labels = sorted(int(bundle.train[i][1]) for i in range(2))
    assert labels == [3, 10]
    frames, label = next(bundle.train[i] for i in range(2) if int(bundle.train[i][1]) == 3)
    assert frames.shape == (2, 2, FRAME_SIZE, FRAME_SIZE) and frames.dtype == torch.float32
    # Two equal time bins: the ON events fall in bin 0, the OFF events in bin 1 (tonic's channel 0 = OFF).
    per_bin = frames.sum((2, 3))
    assert per_bin[0, 1] > 0 and per_bin[0, 0] == 0 and per_bin[1, 0] > 0 and per_bin[1, 1] == 0
    assert load_dataset(spec, tmp_path).num_classes == 11  # the registry's default T = 16 reads it too


def test_dvs_gesture_missing_names_the_folders(tmp_path):
    with pytest.raises(DatasetMissingError, match="ibmGestureTrain.*ibmGestureTest"):
        load_direct_dataset(DatasetSpec(name="dvs_gesture"), tmp_path, augment=False, steps=16)


def test_dvs_cifar10_from_spikingjelly_frames_split_per_class(tmp_path):
    folder = tmp_path / "CIFAR10DVS" / "frames_number_4_split_by_number"
    for cls in ("airplane", "cat"):
        for i in range(10):
            frames = np.zeros((4, 2, 128, 128), dtype=np.int16)
            frames[:, :, :, :64] = i  # the left half carries the sample's index
            (folder / cls).mkdir(parents=True, exist_ok=True)
            np.savez_compressed(folder / cls / f"{cls}_{i}.npz", frames=frames)
    spec = DatasetSpec(name="dvs_cifar10")
    bundle = load_direct_dataset(spec, tmp_path, augment=False, steps=4)
    assert (len(bundle.train), len(bundle.test)) == (18, 2) and bundle.num_classes == 10
    x, y = bundle.test[0]
    assert x.shape == (4, 2, FRAME_SIZE, FRAME_SIZE) and int(y) == 0
    # The test split holds each class's last recording (index 9), resized bilinearly to 48x48.
    assert torch.isclose(x[0, 0, 0, 0], torch.tensor(9.0)) and x[0, 0, 0, -1] == 0
    assert [int(bundle.test[i][1]) for i in range(2)] == [0, 3]
    augmented = load_direct_dataset(spec, tmp_path, augment=True, steps=4)
    assert augmented.train[0][0].shape == (4, 2, FRAME_SIZE, FRAME_SIZE)
    with pytest.raises(DatasetMissingError, match="frames_number_10_split_by_number"):
        load_direct_dataset(spec, tmp_path / "elsewhere", augment=False, steps=10)


def test_per_class_split_and_tet_augmentation():
    assert split_per_class([0] * 10 + [1] * 10) == (list(range(9)) + list(range(10, 19)), [9, 19])
    frames = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    candidates = [
        torch.roll(f, (dy, dx), (-2, -1)) for f in (frames, frames.flip(-1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    ]
    seen = set()
    for seed in range(40):
        out = flip_and_roll(frames, torch.Generator().manual_seed(seed), max_shift=1)
        seen.add(next(i for i, c in enumerate(candidates) if torch.equal(out, c)))  # always one of them
    assert len(seen) > 9  # both flips and several shifts occur


def _imagefolder(root, classes, per_class=1):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)).save(
                    root / split / cls / f"{i}.JPEG"
                )


def test_imagenet100_reads_only_the_listed_classes(tmp_path):
    _imagefolder(tmp_path / "imagenet", ["n01", "n02", "n03"], per_class=2)
    (tmp_path / "imagenet100.txt").write_text("n03\nn01\n")
    spec = DatasetSpec(name="imagenet100")
    bundle = load_dataset(spec, tmp_path)
    assert bundle.num_classes == 2 and (len(bundle.train), len(bundle.test)) == (4, 4)  # n02 left out
    assert bundle.test[3][0].shape == (3, 224, 224) and bundle.test[3][1] == 1  # n03 is class 1
    (tmp_path / "imagenet100.txt").write_text("n01\nn09\n")
    with pytest.raises(DatasetMissingError, match="n09"):
        imagenet100_bundle(spec, tmp_path)  # the loader itself: the registry would return its cached read


def test_imagenet100_missing_explains_both_layouts(tmp_path):
    with pytest.raises(DatasetMissingError, match="imagenet100.txt"):
        load_dataset(DatasetSpec(name="imagenet100"), tmp_path)
    _imagefolder(tmp_path / "imagenet100", ["a", "b"])
    assert load_dataset(DatasetSpec(name="imagenet100"), tmp_path).num_classes == 2


def test_cifar_training_transform_cuts_out_before_normalising():
    train, evaluate = direct_cifar_transforms("cifar10", augment=True)
    image = Image.fromarray(np.full((32, 32, 3), 200, dtype=np.uint8))
    torch.manual_seed(0)
    x = train(image)
    mean, std = (torch.tensor(DIRECT_CIFAR["cifar10"][k]).view(3, 1, 1) for k in ("mean", "std"))
    cut = torch.isclose(x, -mean / std, atol=1e-5).all(0)  # a zero pixel normalised; padding is zero too
    assert cut.any() and not cut.all()
    assert "AutoAugment" not in repr(train) and evaluate(image).shape == (3, 32, 32)
    assert DIRECT_CIFAR["cifar100"]["cutout"] == 8


def test_direct_cifar10_reads_the_pickled_batches(tmp_path):
    from tests.test_vision_data import write_cifar10

    raw = write_cifar10(tmp_path)
    bundle = load_direct_dataset(DatasetSpec(name="cifar10"), tmp_path, augment=True, steps=4)
    assert (len(bundle.train), len(bundle.test), bundle.num_classes) == (15, 4, 10)
    mean, std = (torch.tensor(DIRECT_CIFAR["cifar10"][k]).view(3, 1, 1) for k in ("mean", "std"))
    expected = (torch.from_numpy(raw[0].reshape(3, 32, 32).astype(np.float32) / 255) - mean) / std
    assert torch.allclose(bundle.calibration[0][0], expected, atol=1e-6)  # unaugmented view
    assert bundle.train[0][0].shape == (3, 32, 32) and bundle.info["augmentation"] == "localzo"
