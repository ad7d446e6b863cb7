"""Leaderboards from result records: one row per (dataset, model, method), mean ± std over seeds.

Rows: measured records are averaged over seeds; records of the same (dataset, model, method) whose
configurations differ (epochs, width, method parameters ...) become separate rows, labelled by what
differs (the ``variant``), so different settings are never silently averaged together. Published
rows (``snnbench/published/*.yaml``) sit beside them, marked with their source.

Columns: the ANN, one per time step T, then accuracy, speed and sparsity columns where any row has
them. Output is split into sections by ``group_by`` (default: dataset and model); in each section
the best value of every column with a direction (higher accuracy and speed-up, lower time) is
marked. Renderers: rich (terminal), Markdown, CSV, HTML, LaTeX — all deterministic.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

import pandas as pd

from snnbench.records.labels import method_label
from snnbench.report.frame import mean_std
from snnbench.report.metrics import direction, flatten, is_number, leaderboard_columns

ROW_KEYS = ["dataset", "model", "method"]
DEFAULT_GROUP_BY = ("dataset", "model")

# Identity columns of an aggregated row besides the row keys.
_IDENTITY = ["variant", "source", "citation", "label"]

# (column, flattened metric path, scale): the leaderboard columns after ANN and T=..., in order.
NAMED_COLUMNS: list[tuple[str, str, float]] = leaderboard_columns()
_ACCURACY_COLUMNS = {"ANN", "test_acc"}

# Config entries that never make two runs different settings of the same row.
_CONFIG_IGNORED = {
    "seed",
    "suite",
    "track",
    "device",
    "timesteps",
    "dataset.name",
    "dataset.root",
    "dataset.download",
    "model.name",
    "method.name",
}


# ------------------------------------------------------------------------------------------------
# Records → flat rows → aggregated frame


def field_value(record: dict[str, Any], name: str) -> Any:
    """A top-level record field or a dotted path (``config.model.params.width``)."""
    if name in record:
        return record[name]
    value: Any = record
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _config_items(record: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k in sorted(value, key=str):
                walk(value[k], f"{path}.{k}" if path else str(k))
        elif path not in _CONFIG_IGNORED:
            out[path] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    walk(record.get("config") or {}, "")
    return out


def _short_names(paths: Sequence[str]) -> dict[str, str]:
    names = {}
    for p in paths:
        parts = p.split(".")
        short = parts[-1]
        if sum(1 for q in paths if q.split(".")[-1] == short) > 1:
            short = ".".join(parts[-2:])
        names[p] = short
    return names


def assign_variants(records: Sequence[dict[str, Any]], row_fields: Sequence[str]) -> list[str]:
    """For each record, the config entries that differ from other records of the same row."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(tuple(str(field_value(r, f)) for f in row_fields), []).append(i)
    variants = [str(r.get("variant") or "") for r in records]
    for members in groups.values():
        items = [_config_items(records[i]) for i in members]
        keys = sorted({k for it in items for k in it})
        differing = [k for k in keys if len({it.get(k) for it in items}) > 1]
        if not differing:
            continue
        short = _short_names(differing)
        for i, it in zip(members, items):
            # A setting a record does not have is its default: naming it "–" only adds noise.
            label = ", ".join(f"{short[k]}={it[k]}" for k in differing if k in it)
            variants[i] = ", ".join(v for v in (variants[i], label) if v)
    return variants


def family_label(record: dict[str, Any]) -> str:
    """A conversion record's method with its ANN family, as the FTBC paper's tables name rows
    (``RTS``, ``FTBC (+RTS)``, ``FTBC (+QCFS)``, ``SNNC-AP`` ...; records.labels); empty for other tracks."""
    if record.get("track") != "conversion":
        return ""
    config = record.get("config") or {}
    model, method = config.get("model") or {}, config.get("method") or {}
    return (
        method_label(
            str(record.get("method", "")),
            method.get("params") or {},
            model.get("params") or {},
            str(model.get("name", record.get("model", ""))),
        )
        or ""
    )


def record_row(record: dict[str, Any], row_fields: Sequence[str]) -> dict[str, Any]:
    """One record as a flat row: identity fields and one value per leaderboard column."""
    metrics = record.get("metrics") or {}
    flat = dict(flatten(metrics))
    row: dict[str, Any] = {f: _label(field_value(record, f)) for f in row_fields}
    row["seed"] = record.get("seed")
    row["source"] = record.get("source") or "measured"
    row["citation"] = record.get("citation") or ""
    row["label"] = record.get("label") or family_label(record)
    if "ann_acc" in flat:
        row["ANN"] = flat["ann_acc"]
    snn_acc = metrics.get("snn_acc") if isinstance(metrics.get("snn_acc"), dict) else {}
    for t, acc in snn_acc.items():
        if is_number(acc):
            row[f"T={int(t)}"] = float(acc)
    for column, path, scale in NAMED_COLUMNS:
        if path in flat:
            row[column] = flat[path] * scale
    # A cached ANN reports train_s = 0: that is "not measured in this run", not "free".
    if metrics.get("ann_source") == "cache":
        row.pop("train_s", None)
    return row


def _label(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def metric_columns(columns: Iterable[str]) -> list[str]:
    """Leaderboard columns in display order: ANN, T=... ascending, then NAMED_COLUMNS order."""
    cols = set(columns)
    ts = sorted((c for c in cols if c.startswith("T=")), key=lambda c: int(c[2:]))
    named = [c for c, _, _ in NAMED_COLUMNS if c in cols]
    return (["ANN"] if "ANN" in cols else []) + ts + named


def leaderboard(
    records: Iterable[dict[str, Any]],
    row_fields: Sequence[str] = ROW_KEYS,
) -> pd.DataFrame:
    """Mean and std over seeds per row: columns ``<metric>``, ``<metric>_std`` and ``seeds``.

    Measured rows come first (sorted by their identity), then published rows in input order.
    """
    records = list(records)
    if not records:
        return pd.DataFrame()
    row_fields = list(dict.fromkeys(list(row_fields) + ROW_KEYS))
    variants = assign_variants(records, row_fields)
    rows = []
    for record, variant in zip(records, variants):
        row = record_row(record, row_fields)
        row["variant"] = variant
        rows.append(row)
    frame = pd.DataFrame(rows)
    metrics = metric_columns(frame.columns)
    keys = row_fields + _IDENTITY
    frame["_order"] = range(len(frame))
    board = mean_std(frame, keys, metrics, seeds=("seed", "nunique"), _order=("_order", "min"))
    board["_measured"] = board["source"] == "measured"
    measured = board[board["_measured"]].sort_values(row_fields + ["variant"], kind="stable")
    published = board[~board["_measured"]].sort_values("_order", kind="stable")
    board = pd.concat([measured, published]).drop(columns=["_order", "_measured"]).reset_index(drop=True)
    board.attrs["row_fields"] = row_fields
    board.attrs["metrics"] = metrics
    return board


# ------------------------------------------------------------------------------------------------
# Sections and best marks


@dataclass
class Section:
    title: str
    key: dict[str, str]
    frame: pd.DataFrame
    columns: list[str]  # metric columns with at least one value in this section
    best: dict[str, set[int]] = field(default_factory=dict)  # column -> positions in frame

    def has_variants(self) -> bool:
        return any(v for v in self.frame["variant"]) or any(_display_variant(r) for _, r in self.frame.iterrows())


@dataclass
class Leaderboard:
    sections: list[Section]
    row_fields: list[str]
    group_by: list[str]
    citations: list[tuple[str, str, str]] = field(default_factory=list)  # (id, source, url)

    def citation_number(self, citation_id: str) -> Optional[int]:
        for i, (cid, _, _) in enumerate(self.citations, start=1):
            if cid == citation_id:
                return i
        return None

    @property
    def empty(self) -> bool:
        return not self.sections


def _display_variant(row: pd.Series) -> str:
    parts = []
    label = str(row.get("label") or "")
    # A family label ("FTBC (+RTS)") is shown even where it spells the method's name.
    if label and ("(+" in label or _plain(label) != _plain(str(row.get("method")))):
        parts.append(label)
    if row.get("variant"):
        parts.append(str(row["variant"]))
    return "; ".join(parts)


def _plain(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def format_value(column: str, value: float) -> str:
    """Fixed, readable precision: accuracies two decimals, others by magnitude."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column in _ACCURACY_COLUMNS or column.startswith("T=") or column.endswith("_pct"):
        return f"{value:.2f}"
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 1e5:
        return f"{value:.3g}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_cell(mean: float, std: Optional[float], column: str) -> str:
    """``mean ± std`` (just ``mean`` with one seed), at the precision of ``column``'s metric."""
    if mean is None or pd.isna(mean):
        return ""
    if std is None or pd.isna(std) or std == 0:
        return format_value(column, mean)
    return f"{format_value(column, mean)} ± {format_value(column, std)}"


def _best_positions(frame: pd.DataFrame, column: str) -> set[int]:
    want = direction(column)
    if want is None or column not in frame:
        return set()
    shown = [(i, format_value(column, v)) for i, v in enumerate(frame[column]) if not pd.isna(v)]
    if len(shown) < 2:
        return set()
    values = [frame[column].iloc[i] for i, _ in shown]
    target = max(values) if want == "higher" else min(values)
    target_text = format_value(column, target)
    return {i for i, text in shown if text == target_text}


def build_sections(board: pd.DataFrame, group_by: Sequence[str]) -> list[Section]:
    if board.empty:
        return []
    group_by = [g for g in group_by if g in board.columns]
    metrics = board.attrs.get("metrics") or metric_columns(c for c in board.columns if not c.endswith("_std"))
    if not group_by:
        parts = [((), board)]
    else:
        parts = list(board.groupby(group_by, sort=False, dropna=False))
    sections = []
    for key, frame in parts:
        key = key if isinstance(key, tuple) else (key,)
        frame = frame.reset_index(drop=True)
        columns = [c for c in metrics if c in frame and frame[c].notna().any()]
        title = " · ".join(str(k) for k in key) if key else ""
        section = Section(title, dict(zip(group_by, map(str, key))), frame, columns)
        section.best = {c: _best_positions(frame, c) for c in columns}
        sections.append(section)
    # Sections with measured rows first (what you ran), then published-only ones; each by title.
    sections.sort(key=lambda s: (not (s.frame["source"] == "measured").any(), s.title))
    return sections


def build_leaderboard(
    records: Iterable[dict[str, Any]],
    published: Sequence[Any] = (),
    *,
    group_by: Sequence[str] = DEFAULT_GROUP_BY,
    include_published: str = "matching",
) -> Leaderboard:
    """Measured records plus published rows, split into sections.

    ``include_published``: ``"matching"`` (published rows of the datasets that have measured rows),
    ``"all"`` or ``"none"``. ``published`` is a list of :class:`PublishedSource`.
    """
    from snnbench.report.published import published_records

    records = [dict(r, source=r.get("source") or "measured") for r in records]
    pub = [] if include_published == "none" else published_records(list(published))
    if include_published == "matching":
        datasets = {r.get("dataset") for r in records}
        pub = [r for r in pub if r["dataset"] in datasets]
    group_by = [g for g in group_by if g and g != "none"]
    row_fields = list(dict.fromkeys(list(group_by) + ROW_KEYS))
    board = leaderboard(records + pub, row_fields)
    sections = build_sections(board, group_by)
    used = {c for s in sections for c in s.frame["citation"] if c}
    citations = [(s.id, s.source, s.url) for s in published if s.id in used]
    return Leaderboard(sections, row_fields, list(group_by), citations)


def _as_leaderboard(board: Any, group_by: Sequence[str] = DEFAULT_GROUP_BY) -> Leaderboard:
    if isinstance(board, Leaderboard):
        return board
    row_fields = board.attrs.get("row_fields", ROW_KEYS) if not board.empty else ROW_KEYS
    return Leaderboard(build_sections(board, group_by), list(row_fields), list(group_by))


# ------------------------------------------------------------------------------------------------
# Renderers


def _row_columns(board: Leaderboard, section: Section) -> list[str]:
    cols = [f for f in board.row_fields if f not in section.key]
    if section.has_variants():
        cols.append("variant")
    return cols + ["source", "seeds"]


def _identity_text(board: Leaderboard, row: pd.Series, column: str) -> str:
    if column == "variant":
        return _display_variant(row)
    if column == "source":
        if row["source"] == "measured":
            return "measured"
        number = board.citation_number(row["citation"])
        return f"published [{number}]" if number else "published"
    if column == "seeds":
        return str(int(row["seeds"])) if row["source"] == "measured" else "–"
    return str(row[column])


def _cells(board: Leaderboard, section: Section) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Header and, per row, (text, is_best) for every column of a section."""
    id_cols = _row_columns(board, section)
    header = id_cols + section.columns
    rows = []
    for pos, (_, row) in enumerate(section.frame.iterrows()):
        cells = [(_identity_text(board, row, c), False) for c in id_cols]
        for c in section.columns:
            text = format_cell(row[c], row.get(f"{c}_std"), c)
            cells.append((text, pos in section.best.get(c, set())))
        rows.append(cells)
    return header, rows


def _is_published(section: Section, pos: int) -> bool:
    return section.frame["source"].iloc[pos] != "measured"


def render_rich(board: Any, title: str = "snnbench results", group_by: Sequence[str] = DEFAULT_GROUP_BY):
    """A rich renderable: one table per section; best values bold green, published rows italic."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    lb = _as_leaderboard(board, group_by)
    if lb.empty:
        table = Table(title=Text(title))
        table.add_column("no results")
        return table
    parts = []
    for section, header, rows in _laid_out(lb):
        full_title = " — ".join(t for t in (title, section.title) if t)
        # Titles and headers hold paths and field names: Text keeps them verbatim (no markup).
        table = Table(title=Text(full_title))
        n_id = len(header) - len(section.columns)
        for i, col in enumerate(header):
            table.add_column(Text(col), justify="left" if i < n_id - 1 else "right")
        for pos, cells in enumerate(rows):
            style = "italic dim" if _is_published(section, pos) else None
            texts = [Text(t, style="bold green" if best else "") for t, best in cells]
            table.add_row(*texts, style=style)
        parts.append(table)
    notes = [Text("bold green = best in its table; italic rows are published numbers, not measured here", style="dim")]
    for i, (_, source, url) in enumerate(lb.citations, start=1):
        notes.append(Text(f"[{i}] {source}" + (f" — {url}" if url else ""), style="dim"))
    return Group(*parts, *notes)


def _laid_out(lb: Leaderboard) -> list[tuple[Any, list[str], list]]:
    """Each section with its header and ``(text, best)`` cells, in order: what every renderer lays out."""
    return [(section, *_cells(lb, section)) for section in lb.sections]


def _styled(text: str, best: bool, published: bool, bold: str, italic: str) -> str:
    """``text`` (already escaped) in the ``bold`` form if best and the ``italic`` form if published."""
    if best and text:
        text = bold.format(text)
    if published and text:
        text = italic.format(text)
    return text


def pipe_table(header: list[str], rows: list[list[str]], left: int) -> list[str]:
    """The lines of a markdown pipe table of already-escaped texts; the first ``left`` columns are
    left-aligned, the rest right-aligned (numbers)."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|",
    ]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(board: Any, heading_level: int = 3, with_sources: bool = True) -> str:
    """Pipe tables, one per section under a heading; best values in bold."""
    lb = _as_leaderboard(board)
    if lb.empty:
        return "_no results_\n"
    out = []
    for section, header, rows in _laid_out(lb):
        if section.title:
            out.append(f"{'#' * heading_level} {section.title}\n")
        n_id = len(header) - len(section.columns)
        texts = [[_styled(_md_escape(t), best, False, "**{}**", "{}") for t, best in cells] for cells in rows]
        out += pipe_table([_md_escape(h) for h in header], texts, left=n_id - 1)
        out.append("")
    if with_sources and lb.citations:
        out.append(sources_markdown(lb))
    return "\n".join(out).rstrip() + "\n"


def sources_markdown(lb: Leaderboard) -> str:
    lines = ["Sources of the published rows:", ""]
    for i, (_, source, url) in enumerate(lb.citations, start=1):
        lines.append(f"{i}. [{i}] {source}" + (f" — {url}" if url else ""))
    return "\n".join(lines) + "\n"


def render_csv(board: Any) -> str:
    """One flat CSV (all sections): identity, ``<metric>`` and ``<metric>_std`` columns, ``best``."""
    lb = _as_leaderboard(board)
    if lb.empty:
        return ""
    rows = []
    metrics: list[str] = []
    for section in lb.sections:
        for c in section.columns:
            if c not in metrics:
                metrics.append(c)
    metrics = metric_columns(metrics)
    sources = {cid: source for cid, source, _ in lb.citations}
    for section in lb.sections:
        for pos, (_, row) in enumerate(section.frame.iterrows()):
            out = {f: row[f] for f in lb.row_fields}
            out["variant"] = row["variant"]
            out["source"] = row["source"]
            out["label"] = row["label"]
            out["citation"] = sources.get(row["citation"], "")
            out["seeds"] = int(row["seeds"])
            for c in metrics:
                out[c] = row.get(c, math.nan)
                out[f"{c}_std"] = row.get(f"{c}_std", math.nan)
            out["best"] = ";".join(c for c in section.columns if pos in section.best.get(c, set()))
            rows.append(out)
    return pd.DataFrame(rows).to_csv(index=False, float_format="%.6g")


def render_html(board: Any) -> str:
    lb = _as_leaderboard(board)
    if lb.empty:
        return "<p>no results</p>\n"
    out = []
    for section, header, rows in _laid_out(lb):
        out.append('<table class="snnbench-leaderboard">')
        if section.title:
            out.append(f"<caption>{html.escape(section.title)}</caption>")
        out.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>")
        out.append("<tbody>")
        for pos, cells in enumerate(rows):
            published = _is_published(section, pos)
            cls = ' class="published"' if published else ""
            tds = [
                f"<td>{_styled(html.escape(t), best, published, '<strong>{}</strong>', '<em>{}</em>')}</td>"
                for t, best in cells
            ]
            out.append(f"<tr{cls}>" + "".join(tds) + "</tr>")
        out.append("</tbody></table>")
    if lb.citations:
        out.append('<ol class="snnbench-sources">')
        for _, source, url in lb.citations:
            link = f' — <a href="{html.escape(url.split()[0])}">{html.escape(url)}</a>' if url else ""
            out.append(f"<li>{html.escape(source)}{link}</li>")
        out.append("</ol>")
    return "\n".join(out) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("×", r"$\times$").replace("·", "/").replace("–", "--")


def render_latex(board: Any) -> str:
    """One booktabs ``tabular`` per section; best values bold, published rows italic."""
    lb = _as_leaderboard(board)
    if lb.empty:
        return "% no results\n"
    out = ["% generated by snnbench; needs \\usepackage{booktabs}"]
    for section, header, rows in _laid_out(lb):
        n_id = len(header) - len(section.columns)
        spec = "l" * n_id + "r" * len(section.columns)
        out.append("\\begin{table}[ht]\n\\centering")
        if section.title:
            out.append(f"\\caption{{{latex_escape(section.title)}}}")
        out.append(f"\\begin{{tabular}}{{{spec}}}\n\\toprule")
        out.append(" & ".join(latex_escape(h) for h in header) + " \\\\\n\\midrule")
        for pos, cells in enumerate(rows):
            published = _is_published(section, pos)
            texts = [_styled(latex_escape(t), best, published, "\\textbf{{{}}}", "\\textit{{{}}}") for t, best in cells]
            out.append(" & ".join(texts) + " \\\\")
        out.append("\\bottomrule\n\\end{tabular}\n\\end{table}")
    for i, (_, source, url) in enumerate(lb.citations, start=1):
        out.append(f"% [{i}] {source}" + (f" -- {url}" if url else ""))
    return "\n".join(out) + "\n"


RENDERERS: dict[str, Callable[[Any], str]] = {
    "md": render_markdown,
    "csv": render_csv,
    "html": render_html,
    "latex": render_latex,
}
