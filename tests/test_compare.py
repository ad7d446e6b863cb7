"""`snnbench compare`: the right direction per metric, tolerances, and exit codes 0 / 1 / 2."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.report.compare import Tolerance, compare_files, parse_tolerance
from snnbench.report.metrics import direction
from tests.helpers import digits_record

runner = CliRunner()


def record(key: str = "digits/digits_cnn/qcfs/seed=0/abc", **metrics) -> dict:
    base = {
        "ann_acc": 98.0,
        "snn_acc": {"1": 50.0, "4": 97.0, "8": 98.0},
        "calibrate_s": 1.0,
        "snn_acc_curve": [50.0, 90.0, 95.0, 97.0],
        "test_samples": 450,
        "ann_source": "trained",
    }
    base.update(metrics)
    return digits_record(key, metrics=base)


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_bench(path: Path, rows, **top) -> Path:
    path.write_text(json.dumps({"env": {"hardware": {"device": "cuda", "name": "NVIDIA H200"}}, "rows": rows, **top}))
    return path


def neuron_rows(scale: float = 1.0, speed: float = 1.0):
    rows = []
    for impl in ("triton", "torch"):
        for t in (4, 32):
            rows.append(
                {
                    "impl": impl,
                    "T": t,
                    "N": 1048576,
                    "dtype": "fp32",
                    "mode": "fwd",
                    "median_ms": 0.1 * t * scale,
                    "bytes": 8 * t * 1048576,
                    "gbps": 900.0 / scale,
                    "frac_of_ceiling": 0.9 / scale,
                    "speedup": 3.0 * speed,
                }
            )
    return rows


def test_directions():
    assert direction("snn_acc.4") == direction("ann_acc") == direction("test_acc") == "higher"
    assert direction("bwd_speedup") == direction("speedup") == direction("calibration_speedup") == "higher"
    assert direction("median_ms") == direction("calibrate_s") == direction("layers.fc1.bwd_ms") == "lower"
    assert direction("gbps") == direction("frac_of_ceiling") == "higher"
    assert direction("peak_mem_bytes") == "lower"
    assert direction("active_fraction") is None and direction("bytes") is None


def test_identical_results_exit_0(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [record()])
    result = runner.invoke(app, ["compare", str(a), str(a)])
    assert result.exit_code == 0, result.output
    assert "0 regressed" in result.output


def test_worse_on_purpose_exits_1_and_names_the_metric(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [record()])
    worse = record(snn_acc={"1": 50.0, "4": 90.0, "8": 98.0})
    b = write_jsonl(tmp_path / "b.jsonl", [worse])
    result = runner.invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 1, result.output
    assert "snn_acc.4" in result.output and "REGRESSED" in result.output
    # The same drop is fine under an absolute tolerance of 8 points.
    result = runner.invoke(app, ["compare", str(a), str(b), "--tolerance", "snn_acc.*=8pt"])
    assert result.exit_code == 0, result.output


def test_time_is_lower_better(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [record(calibrate_s=1.0)])
    slower = write_jsonl(tmp_path / "b.jsonl", [record(calibrate_s=1.5)])
    faster = write_jsonl(tmp_path / "c.jsonl", [record(calibrate_s=0.5)])
    assert compare_files(a, slower).exit_code() == 1
    assert compare_files(a, faster).exit_code() == 0
    assert compare_files(a, slower, ["calibrate_s=60"]).exit_code() == 0
    assert compare_files(a, slower, ignore=["*_s"]).exit_code() == 0
    improved = [c for c in compare_files(a, faster).changes if c.metric == "calibrate_s"]
    assert improved[0].status == "improved"


def test_descriptive_metrics_are_not_gated(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [record(test_samples=450)])
    b = write_jsonl(tmp_path / "b.jsonl", [record(test_samples=100)])
    cmp = compare_files(a, b)
    assert cmp.exit_code() == 0
    assert [c.status for c in cmp.changes if c.metric == "test_samples"] == ["info"]


def test_nan_and_missing_cells_are_failures(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [record(), record(key="other")])
    b = write_jsonl(tmp_path / "b.jsonl", [record(ann_acc=float("nan"))])
    cmp = compare_files(a, b)
    assert [c.metric for c in cmp.regressions] == ["ann_acc"]
    assert cmp.missing_cells == ["other"]
    result = runner.invoke(app, ["compare", str(a), str(a.parent / "b.jsonl"), "--allow-missing"])
    assert result.exit_code == 1  # the NaN still regresses


def test_unusable_inputs_exit_2(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [record()])
    missing = runner.invoke(app, ["compare", str(a), str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "not found" in missing.output

    other_schema = record()
    other_schema["schema"] = 2
    b = write_jsonl(tmp_path / "b.jsonl", [other_schema])
    result = runner.invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 2 and "schema" in result.output

    c = write_jsonl(tmp_path / "c.jsonl", [record(key="something/else")])
    result = runner.invoke(app, ["compare", str(a), str(c)])
    assert result.exit_code == 2 and "no common cells" in result.output

    bench = write_bench(tmp_path / "neuron.json", neuron_rows())
    result = runner.invoke(app, ["compare", str(a), str(bench)])
    assert result.exit_code == 2 and "different kinds" in result.output

    result = runner.invoke(app, ["compare", str(a), str(a), "--tolerance", "ms"])
    assert result.exit_code == 2 and "METRIC=PCT" in result.output


def test_bench_rows_are_cells_keyed_by_their_fields(tmp_path):
    base = write_bench(tmp_path / "base.json", neuron_rows())
    same = write_bench(tmp_path / "same.json", list(reversed(neuron_rows())))  # row order is irrelevant
    assert runner.invoke(app, ["compare", str(base), str(same)]).exit_code == 0

    slow = write_bench(tmp_path / "slow.json", neuron_rows(scale=1.5))
    result = runner.invoke(app, ["compare", str(base), str(slow)])
    assert result.exit_code == 1
    assert "impl=triton" in result.output and "T=32" in result.output
    regressed = {c.metric for c in compare_files(base, slow).regressions}
    assert regressed == {"median_ms", "gbps", "frac_of_ceiling"}  # bytes is descriptive

    faster_kernel = write_bench(tmp_path / "fast.json", neuron_rows(scale=0.5, speed=2.0))
    assert runner.invoke(app, ["compare", str(base), str(faster_kernel)]).exit_code == 0

    other = write_bench(tmp_path / "sparse.json", neuron_rows(), bench="sparse")
    named = write_bench(tmp_path / "neuron2.json", neuron_rows(), bench="neuron")
    result = runner.invoke(app, ["compare", str(named), str(other)])
    assert result.exit_code == 2 and "different benchmarks" in result.output


def test_hardware_change_is_warned(tmp_path):
    base = write_bench(tmp_path / "base.json", neuron_rows())
    data = json.loads(base.read_text())
    data["env"]["hardware"]["name"] = "NVIDIA H100 80GB HBM3"
    other = tmp_path / "h100.json"
    other.write_text(json.dumps(data))
    result = runner.invoke(app, ["compare", str(base), str(other)])
    assert "different hardware" in " ".join(result.output.split())


def test_corrupt_line_is_a_warning_not_a_crash(tmp_path):
    good = record()
    a = write_jsonl(tmp_path / "a.jsonl", [good])
    b = tmp_path / "b.jsonl"
    b.write_text(json.dumps(good) + "\n" + '{"key": "digits/x", "metr' + "\n" + "[1, 2]\n")
    result = runner.invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "b.jsonl:2: not valid JSON" in text and "b.jsonl:3" in text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ms=10", ("ms", Tolerance(10.0))),
        ("snn_acc.*=0.5pt", ("snn_acc.*", Tolerance(0.5, absolute=True))),
        ("*_s=50%", ("*_s", Tolerance(50.0))),
    ],
)
def test_parse_tolerance(text, expected):
    assert parse_tolerance(text) == expected


@pytest.mark.parametrize("bad", ["ms", "=5", "ms=fast", "ms=-1"])
def test_parse_tolerance_rejects(bad):
    with pytest.raises(ValueError):
        parse_tolerance(bad)


def test_latest_record_of_a_key_is_compared(tmp_path):
    old = record(ann_acc=10.0)
    rerun = copy.deepcopy(record())
    a = write_jsonl(tmp_path / "a.jsonl", [record()])
    b = write_jsonl(tmp_path / "b.jsonl", [old, rerun])  # a --force rerun supersedes
    assert compare_files(a, b).exit_code() == 0
