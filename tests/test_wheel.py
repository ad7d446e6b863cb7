"""A built wheel carries what the package reads (published rows, the neuron sweep): installed into a
fresh virtual environment, away from the checkout, `snnbench table` shows the published rows beside a
record, the neuron bench finds its sweep, and the git SHA is unknown rather than borrowed."""

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import REPO


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_shows_published_rows(tmp_path):
    # Built from a copy of the tracked sources: setuptools leaves build/ behind, and a stale one
    # in the checkout would put deleted modules into the wheel.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md", "LICENSE", "snnbench", "kernels"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif (REPO / name).exists():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("snnbench-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    # Dependencies (torch, pandas ...) from this interpreter's environment, listed after the wheel's
    # own folder; a .pth line adds the folder without running its editable-install hooks.
    (site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    results = tmp_path / "elsewhere" / "one.jsonl"
    results.parent.mkdir()
    record = {
        "schema": 1,
        "key": "cifar100/vgg16/qcfs/seed=0/x",
        "dataset": "cifar100",
        "model": "vgg16",
        "method": "qcfs",
        "seed": 0,
        "metrics": {"ann_acc": 70.0, "snn_acc": {"4": 50.0}},
    }
    results.write_text(json.dumps(record) + "\n")
    env = {"PATH": "/usr/bin:/bin", "TRITON_INTERPRET": "1"}

    def installed(*args: str) -> subprocess.CompletedProcess:
        """The installed package's interpreter, outside the source tree, with a bare environment."""
        result = subprocess.run(
            [str(python), *args], cwd=results.parent, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result

    where = installed("-c", "import snnbench; print(snnbench.__file__, snnbench.__version__)")
    assert str(site) in where.stdout and "0+unknown" not in where.stdout
    shipped = installed(
        "-c",
        "from snnbench.bench.neuron import load_sweep; from snnbench.bench.sweep import default_sweep_file; "
        "from snnbench.records.env import git_sha; print(default_sweep_file()); "
        "print(sorted(load_sweep())); print(git_sha())",
    )
    sweep_file, keys, sha = shipped.stdout.strip().splitlines()
    assert sweep_file.startswith(str(site)) and "'timesteps'" in keys
    assert sha == "None"
    shown = installed("-m", "snnbench", "table", str(results), "--format", "md")
    assert "| measured |" in shown.stdout and "published [" in shown.stdout
    assert "QCFS official repository" in shown.stdout
