"""Static images for direct SNN training: CIFAR-10/100 with the LocalZO / TET augmentation, ImageNet-100.

CIFAR training augmentation as in the LocalZO code (``data_loaders.build_cifar``): random crop 32 with
padding 4, horizontal flip, then Cutout on the [0, 1] pixels (16 px CIFAR-10, 8 px CIFAR-100) *before*
normalisation, so a cut square holds ``-mean/std`` after it; no AutoAugment. Its CIFAR-100 statistics
are (0.5071, 0.4867, 0.4408) / (0.2675, 0.2565, 0.2761). The files are those of the conversion track's
CIFAR loader (same folders, same missing-data message).

ImageNet-100 is an ``ImageFolder`` restricted to 100 classes: either ``<root>/imagenet100/{train,val}``
holds exactly those class folders, or ``<root>/imagenet/{train,val}`` holds ImageNet-1k and
``<root>/imagenet100.txt`` lists the wnids to keep, one a line (the usual list is CMC's, Tian et al.
2019: https://github.com/HobbitLong/CMC/blob/master/imagenet100.txt). Only the listed folders are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from snnbench.data.paths import DatasetMissingError, resolve_data_root
from snnbench.data.registry import DataBundle
from snnbench.data.vision import CIFAR10_MEAN, CIFAR10_STD, Cutout, _cifar_bundle, imagefolder_bundle

DIRECT_CIFAR = {
    "cifar10": {"mean": CIFAR10_MEAN, "std": CIFAR10_STD, "cutout": 16},
    "cifar100": {"mean": (0.5071, 0.4867, 0.4408), "std": (0.2675, 0.2565, 0.2761), "cutout": 8},
}
CLASS_LIST = "imagenet100.txt"


def direct_cifar_transforms(name: str, augment: bool) -> tuple[Callable, Callable]:
    from torchvision import transforms as T

    info = DIRECT_CIFAR[name]
    normalize = T.Normalize(info["mean"], info["std"])
    evaluate = T.Compose([T.ToTensor(), normalize])
    if not augment:
        return evaluate, evaluate
    train = T.Compose(
        [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), Cutout(info["cutout"]), normalize]
    )
    return train, evaluate


def direct_cifar_bundle(name: str, spec, data_root: Optional[Path] = None, augment: bool = False) -> DataBundle:
    bundle = _cifar_bundle(name, spec, data_root, augment, transforms=direct_cifar_transforms(name, augment))
    bundle.info = {**(bundle.info or {}), "augmentation": "localzo" if augment else None}
    return bundle


def _read_class_list(path: Path) -> list[str]:
    names = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a class is listed twice")
    return names


def imagenet100_source(root: Path) -> tuple[Path, Optional[list[str]]]:
    """(folder holding train/ and val/, classes to keep or None for all); DatasetMissingError if neither."""
    own = root / "imagenet100"
    if (own / "train").is_dir() and (own / "val").is_dir():
        return own, None
    full, listing = root / "imagenet", root / CLASS_LIST
    if (full / "train").is_dir() and (full / "val").is_dir() and listing.is_file():
        return full, _read_class_list(listing)
    raise DatasetMissingError(
        "imagenet100",
        [own, full, listing],
        f"put the 100 class folders as train/<wnid>/ and val/<wnid>/ under {own}, or ImageNet-1k under "
        f"{full} plus the list of wnids to keep in {listing} (one a line; the usual list: "
        "https://github.com/HobbitLong/CMC/blob/master/imagenet100.txt)",
    )


def imagenet100_bundle(spec, data_root: Optional[Path] = None, augment: bool = False) -> DataBundle:
    from torchvision.datasets import ImageFolder

    root = resolve_data_root(data_root or getattr(spec, "root", None))
    folder, keep = imagenet100_source(root)

    class Subset100(ImageFolder):
        def find_classes(self, directory):  # only the listed class folders are scanned
            classes, index = super().find_classes(directory) if keep is None else (sorted(keep), None)
            if keep is not None:
                missing = [c for c in classes if not (Path(directory) / c).is_dir()]
                if missing:
                    raise DatasetMissingError(
                        "imagenet100",
                        [Path(directory)],
                        f"the class list names folders that are not there: {missing[:5]}",
                    )
                index = {c: i for i, c in enumerate(classes)}
            return classes, index

    return imagefolder_bundle(
        "imagenet100", folder, Subset100, spec, augment, {"root": str(folder), "class_list": keep is not None}
    )
