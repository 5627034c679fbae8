"""A local HTTP server on 127.0.0.1 that answers as a real Marquez 0.51.1 did.

The answers are the recorded request/answer pairs in the shared ``marquez-0.51.1`` folder
(``LINEAGE_AUDIT_MARQUEZ_RECORDINGS``, default ``../shared/marquez-0.51.1`` beside the
checkout; see its README for the events that produced them). A request matches a
recording when method and path are equal and every recorded query parameter has the same
value; a parameter the recording lacks is accepted only when it asks for what Marquez
does by default (``offset=0``, ``limit=100``, ``depth=20``, ``withDownstream=false``) or,
for the event-time window ``after``/``before``, when the window holds every recorded
event. A POST matches on its JSON body. Anything else answers 404 with
``{"replay": "no recording"}``, so a reader that asks something Marquez was never asked
fails its test instead of passing on an invented answer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from lineage_auditor.times import parse_time
from tests.shared_data import shared_path

#: Query parameters whose absence in a recording means Marquez's default value.
DEFAULTS = {"offset": "0", "limit": "100", "depth": "20", "withDownstream": "false"}


def recordings_dir() -> Path:
    return shared_path("LINEAGE_AUDIT_MARQUEZ_RECORDINGS", "marquez-0.51.1")


@dataclass
class Recording:
    name: str
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    answer: Any


@dataclass
class Recordings:
    """Every recorded answer, and the events that were posted to produce them."""

    folder: Path
    answers: list[Recording] = field(default_factory=list)
    posted: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, folder: Path | None = None) -> "Recordings":
        folder = folder or recordings_dir()
        out = cls(folder, posted=json.loads((folder / "posted_events.json").read_text()))
        for file in sorted(folder.glob("*.json")):
            if file.name == "posted_events.json":
                continue
            data = json.loads(file.read_text())
            request = data["request"]
            split = urlsplit(request["path"])
            out.answers.append(Recording(
                file.stem, request["method"], unquote(split.path), dict(parse_qsl(split.query)),
                request.get("body"), int(data["status"]), data["body"],
            ))
        return out

    def get(self, name: str) -> Recording:
        return next(r for r in self.answers if r.name == name)

    def event_window(self) -> tuple[datetime, datetime]:
        times = [parse_time(e["eventTime"]) for e in self.posted]
        return min(times), max(times)

    def match(self, method: str, path: str, query: dict[str, str], body: Any) -> Recording | None:
        for rec in self.answers:
            if rec.method != method or rec.path != path:
                continue
            if method == "POST":
                if rec.body == body:
                    return rec
                continue
            if all(query.get(k, DEFAULTS.get(k)) == v for k, v in rec.query.items()) and all(
                self._default(k, v) for k, v in query.items() if k not in rec.query
            ):
                return rec
        return None

    def _default(self, key: str, value: str) -> bool:
        if key in DEFAULTS:
            return DEFAULTS[key] == value
        if key in ("after", "before"):
            first, last = self.event_window()
            moment = parse_time(value)
            return moment <= first if key == "after" else moment > last
        return False


@dataclass
class ReplayServer:
    url: str
    requests: list[tuple[str, str, dict[str, str]]]
    unmatched: list[str]


@contextmanager
def replay_marquez(recordings: Recordings) -> Iterator[ReplayServer]:
    """Serve ``recordings`` on a free port of 127.0.0.1 for the duration of the block."""
    seen: list[tuple[str, str, dict[str, str]]] = []
    unmatched: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _answer(self, method: str) -> None:
            split = urlsplit(self.path)
            path, query = unquote(split.path), dict(parse_qsl(split.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            seen.append((method, path, query))
            rec = recordings.match(method, path, query, body)
            if rec is None:
                unmatched.append(f"{method} {self.path}")
                status, payload = 404, {"replay": "no recording"}
            else:
                status, payload = rec.status, rec.answer
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield ReplayServer(f"http://127.0.0.1:{httpd.server_address[1]}", seen, unmatched)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
