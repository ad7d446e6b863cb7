"""Per-cell claims, so several ``snnbench run`` processes on one results file split its cells.

A claim is an exclusive ``flock`` on ``<results>.claims/<hash of the key>.lock``, taken (under the
results file's lock) only when the cell is not yet recorded, and held while the cell computes. The
kernel drops it when its process exits or is killed, so a crashed run never blocks a cell: the next
process that asks gets it. The same works on shared file systems that support ``flock`` (NFSv4,
Lustre, GPFS), which is what running one suite from several machines needs.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path


class CellClaims:
    def __init__(self, results_path: Path) -> None:
        self.folder = Path(str(results_path) + ".claims")
        self._held: dict[str, int] = {}

    def _path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".lock")

    def try_claim(self, key: str) -> bool:
        """Take the claim on ``key`` without waiting; False when another live process holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held[key] = fd
        return True

    def release(self, key: str) -> None:
        fd = self._held.pop(key, None)
        if fd is not None:
            os.close(fd)  # closing drops the flock

    def release_all(self) -> None:
        for key in list(self._held):
            self.release(key)
