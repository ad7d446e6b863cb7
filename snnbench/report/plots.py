"""Figures from results and benchmark files, written as PNG and SVG (matplotlib, Agg backend).

- accuracy vs T per method, one figure per (dataset, model); published curves dashed;
- backward speed-up vs hidden size (training records, sparse benchmark rows);
- backward speed-up vs fraction of neurons active in the backward (same sources, published points);
- kernel bandwidth as a fraction of the measured copy ceiling (neuron benchmark rows).

A figure without data is skipped with a message saying why, never drawn empty.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from snnbench.report.benchrows import FREE_TEXT, is_measurement
from snnbench.report.inputs import BenchFile, card_name
from snnbench.report.metrics import is_number

FORMATS = ("png", "svg")


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


def _save(fig, out: Path, name: str, report: PlotReport) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for fmt in FORMATS:
        path = out / f"{name}.{fmt}"
        fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
        report.written.append(path)
    _plt().close(fig)


def _cards(records: Sequence[dict[str, Any]]) -> str:
    cards = sorted({card_name(r.get("env")) for r in records} - {""})
    return ", ".join(cards) if cards else "card unknown"


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def _series_label(record: dict[str, Any], drop: Sequence[str] = ()) -> str:
    """``method (variant)``; ``drop`` removes ``key=value`` parts of the variant (e.g. the x axis)."""
    label = str(record.get("method"))
    parts = [p for p in str(record.get("variant") or "").split(", ") if p and p.split("=")[0] not in drop]
    variant = ", ".join(parts)
    if record.get("source") == "published":
        name = record.get("label") or label
        return f"{name}{' (' + variant + ')' if variant else ''} — published"
    return f"{label}{' (' + variant + ')' if variant else ''}"


def _with_variants(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    from snnbench.report.table import ROW_KEYS, assign_variants

    variants = assign_variants(list(records), ROW_KEYS)
    return [dict(r, variant=v) for r, v in zip(records, variants)]


# ------------------------------------------------------------------------------------------------
# Accuracy vs T


def plot_accuracy_vs_t(
    records: Sequence[dict[str, Any]],
    published: Sequence[dict[str, Any]],
    out: Path,
    report: PlotReport,
    all_published: bool = False,
) -> None:
    measured = [r for r in records if isinstance((r.get("metrics") or {}).get("snn_acc"), dict)]
    pub = [r for r in published if isinstance(r["metrics"].get("snn_acc"), dict) and len(r["metrics"]["snn_acc"]) > 1]
    pairs = {(r.get("dataset"), r.get("model")) for r in measured}
    if all_published:
        pairs |= {(r["dataset"], r["model"]) for r in pub}
    if not pairs:
        report.skipped.append("accuracy vs T: no conversion records (metrics.snn_acc) among the inputs")
        return
    plt = _plt()
    measured = _with_variants(measured)
    for dataset, model in sorted(pairs, key=str):
        mine = [r for r in measured if (r.get("dataset"), r.get("model")) == (dataset, model)]
        theirs = [r for r in pub if (r["dataset"], r["model"]) == (dataset, model)]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        series: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in mine:
            series[_series_label(r)].append(r)
        for label, group in sorted(series.items()):
            per_t: dict[int, list[float]] = defaultdict(list)
            for r in group:
                for t, acc in r["metrics"]["snn_acc"].items():
                    if is_number(acc):
                        per_t[int(t)].append(float(acc))
            ts = sorted(per_t)
            stats = [_mean_std(per_t[t]) for t in ts]
            means = [m for m, _ in stats]
            line, = ax.plot(ts, means, marker="o", linestyle="-", label=f"{label} (n={len(group)})")
            if any(s > 0 for _, s in stats):
                ax.fill_between(ts, [m - s for m, s in stats], [m + s for m, s in stats],
                                color=line.get_color(), alpha=0.2)
        anns = [r["metrics"]["ann_acc"] for r in mine if is_number(r["metrics"].get("ann_acc"))]
        if anns:
            ax.axhline(sum(anns) / len(anns), color="grey", linestyle=":", label="ANN (measured)")
        for r in theirs:
            acc = r["metrics"]["snn_acc"]
            ts = sorted(int(t) for t in acc)
            ax.plot(ts, [acc[str(t)] for t in ts], linestyle="--", marker="x", label=_series_label(r))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("time steps T")
        ax.set_ylabel("top-1 accuracy (%)")
        where = _cards(mine) if mine else "published numbers only"
        ax.set_title(f"Accuracy vs T — {dataset} · {model} ({where})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        _save(fig, out, _slug("acc_vs_T", str(dataset), str(model)), report)


# ------------------------------------------------------------------------------------------------
# Speed-up vs hidden size and vs active fraction


def _hidden(record: dict[str, Any]) -> Optional[float]:
    m = record.get("metrics") or {}
    if is_number(m.get("hidden")):
        return float(m["hidden"])
    params = ((record.get("config") or {}).get("model") or {}).get("params") or {}
    return float(params["hidden"]) if is_number(params.get("hidden")) else None


SET_POINT_FIELDS = ("target_active",)


def _is_dense(row: dict[str, Any]) -> bool:
    speedup = row.get("bwd_speedup", row.get("speedup"))
    return str(row.get("impl", "")).startswith("dense_pytorch") or (row.get("active_fraction") == 1.0 and speedup == 1.0)


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
    notes = [f"{n} = {next(r[n] for r in kept if n in r)}" for n in SET_POINT_FIELDS if any(n in r for r in kept)]
    return f", {', '.join(notes)}" if notes else ""


def _speedup_field(rows: Sequence[dict[str, Any]]) -> Optional[str]:
    for name in ("bwd_speedup", "speedup", "backward_speedup"):
        if any(is_number(r.get(name)) for r in rows):
            return name
    return None


def _bench_series(
    rows: Sequence[dict[str, Any]], x: str, y: str, exclude: Sequence[str] = ()
) -> dict[str, list[tuple[float, float]]]:
    """Points (x, y) per line; a line is every identifying field except x (e.g. impl, dtype)."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    skip = {x, "T", "N", "B", *exclude, *FREE_TEXT}
    for row in rows:
        if not (is_number(row.get(x)) and is_number(row.get(y))):
            continue
        ids = [f"{k}={v}" for k, v in sorted(row.items())
               if k not in skip and not is_measurement(k, v) and not isinstance(v, (dict, list))]
        series[", ".join(ids) or y].append((float(row[x]), float(row[y])))
    return {k: sorted(v) for k, v in series.items()}


def plot_speedups(
    records: Sequence[dict[str, Any]],
    bench: Sequence[BenchFile],
    published: Sequence[dict[str, Any]],
    out: Path,
    report: PlotReport,
) -> None:
    plt = _plt()
    training = _with_variants([r for r in records if is_number((r.get("metrics") or {}).get("bwd_speedup"))])
    sparse_files = [b for b in bench if _speedup_field(b.rows)]
    pub = [r for r in published if is_number(r["metrics"].get("bwd_speedup"))]

    # vs hidden size -------------------------------------------------------------------------------
    drew_hidden = False
    by_dataset: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in training:
        if _hidden(r) is not None:
            by_dataset[(r.get("dataset"), r.get("model"))].append(r)
    for (dataset, model), group in sorted(by_dataset.items(), key=str):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        series: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in group:
            series[_series_label(r, drop=("hidden",))][_hidden(r)].append(float(r["metrics"]["bwd_speedup"]))
        for label, points in sorted(series.items()):
            hs = sorted(points)
            ax.plot(hs, [_mean_std(points[h])[0] for h in hs], marker="o", label=label)
        pub_here = [(float(h.group(1)), r) for r in pub if r["dataset"] == dataset
                    for h in [re.search(r"hidden=(\d+)", r.get("variant") or "")] if h]
        if pub_here:
            ax.plot([h for h, _ in pub_here], [r["metrics"]["bwd_speedup"] for _, r in pub_here],
                    linestyle="none", marker="x", color="black", label=f"{pub_here[0][1]['method']} — published")
            for h, r in pub_here:
                note = ", ".join(p for p in (r.get("variant") or "").split(", ") if not p.startswith("hidden="))
                ax.annotate(note, (h, r["metrics"]["bwd_speedup"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("hidden neurons per layer")
        ax.set_ylabel("backward speed-up vs dense BPTT (×)")
        ax.set_title(f"Backward speed-up vs hidden size — {dataset} · {model} ({_cards(group)})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        _save(fig, out, _slug("bwd_speedup_vs_hidden", str(dataset), str(model)), report)
        drew_hidden = True
    for b in sparse_files:
        field_name = _speedup_field(b.rows)
        # The sweep over hidden sizes is at one set point (e.g. target_active = 0.01); other set
        # points belong to the active-fraction figure. Dense rows are the 1× reference line.
        rows = [r for r in _at_main_setpoint(b.rows) if not _is_dense(r)]
        kinds = sorted({str(r.get("kind")) for r in rows if r.get("kind") is not None}) or [None]
        panels = [(k, [r for r in rows if k is None or str(r.get("kind")) == k]) for k in kinds]
        panels = [(k, _bench_series(rs, "hidden", field_name, exclude=("kind",) + SET_POINT_FIELDS)) for k, rs in panels]
        panels = [(k, ser) for k, ser in panels if ser]
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
        for ax, (kind, series_b) in zip(axes[0], panels):
            for label, pts in sorted(series_b.items()):
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
            ax.axhline(1.0, color="grey", linestyle=":", label="dense PyTorch BPTT (1×)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("hidden neurons per layer")
            ax.set_title(f"{kind}" if kind else "", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel(f"{field_name.replace('_', ' ')} vs dense BPTT (×)")
        fig.suptitle(f"Backward speed-up vs hidden size — {b.name} benchmark{_setpoint_note(b.rows)} ({b.card})")
        fig.tight_layout()
        _save(fig, out, _slug("bwd_speedup_vs_hidden", b.name, b.card), report)
        drew_hidden = True
    if not drew_hidden:
        report.skipped.append("speed-up vs hidden size: no training records with hidden and bwd_speedup, "
                              "and no benchmark rows with hidden and a speed-up")

    # vs active fraction ---------------------------------------------------------------------------
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    cards = []
    for r in training:
        af = (r.get("metrics") or {}).get("active_fraction")
        if is_number(af) and af > 0:
            points[f"{r.get('dataset')}: {_series_label(r, drop=('hidden',))}"].append((float(af), float(r["metrics"]["bwd_speedup"])))
            cards.append(_cards([r]))
    for b in sparse_files:
        # One hidden size carries the sweep over active fractions: the one with the most of them.
        sparse_rows = [r for r in b.rows if is_number(r.get("active_fraction")) and 0 < r["active_fraction"] < 1]
        counts: dict[Any, set] = defaultdict(set)
        for r in sparse_rows:
            counts[r.get("hidden")].add(r["active_fraction"])
        if not counts:
            continue
        hidden = max(counts, key=lambda h: (len(counts[h]), str(h)))
        chosen = [r for r in sparse_rows if r.get("hidden") == hidden]
        where = f"hidden={hidden}" if hidden is not None else ""
        for label, pts in _bench_series(chosen, "active_fraction", _speedup_field(b.rows), exclude=("hidden",) + SET_POINT_FIELDS).items():
            points[f"{b.name} bench ({where}): {label}"].extend(pts)
            cards.append(b.card)
    if not points:
        report.skipped.append("speed-up vs active fraction: no records or benchmark rows with both "
                              "active_fraction and a backward speed-up")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, pts in sorted(points.items()):
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle="-" if len(pts) > 1 else "", label=label)
    pub_pts = sorted((r["metrics"]["active_fraction"], r["metrics"]["bwd_speedup"], r["dataset"], r.get("variant") or "")
                     for r in pub if is_number(r["metrics"].get("active_fraction")))
    if pub_pts:
        # Points from different datasets and settings: markers with labels, not one curve.
        ax.plot([p[0] for p in pub_pts], [p[1] for p in pub_pts], linestyle="none", marker="x", color="black",
                label="SparseProp — published")
        for af, speed, dataset, variant in pub_pts:
            hidden = re.search(r"hidden=(\d+)", variant)
            ax.annotate(f"{dataset}{' h' + hidden.group(1) if hidden else ''}", (af, speed), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("fraction of neurons active in the backward pass")
    ax.set_ylabel("backward speed-up vs dense BPTT (×)")
    ax.set_title(f"Backward speed-up vs active fraction ({', '.join(sorted(set(cards)))})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, out, "bwd_speedup_vs_active_fraction", report)


# ------------------------------------------------------------------------------------------------
# Bandwidth vs copy ceiling


FRACTION_FIELDS = ("frac_of_ceiling", "frac_of_copy", "frac_copy_bw")


def plot_bandwidth(bench: Sequence[BenchFile], out: Path, report: PlotReport) -> None:
    """One figure per benchmark file: a panel per (mode, N), a line per implementation and dtype."""
    plt = _plt()
    drew = False
    for b in bench:
        frac = next((f for f in FRACTION_FIELDS if any(is_number(r.get(f)) for r in b.rows)), None)
        rows = [r for r in b.rows if frac and is_number(r.get(frac)) and is_number(r.get("T")) and r.get("impl") != "copy"]
        if not rows:
            continue
        modes = sorted({str(r.get("mode")) for r in rows if r.get("mode") is not None}) or [None]
        ns = sorted({r.get("N") for r in rows if is_number(r.get("N"))}) or [None]
        fig, axes = plt.subplots(len(modes), len(ns), figsize=(6 * len(ns), 4.2 * len(modes)),
                                 squeeze=False, sharey=True)
        styles = ["-", "--", ":", "-."]
        impls = sorted({str(r.get("impl")) for r in rows})
        dtypes = sorted({str(r.get("dtype")) for r in rows})
        cmap = plt.get_cmap("tab10")
        color = {impl: cmap(k % 10) for k, impl in enumerate(impls)}
        style = {d: styles[k % len(styles)] for k, d in enumerate(dtypes)}
        for i, mode in enumerate(modes):
            for j, n in enumerate(ns):
                ax = axes[i][j]
                for impl in impls:
                    for dtype in dtypes:
                        pts = sorted((float(r["T"]), float(r[frac])) for r in rows
                                     if str(r.get("impl")) == impl and str(r.get("dtype")) == dtype
                                     and (mode is None or str(r.get("mode")) == mode)
                                     and (n is None or r.get("N") == n))
                        if pts:
                            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3,
                                    color=color[impl], linestyle=style[dtype])
                ax.axhline(1.0, color="black", linewidth=1)
                ax.set_xscale("log", base=2)
                ax.set_xlabel("time steps T")
                where = [f"mode {mode}" if mode else "", f"N = {n:,} per step" if n is not None else ""]
                ax.set_title(", ".join(w for w in where if w) or "all rows", fontsize=10)
                ax.grid(True, alpha=0.3)
            axes[i][0].set_ylabel("bandwidth / copy bandwidth")
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=color[k], label=k) for k in impls]
        handles += [Line2D([], [], color="grey", linestyle=style[d], label=d) for d in dtypes]
        handles.append(Line2D([], [], color="black", linewidth=1, label="measured copy ceiling"))
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
        fig.suptitle(f"Kernel bandwidth as a fraction of the measured copy ceiling — {b.name} ({b.card})")
        fig.tight_layout()
        _save(fig, out, _slug("bandwidth_vs_copy", b.name, b.card), report)
        drew = True
    if not drew:
        report.skipped.append("bandwidth vs copy ceiling: no benchmark rows with T and a fraction of the copy "
                              "bandwidth (frac_of_copy) — run `snnbench bench neuron --out DIR`")


def make_plots(
    records: Sequence[dict[str, Any]],
    bench: Sequence[BenchFile],
    out: Path,
    published: Sequence[dict[str, Any]] = (),
    all_published: bool = False,
) -> PlotReport:
    """Every figure the inputs support; ``published`` are records from published.published_records."""
    report = PlotReport()
    out = Path(out)
    plot_accuracy_vs_t(records, published, out, report, all_published=all_published)
    plot_speedups(records, bench, published, out, report)
    plot_bandwidth(bench, out, report)
    return report

