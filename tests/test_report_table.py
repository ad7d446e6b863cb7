"""Leaderboards: mean ± std over seeds, variants kept apart, best marked, published rows beside."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from snnbench.cli import app
from snnbench.report.published import PublishedError, load_published, load_source, published_records
from snnbench.report.table import (
    build_leaderboard,
    leaderboard,
    render_csv,
    render_html,
    render_latex,
    render_markdown,
)

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
# The source table of published numbers the project was briefed with (not part of the repository):
# set SNNBENCH_PUBLISHED_REFERENCE to its path to check that every number in it was transcribed.
PUBLISHED_MD = Path(os.environ.get("SNNBENCH_PUBLISHED_REFERENCE", "/nonexistent/published-results.md"))


def conversion(method="qcfs", seed=0, ann=98.0, accs=(50.0, 90.0, 97.0), epochs=5, dataset="digits", **extra):
    metrics = {
        "ann_acc": ann,
        "snn_acc": {str(t): a for t, a in zip((1, 2, 4), accs)},
        "calibrate_s": 0.5,
        "train_s": 3.0,
        "ann_source": "trained",
        **extra,
    }
    return {
        "schema": 1,
        "key": f"{dataset}/digits_cnn/{method}/seed={seed}/e{epochs}",
        "suite": "s",
        "track": "conversion",
        "dataset": dataset,
        "model": "digits_cnn",
        "method": method,
        "seed": seed,
        "config": {
            "training": {"epochs": epochs},
            "method": {"name": method, "params": {}},
            "seed": seed,
            "timesteps": [1, 2, 4],
        },
        "metrics": metrics,
        "env": {"hardware": {"device": "cpu", "name": "x86_64"}},
    }


def training(method, seed=0, acc=80.0, speed=10.0, active=0.01, hidden=200):
    return {
        "schema": 1,
        "key": f"fmnist/snn_mlp/{method}/seed={seed}/h{hidden}",
        "suite": "t",
        "track": "training",
        "dataset": "fmnist",
        "model": "snn_mlp",
        "method": method,
        "seed": seed,
        "config": {"model": {"name": "snn_mlp", "params": {"hidden": hidden}}, "seed": seed},
        "metrics": {
            "test_acc": acc,
            "bwd_speedup": speed,
            "step_speedup": speed / 4,
            "active_fraction": active,
            "hidden": hidden,
            "peak_mem_bytes": 2**20 * 3,
        },
    }


def test_mean_and_sample_std_over_seeds():
    board = leaderboard([conversion(seed=0, ann=97.0), conversion(seed=1, ann=99.0)])
    row = board.iloc[0]
    assert row["ANN"] == pytest.approx(98.0)
    assert row["ANN_std"] == pytest.approx(2**0.5)  # sample std of {97, 99}
    assert row["seeds"] == 2
    assert list(board.attrs["metrics"][:4]) == ["ANN", "T=1", "T=2", "T=4"]


def test_different_settings_are_separate_rows_labelled_by_what_differs():
    board = leaderboard([conversion(epochs=5), conversion(epochs=40, ann=99.0)])
    assert sorted(board["variant"]) == ["epochs=40", "epochs=5"]
    assert len(board) == 2


def test_best_per_column_is_marked_in_markdown():
    records = [conversion("qcfs", accs=(50.0, 90.0, 97.0)), conversion("ftbc", accs=(80.0, 95.0, 96.0))]
    text = render_markdown(build_leaderboard(records))
    lines = {
        line.split("|")[1].strip(): line
        for line in text.splitlines()
        if line.startswith("| q") or line.startswith("| f")
    }
    assert "**80.00**" in lines["ftbc"] and "**95.00**" in lines["ftbc"] and "**97.00**" in lines["qcfs"]
    assert "**50.00**" not in lines["qcfs"]
    # Equal values are both best; a time column is best when lowest.
    assert lines["qcfs"].count("**0.5") == 1 and lines["ftbc"].count("**0.5") == 1


def test_cached_ann_has_no_train_time():
    cached = conversion(ann_source="cache", train_s=0.0)
    assert "train_s" not in build_leaderboard([cached]).sections[0].columns


def test_training_columns_and_published_rows_beside():
    records = [training("surrogate", speed=1.0, active=1.0, acc=82.0), training("localzo", speed=40.0, acc=83.0)]
    board = build_leaderboard(records, load_published())
    (section,) = board.sections  # only the fmnist published rows: same dataset
    assert section.title == "fmnist · snn_mlp"
    for col in ("test_acc", "bwd_speedup", "step_speedup", "active_fraction", "peak_mem_MiB"):
        assert col in section.columns
    sources = list(section.frame["source"])
    assert sources[:2] == ["measured", "measured"] and set(sources[2:]) == {"published"}
    text = render_markdown(board)
    assert "published [1]" in text and "Perez-Nieves" in text
    assert "| **3.00** |" in text  # peak memory in MiB (a tie: both best)
    # Published rows are not mixed into the measured mean.
    assert section.frame.loc[section.frame["method"] == "localzo", "test_acc"].item() == 83.0


def test_no_published_and_group_by():
    records = [conversion(), conversion(dataset="other")]
    board = build_leaderboard(records, load_published(), include_published="none", group_by=["none"])
    assert len(board.sections) == 1 and len(board.sections[0].frame) == 2
    board = build_leaderboard(records, [], group_by=["dataset"])
    assert [s.title for s in board.sections] == ["digits", "other"]


def test_every_format_renders_marks(tmp_path):
    records = [conversion("qcfs"), conversion("ftbc", accs=(60.0, 91.0, 98.0))]
    pub = [s for s in load_published() if s.id == "qcfs-cifar"]
    board = build_leaderboard(records + [conversion(dataset="cifar100")], pub)
    html = render_html(board)
    assert "<strong>98.00</strong>" in html and 'class="published"' in html and "<caption>" in html
    latex = render_latex(board)
    assert "\\textbf{98.00}" in latex and "\\toprule" in latex and "digits\\_cnn" in latex
    assert "\\textit{" in latex  # the published cifar100 rows
    rows = list(csv.DictReader(io.StringIO(render_csv(board))))
    best = {r["method"]: r["best"] for r in rows if r["source"] == "measured" and r["dataset"] == "digits"}
    assert "T=4" in best["ftbc"] and "T=4" not in best["qcfs"]
    assert float(rows[0]["T=4"]) in (97.0, 98.0)


def test_table_cli_formats_and_bad_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    good = conversion()
    path.write_text(json.dumps(good) + "\n" + '{"key": "broken", "metri' + "\n" + json.dumps(conversion(seed=1)) + "\n")
    for fmt in ("rich", "md", "csv", "html", "latex"):
        result = runner.invoke(app, ["table", str(path), "--format", fmt, "--no-published"])
        assert result.exit_code == 0, result.output
        assert "r.jsonl:2: not valid JSON" in " ".join(result.output.split())
    result = runner.invoke(app, ["table", str(path), "--format", "md", "--group-by", "method"])
    assert "### qcfs" in result.output
    bad = runner.invoke(app, ["table", str(path), "--format", "pdf"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["table", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "not found" in missing.output


def test_published_files_load_and_carry_sources():
    sources = load_published()
    assert {s.id for s in sources} >= {
        "ftbc-eccv2024",
        "qcfs-cifar",
        "snn-calibration",
        "sparseprop",
        "localzo",
        "spikingjelly-kernels",
    }
    for s in sources:
        assert s.source and s.url, s.path
    rows = published_records(sources)
    ftbc = [r for r in rows if r["dataset"] == "imagenet" and r["model"] == "vgg16" and r["label"] == "FTBC(+QCFS)"]
    assert ftbc[0]["metrics"]["snn_acc"]["4"] == 58.83 and ftbc[0]["metrics"]["ann_acc"] == 73.91


def test_bad_published_file_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nsource: y\nrows:\n  - {dataset: d, model: m}\n")
    with pytest.raises(PublishedError, match=r"bad.yaml: rows\[0\]: missing method"):
        load_source(bad)


def _numbers(values):
    for v in values:
        if isinstance(v, dict):
            yield from _numbers(v.values())
        elif isinstance(v, list):
            yield from _numbers(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield float(v)


@pytest.mark.skipif(not PUBLISHED_MD.exists(), reason="SNNBENCH_PUBLISHED_REFERENCE names no file")
def test_every_published_number_is_transcribed():
    """Every decimal number of published-results.md appears in snnbench/published/*.yaml (percent
    values of active neurons as fractions; text-only claims in their text)."""
    text = PUBLISHED_MD.read_text()
    wanted = {float(m) for m in re.findall(r"(?<![\w.])(\d+\.\d+)(?![\w.])", text)}
    sources = load_published()
    have = set(_numbers([r["metrics"] for s in sources for r in s.rows]))
    have |= set(_numbers([s.bench_rows for s in sources]))
    words = " ".join(" ".join(s.claims + s.setup + s.notes) for s in sources)
    missing = sorted(
        x
        for x in wanted
        if not any(abs(x - h) < 1e-9 or abs(x / 100 - h) < 1e-12 for h in have) and str(x) not in words
    )
    assert not missing, f"numbers of {PUBLISHED_MD.name} missing from snnbench/published: {missing}"
