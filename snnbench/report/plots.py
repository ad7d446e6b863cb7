"""Figures from results and benchmark files, written as PNG and SVG (matplotlib, Agg backend).

- accuracy vs T per method, one figure per (dataset, model) and card; published curves dashed;
- backward speed-up vs hidden size (training records, sparse benchmark rows);
- backward speed-up vs fraction of neurons active in the backward (same sources, published points);
- kernel bandwidth as a fraction of the measured copy ceiling (neuron and FTBC benchmark rows).

Rules every figure follows, so a reader can trust it: time-step axes are labelled 1, 2, 4, ...; a
series with one x value is drawn as points (or bars), never as a line; measurements from different
cards (a CPU and a GPU) never share a figure; legends and axes use human labels; titles name the
dataset, the model and the card; a figure without data is skipped with a reason, never written.
The ``build_*`` functions return the figures unsaved so tests can read their data and labels.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import pandas as pd

from snnbench.report.benchrows import FREE_TEXT, is_measurement
from snnbench.report.frame import mean_std
from snnbench.report.inputs import BenchFile, card_name
from snnbench.report.metrics import is_number, label
from snnbench.user_paths import output_file

FORMATS = ("png", "svg")
# Identifying fields whose value alone names a series (impl=dense_fused reads "dense fused").
_VALUE_ONLY = ("impl", "kind", "method", "dtype", "mode", "rule", "layer")


@dataclass
class Figure:
    name: str  # file stem
    fig: Any  # matplotlib.figure.Figure


@dataclass
class PlotReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(*parts: str) -> str:
    text = "_".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower()


def _has_data(fig) -> bool:
    return any(len(line.get_xdata()) for ax in fig.axes for line in ax.lines if not _is_reference(line)) or any(
        ax.patches for ax in fig.axes
    )


def _is_reference(line) -> bool:
    # Horizontal reference lines (ANN accuracy, 1×, the copy ceiling) are not data by themselves.
    return line.get_gid() == "reference"


def _keep(figures: list[Figure], fig, name: str, skipped: list[str], what: str) -> None:
    if _has_data(fig):
        figures.append(Figure(name, fig))
    else:
        _plt().close(fig)
        skipped.append(f"{what}: nothing to draw")


def _series(ax, xs: Sequence[float], ys: Sequence[float], **style: Any):
    """A line through the points; one point alone is a marker, since a line needs two x values."""
    if len(set(xs)) < 2:
        style = {**style, "linestyle": "none", "marker": style.get("marker") or "o"}
    else:
        style.setdefault("marker", "o")
    (line,) = ax.plot(list(xs), list(ys), **style)
    return line


def _reference_line(ax, y: float, **style: Any) -> None:
    ax.axhline(y, gid="reference", **style)


def _value_ticks(ax, values: Iterable[float], log_base: Optional[int] = None) -> None:
    """Ticks at the measured values, written as plain numbers (1, 2, 4 ...; 200, 1000)."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ticks = sorted({float(v) for v in values})
    if log_base:
        ax.set_xscale("log", base=log_base)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in ticks])


def _human(text: str) -> str:
    return str(text).replace("_", " ")


def _ids_label(ids: Sequence[tuple[str, Any]]) -> str:
    parts = [_human(v) if k in _VALUE_ONLY else f"{_human(k)} {v}" for k, v in ids]
    return ", ".join(parts)


def _device_of(record: dict[str, Any]) -> str:
    return card_name(record.get("env")) or "card unknown"


def _card_suffix(card: str, cards: Sequence[str]) -> str:
    # A file name carries the card only where one (dataset, model) was measured on several.
    return card if len(cards) > 1 else ""


def _mean_std(values_at: dict[float, list[float]]) -> tuple[list, list[float], list[float]]:
    """The x values (sorted), the mean and the std (0 for one value) of the values at each: the
    leaderboard's mean ± std (report.frame), so a figure and a table never disagree."""
    rows = pd.DataFrame([(x, v) for x, vs in values_at.items() for v in vs], columns=["x", "value"])
    stats = mean_std(rows, ["x"], ["value"]).sort_values("x")
    return stats["x"].tolist(), stats["value"].tolist(), stats["value_std"].fillna(0.0).tolist()


def _series_label(record: dict[str, Any], drop: Sequence[str] = ()) -> str:
    """``method (variant)``; ``drop`` removes ``key=value`` parts of the variant (e.g. the x axis)."""
    name = str(record.get("method"))
    parts = [p for p in str(record.get("variant") or "").split(", ") if p and p.split("=")[0] not in drop]
    variant = ", ".join(parts)
    if record.get("source") == "published":
        name = str(record.get("label") or name)
        return f"{name}{' (' + variant + ')' if variant else ''} — published"
    return f"{name}{' (' + variant + ')' if variant else ''}"


def _with_variants(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    from snnbench.report.table import ROW_KEYS, assign_variants

    variants = assign_variants(list(records), ROW_KEYS)
    return [dict(r, variant=v) for r, v in zip(records, variants)]


# ------------------------------------------------------------------------------------------------
# Accuracy vs T


def _draw_accuracy(ax, mine: Sequence[dict[str, Any]], theirs: Sequence[dict[str, Any]]) -> set[int]:
    """Measured curves (mean ± std over seeds), the ANN line and published curves; the Ts drawn."""
    drawn: set[int] = set()
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in mine:
        series[_series_label(r)].append(r)
    for name, group in sorted(series.items()):
        per_t: dict[int, list[float]] = defaultdict(list)
        for r in group:
            for t, acc in r["metrics"]["snn_acc"].items():
                if is_number(acc):
                    per_t[int(t)].append(float(acc))
        if not per_t:
            continue
        ts, means, stds = _mean_std(per_t)
        line = _series(ax, ts, means, label=f"{name} (n={len(group)})")
        if len(ts) > 1 and any(stds):
            ax.fill_between(
                ts,
                [m - s for m, s in zip(means, stds)],
                [m + s for m, s in zip(means, stds)],
                color=line.get_color(),
                alpha=0.2,
            )
        drawn |= set(ts)
    anns = [r["metrics"]["ann_acc"] for r in mine if is_number(r["metrics"].get("ann_acc"))]
    if anns:
        _reference_line(ax, _mean_std({0: anns})[1][0], color="grey", linestyle=":", label="ANN (measured)")
    for r in theirs:
        acc = r["metrics"]["snn_acc"]
        ts = sorted(int(t) for t in acc)
        _series(ax, ts, [acc[str(t)] for t in ts], linestyle="--", marker="x", label=_series_label(r))
        drawn |= set(ts)
    return drawn


def build_accuracy_vs_t(
    records: Sequence[dict[str, Any]],
    published: Sequence[dict[str, Any]],
    skipped: list[str],
    all_published: bool = False,
) -> list[Figure]:
    measured = _with_variants([r for r in records if isinstance((r.get("metrics") or {}).get("snn_acc"), dict)])
    pub = [r for r in published if isinstance(r["metrics"].get("snn_acc"), dict) and len(r["metrics"]["snn_acc"]) > 1]
    pairs: dict[tuple, dict[str, list]] = defaultdict(dict)
    for r in measured:
        pairs[(r.get("dataset"), r.get("model"))].setdefault(_device_of(r), []).append(r)
    if all_published:
        for r in pub:
            pairs[(r["dataset"], r["model"])].setdefault("", [])
    if not pairs:
        skipped.append("accuracy vs T: no conversion records (metrics.snn_acc) among the inputs")
        return []
    plt = _plt()
    figures: list[Figure] = []
    for (dataset, model), by_card in sorted(pairs.items(), key=str):
        theirs = [r for r in pub if (r["dataset"], r["model"]) == (dataset, model)]
        cards = [c for c in by_card if c]
        for card, mine in sorted(by_card.items()):
            if not card and cards:
                continue  # published curves are drawn beside the measured ones already
            fig, ax = plt.subplots(figsize=(7, 4.5))
            ts = _draw_accuracy(ax, mine, theirs)
            if ts:
                _value_ticks(ax, ts, log_base=2)
            ax.set_xlabel("time steps T")
            ax.set_ylabel("top-1 accuracy (%)")
            ax.set_title(f"Accuracy vs T — {dataset} · {model} ({card or 'published numbers only'})")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
            stem = _slug("acc_vs_T", str(dataset), str(model), _card_suffix(card, cards))
            _keep(figures, fig, stem, skipped, f"accuracy vs T for {dataset} · {model}")
    return figures


# ------------------------------------------------------------------------------------------------
# Speed-up vs hidden size and vs active fraction


def _hidden(record: dict[str, Any]) -> Optional[float]:
    m = record.get("metrics") or {}
    if is_number(m.get("hidden")):
        return float(m["hidden"])
    params = ((record.get("config") or {}).get("model") or {}).get("params") or {}
    return float(params["hidden"]) if is_number(params.get("hidden")) else None


SET_POINT_FIELDS = ("target_active",)
SPEEDUP_FIELDS = ("bwd_speedup", "speedup", "backward_speedup")


def _is_dense(row: dict[str, Any]) -> bool:
    speedup = row.get("bwd_speedup", row.get("speedup"))
    return str(row.get("impl", "")).startswith("dense_pytorch") or (
        row.get("active_fraction") == 1.0 and speedup == 1.0
    )


def _at_main_setpoint(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows at the most common value of each set-point field (rows without the field are kept)."""
    out = list(rows)
    for name in SET_POINT_FIELDS:
        values = [r[name] for r in out if name in r]
        if values:
            main = max(set(values), key=lambda v: (values.count(v), -float(v) if is_number(v) else 0))
            out = [r for r in out if r.get(name, main) == main]
    return out


def _setpoint_note(rows: Sequence[dict[str, Any]]) -> str:
    kept = _at_main_setpoint(rows)
    notes = [
        f"{n.replace('_', ' ')} = {next(r[n] for r in kept if n in r)}"
        for n in SET_POINT_FIELDS
        if any(n in r for r in kept)
    ]
    return f", {', '.join(notes)}" if notes else ""


def _speedup_field(rows: Sequence[dict[str, Any]]) -> Optional[str]:
    return next((name for name in SPEEDUP_FIELDS if any(is_number(r.get(name)) for r in rows)), None)


def _bench_series(
    rows: Sequence[dict[str, Any]], x: str, y: str, exclude: Sequence[str] = ()
) -> dict[str, list[tuple[float, float]]]:
    """Points (x, y) per series; a series is every identifying field except x (impl, dtype ...)."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    skip = {x, "T", "N", "B", *exclude, *FREE_TEXT}
    for row in rows:
        if not (is_number(row.get(x)) and is_number(row.get(y))):
            continue
        ids = [
            (k, v)
            for k, v in sorted(row.items())
            if k not in skip and not is_measurement(k, v) and not isinstance(v, (dict, list))
        ]
        series[_ids_label(ids) or label(y)].append((float(row[x]), float(row[y])))
    return {k: sorted(v) for k, v in series.items()}


def _log_log(ax, xlabel: str, ylabel: str) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    # Speed-ups read as plain numbers (6×, 0.5×), not as 6×10⁰.
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def _published_hidden_points(ax, pub: Sequence[dict[str, Any]], dataset: Any) -> None:
    here = [
        (float(h.group(1)), r)
        for r in pub
        if r["dataset"] == dataset
        for h in [re.search(r"hidden=(\d+)", r.get("variant") or "")]
        if h
    ]
    if not here:
        return
    ax.plot(
        [h for h, _ in here],
        [r["metrics"]["bwd_speedup"] for _, r in here],
        linestyle="none",
        marker="x",
        color="black",
        label=f"{here[0][1]['method']} — published",
    )
    for h, r in here:
        note = ", ".join(p for p in (r.get("variant") or "").split(", ") if not p.startswith("hidden="))
        ax.annotate(note, (h, r["metrics"]["bwd_speedup"]), fontsize=6, xytext=(3, 3), textcoords="offset points")


def build_speedup_vs_hidden_records(
    training: Sequence[dict[str, Any]], pub: Sequence[dict[str, Any]], skipped: list[str]
) -> list[Figure]:
    plt = _plt()
    figures: list[Figure] = []
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in training:
        if _hidden(r) is not None:
            groups[(r.get("dataset"), r.get("model"), _device_of(r))].append(r)
    for (dataset, model, card), group in sorted(groups.items(), key=str):
        cards = sorted({c for d, m, c in groups if (d, m) == (dataset, model)})
        fig, ax = plt.subplots(figsize=(7, 4.5))
        series: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in group:
            series[_series_label(r, drop=("hidden",))][_hidden(r)].append(float(r["metrics"]["bwd_speedup"]))
        hidden_values = set()
        for name, points in sorted(series.items()):
            hs, means, _ = _mean_std(points)
            _series(ax, hs, means, label=name)
            hidden_values |= set(hs)
        _published_hidden_points(ax, pub, dataset)
        ax.set_xscale("log")
        _value_ticks(ax, hidden_values)
        _log_log(ax, "hidden neurons per layer", label("bwd_speedup"))
        ax.set_title(f"Backward speed-up vs hidden size — {dataset} · {model} ({card})")
        ax.legend(fontsize=7)
        stem = _slug("bwd_speedup_vs_hidden", str(dataset), str(model), _card_suffix(card, cards))
        _keep(figures, fig, stem, skipped, f"speed-up vs hidden size for {dataset} · {model}")
    return figures


def build_speedup_vs_hidden_bench(bench: BenchFile, skipped: list[str]) -> list[Figure]:
    field_name = _speedup_field(bench.rows)
    # The sweep over hidden sizes is at one set point (e.g. target_active = 0.01); other set points
    # belong to the active-fraction figure. Dense rows are the 1× reference line.
    rows = [r for r in _at_main_setpoint(bench.rows) if not _is_dense(r)]
    kinds = sorted({str(r.get("kind")) for r in rows if r.get("kind") is not None}) or [None]
    panels = [(k, [r for r in rows if k is None or str(r.get("kind")) == k]) for k in kinds]
    panels = [(k, _bench_series(rs, "hidden", field_name, exclude=("kind",) + SET_POINT_FIELDS)) for k, rs in panels]
    panels = [(k, ser) for k, ser in panels if ser]
    if not panels:
        return []
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (kind, series_b) in zip(axes[0], panels):
        for name, pts in sorted(series_b.items()):
            _series(ax, [p[0] for p in pts], [p[1] for p in pts], label=name)
        _reference_line(ax, 1.0, color="grey", linestyle=":", label="dense PyTorch BPTT (1×)")
        ax.set_xscale("log")
        _value_ticks(ax, {p[0] for pts in series_b.values() for p in pts})
        _log_log(ax, "hidden neurons per layer", "")
        ax.set_title(f"per {_human(kind)}" if kind else "", fontsize=10)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(label(field_name))
    fig.suptitle(
        f"Backward speed-up vs hidden size — {bench.name} benchmark{_setpoint_note(bench.rows)} ({bench.card})"
    )
    fig.tight_layout()
    figures: list[Figure] = []
    stem = _slug("bwd_speedup_vs_hidden", bench.name, bench.card)
    _keep(figures, fig, stem, skipped, f"speed-up vs hidden size of {bench.name}")
    return figures


def _active_fraction_points(training, sparse_files) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Per card: (active fraction, speed-up) points per series, from records and benchmark rows."""
    points: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in training:
        af = (r.get("metrics") or {}).get("active_fraction")
        if is_number(af) and af > 0:
            name = f"{r.get('dataset')} · {r.get('model')}: {_series_label(r, drop=('hidden',))}"
            points[_device_of(r)][name].append((float(af), float(r["metrics"]["bwd_speedup"])))
    for b in sparse_files:
        # One hidden size carries the sweep over active fractions: the one with the most of them.
        rows = [r for r in b.rows if is_number(r.get("active_fraction")) and 0 < r["active_fraction"] < 1]
        counts: dict[Any, set] = defaultdict(set)
        for r in rows:
            counts[r.get("hidden")].add(r["active_fraction"])
        if not counts:
            continue
        hidden = max(counts, key=lambda h: (len(counts[h]), str(h)))
        chosen = [r for r in rows if r.get("hidden") == hidden]
        where = f", hidden {hidden}" if hidden is not None else ""
        series = _bench_series(
            chosen, "active_fraction", _speedup_field(b.rows), exclude=("hidden",) + SET_POINT_FIELDS
        )
        for name, pts in series.items():
            points[b.card][f"{b.name} benchmark{where}: {name}"].extend(pts)
    return points


def _published_active_points(ax, pub: Sequence[dict[str, Any]]) -> None:
    pts = sorted(
        (r["metrics"]["active_fraction"], r["metrics"]["bwd_speedup"], r["dataset"], r.get("variant") or "")
        for r in pub
        if is_number(r["metrics"].get("active_fraction"))
    )
    if not pts:
        return
    # Points from different datasets and settings: markers with labels, not one curve.
    ax.plot(
        [p[0] for p in pts],
        [p[1] for p in pts],
        linestyle="none",
        marker="x",
        color="black",
        label="SparseProp — published",
    )
    for af, speed, dataset, variant in pts:
        hidden = re.search(r"hidden=(\d+)", variant)
        ax.annotate(
            f"{dataset}{' h' + hidden.group(1) if hidden else ''}",
            (af, speed),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )


def build_speedup_vs_active(training, sparse_files, pub, skipped: list[str]) -> list[Figure]:
    by_card = _active_fraction_points(training, sparse_files)
    if not by_card:
        skipped.append(
            "speed-up vs active fraction: no records or benchmark rows with both "
            "active_fraction and a backward speed-up"
        )
        return []
    plt = _plt()
    figures: list[Figure] = []
    for card, points in sorted(by_card.items()):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, pts in sorted(points.items()):
            pts = sorted(pts)
            _series(ax, [p[0] for p in pts], [p[1] for p in pts], label=name)
        _published_active_points(ax, pub)
        ax.set_xscale("log")
        _log_log(ax, "fraction of neurons active in the backward pass", label("bwd_speedup"))
        sources = sorted({name.split(":")[0] for name in points})
        ax.set_title(f"Backward speed-up vs active fraction — {', '.join(sources)} ({card})")
        ax.legend(fontsize=7)
        stem = _slug("bwd_speedup_vs_active_fraction", _card_suffix(card, list(by_card)))
        _keep(figures, fig, stem, skipped, f"speed-up vs active fraction on {card}")
    return figures


# ------------------------------------------------------------------------------------------------
# Bandwidth vs copy ceiling


FRACTION = "frac_of_ceiling"  # achieved bandwidth / the copy ceiling measured in the same run


def _bandwidth_rows(bench: BenchFile) -> list[dict[str, Any]]:
    return [r for r in bench.rows if is_number(r.get(FRACTION)) and is_number(r.get("T")) and r.get("impl") != "copy"]


def _bandwidth_bars(bench: BenchFile, rows: Sequence[dict[str, Any]]):
    """One time step only: a bar per measured row (e.g. per layer), not a one-point line."""
    plt = _plt()
    ids = [
        [
            (k, v)
            for k, v in sorted(r.items())
            if k not in ("T", *FREE_TEXT) and not is_measurement(k, v) and not isinstance(v, (dict, list))
        ]
        for r in rows
    ]
    # What every bar shares (the kernel) goes to the title; the bars are labelled by what differs.
    shared = set.intersection(*(set(i) for i in ids)) if len(ids) > 1 else set()
    labels = [_ids_label([kv for kv in i if kv not in shared]) for i in ids]
    common = _ids_label(sorted(shared, key=str))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(rows) + 2), 4.5))
    ax.bar(range(len(rows)), [float(r[FRACTION]) for r in rows], color="tab:blue")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    _reference_line(ax, 1.0, color="black", linewidth=1, label="measured copy ceiling")
    ax.set_ylabel(label(FRACTION))
    ax.legend(fontsize=8)
    what = f"{common} " if common else ""
    ax.set_title(f"Kernel bandwidth vs the copy ceiling, {what}at T = {rows[0]['T']:g} — {bench.name} ({bench.card})")
    fig.tight_layout()
    return fig


def _bandwidth_lines(bench: BenchFile, rows: Sequence[dict[str, Any]]):
    """A panel per (mode, N), a line per implementation (colour) and dtype (line style)."""
    from matplotlib.lines import Line2D

    plt = _plt()
    modes = sorted({str(r.get("mode")) for r in rows if r.get("mode") is not None}) or [None]
    ns = sorted({r.get("N") for r in rows if is_number(r.get("N"))}) or [None]
    fig, axes = plt.subplots(len(modes), len(ns), figsize=(6 * len(ns), 4.2 * len(modes)), squeeze=False, sharey=True)
    impls = sorted({str(r.get("impl")) for r in rows})
    dtypes = sorted({str(r["dtype"]) for r in rows if r.get("dtype") is not None}) or [None]
    cmap = plt.get_cmap("tab10")
    color = {impl: cmap(k % 10) for k, impl in enumerate(impls)}
    style = {d: ["-", "--", ":", "-."][k % 4] for k, d in enumerate(dtypes)}
    for i, mode in enumerate(modes):
        for j, n in enumerate(ns):
            ax = axes[i][j]
            for impl in impls:
                for dtype in dtypes:
                    pts = sorted(
                        (float(r["T"]), float(r[FRACTION]))
                        for r in rows
                        if str(r.get("impl")) == impl
                        and (dtype is None or str(r.get("dtype")) == dtype)
                        and (mode is None or str(r.get("mode")) == mode)
                        and (n is None or r.get("N") == n)
                    )
                    if pts:
                        _series(
                            ax,
                            [p[0] for p in pts],
                            [p[1] for p in pts],
                            markersize=3,
                            color=color[impl],
                            linestyle=style[dtype],
                            label=_human(impl) + (f", {dtype}" if dtype else ""),
                        )
            _reference_line(ax, 1.0, color="black", linewidth=1)
            _value_ticks(ax, {float(r["T"]) for r in rows}, log_base=2)
            ax.set_xlabel("time steps T")
            where = [f"{_human(mode)}" if mode else "", f"N = {n:,} neurons per step" if n is not None else ""]
            ax.set_title(", ".join(w for w in where if w) or "all rows", fontsize=10)
            ax.grid(True, alpha=0.3)
        axes[i][0].set_ylabel(label(FRACTION))
    handles = [Line2D([], [], color=color[k], label=_human(k)) for k in impls]
    handles += [Line2D([], [], color="grey", linestyle=style[d], label=d) for d in dtypes if d is not None]
    handles.append(Line2D([], [], color="black", linewidth=1, label="measured copy ceiling"))
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"Kernel bandwidth as a fraction of the measured copy ceiling — {bench.name} ({bench.card})")
    fig.tight_layout()
    return fig


def build_bandwidth(bench: Sequence[BenchFile], skipped: list[str]) -> list[Figure]:
    figures: list[Figure] = []
    for b in bench:
        rows = _bandwidth_rows(b)
        if not rows:
            continue
        one_t = len({float(r["T"]) for r in rows}) == 1
        fig = _bandwidth_bars(b, rows) if one_t else _bandwidth_lines(b, rows)
        _keep(figures, fig, _slug("bandwidth_vs_copy", b.name, b.card), skipped, f"bandwidth of {b.name}")
    if not figures:
        skipped.append(
            "bandwidth vs copy ceiling: no benchmark rows with T and a fraction of the copy "
            "bandwidth (frac_of_ceiling) — run `snnbench bench neuron --out DIR`"
        )
    return figures


def build_figures(
    records: Sequence[dict[str, Any]],
    bench: Sequence[BenchFile],
    published: Sequence[dict[str, Any]] = (),
    all_published: bool = False,
) -> tuple[list[Figure], list[str]]:
    """Every figure the inputs support, unsaved, and the reasons for the ones skipped."""
    skipped: list[str] = []
    figures = build_accuracy_vs_t(records, published, skipped, all_published=all_published)
    training = _with_variants([r for r in records if is_number((r.get("metrics") or {}).get("bwd_speedup"))])
    sparse_files = [b for b in bench if _speedup_field(b.rows)]
    pub = [r for r in published if is_number(r["metrics"].get("bwd_speedup"))]
    hidden = build_speedup_vs_hidden_records(training, pub, skipped)
    for b in sparse_files:
        hidden += build_speedup_vs_hidden_bench(b, skipped)
    if not hidden:
        skipped.append(
            "speed-up vs hidden size: no training records with hidden and bwd_speedup, "
            "and no benchmark rows with hidden and a speed-up"
        )
    figures += hidden
    figures += build_speedup_vs_active(training, sparse_files, pub, skipped)
    figures += build_bandwidth(bench, skipped)
    return figures, skipped


def make_plots(
    records: Sequence[dict[str, Any]],
    bench: Sequence[BenchFile],
    out: Path,
    published: Sequence[dict[str, Any]] = (),
    all_published: bool = False,
) -> PlotReport:
    """Write every figure the inputs support; ``published`` are records from published.published_records."""
    figures, skipped = build_figures(records, bench, published, all_published)
    report = PlotReport(skipped=skipped)
    out = Path(out)
    if figures:
        out.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    for figure in figures:
        for fmt in FORMATS:
            path = output_file(out / f"{figure.name}.{fmt}", "figure file")  # a FIFO there would block
            figure.fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
            report.written.append(path)
        plt.close(figure.fig)
    return report
