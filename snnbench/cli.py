"""The ``snnbench`` command line. Thin: each verb parses, calls one function and renders the result.

Exit codes: 0 success, 1 a cell failed or a gate found a regression, 2 unusable input (a bad suite
file, missing data, unreadable results), 130 interrupted (Ctrl-C). Unusable input is one line, never a
traceback, on every verb; an internal error keeps its traceback (exit 1). Text from the user (paths,
keys, messages) is always printed verbatim, never read as rich markup.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Annotated, List, Literal, Optional

import typer
from typer.core import TyperGroup

from snnbench import interrupts, user_text
from snnbench.user_text import verbatim_console

from snnbench.records.device import DEVICES
from snnbench.report import EXPORT_FORMATS, TABLE_FORMATS
from snnbench.runner import EXECUTORS


class _Group(TyperGroup):
    """Every verb runs inside this: unusable input (an :class:`UnusableInputError`) anywhere below
    becomes one error line and exit 2, Ctrl-C one line and exit 130; other errors keep their traceback."""

    def invoke(self, ctx):
        from snnbench.errors import UnusableInputError

        if ctx.parent is not None:  # a group under the root (bench): the root's handling covers it, once
            return super().invoke(ctx)
        try:
            # Ctrl-C is noted as well as raised, so that an error a library made of it (pydantic's
            # serializer wraps it) still ends the command as an interrupt, not as a bad input or a bug.
            with interrupts.watching():
                try:
                    result = super().invoke(ctx)
                except Exception as err:
                    interrupts.raise_if_interrupt(err)
                    raise
                interrupts.check()  # a verb that swallowed the interrupt did not finish what it was asked
                return result
        except UnusableInputError as err:
            _print_error(str(err))
            raise typer.Exit(2) from None
        except KeyboardInterrupt as err:
            # A verb that knows what the interruption leaves behind says so in the exception
            # (``snnbench run``: how many cells are recorded where).
            user_text.say(err_console, str(err) or "interrupted")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Group,
    name="snnbench",
    help="Benchmark spiking neural networks: accuracy vs time steps, wall time, sparse-backward speed-up.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
bench_app = typer.Typer(
    cls=_Group,
    help="Kernel and method micro-benchmarks written as JSON.\n\nExample: snnbench bench neuron --device cuda --out results/bench/h200",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(bench_app, name="bench")

# Both consoles print user text verbatim (markup off; snnbench.user_text). Piped output (CI logs,
# files) gets a wide fixed width so leaderboard columns are not truncated.
console = verbatim_console() if sys.stdout.isatty() else verbatim_console(width=200, soft_wrap=True)
# Errors are never wrapped: a path or message split across lines would not survive grep or copy.
err_console = verbatim_console(stderr=True, soft_wrap=True)


def _print_error(message: str) -> None:
    user_text.error(err_console, message)


def _warn(message: str) -> None:
    user_text.warn(err_console, message)


def _say(message: str, style: Optional[str] = None) -> None:
    user_text.say(console, message, style)


def _fail(message: str, code: int = 2) -> None:
    _print_error(message)
    raise typer.Exit(code)


def _version_callback(value: bool) -> None:
    if value:
        from snnbench import __version__

        _say(f"snnbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Benchmark spiking neural networks: accuracy vs time steps, wall time, sparse-backward speed-up."""


_SET_HELP = (
    "override a suite field, checked by the suite schema: KEY.PATH=VALUE with a YAML value "
    "(training.epochs=1, seeds=[0,1], models.0.width=16); repeatable"
)


def _load_suite_or_exit(path: Path, overrides: List[str]):
    from snnbench.api import load_suite
    from snnbench.config import SuiteError

    try:
        return load_suite(path, overrides)
    except SuiteError as err:
        _fail(str(err))


@app.command()
def validate(
    suites: List[Path] = typer.Argument(..., help="YAML suite files"),
    overrides: List[str] = typer.Option([], "--set", help=_SET_HELP + " (applies to every suite)"),
    deep: bool = typer.Option(
        False,
        "--deep",
        help="also run the run's preflight: the device, every dataset (one sample read), every cell's "
        "model built by its track's builder, checkpoints, weights, caches and resume states loaded, "
        "the results and cache folders",
    ),
    results_dir: Optional[Path] = typer.Option(None, "--results-dir", help="with --deep: as for run"),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="with --deep: as for run"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="with --deep: as for run"),
) -> None:
    """Check suite files (schema, limits, models, that checkpoints exist) and list their cells.

    Example: snnbench validate suites/cifar100.yaml --set training.epochs=1 --deep
    """
    from snnbench.records.cells import expand

    parsed = [_load_suite_or_exit(suite, overrides) for suite in suites]
    for suite, one in zip(suites, parsed):
        cells = expand(one)
        if deep:
            from snnbench.runner.preflight import preflight
            from snnbench.runner.sweep import resolve_cache_dir

            preflight(
                one, cells, one.results_path(results_dir), data_root=data_root, cache_dir=resolve_cache_dir(cache_dir)
            )
        _say(
            f"{suite}: valid suite '{one.name}' ({one.track} track), {len(cells)} cells, "
            f"T = {one.timesteps}, results → {one.results_path(results_dir)}"
        )
        for cell in cells:
            _say(f"  {cell.key}")


@app.command()
def run(
    ctx: typer.Context,
    suites: List[Path] = typer.Argument(
        ..., help="YAML suite files: their cells share the worker pool, handed out in this order (longest first)"
    ),
    force: bool = typer.Option(False, "--force", help="rerun cells that are already recorded"),
    results_dir: Optional[Path] = typer.Option(
        None, "--results-dir", help="write <dir>/<suite>.jsonl instead of the suite's output"
    ),
    data_root: Optional[Path] = typer.Option(
        None, "--data-root", help="dataset folder (else SNNBENCH_DATA, else ~/.cache/snnbench/data)"
    ),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", help="trained-model cache (else SNNBENCH_CACHE, else ~/.cache/snnbench)"
    ),
    executor: Literal[EXECUTORS] = typer.Option(
        "local", "--executor", help="where the cells run: here, or on a Ray cluster"
    ),
    address: Optional[str] = typer.Option(
        None, "--address", help="Ray cluster address (with --executor ray); default: start a local Ray"
    ),
    compare_reference: bool = typer.Option(
        False, "--compare-reference", help="also time the official FTBC loop on the same batches"
    ),
    jobs: Optional[int] = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        help="cells run side by side in this many local processes, each with its share of the threads "
        "(default: one per core on the CPU, one per GPU; 1 where the suite says parallel: false)",
    ),
    overrides: List[str] = typer.Option([], "--set", help=_SET_HELP + " (applies to every suite)"),
) -> None:
    """Run every cell of the suites that is not yet recorded and append one record per cell.

    Several suites run in one sweep: one start-up, one worker pool, each record in its own suite's
    results file. Example: snnbench run suites/digits_spiking.yaml suites/digits.yaml --results-dir build/demo
    """
    parsed = [_load_suite_or_exit(suite, overrides) for suite in suites]
    # Imported once the suites are read: a YAML or schema error is reported before torch loads.
    from snnbench.runner.cli_run import run_with_progress
    from snnbench.runner.sweep import check_distinct_results

    check_distinct_results(parsed, results_dir, [str(suite) for suite in suites])
    # Unusable input found by the preflight (data, checkpoints, folders, Ray) is an
    # UnusableInputError: _Group prints it as one line and exits 2. Anything else is a bug (exit 1).
    # The verb's other options are the sweep's (run_suites'), under the same names.
    options = {name: value for name, value in ctx.params.items() if name not in ("suites", "overrides")}
    outcomes = run_with_progress(parsed, console=console, **options)
    from snnbench.report.table import leaderboard, render_rich

    for one, outcome in zip(parsed, outcomes):
        console.print(render_rich(leaderboard(outcome.records), title=f"{one.name} ({outcome.path})"))
    raise typer.Exit(max(outcome.exit_code for outcome in outcomes))


def _refuse_if_nothing_usable(inputs, paths: List[Path]) -> None:
    """Every record was skipped (each one warned about above): there is nothing to report."""
    if inputs.problems and not inputs.records and not inputs.bench:
        _fail(f"no usable record in {', '.join(str(p) for p in paths)}: every record was skipped (see the warnings)")


def _check_group_by(fields: List[str], records: list) -> None:
    from snnbench.report.table import DEFAULT_GROUP_BY

    known = {"dataset", "model", "method", "track", "suite", "none", *DEFAULT_GROUP_BY}

    def present(field: str) -> bool:
        for record in records:
            value = record
            for part in field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                return True
        return False

    unknown = [f for f in fields if f not in known and not present(f)]
    if unknown:
        _fail(
            f"--group-by {', '.join(unknown)}: no record has such a field; expected dataset, model, method, "
            "track, suite, none, or a dotted record path like config.model.params.width"
        )


@app.command()
def table(
    results: List[Path] = typer.Argument(..., help="results .jsonl files (or folders of them)"),
    fmt: Literal[TABLE_FORMATS] = typer.Option("rich", "--format", help="output format"),
    group_by: List[str] = typer.Option(
        ["dataset,model"],
        "--group-by",
        help="fields that split the output into tables, comma-separated (dataset, model, method, track, "
        "suite or a dotted record path like config.model.params.width); 'none' for one table",
    ),
    published: bool = typer.Option(
        True, "--published/--no-published", help="show published rows of the same datasets beside the measured ones"
    ),
) -> None:
    """Render results as a leaderboard: one row per (dataset, model, method), mean ± std over seeds.

    A column per T, the ANN, speed and sparsity columns where present; the best value per column
    is marked; published rows (snnbench/published/*.yaml) are marked with their source.

    Example: snnbench table results/runs/digits.jsonl --format md
    """
    from snnbench.report.inputs import InputError, load_inputs
    from snnbench.report.published import PublishedError, load_published
    from snnbench.report.table import RENDERERS, build_leaderboard, render_rich
    from snnbench.records.store import latest_by_key

    try:
        inputs = load_inputs(results)
        sources = load_published() if published else []
    except (InputError, PublishedError) as err:
        _fail(str(err))
    for problem in inputs.problems:
        _warn(problem)
    _refuse_if_nothing_usable(inputs, results)
    fields = [f.strip() for g in group_by for f in g.split(",") if f.strip()]
    _check_group_by(fields, inputs.records)
    board = build_leaderboard(
        latest_by_key(inputs.records), sources, group_by=fields, include_published="matching" if published else "none"
    )
    if board.empty:
        _warn("no records to show")
    if fmt == "rich":
        console.print(render_rich(board, title=", ".join(str(p) for p in results)))
    else:
        sys.stdout.write(RENDERERS[fmt](board))


@app.command()
def export(
    results: List[Path] = typer.Argument(..., help="results .jsonl files (or folders of them)"),
    fmt: Literal[EXPORT_FORMATS] = typer.Option("csv", "--format", help="output format"),
    out: Optional[Path] = typer.Option(None, "--out", help="file to write (else standard output; parquet needs it)"),
    all_records: bool = typer.Option(False, "--all", help="keep records a --force rerun superseded"),
) -> None:
    """Write results in long form: one row per record x metric x T, with the record's settings,
    seed, device, unit, git SHA and finish time.

    Example: snnbench export results/runs --format parquet --out build/results.parquet
    """
    from snnbench.report.frame import export as write_frame, load_results
    from snnbench.report.inputs import InputError
    from snnbench.user_paths import output_file

    if out is not None:
        output_file(out, "--out")  # before any record is read
    try:
        frame = load_results(results, latest=not all_records)
    except InputError as err:
        _fail(str(err))
    for problem in frame.attrs.get("problems", []):
        _warn(problem)
    try:
        text = write_frame(frame, fmt, out)
    except ValueError as err:
        _fail(str(err))
    except OSError as err:
        _fail(f"cannot write {out}: {err.strerror or err}")
    if text is not None:
        sys.stdout.write(text)
    else:
        user_text.say(err_console, f"wrote {len(frame)} rows to {out}")


@app.command()
def plot(
    results: List[Path] = typer.Argument(..., help="results .jsonl and/or benchmark .json files (or folders)"),
    out: Path = typer.Option(Path("build/plots"), "--out", help="folder for the PNG and SVG files"),
    published: bool = typer.Option(
        True, "--published/--no-published", help="draw published curves (dashed) where they match"
    ),
    all_published: bool = typer.Option(False, "--all-published", help="also draw figures for published-only datasets"),
) -> None:
    """Figures as PNG and SVG: accuracy vs T, backward speed-up vs hidden size and vs active
    fraction, kernel bandwidth as a fraction of the copy ceiling. Figures without data are skipped.

    Example: snnbench plot results/runs/digits.jsonl results/bench/h200 --out build/plots
    """
    from snnbench.report.inputs import InputError, load_inputs
    from snnbench.report.plots import make_plots
    from snnbench.report.published import PublishedError, load_published, published_records
    from snnbench.records.store import latest_by_key

    _writable_folder(out, "--out")
    try:
        inputs = load_inputs(results)
        pub = published_records(load_published()) if published else []
    except (InputError, PublishedError) as err:
        _fail(str(err))
    for problem in inputs.problems:
        _warn(problem)
    _refuse_if_nothing_usable(inputs, results)
    report = make_plots(latest_by_key(inputs.records), inputs.bench, out, pub, all_published=all_published)
    for reason in report.skipped:
        _say(f"skipped {reason}")
    for path in report.written:
        _say(f"wrote {path}")
    if not report.written:
        _warn("no figure could be drawn from these inputs")


@app.command()
def compare(
    baseline: Path = typer.Argument(..., help="baseline results .jsonl or benchmark .json"),
    new: Path = typer.Argument(..., help="new results .jsonl or benchmark .json of the same kind"),
    tolerance: List[str] = typer.Option(
        [],
        "--tolerance",
        help="METRIC=PCT (relative, e.g. median_ms=10) or METRIC=Npt (absolute, e.g. 'snn_acc.*=0.5pt'); "
        "METRIC is a glob over flattened metric names; repeatable. Defaults: *acc* 1 %, others 10 %",
    ),
    ignore: List[str] = typer.Option(
        [], "--ignore", help="metric glob to leave out (e.g. '*_s' for CPU wall times); repeatable"
    ),
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="cells or metrics missing from NEW are not a failure"
    ),
    show_all: bool = typer.Option(
        False, "--all", help="list every compared metric, not only regressions and improvements"
    ),
) -> None:
    """Compare two results or benchmark files cell by cell; exit 0 when nothing regressed beyond
    tolerance, 1 when something did (or a cell is missing), 2 on unusable input.

    Example: snnbench compare results/bench/h200/neuron.json new/neuron.json --tolerance median_ms=5
    """
    from snnbench.report.compare import UnusableInput, compare_files, parse_tolerance, render_comparison

    try:
        parsed = [parse_tolerance(t) for t in tolerance]
    except ValueError as err:
        _fail(str(err))
    try:
        result = compare_files(baseline, new, parsed, ignore)
    except UnusableInput as err:
        _fail(str(err))
    for side in (result.base, result.new):
        for problem in side.problems:
            _warn(problem)
    console.print(render_comparison(result, show_all=show_all))
    code = result.exit_code(allow_missing=allow_missing)
    if code:
        _say("REGRESSION", "bold red")
    else:
        _say("no regression beyond tolerance", "green")
    raise typer.Exit(code)


@app.command()
def leaderboard(
    out: Optional[Path] = typer.Option(None, "--out", help="write the Markdown here (else print it)"),
    runs: Path = typer.Option(Path("results/runs"), "--runs", help="folder of results .jsonl files"),
    bench: Path = typer.Option(Path("results/bench"), "--bench", help="folder of benchmark .json files"),
    published_dir: Optional[Path] = typer.Option(None, "--published-dir", help="folder of published .yaml files"),
) -> None:
    """Write results/LEADERBOARD.md: measured runs, benchmark summaries and published rows.

    The output depends only on the input files (no timestamps); CI fails when the committed page
    is stale. Example: snnbench leaderboard --out results/LEADERBOARD.md
    """
    from snnbench.report.leaderboard import build_page
    from snnbench.report.published import PublishedError
    from snnbench.user_paths import output_file

    if out is not None:
        output_file(out, "leaderboard --out")  # before any file is read
    try:
        page = build_page(runs_dir=runs, bench_dir=bench, published_dir=published_dir)
    except PublishedError as err:
        _fail(str(err))
    for problem in page.problems:
        _warn(problem)
    if out is None:
        sys.stdout.write(page.text)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page.text, encoding="utf-8")
    except OSError as err:
        _fail(f"cannot write {out}: {err.strerror or err}")
    _say(f"wrote {out}")


@app.command()
def env() -> None:
    """Show Python, torch, triton and torchvision versions, the CUDA device and Triton's mode.

    Example: snnbench env
    """
    from snnbench.records.env import environment

    info = environment()
    hw = info["hardware"]
    lines = [
        ("python", info["python"]),
        ("torch", info["torch"]),
        ("triton", info["triton"] or "not installed"),
        ("torchvision", info["torchvision"]),
        ("snnbench", f"{info['snnbench']} ({info['git_sha'] or 'no git'})"),
        (
            "device",
            f"cuda: {hw['name']} (sm {hw['capability']}, {hw['memory_gib']} GiB)"
            if hw["device"] == "cuda"
            else "cpu (no CUDA device)",
        ),
        ("triton interpreter", "on (TRITON_INTERPRET=1)" if info["triton_interpreter"] else "off"),
        ("data root", os.environ.get("SNNBENCH_DATA", "~/.cache/snnbench/data (SNNBENCH_DATA unset)")),
    ]
    for name, value in lines:
        _say(f"{name:>18}: {value}")


def _writable_folder(folder: Path, option: str) -> None:
    """Create ``folder``; a file (or FIFO, device) in its place or no permission is an error naming the option."""
    from snnbench.user_paths import output_folder

    output_folder(folder, option)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _fail(f"{option} {folder}: cannot create the folder ({err.strerror or err})")


def _bench_out(out: Optional[Path]) -> Optional[Path]:
    """``--out`` names a folder (created here) or, ending in .json, the file itself."""
    if out is not None and out.suffix != ".json":
        _writable_folder(out, "--out")
    return out


def _bench_option(name: str, default, annotation) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)


# Every bench takes these the same way, before its own options.
_BENCH_OPTIONS = (
    _bench_option(
        "device",
        "auto",
        Annotated[Literal[DEVICES], typer.Option(help="where to time; auto: cuda when torch sees a GPU")],
    ),
    _bench_option(
        "out", None, Annotated[Optional[Path], typer.Option(help="folder for the bench's JSON (<bench>.json)")]
    ),
    _bench_option("quick", False, Annotated[bool, typer.Option(help="a CPU smoke run: small sizes, tiny models")]),
)


def _bench(name: str, runner: str):
    """Register the decorated function as ``snnbench bench NAME``: the common options (``--device``,
    ``--out``, ``--quick``) and then its own; it maps its own options to keyword arguments of
    ``runner`` ("module:function", imported only when the bench runs), which writes into ``--out``.

    A benchmark that cannot run as asked (no CUDA device, a size past memory: an
    :class:`~snnbench.errors.UnusableInputError`) exits 2, so a CI gate never mistakes it for a
    regression; any other failure (CUDA, Triton, a bug) is internal: one line and exit 1.
    """

    def register(options_of):
        own = inspect.signature(options_of, eval_str=True)

        @functools.wraps(options_of)
        def command(device: str, out: Optional[Path], quick: bool, **options) -> None:
            from snnbench.errors import UnusableInputError

            module, _, function = runner.partition(":")
            run_bench = getattr(importlib.import_module(module), function)
            try:
                run_bench(out=_bench_out(out), console=console, device=device, quick=quick, **options_of(**options))
            except (UnusableInputError, typer.Exit):
                raise  # exit 2 with its message (the group prints it), or an exit already decided
            except Exception as err:  # noqa: BLE001 - not the input's fault: say so, exit 1
                interrupts.raise_if_interrupt(err)
                first = (str(err).strip().splitlines() or [""])[0]
                _fail(f"bench {name} failed (internal error, not the input): {type(err).__name__}: {first}", 1)

        command.__signature__ = own.replace(
            parameters=[*_BENCH_OPTIONS, *own.parameters.values()], return_annotation=None
        )
        command.__doc__ = (
            f"{inspect.cleandoc(options_of.__doc__)}\n\n"
            f"Example: snnbench bench {name} --device cuda --out results/bench/h200"
        )
        bench_app.command(name)(command)
        return options_of

    return register


# Each bench's own options.
_Sweep = Annotated[
    Optional[Path],
    typer.Option(help="sweep file (default: the shipped snnbench/sweeps/kernels.yaml, section 'neuron')"),
]
_Preset = Annotated[
    Optional[str], typer.Option(help="nmnist: the published N-MNIST-shaped layer 2 (700→200, T=300, B=256)")
]
_Steps = Annotated[Optional[int], typer.Option(min=1, help="time steps T (default 32; 4 with --quick)")]
_Models = Annotated[List[str], typer.Option("--model", help="only this model (vgg16, resnet20, resnet34); repeatable")]


@_bench("neuron", "snnbench.bench.neuron:run_neuron_bench")
def bench_neuron(sweep: _Sweep = None) -> dict:
    """Multi-step LIF/IF kernels vs a PyTorch loop, torch.compile and SpikingJelly, with the copy ceiling."""
    return {"sweep_path": sweep}


def _items(text: Optional[str], option: str) -> Optional[list[str]]:
    """A comma-separated option as its entries; None when not given. An empty entry ("8,,16", "")
    is refused rather than dropped, so what runs is what was typed."""
    if text is None:
        return None
    values = [v.strip() for v in text.split(",")]
    if not all(values):
        _fail(f"{option} {text!r}: an empty entry; expected values separated by commas")
    return values


@_bench("sparse", "snnbench.bench.sparse:run_sparse_bench")
def bench_sparse(
    preset: _Preset = None,
    hidden: Annotated[
        Optional[str], typer.Option(help="hidden sizes, comma-separated (default 200,400,1000,4000)")
    ] = None,
    design: Annotated[
        Optional[str],
        typer.Option(help="input-gradient designs to compare, comma-separated: pairs, rows, scan (default all)"),
    ] = None,
    inputs: Annotated[
        Optional[str], typer.Option(help="input kinds, comma-separated: bernoulli, latency, events (default all)")
    ] = None,
    step: Annotated[
        bool, typer.Option(help="also time the two-layer training step (--no-step: layer rows only)")
    ] = True,
) -> dict:
    """Sparse (SparseProp, LocalZO) vs dense BPTT backward of spiking MLP layers over hidden sizes."""
    sizes = _items(hidden, "--hidden")
    if sizes and not all(v.isdigit() and int(v) > 0 for v in sizes):
        _fail(f"--hidden {hidden}: expected positive integers separated by commas")
    return {
        "preset": preset,
        "hidden": [int(v) for v in sizes] if sizes else None,
        "designs": _items(design, "--design"),
        "inputs": _items(inputs, "--inputs"),
        "step": step,
    }


@_bench("ftbc", "snnbench.bench.ftbc:run_ftbc_bench")
def bench_ftbc(steps: _Steps = None) -> dict:
    """Fast layer-major FTBC calibration vs the official per-layer loop (VGG-16, CIFAR-100 shapes)."""
    return {"steps": steps}


@_bench("convert", "snnbench.bench.convert:run_convert_bench")
def bench_convert(models: _Models = []) -> dict:
    """Converted-SNN evaluation throughput: snnbench vs the official step-by-step loop vs SpikingJelly,
    with bf16 / channels_last / CUDA-graph options and their accuracy deltas."""
    return {"models": models or None}


@_bench("layer", "snnbench.bench.layer:run_layer_bench")
def bench_layer(
    figure: Annotated[bool, typer.Option(help="also write layer.png (time vs n per library) next to the JSON")] = True,
    budget_s: Annotated[
        Optional[float], typer.Option(min=0, help="start no point after this many seconds (the JSON lists those left)")
    ] = None,
    impls: Annotated[
        Optional[str], typer.Option(help="only these implementations, comma-separated (default: every peer)")
    ] = None,
) -> dict:
    """One spiking layer (Linear(n,n)+LIF on the Open Neuromorphic protocol, a CIFAR conv block) against
    SpikingJelly, snnTorch, Norse, Sinabs, a PyTorch loop and torch.compile, each checked to the same
    neuron first (pip install 'snnbench[peers]'); on the CPU also the neuron alone at 1 and 2 threads."""
    return {"figure": figure, "budget_s": budget_s, "impls": _items(impls, "--impls")}


def main() -> None:
    app()


if __name__ == "__main__":
    main()
