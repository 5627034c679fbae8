"""The dead-letter file: where every rejected record goes, so nothing is silently dropped.

One JSON object per line: ``{"source", "reason", "line"?, "raw", "at", ...}``. The file is
only ever appended to; each record is flushed to the OS as it is written and the file is
fsync'd on close, so a finished run's rejects survive a crash of the machine. A write that
fails raises: losing a reject quietly would defeat the point.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DeadLetterWriter:
    """Append-only JSONL writer for rejected records (thread-safe).

    ``source`` is the default source name for records that do not give their own.
    Use as a context manager, or call :meth:`close` (which fsyncs).
    """

    def __init__(self, path: str | os.PathLike[str], *, source: str = "") -> None:
        self.path = Path(path)
        self.source = source
        self.count = 0
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, reason: str, raw: Any, *, source: str | None = None,
              line: int | None = None, **extra: Any) -> None:
        """Append one rejected record; ``raw`` is the payload as received (str or JSON value)."""
        self.write_many([self.record(reason, raw, source=source, line=line, **extra)])

    def record(self, reason: str, raw: Any, *, source: str | None = None,
               line: int | None = None, **extra: Any) -> dict[str, Any]:
        """Build (without writing) one entry in the file's format."""
        entry: dict[str, Any] = {"source": source if source is not None else self.source, "reason": reason}
        if line is not None:
            entry["line"] = int(line)
        entry["raw"] = raw
        entry["at"] = _now()
        entry.update(extra)
        return entry

    def write_many(self, entries: Iterable[Mapping[str, Any]]) -> int:
        """Append prepared entries (see :meth:`record`) with one flush; returns how many."""
        text = "".join(json.dumps(e, ensure_ascii=False, default=str) + "\n" for e in entries)
        if not text:
            return 0
        n = text.count("\n")
        with self._lock:
            if self._file.closed:
                raise ValueError(f"dead-letter file {self.path} is closed")
            self._file.write(text)
            self._file.flush()
            self.count += n
        return n

    def close(self) -> None:
        """Flush, fsync and close (idempotent)."""
        with self._lock:
            if self._file.closed:
                return
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> "DeadLetterWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DeadLetterWriter({str(self.path)!r}, count={self.count})"


def read_dead_letters(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All entries of a dead-letter file, in order (empty if the file does not exist)."""
    return list(iter_dead_letters(path))


def iter_dead_letters(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Stream the entries of a dead-letter file."""
    p = Path(path)
    if not p.exists():
        return
    with open(p, encoding="utf-8") as fh:
        for text in fh:
            if text.strip():
                yield json.loads(text)
