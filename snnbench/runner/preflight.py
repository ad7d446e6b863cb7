"""Everything checkable is checked before the first cell runs, so unusable input costs no work.

- the results file: not a folder, its folder creatable and writable, the file itself appendable
  (a read-only or immutable file is found here, not after the first cell computed);
- the trained-model cache: a folder that can be written;
- the device: ``device: cuda`` needs one;
- every cell, as the cell itself begins (:func:`check_cells`, through the same track functions the
  cell calls): its dataset loaded by the track's loader (the cells reuse that read) and one sample of
  each split read (shape, label in range); its model built on the meta device by the track's builder
  (torchvision ``weights:`` files read, enum weights resolved without fetching); its ``checkpoint:``,
  cached model or training-resume state loaded with the cell's own loader into a CPU copy;
- a Ray ``--address``: reachable.

Each failure raises an :class:`~snnbench.errors.UnusableInputError` naming the file or option.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from snnbench import interrupts
from snnbench.config import Suite
from snnbench.errors import UsageError
from snnbench.records.cells import Cell
from snnbench.records.store import ResultsWriteError
from snnbench.user_paths import UnusablePathError, output_folder


def check_results_paths(path: Path) -> None:
    """Planning reads the results file: it, its lock file and its claims folder must be what they
    should (a regular file or nothing, a folder or nothing) before anything is read or computed: a
    FIFO would block the read, ``/dev/null`` would swallow every record, a file in the claims
    folder's place would fail the first claim."""
    from snnbench.runner.claims import CellClaims
    from snnbench.user_paths import output_file

    output_file(path, "results file")
    output_file(Path(str(path) + ".lock"), "results lock file")
    output_folder(CellClaims(path).folder, "claims folder of the results file")


def check_results_file(path: Path) -> None:
    """The results file can be read and appended to (without creating anything but its folder)."""
    check_results_paths(path)
    _check_writable_folder(path.parent, "results folder", ResultsWriteError)
    for target in (path, Path(str(path) + ".lock")):
        if target.exists():
            try:
                # Opening for append writes nothing; it fails on read-only and immutable files alike
                # (root ignores permission bits, not the immutable flag).
                with open(target, "ab"):
                    pass
            except OSError as err:
                raise ResultsWriteError(
                    f"{target} cannot be appended to ({err.strerror or err}); no cell was run"
                ) from None


def _check_writable_folder(folder: Path, what: str, error: type[Exception]) -> None:
    try:  # a FIFO, device or symlink loop is named as what it is, not as "a file" or "File exists"
        output_folder(folder, what)
    except UnusablePathError as err:
        raise error(str(err)) from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise error(f"cannot create {what} {folder}: {err.strerror or err}") from None
    try:  # a probe file: permission bits do not stop root, a read-only file system does
        fd, probe = tempfile.mkstemp(prefix=".snnbench-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise error(f"{what} {folder} is not writable ({err.strerror or err})") from None


def check_cache_dir(cache_dir: Path) -> None:
    from snnbench.safe_io import UnusableFileError

    _check_writable_folder(Path(cache_dir), "cache folder (--cache-dir / SNNBENCH_CACHE)", UnusableFileError)


def check_ray_address(address: Optional[str], timeout_s: float = 5.0) -> None:
    """A TCP connection to the head node, so an unreachable cluster fails at once with one line."""
    if not address or address == "auto":
        return
    target = address.split("://", 1)[-1]
    host, sep, port_text = target.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise UsageError(f"--address {address}: expected HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=timeout_s):
            pass
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise UsageError(f"--address {address}: no Ray head reachable at {host}:{port_text} ({reason})") from None


MAX_MODEL_PARAMETERS = 2_000_000_000  # 8 GB of fp32 weights; the largest published model has 0.14 G


def _reason(err: BaseException) -> str:
    """An exception as one line: our own errors as they are, others with their type."""
    from snnbench.errors import UnusableInputError

    text = str(err).strip()
    if isinstance(err, UnusableInputError):
        return text
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def check_samples(bundle) -> None:
    """Sample 0 of each split reads, has the bundle's input shape and a label in ``0..classes-1``:
    unreadable frame files or out-of-range labels are found before training, not in epoch 3."""
    from snnbench.errors import UnusableInputError
    from snnbench.safe_io import UnusableFileError

    for split in ("train", "test"):
        data = getattr(bundle, split)
        where = f"dataset {bundle.name!r}: sample 0 of the {split} split"
        if len(data) == 0:
            raise UnusableFileError(f"dataset {bundle.name!r}: the {split} split is empty")
        try:
            x, y = data[0]
            label = int(y)
        except UnusableInputError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever a loader raises on a bad file is that file's
            interrupts.raise_if_interrupt(err)
            raise UnusableFileError(f"{where} cannot be read ({_reason(err)})") from None
        shape = tuple(getattr(x, "shape", ()))
        want = tuple(bundle.input_shape)
        if shape[len(shape) - len(want) :] != want:
            raise UnusableFileError(f"{where} has shape {list(shape)}; expected [..., {', '.join(map(str, want))}]")
        if not 0 <= label < bundle.num_classes:
            raise UnusableFileError(f"{where} has label {label}; expected 0..{bundle.num_classes - 1}")


def _entry(suite: Suite, cell: Cell) -> str:
    index = next((i for i, m in enumerate(suite.models) if m == cell.model), "?")
    params = f" {cell.model.params}" if cell.model.params else ""
    method = "" if cell.track == "conversion" else f" with method {cell.method.name!r}"  # its neurons, its rule
    return f"models.{index} ({cell.model.name}{params}){method} on {cell.dataset.name!r}"


def build_on_meta(track, cell: Cell, bundle, entry: str) -> Optional[str]:
    """The cell's model built by the cell's own builder on the meta device (no memory) and its size
    checked; the problem, naming the model entry, or None."""
    import warnings

    import torch

    try:
        with torch.device("meta"), warnings.catch_warnings():
            # A weights file loaded into the meta model is checked (keys, shapes) and its copy skipped,
            # as meant: torch's warning about the skipped copy (one per tensor) would flood stderr.
            warnings.filterwarnings("ignore", "for .*: copying from a non-meta parameter", UserWarning)
            built = track.build_cell_model(cell, bundle, torch.device("meta"))
    except Exception as err:  # noqa: BLE001 - every way a model entry fails to build is the entry's
        interrupts.raise_if_interrupt(err)
        return f"{entry}: cannot be built ({_reason(err)})"
    model = built[0] if isinstance(built, tuple) else built
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_MODEL_PARAMETERS:
        return (
            f"{entry}: {count:.3g} parameters; at most {MAX_MODEL_PARAMETERS:.0e} are allowed "
            "(its weights alone would not fit in memory)"
        )
    return None


def check_cells(suite: Suite, cells: Iterable[Cell], data_root: Optional[Path], cache_dir: Path) -> None:
    """Every cell's first steps, as the cell takes them: its data loaded by its track's loader (one
    sample of each split read), its model built by its track's builder on the meta device (every
    entry that fails is listed), and the checkpoint, cached model or resume state it will load read
    with its own loader. Torch's random state is left as it was (augmentation draws from it)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        _check_cells(suite, cells, data_root, cache_dir)


def _load_data(track, cell: Cell, data_root: Optional[Path]):
    """The cell's bundle by its track's loader, sample 0 of each split read; a loader's own complaint
    (data of the wrong kind for the track) names the dataset."""
    from snnbench.errors import UnusableInputError

    try:
        bundle = track.load_cell_data(cell, data_root)
    except UnusableInputError:
        raise
    except Exception as err:  # noqa: BLE001 - ValueError for image data on a spike-train track, and the like
        interrupts.raise_if_interrupt(err)
        raise UsageError(f"dataset {cell.dataset.name!r} on the {cell.track} track: {_reason(err)}") from None
    check_samples(bundle)
    return bundle


def _check_cells(suite: Suite, cells: Iterable[Cell], data_root: Optional[Path], cache_dir: Path) -> None:
    import json

    from snnbench.runner.tracks import track_module

    bundle, data_key = None, None
    problems: dict[str, Optional[str]] = {}
    read: set[tuple[str, int]] = set()  # the methods of a conversion entry share a seed's cached ANN
    for cell in cells:
        track = track_module(cell.track)
        key = json.dumps([cell.track, cell.dataset.model_dump(mode="json"), cell.training.augment, cell.timesteps])
        if key != data_key:  # cells come dataset by dataset: one bundle is held at a time
            bundle, data_key = _load_data(track, cell, data_root), key
        entry = _entry(suite, cell)
        if entry not in problems:
            problems[entry] = build_on_meta(track, cell, bundle, entry)
        if problems[entry] is None and (entry, cell.seed) not in read:
            read.add((entry, cell.seed))
            track.check_cell_inputs(cell, bundle, cache_dir, data_root)
    found = [p for p in problems.values() if p]
    if found:
        raise UsageError(
            "\n".join(found) if len(found) == 1 else "models that cannot be built:\n  " + "\n  ".join(found)
        )


def preflight(
    suite: Suite,
    todo: list[Cell],
    results_path: Path,
    *,
    data_root: Optional[Path],
    cache_dir: Path,
    executor: str = "local",
    address: Optional[str] = None,
) -> None:
    """Every check above, cheapest first; nothing is run when ``todo`` is empty."""
    check_results_file(results_path)
    if not todo:
        return
    if executor == "ray":
        check_ray_address(address)
    check_cache_dir(cache_dir)
    from snnbench.records.device import resolve_device

    resolve_device(suite.device)  # device: cuda without one is refused here, not in every cell
    check_cells(suite, todo, data_root, cache_dir)
