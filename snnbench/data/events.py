"""Event-camera and audio spike datasets through tonic: N-MNIST and SHD, binned to dense spike trains.

- N-MNIST: 34×34 pixels, polarity folded (channel = y·34 + x), 1 ms bins, T = 300, counts clipped to 1.
- SHD: 700 cochlea channels, 2 ms bins, T = 500, counts clipped to 1.

Two options of the dataset spec reproduce the official SparseProp / LocalZO loaders: ``binning: round``
(bin = round(t/dt) instead of floor(t/dt)) and ``clip_test: false`` (the official code clips training
counts to 1 but evaluates on unclipped counts). Training counts are always clipped.

The files are read with tonic's dataset classes (install the ``neuromorphic`` extra: ``pip install
tonic``). Presence is checked here first, so a missing dataset is reported before any work, and tonic is
only allowed to download when the suite says ``download: true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from snnbench.data.paths import DatasetMissingError, resolve_data_root
from snnbench.data.registry import sequence_bundle

NMNIST_SIDE = 34
NMNIST_STEPS = 300
NMNIST_DT_US = 1000
SHD_CHANNELS = 700
SHD_STEPS = 500
SHD_DT_US = 2000


BINNINGS = ("floor", "round")


def bin_events(
    channels: np.ndarray,
    times_us: np.ndarray,
    steps: int,
    dt_us: float,
    n_channels: int,
    binning: str = "floor",
    clip: bool = True,
) -> torch.Tensor:
    """Dense ``[steps, n_channels]`` float32 train: one bin per ``dt_us`` (``floor`` or ``round`` of
    t/dt; round half to even, as numpy's), counts clipped to 1 unless ``clip=False``."""
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {BINNINGS}, got {binning!r}")
    scaled = np.asarray(times_us, dtype=np.float64) / dt_us
    t = (np.floor(scaled) if binning == "floor" else np.round(scaled)).astype(np.int64)
    c = np.asarray(channels, dtype=np.int64)
    keep = (t >= 0) & (t < steps) & (c >= 0) & (c < n_channels)
    x = torch.zeros(steps, n_channels, dtype=torch.float32)
    index = (torch.from_numpy(t[keep]), torch.from_numpy(c[keep]))
    if clip:
        x[index] = 1.0
    else:
        x.index_put_(index, torch.ones(int(keep.sum())), accumulate=True)
    return x


class BinnedEvents(Dataset):
    """Wraps a tonic dataset; ``(spikes[T, N] float32, label)`` per sample."""

    def __init__(
        self,
        events: Dataset,
        to_channels: Callable[[np.ndarray], np.ndarray],
        steps: int,
        dt_us: float,
        n_channels: int,
        binning: str = "floor",
        clip: bool = True,
    ) -> None:
        self.events = events
        self.to_channels = to_channels
        self.steps, self.dt_us, self.n_channels = steps, dt_us, n_channels
        self.binning, self.clip = binning, clip

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, index: int):
        ev, label = self.events[index]
        x = bin_events(self.to_channels(ev), ev["t"], self.steps, self.dt_us, self.n_channels, self.binning, self.clip)
        return x, torch.tensor(int(label), dtype=torch.int64)


def require_tonic(what: str):
    """The tonic module, or a clear error naming the data set that needs it."""
    try:
        import tonic
    except ImportError:
        from snnbench.errors import MissingDependencyError

        raise MissingDependencyError(
            f"{what} is read with tonic, which is not installed: pip install 'snnbench[neuromorphic]'"
        ) from None
    return tonic


def _data_folder(ds) -> Path:
    return Path(ds.location_on_system) / ds.folder_name


def local_tonic_class(
    base,
    present: Callable[[Path], bool],
    may_download: bool,
    missing: Callable[[], Exception],
    where: Callable[[Dataset], Path] = _data_folder,
):
    """``base`` (a tonic dataset class) that trusts the unpacked files ``present`` finds at ``where``
    (its data folder unless told otherwise) and downloads only when ``may_download`` (else raises
    ``missing()``). Tonic insists on its archives and file counts before it reads anything; the presence
    check of the caller has already decided. Tonic names the data folder after the class."""

    class Local(base):  # type: ignore[misc, valid-type]
        def _check_exists(self) -> bool:
            return present(where(self))

        def download(self) -> None:
            if not may_download:
                raise missing()
            super().download()

    Local.__name__ = Local.__qualname__ = base.__name__
    return Local


def download_hint(unpack: str) -> str:
    """What to do about missing event data: let tonic fetch it, or ``unpack`` it by hand."""
    return f"set `download: true` for the dataset in the suite (tonic fetches it), or {unpack}"


def tonic_reader(
    name: str,
    what: str,
    cls_name: str,
    checked: list[Path],
    present: Callable[[Path], bool],
    spec,
    hint: str,
    *,
    searched: Optional[list[Path]] = None,
    where: Callable[[Dataset], Path] = _data_folder,
):
    """``(tonic, class)``: tonic's dataset class ``cls_name`` made local (:func:`local_tonic_class`) once
    every path of ``checked`` passes ``present`` or the suite lets tonic download; otherwise the
    missing-data error of ``name`` naming ``searched`` (default ``checked``) and ``hint``."""
    searched = searched or checked

    def missing() -> Exception:
        return DatasetMissingError(name, searched, hint)

    if not all(present(f) for f in checked) and not spec.download:
        raise missing()
    tonic = require_tonic(what)
    return tonic, local_tonic_class(getattr(tonic.datasets, cls_name), present, spec.download, missing, where)


def open_tonic(factory: Callable[[], Dataset], name: str, searched: list[Path], hint: str) -> Dataset:
    """``factory()`` with any failure but a missing dataset reported as one (tonic's message appended)."""
    try:
        return factory()
    except DatasetMissingError:
        raise
    except Exception as err:
        raise DatasetMissingError(name, searched, f"{hint} (tonic failed: {err})") from err


def _binning(spec, train: bool) -> tuple[str, bool]:
    """(binning, clip) of one split: training counts are always clipped."""
    return getattr(spec, "binning", "floor"), train or getattr(spec, "clip_test", True)


def _binning_info(spec) -> dict:
    binning, clip_test = _binning(spec, False)
    return {"clip": 1, "binning": binning, "clip_test": clip_test}


# ---------------------------------------------------------------------------------------------
# N-MNIST


def _nmnist_folder(root: Path, train: bool) -> Path:
    return root / "NMNIST" / ("Train" if train else "Test")


def _has_bins(folder: Path) -> bool:
    return folder.is_dir() and next(folder.glob("*/*.bin"), None) is not None


def nmnist_bundle(spec, data_root: Optional[Path] = None, augment: bool = False):
    root = resolve_data_root(data_root or spec.root)
    folders = [_nmnist_folder(root, True), _nmnist_folder(root, False)]
    hint = download_hint(
        f"unpack the N-MNIST Train/ and Test/ folders (digit sub-folders of .bin files) into {root / 'NMNIST'}"
    )
    _, NMNIST = tonic_reader("nmnist", "N-MNIST", "NMNIST", folders, _has_bins, spec, hint)

    def load(train: bool) -> Dataset:
        ds = open_tonic(lambda: NMNIST(str(root), train=train), "nmnist", folders, hint)
        channels = lambda ev: ev["y"].astype(np.int64) * NMNIST_SIDE + ev["x"].astype(np.int64)  # noqa: E731
        return BinnedEvents(ds, channels, NMNIST_STEPS, NMNIST_DT_US, NMNIST_SIDE * NMNIST_SIDE, *_binning(spec, train))

    info = {"source": "tonic", "root": str(root), "dt_ms": 1.0, "polarity": "folded", **_binning_info(spec)}
    return sequence_bundle(
        "nmnist",
        load(True),
        load(False),
        spec,
        num_classes=10,
        inputs=NMNIST_SIDE * NMNIST_SIDE,
        steps=NMNIST_STEPS,
        info=info,
    )


# ---------------------------------------------------------------------------------------------
# SHD


def _shd_file(root: Path, train: bool) -> Path:
    return root / "SHD" / ("shd_train.h5" if train else "shd_test.h5")


def shd_bundle(spec, data_root: Optional[Path] = None, augment: bool = False):
    root = resolve_data_root(data_root or spec.root)
    files = [_shd_file(root, True), _shd_file(root, False)]
    hint = download_hint(f"put shd_train.h5 and shd_test.h5 (unzipped, from zenkelab.org) in {root / 'SHD'}")
    # tonic also wants the .zip it downloaded; the unpacked .h5 is all it reads.
    _, SHD = tonic_reader(
        "shd",
        "SHD",
        "SHD",
        files,
        Path.is_file,
        spec,
        hint,
        where=lambda ds: Path(ds.location_on_system, ds.data_filename),
    )

    def load(train: bool) -> Dataset:
        ds = open_tonic(lambda: SHD(str(root), train=train), "shd", files, hint)
        return BinnedEvents(ds, lambda ev: ev["x"], SHD_STEPS, SHD_DT_US, SHD_CHANNELS, *_binning(spec, train))

    info = {"source": "tonic", "root": str(root), "dt_ms": 2.0, **_binning_info(spec)}
    return sequence_bundle(
        "shd", load(True), load(False), spec, num_classes=20, inputs=SHD_CHANNELS, steps=SHD_STEPS, info=info
    )
