"""Reading files that snnbench did not necessarily write, without ever executing anything from them.

PyTorch files are read with ``weights_only=True`` (tensors, numbers, strings, lists, dicts; any other
pickled global is refused, not run); the pickled CIFAR batches with an unpickler that only rebuilds
numpy arrays. A file that cannot be read this way raises :class:`UnusableFileError` naming it, so a
planted or truncated file in a shared cache stops the run with a message instead of running code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO, Union

import torch

from snnbench.errors import UnusableInputError


class UnusableFileError(UnusableInputError, ValueError):
    """A file snnbench reads is unreadable, truncated or holds objects it refuses to unpickle."""


class MissingFileError(UnusableInputError, FileNotFoundError):
    """A file the suite names (a checkpoint, a weights file) is not there."""


def load_tensors(path: Union[str, Path], what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; ``what`` names the file's role in the message."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's text is long advice about weights_only=False, which is exactly what not to do.
        detail = next(
            (ln.strip() for ln in str(err).splitlines() if "GLOBAL" in ln or "nsupported" in ln), "not a tensor file"
        )
        raise UnusableFileError(
            f"{path}: {what} holds pickled Python objects other than tensors, numbers and containers; "
            f"refused without running them ({detail}). Delete the file if you did not put it there"
        ) from None
    except Exception as err:  # noqa: BLE001 - a text file raises KeyError or IndexError from torch's reader
        reason = getattr(err, "strerror", None) or str(err).split(". ")[0] or type(err).__name__
        raise UnusableFileError(
            f"{path}: {what} cannot be read (truncated or not a PyTorch file: {type(err).__name__}: {reason})"
        ) from None


# The globals a pickled numpy array needs (numpy 1 and 2 spell the module differently).
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def load_array_pickle(fh: BinaryIO, path: Union[str, Path], what: str) -> Any:
    """Unpickle dicts, lists, strings, numbers and numpy arrays from ``fh``; refuse anything else."""
    try:
        return _ArrayUnpickler(fh, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise UnusableFileError(
            f"{path}: {what} is not a plain pickle of arrays ({err}); refused without running it"
        ) from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as err:
        raise UnusableFileError(f"{path}: {what} cannot be read (truncated? {type(err).__name__}: {err})") from None
