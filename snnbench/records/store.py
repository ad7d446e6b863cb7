"""Crash-safe results: one JSON record per finished cell, appended as one fsynced line.

A crash can leave at most a truncated last line; reading reports it (with its line number), the next
run or append moves it to ``FILE.corrupt`` under the lock (so it is reported once), and the cell it
belonged to is simply not "done", so a rerun redoes it. A lock file next to the results file
keeps records whole when two processes append at once.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

from filelock import FileLock

from snnbench.errors import UnusableInputError
from snnbench.records.record_check import MAX_DEPTH, record_problem
from snnbench.user_paths import open_input


class ResultsWriteError(UnusableInputError, OSError):
    """Appending a record failed (disk full, read-only folder); earlier records are untouched."""


@dataclass
class ReadReport:
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line number of each record


def _parse_line(raw: bytes) -> tuple[Any, Optional[str]]:
    """(the line's JSON value, None) or (None, why it is not JSON)."""
    try:
        return json.loads(raw.decode("utf-8", errors="replace")), None
    except json.JSONDecodeError as err:
        ending = "" if raw.endswith(b"\n") else " (truncated last line: a crash mid-write?)"
        return None, f"not valid JSON{ending}: {err.msg}"
    except RecursionError:
        return None, f"not a snnbench record (nested more than {MAX_DEPTH} levels deep)"


def read_records(path: Path | str, *, warn: bool = True) -> ReadReport:
    """Every usable record of a results file: valid JSON that passes the record schema
    (:mod:`snnbench.records.record_check`). Each other line is reported as ``FILE:LINE: why``,
    never fatal. Only a regular file is opened (a FIFO or device is refused by name, never read)."""
    path = Path(path)
    report = ReadReport()
    if not os.path.lexists(path):
        return report
    with open_input(path, "results file", expected="a results file (JSON lines)") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            record, why = _parse_line(raw)
            if why is None:
                why = record_problem(record)
                if why is not None:
                    why = (
                        f"skipped: {why}"
                        if isinstance(record, dict) and "key" in record
                        else f"not a snnbench record ({why})"
                    )
            if why is not None:
                report.problems.append(f"{path}:{number}: {why}")
                continue
            report.records.append(record)
            report.lines.append(number)
    if warn:
        for problem in report.problems:
            warnings.warn(problem, stacklevel=2)
    return report


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null: strict JSON that every reader (jq, pandas, browsers) accepts."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def done_keys(records: Iterable[dict[str, Any]]) -> set[str]:
    return {r["key"] for r in records}


class ResultStore:
    """Appends records to a JSONL file; each append is a single flushed and fsynced write."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")
        self._keys_seen: tuple[Optional[tuple[int, int, int]], set[str]] = (None, set())

    def prepare(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ResultsWriteError(f"cannot create results folder {self.path.parent}: {err.strerror}") from None
        if not os.access(self.path.parent, os.W_OK):
            raise ResultsWriteError(f"results folder {self.path.parent} is not writable")

    def lock(self) -> FileLock:
        """The lock every append takes; hold it to read and decide without a race."""
        return self._lock

    def read(self, *, warn: bool = False) -> ReadReport:
        return read_records(self.path, warn=warn)

    def recorded_keys(self) -> set[str]:
        """The keys in the file now. Parsed again only when the file changed (every append changes
        its size), so asking once per cell stays cheap however many records the file holds."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return set()
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        if signature != self._keys_seen[0]:
            self._keys_seen = (signature, done_keys(self.read(warn=False).records))
        return self._keys_seen[1]

    def _keys_after_own_append(self, before: os.stat_result, after: os.stat_result, key: str) -> None:
        """Under the lock, a file that was as last parsed plus our line needs no new parse."""
        if self._keys_seen[0] == (before.st_ino, before.st_size, before.st_mtime_ns):
            self._keys_seen = ((after.st_ino, after.st_size, after.st_mtime_ns), self._keys_seen[1] | {key})

    def append(self, record: dict[str, Any], *, unless_recorded: bool = False) -> bool:
        """Append ``record``; with ``unless_recorded``, skip it when its key is already in the file
        (another process running the same suite finished that cell first). Returns whether it wrote.
        """
        line = (json.dumps(_json_safe(record), sort_keys=True, allow_nan=False) + "\n").encode()
        try:
            with self._lock:
                if unless_recorded and record["key"] in self.recorded_keys():
                    return False
                # A crash mid-write may have left a torn last line: never glue a record onto it.
                self.set_aside_torn_tail()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    before = os.fstat(fd)
                    try:
                        written = os.write(fd, line)
                        if written != len(line):
                            raise OSError(28, "short write (disk full?)")
                        os.fsync(fd)
                    except OSError:
                        # Leave no torn bytes behind: the file ends where the last whole record did.
                        os.ftruncate(fd, before.st_size)
                        raise
                    after = os.fstat(fd)
                finally:
                    os.close(fd)
                self._keys_after_own_append(before, after, record["key"])
            return True
        except OSError as err:
            reason = err.strerror or str(err)
            raise ResultsWriteError(
                f"could not append a record to {self.path}: {reason}; earlier records are intact"
            ) from None

    def set_aside_torn_tail(self) -> Optional[str]:
        """Move a torn last line (a crash mid-write) to ``FILE.corrupt``, under the lock, and say so.

        Appends hold the lock, so an unterminated last line seen under it is never a write in
        progress. The bytes are kept (with their line number) rather than deleted.
        """
        with self._lock:
            try:
                with open(self.path, "rb") as fh:
                    # The common case, a whole last line, costs one byte, not a read of the file.
                    size = fh.seek(0, os.SEEK_END)
                    if size == 0:
                        return None
                    fh.seek(size - 1)
                    if fh.read(1) == b"\n":
                        return None
                    fh.seek(0)
                    data = fh.read()
            except FileNotFoundError:
                return None
            cut = data.rfind(b"\n") + 1
            torn, number = data[cut:], data.count(b"\n") + 1
            try:
                whole = isinstance(json.loads(torn), dict)
            except ValueError:
                whole = False
            if whole:  # a complete record that only lacks its newline: keep it
                self._append_bytes(b"\n")
                return None
            corrupt = Path(str(self.path) + ".corrupt")
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            with open(corrupt, "ab") as fh:
                fh.write(f"# {self.path.name}:{number}, moved {stamp}:\n".encode() + torn + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.truncate(self.path, cut)
            return f"{self.path}:{number}: torn last line moved to {corrupt}"

    def _append_bytes(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def latest_by_key(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per cell key: a later record (``--force`` rerun) supersedes an earlier one."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest[record["key"]] = record
    return list(latest.values())
