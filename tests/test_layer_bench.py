"""``snnbench bench layer`` on the CPU: every installed peer equals the snnbench neuron it claims, a
peer that differs is reported and never timed, and a quick run writes its JSON and figure."""

from __future__ import annotations

import io
import json

import pytest
import torch

from snnbench.bench import layer, layer_peers
from snnbench.bench.layer_peers import PEERS, SJ_NEURON, Peer, check_peer, peer_named, unavailable


@pytest.mark.parametrize("name", [p.name for p in PEERS])
def test_every_installed_peer_gives_the_spikes_and_gradients_of_its_snnbench_neuron(name):
    peer = peer_named(name)
    why = unavailable(peer, "cpu")
    if why:
        pytest.skip(why)
    row = check_peer(peer, "cpu")
    assert row["equal"], row
    assert row["spike_mismatch_frac"] == 0.0 and 0.05 < row["spike_rate"] < 0.5
    assert row["grad_max_abs_diff_rel"] <= row["grad_tolerance"]


def _loop_with(**changes):
    from snnbench.bench.peers import plain_lif_loop

    return lambda device, dtype: lambda x: plain_lif_loop(x, **{**SJ_NEURON, **changes})


def test_a_peer_whose_spikes_differ_is_flagged():
    liar = Peer("liar", None, SJ_NEURON, _loop_with(threshold=0.9), "claims θ = 1, fires at 0.9")
    row = check_peer(liar, "cpu")
    assert not row["equal"] and row["spike_mismatch_frac"] > 0
    assert "spikes differ" in row["note"]


def test_a_peer_whose_gradients_differ_is_flagged():
    other = Peer("other_surrogate", None, SJ_NEURON, _loop_with(alpha=2.0), "sigmoid surrogate α = 2, not 4")
    row = check_peer(other, "cpu")
    assert row["spike_mismatch_frac"] == 0.0 and not row["equal"]
    assert "gradients differ" in row["note"]


def _raising(make_error):
    def build(device, dtype):
        def step(x):
            raise make_error()

        return step

    return build


def _wrapped_interrupt() -> Exception:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as err:
        try:
            raise RuntimeError("the peer's own error") from err
        except RuntimeError as wrapped:
            return wrapped


def test_a_broken_peer_is_reported_but_an_interrupt_it_wrapped_stops_the_bench():
    """A peer's error is its row's note and the others still run; Ctrl-C that a peer (or a library
    under it) turned into an error of its own is not a broken peer: the bench stops (exit 130)."""
    broken = Peer("broken", None, SJ_NEURON, _raising(lambda: RuntimeError("no kernel")), "raises")
    row = check_peer(broken, "cpu")
    assert not row["equal"] and row["note"] == "error: RuntimeError: no kernel"
    wrapped = Peer("wrapped", None, SJ_NEURON, _raising(_wrapped_interrupt), "Ctrl-C, wrapped")
    with pytest.raises(KeyboardInterrupt):
        check_peer(wrapped, "cpu")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A quick run over snnbench, the PyTorch loop and a peer that differs, at two tiny points (run
    once for the tests that read it)."""
    from rich.console import Console

    liar = Peer("liar", None, SJ_NEURON, _loop_with(threshold=0.9), "fires at 0.9")
    plan = {
        **layer.PLANS["quick"],
        "points": [{**layer._ON, "T": 4, "B": 2, "n": 32}, {"shape": "neuron", "T": 4, "N": 64}],
    }
    folder = tmp_path_factory.mktemp("layer")
    screen = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(layer, "PEERS", (peer_named("snnbench"), peer_named("torch_loop"), liar))
        patch.setitem(layer.PLANS, "quick", plan)
        result = layer.run_layer_bench(device="cpu", out=folder, quick=True, console=Console(file=screen, width=200))
    return result, folder, screen.getvalue()


def test_quick_run_checks_first_and_never_times_a_peer_that_differs(tiny_run):
    result, folder, screen = tiny_run
    data = json.loads((folder / "layer.json").read_text())
    assert data["rows"] == result["rows"] and data["benchmark"] == "layer" and data["schema"] == 2
    assert data["checks"]["liar"]["equal"] is False and data["checks"]["torch_loop"]["equal"] is True
    liar_rows = [r for r in data["rows"] if r["impl"] == "liar"]
    assert liar_rows and all(not r.get("median_ms") for r in liar_rows)
    assert all("spikes differ" in r["note"] for r in liar_rows)
    assert "check liar: spikes differ" in screen
    assert (folder / "layer.png").stat().st_size > 0


def test_quick_run_rows_carry_the_split_and_the_ratios(tiny_run):
    result, _, _ = tiny_run
    timed = [r for r in result["rows"] if r.get("median_ms")]
    assert {(r["part"], r["mode"]) for r in timed if r["shape"] == "linear"} == {
        (p, m) for p in ("gemm", "neuron", "layer") for m in ("fwd", "fwd_bwd")
    }
    for r in timed:
        assert r["p20_ms"] <= r["median_ms"] <= r["p80_ms"]
        assert (r.get("bytes") or 0) > 0 if r["part"] == "neuron" else r["flops"] > 0
    ours = next(r for r in timed if r["impl"] == "snnbench" and r["part"] == "layer" and r["mode"] == "fwd_bwd")
    loop = next(r for r in timed if r["impl"] == "torch_loop" and r["part"] == "layer" and r["mode"] == "fwd_bwd")
    assert ours["fastest_peer"] == "torch_loop"
    assert ours["speedup_vs_fastest_peer"] == pytest.approx(loop["median_ms"] / ours["median_ms"])
    neuron = next(r for r in timed if r["impl"] == "snnbench" and r["part"] == "neuron" and r["mode"] == "fwd_bwd")
    assert ours["neuron_share"] == pytest.approx(neuron["median_ms"] / ours["median_ms"])
    ratios = result["summary"]["fwd_bwd_ratios"]
    assert set(ratios) == {"linear T=4 n=32 fp32", "neuron T=4 N=64 fp32"}
    assert all("torch_loop_over_snnbench" in v and "liar_over_snnbench" not in v for v in ratios.values())
    (rounds,) = result["interleaved"]  # the neuron point, every equal implementation once per round
    assert set(rounds["median_ms"]) == {"snnbench", "torch_loop"} and rounds["rounds"] == layer.INTERLEAVED_ROUNDS
    assert rounds["over_snnbench"]["torch_loop"] == pytest.approx(
        rounds["median_ms"]["torch_loop"] / rounds["median_ms"]["snnbench"]
    )
    assert all(rounds["p20_ms"][k] <= rounds["median_ms"][k] <= rounds["p80_ms"][k] for k in rounds["median_ms"])


def test_the_published_open_neuromorphic_rows_are_package_data():
    from snnbench.report.published import load_published

    source = next(s for s in load_published() if s.id == "open-neuromorphic-layer")
    assert {r["card"] for r in source.bench_rows} == {"RTX 4090"}
    by_impl = {r["impl"]: r for r in source.bench_rows if r["dtype"] == "fp32"}
    assert by_impl["snntorch"]["ms"] == 3080.0 and by_impl["norse (torch.compile)"]["peak_gb"] == 5.43
    assert all(r["n"] == 16384 and r["T"] == 500 and r["B"] == 16 for r in source.bench_rows)


def test_peer_versions_and_reasons():
    assert layer_peers.version(None) == torch.__version__
    assert layer_peers.version("no-such-snn-library") is None
    ghost = Peer("ghost", "no-such-snn-library", SJ_NEURON, _loop_with(), "absent")
    assert "not installed" in unavailable(ghost, "cpu") and "peers" in unavailable(ghost, "cpu")
    assert "CUDA" in unavailable(peer_named("sinabs_exodus"), "cpu")


def test_the_leaderboard_puts_published_and_measured_layer_rows_in_one_labelled_table(tmp_path):
    from snnbench.report.inputs import BenchFile
    from snnbench.report.layer_board import layer_section
    from snnbench.report.published import load_published

    row = {"shape": "linear", "part": "layer", "mode": "fwd_bwd", "dtype": "fp32", "T": 100, "threads": 1}
    rows = [
        {**row, "n": 512, "impl": "snnbench", "median_ms": 10.0},
        {**row, "n": 512, "impl": "snntorch", "median_ms": 31.0},
    ]
    bench = BenchFile(tmp_path / "cpu" / "layer.json", rows, env={}, meta={"benchmark": "layer"})
    text = layer_section([bench], load_published())
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "published RTX 4090, n=16,384, T=500 (their protocol)" in lines["library"]
    assert "measured cpu, n=512, T=100, 1 thr" in lines["library"]
    assert "| 3080 | 31 |" in lines["snntorch"].replace(".0", "")
    assert lines["**snnbench**"].rstrip(" |").endswith("10")
    assert "spyx fp16; spyx fp32" in lines["spyx"]


def test_cli_refuses_an_unknown_implementation_with_exit_2(tmp_path):
    from typer.testing import CliRunner

    from snnbench.cli import app

    result = CliRunner().invoke(
        app, ["bench", "layer", "--device", "cpu", "--impls", "snnbench,nope", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "unknown implementation 'nope'" in result.output
    assert not (tmp_path / "layer.json").exists()
