"""Reading what reports are made from: results JSONL files and benchmark JSON files.

Bad lines and unreadable files become ``problems`` (messages naming the file and line), never a
crash: a report is still made from what could be read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from snnbench.errors import UnusableInputError
from snnbench.records.store import read_records
from snnbench.user_paths import UnusablePathError, input_file, open_input


class InputError(UnusableInputError, ValueError):
    """An input that cannot be used at all (missing, not JSON, not a results or benchmark file)."""


@dataclass
class BenchFile:
    """One benchmark JSON: ``{"env": {...}, "rows": [{...}, ...], ...}`` (or a bare list of rows)."""

    path: Path
    rows: list[dict[str, Any]]
    env: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # every other top-level field

    @property
    def name(self) -> str:
        return str(self.meta.get("bench") or self.meta.get("benchmark") or self.meta.get("name") or self.path.stem)

    @property
    def card(self) -> str:
        return card_name(self.env) or self.path.parent.name


@dataclass
class Inputs:
    records: list[dict[str, Any]] = field(default_factory=list)
    bench: list[BenchFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def card_name(env: Optional[dict[str, Any]]) -> str:
    """The accelerator (or CPU) an environment fingerprint describes, e.g. ``NVIDIA H200``."""
    if not isinstance(env, dict):
        return ""
    hw = env.get("hardware") if isinstance(env.get("hardware"), dict) else {}
    for value in (env.get("card"), env.get("gpu"), env.get("device_name"), hw.get("name")):
        if isinstance(value, str) and value:
            if hw.get("device") == "cpu" and value == hw.get("name"):
                return f"CPU ({value})"
            return value
    return ""


def _read_json(path: Path) -> Any:
    """The JSON document at ``path`` (a regular file only: a FIFO or device is refused by name)."""
    try:
        with open_input(path, "input file", expected="a results .jsonl or benchmark .json file") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except UnusablePathError as err:
        raise InputError(str(err)) from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be a results or benchmark file") from None


def kind_of(path: Path) -> str:
    """``"results"`` (JSONL records) or ``"bench"`` (benchmark JSON); raises InputError otherwise."""
    try:
        input_file(path, "input file", expected="a results .jsonl or benchmark .json file")
    except UnusablePathError as err:
        raise InputError(str(err)) from None
    if path.suffix == ".jsonl":
        return "results"
    try:
        data = _read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError):
        # Several JSON objects, one a line, do not parse as one document: a results file.
        return "results"
    if isinstance(data, list) or (isinstance(data, dict) and isinstance(data.get("rows"), list)):
        return "bench"
    if isinstance(data, dict) and "key" in data:
        return "results"
    raise InputError(f"{path}: neither a results file (JSON lines with 'key') nor a benchmark file ('rows')")


def load_bench(path: Path) -> BenchFile:
    try:
        data = _read_json(Path(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid JSON: {err}") from None
    if isinstance(data, list):
        data = {"rows": data}
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise InputError(f"{path}: a benchmark file needs a list 'rows'")
    rows = []
    for i, row in enumerate(data["rows"]):
        if not isinstance(row, dict):
            raise InputError(f"{path}: rows[{i}] is not an object")
        rows.append(row)
    env = next((data[k] for k in ("env", "environment") if isinstance(data.get(k), dict)), {})
    meta = {k: v for k, v in data.items() if k not in ("rows", "env", "environment")}
    return BenchFile(Path(path), rows, env, meta)


def read_usable(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The reportable records of a results file and, for each line skipped, ``FILE:LINE: why``
    (the record schema is applied by the one reader, :func:`read_records`)."""
    report = read_records(path, warn=False)
    return report.records, list(report.problems)


def _expand(paths: Iterable[Path], problems: list[str]) -> list[Path]:
    """Files named, and the results and benchmark files inside folders named. Inside a folder, a
    FIFO, socket or folder with such a name is skipped with a problem; a file named is never skipped."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            out.append(p)
            continue
        for found in [*sorted(p.rglob("*.jsonl")), *sorted(p.rglob("*.json"))]:
            try:
                out.append(input_file(found, "input file", expected="a results or benchmark file"))
            except UnusablePathError as err:
                problems.append(f"{err}; skipped")
    return out


def load_inputs(paths: Iterable[Path]) -> Inputs:
    """Records of every results file and rows of every benchmark file among ``paths`` (or folders).

    A missing or unusable file raises :class:`InputError`; bad lines inside a results file are
    collected in ``problems``.
    """
    inputs = Inputs()
    for path in _expand(paths, inputs.problems):
        if kind_of(path) == "bench":
            inputs.bench.append(load_bench(path))
            continue
        records, problems = read_usable(path)
        inputs.problems.extend(problems)
        inputs.records.extend(records)
    return inputs
