"""The FastAPI application of ``lineage-audit serve``: a composition root, like the CLI.

It wires the store (collectors), the metrics (lineage_auditor.monitor), the pages (reports)
and access control; tests/test_import_graph.py lists it among the composition roots, the
only modules allowed to import every package.

Routes: ``POST /api/v1/lineage`` (the OpenLineage HTTP transport's endpoint: one event per
request, idempotent on re-sends, 4xx with a clear body for an invalid event, which is never
stored in part; plain ASGI with a group commit, see :mod:`.ingest`), ``GET /healthz`` (the only open route), ``GET /metrics`` (Prometheus) and
the pages. Every answer carries security headers (CSP without inline script from data,
nosniff, no framing, no referrer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from collectors.store import event_row
from lineage_auditor.errors import LineageAuditError, StoreError
from lineage_auditor.governance import load_policy
from lineage_auditor.service.access import Access, Caller
from lineage_auditor.service.ingest import GroupCommit, IngestRoute
from lineage_auditor.service.signin import install_signin, page_credentials, to_login, wants_html
from lineage_auditor.service.tokens import TokenBook
from lineage_auditor.service.visibility import withheld
from lineage_auditor.service.wiring import Monitor

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
    alerts: bool = True  # evaluate the policy's alerts: (when it has them)


def create_app(config: ServiceConfig, *, monitor: Monitor | None = None) -> FastAPI:
    """The application over one store (opened here unless a monitor is given)."""
    policy = load_policy(config.policy) if config.policy else None
    monitor = monitor or Monitor.open(config.store, specs=config.specs, audit_config=config.audit_config,
                                      spool=config.spool, audit_every_s=config.audit_every_s, policy=policy)
    access = Access(TokenBook(config.tokens) if config.tokens else None, policy)
    app = FastAPI(title="lineage-audit", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.monitor = monitor
    app.state.access = access
    _install_audit(app, monitor)
    if config.alerts:
        _install_alerts(app, monitor)
    # Fold the store once at startup, in the background: a first scrape then costs what is new.
    app.router.add_event_handler("startup", lambda: threading.Thread(target=_warm_up, args=(monitor,), daemon=True).start())

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

    _install_pages(app, monitor, access)
    commit = GroupCommit(monitor.store)
    app.add_middleware(IngestRoute, access=access, commit=commit, row=event_row)  # POST /api/v1/lineage, see .ingest
    _install_headers(app)  # outermost: every answer, the ingest route's too
    app.router.add_event_handler("shutdown", commit.stop)  # commit what is queued before the store closes
    app.router.add_event_handler("shutdown", monitor.close)
    return app


def _install_pages(app: FastAPI, monitor: Monitor, access: Access) -> None:
    """The server-rendered pages (reports.service_pages); each needs a token like the API."""
    from fastapi.responses import HTMLResponse

    from reports import service_pages as pages

    install_signin(app, access, pages.login_page)

    def page(request: Request, build: Callable[[Caller], tuple[str, str | None] | str]) -> Response:
        caller = access.require(page_credentials(request))
        if isinstance(caller, Response):
            return to_login(request) if wants_html(request) else caller
        try:
            built = build(caller)
        except StoreError as exc:
            return _json(503, {"error": str(exc)})
        except LookupError as exc:
            return _json(404, {"error": str(exc.args[0])})
        html, csp = built if isinstance(built, tuple) else (built, None)
        return HTMLResponse(html, headers={"Content-Security-Policy": csp} if csp else None)

    @app.get("/")
    def status(request: Request) -> Response:
        return page(request, lambda c: pages.status_page(monitor.status_rows(), store=monitor.store.describe(), user=c.user))

    @app.get("/pipelines/{name}")
    def pipeline(request: Request, name: str) -> Response:
        def build(caller: Caller) -> str:
            monitor.refresh()
            state = monitor.follower.state
            if name not in state.pipelines and name not in state.steps:
                raise LookupError(f"no pipeline {name!r} in the store")
            runs = _runs(monitor.store.events(job=name))
            steps = []
            for step in sorted(state.steps.get(name, ())):
                step_runs = _runs(monitor.store.events(job=f"{name}.{step}"))
                last = step_runs[-1] if step_runs else None
                steps.append({"step": step, "state": last.state.value if last else "-",
                              "duration_s": last.duration_s if last else None, "error": last.error if last else "",
                              "outputs": [d.name for d in last.outputs] if last else []})
            return pages.pipeline_page(name, state.pipelines.get(name), runs, steps, user=caller.user)
        return page(request, build)

    @app.get("/datasets")
    def dataset(request: Request, name: str, namespace: str | None = None) -> Response:
        def build(caller: Caller) -> tuple[str, str | None]:
            from lineage_auditor.events import run_events
            from lineage_auditor.graph import LineageGraph

            graph = LineageGraph.from_events(run_events(monitor.store.latest_run_events(), lambda e: None))
            found = [d for d in graph.datasets() if d.name == name and (namespace is None or d.namespace == namespace)]
            if not found:
                raise LookupError(f"no dataset {name!r} in the store")
            ref = found[0]
            findings = [f for f in monitor.audit.findings if f.subject == ref.name or f.subject.startswith(ref.name + ".")]
            hidden = withheld(graph, access, caller, monitor.tag_index(graph))
            columns = {c: hidden.column(c) for c in graph.columns(ref) if hidden.column(c)}
            return pages.dataset_page(graph, ref, findings, user=caller.user, withheld_columns=columns,
                                      withheld_jobs=hidden.jobs)
        return page(request, build)

    @app.get("/findings")
    def findings(request: Request) -> Response:
        return page(request, lambda c: pages.findings_page(monitor.audit.findings, error=monitor.audit.error, user=c.user))

    @app.get("/costs")
    def costs(request: Request) -> Response:
        def build(caller: Caller) -> str:
            monitor.refresh()
            state = monitor.follower.state
            now = datetime.now(timezone.utc)
            rows = [{"pipeline": n, "team": s.team, "month": state.month_cost(n, now), "total": s.cost}
                    for n, s in sorted(state.pipelines.items()) if s.cost]
            return pages.costs_page(rows, user=caller.user)
        return page(request, build)


def _runs(raws: Any) -> list[Any]:
    """The runs of a job's events, oldest first (the one run model)."""
    from lineage_auditor.events import Run, run_events

    runs: dict[str, Run] = {}
    for event in run_events(raws, lambda e: None):
        runs.setdefault(event.run_id, Run(event.run_id, event.job)).add(event)
    return sorted(runs.values(), key=lambda r: (r.started_at is None, r.started_at or 0))


def _warm_up(monitor: Monitor) -> None:
    try:
        monitor.refresh()
    except StoreError:
        pass  # /healthz and /metrics say so


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every answer (plain ASGI: no per-request task or copy)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in self.headers if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


def _install_headers(app: FastAPI) -> None:
    app.add_middleware(SecurityHeaders)


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


def _install_alerts(app: FastAPI, monitor: Monitor) -> None:
    """Evaluate the policy's ``alerts:`` every ``alerts.every`` (console lines go to the service's log)."""
    import sys

    alerting = monitor.alerting(lambda line: print(f"lineage-audit alert: {line}", file=sys.stderr, flush=True))
    if alerting is None:
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                report = alerting.check(monitor.alert_snapshot())
                for hook in report.webhooks:
                    if hook.waiting:
                        print(f"lineage-audit alerts: webhook {hook.name}: {hook.waiting} notification(s) waiting in "
                              f"{hook.dead_letter} ({hook.error})", file=sys.stderr, flush=True)
            except LineageAuditError as exc:  # the store is down, a damaged state file: say so, try next round
                print(f"lineage-audit alerts: {exc}", file=sys.stderr, flush=True)
            stop.wait(alerting.every_s)

    thread = threading.Thread(target=loop, name="lineage-audit-alerts", daemon=True)
    app.router.add_event_handler("startup", thread.start)
    app.router.add_event_handler("shutdown", stop.set)
