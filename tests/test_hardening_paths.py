"""One way to open a user path: a FIFO, a device, a socket, a folder or a loop of symlinks where a file
belongs is refused by name before it is opened (a FIFO used to block forever), output paths (results,
lock and claims, --out) are checked before any work, and names too long for the file system are
refused with the limit. Every case: exit 2, a message naming the path, no traceback, in bounded time."""

from __future__ import annotations

import json
import os
import socket

import pytest
from typer.testing import CliRunner

import snnbench
from snnbench.cli import app
from snnbench.errors import UnusableInputError
from snnbench.user_paths import UnusablePathError, input_file, open_input, output_file
from tests.helpers import tiny_digits_suite

runner = CliRunner()

RECORD = {"schema": 1, "key": "digits/digits_cnn/qcfs/seed=0/x", "dataset": "digits", "model": "digits_cnn",
          "method": "qcfs", "seed": 0, "metrics": {"snn_acc": {"1": 50.0}}}  # fmt: skip


def _refused(args: list[str], *needles: str) -> str:
    result = runner.invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, (args, result.output)
    assert "Traceback" not in result.output, text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


@pytest.mark.timeout(60)
def test_a_fifo_anywhere_a_file_is_read_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    suite_fifo = tmp_path / "suite.yaml"
    os.mkfifo(suite_fifo)
    _refused(["validate", str(suite_fifo)], "suite.yaml: suite file is a FIFO (named pipe)")
    _refused(["run", str(suite_fifo)], "is a FIFO")
    for verb in (["table", str(fifo)], ["export", str(fifo)], ["plot", str(fifo), "--out", str(tmp_path / "p")]):
        _refused(verb, "pipe.jsonl: input file is a FIFO")
    _refused(["compare", str(fifo), str(fifo)], "is a FIFO")
    _refused(["bench", "neuron", "--device", "cpu", "--quick", "--sweep", str(suite_fifo)], "is a FIFO")
    # The results file of a run: found by the planner before anything is read or computed.
    os.mkfifo(tmp_path / "tiny.jsonl")
    suite = tiny_digits_suite(tmp_path)
    _refused(["run", str(suite), "--results-dir", str(tmp_path)], "tiny.jsonl: results file is a FIFO")
    with pytest.raises(UnusableInputError, match="is a FIFO"):
        snnbench.run(suite, results_dir=tmp_path)
    with pytest.raises(UnusableInputError, match="is a FIFO"):
        snnbench.load_results(fifo)


@pytest.mark.timeout(60)
def test_output_paths_are_checked_before_any_work(tmp_path):
    suite = tiny_digits_suite(tmp_path)
    cache = tmp_path / "cache"
    runs = tmp_path / "runs"
    runs.mkdir()
    # /dev/null would swallow every computed record: refused before the first cell.
    (runs / "tiny.jsonl").symlink_to("/dev/null")
    _refused(["run", str(suite), "--results-dir", str(runs), "--cache-dir", str(cache)], "is a character device")
    assert not cache.exists(), "work started"
    (runs / "tiny.jsonl").unlink()
    # Earlier records stay as they were when the claims or lock path is unusable.
    (runs / "tiny.jsonl").write_text(json.dumps(RECORD) + "\n")
    before = (runs / "tiny.jsonl").read_bytes()
    (runs / "tiny.jsonl.claims").write_text("a file where the claims folder belongs")
    _refused(["run", str(suite), "--results-dir", str(runs), "--cache-dir", str(cache)], "claims folder", "is a file")
    (runs / "tiny.jsonl.claims").unlink()
    (runs / "tiny.jsonl.lock").mkdir()
    _refused(["run", str(suite), "--results-dir", str(runs), "--cache-dir", str(cache)], "lock file is a folder")
    assert (runs / "tiny.jsonl").read_bytes() == before and not cache.exists()
    # --out of export and leaderboard: a folder, a FIFO or a device is refused before reading.
    os.mkfifo(tmp_path / "out.fifo")
    for out, needle in ((tmp_path, "is a folder"), (tmp_path / "out.fifo", "is a FIFO"), ("/dev/null", "device")):
        _refused(["export", str(runs / "tiny.jsonl"), "--out", str(out)], "--out", needle)
        _refused(["leaderboard", "--runs", str(runs), "--out", str(out)], "leaderboard --out", needle)
    _refused(["plot", str(runs / "tiny.jsonl"), "--out", str(tmp_path / "out.fifo")], "--out", "is a FIFO")


def test_symlink_loops_sockets_and_long_names_are_named(tmp_path):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    _refused(["validate", str(tmp_path / "a.yaml")], "a.yaml: suite file is a loop of symlinks")
    _refused(["table", str(tmp_path / "a.yaml")], "is a loop of symlinks")
    (tmp_path / "gone.jsonl").symlink_to(tmp_path / "missing.jsonl")
    _refused(["table", str(tmp_path / "gone.jsonl")], "is a symlink to", "which does not exist")
    sock_path = tmp_path / "s.jsonl"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        _refused(["table", str(sock_path)], "s.jsonl: input file is a socket")
        with pytest.raises(UnusablePathError, match="is a socket"):
            open_input(sock_path, "results file")
    long_name = "n" * 250
    _refused(["validate", str(tiny_digits_suite(tmp_path, name=long_name[:230]))], "name", "at most 200")
    with pytest.raises(UnusablePathError, match="at most 255"):
        output_file(tmp_path / f"{long_name}.jsonl.claims", "claims folder")
    with pytest.raises(UnusablePathError, match="at most 255"):
        input_file(tmp_path / ("x" * 300), "suite file")
    with pytest.raises(UnusablePathError, match="at most 4096"):
        input_file("/".join(["d" * 200] * 30), "suite file")


@pytest.mark.timeout(60)
def test_bench_out_is_checked_before_any_timing(tmp_path):
    (tmp_path / "taken.json").mkdir()
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "null").mkdir()
    (tmp_path / "null" / "ftbc.json").symlink_to("/dev/null")
    for out, needle in (
        (tmp_path / "taken.json", "is a folder"),
        (tmp_path / "pipe", "is a FIFO"),
        (tmp_path / "null" / "ftbc.json", "is a character device"),
    ):
        args = ["bench", "ftbc", "--device", "cpu", "--quick", "--out", str(out)]
        text = _refused(args, "--out", needle)
        assert "T=" not in text and "wrote" not in text, text  # refused before any timing


@pytest.mark.timeout(60)
def test_a_fifo_inside_a_folder_of_inputs_is_skipped_with_a_warning(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "good.jsonl").write_text(json.dumps(RECORD) + "\n")
    os.mkfifo(runs / "pipe.jsonl")
    os.mkfifo(runs / "pipe.json")
    for args in (
        ["table", str(runs), "--no-published", "--format", "md"],
        ["export", str(runs)],
        ["leaderboard", "--runs", str(runs), "--bench", str(runs), "--published-dir", str(tmp_path)],
    ):
        result = runner.invoke(app, args)
        text = " ".join(result.output.split())
        assert result.exit_code == 0, (args, result.output)
        assert "pipe.jsonl: input file is a FIFO" in text or "pipe.jsonl: results file is a FIFO" in text, text
        assert "digits" in text
    # A FIFO where a figure will be written is refused, not waited on.
    plots = tmp_path / "plots"
    plots.mkdir()
    os.mkfifo(plots / "acc_vs_t_digits_digits_cnn.png")
    _refused(["plot", str(runs / "good.jsonl"), "--out", str(plots), "--no-published"], "figure file is a FIFO")


@pytest.mark.timeout(60)
def test_a_folder_option_given_a_fifo_or_loop_names_what_it_is(tmp_path):
    # --runs/--bench said "folder not found" for a FIFO that exists; --cache-dir called a FIFO "a file"
    # and a symlink loop "File exists": the one opener names each, before any cell runs.
    fifo, loop = tmp_path / "pipe", tmp_path / "loop"
    os.mkfifo(fifo)
    loop.symlink_to(loop)
    _refused(["leaderboard", "--runs", str(fifo), "--bench", str(tmp_path)], "pipe: --runs is a FIFO (named pipe)",
             "expected a folder of results files")  # fmt: skip
    _refused(["leaderboard", "--runs", str(tmp_path), "--bench", str(loop)], "loop: --bench is a loop of symlinks")
    suite = tiny_digits_suite(tmp_path)
    _refused(["validate", str(suite), "--deep", "--cache-dir", str(fifo)], "cache folder", "is a FIFO (named pipe)")
    _refused(["run", str(suite), "--results-dir", str(tmp_path / "r"), "--cache-dir", str(loop)],
             "cache folder", "is a loop of symlinks")  # fmt: skip
    assert not (tmp_path / "r" / "tiny.jsonl").exists()
    with pytest.raises(UnusableInputError, match="is a FIFO"):
        snnbench.run(suite, results_dir=tmp_path / "r", cache_dir=fifo)


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda p: snnbench.load_suite(5), "suite (a path"),
        (lambda p: snnbench.load_suite(b"suite.yaml"), "got bytes"),
        (lambda p: snnbench.load_results(None), "paths: expected a path"),
        (lambda p: snnbench.load_results({"a.jsonl": 1}), "got dict"),  # its keys were read as paths
        (lambda p: snnbench.load_results([p, 3]), "paths[1]: expected a path"),
        (lambda p: snnbench.compare(p, 2), "new: expected a path"),
        (lambda p: snnbench.run(p, results_dir=5), "results_dir: expected a path"),
    ],
)
def test_the_api_names_the_parameter_given_a_non_path(call, needle, tmp_path):
    # pathlib's "expected str, bytes or os.PathLike object, not int" named no parameter
    with pytest.raises(TypeError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        call(str(tiny_digits_suite(tmp_path)))
    assert not (tmp_path / "results").exists()
