"""The same events give the same answers through every store.

One set of events, with what real deliveries look like (mixed UTC offsets, out-of-order
arrival, a re-sent duplicate, a run that fails after another run of its job completed), is
written to the embedded store, to the PostgreSQL store (real server), to an NDJSON file, and POSTed to a local HTTP server that
answers like Marquez's events API (every POST kept, paged by limit/offset). The graph,
the latest runs, the schema versions and the audit's findings must be identical.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from collectors.sources import read_events
from collectors.store import EmbeddedStore, open_indexed
from lineage_auditor.audit.view import load_lineage
from lineage_auditor.cli import _register, cli
from lineage_auditor.model import DatasetRef
from lineage_auditor.times import parse_time

NS = "postgres://warehouse:5432"
TABLE = "wh.analytics.table_ab"
PRODUCER = "https://example.com/another-producer/1.0"


def _event(kind: str, run: str, job: str, when: str, columns: list[str] | None = None, **extra: object) -> dict:
    event: dict = {
        "eventType": kind, "eventTime": when, "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run, "facets": extra.get("run_facets", {})},
        "job": {"namespace": "etl", "name": job},
        "inputs": [{"namespace": NS, "name": "wh.raw.source"}],
        "outputs": [],
    }
    if columns is not None:
        fields = {c: {"inputFields": [{"namespace": NS, "name": "wh.raw.source", "field": c}]} for c in columns}
        event["outputs"] = [{
            "namespace": NS, "name": TABLE,
            "facets": {"schema": {"_producer": PRODUCER, "_schemaURL": "s", "fields": [{"name": c, "type": "int"} for c in columns]},
                       "columnLineage": {"_producer": PRODUCER, "_schemaURL": "s", "fields": fields}},
            "outputFacets": {"outputStatistics": {"_producer": PRODUCER, "_schemaURL": "s", "rowCount": 10}},
        }]
    return event


def _events() -> list[dict]:
    run_a, run_b = "01900000-0000-7000-8000-00000000000a", "01900000-0000-7000-8000-00000000000b"
    run_c, run_d = "01900000-0000-7000-8000-00000000000c", "01900000-0000-7000-8000-00000000000d"
    error = {"errorMessage": {"_producer": PRODUCER, "_schemaURL": "s", "message": "boom", "programmingLanguage": "sql"}}
    return [
        # A at 10:00+02:00 (08:00Z) writes column a; B at 09:00Z, later, adds column b.
        _event("START", run_a, "build_ab", "2024-05-01T10:00:00+02:00", ["a"]),
        _event("COMPLETE", run_a, "build_ab", "2024-05-01T10:00:05.5+02:00", ["a"]),
        _event("START", run_b, "build_ab", "2024-05-01T09:00:00Z", ["a", "b"]),
        _event("COMPLETE", run_b, "build_ab", "2024-05-01T04:00:07-05:00", ["a", "b"]),
        # C completes; D, a later run of the same job, fails.
        _event("START", run_c, "other", "2024-05-01T11:00:00.123456789Z"),
        _event("COMPLETE", run_c, "other", "2024-05-01T11:00:01Z"),
        _event("START", run_d, "other", "2024-05-01T13:30:00+02:00"),
        _event("FAIL", run_d, "other", "2024-05-01T11:31:00Z", run_facets=error),
    ]


def _deliveries() -> list[dict]:
    """The events as they arrive: shuffled, with one re-sent (same instant, other offset)."""
    events = _events()
    resent = json.loads(json.dumps(events[1]))
    resent["eventTime"] = "2024-05-01T08:00:05.500Z"
    arrived = events + [resent]
    random.Random(11).shuffle(arrived)
    return arrived


class MarquezShaped(BaseHTTPRequestHandler):
    """POST /api/v1/lineage keeps every event; GET /api/v1/events/lineage pages them by time."""

    stored: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if urlsplit(self.path).path != "/api/v1/lineage":
            return self._send(404, {"code": 404})
        self.stored.append(json.loads(body))
        self._send(201, None)

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path != "/api/v1/events/lineage":
            return self._send(404, {"code": 404})
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        after, before = _t(q.get("after")), _t(q.get("before"))
        rows = [e for e in self.stored if after <= _t(e["eventTime"]) < before]
        rows.sort(key=lambda e: _t(e["eventTime"]), reverse=q.get("sortDirection", "desc") == "desc")
        offset, limit = int(q.get("offset", 0)), int(q.get("limit", 100))
        self._send(200, {"events": rows[offset:offset + limit], "totalCount": len(rows)})

    def _send(self, status: int, body: object) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


def _t(value: str | None) -> datetime:
    return parse_time(value or "1970-01-01T00:00:00Z")


@pytest.fixture
def stores(tmp_path: Path, pg_dsn: str) -> Iterator[dict[str, str]]:
    """The four stores, each holding the deliveries, by address."""
    arrived = _deliveries()
    with EmbeddedStore(tmp_path / "lineage.db") as store:
        for event in arrived:
            store.add_event(event)
    with open_indexed(pg_dsn) as pg:  # one database per module: a second test's writes are re-sends
        for event in arrived:
            pg.add_event(event)
    (tmp_path / "events.ndjson").write_text("".join(json.dumps(e) + "\n" for e in arrived))
    MarquezShaped.stored = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), MarquezShaped)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    import httpx

    with httpx.Client(base_url=url) as http:
        for event in arrived:
            assert http.post("/api/v1/lineage", json=event).status_code == 201
    try:
        yield {"embedded": f"embedded:{tmp_path / 'lineage.db'}", "file": f"file:{tmp_path / 'events.ndjson'}",
               "marquez": f"marquez:{url}", "postgresql": pg_dsn}
    finally:
        server.shutdown()
        server.server_close()


def _answers(address: str) -> dict:
    graph, view, count = load_lineage(read_events(address))
    table = DatasetRef(NS, TABLE)
    return {
        "count": count,
        "datasets": graph.datasets(),
        "edges": sorted(map(repr, graph.column_edges())),
        "columns": graph.columns(table),
        "latest": {str(j): (r.run_id, r.state.value, r.started_at, r.ended_at) for j in graph.jobs() if (r := graph.latest_run(j))},
        "runs": [r.to_json() for r in view.runs()],
        "versions": [(v.version, [f.name for f in v.fields], v.run_id, v.schema_hash) for v in view.dataset_versions(table)],
    }


def test_every_store_gives_the_same_graph_runs_and_versions(stores: dict[str, str]) -> None:
    answers = {kind: _answers(address) for kind, address in stores.items()}
    assert answers["file"] == answers["embedded"]
    assert answers["marquez"] == answers["embedded"]
    assert answers["postgresql"] == answers["embedded"]
    got = answers["embedded"]
    assert got["count"] == 8, "the re-sent duplicate counts once"
    latest = got["latest"]
    assert latest["etl/build_ab"][0].endswith("b"), "B (09:00Z) is later than A (10:00+02:00 = 08:00Z)"
    assert latest["etl/build_ab"][1] == "COMPLETE"
    assert latest["etl/other"][:2] == ("01900000-0000-7000-8000-00000000000d", "FAIL")
    assert [c.field for c in got["columns"]] == ["a", "b"]
    assert [v[1] for v in got["versions"]] == [["a"], ["a", "b"]]


CONFIG = """
ai_datasets:
  - name: analytics.table_ab
    owner: team:ml
    purpose: parity
"""


def _audit(address: str, config: Path) -> dict:
    _register()
    res = CliRunner().invoke(cli, ["audit", "--store", address, "--config", str(config), "--format", "json",
                                   "--fail-on", "high", "--check", "schema_drift", "--check", "freshness",
                                   "--check", "coverage"], catch_exceptions=False)
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.stdout)


def test_every_store_gives_the_same_findings_and_column_b_was_added(stores: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "lineage-audit.yml"
    config.write_text(CONFIG)
    findings = {kind: [(f["id"], f["severity"], f["title"]) for f in _audit(address, config)["findings"]]
                for kind, address in stores.items()}
    assert findings["file"] == findings["embedded"] == findings["marquez"] == findings["postgresql"]
    titles = [title for _, _, title in findings["embedded"]]
    assert any("b added" in t for t in titles), titles
    assert not any("removed" in t for t in titles), titles


def _bad_store(tmp_path: Path, kind: str) -> str:
    if kind == "not sqlite":
        (tmp_path / "x.db").write_text("just some text, not a database\n" * 50)
        return f"embedded:{tmp_path / 'x.db'}"
    if kind == "truncated sqlite":
        with EmbeddedStore(tmp_path / "t.db") as store:
            for event in _events() * 1:
                store.add_event(event)
        data = (tmp_path / "t.db").read_bytes()
        (tmp_path / "t.db").write_bytes(data[: len(data) // 2 + 7])
        return f"embedded:{tmp_path / 't.db'}"
    if kind == "line not an event":
        good = json.dumps(_events()[0])
        (tmp_path / "e.ndjson").write_text(good + "\n[1, 2, 3]\n")
        return f"file:{tmp_path / 'e.ndjson'}"
    if kind == "not utf-8":
        (tmp_path / "e.ndjson").write_bytes(json.dumps(_events()[0]).encode() + b"\n{\"eventTime\": \"\xff\"}\n")
        return f"file:{tmp_path / 'e.ndjson'}"
    no_time = _events()[1]
    del no_time["eventTime"]
    (tmp_path / "e.ndjson").write_text(json.dumps(_events()[0]) + "\n" + json.dumps(no_time) + "\n")
    return f"file:{tmp_path / 'e.ndjson'}"


@pytest.mark.parametrize("kind", ["not sqlite", "truncated sqlite", "line not an event", "not utf-8", "event without eventTime"])
def test_bad_store_input_is_one_clear_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    import subprocess
    import sys

    address = _bad_store(tmp_path, kind)
    config = tmp_path / "lineage-audit.yml"
    config.write_text(CONFIG)
    done = subprocess.run([sys.executable, "-m", "lineage_auditor.cli", "audit", "--store", address, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip() and ("error" in line or "warning" in line)]
    assert len(lines) == 1, done.stderr
    assert ("e.ndjson:2" in lines[0]) if address.startswith("file:") else (address.split(":", 1)[1] in lines[0])


def test_malformed_column_lineage_costs_only_that_lineage(tmp_path: Path) -> None:
    """A reader keeps the run, datasets and schema of an event whose column lineage is bad,
    leaves that lineage out and says so; the embedded store refuses such an event at the door."""
    from lineage_auditor.errors import EventError
    from lineage_auditor.model import ColumnRef
    from collectors.sources import SkippedEvents

    events = _events()
    bad = events[3]  # run B's COMPLETE: the latest run of build_ab
    bad["outputs"][0]["facets"]["columnLineage"]["fields"]["b"]["inputFields"] = [{"namespace": NS, "name": "wh.raw.source"}]
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))

    skipped = SkippedEvents()
    graph, view, count = load_lineage(read_events(f"file:{path}", skipped), skipped)
    assert count == len(events)
    assert skipped.count == 1 and "inputFields[0].field: missing" in skipped.reasons[0], skipped.reasons
    table = DatasetRef(NS, TABLE)
    assert [c.field for c in graph.columns(table)] == ["a", "b"]  # the schema still counts
    # run B's START carries valid lineage: only the COMPLETE event's was left out
    assert graph.column_upstream(ColumnRef(table, "b")) == [ColumnRef(DatasetRef(NS, "wh.raw.source"), "b")]
    assert graph.latest_run(graph.jobs()[0]).run_id.endswith("b")
    assert [v.version for v in view.dataset_versions(table)] == [1, 2]

    with EmbeddedStore(tmp_path / "door.db") as store, pytest.raises(EventError, match="inputFields\\[0\\].field: missing"):
        store.add_event(bad)


def test_another_producers_failed_assertions_become_findings(tmp_path: Path) -> None:
    """A data-quality tool's events (its own producer, +05:30 times, arriving before the write)."""
    ge = "https://github.com/great-expectations/great_expectations"
    check = {
        "eventType": "COMPLETE", "eventTime": "2024-05-01T15:45:00+05:30", "producer": ge,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "01900000-0000-7000-8000-0000000000ee"}, "job": {"namespace": "ge", "name": "suite.customers"},
        "inputs": [{"namespace": NS, "name": TABLE, "inputFacets": {"dataQualityAssertions": {
            "_producer": ge, "_schemaURL": "s", "assertions": [
                {"assertion": "expect_column_values_to_not_be_null", "success": False, "column": "b"},
                {"assertion": "expect_table_row_count_to_be_between", "success": True}]}}}],
        "outputs": [],
    }
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in [check, *_events()]))  # out of order: the check first
    config = tmp_path / "lineage-audit.yml"
    config.write_text(CONFIG)
    _register()
    res = CliRunner().invoke(cli, ["audit", "--store", f"file:{path}", "--config", str(config), "--format", "json",
                                   "--check", "assertions"], catch_exceptions=False)
    assert res.exit_code == 1, res.output
    findings = json.loads(res.stdout)["findings"]
    assert [(f["severity"], f["subject"], f["title"]) for f in findings] == [
        ("high", f"{TABLE}.b", "data-quality assertion expect_column_values_to_not_be_null failed")]
    assert findings[0]["evidence"]["checked_at"] == "2024-05-01T10:15:00Z"
