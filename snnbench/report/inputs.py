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
from snnbench.records.schema import SCHEMA_VERSION
from snnbench.records.store import read_records


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


def kind_of(path: Path) -> str:
    """``"results"`` (JSONL records) or ``"bench"`` (benchmark JSON); raises InputError otherwise."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file")
    if path.suffix == ".jsonl":
        return "results"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
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
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
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


_TEXT_FIELDS = ("key", "suite", "track", "dataset", "model", "method")


def record_problem(record: dict[str, Any]) -> Optional[str]:
    """Why a record cannot be reported (unknown schema version, wrong-typed fields), or None."""
    if record.get("schema") != SCHEMA_VERSION:
        return f"schema version {record.get('schema')!r}; this snnbench reads version {SCHEMA_VERSION}"
    for name in _TEXT_FIELDS:
        if name in record and not isinstance(record[name], str):
            return f"field {name!r} is {type(record[name]).__name__}, expected a string"
    seed = record.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        return f"field 'seed' is {type(seed).__name__}, expected an integer"
    if not isinstance(record.get("metrics"), dict):
        return f"field 'metrics' is {type(record.get('metrics')).__name__}, expected an object"
    for name in ("config", "env"):
        if name in record and not isinstance(record[name], dict):
            return f"field {name!r} is {type(record[name]).__name__}, expected an object"
    return None


def read_usable(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The reportable records of a results file and, for each line skipped, ``FILE:LINE: why``."""
    report = read_records(path, warn=False)
    records, problems = [], list(report.problems)
    for record, line in zip(report.records, report.lines):
        why = record_problem(record)
        if why is None:
            records.append(record)
        else:
            problems.append(f"{path}:{line}: skipped: {why}")
    return records, problems


def _expand(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(p.rglob("*.jsonl")))
            out.extend(sorted(p.rglob("*.json")))
        else:
            out.append(p)
    return out


def load_inputs(paths: Iterable[Path]) -> Inputs:
    """Records of every results file and rows of every benchmark file among ``paths`` (or folders).

    A missing or unusable file raises :class:`InputError`; bad lines inside a results file are
    collected in ``problems``.
    """
    inputs = Inputs()
    for path in _expand(paths):
        if kind_of(path) == "bench":
            inputs.bench.append(load_bench(path))
            continue
        records, problems = read_usable(path)
        inputs.problems.extend(problems)
        inputs.records.extend(records)
    return inputs
