"""Sweeps: cells are recorded once, reruns skip them, --force reruns, a SIGKILLed sweep resumes."""

import pytest

from snnbench.config import load_suite
from snnbench.records.cells import expand
from snnbench.records.store import read_records
from snnbench.runner.sweep import plan_sweep, run_suite
from tests.helpers import invoke_cli, tiny_digits_suite


def test_cell_keys_are_stable_and_settings_sensitive(tmp_path):
    a = expand(load_suite(tiny_digits_suite(tmp_path, name="a")))
    b = expand(load_suite(tiny_digits_suite(tmp_path, name="a")))
    assert [c.key for c in a] == [c.key for c in b]
    changed = expand(load_suite(tiny_digits_suite(tmp_path, name="a", training={"epochs": 2})))
    assert a[0].key != changed[0].key
    moved = expand(
        load_suite(
            tiny_digits_suite(
                tmp_path,
                name="a",
                datasets=[{"name": "digits", "limit_train": 256, "limit_test": 128, "root": "/elsewhere"}],
            )
        )
    )
    assert a[0].key == moved[0].key  # where data lives does not change the result
    on_gpu = expand(load_suite(tiny_digits_suite(tmp_path, name="a", device="cuda")))
    on_cpu = expand(load_suite(tiny_digits_suite(tmp_path, name="a", device="cpu")))
    assert on_gpu[0].key != on_cpu[0].key  # timings differ: a CPU record must not stand for a GPU cell
    assert on_cpu[0].key == a[0].key or a[0].device == "cuda"  # auto resolves to what this machine has


def test_rerun_skips_and_force_reruns(tmp_path):
    suite = load_suite(tiny_digits_suite(tmp_path, seeds=[0, 1]))
    out, cache = tmp_path / "out", tmp_path / "cache"
    first = run_suite(suite, results_dir=out, cache_dir=cache)
    assert len(first.ran) == 2 and not first.failed
    again = run_suite(suite, results_dir=out, cache_dir=cache)
    assert again.ran == [] and again.skipped == 2
    forced = run_suite(suite, results_dir=out, cache_dir=cache, force=True)
    assert len(forced.ran) == 2
    records = read_records(out / "tiny.jsonl").records
    assert len(records) == 4
    record = records[0]
    for field in ("schema", "key", "config", "metrics", "env", "wall_s", "finished_at"):
        assert field in record
    assert set(record["metrics"]["snn_acc"]) == {"1", "2", "4"}
    for field in ("ann_acc", "train_s", "calibrate_s", "evaluate_s"):
        assert field in record["metrics"]
    for field in ("torch", "python", "git_sha", "hardware", "time"):
        assert field in record["env"]
    # The trained ANN is cached: the forced rerun trained nothing.
    assert {r["metrics"]["ann_source"] for r in records[2:]} == {"cache"}


def test_truncated_line_cell_is_redone(tmp_path):
    suite = load_suite(tiny_digits_suite(tmp_path))
    out = tmp_path / "out"
    run_suite(suite, results_dir=out, cache_dir=tmp_path / "cache")
    path = out / "tiny.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # a crash mid-write
    plan = plan_sweep(suite, out)
    assert len(plan.todo) == 1 and plan.problems
    result = invoke_cli("run", tmp_path / "tiny.yaml", "--results-dir", out, "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert "truncated" in result.stdout
    assert len(read_records(path, warn=False).records) == 1


@pytest.mark.parametrize("augment,root", [(False, False), (True, True)], ids=["plain", "augment-and-root"])
def test_a_sweep_reads_its_dataset_once(tmp_path, monkeypatch, augment, root):
    # The preflight check and every cell share one load of the dataset's files, also when the suite
    # augments (the cells ask for it) and names the dataset's root (the preflight used to spell it).
    import snnbench.data.digits as digits

    calls = []
    original = digits.load_digits_split
    monkeypatch.setattr(digits, "load_digits_split", lambda: calls.append(1) or original())
    dataset = {"name": "digits", "limit_train": 200, "limit_test": 64} | (
        {"root": str(tmp_path / "data")} if root else {}
    )
    training = {"epochs": 1, "batch_size": 64, "lr": 0.05, "augment": augment}
    suite = load_suite(tiny_digits_suite(tmp_path, name="once", seeds=[0, 1], datasets=[dataset], training=training))
    summary = run_suite(suite, results_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    assert len(summary.ran) == 2
    assert len(calls) == 1
