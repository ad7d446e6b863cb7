"""Image datasets of the conversion track: CIFAR-10/100, ImageNet and synthetic CIFAR-100-shaped data.

CIFAR is read from ``<root>/cifar-10-batches-py`` or ``<root>/cifar-100-python`` (the folders of the
official archives) with an unpickler that only rebuilds arrays, and downloaded there by torchvision when
the suite says ``download: true`` and the network allows. ImageNet is read with ``ImageFolder`` from ``<root>/imagenet/{train,val}`` (or
``<root>/{train,val}``); it is never downloaded. Missing data raises :class:`DatasetMissingError` naming
the folder searched and how to get the data, before any training starts.

Training augmentation follows the QCFS and FTBC code (``Preprocess/getdataloader.py`` in both):
random crop 32 with padding 4, horizontal flip, AutoAugment (CIFAR-10 policy), normalisation, Cutout
16 px (CIFAR-10 and CIFAR-100 alike). ImageNet: RandomResizedCrop 224 and flip for training, Resize 256
+ CenterCrop 224 for evaluation. ``bundle.calibration`` is the training split with the evaluation
transform; ``bundle.calibration_augmented`` the training split with the training augmentation whatever
``augment`` says (the official FTBC script calibrates on its augmented training loader).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from snnbench.data.paths import DatasetMissingError, resolve_data_root
from snnbench.data.registry import DataBundle, limit

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
CIFAR100_MEAN = tuple(v / 255 for v in (129.3, 124.1, 112.4))
CIFAR100_STD = tuple(v / 255 for v in (68.2, 65.4, 70.4))
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

_CIFAR = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "classes": 10,
        "mean": CIFAR10_MEAN,
        "std": CIFAR10_STD,
        "cutout": 16,
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "classes": 100,
        "mean": CIFAR100_MEAN,
        "std": CIFAR100_STD,
        "cutout": 16,
    },
}


class Cutout:
    """Zero one random ``length``×``length`` square (clipped at the border) of a ``[C, H, W]`` tensor."""

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"Cutout length must be >= 1, got {length}")
        self.length = length

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        half = self.length // 2
        y0, y1 = max(cy - half, 0), min(cy + self.length - half, h)
        x0, x1 = max(cx - half, 0), min(cx + self.length - half, w)
        out = img.clone()
        out[..., y0:y1, x0:x1] = 0
        return out

    def __repr__(self) -> str:
        return f"Cutout(length={self.length})"


class TransformedView(Dataset):
    """``base[i]`` with ``transform`` applied to the image: two views share one copy of the data."""

    def __init__(self, base: Dataset, transform: Callable) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, target = self.base[index]
        return self.transform(image), target


def cifar_transforms(name: str, augment: bool) -> tuple[Callable, Callable]:
    """(training transform, evaluation transform) for ``cifar10`` / ``cifar100``."""
    from torchvision import transforms as T

    info = _CIFAR[name]
    evaluate = T.Compose([T.ToTensor(), T.Normalize(info["mean"], info["std"])])
    if not augment:
        return evaluate, evaluate
    train = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.AutoAugment(T.AutoAugmentPolicy.CIFAR10),
            T.ToTensor(),
            T.Normalize(info["mean"], info["std"]),
            Cutout(info["cutout"]),
        ]
    )
    return train, evaluate


def imagenet_transforms(augment: bool) -> tuple[Callable, Callable]:
    from torchvision import transforms as T

    normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    evaluate = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), normalize])
    if not augment:
        return evaluate, evaluate
    train = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
    return train, evaluate


def _download_cifar(name: str, root: Path) -> None:
    """Fetch and unpack the archive with torchvision (which checks its md5) unless the batches exist."""
    from torchvision.datasets import CIFAR10, CIFAR100

    base = CIFAR10 if name == "cifar10" else CIFAR100

    class Fetcher(base):  # type: ignore[misc, valid-type]
        # A local copy is only checked for presence; torchvision's reader is never used (it unpickles).
        train_list = [[f, None] for f, _ in base.train_list]
        test_list = [[f, None] for f, _ in base.test_list]

    fetcher = Fetcher.__new__(Fetcher)
    fetcher.root = str(root)
    fetcher.download()


class CIFARBatches(Dataset):
    """CIFAR from its pickled python batches, read with an unpickler that only rebuilds arrays (a
    planted batch file cannot run code); ``(PIL image, label)`` items like torchvision's class."""

    FILES = {
        ("cifar10", True): [f"data_batch_{i}" for i in range(1, 6)],
        ("cifar10", False): ["test_batch"],
        ("cifar100", True): ["train"],
        ("cifar100", False): ["test"],
    }

    def __init__(self, name: str, folder: Path, train: bool) -> None:
        from snnbench.safe_io import UnusableFileError, load_array_pickle

        label_key = "labels" if name == "cifar10" else "fine_labels"
        images, labels = [], []
        for file_name in self.FILES[(name, train)]:
            path = folder / file_name
            if not path.is_file():
                raise FileNotFoundError(f"batch file {path} is missing")
            with open(path, "rb") as fh:
                entry = load_array_pickle(fh, path, f"a {name} batch")
            try:
                data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                targets = [int(v) for v in entry[label_key]]
            except (KeyError, TypeError, ValueError) as err:
                raise UnusableFileError(
                    f"{path}: not a {name} batch (expected 'data' of N×3072 bytes and {label_key!r}; "
                    f"{type(err).__name__}: {err})"
                ) from None
            if len(targets) != len(data):
                raise UnusableFileError(f"{path}: {len(data)} images but {len(targets)} labels (truncated?)")
            classes = _CIFAR[name]["classes"]
            wrong = next((v for v in targets if not 0 <= v < classes), None)
            if wrong is not None:  # the loss would fail mid-epoch (or a GPU assert would end the process)
                raise UnusableFileError(f"{path}: label {wrong} out of range; {name} labels are 0..{classes - 1}")
            images.append(data)
            labels.extend(targets)
        self.data = np.concatenate(images).transpose(0, 2, 3, 1)  # HWC, as PIL wants
        self.targets = labels

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image

        return Image.fromarray(self.data[index]), self.targets[index]


def _cifar_bundle(
    name: str, spec, data_root: Optional[Path], augment: bool, transforms: Optional[tuple[Callable, Callable]] = None
) -> DataBundle:
    """``transforms`` (train, eval) replaces the QCFS ones (the direct-training track has its own)."""
    info = _CIFAR[name]
    root = resolve_data_root(data_root or getattr(spec, "root", None))
    folder = root / info["folder"]
    how = (
        f"set `download: true` for this dataset in the suite (needs network), or download {info['url']} "
        f"and extract it into {root} (it unpacks to {info['folder']}/)"
    )
    from snnbench.safe_io import UnusableFileError

    try:
        if not spec.download and not folder.is_dir():
            raise DatasetMissingError(name, folder, how)
        if spec.download:
            root.mkdir(parents=True, exist_ok=True)
            _download_cifar(name, root)
        train_base = CIFARBatches(name, folder, train=True)
        test_base = CIFARBatches(name, folder, train=False)
    except (DatasetMissingError, UnusableFileError):
        raise  # a truncated or planted batch names its file
    except Exception as err:  # no network, a partial download, missing batch files
        raise DatasetMissingError(name, folder, f"{how} ({err.__class__.__name__}: {err})") from err
    train_tf, eval_tf = transforms or cifar_transforms(name, augment)
    calibration = limit(TransformedView(train_base, eval_tf), spec.limit_train)
    augmented = limit(TransformedView(train_base, cifar_transforms(name, True)[0]), spec.limit_train)
    return DataBundle(
        name=name,
        train=limit(TransformedView(train_base, train_tf), spec.limit_train),
        test=limit(TransformedView(test_base, eval_tf), spec.limit_test),
        calibration=calibration,
        calibration_augmented=augmented,
        num_classes=info["classes"],
        input_shape=(3, 32, 32),
        info={"root": str(root), "cutout": info["cutout"] if augment else None},
    )


def cifar10_bundle(spec, data_root: Optional[Path] = None, augment: bool = False) -> DataBundle:
    return _cifar_bundle("cifar10", spec, data_root, augment)


def cifar100_bundle(spec, data_root: Optional[Path] = None, augment: bool = False) -> DataBundle:
    return _cifar_bundle("cifar100", spec, data_root, augment)


def _imagenet_folder(root: Path) -> Optional[Path]:
    for candidate in (root / "imagenet", root):
        if (candidate / "train").is_dir() and (candidate / "val").is_dir():
            return candidate
    return None


def _image_folder(split: Path, folder_class):
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from snnbench.safe_io import UnusableFileError

    try:
        return folder_class(str(split))
    except DatasetMissingError:
        raise  # a class list naming absent folders says so itself
    except (FileNotFoundError, OSError) as err:
        empty = (
            sorted(
                str(d)
                for d in split.iterdir()
                if d.is_dir() and not any(f.suffix.lower() in IMG_EXTENSIONS for f in d.rglob("*") if f.is_file())
            )
            if split.is_dir()
            else []
        )
        if empty:
            shown = ", ".join(empty[:5]) + (f" (+{len(empty) - 5} more)" if len(empty) > 5 else "")
            raise UnusableFileError(
                f"ImageFolder class folder{'s' if len(empty) > 1 else ''} without images: {shown}; "
                f"every class folder needs at least one {'/'.join(IMG_EXTENSIONS[:4])}... file"
            ) from None
        raise UnusableFileError(f"{split}: cannot be read as an ImageFolder ({err})") from None


def imagenet_bundle(spec, data_root: Optional[Path] = None, augment: bool = False) -> DataBundle:
    root = resolve_data_root(data_root or getattr(spec, "root", None))
    folder = _imagenet_folder(root)
    if folder is None:
        raise DatasetMissingError(
            "imagenet",
            [root / "imagenet", root],
            "ImageNet (ILSVRC-2012) cannot be downloaded automatically: get it from "
            "https://image-net.org/download.php and arrange it as train/<class>/*.JPEG and "
            f"val/<class>/*.JPEG under {root / 'imagenet'}",
        )
    from torchvision.datasets import ImageFolder

    return imagefolder_bundle("imagenet", folder, ImageFolder, spec, augment, {"root": str(folder)})


def imagefolder_bundle(name: str, folder: Path, folder_class, spec, augment: bool, info: dict[str, Any]) -> DataBundle:
    """ImageNet-style ``folder/{train,val}/<class>/`` read with ``folder_class`` (an ImageFolder)."""
    train_base = _image_folder(folder / "train", folder_class)
    test_base = _image_folder(folder / "val", folder_class)
    if train_base.classes != test_base.classes:
        raise ValueError(f"{folder}: train/ and val/ have different class folders")
    train_tf, eval_tf = imagenet_transforms(augment)
    return DataBundle(
        name=name,
        train=limit(TransformedView(train_base, train_tf), spec.limit_train),
        test=limit(TransformedView(test_base, eval_tf), spec.limit_test),
        calibration=limit(TransformedView(train_base, eval_tf), spec.limit_train),
        calibration_augmented=limit(TransformedView(train_base, imagenet_transforms(True)[0]), spec.limit_train),
        num_classes=len(train_base.classes),
        input_shape=(3, 224, 224),
        info=info,
    )


def _retransformed(ds: Dataset, transform: Callable) -> Dataset:
    if isinstance(ds, Subset):
        return Subset(_retransformed(ds.dataset, transform), ds.indices)
    if isinstance(ds, TransformedView):
        return TransformedView(ds.base, transform)
    raise ValueError(f"cannot change the transform of a {type(ds).__name__}")


def with_eval_transform(bundle: DataBundle, transform: Callable) -> DataBundle:
    """``bundle`` with ``transform`` (e.g. a torchvision weights' own ``transforms()``) in place of its
    evaluation transform, for the test split and the plain calibration split."""
    return replace(
        bundle,
        test=_retransformed(bundle.test, transform),
        calibration=_retransformed(bundle.calibration, transform),
    )


SYNTHETIC_TRAIN, SYNTHETIC_TEST, SYNTHETIC_CLASSES = 2000, 500, 100


def synthetic_bundle(spec, data_root: Optional[Path] = None, augment: bool = False) -> DataBundle:
    """Random normalised images with CIFAR-100 shapes: for timing on machines that hold no datasets."""
    from torch.utils.data import TensorDataset

    generator = torch.Generator().manual_seed(0)
    n_train = spec.limit_train or SYNTHETIC_TRAIN
    n_test = spec.limit_test or SYNTHETIC_TEST

    def split(n: int) -> TensorDataset:
        x = torch.randn(n, 3, 32, 32, generator=generator)
        y = torch.randint(SYNTHETIC_CLASSES, (n,), generator=generator)
        return TensorDataset(x, y)

    train = split(n_train)
    return DataBundle(
        name="synthetic",
        train=train,
        test=split(n_test),
        calibration=train,
        num_classes=SYNTHETIC_CLASSES,
        input_shape=(3, 32, 32),
    )
