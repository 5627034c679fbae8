"""A durable local spool: events that could not be delivered, one file each, in order.

Why one file per event: writing is a single atomic rename (a crash leaves either the whole
event or a hidden temp file, never half a line in a shared log), and replay can delete
exactly what was acknowledged. File names sort in emission order across processes:

    <UTC nanoseconds, 20 digits>-<per-process sequence>-<pid>-<run id>-<event type>.json

Events the target refused as invalid are moved to ``rejected/`` with the reason beside them,
so one bad event cannot block everything queued behind it.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from collectors.openlineage_json import dumps_event, event_identity, fsync_dir, parse_event_bytes, as_event_object
from lineage_auditor.errors import EventError, LineageAuditError

SUFFIX = ".json"
TMP_PREFIX = ".tmp-"
REJECTED = "rejected"
LOCK_NAME = ".replay.lock"
# A temp file untouched for this long belongs to a process that died before its rename.
STALE_TMP_S = 60.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class Spool:
    """The spool directory and the operations on it; safe across threads and processes."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._last_ns = 0

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r})"

    def _stamp(self) -> tuple[int, int]:
        """Strictly increasing time within this process, plus a sequence number."""
        with self._lock:
            now = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = now
            return now, next(self._seq)

    def _name(self, event: dict[str, Any]) -> str:
        run_id, event_type, _ = event_identity(event)
        stamp, seq = self._stamp()
        run = _UNSAFE.sub("_", run_id)[:80] or "no-run"
        kind = _UNSAFE.sub("_", event_type)[:20] or "OTHER"
        return f"{stamp:020d}-{seq:08d}-{os.getpid()}-{run}-{kind}{SUFFIX}"

    def write(self, event: dict[str, Any]) -> Path:
        """Persist one event durably and return its file (temp file, fsync, rename, fsync dir)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = self.directory / self._name(event)
        tmp = self.directory / f"{TMP_PREFIX}{final.name}"
        data = (dumps_event(event) + "\n").encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, final)
        fsync_dir(self.directory)
        return final

    def pending(self) -> list[Path]:
        """Spooled event files, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p for p in self.directory.iterdir() if p.suffix == SUFFIX and not p.name.startswith(".") and p.is_file()
        )

    def rejected(self) -> list[Path]:
        """Events set aside because the target refused them."""
        folder = self.directory / REJECTED
        return sorted(p for p in folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []

    @staticmethod
    def read(path: Path) -> dict[str, Any]:
        """One spooled event; :class:`EventError` (file:line:column) when it is not a JSON object."""
        return as_event_object(parse_event_bytes(path, path.read_bytes()), path, 1)

    def acknowledge(self, path: Path) -> None:
        """The target has the event: forget it."""
        path.unlink(missing_ok=True)

    def reject(self, path: Path, reason: str) -> Path:
        """Move an event the target refused to ``rejected/`` with a ``.reason`` note."""
        folder = self.directory / REJECTED
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = folder / path.name
        (folder / f"{path.name}.reason").write_text(reason + "\n", encoding="utf-8")
        os.replace(path, target)
        fsync_dir(folder)
        fsync_dir(self.directory)
        return target

    def sync(self) -> None:
        """Make deletions durable (once per replay rather than once per file)."""
        if self.directory.is_dir():
            fsync_dir(self.directory)

    def recover_stale(self, older_than_s: float = STALE_TMP_S) -> int:
        """Finish writes that a crashed process left as temp files.

        A temp file is complete once fsync'd; if it parses, it is renamed into place (the
        event is kept), otherwise it was cut short and is removed. Returns files recovered.
        """
        if not self.directory.is_dir():
            return 0
        recovered, now = 0, time.time()
        for tmp in self.directory.glob(f"{TMP_PREFIX}*{SUFFIX}"):
            try:
                if now - tmp.stat().st_mtime < older_than_s:
                    continue
                self.read(tmp)
            except FileNotFoundError:
                continue
            except EventError:
                tmp.unlink(missing_ok=True)
                continue
            os.replace(tmp, self.directory / tmp.name[len(TMP_PREFIX) :])
            recovered += 1
        if recovered:
            fsync_dir(self.directory)
        return recovered

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the replay lock, so two replays never send the same file twice at once."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LineageAuditError(
                    "another replay is running on this spool", file=str(self.directory)
                ) from None
            yield
        finally:
            os.close(fd)
