"""The Python API: what the command line does, as functions that return pandas frames.

``snnbench run`` and :func:`run` share one sweep (:func:`snnbench.runner.sweep.run_suites`), the
same suite checks (:func:`load_suite`) and the same results store, so a notebook and a terminal
write and skip the very same cells.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence, Union

from snnbench.config import Suite, SuiteError, load_suite as _read_suite, parse_suite, suite_fields

if TYPE_CHECKING:  # pandas (~0.8 s) loads with the first frame, not with a suite check
    import pandas as pd

SuiteSource = Union[str, Path, Mapping[str, Any], Suite]


def _as_list(value: Union[None, str, Sequence[str]]) -> list[str]:
    """A list option given one string is a one-element list (``list("a=1")`` would split it into characters)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _as_path(value: Any, parameter: str) -> Path:
    """A path argument as a Path; any other type is a TypeError naming the parameter (pathlib's own
    says only "expected str, bytes or os.PathLike object", and bytes would be refused deeper)."""
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        return Path(value)
    raise TypeError(f"{parameter}: expected a path (str or pathlib.Path), got {type(value).__name__} {value!r:.60}")


def _optional_path(value: Any, parameter: str) -> Optional[Path]:
    return None if value is None else _as_path(value, parameter)


def load_suite(source: SuiteSource, overrides: Optional[Sequence[str]] = None) -> Suite:
    """A validated suite from a YAML path or a mapping of suite fields; models and their
    parameters are checked against the code. ``overrides`` are ``"key.path=value"`` strings
    (as ``--set``). Raises :class:`SuiteError` with a located message.

    The file and its schema are checked before the model registry (and with it torch, ~2 s) is
    imported, so a YAML or schema error is reported in a fraction of a second."""
    overrides = _as_list(overrides)
    if isinstance(source, Suite):
        if overrides:
            source = source.model_dump(mode="json")
        else:
            return source
    if isinstance(source, Mapping):
        where = Path("<suite mapping>")  # its base: files are found from the current folder
        suite = parse_suite(suite_fields(dict(source), where, overrides or ()), where)
    else:
        where = _as_path(source, "suite (a path, a mapping of suite fields or a Suite)")
        suite = _read_suite(where, overrides or ())
    from snnbench.runner.sweep import check_models

    check_models(suite, where)
    return suite


def _sources(suite: Any) -> Optional[list]:
    """The suites of a several-suite call (a list or tuple of suite sources), or None for one suite."""
    if isinstance(suite, (list, tuple)):
        if not suite:
            raise ValueError("suite: expected a suite or a non-empty list of suites, got an empty list")
        return list(suite)
    return None


def run(
    suite: Union[SuiteSource, Sequence[SuiteSource]],
    *,
    executor: str = "local",
    results_dir: Optional[Union[str, Path]] = None,
    force: bool = False,
    overrides: Optional[Sequence[str]] = None,
    data_root: Optional[Union[str, Path]] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    address: Optional[str] = None,
    jobs: Optional[int] = None,
) -> pd.DataFrame:
    """Run every cell of ``suite`` not yet recorded, append its record, and return the suite's
    records (newest per cell) in long form (see :func:`load_results`).

    ``suite`` may be a list of suites: one sweep, as ``snnbench run A B C`` (every suite checked
    before any cell runs, one worker pool, each record in its own suite's file, ``overrides`` applied
    to each); the frame then holds every suite's records (its ``suite`` column tells them apart).
    ``frame.attrs["paths"]`` lists the results files (``"path"``: the first).

    A failed cell does not stop the others: it is reported with a warning and listed in
    ``frame.attrs["failed"]`` as ``(key, error)`` pairs, as ``snnbench run`` lists it and exits 1.
    """
    from snnbench.report.frame import records_frame
    from snnbench.runner.sweep import check_distinct_results, run_suites

    several = _sources(suite)
    parsed = [load_suite(one, overrides) for one in (several if several is not None else [suite])]
    results = _optional_path(results_dir, "results_dir")
    check_distinct_results(parsed, results)
    summaries = run_suites(
        parsed,
        results_dir=results,
        force=force,
        data_root=_optional_path(data_root, "data_root"),
        cache_dir=_optional_path(cache_dir, "cache_dir"),
        executor=executor,
        address=address,
        jobs=jobs,
    )
    failed = []
    for summary in summaries:
        for problem in summary.problems:
            warnings.warn(f"{problem}; that cell was run again", stacklevel=2)
        for one in summary.failed:
            warnings.warn(f"cell failed: {one.cell.key}: {one.error}", stacklevel=2)
            failed.append((one.cell.key, one.error))
    frame = records_frame([record for summary in summaries for record in summary.records])
    frame.attrs["paths"] = [str(summary.path) for summary in summaries]
    frame.attrs["path"] = frame.attrs["paths"][0]
    frame.attrs["failed"] = failed
    return frame


def load_results(paths: Union[str, Path, Iterable[Union[str, Path]]], *, latest: bool = True) -> pd.DataFrame:
    """Results files (or folders) as one tidy frame: a row per record × metric × T."""
    from snnbench.report.frame import load_results as _load

    if isinstance(paths, (str, os.PathLike)) or not isinstance(paths, Iterable) or isinstance(paths, (bytes, Mapping)):
        return _load(_as_path(paths, "paths"), latest=latest)
    return _load([_as_path(p, f"paths[{i}]") for i, p in enumerate(paths)], latest=latest)


def compare(
    base: Union[str, Path],
    new: Union[str, Path],
    tolerances: Union[Mapping[str, Union[str, float]], Sequence[str]] = (),
    ignore: Sequence[str] = (),
):
    """Compare two results or benchmark files cell by cell, as ``snnbench compare`` does.

    ``tolerances`` (one string or several) maps metric globs to a relative tolerance in percent (``{"ms": 10}``) or an
    absolute one (``{"snn_acc": "0.5pt"}``), or is a list of ``"METRIC=TOL"`` strings. The
    result has ``.regressions``, ``.exit_code()`` and ``.to_frame()``.
    """
    from snnbench.report.compare import compare_files

    if isinstance(tolerances, Mapping):
        tolerances = [f"{pattern}={value}" for pattern, value in tolerances.items()]
    return compare_files(_as_path(base, "base"), _as_path(new, "new"), _as_list(tolerances), _as_list(ignore))


__all__ = ["SuiteError", "compare", "load_results", "load_suite", "run"]
