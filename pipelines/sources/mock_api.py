"""The mock users REST API: paginated, seeded users behind a bearer token, with fault injection.

Endpoints (all but ``/healthz`` need ``Authorization: Bearer <token>``):

- ``GET /users?page=1&per_page=20`` → ``{"page", "per_page", "total", "total_pages", "data": [...]}``
- ``GET /users/{id}`` → one user, 404 if there is none
- ``GET|POST|DELETE /_control/faults`` → read, replace (JSON :class:`FaultConfig`), reset faults
- ``GET /_control/stats`` → requests served by outcome; ``GET /healthz`` → ``{"status": "ok"}``

Faults apply to ``/users`` endpoints only, in this order: outage (503), auth (401), added
latency, then one per-request fault (5xx, 429 with Retry-After, a stall longer than the
client's timeout, a malformed body), and invalid records inside otherwise good bodies.
:class:`MockApiServer` runs it with uvicorn on 127.0.0.1 in a background thread.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import socket
import threading
import time
from collections import Counter
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from pipelines.sources.fake_users import make_user
from pipelines.sources.faults import FaultConfig, FaultPlan, malformed_body

DEFAULT_TOKEN = "demo-token"
DEFAULT_SEED = 42
DEFAULT_USERS = 1000
MAX_PER_PAGE = 500


class MockApiState:
    """Everything the app serves from: the population, the token, the faults and counters."""

    def __init__(self, *, token: str, seed: int, n_users: int, faults: FaultConfig | None = None) -> None:
        self.token = token
        self.seed = seed
        self.n_users = n_users
        self.stats: Counter[str] = Counter()
        self.stopping = False
        self._lock = threading.Lock()
        self.plan = FaultPlan(faults or FaultConfig(), seed)

    def set_faults(self, config: FaultConfig) -> None:
        """Replace the faults; request counters restart, so decisions replay from the start."""
        with self._lock:
            self.plan = FaultPlan(config, self.seed)

    def reset_faults(self) -> None:
        self.set_faults(FaultConfig())

    def count(self, outcome: str) -> None:
        with self._lock:
            self.stats[outcome] += 1
            self.stats["requests"] += 1

    def stats_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self.stats)


def create_app(state: MockApiState) -> FastAPI:
    """The FastAPI application serving ``state``."""
    app = FastAPI(title="lineage-audit mock users API", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.mock = state

    def authorized(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), state.token.encode()):
            raise HTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})

    async def faulted(key: str, request: Request, build: Any, page: int | None = None) -> Response:
        """Serve ``build()`` (a JSON-ready dict) through the faults in force."""
        plan = state.plan
        if plan.outage_active():
            state.count("outage")
            return JSONResponse({"detail": "service unavailable"}, status_code=503)
        try:
            authorized(request)
        except HTTPException:
            state.count("unauthorized")
            raise
        if plan.config.latency_ms:
            await _pause(state, plan.config.latency_ms / 1000.0)
        decision = plan.decide(key, page=page)
        if decision.outcome == "error":
            state.count(f"error_{decision.status}")
            return JSONResponse({"detail": "injected server error"}, status_code=decision.status)
        if decision.outcome == "rate_limit":
            state.count("rate_limited")
            return JSONResponse({"detail": "rate limited"}, status_code=429,
                                headers={"Retry-After": str(plan.config.retry_after)})
        if decision.outcome == "timeout":
            state.count("timeout")
            await _pause(state, plan.config.timeout_seconds)
        body = build(plan)
        if decision.outcome == "malformed":
            state.count(f"malformed_{decision.malformed_kind}")
            return Response(malformed_body(body, decision.malformed_kind), media_type="application/json")
        if decision.outcome != "timeout":
            state.count("ok")
        return Response(json.dumps(body, separators=(",", ":")).encode(), media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/users")
    async def list_users(request: Request, page: int = Query(1, ge=1),
                         per_page: int = Query(20, ge=1, le=MAX_PER_PAGE)) -> Response:
        def build(plan: FaultPlan) -> dict[str, Any]:
            first = (page - 1) * per_page + 1
            last = min(state.n_users, page * per_page)
            users = [plan.serve_user(make_user(i, state.seed)) for i in range(first, last + 1)]
            return {"page": page, "per_page": per_page, "total": state.n_users,
                    "total_pages": math.ceil(state.n_users / per_page), "data": users}
        return await faulted(f"GET /users?page={page}&per_page={per_page}", request, build, page=page)

    @app.get("/users/{user_id}")
    async def get_user(request: Request, user_id: int) -> Response:
        if not 1 <= user_id <= state.n_users:
            if state.plan.outage_active():
                state.count("outage")
                return JSONResponse({"detail": "service unavailable"}, status_code=503)
            authorized(request)
            state.count("not_found")
            raise HTTPException(404, f"user {user_id} not found")
        return await faulted(f"GET /users/{user_id}", request,
                             lambda plan: plan.serve_user(make_user(user_id, state.seed)))

    @app.get("/_control/faults", dependencies=[Depends(authorized)])
    async def read_faults() -> dict[str, Any]:
        plan = state.plan
        return {**plan.config.model_dump(), "effective_seed": plan.seed,
                "outage_active": plan.outage_active(), "outage_remaining_s": plan.outage_remaining()}

    @app.post("/_control/faults", dependencies=[Depends(authorized)])
    async def set_faults(config: FaultConfig) -> dict[str, Any]:
        state.set_faults(config)
        return await read_faults()

    @app.delete("/_control/faults", dependencies=[Depends(authorized)])
    async def reset_faults() -> dict[str, Any]:
        state.reset_faults()
        return await read_faults()

    @app.get("/_control/stats", dependencies=[Depends(authorized)])
    async def read_stats() -> dict[str, int]:
        return state.stats_dict()

    return app


async def _pause(state: MockApiState, seconds: float) -> None:
    """Sleep, but wake up early when the server stops (so shutdown never waits on a stall)."""
    end = time.monotonic() + seconds
    while not state.stopping:
        left = end - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(min(0.05, left))


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free one).

    Created with proto IPPROTO_TCP so asyncio turns on TCP_NODELAY for accepted connections;
    without it every small response waits ~40 ms on Nagle's algorithm and delayed ACKs.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


def uvicorn_server(app: FastAPI, *, log_level: str = "warning", access_log: bool = False) -> uvicorn.Server:
    """A uvicorn server for ``app`` configured for a local test/demo service."""
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, ws="none",
                            lifespan="off", timeout_graceful_shutdown=2)
    return uvicorn.Server(config)


class MockApiServer:
    """The mock users API on 127.0.0.1 in a background thread; use as a context manager.

    ``url`` is the base URL; ``token`` the bearer token clients must send. ``set_faults`` /
    ``reset_faults`` change faults in-process (the control endpoint does the same over HTTP).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, token: str = DEFAULT_TOKEN,
                 seed: int = DEFAULT_SEED, n_users: int = DEFAULT_USERS,
                 faults: FaultConfig | dict[str, Any] | None = None) -> None:
        if isinstance(faults, dict):
            faults = FaultConfig(**faults)
        self.host = host
        self.port = port
        self.state = MockApiState(token=token, seed=seed, n_users=n_users, faults=faults)
        self.app = create_app(self.state)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._bound_port = 0

    @property
    def token(self) -> str:
        return self.state.token

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("mock API server is not running")
        return f"http://{self.host}:{self._bound_port}"

    def set_faults(self, faults: FaultConfig | dict[str, Any]) -> None:
        self.state.set_faults(faults if isinstance(faults, FaultConfig) else FaultConfig(**faults))

    def reset_faults(self) -> None:
        self.state.reset_faults()

    def stats(self) -> dict[str, int]:
        return self.state.stats_dict()

    def start(self, timeout: float = 15.0) -> "MockApiServer":
        sock = bind_socket(self.host, self.port)
        self._bound_port = sock.getsockname()[1]
        self._server = uvicorn_server(self.app)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="mock-users-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mock users API did not start on {self.host}:{self._bound_port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.state.stopping = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout=5)
        self._thread = None
        self._server = None

    def __enter__(self) -> "MockApiServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
