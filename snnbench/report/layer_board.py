"""The leaderboard's spiking-layer section: the Open Neuromorphic published figures (another card,
another protocol) in one table with snnbench's measured ``bench layer`` rows, library by library.

Measured columns are the median forward+backward ms of the Linear(n, n) + LIF layer in fp32, one per
(card, n, T, threads); the published column is the source's RTX 4090 figure at its n. Which is which
is in every column's header.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from snnbench.report.inputs import BenchFile
from snnbench.report.metrics import short_number
from snnbench.report.published import PublishedSource
from snnbench.report.table import pipe_table

SOURCE_ID = "open-neuromorphic-layer"


def _measured_columns(bench_files: Sequence[BenchFile]) -> dict[str, dict[str, float]]:
    """{column header: {library: median ms}} of every layer bench file's fp32 fwd+bwd layer rows."""
    columns: dict[str, dict[str, float]] = {}
    for bench in bench_files:
        if bench.name != "layer":
            continue
        for r in bench.rows:
            if (r.get("shape"), r.get("part"), r.get("mode"), r.get("dtype")) != ("linear", "layer", "fwd_bwd", "fp32"):
                continue
            if not r.get("median_ms"):
                continue
            threads = f", {r['threads']} thr" if r.get("threads") else ""
            head = f"measured {bench.card}, n={r['n']:,}, T={r['T']}{threads}"
            columns.setdefault(head, {})[r["impl"]] = float(r["median_ms"])
    return columns


def _cell(value: Optional[float]) -> str:
    return "" if value is None else short_number(value)


def layer_section(bench_files: Sequence[BenchFile], sources: Sequence[PublishedSource]) -> str:
    """Markdown: one row per library, the published figure(s) then every measured column."""
    source = next((s for s in sources if s.id == SOURCE_ID), None)
    measured = _measured_columns(bench_files)
    if source is None and not measured:
        return ""
    published: dict[str, list[dict[str, Any]]] = {}
    for row in source.bench_rows if source else []:
        published.setdefault(str(row.get("peer") or row["impl"]), []).append(row)
    seen = {lib for col in measured.values() for lib in col}
    ours = sorted(lib for lib in seen if lib.startswith("snnbench"))
    libraries = list(dict.fromkeys([*ours, *published, *sorted(seen)]))
    pub_head = "published RTX 4090, n=16,384, T=500 (their protocol)"
    header = ["library", "published as", pub_head, *measured]
    rows = []
    for lib in libraries:
        quoted = published.get(lib, [])
        text = "; ".join(f"{q['impl']} {q['dtype']}" for q in quoted)
        value = "; ".join(_cell(q["ms"]) for q in quoted)
        rows.append(
            [f"**{lib}**" if lib == "snnbench" else lib, text, value, *(_cell(measured[c].get(lib)) for c in measured)]
        )
    lines = [
        "## Spiking layer: Linear(n, n) + LIF, forward+backward (ms)\n",
        "Published figures are quoted from the Open Neuromorphic benchmark (RTX 4090, host-timed without "
        "synchronisation, each library with its own LIF); measured columns are `snnbench bench layer` "
        "(every library checked to the same neuron first, harness timing). Different cards and protocols: "
        "compare ratios within a column, not across.\n",
        *pipe_table(header, rows, left=2),
    ]
    return "\n".join(lines) + "\n"
