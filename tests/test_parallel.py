"""`snnbench run --jobs N`: the methods of one ANN form one group of shared work, planned together so
it is trained once. That a pool gives the records of a serial run, each once, with the ANN trained by
the first method of its group: tests/test_multi_suite.py (two tracks in one pool)."""

from snnbench.config import load_suite
from snnbench.records.cells import expand
from snnbench.runner.groups import grouped, shared_work_key
from snnbench.runner.sweep import plan_sweep
from tests.helpers import tiny_digits_suite


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
