"""Readers say why: every skipped record is a warning with file and line; nothing usable, an unknown
--group-by field or a missing input folder is an error (exit 2), never a silent empty report."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from snnbench.cli import app
from tests.helpers import digits_record

runner = CliRunner()


def _good(seed: int = 0) -> dict:
    return digits_record(f"digits/digits_cnn/qcfs/seed={seed}/x", seed)


BAD_LINES = [
    ({**_good(1), "schema": 2}, "schema version 2"),
    ({**_good(2), "seed": "two"}, "'seed' is str"),
    ({**_good(3), "metrics": [1, 2]}, "'metrics' is list"),
    ([1, 2, 3], "a JSON array, expected an object"),
]


def _write(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_every_skipped_record_is_warned_with_file_and_line(tmp_path):
    path = tmp_path / "mixed.jsonl"
    _write(path, [_good()] + [r for r, _ in BAD_LINES])
    for args in (["table", str(path), "--no-published", "--format", "md"], ["compare", str(path), str(path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        text = _flat(result.output)
        for line, (_, why) in enumerate(BAD_LINES, start=2):
            assert f"{path}:{line}:" in text and why in text, (args, why, text)
    assert "| qcfs |" in runner.invoke(app, ["table", str(path), "--no-published", "--format", "md"]).output


def test_nothing_usable_unknown_group_by_and_missing_inputs_are_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    _write(bad, [r for r, _ in BAD_LINES])
    good = tmp_path / "good.jsonl"
    _write(good, [_good()])
    cases = [
        (["table", str(bad), "--no-published"], "no usable record"),
        (["plot", str(bad), "--out", str(tmp_path / "p")], "no usable record"),
        (["compare", str(bad), str(good)], ""),
        (["table", str(good), "--group-by", "datset"], "--group-by datset: no record has such a field"),
        (["table", str(tmp_path / "nope.jsonl")], "file not found"),
        (["leaderboard", "--runs", str(tmp_path / "no_runs"), "--bench", str(tmp_path)], "--runs"),
        (["leaderboard", "--runs", str(tmp_path), "--bench", str(tmp_path / "no_bench")], "--bench"),
    ]
    for args, needle in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in _flat(result.output) and "Traceback" not in result.output, (args, result.output)
    ok = runner.invoke(app, ["table", str(good), "--no-published", "--group-by", "config.model.params.width,method"])
    assert ok.exit_code == 2  # no record has that path here
    ok = runner.invoke(app, ["table", str(good), "--no-published", "--group-by", "method"])
    assert ok.exit_code == 0, ok.output
