"""The one way snnbench opens a path the user named, for reading or for writing.

Only regular files are read or written: a FIFO would block the tool forever, a device such as
``/dev/zero`` would never end and ``/dev/null`` would swallow a computed record, a socket or a folder
cannot be read as a file. Each is refused by name before it is opened. Symlinks are followed, a loop
of them is refused, and names longer than the file system allows are refused with the limit instead
of an ``OSError`` from deep inside a verb. Output paths are checked before any work starts.

Reading opens with ``O_NONBLOCK`` and checks the opened descriptor, so a file swapped for a FIFO
between the check and the open still cannot block.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO, Optional, Union

from snnbench.errors import UnusableInputError

NAME_MAX = 255  # bytes in one path component (ext4, xfs, btrfs, tmpfs)
PATH_MAX = 4096  # bytes in a whole path (Linux)

PathLike = Union[str, "os.PathLike[str]"]


class UnusablePathError(UnusableInputError, ValueError):
    """A path that cannot be read or written as a file; ``str(err)`` names it and says what it is."""


def kind_name(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words."""
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISREG, "a file"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_lengths(path: Path, what: str) -> None:
    """Refuse a path whose name or whole length exceeds what the file system can store."""
    raw = os.fsencode(str(path))
    if len(raw) > PATH_MAX:
        raise UnusablePathError(f"{str(path)[:80]}…: {what} path is {len(raw)} bytes; at most {PATH_MAX} are allowed")
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            raise UnusablePathError(
                f"{path}: {what}: the name {part[:40]}… is {size} bytes; a file or folder name may have "
                f"at most {NAME_MAX} (shorten it)"
            )


def _stat(path: Path, what: str) -> Optional[os.stat_result]:
    """``os.stat`` following symlinks; None when nothing is there. A symlink loop is refused."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # a file where a folder of the path belongs: see _check_parent
        if os.path.islink(path):
            raise UnusablePathError(
                f"{path}: {what} is a symlink to {os.readlink(path)}, which does not exist"
            ) from None
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnusablePathError(f"{path}: {what} is a loop of symlinks") from None
        if err.errno == errno.ENAMETOOLONG:
            check_lengths(path, what)
        raise UnusablePathError(f"{path}: {what} cannot be read ({err.strerror or err})") from None


def _refuse_irregular(path: Path, mode: int, what: str, expected: str, reading: bool = True) -> None:
    if not stat.S_ISREG(mode):
        hint = " (give the file inside it)" if stat.S_ISDIR(mode) and reading else ""
        raise UnusablePathError(f"{path}: {what} is {kind_name(mode)}, not a regular file{hint}; expected {expected}")


def _existing(path: PathLike, what: str, missing: str) -> tuple[Path, os.stat_result]:
    """``path`` and its stat, or :class:`UnusablePathError` ending in ``missing`` when nothing is there."""
    path = Path(path)
    check_lengths(path, what)
    st = _stat(path, what)
    if st is None:
        raise UnusablePathError(f"{path}: {what} not found{missing}")
    return path, st


def input_file(path: PathLike, what: str, expected: str = "a regular file") -> Path:
    """``path`` as a readable regular file, or :class:`UnusablePathError` saying what it is instead."""
    path, st = _existing(path, what, "")
    _refuse_irregular(path, st.st_mode, what, expected)
    return path


def open_input(path: PathLike, what: str, expected: str = "a regular file") -> BinaryIO:
    """Open ``path`` for reading in binary; only a regular file is opened (a FIFO never blocks)."""
    path = input_file(path, what, expected)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise UnusablePathError(f"{path}: {what} cannot be opened ({err.strerror or err})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # swapped after the check above
        os.close(fd)
        _refuse_irregular(path, st.st_mode, what, expected)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_input_bytes(path: PathLike, what: str, limit: int, expected: str = "a regular file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (a larger one is refused unread)."""
    with open_input(path, what, expected) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise UnusablePathError(
                f"{path}: {size} bytes; {what} may have at most {limit} bytes "
                "(a larger file is refused unread, so a wrong file cannot stall the tool)"
            )
        try:
            data = fh.read(limit + 1)
        except OSError as err:
            raise UnusablePathError(f"{path}: {what} cannot be read ({err.strerror or err})") from None
    if len(data) > limit:  # it grew after the size check
        raise UnusablePathError(f"{path}: {what} grew past {limit} bytes while being read")
    return data


def output_file(path: PathLike, what: str) -> Path:
    """Check, before any work, that ``path`` can be written as a regular file: it is one (or is
    absent), it is not a device, FIFO, socket, folder or symlink loop, and its folder is a folder."""
    path = Path(path)
    check_lengths(path, what)
    st = _stat(path, what)
    if st is not None:
        _refuse_irregular(path, st.st_mode, what, "a file name to write (or nothing there)", reading=False)
    _check_parent(path, what)
    return path


def output_folder(path: PathLike, what: str) -> Path:
    """Check that ``path`` is a folder, or absent under a folder (it is not created here)."""
    path = Path(path)
    check_lengths(path, what)
    st = _stat(path, what)
    if st is not None:
        if not stat.S_ISDIR(st.st_mode):
            raise UnusablePathError(f"{path}: {what} is {kind_name(st.st_mode)}; expected a folder (or nothing there)")
        return path
    _check_parent(path, what)
    return path


def input_folder(path: PathLike, what: str, expected: str = "a folder") -> Path:
    """``path`` as an existing folder, or :class:`UnusablePathError` saying what it is instead."""
    path, st = _existing(path, what, f"; expected {expected}")
    if not stat.S_ISDIR(st.st_mode):
        raise UnusablePathError(f"{path}: {what} is {kind_name(st.st_mode)}; expected {expected}")
    return path


def _check_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor of ``path`` is a folder (the rest can be created)."""
    for parent in Path(os.path.abspath(path)).parents:
        st = _stat(parent, f"folder of the {what}")
        if st is None:
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise UnusablePathError(
                f"{path}: cannot create the folder of the {what}: {parent} is {kind_name(st.st_mode)}, not a folder"
            )
        return
