"""`snnbench bench`: sizes past memory are refused with the estimate before anything is allocated,
`--quick` never overrides a size that was given, bad input exits 2 and an internal failure (CUDA,
Triton, a bug) exits 1 with one short line; both through the CLI and the Python functions."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.errors import BenchInputError

runner = CliRunner()


def _invoke(args: list[str], code: int, *needles: str) -> str:
    t0 = time.perf_counter()
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == code, (args, result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for needle in needles:
        assert needle in result.output, (needle, result.output)
    assert time.perf_counter() - t0 < 10, "refused before allocating, not after"
    return result.output


@pytest.mark.parametrize(
    "args",
    [
        ["sparse", "--hidden", "100000000", "--device", "cpu"],
        ["sparse", "--hidden", "100000000", "--quick", "--device", "cpu"],
        ["ftbc", "--steps", "100000000", "--device", "cpu"],
        ["ftbc", "--steps", "100000000", "--quick", "--device", "cpu"],
    ],
)
def test_sizes_past_memory_are_refused_with_the_estimate(args, tmp_path):
    output = _invoke([*args, "--out", str(tmp_path)], 2, f"--{args[1][2:]} 100000000", "needs about", "GiB free")
    assert "CUDA" not in output and not list(tmp_path.iterdir())


def test_sizes_past_memory_through_the_api():
    from snnbench.bench.ftbc import run_ftbc_bench
    from snnbench.bench.sparse import run_sparse_bench

    with pytest.raises(BenchInputError, match="needs about .* GiB"):
        run_sparse_bench(device="cpu", quick=True, hidden=[100_000_000])
    with pytest.raises(BenchInputError, match="--steps 100000000"):
        run_ftbc_bench(device="cpu", quick=True, steps=100_000_000)


def test_quick_keeps_an_explicit_size():
    from snnbench.bench.ftbc import QUICK_STEPS, _settings
    from snnbench.bench.sparse import _settings as sparse_settings

    assert _settings("cpu", True, None)[1] == QUICK_STEPS
    assert _settings("cpu", True, 6)[1] == 6  # was min(6, 4): --quick silently ran T = 4
    assert _settings("cpu", False, None)[1] == 32
    assert sparse_settings("cpu", True, None, [48], None, None)["hidden"] == [48]


def test_bad_input_exits_2_once_and_internal_failures_exit_1(monkeypatch):
    output = _invoke(["sparse", "--hidden", "x", "--quick"], 2, "--hidden x: expected positive integers")
    assert output.count("error:") == 1 and "error: 2" not in output  # a typer.Exit is not re-reported
    _invoke(["sparse", "--design", "nope", "--quick", "--device", "cpu"], 2, "--design must be among")
    _invoke(["convert", "--model", "alexnet", "--quick", "--device", "cpu"], 2, "--model: unknown ['alexnet']")

    import snnbench.bench.sparse as sparse

    def cuda_failure(**kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nCompile with TORCH_USE_CUDA_DSA")

    monkeypatch.setattr(sparse, "run_sparse_bench", cuda_failure)
    output = _invoke(["sparse", "--quick"], 1, "internal error", "RuntimeError: CUDA error: an illegal memory access")
    assert "unusable" not in output and "TORCH_USE_CUDA_DSA" not in output  # one short line

    def bad_input(**kwargs):
        raise BenchInputError("--hidden 7: planted")

    monkeypatch.setattr(sparse, "run_sparse_bench", bad_input)
    _invoke(["sparse", "--quick"], 2, "--hidden 7: planted")


def test_neuron_sweep_sizes_are_bounded_too(tmp_path):
    import yaml

    from snnbench.bench.neuron import run_neuron_bench
    from snnbench.bench.sweep import default_sweep_file

    with pytest.raises(BenchInputError, match=r"timesteps 4 × sizes 1000000000000: needs about"):
        run_neuron_bench(device="cpu", quick=True, timesteps=[4], sizes=[10**12])
    with pytest.raises(BenchInputError, match="timesteps: expected a list of positive integers"):
        run_neuron_bench(device="cpu", quick=True, timesteps=["many"])
    sweep = yaml.safe_load(default_sweep_file().read_text())
    sweep["neuron"]["cpu"]["sizes"] = [10**13]
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(sweep))
    _invoke(["neuron", "--device", "cpu", "--sweep", str(path)], 2, "sizes 10000000000000: needs about")


@pytest.mark.parametrize(
    "args",
    [
        ["sparse", "--hidden", "8,,16"],  # the empty entry was dropped: 2 sizes ran, 3 were typed
        ["sparse", "--design", " "],
        ["layer", "--impls", ""],  # an empty list ran every implementation
    ],
)
def test_an_empty_entry_in_a_comma_list_is_refused(args, tmp_path):
    _invoke([*args, "--quick", "--device", "cpu", "--out", str(tmp_path)], 2, "an empty entry", args[1])
    assert not list(tmp_path.iterdir()), "refused before anything was written"
