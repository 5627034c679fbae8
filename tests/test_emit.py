"""Emission never loses an event and never breaks a pipeline; replay delivers the spool once, in order.

Targets are real: an HTTP server on 127.0.0.1 that records POSTs (or fails on purpose), a
closed port, the embedded SQLite store.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from collectors.emit import (
    EmbeddedTransport,
    FileTransport,
    HttpTransport,
    LineageEmitter,
    Spool,
    emitter_from_config,
    replay,
    to_event_dict,
)
from collectors.emit.examples import example_run
from collectors.openlineage_json import read_events
from collectors.store import EmbeddedStore
from lineage_auditor.audit.view import AuditView
from lineage_auditor.times import parse_time
from tests.olspec import validate_event

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 5, 1, 6, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------- a real lineage endpoint


class LineageServer:
    """A tiny OpenLineage endpoint: records every POST body; answers ``status`` (or a plan).

    Like Marquez it keeps every POST it accepts, and lists them on
    ``GET /api/v1/events/lineage`` (filtered on event time, ``after`` inclusive, ``before``
    exclusive). ``drop`` makes the next POSTs store the event and then close the connection
    without an answer: the acknowledgement lost after the server has read the body.
    """

    def __init__(self, port: int = 0) -> None:
        self.received: list[dict] = []
        self.requests = 0
        self.gets = 0
        self.headers: list[dict[str, str]] = []
        self.status = 201
        self.plan: list[int] = []  # statuses to answer first, then ``status``
        self.reject_run_ids: set[str] = set()
        self.drop = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with server._lock:
                    server.requests += 1
                    server.headers.append(dict(self.headers))
                    event = json.loads(body)
                    status = server.plan.pop(0) if server.plan else server.status
                    if event.get("run", {}).get("runId") in server.reject_run_ids:
                        status = 422
                    if status < 300:
                        server.received.append(event)
                    dropping = server.drop > 0 and status < 300
                    server.drop -= 1 if dropping else 0
                if dropping:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                if url.path != "/api/v1/events/lineage":
                    self.send_error(404)
                    return
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                after, before = parse_time(q["after"]), parse_time(q["before"])
                with server._lock:
                    server.gets += 1
                    rows = [e for e in server.received if after <= parse_time(e["eventTime"]) < before]
                offset, limit = int(q.get("offset", 0)), int(q.get("limit", 100))
                data = json.dumps({"events": rows[offset:offset + limit], "totalCount": len(rows)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def lineage_server(port: int = 0) -> Iterator[LineageServer]:
    server = LineageServer(port)
    try:
        yield server
    finally:
        server.close()


def closed_port() -> int:
    """A port nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def events_of_runs(n: int) -> list:
    out = []
    for i in range(n):
        out += example_run(start=T0 + timedelta(hours=i), job_name=f"users_orders.step{i}")
    return out


def keys(events: list) -> list[tuple[str, str]]:
    dicts = [e if isinstance(e, dict) else to_event_dict(e) for e in events]
    return [(e["run"]["runId"], e["eventType"]) for e in dicts]


def pipeline(emitter: LineageEmitter, events: list) -> str:
    """What a pipeline step does: emit around its work and return its result."""
    for event in events:
        emitter.emit(event)
    return "loaded"




# ---------------------------------------------------------------- delivery and spooling


def test_embedded_default_delivers_and_validates(home):
    events = example_run(start=T0)
    with emitter_from_config() as emitter:
        assert [emitter.emit(e) for e in events] == [True, True]
        assert emitter.stats.to_dict() == {"emitted": 2, "delivered": 2, "failed": 0, "spooled": 0, "lost": 0}
    with EmbeddedStore(home / "lineage.db") as store:
        stored = list(store.events())
    assert keys(stored) == keys(events)
    for event in stored:
        validate_event(event)


def test_every_emitted_facet_follows_the_spec(home, tmp_path):
    """What leaves the process (here via the file transport) validates against the spec schemas."""
    out = tmp_path / "events.ndjson"
    with emitter_from_config(f"file:{out}") as emitter:
        for event in example_run(start=T0) + example_run(start=T0, fail=True):
            assert emitter.emit(event)
    emitted = read_events(out)
    assert len(emitted) == 4
    for event in emitted:
        validate_event(event)
    fail = emitted[-1]
    assert fail["eventType"] == "FAIL" and fail["run"]["facets"]["errorMessage"]["message"]
    assert set(emitted[0]["inputs"][0]["inputFacets"]) == {"dataQualityMetrics", "dataQualityAssertions"}
    assert {"version", "schema", "columnLineage"} <= set(emitted[0]["outputs"][0]["facets"])
    assert "processing_engine" in emitted[0]["run"]["facets"]


def test_target_down_pipeline_succeeds_and_events_are_spooled(home):
    port = closed_port()
    events = events_of_runs(2)
    emitter = emitter_from_config(f"marquez:http://127.0.0.1:{port}")
    assert pipeline(emitter, events) == "loaded"
    emitter.close()
    assert emitter.stats.to_dict() == {"emitted": 4, "delivered": 0, "failed": 4, "spooled": 4, "lost": 0}
    files = Spool(home / "spool").pending()
    assert len(files) == 4
    assert [json.loads(f.read_text())["run"]["runId"] for f in files] == [k[0] for k in keys(events)]
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files), "spool files are private"
    for f in files:
        validate_event(json.loads(f.read_text()))


def test_server_answering_500_spools_then_replay_delivers_in_order_exactly_once(home):
    events = events_of_runs(3)
    with lineage_server() as server:
        server.status = 500
        with emitter_from_config(f"http:{server.url}", cooldown=0) as emitter:
            assert pipeline(emitter, events) == "loaded"
        assert emitter.stats.spooled == 6 and emitter.stats.delivered == 0
        assert server.requests == 6 * 3, "each event tried 1 + 2 retries, then spooled"
        assert server.received == []

        server.status = 201
        with emitter_from_config(f"http:{server.url}") as target:
            result = replay(home / "spool", target)
        assert (result.delivered, result.remaining, result.rejected) == (6, 0, [])
        assert keys(server.received) == keys(events)
        assert Spool(home / "spool").pending() == []

        again = replay(home / "spool", HttpTransport({"url": server.url}))
        assert (again.total, again.delivered) == (0, 0)
        assert len(server.received) == 6, "nothing sent twice"


def test_an_event_marquez_took_without_acknowledging_is_not_posted_again(home):
    (event, *_) = [to_event_dict(e) for e in events_of_runs(1)]
    with lineage_server() as server:
        server.drop = 1  # stores the event, then the connection drops before the answer
        transport = HttpTransport({"url": server.url})
        try:
            transport.send(event)
        finally:
            transport.close()
        assert server.requests == 1, "the retry asked first and found the event there"
        assert keys(server.received) == keys([event])


def test_replay_after_lost_acknowledgements_stores_each_event_once(home):
    events = [to_event_dict(e) for e in events_of_runs(3)]
    with emitter_from_config(f"marquez:http://127.0.0.1:{closed_port()}", cooldown=0) as emitter:
        pipeline(emitter, events)
    assert len(Spool(home / "spool").pending()) == 6
    with lineage_server() as server:
        # Marquez took the first two before their acknowledgements were lost (so they were
        # spooled), and it will take the third and drop the connection before answering.
        server.received.extend(json.loads(json.dumps(e)) for e in events[:2])
        server.drop = 1
        result = replay(home / "spool", HttpTransport({"url": server.url}))
        assert (result.delivered, result.remaining, result.rejected) == (6, 0, [])
        assert keys(server.received) == keys(events), "each event once, in order"
        assert server.requests == 4, "events 3-6 posted once each; 1 and 2 found already there"


def test_replay_after_target_comes_up(home):
    port = closed_port()
    events = events_of_runs(2)
    with emitter_from_config(f"marquez:http://127.0.0.1:{port}") as emitter:
        pipeline(emitter, events)
    down = replay(home / "spool", emitter_from_config(f"marquez:http://127.0.0.1:{port}"))
    assert (down.delivered, down.remaining) == (0, 4) and "unreachable" in down.error
    with lineage_server(port) as server:
        result = replay(home / "spool", emitter_from_config(f"marquez:{server.url}"))
        assert result.complete and result.delivered == 4
        assert keys(server.received) == keys(events)
        assert all(h.get("Content-Type") == "application/json" for h in server.headers)


def test_replay_stops_at_first_failure_and_keeps_order(home):
    events = events_of_runs(3)
    spool = Spool(home / "spool")
    for event in events:
        spool.write(to_event_dict(event))
    with lineage_server() as server:
        server.plan = [201, 201, 503, 503, 503]
        first = replay(spool, HttpTransport({"url": server.url, "retries": 2}))
        assert (first.delivered, first.remaining) == (2, 4)
        assert "HTTP 503" in first.error
        assert len(spool.pending()) == 4
        second = replay(spool, HttpTransport({"url": server.url}))
        assert (second.delivered, second.remaining) == (4, 0)
        assert keys(server.received) == keys(events)


def test_refused_event_is_set_aside_not_blocking(home):
    events = events_of_runs(2)
    spool = Spool(home / "spool")
    for event in events:
        spool.write(to_event_dict(event))
    bad_run = keys(events)[0][0]
    with lineage_server() as server:
        server.reject_run_ids = {bad_run}
        result = replay(spool, HttpTransport({"url": server.url}))
        assert result.delivered == 2 and len(result.rejected) == 2 and not result.complete
        assert keys(server.received) == keys(events)[2:]
    rejected = spool.rejected()
    assert len(rejected) == 2 and all(bad_run in p.name for p in rejected)
    assert "HTTP 422" in Path(f"{rejected[0]}.reason").read_text()
    assert spool.pending() == []


INVALID_EVENTS = {  # what another producer or an older version may have spooled
    "inputs_number": {"inputs": 5},
    "input_string": {"inputs": ["x"]},
    "output_list": {"outputs": [[1]]},
    "schema_string": {"outputs": [{"namespace": "n", "name": "t", "facets": {"schema": {"fields": "abc"}}}]},
    "lineage_numbers": {"outputs": [{"namespace": "n", "name": "t", "facets": {"columnLineage": {"fields": [1, 2]}}}]},
    "owners_string": {"outputs": [{"namespace": "n", "name": "t", "facets": {"ownership": {"owners": "bob"}}}]},
}


def test_invalid_spooled_events_are_set_aside_and_never_block_the_queue(home):
    """Invalid events sit between good ones in a real spool; replay into the real embedded store."""
    good = [to_event_dict(e) for e in events_of_runs(3)]
    spool = Spool(home / "spool")
    bad_names: dict[str, str] = {}
    kinds = list(INVALID_EVENTS)
    for i, event in enumerate(good):
        spool.write(event)
        for kind in kinds[i::len(good)]:  # two invalid events behind each good one
            bad = {**event, "run": {"runId": f"bad-{kind}"}, **INVALID_EVENTS[kind]}
            bad_names[spool.write(bad).name] = kind
    store_path = home / "lineage.db"
    first = replay(spool, EmbeddedTransport(store_path))
    assert (first.delivered, first.remaining, first.error) == (6, 0, None)
    assert sorted(first.rejected) == sorted(bad_names), "every invalid event set aside, nothing else"
    again = replay(spool, EmbeddedTransport(store_path))
    assert (again.total, again.delivered, again.rejected) == (0, 0, [])
    assert spool.pending() == []
    reasons = {bad_names[p.name]: Path(f"{p}.reason").read_text() for p in spool.rejected()}
    assert all(r.startswith("not a valid OpenLineage event: ") for r in reasons.values()), reasons
    assert "inputs: expected a list, got int" in reasons["inputs_number"]
    assert "outputs[0].facets.ownership.owners: expected a list, got a string" in reasons["owners_string"]
    with EmbeddedStore(store_path) as store:
        assert keys(list(store.events())) == keys(good), "every good event delivered, in order"
        assert [r.state for r in AuditView.from_events(store.events()).runs()] == ["COMPLETE"] * 3


def test_an_invalid_emitted_event_is_set_aside_and_the_next_ones_are_delivered(home):
    """One bad event from a pipeline costs that event: no cooldown, nothing spooled for replay."""
    good = [to_event_dict(e) for e in events_of_runs(2)]
    bad = {**good[0], "run": {"runId": "bad-run"}, "inputs": 5}
    with emitter_from_config() as emitter:  # the embedded store
        results = [emitter.emit(e) for e in (good[0], good[1], bad, good[2], good[3])]
    assert results == [True, True, False, True, True]
    assert emitter.stats.to_dict() == {"emitted": 5, "delivered": 4, "failed": 1, "spooled": 1, "lost": 0}
    spool = Spool(home / "spool")
    assert spool.pending() == [] and len(spool.rejected()) == 1
    assert "inputs: expected a list, got int" in Path(f"{spool.rejected()[0]}.reason").read_text()
    with EmbeddedStore(home / "lineage.db") as store:
        assert keys(list(store.events())) == keys(good)


def test_replay_sets_aside_unreadable_spool_files_before_any_target_sees_them(home):
    """Files that are not JSON, not UTF-8, nested too deep, or not an object never reach a target."""
    spool = Spool(home / "spool")
    good = [to_event_dict(e) for e in events_of_runs(1)]
    first = spool.write(good[0])
    hostile = {
        "deep": b"[" * 5000,
        "latin1": b'{"eventType": "START", "producer": "caf\xe9"}',
        "cut": b'{"eventType": "STA',
        "list": b"[1, 2]",
        "invalid": json.dumps({**good[0], "job": "not-an-object"}).encode(),
    }
    for i, (name, data) in enumerate(hostile.items()):
        (spool.directory / f"{first.name[:20]}-{i:08d}-0-{name}-START.json").write_bytes(data)
    spool.write(good[1])
    with lineage_server() as server:
        result = replay(spool, HttpTransport({"url": server.url}))
        assert result.delivered == 2 and result.error is None
        assert keys(server.received) == keys(good), "the target saw only the valid events"
    reasons = {p.name.split("-")[3]: Path(f"{p}.reason").read_text() for p in spool.rejected()}
    assert set(reasons) == set(hostile)
    assert "nested deeper than" in reasons["deep"]
    assert "not UTF-8 text (invalid continuation byte at byte" in reasons["latin1"]
    assert "invalid JSON" in reasons["cut"]
    assert "got list" in reasons["list"]
    assert "job: expected an object, got a string" in reasons["invalid"]


def test_replay_twice_into_embedded_store_creates_no_duplicates(home, tmp_path):
    events = events_of_runs(2)
    with emitter_from_config(f"http:http://127.0.0.1:{closed_port()}") as emitter:
        pipeline(emitter, events)
    spool_dir = home / "spool"
    backup = tmp_path / "spool-copy"
    shutil.copytree(spool_dir, backup)  # as if a crash hit between sending and deleting
    target = emitter_from_config()  # embedded
    assert replay(spool_dir, target).delivered == 4
    shutil.rmtree(spool_dir)
    shutil.copytree(backup, spool_dir)
    assert replay(spool_dir, target).delivered == 4
    target.close()
    with EmbeddedStore(home / "lineage.db") as store:
        assert store.count() == 4
        assert keys(list(store.events())) == keys(events)
        assert [r.state for r in AuditView.from_events(store.events()).runs()] == ["COMPLETE", "COMPLETE"]


# ---------------------------------------------------------------- never raise


class ExplodingTransport:
    kind = "exploding"

    def send(self, event: dict, *, redelivery: bool = False) -> None:
        raise RuntimeError("driver bug")

    def describe(self) -> str:
        return "exploding"

    def close(self) -> None:
        raise RuntimeError("close bug")


def test_no_failure_reaches_the_pipeline(home, tmp_path):
    emitter = LineageEmitter(ExplodingTransport(), home / "spool")
    assert pipeline(emitter, example_run(start=T0)) == "loaded"
    assert emitter.emit(object()) is False, "not an event: logged and counted, not raised"
    emitter.close()
    assert emitter.stats.to_dict() == {"emitted": 3, "delivered": 0, "failed": 3, "spooled": 2, "lost": 1}

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the spool folder should be")
    lost = LineageEmitter(ExplodingTransport(), blocked)
    assert pipeline(lost, example_run(start=T0)) == "loaded"
    assert lost.stats.lost == 2 and lost.stats.spooled == 0


def test_emit_after_close_still_spools(home):
    emitter = emitter_from_config()
    emitter.close()
    assert emitter.emit(example_run(start=T0)[0]) is False
    assert emitter.stats.spooled == 1 and len(Spool(home / "spool").pending()) == 1


def test_dead_target_costs_one_timeout_not_one_per_event(home):
    """After a failure the emitter spools directly during its cooldown."""
    with lineage_server() as server:
        server.status = 503
        with emitter_from_config(f"http:{server.url}", cooldown=60) as emitter:
            pipeline(emitter, events_of_runs(5))
        assert server.requests == 3, "only the first event tried (with its retries)"
        assert emitter.stats.spooled == 10


def test_embedded_store_failure_spools(home, tmp_path):
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a sqlite database" * 100)
    with LineageEmitter(EmbeddedTransport(broken), home / "spool") as emitter:
        assert pipeline(emitter, example_run(start=T0)) == "loaded"
    assert emitter.stats.spooled == 2


def test_stale_temp_file_from_a_crash_is_recovered(home):
    spool = Spool(home / "spool")
    event = to_event_dict(example_run(start=T0)[0])
    path = spool.write(event)
    tmp = path.with_name(".tmp-" + path.name)
    os.replace(path, tmp)  # crashed after fsync, before the rename
    os.utime(tmp, (0, 0))
    half = path.with_name(".tmp-00000000000000000001-00000001-1-x-START.json")
    half.write_text('{"eventType": "STA')  # crashed mid-write
    os.utime(half, (0, 0))
    with lineage_server() as server:
        result = replay(spool, HttpTransport({"url": server.url}))
        assert (result.recovered, result.delivered) == (1, 1)
        assert server.received == [event]
    assert not half.exists() and not tmp.exists()


def test_http_options_auth_gzip_and_endpoint(home):
    with lineage_server() as server:
        transport = HttpTransport(
            {"url": server.url, "endpoint": "/api/v1/lineage", "compression": "gzip",
             "auth": {"type": "api_key", "apiKey": "k-123"}, "custom_headers": {"X-Team": "data"}}
        )
        event = to_event_dict(example_run(start=T0)[0])
        transport.send(event)
        transport.close()
        assert server.received == [event]
        assert server.headers[0]["Authorization"] == "Bearer k-123"
        assert server.headers[0]["X-Team"] == "data"
        assert server.headers[0]["Content-Encoding"] == "gzip"


def test_file_transport_appends_lines_durably(home, tmp_path):
    out = tmp_path / "deep" / "lineage.ndjson"
    transport = FileTransport(out)
    events = [to_event_dict(e) for e in events_of_runs(2)]
    for event in events:
        transport.send(event)
    assert read_events(out) == events
    assert len(out.read_text().splitlines()) == 4


def test_console_transport_writes_stderr_only(home, capsys):
    with emitter_from_config("console") as emitter:
        assert emitter.emit(example_run(start=T0)[0])
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err)["eventType"] == "START"


# ---------------------------------------------------------------- the replay command


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lineage_auditor.cli", *args],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True, text=True, timeout=120,
    )


def test_replay_command_exit_codes_and_output(home):
    port = closed_port()
    with emitter_from_config(f"marquez:http://127.0.0.1:{port}") as emitter:
        pipeline(emitter, events_of_runs(2))
    env = {"LINEAGE_AUDIT_HOME": str(home)}
    down = run_cli("replay", "--lineage", f"marquez:http://127.0.0.1:{port}", env=env)
    assert down.returncode == 2, down.stderr
    assert "delivered 0 of 4" in down.stdout and "4 remaining" in down.stdout
    assert "Traceback" not in down.stderr
    with lineage_server(port) as server:
        up = run_cli("replay", "--lineage", f"marquez:{server.url}", "--format", "json", env=env)
        assert up.returncode == 0, up.stderr
        report = json.loads(up.stdout)
        assert report["delivered"] == 4 and report["remaining"] == 0 and report["rejected"] == []
        assert len(server.received) == 4
    bad = run_cli("replay", "--lineage", "kafka:somewhere", env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown store")
    assert "Examples:" in run_cli("replay", "--help", env=env).stdout
