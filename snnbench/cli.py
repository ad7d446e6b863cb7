"""The ``snnbench`` command line. Thin: each verb parses, calls one function and renders the result.

Exit codes: 0 success, 1 a cell failed or a gate found a regression, 2 unusable input (a bad suite
file, missing data, unreadable results).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

app = typer.Typer(
    name="snnbench",
    help="Benchmark spiking neural networks: accuracy vs time steps, wall time, sparse-backward speed-up.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
bench_app = typer.Typer(
    help="Kernel and method micro-benchmarks written as JSON.\n\nExample: snnbench bench neuron --device cuda --out results/bench/h200",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(bench_app, name="bench")

# Piped output (CI logs, files) gets a wide fixed width so leaderboard columns are not truncated.
console = Console() if sys.stdout.isatty() else Console(width=200)
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _load_suite_or_exit(path: Path):
    from snnbench.config import SuiteError, load_suite

    try:
        return load_suite(path)
    except SuiteError as err:
        _fail(str(err))


@app.command()
def validate(suite: Path = typer.Argument(..., help="YAML suite file")) -> None:
    """Check a suite file and list the cells it would run.

    Example: snnbench validate suites/digits.yaml
    """
    from snnbench.runner.cells import expand

    parsed = _load_suite_or_exit(suite)
    cells = expand(parsed)
    console.print(f"{suite}: valid suite '{parsed.name}' ({parsed.track} track), {len(cells)} cells, "
                  f"T = {parsed.timesteps}, results → {parsed.results_path()}", highlight=False)
    for cell in cells:
        console.print(f"  {cell.key}", highlight=False)


@app.command()
def run(
    suite: Path = typer.Argument(..., help="YAML suite file"),
    force: bool = typer.Option(False, "--force", help="rerun cells that are already recorded"),
    results_dir: Optional[Path] = typer.Option(None, "--results-dir", help="write <dir>/<suite>.jsonl instead of the suite's output"),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="dataset folder (else SNNBENCH_DATA, else ~/.cache/snnbench/data)"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="trained-model cache (else SNNBENCH_CACHE, else ~/.cache/snnbench)"),
    executor: str = typer.Option("local", "--executor", help="local or ray"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (with --executor ray); default: start a local Ray"),
    compare_reference: bool = typer.Option(False, "--compare-reference", help="also time the official FTBC loop on the same batches"),
) -> None:
    """Run every cell of a suite that is not yet recorded and append one record per cell.

    Example: snnbench run suites/digits.yaml --results-dir build/demo
    """
    from snnbench.data.paths import DatasetMissingError
    from snnbench.runner.cli_run import run_with_progress
    from snnbench.runner.store import ResultsWriteError

    parsed = _load_suite_or_exit(suite)
    try:
        code = run_with_progress(
            parsed,
            console=console,
            results_dir=results_dir,
            force=force,
            data_root=data_root,
            cache_dir=cache_dir,
            executor=executor,
            address=address,
            compare_reference=compare_reference,
        )
    except DatasetMissingError as err:
        _fail(str(err))
    except ResultsWriteError as err:
        _fail(str(err))
    except (ValueError, RuntimeError) as err:
        _fail(f"{suite}: {err}")
    raise typer.Exit(code)


@app.command()
def table(
    results: List[Path] = typer.Argument(..., help="one or more results .jsonl files"),
    fmt: str = typer.Option("rich", "--format", help="rich, md, csv, html or latex"),
) -> None:
    """Render results as a leaderboard: one row per (dataset, model, method), mean ± std over seeds.

    Example: snnbench table results/runs/digits.jsonl --format md
    """
    from snnbench.report.table import leaderboard, render_rich
    from snnbench.runner.store import latest_by_key, read_records

    records = []
    for path in results:
        if not path.exists():
            _fail(f"{path}: results file not found")
        report = read_records(path, warn=False)
        for problem in report.problems:
            err_console.print(f"[yellow]warning:[/] {problem}", highlight=False)
        records.extend(report.records)
    board = leaderboard(latest_by_key(records))
    if fmt == "rich":
        console.print(render_rich(board, title=", ".join(str(p) for p in results)))
    elif fmt == "md":
        console.print(board.to_markdown(index=False) if hasattr(board, "to_markdown") else board.to_string(index=False))
    elif fmt == "csv":
        sys.stdout.write(board.to_csv(index=False))
    else:
        _fail(f"--format {fmt!r}: expected one of rich, md, csv")


@app.command()
def env() -> None:
    """Show Python, torch, triton and torchvision versions, the CUDA device and Triton's mode.

    Example: snnbench env
    """
    from snnbench.runner.env import environment

    info = environment()
    hw = info["hardware"]
    lines = [
        ("python", info["python"]),
        ("torch", info["torch"]),
        ("triton", info["triton"] or "not installed"),
        ("torchvision", info["torchvision"]),
        ("snnbench", f"{info['snnbench']} ({info['git_sha'] or 'no git'})"),
        ("device", f"cuda: {hw['name']} (sm {hw['capability']}, {hw['memory_gib']} GiB)" if hw["device"] == "cuda" else "cpu (no CUDA device)"),
        ("triton interpreter", "on (TRITON_INTERPRET=1)" if info["triton_interpreter"] else "off"),
        ("data root", os.environ.get("SNNBENCH_DATA", "~/.cache/snnbench/data (SNNBENCH_DATA unset)")),
    ]
    for name, value in lines:
        console.print(f"{name:>18}: {value}", highlight=False)


def _bench_out(out: Optional[Path]) -> Optional[Path]:
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    return out


@bench_app.command("neuron")
def bench_neuron(
    device: str = typer.Option("auto", help="cuda, cpu or auto"),
    out: Optional[Path] = typer.Option(None, help="folder for neuron.json"),
    quick: bool = typer.Option(False, help="small sizes (a CPU smoke run)"),
) -> None:
    """Multi-step LIF/IF kernels vs a PyTorch loop, torch.compile and SpikingJelly, with the copy ceiling.

    Example: snnbench bench neuron --device cuda --out results/bench/h200
    """
    from snnbench.bench.neuron import run_neuron_bench

    run_neuron_bench(device=device, out=_bench_out(out), quick=quick, console=console)


@bench_app.command("sparse")
def bench_sparse(
    device: str = typer.Option("auto", help="cuda, cpu or auto"),
    out: Optional[Path] = typer.Option(None, help="folder for sparse.json"),
    quick: bool = typer.Option(False, help="small sizes (a CPU smoke run)"),
) -> None:
    """Sparse (SparseProp, LocalZO) vs dense BPTT backward of spiking MLP layers over hidden sizes.

    Example: snnbench bench sparse --device cuda --out results/bench/h200
    """
    from snnbench.bench.sparse import run_sparse_bench

    run_sparse_bench(device=device, out=_bench_out(out), quick=quick, console=console)


@bench_app.command("ftbc")
def bench_ftbc(
    device: str = typer.Option("auto", help="cuda, cpu or auto"),
    out: Optional[Path] = typer.Option(None, help="folder for ftbc.json"),
    quick: bool = typer.Option(False, help="small sizes (a CPU smoke run)"),
    steps: int = typer.Option(32, help="time steps T"),
) -> None:
    """Fast layer-major FTBC calibration vs the official per-layer loop (VGG-16, CIFAR-100 shapes).

    Example: snnbench bench ftbc --device cuda --out results/bench/h200
    """
    from snnbench.bench.ftbc import run_ftbc_bench

    run_ftbc_bench(device=device, out=_bench_out(out), quick=quick, steps=steps, console=console)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
