"""The JSONL result store: whole fsynced lines, tolerant reading, latest record per key."""

import json

import pytest

from snnbench.records.store import ResultStore, ResultsWriteError, latest_by_key, read_records


def rec(key: str, **fields) -> dict:
    """The smallest record the record schema accepts."""
    return {"schema": 1, "key": key, "metrics": {}, **fields}


def test_append_and_read_back(tmp_path):
    store = ResultStore(tmp_path / "runs" / "x.jsonl")
    store.prepare()
    store.append(rec("a", metrics={"acc": 1.0}))
    store.append(rec("b", metrics={"acc": float("nan")}))
    report = store.read()
    assert [r["key"] for r in report.records] == ["a", "b"]
    assert report.problems == []


def test_truncated_last_line_is_reported_and_isolated(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(rec("a")) + "\n" + '{"key": "b", "metr')
    report = read_records(path, warn=False)
    assert [r["key"] for r in report.records] == ["a"]
    assert len(report.problems) == 1 and ":2:" in report.problems[0] and "truncated" in report.problems[0]
    # The next append starts on a fresh line, so the broken line cannot swallow it.
    ResultStore(path).append(rec("c"))
    report = read_records(path, warn=False)
    assert [r["key"] for r in report.records] == ["a", "c"]


def test_corrupt_middle_line_and_non_record(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(f"{json.dumps(rec('a'))}\nnot json\n[1, 2]\n{json.dumps(rec('b'))}\n")
    with pytest.warns(UserWarning, match=r"x\.jsonl:2"):
        report = read_records(path)
    assert [r["key"] for r in report.records] == ["a", "b"]
    assert len(report.problems) == 2


def test_latest_record_wins():
    records = [{"key": "a", "v": 1}, {"key": "b", "v": 2}, {"key": "a", "v": 3}]
    assert sorted((r["key"], r["v"]) for r in latest_by_key(records)) == [("a", 3), ("b", 2)]


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file, not a folder")
    store = ResultStore(blocker / "runs" / "x.jsonl")
    with pytest.raises(ResultsWriteError, match="cannot create results folder"):
        store.prepare()


def test_append_unless_recorded_skips_a_key_already_there(tmp_path):
    store = ResultStore(tmp_path / "x.jsonl")
    assert store.append(rec("a", v=1), unless_recorded=True)
    assert not store.append(rec("a", v=2), unless_recorded=True)
    assert store.append(rec("a", v=3))  # --force: a newer record supersedes
    assert [r["v"] for r in store.read().records] == [1, 3]


def test_non_finite_numbers_are_written_as_null(tmp_path):
    store = ResultStore(tmp_path / "x.jsonl")
    store.append(rec("a", metrics={"std": float("nan"), "ratio": [float("inf"), 1.0]}))
    text = (tmp_path / "x.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["metrics"] == {"std": None, "ratio": [None, 1.0]}


def test_recorded_keys_see_another_writers_appends_and_skip_unchanged_files(tmp_path, monkeypatch):
    from snnbench.records import store as store_module

    path = tmp_path / "r.jsonl"
    mine, theirs = ResultStore(path), ResultStore(path)
    assert mine.recorded_keys() == set()
    theirs.append(rec("a"))
    assert mine.recorded_keys() == {"a"}
    parses = []
    real = store_module.read_records
    monkeypatch.setattr(store_module, "read_records", lambda *a, **k: parses.append(1) or real(*a, **k))
    mine.recorded_keys()
    assert parses == []  # unchanged file: no second parse
    theirs.append(rec("b"))
    assert mine.recorded_keys() == {"a", "b"} and len(parses) == 1
    assert not mine.append(rec("b"), unless_recorded=True)
