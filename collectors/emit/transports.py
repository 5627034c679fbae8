"""Where events go: the embedded store, an OpenLineage HTTP endpoint (Marquez), a file, stderr.

A transport does one thing: deliver one event (a plain, already scrubbed dict) and return
only once the target has acknowledged it, or raise :class:`DeliveryError`. Retrying later,
spooling and counting belong to the emitter, so every transport behaves the same under
failure.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import unquote, urlsplit, urlunsplit

from lineage_auditor.retry import (Deadline, GaveUp, Retryable, RetryPolicy, parse_retry_after, retry_call,
                                   retryable_reason, retryable_status)
from lineage_auditor.scrub import scrub_text, scrub_url
from collectors.store import open_indexed
from collectors.store.address import describe as describe_address
from lineage_auditor.errors import DeliveryError as BaseDeliveryError
from lineage_auditor.errors import ConfigError, EventError, LineageAuditError
from collectors.openlineage_json import append_ndjson, dumps_event

# Short on purpose: a lineage server that is down must cost a pipeline seconds, not minutes
# (and the emitter stops trying for a while after a failure). The retry policy is the shared
# one (lineage_auditor.retry): the same retryable answers as every source, Retry-After
# honoured when it fits in the send's deadline (else the event goes to the spool at once).
HTTP_TIMEOUT_S = 5.0
HTTP_CONNECT_TIMEOUT_S = 2.0
HTTP_RETRIES = 2
DELIVERY_POLICY = RetryPolicy(max_attempts=HTTP_RETRIES + 1, base_delay=0.2, max_delay=1.0,
                              timeout=HTTP_TIMEOUT_S, deadline=2 * HTTP_TIMEOUT_S, max_retry_after=2 * HTTP_TIMEOUT_S)
MARQUEZ_ENDPOINT = "api/v1/lineage"

log = logging.getLogger(__name__)


class DeliveryError(BaseDeliveryError):
    """:class:`lineage_auditor.errors.DeliveryError` with its message scrubbed of secrets."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(scrub_text(message), retryable=retryable)


class Transport(Protocol):
    """Delivers one OpenLineage event (a dict) or raises :class:`DeliveryError`."""

    kind: str

    def send(self, event: dict[str, Any], *, redelivery: bool = False) -> None:
        """Deliver ``event``; ``redelivery``: it may already be there (a replay of the spool)."""
        ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class StoreTransport:
    """Writes into an indexed lineage store (embedded SQLite or PostgreSQL), opened on first use."""

    kind = "store"

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self._store: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        with self._lock:
            if self._store is None:
                self._store = open_indexed(self.config)
            return self._store

    def send(self, event: dict[str, Any], *, redelivery: bool = False) -> None:
        try:
            self._open().add_event(event)
        except EventError as exc:  # sending it again cannot help: set it aside with the reason
            raise DeliveryError(f"event rejected by the {self.kind} store: {exc}", retryable=False) from exc
        except Exception as exc:  # a locked or broken database, a server that is down: keep the event for later
            raise DeliveryError(f"{self.describe()}: {exc}") from exc

    def describe(self) -> str:
        return describe_address(self.config)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


class EmbeddedTransport(StoreTransport):
    """Writes into the embedded SQLite store at ``path``."""

    kind = "embedded"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__({"type": "embedded", "path": str(self.path)})


class PostgresTransport(StoreTransport):
    """Writes into the PostgreSQL store a ``postgresql://`` DSN names."""

    kind = "postgresql"


class HttpTransport:
    """POSTs each event to ``<url>/<endpoint>`` (Marquez: ``/api/v1/lineage``) with httpx.

    Reads the options openlineage.yml uses for its http transport: ``url``, ``endpoint``,
    ``timeout`` (seconds), ``auth`` (``{type: api_key, apiKey: ...}``), ``custom_headers``,
    ``compression: gzip``, ``verify``; plus ``retries``. Written here rather than wrapping
    openlineage-python's transport so that timeouts stay short and no log line (ours,
    httpx's) ever carries a URL password, API key or header.

    Fail fast: a server that accepts connections and never answers costs one timeout per
    transport (one run, one replay), not one per attempt or per event. After the first
    timeout the send is not retried and every later send fails at once, so the emitter
    spools the rest of the run's events without waiting.
    """

    def __init__(self, config: dict[str, Any], kind: str = "http", *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.kind = kind
        raw_url = str(config.get("url") or "").strip()
        try:
            parts = urlsplit(raw_url)
            port = parts.port
        except ValueError:  # a bracket without an IPv6 address, a port that is not a number
            parts, port = urlsplit(""), None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"the {kind} transport needs an http(s) URL, got {scrub_url(raw_url)[:200]!r}")
        netloc = parts.hostname + (f":{port}" if port else "")
        self.url = urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")
        self.endpoint = str(config.get("endpoint") or MARQUEZ_ENDPOINT).lstrip("/")
        self.timeout = _number(config.get("timeout") or HTTP_TIMEOUT_S, "timeout", float, kind)
        retries = config.get("retries")
        self.retries = int(_number(HTTP_RETRIES if retries is None else retries, "retries", int, kind))
        self.policy = dataclasses.replace(DELIVERY_POLICY, max_attempts=max(1, self.retries + 1), timeout=self.timeout,
                                          deadline=2 * self.timeout, max_retry_after=2 * self.timeout)
        self._timed_out = ""  # set after the first timeout: later sends fail fast
        self._sleep = sleep
        self.gzip = str(config.get("compression") or "").lower() == "gzip"
        self.verify = config.get("verify", True)
        if not isinstance(self.verify, (bool, str)):
            raise ConfigError(f"the {kind} transport's verify must be true, false or a CA bundle path")
        headers = config.get("custom_headers") or {}
        if not isinstance(headers, dict):
            raise ConfigError(f"the {kind} transport's custom_headers must be a mapping of header to value")
        self._headers = {"Content-Type": "application/json", **_auth_headers(config.get("auth"))}
        self._headers.update({str(k): str(v) for k, v in headers.items()})
        self._basic = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        self._client: Any = None
        self._reader: Any = None
        self._lock = threading.Lock()

    def _http(self) -> Any:
        import httpx

        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, HTTP_CONNECT_TIMEOUT_S)),
                    headers=self._headers,
                    auth=self._basic,
                    verify=self.verify,
                )
            return self._client

    def send(self, event: dict[str, Any], *, redelivery: bool = False) -> None:
        """POST the event, retrying transient failures (the one retry policy).

        Marquez stores every POST, so a POST it may already have taken is not simply sent
        again: on a ``redelivery`` (replay), and on a retry after a failure that came once
        the request could have reached the server (the connection dropped after the body
        was sent), Marquez is first asked whether it holds an event of that run, type and
        time (:meth:`MarquezClient.has_event`), and nothing is sent if it does. A timeout
        is not retried (fail fast, see the class): the event goes to the spool and its
        replay is a redelivery.
        """
        if self._timed_out:
            raise DeliveryError(f"{self.describe()} {self._timed_out} earlier in this run; not waiting on it again")
        body = dumps_event(event).encode("utf-8")
        headers = {"Content-Encoding": "gzip"} if self.gzip else {}
        if self.gzip:
            body = gzip.compress(body, compresslevel=3)
        target = f"{self.url}/{self.endpoint}"
        deadline = Deadline(self.policy.deadline, name="delivery deadline")
        maybe_there = redelivery

        def attempt() -> None:
            nonlocal maybe_there
            import httpx

            if maybe_there and self._already_stored(event):
                return
            try:
                response = self._http().post(target, content=body, headers=headers,
                                             timeout=self._timeout(deadline.remaining()))
            except httpx.HTTPError as exc:
                maybe_there = maybe_there or _may_have_arrived(exc)
                reason = retryable_reason(exc)
                if reason == "timeout":
                    self._timed_out = f"did not answer within {self.timeout:g}s"
                    raise DeliveryError(f"{self.describe()} {self._timed_out}; spooling") from None
                if reason is None:
                    raise DeliveryError(f"{self.describe()} unreachable: {type(exc).__name__}: {exc}") from None
                raise Retryable(f"{self.describe()} unreachable: {type(exc).__name__}: {exc}") from None
            status = response.status_code
            if status < 300:
                return
            if retryable_status(status):
                raise Retryable(f"{self.describe()} answered HTTP {status}",
                                retry_after=parse_retry_after(response.headers.get("retry-after")))
            raise DeliveryError(f"{self.describe()} answered HTTP {status}", retryable=status >= 500)

        try:
            retry_call(attempt, policy=self.policy, deadline=deadline, sleep=self._sleep)
        except GaveUp as exc:
            note = "" if not exc.deadline_hit else f" ({exc.why})"
            raise DeliveryError(f"{exc.last.reason}{note}") from None

    def _timeout(self, remaining: float) -> Any:
        import httpx

        total = max(0.001, min(self.timeout, remaining))
        return httpx.Timeout(total, connect=min(total, HTTP_CONNECT_TIMEOUT_S))

    def _already_stored(self, event: dict[str, Any]) -> bool:
        """Marquez already holds this event; False when that cannot be told (the target has
        no Marquez events API, or cannot be reached: the POST then says what is wrong)."""
        if self.endpoint != MARQUEZ_ENDPOINT:
            return False
        from collectors.marquez.client import MarquezClient, MarquezUnreachable

        with self._lock:
            if self._reader is None:
                self._reader = MarquezClient(self.url, timeout=self.timeout, headers=self._headers, auth=self._basic,
                                             verify=self.verify)
            reader = self._reader
        try:
            return reader.has_event(event)
        except MarquezUnreachable as exc:
            if exc.timed_out:  # the same silence would meet the POST: fail fast (see the class)
                self._timed_out = f"did not answer within {self.timeout:g}s"
                raise DeliveryError(f"{self.describe()} {self._timed_out}; spooling") from None
            log.info("cannot tell whether %s already has the event: %s", self.describe(), exc)
            return False
        except LineageAuditError as exc:
            log.info("cannot tell whether %s already has the event: %s", self.describe(), exc)
            return False

    def describe(self) -> str:
        return f"{self.kind}:{self.url}/{self.endpoint}"

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._reader is not None:
                self._reader.close()
                self._reader = None


def _may_have_arrived(exc: Exception) -> bool:
    """False only for failures before the request left (no connection, no free connection)."""
    import httpx

    return not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def _number(value: Any, name: str, kind: type, transport: str) -> float:
    """A numeric transport option (``timeout``, ``retries``) from YAML or the environment."""
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"the {transport} transport's {name} must be a number, got {str(value)[:40]!r}") from None
    if not 0 <= number < 1e6:
        raise ConfigError(f"the {transport} transport's {name} must be between 0 and 1000000, got {number}")
    return float(number)


def _auth_headers(auth: Any) -> dict[str, str]:
    """openlineage.yml's ``auth`` block as headers (``api_key`` is sent as a bearer token)."""
    if not isinstance(auth, dict) or not auth:
        return {}
    kind = str(auth.get("type", "api_key")).lower()
    key = auth.get("apiKey") or auth.get("api_key") or auth.get("apikey")
    if kind == "api_key" and key:
        return {"Authorization": f"Bearer {key}"}
    raise ConfigError(f"unsupported auth type {kind[:40]!r} for the http transport (use api_key)")


class FileTransport:
    """Appends each event as one NDJSON line (fsync'd, safe with concurrent writers)."""

    kind = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def send(self, event: dict[str, Any], *, redelivery: bool = False) -> None:
        try:
            append_ndjson(self.path, event)
        except OSError as exc:
            raise DeliveryError(f"cannot append to {self.path}: {exc.strerror or exc}") from exc

    def describe(self) -> str:
        return f"file:{self.path}"

    def close(self) -> None:
        return None


class ConsoleTransport:
    """Prints each event as one JSON line (on stderr, so command output stays clean)."""

    kind = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, event: dict[str, Any], *, redelivery: bool = False) -> None:
        stream = self.stream or sys.stderr
        try:
            stream.write(dumps_event(event) + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"console: {exc}") from exc

    def describe(self) -> str:
        return "console"

    def close(self) -> None:
        return None


class NoopTransport:
    """Drops events; used when OpenLineage is disabled (``OPENLINEAGE_DISABLED=true``)."""

    kind = "noop"

    def send(self, event: dict[str, Any], *, redelivery: bool = False) -> None:
        return None

    def describe(self) -> str:
        return "noop (OpenLineage disabled)"

    def close(self) -> None:
        return None
