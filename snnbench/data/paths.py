"""Where datasets live, and the error raised when one is missing.

The data root is chosen in this order: an explicit root (suite ``dataset.root`` or ``--data-root``),
then the ``SNNBENCH_DATA`` environment variable, then ``~/.cache/snnbench/data``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from snnbench.errors import UnusableInputError


class DatasetMissingError(UnusableInputError, FileNotFoundError):
    """A dataset is not on disk and could not be fetched; the message says where and how."""

    def __init__(self, name: str, searched: Union[Path, list[Path]], how_to_get: str) -> None:
        paths = searched if isinstance(searched, list) else [searched]
        where = ", ".join(str(p) for p in paths)
        super().__init__(f"dataset {name!r} not found (looked in {where}). To get it: {how_to_get}")
        self.name = name
        self.searched = paths
        self.how_to_get = how_to_get


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "snnbench"


def resolve_data_root(explicit: Optional[Union[str, Path]] = None) -> Path:
    """The data root; a file in its place is refused here (a missing-data hint would mislead)."""
    env = os.environ.get("SNNBENCH_DATA")
    if explicit:
        root, source = Path(explicit).expanduser(), "--data-root (or the dataset's root:)"
    elif env:
        root, source = Path(env).expanduser(), "SNNBENCH_DATA"
    else:
        root, source = default_cache_dir() / "data", "the default data root"
    if root.exists() and not root.is_dir():
        from snnbench.errors import UsageError

        raise UsageError(f"{source} {root} is a file; expected the folder that holds the datasets")
    return root
