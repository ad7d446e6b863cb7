"""Regression gate: compare two results files (JSONL) or two benchmark files (JSON) cell by cell.

A cell is a record key (results) or a benchmark row's identifying fields (benchmarks). Every numeric
metric of a common cell is compared in its own better direction (accuracy and speed-up higher, time
lower; see :mod:`snnbench.report.metrics`); descriptive metrics (active fraction, bytes) are shown
but never gated. A change in the worse direction beyond the metric's tolerance is a regression.

Tolerances are relative, in percent of the baseline value (``median_ms=10``: 10 % slower is still fine),
or absolute in the metric's units with a ``pt`` suffix (``snn_acc.*=0.5pt``: half a point of
accuracy). Patterns are shell globs over flattened metric names (``snn_acc.4``, ``layers.fc1.bwd_ms``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from snnbench.errors import UnusableInputError
from snnbench.report.benchrows import key_text, measurements, row_key
from snnbench.report.inputs import InputError, card_name, kind_of, load_bench, read_usable
from snnbench.report.frame import flat_names, records_frame
from snnbench.report.metrics import Tolerance, default_tolerance, direction, short_number
from snnbench.records.store import latest_by_key


class UnusableInput(UnusableInputError, ValueError):
    """Inputs that cannot be compared: a missing file, different schemas, no common cells."""


def parse_tolerance(text: str) -> tuple[str, Tolerance]:
    """``"ms=10"`` → (``"ms"``, 10 %); ``"snn_acc.*=0.5pt"`` → absolute half a point."""
    pattern, sep, value = text.partition("=")
    pattern, value = pattern.strip(), value.strip().lower()
    absolute = value.endswith("pt")
    number = value[:-2] if absolute else value.rstrip("%")
    try:
        amount = float(number)
    except ValueError:
        amount = math.nan
    if not sep or not pattern or not math.isfinite(amount) or amount < 0:
        raise ValueError(
            f"--tolerance {text!r}: expected METRIC=PCT (e.g. median_ms=10, '*_acc=1') or METRIC=POINTSpt "
            "(e.g. 'snn_acc.*=0.5pt'), with a non-negative number"
        )
    return pattern, Tolerance(amount, absolute)


def tolerance_for(metric: str, tolerances: Sequence[tuple[str, Tolerance]]) -> Tolerance:
    """The first user tolerance whose glob matches, else the catalog's default for the metric."""
    for pattern, tol in tolerances:
        if fnmatchcase(metric, pattern):
            return tol
    return default_tolerance(metric)


@dataclass
class Cells:
    """One side of a comparison: metrics per cell, and what the file is."""

    path: Path
    kind: str  # "results" or "bench"
    cells: dict[str, dict[str, float]]
    schema: Any = None
    card: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class Change:
    cell: str
    metric: str
    base: Optional[float]
    new: Optional[float]
    direction: Optional[str]
    tolerance: Tolerance
    status: str  # regressed, improved, within, same, info, missing, added

    @property
    def change_pct(self) -> Optional[float]:
        if self.base is None or self.new is None or math.isnan(self.base) or math.isnan(self.new):
            return None
        if self.base == 0:
            return 0.0 if self.new == 0 else math.copysign(math.inf, self.new)
        return 100.0 * (self.new - self.base) / abs(self.base)


@dataclass
class Comparison:
    base: Cells
    new: Cells
    changes: list[Change]
    missing_cells: list[str]  # in the baseline, absent from the new file
    added_cells: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.status == "regressed"]

    @property
    def missing(self) -> list[Change]:
        return [c for c in self.changes if c.status == "missing"]

    def to_frame(self):
        """One row per compared metric: cell, metric, base, new, change_pct, direction, tolerance, status."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "cell": c.cell,
                    "metric": c.metric,
                    "base": c.base,
                    "new": c.new,
                    "change_pct": c.change_pct,
                    "direction": c.direction,
                    "tolerance": str(c.tolerance),
                    "status": c.status,
                }
                for c in self.changes
            ],
            columns=["cell", "metric", "base", "new", "change_pct", "direction", "tolerance", "status"],
        )

    def exit_code(self, allow_missing: bool = False) -> int:
        if self.regressions:
            return 1
        if not allow_missing and (self.missing or self.missing_cells):
            return 1
        return 0


def _metric_ok(name: str, ignore: Sequence[str]) -> bool:
    return not any(fnmatchcase(name, p) for p in ignore)


def load_cells(path: Path | str) -> Cells:
    """Read one side; raises :class:`UnusableInput` when the file cannot be compared at all."""
    path = Path(path)
    try:
        kind = kind_of(path)
        if kind == "bench":
            bench = load_bench(path)
    except InputError as err:
        raise UnusableInput(str(err)) from None
    if kind == "bench":
        cells: dict[str, dict[str, float]] = {}
        for row in bench.rows:
            name = key_text(row_key(row)) or "(row)"
            unique, n = name, 1
            while unique in cells:  # rows with the same fields: number them in file order
                n += 1
                unique = f"{name} #{n}"
            cells[unique] = measurements(row)
        schema = (bench.meta.get("schema"), bench.meta.get("bench") or bench.meta.get("benchmark"))
        return Cells(path, "bench", cells, schema, card_name(bench.env))
    usable, problems = read_usable(path)
    records = latest_by_key(usable)
    schemas = sorted({str(r.get("schema")) for r in records})
    cells: dict[str, dict[str, float]] = {r["key"]: {} for r in records}
    frame = records_frame(records)
    for key, name, value in zip(frame["key"], flat_names(frame), frame["value"]):
        cells[key][name] = value
    cards = sorted({card_name(r.get("env")) for r in records} - {""})
    return Cells(path, "results", cells, schemas, ", ".join(cards), problems)


def _judge(base: Optional[float], new: Optional[float], want: Optional[str], tol: Tolerance) -> str:
    if base is None:
        return "added"
    if new is None:
        return "missing"
    if math.isnan(base) and math.isnan(new):
        return "same"
    if math.isnan(new):
        return "regressed" if want else "info"
    if math.isnan(base):
        return "improved" if want else "info"
    if new == base:
        return "same"
    if want is None:
        return "info"
    worse_by = (base - new) if want == "higher" else (new - base)
    if worse_by <= 0:
        better_by = -worse_by
        limit = tol.value if tol.absolute else tol.value / 100.0 * abs(base)
        return "improved" if better_by > limit else "within"
    if tol.absolute:
        return "regressed" if worse_by > tol.value else "within"
    if base == 0:
        return "regressed"
    return "regressed" if worse_by / abs(base) * 100.0 > tol.value else "within"


def compare_cells(
    base: Cells,
    new: Cells,
    tolerances: Sequence[tuple[str, Tolerance]] = (),
    ignore: Sequence[str] = (),
) -> Comparison:
    if base.kind != new.kind:
        raise UnusableInput(f"different kinds of file: {base.path} is a {base.kind} file, {new.path} a {new.kind} file")
    if base.kind == "results" and base.schema and new.schema and base.schema != new.schema:
        raise UnusableInput(f"different record schemas: {base.path} has {base.schema}, {new.path} has {new.schema}")
    if base.kind == "bench":
        (bs, bb), (ns, nb) = base.schema, new.schema
        if bs is not None and ns is not None and bs != ns:
            raise UnusableInput(f"different benchmark schemas: {base.path} has {bs}, {new.path} has {ns}")
        if bb and nb and bb != nb:
            raise UnusableInput(f"different benchmarks: {base.path} is {bb!r}, {new.path} is {nb!r}")
    common = [c for c in base.cells if c in new.cells]
    if not common:
        raise UnusableInput(
            f"no common cells between {base.path} ({len(base.cells)} cells) and {new.path} "
            f"({len(new.cells)} cells): nothing to compare"
            + "".join(f"\n  {problem}" for problem in base.problems + new.problems)  # why records were skipped
        )
    warnings = []
    if base.card and new.card and base.card != new.card:
        warnings.append(
            f"different hardware: baseline ran on {base.card}, new on {new.card}; timings are not comparable"
        )
    changes = []
    for cell in common:
        b, n = base.cells[cell], new.cells[cell]
        for metric in sorted(set(b) | set(n)):
            if not _metric_ok(metric, ignore):
                continue
            want = direction(metric)
            tol = tolerance_for(metric, tolerances)
            status = _judge(b.get(metric), n.get(metric), want, tol)
            changes.append(Change(cell, metric, b.get(metric), n.get(metric), want, tol, status))
    return Comparison(
        base,
        new,
        changes,
        missing_cells=[c for c in base.cells if c not in new.cells],
        added_cells=[c for c in new.cells if c not in base.cells],
        warnings=warnings,
    )


def compare_files(
    base: Path | str,
    new: Path | str,
    tolerances: Iterable[str | tuple[str, Tolerance]] = (),
    ignore: Sequence[str] = (),
) -> Comparison:
    """Compare two files; ``tolerances`` as ``"metric=pct"`` strings or parsed pairs."""
    parsed = [parse_tolerance(t) if isinstance(t, str) else t for t in tolerances]
    return compare_cells(load_cells(base), load_cells(new), parsed, ignore)


_STATUS_ORDER = {"regressed": 0, "missing": 1, "improved": 2, "within": 3, "info": 4, "added": 5, "same": 6}
_STATUS_STYLE = {
    "regressed": "bold red",
    "missing": "red",
    "improved": "green",
    "within": "",
    "info": "dim",
    "added": "cyan",
    "same": "dim",
}


def _num(value: Optional[float]) -> str:
    return "–" if value is None else short_number(value)


def _pct(value: Optional[float]) -> str:
    if value is None:
        return ""
    if math.isinf(value):
        return "+inf %" if value > 0 else "-inf %"
    return f"{value:+.1f} %"


def render_comparison(cmp: Comparison, show_all: bool = False):
    """A rich renderable: the table of changes and a one-line verdict."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    shown_status = set(_STATUS_ORDER) if show_all else {"regressed", "missing", "improved"}
    rows = sorted(
        (c for c in cmp.changes if c.status in shown_status), key=lambda c: (_STATUS_ORDER[c.status], c.cell, c.metric)
    )
    parts: list[Any] = []
    for w in cmp.warnings:
        parts.append(Text(f"warning: {w}", style="yellow"))
    if rows:
        table = Table(title=Text(f"{cmp.base.path} → {cmp.new.path}"))  # paths verbatim, never markup
        for col, justify in (
            ("cell", "left"),
            ("metric", "left"),
            ("baseline", "right"),
            ("new", "right"),
            ("change", "right"),
            ("better", "left"),
            ("tolerance", "right"),
            ("status", "left"),
        ):
            table.add_column(col, justify=justify)
        for c in rows:
            table.add_row(
                Text(c.cell),
                Text(c.metric),
                _num(c.base),
                _num(c.new),
                _pct(c.change_pct),
                c.direction or "–",
                str(c.tolerance) if c.direction else "–",
                Text(c.status.upper() if c.status == "regressed" else c.status, style=_STATUS_STYLE[c.status]),
            )
        parts.append(table)
    counts = {s: sum(1 for c in cmp.changes if c.status == s) for s in _STATUS_ORDER}
    common = len({c.cell for c in cmp.changes}) if cmp.changes else 0
    summary = (
        f"{common} common cells, {len(cmp.changes)} metrics: {counts['regressed']} regressed, "
        f"{counts['missing']} missing, {counts['improved']} improved, {counts['within']} within tolerance, "
        f"{counts['same']} unchanged, {counts['info']} descriptive changes"
    )
    parts.append(Text(summary))
    for cell in cmp.missing_cells:
        parts.append(Text(f"missing in new: {cell}", style="red"))
    if cmp.added_cells:
        parts.append(Text(f"{len(cmp.added_cells)} cells only in the new file (not compared)", style="dim"))
    return Group(*parts)
