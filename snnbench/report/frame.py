"""Records as one tidy pandas frame: a row per record × metric × T.

Columns: the record's identity (``suite``, ``track``, ``dataset``, ``model``, ``method``, ``seed``,
``device``, ``key``), its settings flattened (``model.width``, ``method.alpha``, ``training.epochs``
...), then ``metric``, ``T`` (the time step of a per-T metric such as ``snn_acc``, else missing),
``value``, ``unit`` and where it came from (``git_sha``, ``finished_at``). ``pandas`` groupby/pivot
turn it into any table; ``snnbench export`` writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pandas as pd

from snnbench.report import EXPORT_FORMATS
from snnbench.report.metrics import flatten, is_number, leaves, unit

IDENTITY = ["suite", "track", "dataset", "model", "method", "seed", "device", "key"]
VALUES = ["metric", "T", "value", "unit"]
PROVENANCE = ["git_sha", "finished_at"]
# Where the data lives and names already in the identity columns say nothing about the result.
_SETTINGS_LEFT_OUT = {"dataset.name", "dataset.root", "dataset.download", "model.name", "method.name"}


def settings(record: dict[str, Any]) -> dict[str, Any]:
    """The record's configuration flattened to ``section.field``; ``params`` levels dropped."""
    config = record.get("config") or {}
    out: dict[str, Any] = {}
    for section in ("dataset", "model", "method", "training"):
        for name, value in leaves(config.get(section) or {}, f"{section}."):
            name = name.replace(".params.", ".")
            if name not in _SETTINGS_LEFT_OUT:
                out[name] = value
    return out


def _is_per_t(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(str(k).isdigit() for k in value)


def metric_values(metrics: dict[str, Any]) -> Iterator[tuple[str, Any, float]]:
    """``(metric, T, value)`` of every number; a mapping keyed by time steps is a per-T metric."""
    for key in sorted(metrics, key=str):
        value = metrics[key]
        if _is_per_t(value):
            for t in sorted(value, key=int):
                if is_number(value[t]):
                    yield str(key), int(t), float(value[t])
        elif isinstance(value, dict):
            for name, number in flatten(value, f"{key}."):
                yield name, None, number
        elif is_number(value):
            yield str(key), None, float(value)


def long_rows(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    config = record.get("config") or {}
    env = record.get("env") or {}
    ident = {c: record.get(c) for c in IDENTITY}
    ident["device"] = config.get("device") or (env.get("hardware") or {}).get("device")
    params = settings(record)
    provenance = {"git_sha": env.get("git_sha"), "finished_at": record.get("finished_at")}
    for metric, t, value in metric_values(record.get("metrics") or {}):
        yield {**ident, **params, "metric": metric, "T": t, "value": value, "unit": unit(metric), **provenance}


def records_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """The long form of ``records``; columns in a fixed order (identity, settings, values, provenance)."""
    rows = [row for record in records for row in long_rows(record)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=IDENTITY + VALUES + PROVENANCE)
    fixed = IDENTITY + VALUES + PROVENANCE
    params = sorted(c for c in frame.columns if c not in fixed)
    frame = frame[IDENTITY + params + VALUES + PROVENANCE]
    frame["T"] = frame["T"].astype("Int64")
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def flat_names(frame: pd.DataFrame) -> list[str]:
    """Each row's metric as one flattened name (``snn_acc.4`` for T = 4), as gates and globs use."""
    return [m if pd.isna(t) else f"{m}.{int(t)}" for m, t in zip(frame["metric"], frame["T"])]


def mean_std(frame: pd.DataFrame, by: Sequence[str], columns: Iterable[str], **more: Any) -> pd.DataFrame:
    """Mean ± std over seeds, the one place it is computed: per group of ``by`` (in order of first
    appearance; a missing key is a group of its own), columns ``<c>`` (mean, missing values skipped) and
    ``<c>_std`` (the sample std; NaN for one value). ``more`` are further named aggregations."""
    spec: dict[str, tuple[str, Any]] = {}
    for col in columns:
        spec[col] = (col, "mean")
        spec[f"{col}_std"] = (col, "std")
    return frame.groupby(list(by), sort=False, dropna=False).agg(**spec, **more).reset_index()


def export(frame: pd.DataFrame, fmt: str, out: Path | None = None) -> str | None:
    """Write the long form as CSV, Parquet (needs pyarrow) or JSON lines to ``out``; CSV and
    JSON lines are returned as text when ``out`` is None."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    if out is not None:
        from snnbench.user_paths import output_file

        output_file(out, "--out")
    if fmt == "parquet":
        if out is None:
            raise ValueError("--format parquet is binary: give --out FILE")
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError("--format parquet needs pyarrow: pip install 'snnbench[parquet]'") from None
        frame.to_parquet(out, index=False)
        return None
    text = frame.to_csv(index=False) if fmt == "csv" else frame.to_json(orient="records", lines=True)
    if out is None:
        return text
    Path(out).write_text(text, encoding="utf-8")
    return None


def load_results(paths: Sequence[Path | str] | Path | str, *, latest: bool = True) -> pd.DataFrame:
    """The long form of results files (or folders of them); with ``latest`` a rerun's record
    replaces the earlier one of its cell, as in every table. Raises ``InputError`` for a file
    that cannot be read and when no usable record is found (benchmark files only, every line
    skipped, empty files); skipped lines and files are in ``frame.attrs["problems"]``."""
    from snnbench.report.inputs import InputError, load_inputs
    from snnbench.records.store import latest_by_key

    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    inputs = load_inputs(paths)
    problems = list(inputs.problems)
    problems += [f"{b.path}: a benchmark file, not results; skipped (compare and plot read it)" for b in inputs.bench]
    if not inputs.records:
        named = ", ".join(str(p) for p in paths)
        if inputs.bench and not inputs.problems:
            raise InputError(
                f"{named}: benchmark files only; export reads results files (.jsonl records of `snnbench run`); "
                "`snnbench compare` and `snnbench plot` read benchmark files"
            )
        why = "; ".join(problems[:3]) if problems else "the files hold no records"
        raise InputError(f"no usable record in {named}: {why}")
    frame = records_frame(latest_by_key(inputs.records) if latest else inputs.records)
    frame.attrs["problems"] = problems
    return frame
