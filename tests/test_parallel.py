"""`snnbench run --jobs N`: cells in worker processes give the records of a serial run (up to timing
fields and order), each recorded once; the methods of one ANN stay together so it is trained once."""

import torch

from snnbench.config import load_suite
from snnbench.records.cells import expand
from snnbench.records.store import read_records
from snnbench.runner.groups import grouped, shared_work_key
from snnbench.runner.sweep import plan_sweep, run_suite
from tests.helpers import tiny_digits_suite

TIMING = ("wall_s", "finished_at")


def _without_timing(value):
    """A record with every timing field (``*_s``, times, the fingerprint) left out."""
    if isinstance(value, dict):
        return {
            k: _without_timing(v) for k, v in value.items() if k not in TIMING and k != "env" and not k.endswith("_s")
        }
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _suite(tmp_path):
    return load_suite(
        tiny_digits_suite(
            tmp_path,
            datasets=[{"name": "digits", "limit_train": 128, "limit_test": 64}],
            models=[{"name": "digits_cnn", "width": 4}],
            methods=["qcfs", "light"],
            seeds=[0, 1],
            timesteps=[1, 2],
            training={"epochs": 1, "batch_size": 64, "lr": 0.05},
        )
    )


def test_methods_of_one_ann_form_one_group(tmp_path):
    cells = expand(_suite(tmp_path))
    groups = grouped(cells)
    assert [[(c.method.name, c.seed) for c in g] for g in groups] == [
        [("qcfs", 0), ("light", 0)],
        [("qcfs", 1), ("light", 1)],
    ]
    assert shared_work_key(groups[0][0]) != shared_work_key(groups[1][0])
    # The plan runs a group's cells one after another (the ANN is prepared once per process).
    assert [(c.method.name, c.seed) for c in plan_sweep(_suite(tmp_path), tmp_path / "o").todo] == [
        ("qcfs", 0),
        ("light", 0),
        ("qcfs", 1),
        ("light", 1),
    ]


def test_two_jobs_record_what_one_job_records(tmp_path):
    suite = _suite(tmp_path)
    torch.set_num_threads(1)  # the workers' share below: one thread each, as here
    serial = run_suite(suite, results_dir=tmp_path / "serial", cache_dir=tmp_path / "c1", jobs=1)
    parallel = run_suite(suite, results_dir=tmp_path / "parallel", cache_dir=tmp_path / "c2", jobs=2)
    assert not serial.failed and not parallel.failed
    assert all(o.threads == 1 for o in parallel.ran) and all(o.threads is None for o in serial.ran)
    one = {r["key"]: r for r in read_records(serial.path).records}
    two = read_records(parallel.path).records
    assert sorted(r["key"] for r in two) == sorted(one)  # each cell recorded once
    for record in two:
        assert _without_timing(record) == _without_timing(one[record["key"]])
        assert record["env"]["hardware"]["torch_threads"] == 1
    # Each ANN was trained by the first of its methods and reused by the other.
    sources = {(r["method"], r["seed"]): r["metrics"]["ann_source"] for r in two}
    assert sources == {("qcfs", 0): "trained", ("light", 0): "cache", ("qcfs", 1): "trained", ("light", 1): "cache"}
