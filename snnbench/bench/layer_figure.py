"""The figure of ``snnbench bench layer``: time vs n per library, forward and forward+backward,
log-log, one line per library (the Open Neuromorphic protocol's Linear + LIF layer rows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_layer(result: dict[str, Any], path: Path) -> Path:
    """Write ``path`` (PNG) from a layer result: one panel per mode, one line per implementation
    (fp32, the first thread count of the run); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["shape"] == "linear" and r["part"] == "layer" and r.get("median_ms")]
    threads = next((r.get("threads") for r in rows), None)
    rows = [r for r in rows if r["dtype"] == "fp32" and r.get("threads") == threads]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, mode in zip(axes, ("fwd", "fwd_bwd")):
        for impl in sorted({r["impl"] for r in rows}):
            points = sorted((r["n"], r["median_ms"]) for r in rows if r["impl"] == impl and r["mode"] == mode)
            if points:
                style = {"linewidth": 2.5, "color": "black"} if impl == "snnbench" else {}
                ax.plot(*zip(*points), marker="o", label=impl, **style)
        ax.set(xscale="log", yscale="log", xlabel="n (Linear(n, n) + LIF)", title=mode.replace("_", "+"))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("median ms per call")
    axes[1].legend(fontsize=8)
    T = rows[0]["T"] if rows else "?"
    card = result.get("environment", {}).get("hardware", {}).get("name") or result.get("device")
    fig.suptitle(f"spiking layer, T = {T}, fp32, on {card}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
