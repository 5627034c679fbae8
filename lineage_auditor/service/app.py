"""The FastAPI application of ``lineage-audit serve``: a composition root, like the CLI.

It wires the store (collectors), the metrics (lineage_auditor.monitor), the pages (reports)
and access control; tests/test_import_graph.py lists it among the composition roots, the
only modules allowed to import every package.

Routes: ``POST /api/v1/lineage`` (the OpenLineage HTTP transport's endpoint: one event per
request, idempotent on re-sends, 4xx with a clear body for an invalid event, which is never
stored in part), ``GET /healthz`` (the only open route), ``GET /metrics`` (Prometheus) and
the pages. Every answer carries security headers (CSP without inline script from data,
nosniff, no framing, no referrer).
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from lineage_auditor.errors import EventError, StoreError
from lineage_auditor.service.access import Access, Caller
from lineage_auditor.service.wiring import Monitor

MAX_BODY = 16 * 1024 * 1024  # one OpenLineage event; larger is refused (413) before parsing
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class ServiceConfig:
    store: str
    tokens: Path | None = None  # None: no authentication (refused unless bound to loopback, see the CLI)
    policy: str | None = None
    specs: tuple[str, ...] = ()
    audit_config: str | None = None
    spool: Path | None = None
    audit_every_s: float = 60.0


def create_app(config: ServiceConfig, *, monitor: Monitor | None = None) -> FastAPI:
    """The application over one store (opened here unless a monitor is given)."""
    monitor = monitor or Monitor.open(config.store, specs=config.specs, audit_config=config.audit_config,
                                      spool=config.spool, audit_every_s=config.audit_every_s)
    access = Access.from_files(config.tokens, config.policy)
    app = FastAPI(title="lineage-audit", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.monitor = monitor
    app.state.access = access
    _install_headers(app)
    _install_audit(app, monitor)

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            monitor.store.count()
        except StoreError as exc:
            return _json(503, {"status": "unavailable", "error": str(exc)})
        return _json(200, {"status": "ok", "store": monitor.store.describe()})

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        denied = access.require(request.headers.get("authorization"))
        if isinstance(denied, Response):
            return denied
        try:
            body = monitor.metrics()
        except StoreError as exc:
            return _json(503, {"error": str(exc)})
        return Response(body, media_type=PROMETHEUS_TEXT)

    @app.post("/api/v1/lineage")
    async def lineage(request: Request) -> Response:
        caller = access.require(request.headers.get("authorization"))
        if isinstance(caller, Response):
            return caller
        raw = await _body(request)
        if isinstance(raw, Response):
            return raw
        return await run_in_threadpool(_ingest, monitor, access, caller, raw)

    app.router.add_event_handler("shutdown", monitor.close)
    return app


def _ingest(monitor: Monitor, access: Access, caller: Caller, raw: Any) -> Response:
    """Check the event and the caller's right to write every dataset it names, then store it."""
    from lineage_auditor.events import from_openlineage, is_static_event

    try:
        event = None if is_static_event(raw) else from_openlineage(raw)
    except EventError as exc:
        return _json(422, {"error": "invalid OpenLineage event", "detail": exc.message})
    if event is not None:
        refusal = access.check_write(caller, event)
        if refusal:
            return _json(403, {"error": "forbidden", "detail": refusal})
    try:
        added = monitor.store.add_event(raw)
    except EventError as exc:
        return _json(422, {"error": "invalid OpenLineage event", "detail": exc.message})
    except StoreError as exc:
        return _json(503, {"error": "the lineage store is unavailable; retry", "detail": str(exc)},
                     headers={"Retry-After": "1"})
    return _json(201 if added else 200, {"stored": added, "duplicate": not added})


async def _body(request: Request) -> Any:
    """The request's JSON (gzip or deflate when the client says so); a 4xx answer when it is not."""
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            return _json(413, {"error": f"event larger than {MAX_BODY} bytes"})
    encoding = request.headers.get("content-encoding", "").lower()
    try:
        if encoding == "gzip":
            data = gzip.decompress(data)
        elif encoding == "deflate":
            data = zlib.decompress(data)
    except (OSError, zlib.error, EOFError):
        return _json(400, {"error": f"body is not valid {encoding}"})
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _json(400, {"error": "body is not JSON", "detail": str(exc)[:200]})


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _install_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response


def _install_audit(app: FastAPI, monitor: Monitor) -> None:
    """Re-audit in the background when new events arrived (at most every ``audit_every_s``)."""
    if not monitor.audit_config:
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                monitor.refresh()
                if monitor.audit_due():
                    monitor.run_audit()
            except StoreError:
                pass  # the store is down: /healthz says so; try again next round
            stop.wait(min(5.0, monitor.audit_every_s))

    thread = threading.Thread(target=loop, name="lineage-audit-audit", daemon=True)
    app.router.add_event_handler("startup", thread.start)
    app.router.add_event_handler("shutdown", stop.set)
    app.state.audit_started = time.time()
