"""``results/LEADERBOARD.md``: every committed result in one Markdown page.

Made from ``results/runs/*.jsonl`` (measured rows), ``results/bench/**/*.json`` (kernel and method
benchmarks) and ``snnbench/published/*.yaml`` (published rows, marked). The text depends only on
those files — no timestamps, stable ordering — so CI can regenerate it and fail when the committed
page is stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from snnbench.report.benchrows import FREE_TEXT, is_measurement
from snnbench.report.inputs import BenchFile, InputError, load_bench, read_usable
from snnbench.report.layer_board import layer_section
from snnbench.report.metrics import headline_fields, leaves, short_number
from snnbench.report.published import PublishedSource, load_published
from snnbench.report.table import build_leaderboard, pipe_table, render_markdown
from snnbench.user_paths import UnusablePathError, input_folder
from snnbench.records.store import latest_by_key

COMMAND = "snnbench leaderboard --out results/LEADERBOARD.md"


@dataclass
class LeaderboardPage:
    text: str
    problems: list[str] = field(default_factory=list)  # unreadable lines or files, for warnings


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return short_number(value)
    return str(value).replace("|", "\\|")


# Measurements worth a column in the page's summary of a benchmark file (the JSON keeps the rest).
HEADLINE = tuple(headline_fields())


def rows_markdown(rows: Sequence[dict[str, Any]], headline: Optional[Sequence[str]] = None) -> str:
    """A pipe table of benchmark rows: identifying fields first, then measurements (only the
    ``headline`` ones when given)."""
    columns: list[str] = []
    for row in rows:
        for k, v in row.items():
            if k not in columns and not isinstance(v, (dict, list)) and k not in FREE_TEXT:
                columns.append(k)
    ids = [c for c in columns if not any(is_measurement(c, r.get(c)) for r in rows if c in r)]
    values = [c for c in columns if c not in ids]
    if headline is not None:
        values = [c for c in headline if c in values]
    header = ids + values
    lines = pipe_table(header, [[_fmt(row.get(c)) for c in header] for row in rows], left=len(ids))
    return "\n".join(lines) + "\n"


def summary_markdown(bench: BenchFile) -> str:
    """The file's own ``summary`` (or its top-level numbers) as a key / value list."""
    source = (
        bench.meta.get("summary")
        if isinstance(bench.meta.get("summary"), dict)
        else {k: v for k, v in bench.meta.items() if not isinstance(v, (dict, list, str))}
    )
    items = [
        (k, v)
        for k, v in leaves(source, keep=lambda v: isinstance(v, (int, float, bool)) or v is None, sort=False)
        if k
    ]
    if not items:
        return ""
    return "\n".join(f"- `{k}`: {_fmt(v)}" for k, v in items) + "\n"


def _env_line(bench: BenchFile) -> str:
    env = bench.env
    parts = [f"card: {bench.card}"]
    for name in ("torch", "triton", "cuda"):
        value = env.get(name) or (env.get("hardware") or {}).get(name)
        if value:
            parts.append(f"{name} {value}")
    sha = env.get("git_sha")
    if sha:
        parts.append(f"git {str(sha)[:12]}")
    return ", ".join(parts)


def bench_section(bench_files: Sequence[BenchFile], root: Path) -> str:
    out = []
    for bench in bench_files:
        out.append(f"### {bench.card} — {bench.name}\n")
        out.append(
            f"`{_rel(bench.path, root)}` ({_env_line(bench)}); {len(bench.rows)} rows, headline "
            "columns below, every field in the file.\n"
        )
        summary = summary_markdown(bench)
        if summary:
            out.append("Summary:\n\n" + summary)
        out.append(rows_markdown(bench.rows, HEADLINE) if bench.rows else "_no rows_\n")
    return "\n".join(out)


def load_bench_dir(bench_dir: Path) -> tuple[list[BenchFile], list[str]]:
    files, problems = [], []
    if bench_dir.is_dir():
        for path in sorted(bench_dir.rglob("*.json")):
            try:
                files.append(load_bench(path))
            except ValueError as err:
                problems.append(str(err))
    return files, problems


def build_page(
    runs_dir: Path = Path("results/runs"),
    bench_dir: Path = Path("results/bench"),
    published_dir: Optional[Path] = None,
    root: Optional[Path] = None,
) -> LeaderboardPage:
    root = root or Path.cwd()
    for option, folder in (("--runs", runs_dir), ("--bench", bench_dir)):
        try:
            input_folder(folder, option, "a folder of results files")
        except UnusablePathError as err:
            raise InputError(str(err)) from None
    problems: list[str] = []
    records = []
    for path in sorted(Path(runs_dir).glob("*.jsonl")):
        try:
            usable, skipped = read_usable(path)
        except UnusablePathError as err:  # a FIFO or folder named *.jsonl in the folder: skipped, said why
            problems.append(f"{err}; skipped")
            continue
        problems.extend(skipped)
        records.extend(usable)
    records = latest_by_key(records)
    sources: list[PublishedSource] = load_published(published_dir)
    bench_files, bench_problems = load_bench_dir(Path(bench_dir))
    problems.extend(bench_problems)

    board = build_leaderboard(records, sources, include_published="all")
    parts = [
        "# snnbench leaderboard\n",
        f"Generated by `{COMMAND}` from `results/runs/*.jsonl`, `results/bench/**/*.json` and "
        "`snnbench/published/*.yaml`. Do not edit by hand: the test suite fails when this page is "
        "stale; rerun the command and commit the result.\n",
        "Each table is one dataset and model. Measured rows are the mean ± sample std over seeds "
        "(`seeds` = how many); `published [n]` rows are quoted from source [n] at the end, not "
        "measured here. **Bold** = best in its table (higher accuracy and speed-up, lower time). "
        "Accuracies in %, times in seconds (`_s`) or milliseconds (`_ms`); `docs/results.md` "
        "explains every column.\n",
        f"Measured: {len(records)} records from {len({r.get('suite') for r in records})} suites; "
        f"{len(bench_files)} benchmark files; {len(sources)} published sources.\n",
        "## Accuracy, speed and sparsity\n",
        render_markdown(board, heading_level=3, with_sources=False),
        "## Benchmarks\n",
        bench_section(bench_files, root)
        if bench_files
        else "_No benchmark files yet (`snnbench bench ... --out results/bench/<gpu>`)._\n",
    ]
    parts.append(layer_section(bench_files, sources))
    pub_bench = [s for s in sources if s.bench_rows]
    if pub_bench:
        parts.append("## Published benchmark numbers\n")
        for s in pub_bench:
            parts.append(f"### {s.source}\n")
            parts.extend(f"{note}\n" for note in s.notes)
            parts.append(rows_markdown(s.bench_rows))
    with_text = [s for s in sources if s.claims or s.setup]
    if with_text:
        parts.append("## Published claims and setups (not in the tables)\n")
        for s in with_text:
            parts.append(f"{s.source}:\n")
            parts.append("\n".join(f"- {line}" for line in s.claims + s.setup) + "\n")
    parts.append("## Sources\n")
    parts.append(
        "\n".join(
            f"{i}. [{i}] {s.source}" + (f" — {s.url}" if s.url else "") + f" (`{_rel(s.path, root)}`)"
            for i, s in enumerate(_cited_order(board, sources), start=1)
        )
        + "\n"
    )
    text = "\n".join(p.rstrip("\n") + "\n" for p in parts)
    return LeaderboardPage(text, problems)


def _cited_order(board, sources: Sequence[PublishedSource]) -> list[PublishedSource]:
    # Numbering must match the tables' "published [n]"; sources only quoted outside tables follow.
    by_id = {s.id: s for s in sources}
    cited = [by_id[cid] for cid, _, _ in board.citations if cid in by_id]
    return cited + [s for s in sources if s not in cited]
