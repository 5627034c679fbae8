"""OpenLineage events as JSON files: one event or a list in ``.json``, one per line in ``.ndjson``.

This is the one place that turns events into bytes and back, so the spool, the file
transport, the embedded store and the CLI agree on the format. Bad JSON is reported with the
file, line and column (as a :class:`LineageAuditError`), never as a traceback.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from lineage_auditor.errors import EventError, StoreError
from lineage_auditor.textfiles import decode_utf8, load_json

NDJSON_SUFFIXES = (".ndjson", ".jsonl")
JSON_SUFFIXES = (".json",)


def dumps_event(event: dict[str, Any]) -> str:
    """One event as compact JSON on a single line (key order kept, non-ASCII kept)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)


def event_identity(event: dict[str, Any]) -> tuple[str, str, str]:
    """The key that makes an event unique: (run id, event type, event time).

    Dataset and job events have no run; they are keyed by the entity they describe so they
    deduplicate the same way.
    """
    event_time = str(event.get("eventTime") or "")
    run = event.get("run")
    if isinstance(run, dict) and run.get("runId"):
        return str(run["runId"]), str(event.get("eventType") or "OTHER"), event_time
    for kind in ("dataset", "job"):
        entity = event.get(kind)
        if isinstance(entity, dict) and entity.get("name"):
            key = f"{kind}:{entity.get('namespace', '')}/{entity['name']}"
            return key, kind.upper(), event_time
    return "", str(event.get("eventType") or ""), event_time


Located = tuple[str, int]  # (file, line) an event was read from


def parse_event_bytes(path: Path, data: bytes, line: int = 1) -> Any:
    """JSON bytes read from ``path`` (starting at ``line``) as a value; EventError at file:line:column."""
    text = decode_utf8(data, file=str(path), line=line if line > 1 else 0, error=EventError)
    return load_json(text, file=str(path), line=line, error=EventError)


def as_event_object(value: Any, path: Path, line: int) -> dict[str, Any]:
    """``value`` if it is a JSON object, else the EventError saying what it is instead."""
    if not isinstance(value, dict):
        raise EventError(
            f"expected an OpenLineage event (a JSON object), got {type(value).__name__}",
            file=str(path),
            line=line,
        )
    return value


OnBadLine = Callable[[EventError], None]


def _skip_or_raise(error: EventError, on_error: OnBadLine | None) -> None:
    if on_error is None:
        raise error
    on_error(error)


def _iter_ndjson(path: Path, on_error: OnBadLine | None) -> Iterator[tuple[Located, dict[str, Any]]]:
    with path.open("rb") as handle:
        for number, data in enumerate(handle, start=1):
            if not data.strip():
                continue
            try:
                event = as_event_object(parse_event_bytes(path, data, number), path, number)
            except EventError as exc:  # one bad line costs that line only
                _skip_or_raise(exc, on_error)
                continue
            yield (str(path), number), event


def _iter_json(path: Path, on_error: OnBadLine | None) -> Iterator[tuple[Located, dict[str, Any]]]:
    try:
        value = parse_event_bytes(path, path.read_bytes())
    except EventError as exc:
        _skip_or_raise(exc, on_error)
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        try:
            event = as_event_object(item, path, 1)
        except EventError as exc:
            _skip_or_raise(exc, on_error)
            continue
        yield (str(path), 1), event


def iter_located_events(
    path: str | os.PathLike[str], on_error: OnBadLine | None = None
) -> Iterator[tuple[Located, dict[str, Any]]]:
    """Events with the (file, line) they were read from; see :func:`iter_events`.

    With ``on_error``, a line that is not a JSON object (not UTF-8, cut short, nested too
    deep) is handed to it and reading goes on; without, it raises.
    """
    path = Path(path)
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.name.startswith(".") or not child.is_file():
                continue
            if child.suffix in NDJSON_SUFFIXES + JSON_SUFFIXES:
                yield from iter_located_events(child, on_error)
        return
    if not path.exists():
        raise StoreError("no such file", file=str(path))
    try:
        if path.suffix in NDJSON_SUFFIXES:
            yield from _iter_ndjson(path, on_error)
        else:
            yield from _iter_json(path, on_error)
    except OSError as exc:
        raise StoreError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None


def iter_events(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Events from a ``.json``/``.ndjson`` file, or from every such file in a directory.

    Directory entries are read in name order (spool files sort in emission order). A line
    that is not JSON, not UTF-8 or not an object is an :class:`EventError` naming file:line.
    """
    for _where, event in iter_located_events(path):
        yield event


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All events of :func:`iter_events` as a list."""
    return list(iter_events(path))


def write_events(path: str | os.PathLike[str], events: Iterable[dict[str, Any]]) -> int:
    """Write events atomically: a JSON list for ``.json``, one line each for ``.ndjson``.

    Returns the number of events written.
    """
    path = Path(path)
    items = list(events)
    if path.suffix in NDJSON_SUFFIXES:
        text = "".join(dumps_event(e) + "\n" for e in items)
    else:
        text = json.dumps(items, ensure_ascii=False, indent=2, default=str) + "\n"
    write_atomic(path, text.encode("utf-8"))
    return len(items)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file so readers see either nothing or all of it, and it survives a crash.

    Temp file in the same directory, fsync, rename over the target, fsync the directory.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_ndjson(path: str | os.PathLike[str], event: dict[str, Any]) -> None:
    """Append one event as a line, durably and safely with concurrent writers.

    An exclusive lock keeps lines from two processes from interleaving; fsync makes the line
    survive a crash once this returns.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (dumps_event(event) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
