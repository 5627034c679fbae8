"""One retry policy for both HTTP users: the source client (GET) and the lineage transport (POST).

Both talk to a real HTTP server on 127.0.0.1 that answers a scripted list of statuses and
headers, so "the same retryable codes, Retry-After in both forms, a bounded total" is checked
on the wire for each of them, with the same expectations.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from collectors.emit import HttpTransport, LineageEmitter, Spool, replay
from collectors.emit.examples import example_run
from lineage_auditor.errors import DeliveryError
from lineage_auditor.retry import RETRYABLE_STATUS, RetryPolicy
from pipelines.sources.errors import SourceError, SourceUnavailable
from pipelines.sources.resilience import CircuitBreaker, ResilientHttp

T0 = datetime(2024, 5, 1, 6, 0, tzinfo=timezone.utc)
EVENT = {"eventType": "START", "eventTime": "2024-05-01T06:00:00Z", "run": {"runId": "r"},
         "job": {"namespace": "n", "name": "j"}, "producer": "p", "schemaURL": "s"}


class Scripted:
    """Answers each request with the next (status, headers) of ``plan``, then 200; ``"drop"``
    closes the connection without an answer."""

    def __init__(self) -> None:
        self.plan: list[tuple[int | str, dict[str, str]]] = []
        self.requests: list[tuple[str, float]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append((self.command, time.monotonic()))
                status, headers = server.plan.pop(0) if server.plan else (200, {})
                if status == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                body = b'{"ok": true}'
                self.send_response(int(status))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@contextmanager
def scripted_server() -> Iterator[Scripted]:
    server = Scripted()
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


# Each user of the policy, as "send one request through it; raise on giving up".
def via_source(server: Scripted, sleeps: list[float], **policy: float) -> Callable[[], None]:
    settings = {"base_delay": 0.01, "max_delay": 0.05, "timeout": 2.0, "deadline": 10.0, "max_attempts": 3,
                "max_retry_after": 20.0, **policy}
    http = ResilientHttp(httpx.Client(), source="test-api", policy=RetryPolicy(**settings),  # type: ignore[arg-type]
                         breaker=CircuitBreaker(100, 1.0), sleep=sleeps.append, rng=random.Random(1))
    return lambda: http.get(f"{server.url}/x", deadline=http.new_deadline()) and None


def via_transport(server: Scripted, sleeps: list[float], **policy: float) -> Callable[[], None]:
    transport = HttpTransport({"url": server.url, "retries": 2, "timeout": policy.get("timeout", 5.0)},
                              sleep=sleeps.append)
    return lambda: transport.send(EVENT)


USERS = {"source": (via_source, SourceUnavailable), "transport": (via_transport, DeliveryError)}


@pytest.fixture(params=sorted(USERS))
def user(request: pytest.FixtureRequest) -> tuple[Callable[..., Callable[[], None]], type[Exception]]:
    return USERS[request.param]


@pytest.mark.parametrize("status", sorted(RETRYABLE_STATUS))
def test_the_same_statuses_are_retried_by_both(user, status):
    make, _ = user
    with scripted_server() as server:
        server.plan = [(status, {})]
        sleeps: list[float] = []
        make(server, sleeps)()
        assert len(server.requests) == 2 and len(sleeps) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
def test_client_errors_are_not_retried_by_either(user, status):
    make, _ = user
    with scripted_server() as server:
        server.plan = [(status, {})]
        with pytest.raises((SourceError, DeliveryError), match=f"HTTP {status}"):
            make(server, [])()
        assert len(server.requests) == 1


def test_a_dropped_connection_is_retried_by_both(user):
    make, _ = user
    with scripted_server() as server:
        server.plan = [("drop", {})]
        make(server, [])()
        # the transport asks a Marquez-shaped target whether the dropped POST arrived (a GET)
        # before posting again: delivery stays exactly once
        method = "POST" if user[1] is DeliveryError else "GET"
        assert [m for m, _ in server.requests if m == method] == [method, method]


def test_retry_after_in_seconds_is_honoured_by_both(user):
    make, _ = user
    with scripted_server() as server:
        server.plan = [(503, {"Retry-After": "3"}), (429, {"Retry-After": "1"})]
        sleeps: list[float] = []
        make(server, sleeps)()
        assert sleeps == [3.0, 1.0]


def test_retry_after_as_an_http_date_is_honoured_by_both(user):
    make, _ = user
    with scripted_server() as server:
        when = datetime.now(timezone.utc) + timedelta(seconds=4)
        server.plan = [(503, {"Retry-After": format_datetime(when, usegmt=True)})]
        sleeps: list[float] = []
        make(server, sleeps)()
        assert len(sleeps) == 1 and 2.0 <= sleeps[0] <= 4.0  # whole seconds on the wire, minus the trip


def test_backoff_grows_with_jitter_in_both(user):
    make, _ = user
    with scripted_server() as server:
        server.plan = [(503, {}), (503, {})]
        sleeps: list[float] = []
        make(server, sleeps)()
        assert len(sleeps) == 2 and 0 < sleeps[0] <= sleeps[1]  # ceilings double; jitter takes at most half off
        assert sleeps[1] <= 2 * 2 * sleeps[0]


def test_total_is_bounded_a_wait_past_the_deadline_is_not_slept_by_either(user):
    make, error = user
    with scripted_server() as server:
        server.plan = [(503, {"Retry-After": "3600"})] * 5
        sleeps: list[float] = []
        started = time.monotonic()
        with pytest.raises(error, match="would be exceeded"):
            make(server, sleeps)()
        assert sleeps == [] and len(server.requests) == 1 and time.monotonic() - started < 2


def test_attempts_are_bounded_in_both(user):
    make, error = user
    with scripted_server() as server:
        server.plan = [(502, {})] * 10
        with pytest.raises(error, match="HTTP 502"):
            make(server, [])()
        assert len(server.requests) == 3


# ---------------------------------------------------------------- fail fast on a server that never answers


@contextmanager
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """Accepts every connection, reads nothing, answers nothing."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_server_that_never_answers_costs_one_timeout_per_run(home):
    timeout = 0.5
    with silent_server() as (url, accepted):
        started = time.monotonic()
        transport = HttpTransport({"url": url, "timeout": timeout})
        with LineageEmitter(transport, home / "spool", cooldown=0) as emitter:  # no cooldown: only fail-fast helps
            for _ in range(5):
                for event in example_run(start=T0):
                    emitter.emit(event)
        elapsed = time.monotonic() - started
        assert emitter.stats.spooled == 10 and emitter.stats.delivered == 0
        assert elapsed < 2 * timeout, f"{elapsed:.2f}s: more than one timeout of {timeout}s"
        assert len(accepted) == 1, "one connection, one timeout, then straight to the spool"

        started = time.monotonic()
        result = replay(Spool(home / "spool"), HttpTransport({"url": url, "timeout": timeout}))
        assert result.delivered == 0 and result.remaining == 10 and "did not answer within 0.5s" in result.error
        assert time.monotonic() - started < 2 * timeout
