"""Published numbers (``snnbench/published/*.yaml``, package data) as leaderboard rows marked "published".

Each YAML file quotes one source. ``rows`` use the metric names of snnbench records (``ann_acc``,
``snn_acc: {T: acc}``, ``test_acc``, ``bwd_speedup`` ...), so they flow through the same table and
plot code as measured records; ``bench_rows`` are kernel timings; ``claims`` and ``setup`` are text.

``scopes`` maps a metric name to what it measured (which layer, which phases, against which
baseline). Every speed-up, memory saving and active fraction in ``rows`` must have one, and its
name must be the one snnbench gives a measurement of the same scope (``layer2_…`` for SparseProp's
layer-2 timings), so a published number only ever sits beside a measured number of its scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from snnbench.errors import UnusableInputError
from snnbench.strict_yaml import YamlError, read_yaml
from snnbench.user_paths import UnusablePathError

ROW_FIELDS = ("dataset", "model", "method")


class PublishedError(UnusableInputError, ValueError):
    """A published-results file that cannot be used; the message names the file and the row."""


@dataclass
class PublishedSource:
    id: str
    source: str
    url: str
    path: Path
    notes: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # record-shaped, see _as_record
    bench_rows: list[dict[str, Any]] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    scopes: dict[str, str] = field(default_factory=dict)


_SCOPED = ("speedup", "active_fraction", "mem_saved")  # metric names that need a scope


def default_published_dir() -> Path:
    """The published rows shipped inside the package (``snnbench/published``), so a wheel install
    shows them from any folder."""
    from importlib.resources import files

    return Path(str(files("snnbench") / "published"))


def _stringify_keys(value: Any) -> Any:
    # YAML reads `{4: 49.94}` with int keys; records use string keys ("4") as JSON does.
    if isinstance(value, dict):
        return {str(k): _stringify_keys(v) for k, v in value.items()}
    return value


def _as_record(row: dict[str, Any], source: "PublishedSource", index: int) -> dict[str, Any]:
    where = f"{source.path}: rows[{index}]"
    if not isinstance(row, dict):
        raise PublishedError(f"{where}: expected a mapping, got {type(row).__name__}")
    missing = [f for f in ROW_FIELDS if not row.get(f)]
    if missing:
        raise PublishedError(f"{where}: missing {', '.join(missing)}")
    metrics = row.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise PublishedError(f"{where}: 'metrics' must be a non-empty mapping")
    unscoped = [m for m in metrics if any(w in str(m) for w in _SCOPED) and m not in source.scopes]
    if unscoped:
        raise PublishedError(f"{where}: {', '.join(map(str, unscoped))} need an entry in 'scopes' (what was measured)")
    return {
        "key": f"published/{source.id}/{index}",
        "dataset": str(row["dataset"]),
        "model": str(row["model"]),
        "method": str(row["method"]),
        "seed": None,
        "metrics": _stringify_keys(metrics),
        "variant": str(row.get("variant") or ""),
        "label": str(row.get("label") or row["method"]),
        "source": "published",
        "citation": source.id,
    }


def load_source(path: Path) -> PublishedSource:
    try:
        data = read_yaml(path, "published source")
    except (YamlError, UnusablePathError) as err:
        raise PublishedError(str(err)) from None
    if not isinstance(data, dict):
        raise PublishedError(f"{path}: expected a mapping at the top level")
    for required in ("id", "source"):
        if not data.get(required):
            raise PublishedError(f"{path}: missing '{required}'")
    source = PublishedSource(
        id=str(data["id"]),
        source=str(data["source"]),
        url=str(data.get("url") or ""),
        path=path,
        notes=[str(n) for n in data.get("notes") or []],
        claims=[str(c) for c in data.get("claims") or []],
        setup=[str(s) for s in data.get("setup") or []],
        scopes={str(k): str(v) for k, v in (data.get("scopes") or {}).items()},
    )
    source.rows = [_as_record(r, source, i) for i, r in enumerate(data.get("rows") or [])]
    for i, row in enumerate(data.get("bench_rows") or []):
        if not isinstance(row, dict):
            raise PublishedError(f"{path}: bench_rows[{i}]: expected a mapping")
        source.bench_rows.append(dict(row))
    return source


def load_published(folder: Optional[Path] = None) -> list[PublishedSource]:
    """Every ``*.yaml`` source in ``folder`` (sorted by file name, so output order is stable)."""
    if folder is not None and not Path(folder).is_dir():  # a folder named by the user: never silently none
        raise PublishedError(f"{folder}: the published-rows folder (--published-dir) is not a folder")
    folder = Path(folder) if folder is not None else default_published_dir()
    if not folder.is_dir():
        return []
    sources = [load_source(p) for p in sorted(folder.glob("*.yaml"))]
    seen: dict[str, Path] = {}
    for s in sources:
        if s.id in seen:
            raise PublishedError(f"{s.path}: id {s.id!r} is already used by {seen[s.id]}")
        seen[s.id] = s.path
    return sources


def published_records(sources: list[PublishedSource]) -> list[dict[str, Any]]:
    return [row for s in sources for row in s.rows]
