"""Every reader of user input, fed mutations of real valid inputs: our error or a result, never a crash.

The inputs are the project's own files (the shop SQL and schema, the demo's audit config,
the shipped pipeline specs, an openlineage.yml, the orders sample, events of the shop's runs, an embedded store
and a spool holding them, a saved baseline) with hostile changes a damaged disk, another producer or an
attacker makes: flipped bytes, a cut-off end, bytes that are not UTF-8, nesting five
thousand levels deep, values of the wrong type. The only outcomes allowed are success or a
:class:`LineageAuditError` (which the CLI prints as ``error: file:line:column: ...``).

Hypothesis runs derandomized (the same examples on every run), so the suite is reproducible
and bounded: ``LINEAGE_AUDIT_FUZZ_EXAMPLES`` (default 100 per reader) raises the count for a
longer search. At the default the file runs in well under a minute.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sqlite3
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit_events import SHOP_CONFIG, shop_events
from collectors.emit import EmbeddedTransport, Spool, replay
from collectors.sources import SkippedEvents, read_events
from collectors.store import EmbeddedStore
from lineage_auditor.audit.config import load_config, parse_config
from lineage_auditor.audit.runner import load_scoped, run_audit
from lineage_auditor.audit.view import AuditView
from lineage_auditor.errors import LineageAuditError
from lineage_auditor.graph import LineageGraph
from lineage_auditor.sql import analyze_files, load_schema
from lineage_auditor.sql.output import render_text, result_to_json
from pipelines.dsl import load_spec
from pipelines.specs import REFERENCE_SPEC_DIR as SPEC_DIR
from pipelines.sources.dead_letter import DeadLetterWriter
from pipelines.sources.orders_csv import read_orders

REPO = Path(__file__).resolve().parent.parent
SHOP = REPO / "examples" / "shop"
EXAMPLES = int(os.environ.get("LINEAGE_AUDIT_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, print_blob=True,
    suppress_health_check=list(HealthCheck),
)

# ------------------------------------------------------------------ mutations of valid input

NOT_UTF8 = (b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xe9", b"\xed\xa0\x80", b"\x80", b"\xf0\x28\x8c\x28")
DEEP = (b"[" * 5000, b"{\"a\":" * 5000, b"- " * 5000, b"(" * 5000, b"a:\n" + b"  " * 2000 + b"b: 1")
WRONG = (5, -1, 0, 1.5, 1e308, 10**20, -(10**30), "x", "", "99999999999999999999d", "1e400", "nan",
         [], ["x"], [[1]], {}, {"a": 1}, None, True, False, "2024-13-45T99:99:99Z")
Mutator = Callable[[st.DataObject, bytes], bytes]


def _position(data: st.DataObject, base: bytes) -> int:
    return data.draw(st.integers(0, max(len(base) - 1, 0)), label="at")


def flip_bytes(data: st.DataObject, base: bytes) -> bytes:
    out = bytearray(base)
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        if out:
            out[_position(data, bytes(out))] = data.draw(st.integers(0, 255), label="byte")
    return bytes(out)


def truncate(data: st.DataObject, base: bytes) -> bytes:
    return base[: _position(data, base)]


def not_utf8(data: st.DataObject, base: bytes) -> bytes:
    at = _position(data, base)
    return base[:at] + data.draw(st.sampled_from(NOT_UTF8), label="bytes") + base[at:]


def deep_nesting(data: st.DataObject, base: bytes) -> bytes:
    nest = data.draw(st.sampled_from(DEEP), label="nest")
    if data.draw(st.booleans(), label="whole"):
        return nest
    at = _position(data, base)
    return base[:at] + nest + base[at:]


def _paths(doc: Any) -> list[tuple[Any, ...]]:
    """Every path into a JSON-like document (iterative: the documents may be large)."""
    found: list[tuple[Any, ...]] = [()]
    stack: list[tuple[tuple[Any, ...], Any]] = [((), doc)]
    while stack:
        path, node = stack.pop()
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            found.append(path + (key,))
            stack.append((path + (key,), child))
    return found


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def wrong_type_in(loads: Callable[[bytes], Any], dumps: Callable[[Any], bytes]) -> Mutator:
    """A value somewhere in the document replaced by one of another type."""

    def mutate(data: st.DataObject, base: bytes) -> bytes:
        doc = loads(base)
        paths = _paths(doc)
        path = paths[data.draw(st.integers(0, len(paths) - 1), label="path")]
        return dumps(_replace(doc, path, data.draw(st.sampled_from(WRONG), label="value")))

    return mutate


YAML_TYPES = wrong_type_in(lambda b: yaml.safe_load(b.decode()), lambda d: yaml.safe_dump(d, sort_keys=False).encode())
JSON_TYPES = wrong_type_in(lambda b: json.loads(b), lambda d: json.dumps(d).encode())


def ndjson_types(data: st.DataObject, base: bytes) -> bytes:
    lines = base.splitlines()
    index = data.draw(st.integers(0, len(lines) - 1), label="line")
    lines[index] = JSON_TYPES(data, lines[index])
    return b"\n".join(lines) + b"\n"


def csv_cells(data: st.DataObject, base: bytes) -> bytes:
    """A cell of a CSV replaced by a hostile value (huge, negative, not a number, quoted, empty)."""
    lines = base.split(b"\n")
    index = data.draw(st.integers(0, len(lines) - 2), label="line")
    cells = lines[index].split(b",")
    cell = data.draw(st.integers(0, len(cells) - 1), label="cell")
    cells[cell] = data.draw(st.sampled_from(
        [b"12345678901234.50", b"-1", b"1e400", b"NaN", b"inf", b"", b'"', b'"a,b"', b"99999999999999999999",
         b"2024-02-30T00:00:00Z", b"0x10", b"\xff", b"a" * 5000, b",,,,,,", b"\r", b'"\n"']), label="value")
    lines[index] = b",".join(cells)
    return b"\n".join(lines)


def sql_tokens(data: st.DataObject, base: bytes) -> bytes:
    """SQL with a hostile token inserted: duplicate aliases, stray keywords, open quotes and comments."""
    at = _position(data, base)
    token = data.draw(st.sampled_from(
        [b" AS x, u AS x ", b" FROM ", b" SELECT ", b"'", b'"', b"/*", b"--", b";", b")", b"(", b" JOIN ",
         b" UNION ", b" WITH ", b" OVER (", b" * ", b" $1 ", b" :: ", b"\x00", b" CASE ", b" END "]), label="token")
    return base[:at] + token + base[at:]


BYTES: tuple[Mutator, ...] = (flip_bytes, truncate, not_utf8, deep_nesting)


def mutation(data: st.DataObject, base: bytes, *extra: Mutator, mutators: tuple[Mutator, ...] = BYTES) -> bytes:
    choices = mutators + extra
    return choices[data.draw(st.integers(0, len(choices) - 1), label="mutator")](data, base)


# ------------------------------------------------------------------ the one rule


@contextmanager
def only_our_errors(what: str, data: bytes) -> Iterator[None]:
    """Success or a LineageAuditError; anything else fails with the input that caused it."""
    try:
        yield
    except LineageAuditError:
        pass
    except Exception as exc:  # noqa: BLE001 - the point of the test
        trace = "".join(traceback.format_exception(exc)[-6:])
        pytest.fail(f"{what} crashed on {data[:300]!r} ({len(data)} bytes):\n{trace}", pytrace=False)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory reused across one test's examples (hypothesis runs them in one test call)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as name:
        yield Path(name)


# ------------------------------------------------------------------ text readers


def lineage_of_sql(path: Path) -> None:
    """What ``lineage-audit sql`` does: the engine's public function and both output formats."""
    result = analyze_files([SHOP / "01_staging.sql", path], schema=load_schema(SHOP / "schema.yml"))
    json.dumps(result_to_json(result))
    render_text(result)


@given(data=st.data())
@FUZZ
def test_sql_files(data, scratch):
    path = scratch / "marts.sql"
    path.write_bytes(mutation(data, (SHOP / "02_marts.sql").read_bytes(), sql_tokens,
                              mutators=(flip_bytes, truncate, not_utf8)))
    with only_our_errors("lineage-audit sql", path.read_bytes()):
        lineage_of_sql(path)


# Found by this fuzzing in the SQL engine: sqlglot's recursive parser and the resolver raised
# RecursionError, and duplicate aliases OptimizeError, through analyze_files. Each is now an
# error of that statement only: the statement after it keeps its lineage.
ENGINE_CRASHES = {
    "parentheses x5000": "SELECT " + "(" * 5000 + "1" + ")" * 5000 + " AS a FROM raw.orders",
    "brackets x5000": "[" * 5000,
    "CASE x2000": "SELECT " + "CASE WHEN a THEN " * 2000 + "1" + " END" * 2000 + " AS a FROM t",
    "a+a+... x20000": "SELECT " + "+".join(["a"] * 20000) + " AS s FROM t",
    "duplicate alias": "SELECT x.a FROM t AS x, u AS x",
    "duplicate UPDATE source": "UPDATE t SET a = u.b FROM u, u",
}


@pytest.mark.parametrize("sql", list(ENGINE_CRASHES.values()), ids=list(ENGINE_CRASHES))
def test_sql_engine_survives_what_fuzzing_found(sql, tmp_path):
    from lineage_auditor.sql import analyze_files

    path = tmp_path / "hostile.sql"
    path.write_text(sql + ";\nCREATE TABLE m.still_analysed AS SELECT id FROM raw.orders;\n")
    result = analyze_files([path], dialect="postgres")
    assert result.errors and all(e.line == 1 for e in result.errors), result.errors
    assert [o.dataset.name for s in result.statements for o in s.outputs][-1:] == ["m.still_analysed"]


@given(data=st.data(), suffix=st.sampled_from([".yml", ".json"]))
@FUZZ
def test_schema_files(data, suffix, scratch):
    valid = yaml.safe_load((SHOP / "schema.yml").read_text())
    if suffix == ".json":
        base, types = json.dumps(valid, indent=1).encode(), JSON_TYPES
    else:
        base, types = (SHOP / "schema.yml").read_bytes(), YAML_TYPES
    path = scratch / f"schema{suffix}"
    path.write_bytes(mutation(data, base, types))
    with only_our_errors("load_schema", path.read_bytes()):
        load_schema(path)


@given(data=st.data())
@FUZZ
def test_audit_config(data, scratch):
    path = scratch / "lineage-audit.yml"
    path.write_bytes(mutation(data, (REPO / "pipelines" / "features" / "lineage-audit.yml").read_bytes(), YAML_TYPES))
    with only_our_errors("load_config", path.read_bytes()):
        config = load_config(path)
        config.model_dump()


@given(data=st.data(), name=st.sampled_from(sorted(p.name for p in SPEC_DIR.glob("*.yml"))))
@FUZZ
def test_pipeline_specs(data, name, scratch):
    path = scratch / name
    path.write_bytes(mutation(data, (SPEC_DIR / name).read_bytes(), YAML_TYPES))
    with only_our_errors("load_spec", path.read_bytes()):
        load_spec(path)


GOVERNANCE = REPO / "examples" / "governance.yml"


@given(data=st.data())
@FUZZ
def test_governance_policies(data, scratch):
    """governance.yml: the loader, its reference checks, and the questions every reader asks of it."""
    from lineage_auditor.governance import load_policy

    path = scratch / "governance.yml"
    path.write_bytes(mutation(data, GOVERNANCE.read_bytes(), YAML_TYPES))
    with only_our_errors("load_policy", path.read_bytes()):
        policy = load_policy(path)
        for team in policy.team_names[:3]:
            policy.can_write(team, "staging.orders").explain()
            policy.can_read(team, "crm.users", "email", ["pii.email"]).explain()
            policy.can_run("pat", "daily_revenue", team).explain()
        policy.can_write_ai_dataset("features.user_activity", (), "0123456789ab").explain()
        policy.rates("postgres")


OPENLINEAGE_YML = b"""transport:
  type: http
  url: http://127.0.0.1:5000
  endpoint: api/v1/lineage
  timeout: 5
  retries: 2
  compression: gzip
  auth:
    type: api_key
    apiKey: not-a-real-key
  custom_headers:
    X-Team: data
"""


@given(data=st.data())
@FUZZ
def test_openlineage_yml(data, scratch):
    """openlineage.yml, as the emitter reads it (openlineage-python's file, our transports)."""
    from collectors.emit.config import resolve_transport_config, transport_from_config

    path = scratch / "openlineage.yml"
    path.write_bytes(mutation(data, OPENLINEAGE_YML, YAML_TYPES))
    with only_our_errors("openlineage.yml", path.read_bytes()):
        config, _ = resolve_transport_config(None, environ={"OPENLINEAGE_CONFIG": str(path)}, cwd=scratch)
        transport_from_config(config, home=scratch).close()


ADDRESS_HEADS = ["", "embedded:", "file:", "marquez:", "marquez://", "http:", "http://", "https://",
                 "marquez:http://", "http:https://", "console", "none", "kafka:"]
ADDRESS_TAILS = st.text(alphabet=st.sampled_from(list("[]:@/?#%.-_aZ09 \\\x00\u00e9")), max_size=30)


@given(head=st.sampled_from(ADDRESS_HEADS), tail=ADDRESS_TAILS)
@FUZZ
def test_store_addresses(head, tail, scratch):
    """``--store`` / ``--lineage`` addresses: parsed, described and turned into a transport."""
    from collectors.emit.config import transport_from_config
    from collectors.store.address import describe, parse_address

    text = head + tail
    with only_our_errors("parse_address", text.encode("utf-8", "replace")):
        config = parse_address(text)
        describe(config)
        if config["type"] in ("http", "marquez"):
            transport_from_config(config, home=scratch).close()


ORDERS_BASE = b"\n".join((REPO / "pipelines" / "fixtures" / "orders_sample.csv").read_bytes().split(b"\n")[:40]) + b"\n"


@given(data=st.data())
@FUZZ
def test_orders_csv(data, scratch):
    path = scratch / "orders.csv"
    path.write_bytes(mutation(data, ORDERS_BASE, csv_cells))
    with only_our_errors("read_orders", path.read_bytes()):
        with DeadLetterWriter(scratch / "dead.jsonl") as dead:
            read_orders(path, dead)


# ------------------------------------------------------------------ events, stores and spools


EVENTS = shop_events()
NDJSON_BASE = b"".join(json.dumps(e).encode() + b"\n" for e in EVENTS)
CONFIG = parse_config(SHOP_CONFIG)


def consume(events: list) -> None:
    """What ``lineage show`` and ``audit`` do with events read back."""
    graph = LineageGraph.from_events(events)
    AuditView.from_events(events).runs()
    for ref in graph.datasets():
        graph.upstream(ref)


@given(data=st.data(), suffix=st.sampled_from([".ndjson", ".json"]))
@FUZZ
def test_event_files(data, suffix, scratch):
    if suffix == ".json":
        base, types = json.dumps(EVENTS, indent=1).encode(), JSON_TYPES
    else:
        base, types = NDJSON_BASE, ndjson_types
    path = scratch / f"events{suffix}"
    path.write_bytes(mutation(data, base, types))
    with only_our_errors("read_events(file:)", path.read_bytes()):
        consume(list(read_events(f"file:{path}", SkippedEvents())))


@pytest.fixture(scope="module")
def shop_lineage():
    graph = LineageGraph.from_events(EVENTS)
    return graph, AuditView.from_events(EVENTS)


@given(data=st.data())
@FUZZ
def test_baseline_files(data, shop_lineage, scratch):
    """A saved baseline (lineage and a data sample), damaged or edited: lineage drift and the sample read it."""
    import pandas as pd

    from lineage_auditor.audit.lineage_drift import load_baseline, snapshot
    from lineage_auditor.audit.rows import baseline_frame, baseline_sample
    from lineage_auditor.audit.runner import resolve_targets

    graph, view = shop_lineage
    doc = snapshot(graph, sorted(resolve_targets(graph, CONFIG)))
    doc["data"]["features.churn"] = baseline_sample(pd.DataFrame({"user_key": ["a", "b"], "revenue": [1.5, None]}))
    path = scratch / "baseline.json"
    path.write_bytes(mutation(data, json.dumps(doc, indent=1).encode(), JSON_TYPES))
    with only_our_errors("load_baseline", path.read_bytes()):
        loaded = load_baseline(path)
        for name in loaded["data"]:
            baseline_frame(loaded, name)
        result = run_audit(graph, view, CONFIG, baseline=loaded, checks=["lineage_drift"])
        crashed = [f for f in result.findings if f.title.endswith("failed to run")]
        assert not crashed, f"lineage drift crashed on a damaged baseline: {crashed[0].evidence}"


@pytest.fixture(scope="module")
def store_bytes(tmp_path_factory) -> bytes:
    """An embedded store holding the shop's runs, as the bytes of one file."""
    path = tmp_path_factory.mktemp("store") / "lineage.db"
    with EmbeddedStore(path) as store:
        store.add_events(EVENTS)
    assert not Path(f"{path}-wal").exists(), "closing checkpoints the WAL into the file"
    return path.read_bytes()


def _payload_types(data: st.DataObject, path: Path) -> None:
    """What another producer or an older version may have written: a wrong-typed stored event."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, payload FROM events").fetchall()
        row_id, payload = rows[data.draw(st.integers(0, len(rows) - 1), label="row")]
        if data.draw(st.booleans(), label="not json"):
            damaged = mutation(data, payload.encode()).decode("utf-8", "replace")
        else:
            damaged = JSON_TYPES(data, payload.encode()).decode()
        conn.execute("UPDATE events SET payload = ? WHERE id = ?", (damaged, row_id))
    conn.close()


@given(data=st.data())
@FUZZ
def test_store_files(data, store_bytes, scratch):
    """The embedded store file: byte damage, truncation, or a wrong-typed event inside."""
    path = scratch / "lineage.db"
    for leftover in scratch.glob("lineage.db*"):
        leftover.unlink()
    if data.draw(st.booleans(), label="damage the file"):
        path.write_bytes(mutation(data, store_bytes))
    else:
        path.write_bytes(store_bytes)
        _payload_types(data, path)
    with only_our_errors("embedded store", path.read_bytes()[:64]):
        skipped = SkippedEvents()
        consume(list(read_events(f"embedded:{path}", skipped)))
        with EmbeddedStore(path, create=False) as store:
            graph, view, _ = load_scoped(store, CONFIG, on_skip=skipped)
        result = run_audit(graph, view, CONFIG, checks=["reported_vs_rebuilt", "schema_drift", "pii", "coverage"])
        crashed = [f for f in result.findings if f.title.endswith("failed to run")]
        assert not crashed, f"a check crashed on a damaged store: {crashed[0].evidence}"


@given(data=st.data())
@FUZZ
def test_spool_files(data, scratch):
    """A damaged spool file among good ones: replay never raises and never stops on it."""
    spool_dir = scratch / "spool"
    shutil.rmtree(spool_dir, ignore_errors=True)
    for leftover in scratch.glob("target.db*"):
        leftover.unlink()
    spool = Spool(spool_dir)
    paths = [spool.write(event) for event in EVENTS[:4]]
    victim = paths[1]
    victim.write_bytes(mutation(data, victim.read_bytes(), JSON_TYPES))
    transport = EmbeddedTransport(scratch / "target.db")
    try:
        with only_our_errors("replay", victim.read_bytes()):
            result = replay(spool, transport)
            assert result.error is None and result.remaining == 0, result.to_dict()
            assert result.delivered + len(result.rejected) == 4
            assert not spool.pending()
    finally:
        transport.close()


DSL_SPEC = Path(__file__).resolve().parent.parent / "examples" / "specs" / "churn_inputs.yml"


@given(data=st.data())
@FUZZ
def test_dsl_specs_validate_and_plan(data, scratch):
    """lineage-audit/v1 specs: the loader, the reference checks and the planner (SQL and templates)."""
    from datetime import date

    from pipelines.dsl import load_spec as load_dsl_spec
    from pipelines.dsl import plan_spec

    path = scratch / "spec.yml"
    path.write_bytes(mutation(data, DSL_SPEC.read_bytes(), YAML_TYPES))
    with only_our_errors("pipelines validate", path.read_bytes()):
        plan_spec(load_dsl_spec(path), date(2024, 5, 1))


# ------------------------------------------------------------------ the service's files


TOKENS = {"tokens": [
    {"id": "8809fe35", "user": "airflow-prod", "sha256": "a" * 64, "created": "2026-12-01T10:00:00Z", "revoked": None},
    {"id": "107f562f", "user": "gina", "sha256": "b" * 64, "created": "2026-12-02T10:00:00Z", "revoked": "2026-12-03T10:00:00Z"},
]}


@given(data=st.data())
@FUZZ
def test_token_files(data, scratch):
    """serve's token file, damaged: every request's lookup says who it is, or our error naming the file."""
    from lineage_auditor.service.tokens import TokenBook, load_tokens

    path = scratch / "tokens.json"
    path.write_bytes(mutation(data, json.dumps(TOKENS, indent=1).encode(), JSON_TYPES))
    with only_our_errors("the token file", path.read_bytes()):
        load_tokens(path)
        TokenBook(path).user("la_8809fe35_anything")


ALERTS_POLICY = """\
apiVersion: lineage-audit/v1
kind: Policy
teams:
  - {{name: growth, members: [gina], owns: ["mart.*"]}}
alerts:
  every: 1m
  console: {{}}
  webhooks:
    - {{name: oncall, url: "http://127.0.0.1:{port}/hook", attempts: 1, backoff: 0.1s, timeout: 2s}}
"""


@pytest.fixture(scope="module")
def alert_receiver() -> Iterator[int]:
    """A webhook receiver on 127.0.0.1 that takes everything."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Take(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Take)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _alerting(scratch: Path, port: int) -> Any:
    from lineage_auditor.governance import load_policy
    from lineage_auditor.monitor.notify import Alerting

    (scratch / "governance.yml").write_text(ALERTS_POLICY.format(port=port))
    alerts = load_policy(scratch / "governance.yml").document.alerts
    return Alerting(alerts, folder=scratch / "alerts", base=scratch, console=lambda line: None, env={},
                    sleep=lambda seconds: None)


@given(data=st.data())
@FUZZ
def test_alert_state_and_dead_letter_files(data, alert_receiver, scratch):
    """The alert state (episodes) and a webhook's dead letter, written by one check and damaged
    before the next: the next check evaluates and delivers, or stops with our error naming the file."""
    from datetime import datetime, timezone

    from lineage_auditor.monitor.alerts import Snapshot

    shutil.rmtree(scratch / "alerts", ignore_errors=True)
    alerting = _alerting(scratch, alert_receiver)
    failing = Snapshot(failed=[("orders", "growth", "load failed"), ("sales", "growth", "")])
    alerting.check(failing, datetime(2026, 12, 1, 10, tzinfo=timezone.utc))
    state, queue = alerting.state, alerting.webhooks[0].queue.path
    queue.write_text(json.dumps({"receiver": "oncall", "url": "u", "queued_at": "2026-12-01T10:00:00Z", "attempts": 1,
                                 "error": "", "payload": {"status": "firing", "alerts": []}}) + "\n")
    victim = state if data.draw(st.booleans(), label="state file") else queue
    victim.write_bytes(mutation(data, victim.read_bytes(), ndjson_types if victim == queue else JSON_TYPES))
    with only_our_errors(victim.name, victim.read_bytes()):
        alerting.check(Snapshot(failed=[("orders", "growth", "load failed")]), datetime(2026, 12, 1, 11, tzinfo=timezone.utc))
