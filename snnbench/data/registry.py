"""Datasets by name. Each loader returns a :class:`DataBundle`; modules load lazily so that a CPU
run on digits never imports torchvision's dataset code or tonic."""

from __future__ import annotations

import importlib
import os
from functools import lru_cache
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from torch.utils.data import Dataset, Subset

# name -> "module:function"; function(spec: DatasetSpec, data_root: Path | None, augment: bool)
LOADERS: dict[str, str] = {
    "digits": "snnbench.data.digits:digits_bundle",
    "digits_spiking": "snnbench.data.spiking:digits_spiking_bundle",
    "fmnist": "snnbench.data.spiking:fmnist_bundle",
    "nmnist": "snnbench.data.events:nmnist_bundle",
    "shd": "snnbench.data.events:shd_bundle",
    "cifar10": "snnbench.data.vision:cifar10_bundle",
    "cifar100": "snnbench.data.vision:cifar100_bundle",
    "imagenet": "snnbench.data.vision:imagenet_bundle",
    "synthetic": "snnbench.data.vision:synthetic_bundle",
    "synthetic_spiking": "snnbench.data.spiking:synthetic_spiking_bundle",
    "dvs_cifar10": "snnbench.data.dvs:dvs_cifar10_bundle",
    "dvs_gesture": "snnbench.data.dvs:dvs_gesture_bundle",
    "imagenet100": "snnbench.data.direct:imagenet100_bundle",
}


# Datasets made in memory or shipped inside a library: no data root decides what they hold.
ROOTLESS = ("digits", "digits_spiking", "synthetic", "synthetic_spiking")


def data_identity(spec, data_root: Optional[Path] = None) -> Optional[str]:
    """The resolved folder a dataset is read from (None where none is read): what a cache of work
    done on that data must be keyed with, so an ANN trained on ``--data-root A`` is not reused for B."""
    if spec.name in ROOTLESS:
        return None
    from snnbench.data.paths import resolve_data_root

    return str(resolve_data_root(data_root or getattr(spec, "root", None)).resolve())


@dataclass
class DataBundle:
    """Train and test sets of one dataset, plus what models need to know about it.

    ``calibration`` is the training split without augmentation: conversion calibrates on training
    images only, never on the test split. ``calibration_augmented`` is the training split with the
    training augmentation, for methods that calibrate as the official FTBC loader does (None where
    the dataset has no augmentation).
    """

    name: str
    train: Dataset
    test: Dataset
    calibration: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    timesteps: Optional[int] = None  # native length of event / spike-train data
    info: Optional[dict[str, Any]] = None
    calibration_augmented: Optional[Dataset] = None


def limit(ds: Dataset, n: Optional[int]) -> Dataset:
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    return Subset(ds, range(n))


def limited_bundle(
    name: str,
    train: Dataset,
    test: Dataset,
    spec,
    *,
    num_classes: int,
    input_shape: tuple[int, ...],
    steps: int,
    info: dict[str, Any],
) -> DataBundle:
    """A bundle of ``steps``-step data with the suite's limits; the (limited) train split calibrates."""
    train = limit(train, spec.limit_train)
    return DataBundle(
        name=name,
        train=train,
        test=limit(test, spec.limit_test),
        calibration=train,
        num_classes=num_classes,
        input_shape=input_shape,
        timesteps=steps,
        info=info,
    )


def sequence_bundle(
    name: str, train: Dataset, test: Dataset, spec, *, num_classes: int, inputs: int, steps: int, info: dict[str, Any]
) -> DataBundle:
    """A bundle of spike-train data ``[T, inputs]`` (training track), with the suite's limits."""
    return limited_bundle(
        name, train, test, spec, num_classes=num_classes, input_shape=(inputs,), steps=steps, info=info
    )


def load_dataset(spec, data_root: Optional[Path] = None, augment: bool = False) -> DataBundle:
    """Load the dataset named by ``spec`` (a DatasetSpec); raise DatasetMissingError if absent.

    The last few bundles are kept: the sweep's preflight check and every cell of the same dataset
    share one read of the files instead of one each.
    """
    # The root the loaders will use is the key (an explicit root, else the spec's), so callers that
    # spell it differently still share one read. SNNBENCH_DATA is part of the key: with neither, it
    # decides where the loaders look.
    root = data_root or getattr(spec, "root", None)
    root = str(root) if root is not None else None
    return _load_cached(spec, root, augment, os.environ.get("SNNBENCH_DATA"))


@lru_cache(maxsize=2)
def _load_cached(spec, data_root: Optional[str], augment: bool, _env_root: Optional[str]) -> DataBundle:
    target = LOADERS.get(spec.name)
    if target is None:
        raise ValueError(f"unknown dataset {spec.name!r}; expected one of {sorted(LOADERS)}")
    module_name, func_name = target.split(":")
    loader = getattr(importlib.import_module(module_name), func_name)
    return loader(spec, Path(data_root) if data_root is not None else None, augment)
