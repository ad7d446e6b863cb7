"""The metric catalog is the one place a metric is defined: every reader follows it."""

import json

import pytest

from snnbench.report import metrics
from snnbench.report.benchrows import is_measurement
from snnbench.report.compare import tolerance_for
from snnbench.report.inputs import load_inputs
from snnbench.report.leaderboard import HEADLINE
from snnbench.report.metrics import CATALOG, Metric, direction, label, lookup, unit
from snnbench.report.table import NAMED_COLUMNS, record_row
from tests.helpers import REPO


def test_each_metric_is_defined_once_and_coherently():
    names = [m.name for m in CATALOG]
    assert len(names) == len(set(names)), "a metric is defined twice"
    columns = [m.column for m in CATALOG if m.column]
    assert len(columns) == len(set(columns))
    with pytest.raises(ValueError, match="needs a direction"):
        Metric("x_ms", None)
    # The readers take their columns, headline fields and tolerances from the catalog.
    assert NAMED_COLUMNS[0] == ("test_acc", "test_acc", 1.0)
    assert ("peak_mem_MiB", "peak_mem_bytes", 1.0 / 2**20) in NAMED_COLUMNS
    assert HEADLINE[:2] == ("ms", "median_ms")
    assert str(tolerance_for("snn_acc.4", [])) == "1%" and str(tolerance_for("bwd_ms", [])) == "10%"


def test_names_columns_and_families_resolve():
    assert lookup("snn_acc.8") is lookup("T=8") is lookup("snn_acc")
    assert lookup("snn_acc.x") is not lookup("snn_acc")
    assert direction("layers.hidden2.bwd_ms") == "lower" and unit("layers.hidden2.bwd_ms") == "ms"
    assert direction("peak_mem_MiB") == "lower"  # a leaderboard column name resolves too
    assert direction("hidden") is None and not is_measurement("hidden", 512)
    assert is_measurement("bytes", 4096) and is_measurement("frac_of_ceiling", 1)
    assert label("bwd_speedup") == "backward speed-up vs dense BPTT (×)"
    assert label("some_new_thing") == "some new thing"
    assert lookup("neurobench.activation_sparsity").neurobench == "ActivationSparsity"


def test_adding_a_metric_is_one_entry(monkeypatch):
    """A scoped metric (hidden layer 2's forward+backward speed-up) added as one catalog entry gets
    its direction, unit, label, tolerance and leaderboard column everywhere."""
    entry = Metric(
        "layers.hidden2.step_speedup",
        "higher",
        "x",
        "hidden layer 2 speed-up (×)",
        column="l2_speedup",
        scope="hidden layer 2, forward+backward",
    )
    monkeypatch.setattr(metrics, "CATALOG", (entry, *CATALOG))
    metrics.lookup.cache_clear()
    try:
        assert metrics.direction("layers.hidden2.step_speedup") == "higher"
        assert metrics.unit("layers.hidden2.step_speedup") == "x"
        assert ("l2_speedup", entry.name, 1.0) in metrics.leaderboard_columns()
        record = {
            "dataset": "d",
            "model": "m",
            "method": "x",
            "metrics": {"layers": {"hidden2": {"step_speedup": 3.0}}},
        }
        monkeypatch.setattr("snnbench.report.table.NAMED_COLUMNS", metrics.leaderboard_columns())
        assert record_row(record, ["dataset", "model", "method"])["l2_speedup"] == 3.0
    finally:
        metrics.lookup.cache_clear()


def test_every_committed_measurement_has_an_entry():
    """Every metric of the committed records has a unit or a role, so exports and gates know it."""
    inputs = load_inputs([REPO / "results/runs"])
    flat = {name for r in inputs.records for name, _ in metrics.flatten(r["metrics"])}
    unknown = sorted(n for n in flat if lookup(n) is None and not n.startswith(("dense_baseline.", "rule.")))
    assert not unknown, json.dumps(unknown)
