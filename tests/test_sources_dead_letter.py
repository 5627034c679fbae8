"""The dead-letter file: append-only JSONL, every record kept, readable back in order."""

from __future__ import annotations

import json
import threading

import pytest

from pipelines.sources.dead_letter import DeadLetterWriter, read_dead_letters


def test_entries_have_the_documented_fields(tmp_path):
    path = tmp_path / "dl" / "rejects.jsonl"
    with DeadLetterWriter(path, source="orders_csv") as dl:
        dl.write("missing user_id", "7,,2024-01-01T00:00:00Z,1.00,USD,paid", line=8)
        dl.write("invalid user record: email", {"id": 3, "email": "x"}, source="users-api", page=1)
    entries = read_dead_letters(path)
    assert [e["source"] for e in entries] == ["orders_csv", "users-api"]
    first, second = entries
    assert set(first) == {"source", "reason", "line", "raw", "at"}
    assert first["line"] == 8 and first["raw"].startswith("7,,")
    assert first["at"].endswith("Z")
    assert "line" not in second and second["raw"] == {"id": 3, "email": "x"} and second["page"] == 1


def test_reopening_appends_and_never_rewrites(tmp_path):
    path = tmp_path / "rejects.jsonl"
    for run in range(3):
        with DeadLetterWriter(path, source="s") as dl:
            dl.write(f"run {run}", {"n": run})
    assert [e["reason"] for e in read_dead_letters(path)] == ["run 0", "run 1", "run 2"]


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "rejects.jsonl"
    dl = DeadLetterWriter(path, source="s")

    def write(worker: int) -> None:
        for i in range(200):
            dl.write("r", {"w": worker, "i": i, "text": "x" * 50})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dl.close()
    entries = read_dead_letters(path)
    assert dl.count == 800 and len(entries) == 800
    assert {(e["raw"]["w"], e["raw"]["i"]) for e in entries} == {(w, i) for w in range(4) for i in range(200)}


def test_each_record_is_on_disk_before_close(tmp_path):
    path = tmp_path / "rejects.jsonl"
    dl = DeadLetterWriter(path)
    dl.write("first", "raw\nwith newline")
    text = path.read_text(encoding="utf-8")
    assert text.count("\n") == 1 and json.loads(text)["raw"] == "raw\nwith newline"
    dl.close()
    dl.close()  # idempotent


def test_writing_after_close_raises_instead_of_dropping(tmp_path):
    dl = DeadLetterWriter(tmp_path / "rejects.jsonl")
    dl.close()
    with pytest.raises(ValueError, match="closed"):
        dl.write("late", "x")


def test_missing_file_reads_as_empty(tmp_path):
    assert read_dead_letters(tmp_path / "none.jsonl") == []
