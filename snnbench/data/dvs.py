"""Event-camera datasets for spiking CNNs: DVS-CIFAR10 and DVS128 Gesture as event frames ``[T, 2, S, S]``.

Each sample is ``T`` frames of per-pixel event counts (two polarity channels), resized bilinearly from
128×128 to ``S = 48`` with antialiasing (the TET / LocalZO VGGSNN input); the trainer stacks a batch time-major.

- **DVS-CIFAR10**, as the TET code prepares it: ``T`` frames with equal numbers of events each
  (SpikingJelly's ``split_by='number'``), the first 90 % of every class's recordings for training and
  the last 10 % for testing, and for training a random horizontal flip and a random roll of up to
  ±5 px along each axis. Read from SpikingJelly's frame files when present,
  ``<root>/CIFAR10DVS/frames_number_<T>_split_by_number/<class>/*.npz`` (key ``frames``, what TET
  trains on), else from tonic's layout ``<root>/CIFAR10DVS/<class>/*.aedat4`` with tonic (which needs
  the ``aedat`` package to decode AEDAT 4).
- **DVS128 Gesture**, tonic's preprocessed release (``<root>/DVSGesture/ibmGestureTrain`` and
  ``ibmGestureTest``, ``user*/<label>.npy``): ``T`` frames by equal time bins over each recording, 11
  classes, the official user split; no augmentation.

As elsewhere, presence is checked first and tonic only downloads when the suite says ``download: true``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from snnbench.data.events import download_hint, open_tonic, tonic_reader
from snnbench.data.paths import resolve_data_root
from snnbench.data.registry import DataBundle, limited_bundle
from snnbench.safe_io import UnusableFileError

SENSOR = (128, 128, 2)
FRAME_SIZE = 48
DVS_CIFAR10_STEPS = 10
DVS_GESTURE_STEPS = 16
TRAIN_SHARE = 0.9
ROLL_PX = 5
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def resize_frames(frames: torch.Tensor, size: int = FRAME_SIZE) -> torch.Tensor:
    """``[T, C, H, W]`` counts → float32 ``[T, C, size, size]``, bilinear with antialiasing (TET resizes
    with PIL, whose bilinear filter widens when it shrinks, so a lone event still counts)."""
    frames = frames.to(torch.float32)
    if frames.shape[-2:] == (size, size):
        return frames
    return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def flip_and_roll(
    frames: torch.Tensor, generator: Optional[torch.Generator] = None, max_shift: int = ROLL_PX
) -> torch.Tensor:
    """TET's DVS-CIFAR10 training augmentation: horizontal flip (p = 0.5), roll by up to ±max_shift px.

    Draws from torch's RNG, which DataLoader seeds per worker and epoch (a module-level
    ``random.Random`` would be copied into every worker and repeat the same draws each epoch) and
    the trainer's resume restores.
    """
    if torch.rand((), generator=generator) < 0.5:
        frames = frames.flip(-1)
    dy, dx = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=generator))
    return torch.roll(frames, shifts=(dy, dx), dims=(-2, -1))


class FrameSet(Dataset):
    """``(frames[T, 2, S, S], label)`` from a list of items and a function that reads one item's frames."""

    def __init__(self, items: list, labels: list[int], read: Callable[[object], torch.Tensor], augment: bool) -> None:
        self.items, self.labels, self.read, self.augment = items, labels, read, augment

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        frames = resize_frames(self.read(self.items[index]))
        if self.augment:
            frames = flip_and_roll(frames)
        return frames, torch.tensor(self.labels[index], dtype=torch.int64)


def split_per_class(labels: list[int], share: float = TRAIN_SHARE) -> tuple[list[int], list[int]]:
    """Indices of the first ``share`` of every class (in the given order) and of the rest."""
    train, test = [], []
    for c in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == c]
        cut = int(round(len(idx) * share))
        train += idx[:cut]
        test += idx[cut:]
    return train, test


def _has_files(folder: Path, pattern: str) -> bool:
    return folder.is_dir() and next(folder.glob(pattern), None) is not None


def _bundle(name: str, train: Dataset, test: Dataset, spec, classes: int, steps: int, info: dict) -> DataBundle:
    return limited_bundle(
        name,
        train,
        test,
        spec,
        num_classes=classes,
        input_shape=(SENSOR[2], FRAME_SIZE, FRAME_SIZE),
        steps=steps,
        info=info,
    )


# ---------------------------------------------------------------------------------------------
# DVS-CIFAR10


def _spikingjelly_frames(root: Path, steps: int) -> Path:
    return root / "CIFAR10DVS" / f"frames_number_{steps}_split_by_number"


def read_frame_file(path: Path, steps: int) -> torch.Tensor:
    """The ``frames`` array ``[T, 2, H, W]`` of one SpikingJelly ``.npz`` file, read without unpickling;
    a corrupt file, an object array or another shape is refused naming the file."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            frames = archive["frames"]
    except Exception as err:  # noqa: BLE001 - numpy's own text would advise loading it with pickle
        reason = (
            "an object array: Python objects, not numbers"
            if "Object arrays" in str(err)
            else "not an .npz archive"
            if "pickle" in str(err)
            else f"{type(err).__name__}: {err}"
        )
        raise UnusableFileError(
            f"{path}: not a SpikingJelly frame file with a numeric 'frames' array ({reason}); refused without unpickling"
        ) from None
    if frames.dtype.kind not in "biuf" or frames.ndim != 4 or frames.shape[0] != steps or frames.shape[1] != SENSOR[2]:
        raise UnusableFileError(
            f"{path}: 'frames' is {frames.dtype} of shape {list(frames.shape)}; expected numbers of shape "
            f"[T={steps}, {SENSOR[2]}, H, W]"
        )
    return torch.from_numpy(frames)


def _tonic_events(root: Path) -> Path:
    return root / "CIFAR10DVS"


def dvs_cifar10_bundle(
    spec, data_root: Optional[Path] = None, augment: bool = False, steps: int = DVS_CIFAR10_STEPS
) -> DataBundle:
    root = resolve_data_root(data_root or spec.root)
    frames_dir, events_dir = _spikingjelly_frames(root, steps), _tonic_events(root)
    hint = (
        f"put SpikingJelly's frames (CIFAR10DVS(root, data_type='frame', frames_number={steps}, "
        f"split_by='number')) in {frames_dir}/<class>/*.npz, or tonic's unpacked CIFAR10DVS "
        f"(<class>/*.aedat4) in {events_dir} (set `download: true` to let tonic fetch it; decoding needs "
        "`pip install aedat`)"
    )
    if _has_files(frames_dir, "*/*.npz"):
        files, labels = [], []
        for c, cls in enumerate(CIFAR10_CLASSES):
            found = sorted((frames_dir / cls).glob("*.npz"))
            files += found
            labels += [c] * len(found)
        read = functools.partial(read_frame_file, steps=steps)
        source = "spikingjelly frames"
    else:
        searched = [frames_dir, events_dir]
        tonic, CIFAR10DVS = tonic_reader(
            "dvs_cifar10",
            "DVS-CIFAR10",
            "CIFAR10DVS",
            [events_dir],
            lambda f: _has_files(f, "*/*.aedat4"),
            spec,
            hint,
            searched=searched,
        )
        events = open_tonic(lambda: CIFAR10DVS(str(root)), "dvs_cifar10", searched, hint)
        order = sorted(range(len(events.data)), key=lambda i: (events.targets[i], events.data[i]))
        files, labels = order, [int(events.targets[i]) for i in order]
        to_frame = tonic.transforms.ToFrame(sensor_size=SENSOR, n_event_bins=steps)
        read = lambda i: torch.from_numpy(to_frame(events[i][0]).astype(np.float32))  # noqa: E731
        source = "tonic events"
    tr, te = split_per_class(labels)
    train = FrameSet([files[i] for i in tr], [labels[i] for i in tr], read, augment)
    test = FrameSet([files[i] for i in te], [labels[i] for i in te], read, False)
    info = {"source": source, "root": str(root), "frames": steps, "split_by": "number", "size": FRAME_SIZE}
    return _bundle("dvs_cifar10", train, test, spec, 10, steps, info)


# ---------------------------------------------------------------------------------------------
# DVS128 Gesture


def _gesture_folder(root: Path, train: bool) -> Path:
    return root / "DVSGesture" / ("ibmGestureTrain" if train else "ibmGestureTest")


def _has_npy(folder: Path) -> bool:
    return _has_files(folder, "*/*.npy")


def dvs_gesture_bundle(
    spec, data_root: Optional[Path] = None, augment: bool = False, steps: int = DVS_GESTURE_STEPS
) -> DataBundle:
    root = resolve_data_root(data_root or spec.root)
    folders = [_gesture_folder(root, True), _gesture_folder(root, False)]
    hint = download_hint(
        f"unpack tonic's ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz (user*/<label>.npy) "
        f"into {root / 'DVSGesture'}"
    )
    tonic, DVSGesture = tonic_reader("dvs_gesture", "DVS128 Gesture", "DVSGesture", folders, _has_npy, spec, hint)

    to_frame = tonic.transforms.ToFrame(sensor_size=SENSOR, n_time_bins=steps)

    def load(train: bool) -> Dataset:
        events = open_tonic(lambda: DVSGesture(str(root), train=train), "dvs_gesture", folders, hint)
        read = lambda i: torch.from_numpy(to_frame(events[i][0]).astype(np.float32))  # noqa: E731
        return FrameSet(list(range(len(events))), [int(t) for t in events.targets], read, False)

    info = {"source": "tonic", "root": str(root), "frames": steps, "split_by": "time", "size": FRAME_SIZE}
    return _bundle("dvs_gesture", load(True), load(False), spec, 11, steps, info)
