"""Secrets (DSN passwords, tokens, API keys) never leave the process: not in events, spool, files or logs."""

from __future__ import annotations

import copy
import json
import logging
import socket
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from collectors.emit import emitter_from_config, scrub, scrub_text, scrub_url, to_event_dict
from collectors.emit.examples import example_run
from collectors.openlineage_json import read_events
from tests.olspec import validate_event

SECRETS = ("S3cretPw", "tok_live_9f8e7d6c5b4a", "AKIAFAKEKEY123", "hunter2", "eyJhbGciOiJIUzI1NiJ9.payload.sig")
CUSTOM = ("pipelineConfig",)


def leaky_event() -> dict:
    """A START event from a careless pipeline: secrets in every place they tend to hide."""
    event = to_event_dict(example_run(start=datetime(2024, 5, 1, tzinfo=timezone.utc))[0])
    def meta(name: str, version: str = "1-0-0") -> dict:
        url = f"https://openlineage.io/spec/facets/{version}/{name}.json#/$defs/{name}"
        return {"_producer": "https://example.test/pipeline", "_schemaURL": url}

    event["job"]["facets"]["sql"]["query"] = (
        "ATTACH 'postgresql://etl:S3cretPw@db.internal:5432/warehouse' AS wh (TYPE postgres);\n"
        "CREATE USER loader PASSWORD 'hunter2';\n"
        "SELECT id, password_hash, token FROM users WHERE password = 'hunter2'"
    )
    event["run"]["facets"]["environmentVariables"] = {
        **meta("EnvironmentVariablesRunFacet"),
        "environmentVariables": [
            {"name": "PGPASSWORD", "value": "S3cretPw"},
            {"name": "AWS_ACCESS_KEY_ID", "value": "AKIAFAKEKEY123"},
            {"name": "USERS_API_TOKEN", "value": "tok_live_9f8e7d6c5b4a"},
            {"name": "PGHOST", "value": "db.internal"},
        ],
    }
    event["run"]["facets"]["errorMessage"] = {
        **meta("ErrorMessageRunFacet", "1-0-1"),
        "message": "connection to postgresql://etl:S3cretPw@db.internal:5432/warehouse failed",
        "programmingLanguage": "python",
        "stackTrace": "httpx.HTTPStatusError: GET https://api.example/users?page=2&token=tok_live_9f8e7d6c5b4a\n"
        "request headers: {'Authorization': 'Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig'}",
    }
    event["run"]["facets"]["pipelineConfig"] = {
        "_producer": "https://example.test/pipeline",
        "_schemaURL": "https://example.test/schemas/PipelineConfigRunFacet.json",
        "source": {"url": "https://api.example/users", "api_key": "tok_live_9f8e7d6c5b4a", "page_size": 100},
        "target": {"dsn": "host=db.internal user=etl password=S3cretPw dbname=warehouse", "password": "S3cretPw"},
        "headers": {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "Accept": "application/json"},
    }
    users = event["inputs"][0]
    users["namespace"] = "postgres://etl:S3cretPw@db.internal:5432"
    users["facets"]["schema"]["fields"].append({"name": "password", "type": "text"})
    event["inputs"].append({"namespace": "https://api.example", "name": "/users?token=tok_live_9f8e7d6c5b4a"})
    lineage = event["outputs"][0]["facets"]["columnLineage"]["fields"]
    lineage["password"] = {"inputFields": [{"namespace": users["namespace"], "name": users["name"], "field": "password",
                                             "transformations": [{"type": "DIRECT", "subtype": "IDENTITY", "masking": True}]}]}
    return event


def assert_no_secret(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"secrets leaked: {leaked}"


def test_scrub_removes_every_secret_and_keeps_the_lineage():
    event = leaky_event()
    original = copy.deepcopy(event)
    clean = scrub(event)
    assert event == original, "scrub returns a copy"
    assert_no_secret(json.dumps(clean))
    run = clean["run"]["facets"]
    assert run["errorMessage"]["message"] == "connection to postgresql://etl:***@db.internal:5432/warehouse failed"
    env = {v["name"]: v["value"] for v in run["environmentVariables"]["environmentVariables"]}
    assert env == {"PGPASSWORD": "***", "AWS_ACCESS_KEY_ID": "***", "USERS_API_TOKEN": "***", "PGHOST": "db.internal"}
    config = run["pipelineConfig"]
    assert config["source"] == {"url": "https://api.example/users", "api_key": "***", "page_size": 100}
    assert config["target"]["dsn"] == "host=db.internal user=etl password=*** dbname=warehouse"
    assert config["headers"] == {"Authorization": "***", "Accept": "application/json"}
    sql = clean["job"]["facets"]["sql"]["query"]
    assert "SELECT id, password_hash, token FROM users" in sql, "column names are not secrets"
    assert "PASSWORD '***'" in sql
    assert clean["inputs"][0]["namespace"] == "postgres://etl:***@db.internal:5432"
    # a column *named* password keeps its lineage; only the DSN password in its namespace goes
    expected = copy.deepcopy(original["outputs"][0]["facets"]["columnLineage"])
    expected["fields"]["password"]["inputFields"][0]["namespace"] = "postgres://etl:***@db.internal:5432"
    assert clean["outputs"][0]["facets"]["columnLineage"] == expected
    assert clean["inputs"][0]["facets"]["schema"] == original["inputs"][0]["facets"]["schema"]
    validate_event(clean, custom_facets=CUSTOM)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://user:pass@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user@host:5432/db", "postgresql://user@host:5432/db"),
        ("mysql://u:p@ss:w@h/db", "mysql://u:***@h/db"),
        ("http://host:8080/path@x", "http://host:8080/path@x"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"),
        ("curl -H 'X-Api-Key: abcdef123456'", "curl -H 'X-Api-Key: ***'"),
        ("Unexpected token: SELECT at line 1", "Unexpected token: SELECT at line 1"),
        ("client_secret=abc&grant_type=client_credentials", "client_secret=***&grant_type=client_credentials"),
        ("ALTER ROLE etl IDENTIFIED BY \"pw\"", "ALTER ROLE etl IDENTIFIED BY \"***\""),
    ],
)
def test_scrub_text_cases(text, expected):
    assert scrub_text(text) == expected


def test_scrub_url():
    assert scrub_url("https://admin:pw@marquez.internal:5000") == "https://admin:***@marquez.internal:5000"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]




def test_no_secret_reaches_a_file_the_spool_or_a_log(home, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "events.ndjson"
    with emitter_from_config(f"file:{out}") as emitter:
        assert emitter.emit(leaky_event())
    assert_no_secret(out.read_text())
    validate_event(read_events(out)[0], custom_facets=CUSTOM)

    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__AUTH", '{"type": "api_key", "apiKey": "tok_live_9f8e7d6c5b4a"}')
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", f"http://etl:S3cretPw@127.0.0.1:{closed_port()}")
    with emitter_from_config() as emitter:
        assert emitter.emit(leaky_event()) is False
        assert_no_secret(repr(emitter) + emitter.transport.describe())
    [spooled] = emitter.spool.pending()
    assert_no_secret(spooled.read_text())
    assert "unreachable" in caplog.text and "spooling" in caplog.text
    assert_no_secret(caplog.text)


class _EmptyMarquez(BaseHTTPRequestHandler):
    """A Marquez with no events that fails every other request, quoting a DSN with a password."""

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/api/v1/events/lineage"):
            self._send(200, b'{"events": [], "totalCount": 0}')
        else:
            self._send(500, b"could not connect to postgresql://marquez:S3cretPw@db.internal:5432/marquez")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_a_password_in_a_marquez_url_is_in_no_message(tmp_path, caplog):
    """Marquez addresses carry userinfo (marquez:http://user:password@host): no error, log
    line or output of the Marquez reader, the transport or the CLI may repeat it."""
    from click.testing import CliRunner

    from collectors.marquez.client import MarquezClient
    from lineage_auditor.cli import _register, cli
    from lineage_auditor.errors import LineageAuditError

    caplog.set_level(logging.DEBUG)
    down = f"http://etl:S3cretPw@127.0.0.1:{closed_port()}"
    with pytest.raises(LineageAuditError) as unreachable:
        list(MarquezClient(down, timeout=2).namespaces())
    assert "cannot reach Marquez at http://127.0.0.1:" in str(unreachable.value)

    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyMarquez)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    up = f"http://etl:S3cretPw@127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(LineageAuditError) as failing:
            list(MarquezClient(up).namespaces())
        assert "answered 500" in str(failing.value)

        _register()
        runner = CliRunner()
        copied = runner.invoke(cli, ["collect", "--from", f"marquez:{up}", "--to", f"embedded:{tmp_path / 'x.db'}",
                                     "--format", "json"])
        assert copied.exit_code == 0, copied.output
        refused = runner.invoke(cli, ["collect", "--from", f"marquez:{down}", "--to", f"embedded:{tmp_path / 'y.db'}"])
        assert refused.exit_code == 2 and "error: " in refused.output
        shown = runner.invoke(cli, ["lineage", "show", "users", "--store", f"marquez:{down}"])
        assert shown.exit_code == 2
        spooled = runner.invoke(cli, ["replay", "--lineage", f"marquez:{up}"], env={"LINEAGE_AUDIT_HOME": str(tmp_path)})
    finally:
        server.shutdown()
        server.server_close()
    for text in (str(unreachable.value), str(failing.value), copied.output, refused.output, shown.output,
                 spooled.output, caplog.text):
        assert_no_secret(text)
