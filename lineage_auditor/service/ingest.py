"""``POST /api/v1/lineage`` on the hot path: a plain ASGI route and a group commit.

Why not a FastAPI route: one event per request is what the OpenLineage HTTP transport sends,
so the endpoint's cost per request is the service's ingest rate. Measured with py-spy, the
FastAPI route spent more on its layers (routing, exception and exit-stack middleware,
dependency solving, a thread-pool hop per request) than on the event itself, and a commit
(an fsync) per request cost more than both. Here:

- :class:`IngestRoute` answers the one route as plain ASGI, in front of the FastAPI app
  (every other path and method goes on to it): the token, the body (gzip or deflate), JSON,
  the access check and the event's validation run on the event loop, with the same answers
  as before (401, 413, 400, 422 with the path of the bad value, 403 naming the policy rule);
- :class:`GroupCommit` writes what concurrent requests bring in one transaction on one
  writer thread and answers each request only after that transaction committed, so what a
  client was told is stored is on disk (SQLite WAL with ``synchronous=FULL``, or PostgreSQL's
  commit), a re-send is still stored once (``INSERT ... ON CONFLICT DO NOTHING`` per row,
  even for two copies in one batch), and an invalid event, refused before it is queued, never
  costs another its place. A failed commit fails every request of its batch with 503 and
  ``Retry-After``: none of them was acknowledged, all may be re-sent.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

from lineage_auditor.errors import EventError, StoreError
from lineage_auditor.events import RunEvent, from_openlineage, is_static_event
from lineage_auditor.service.access import Access, Caller

PATH = "/api/v1/lineage"
MAX_BODY = 16 * 1024 * 1024  # one OpenLineage event; larger is refused (413) before parsing
MAX_BATCH = 500  # rows per transaction
JSON = [(b"content-type", b"application/json")]
STORED = orjson.dumps({"stored": True, "duplicate": False})
DUPLICATE = orjson.dumps({"stored": False, "duplicate": True})

#: A store's row for an event (collectors.store.event_row: validates, EventError naming the bad value).
RowBuilder = Callable[[Any, "RunEvent | None"], Any]


class RowWriter(Protocol):
    """The part of a lineage store the group commit uses (collectors.store.IndexedStore.add_rows)."""

    def add_rows(self, rows: Sequence[Any]) -> list[bool]: ...


class GroupCommit:
    """One writer thread: rows queued by concurrent requests are committed together, then answered."""

    def __init__(self, store: RowWriter, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: list[tuple[Any, asyncio.Future[bool], asyncio.AbstractEventLoop]] = []
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="lineage-audit-group-commit", daemon=True)
        self._thread.start()

    async def add(self, row: Any) -> bool:
        """Whether ``row`` was new, once the transaction holding it has committed (StoreError if it failed)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        with self._ready:
            if self._stopping:
                raise StoreError("the service is stopping")
            self._queue.append((row, done, loop))
            self._ready.notify()
        return await done

    def stop(self) -> None:
        """Commit what is queued, then end the writer thread."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
            try:
                results: list[Any] = self.store.add_rows([row for row, _, _ in batch])
            except StoreError as exc:
                results = [exc] * len(batch)
            for (_, done, loop), result in zip(batch, results):
                loop.call_soon_threadsafe(_settle, done, result)


def _settle(done: asyncio.Future[bool], result: Any) -> None:
    if done.done():  # the client went away; its event is stored all the same
        return
    if isinstance(result, BaseException):
        done.set_exception(result)
    else:
        done.set_result(bool(result))


class IngestRoute:
    """ASGI middleware answering ``POST /api/v1/lineage``; everything else goes to ``app``."""

    def __init__(self, app: Any, *, access: Access, commit: GroupCommit, row: RowBuilder) -> None:
        self.app = app
        self.access = access
        self.commit = commit
        self.row = row

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        status, body, extra = await self._ingest(scope, receive)
        await send({"type": "http.response.start", "status": status, "headers": JSON + extra})
        await send({"type": "http.response.body", "body": body})

    async def _ingest(self, scope: Any, receive: Any) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        headers = dict(scope["headers"])
        caller = self.access.require(_text(headers.get(b"authorization")))
        if not isinstance(caller, Caller):
            return caller.status_code, bytes(caller.body), [(b"www-authenticate", b'Bearer realm="lineage-audit"')]
        data = await _read(receive)
        if data is None:
            return _error(413, f"event larger than {MAX_BODY} bytes")
        encoding = _text(headers.get(b"content-encoding")).lower()
        try:
            if encoding == "gzip":
                data = gzip.decompress(data)
            elif encoding == "deflate":
                data = zlib.decompress(data)
        except (OSError, zlib.error, EOFError):
            return _error(400, f"body is not valid {encoding}")
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return _error(400, "body is not JSON", str(exc)[:200])
        try:
            event = None
            if self.access.policy is not None and not is_static_event(raw):  # without a policy event_row validates
                event = from_openlineage(raw)
                refusal = self.access.check_write(caller, event)
                if refusal:
                    return _error(403, "forbidden", refusal)
            row = self.row(raw, event)
        except EventError as exc:
            return _error(422, "invalid OpenLineage event", exc.message)
        try:
            added = await self.commit.add(row)
        except StoreError as exc:
            status, body, _ = _error(503, "the lineage store is unavailable; retry", str(exc))
            return status, body, [(b"retry-after", b"1")]
        return (201, STORED, []) if added else (200, DUPLICATE, [])


async def _read(receive: Any) -> bytes | None:
    """The request body, or None past :data:`MAX_BODY` (refused before it is all read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _text(value: bytes | None) -> str:
    return value.decode("latin-1") if value else ""


def _error(status: int, error: str, detail: str = "") -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    body = {"error": error, "detail": detail} if detail else {"error": error}
    return status, orjson.dumps(body), []
