"""Everything checkable is checked before the first cell runs, so unusable input costs no work.

- the results file: not a folder, its folder creatable and writable, the file itself appendable
  (a read-only or immutable file is found here, not after the first cell computed);
- the trained-model cache: a folder that can be written;
- every dataset: loaded once (the cells reuse that read), so missing, truncated or planted files are
  named now;
- every ``checkpoint:``: exists, loads as a state dict and fits its model (all missing, unexpected and
  mis-shaped keys listed);
- cached ANNs and training-resume states the cells would read: load as tensors into their model;
- a Ray ``--address``: reachable.

Each failure raises an :class:`~snnbench.errors.UnusableInputError` naming the file or option.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from snnbench.config import Suite
from snnbench.errors import UsageError
from snnbench.records.cells import Cell
from snnbench.records.store import ResultsWriteError


def check_results_paths(path: Path) -> None:
    """Planning reads the results file: it, its lock file and its claims folder must be what they
    should (a regular file or nothing, a folder or nothing) before anything is read or computed: a
    FIFO would block the read, ``/dev/null`` would swallow every record, a file in the claims
    folder's place would fail the first claim."""
    from snnbench.runner.claims import CellClaims
    from snnbench.user_paths import output_file, output_folder

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
    if folder.exists() and not folder.is_dir():
        raise error(f"{what} {folder} is a file; expected a folder")
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


def check_models_load(cells: Iterable[Cell], data_root: Optional[Path], cache_dir: Path) -> None:
    """Checkpoints and cached ANNs of the conversion cells load into their models (on the CPU)."""
    import torch

    from snnbench.conversion.pipeline import ann_cache_path, build_ann
    from snnbench.data.registry import load_dataset
    from snnbench.models.checkpoint import load_checkpoint
    from snnbench.safe_io import UnusableFileError, load_tensors
    from snnbench.training.ann import load_cached_ann

    checked: set[str] = set()
    cpu = torch.device("cpu")
    for cell in cells:
        if cell.track != "conversion":
            continue
        bundle = load_dataset(cell.dataset, data_root, augment=cell.training.augment)
        if cell.model.checkpoint:
            target = f"{cell.dataset.name}:{cell.model.model_dump_json()}"
            if target not in checked:
                checked.add(target)
                try:
                    load_checkpoint(build_ann(cell, bundle, cpu), cell.model.checkpoint)
                except FileNotFoundError as err:
                    raise UnusableFileError(f"{err} (models.checkpoint of model {cell.model.name!r})") from None
                except UnusableFileError:
                    raise
                except ValueError as err:  # the state dict does not fit: every key is in the message
                    raise UnusableFileError(str(err)) from None
            continue
        cached = ann_cache_path(cell, cache_dir)
        for path in (cached, cached.with_suffix(".state.pt")):
            if str(path) in checked or not path.exists():
                continue
            checked.add(str(path))
            if path == cached:
                load_cached_ann(build_ann(cell, bundle, cpu), path)
            else:
                load_tensors(path, "the ANN training-resume state")


def preflight_datasets(suite: Suite, data_root: Optional[Path]) -> None:
    """Load every dataset once before any training, so missing data stops the sweep at once."""
    from snnbench.data.registry import load_dataset

    # The same augmentation the cells will ask for, so their load is this one, from the cache.
    augment = suite.training.augment if suite.track == "conversion" else False
    if suite.track == "direct":  # event frames depend on the cell's T: check the files the cells read
        from snnbench.training.conv_train import load_direct_dataset

        for spec in suite.datasets:
            load_direct_dataset(spec, data_root, suite.training.augment, max(suite.timesteps))
        return
    for spec in suite.datasets:
        load_dataset(spec, data_root, augment=augment)


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
    preflight_datasets(suite, data_root)
    check_models_load(todo, data_root, cache_dir)
