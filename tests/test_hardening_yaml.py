"""One YAML reader: suites, base: files, --set values, bench sweeps and published rows are all read by
snnbench.strict_yaml, so an alias bomb, a duplicate key, a !!python tag, a syntax error, a folder or a
wrong type is one located line (exit 2) wherever it appears, quickly and without a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from snnbench.bench.sweep import default_sweep_file
from snnbench.cli import app
from snnbench.config import SuiteError, load_suite
from snnbench.errors import UnusableInputError
from tests.helpers import REPO, tiny_digits_suite

runner = CliRunner()

# Six levels of nine: 9**6 = 531 441 values once expanded (about 6 GB through yaml.safe_load's users).
_LEVELS = ["&a [" + ", ".join(["1"] * 9) + "]"] + [
    f"&{name} [" + ", ".join([f"*{below}"] * 9) + "]" for below, name in zip("abcde", "bcdef")
]
_BOMB_VALUE = "[" + ", ".join(_LEVELS) + "]"


def _refused(args: list[str], *needles: str) -> str:
    result = runner.invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, (args, result.output)
    assert "Traceback" not in result.output and not isinstance(result.exception, (KeyError, TypeError)), text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


@pytest.mark.timeout(60)
def test_set_values_go_through_the_strict_reader(tmp_path):
    suite = tiny_digits_suite(tmp_path)
    _refused(["validate", str(suite), "--set", f"seeds={_BOMB_VALUE}"], "--set 'seeds=", "alias bomb")
    _refused(["validate", str(suite), "--set", "training={epochs: 1, epochs: 2}"], "duplicate key 'epochs'")
    _refused(["validate", str(suite), "--set", "seeds=!!python/object/apply:os.getcwd []"], "python/object")
    _refused(["validate", str(suite), "--set", "seeds=[0, 1"], "--set 'seeds=[0, 1'", "YAML syntax error")
    with pytest.raises(SuiteError, match="alias bomb"):
        load_suite(suite, [f"seeds={_BOMB_VALUE}"])
    assert load_suite(suite, ["seeds=[0, 1]"]).seeds == [0, 1]


def _sweep(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(default_sweep_file().read_text())
    data["neuron"].update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.timeout(120)
def test_bench_sweep_files_are_read_strictly_and_validated(tmp_path):
    marker = tmp_path / "PWNED"
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text(f"neuron: !!python/object/apply:os.system ['touch {marker}']\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("neuron: [\n")
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text("neuron: {}\nneuron: {}\n")
    cases = [
        (tagged, ["tagged.yaml", "YAML error at line 1", "python/object"]),
        (broken, ["broken.yaml", "YAML syntax error at line 2"]),
        (duplicate, ["duplicate key 'neuron'", "first given at line 1"]),
        (tmp_path, ["bench sweep file is a folder"]),
        (_sweep(tmp_path, timesteps="many"), ["sweep.yaml", "neuron.timesteps", "valid list", "'many'"]),
    ]
    for path, needles in cases:
        _refused(["bench", "neuron", "--device", "cpu", "--quick", "--sweep", str(path)], *needles)
    assert not marker.exists(), "a payload ran"
    for changes, needle in (({"sizes": [0]}, "neuron.sizes: expected positive"), ({"dtypes": ["fp8"]}, "dtypes.0")):
        with pytest.raises(UnusableInputError, match=re.escape(needle)):
            from snnbench.bench.neuron import load_sweep

            load_sweep(_sweep(tmp_path, **changes))


def test_published_sources_are_read_strictly(tmp_path):
    from snnbench.report.published import PublishedError, load_published

    (tmp_path / "a.yaml").write_text("id: a\nsource: x\nid: b\n")
    with pytest.raises(PublishedError, match="duplicate key 'id'"):
        load_published(tmp_path)
    _refused(
        ["leaderboard", "--runs", str(tmp_path), "--bench", str(tmp_path), "--published-dir", str(tmp_path)], "a.yaml"
    )
    assert load_published()  # the shipped sources pass the strict reader
    with pytest.raises(PublishedError, match="is not a folder"):
        load_published(tmp_path / "a.yaml")


def test_no_module_reads_yaml_but_the_strict_reader():
    """The mechanism, kept: yaml.load / safe_load appear only in snnbench/strict_yaml.py."""
    offenders = []
    for path in sorted((REPO / "snnbench").rglob("*.py")):
        if path.name == "strict_yaml.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"\byaml\.(safe_load|load|full_load|unsafe_load|load_all|safe_load_all)\(", line):
                offenders.append(f"{path.relative_to(REPO)}:{number}")
    assert not offenders, f"YAML read outside snnbench.strict_yaml: {offenders}"


@pytest.mark.timeout(60)
def test_base_files_say_what_they_are(tmp_path):
    child = tmp_path / "child.yaml"
    (tmp_path / "loop_a.yaml").symlink_to(tmp_path / "loop_b.yaml")
    (tmp_path / "loop_b.yaml").symlink_to(tmp_path / "loop_a.yaml")
    cases = [
        ("loop_a.yaml", "base: loop_a.yaml", "is a loop of symlinks"),
        (".", "base: .", "suite file is a folder"),
        ("/dev/zero", "base: /dev/zero", "is a character device"),
    ]
    for base, *needles in cases:
        child.write_text(f"base: {base}\nname: child\n")
        _refused(["validate", str(child)], "child.yaml", *needles)
        with pytest.raises(SuiteError, match=needles[-1]):
            load_suite(child)
    # A 1,500-deep chain names the chain and the limit, at its top, not the last file read.
    for i in range(1500):
        (tmp_path / f"c{i}.yaml").write_text(f"base: c{i + 1}.yaml\n")
    (tmp_path / "c1500.yaml").write_text("name: deep\n")
    text = _refused(["validate", str(tmp_path / "c0.yaml")], "c0.yaml: base: a chain of more than 32 base files")
    assert "c0.yaml → c1.yaml" in text and "c1500" not in text
    # base cannot be --set (bases are merged first): said so, not "unknown key".
    suite = tiny_digits_suite(tmp_path)
    text = _refused(
        ["validate", str(suite), "--set", "base=other.yaml"], "--set 'base=other.yaml'", "base cannot be set"
    )
    assert "unknown key" not in text
