"""Which lineage target wins: --lineage > environment > openlineage.yml > embedded default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collectors.emit import (
    ConsoleTransport,
    EmbeddedTransport,
    FileTransport,
    HttpTransport,
    NoopTransport,
    emitter_from_config,
    parse_spec,
    resolve_transport_config,
)
from lineage_auditor.errors import LineageAuditError


@pytest.fixture
def clean(tmp_path, monkeypatch) -> Path:
    """No ambient OpenLineage settings; cwd and HOME are empty temp folders."""
    for key in list(os.environ):
        if key.startswith("OPENLINEAGE") or key == "LINEAGE_AUDIT_HOME":
            monkeypatch.delenv(key)
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


def write_yml(path: Path, transport: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("transport:\n" + "".join(f"  {line}\n" for line in transport.strip().splitlines()))
    return path


def target(lineage: str | None = None, home: Path | None = None):
    emitter = emitter_from_config(lineage, home=home)
    emitter.close()
    return emitter.transport


def test_default_is_the_embedded_store_under_the_lineage_home(clean, monkeypatch):
    transport = target()
    assert isinstance(transport, EmbeddedTransport)
    assert transport.path == Path(".lineage/lineage.db")
    monkeypatch.setenv("LINEAGE_AUDIT_HOME", str(clean / "state"))
    emitter = emitter_from_config()
    assert emitter.transport.path == clean / "state" / "lineage.db"
    assert emitter.spool.directory == clean / "state" / "spool"
    assert target(home=clean / "explicit").path == clean / "explicit" / "lineage.db"


def test_yml_in_cwd_then_home(clean):
    write_yml(clean / "home" / ".openlineage" / "openlineage.yml", "type: console")
    assert isinstance(target(), ConsoleTransport)
    write_yml(clean / "work" / "openlineage.yml", "type: http\nurl: http://127.0.0.1:5000\nendpoint: api/v1/lineage")
    transport = target()
    assert isinstance(transport, HttpTransport)
    assert transport.describe() == "http:http://127.0.0.1:5000/api/v1/lineage"


def test_openlineage_config_names_the_file(clean, monkeypatch):
    write_yml(clean / "work" / "openlineage.yml", "type: console")
    named = write_yml(clean / "conf" / "lineage.yml", f"type: file\nlog_file_path: {clean / 'events.ndjson'}")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(named))
    transport = target()
    assert isinstance(transport, FileTransport) and transport.path == clean / "events.ndjson"
    assert resolve_transport_config()[1] == str(named)


def test_env_beats_yml_and_option_beats_env(clean, monkeypatch):
    write_yml(clean / "work" / "openlineage.yml", "type: console")
    monkeypatch.setenv("OPENLINEAGE_URL", "http://127.0.0.1:5000")
    transport = target()
    assert isinstance(transport, HttpTransport) and transport.url == "http://127.0.0.1:5000"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(clean / "x.ndjson"))
    transport = target()
    assert isinstance(transport, FileTransport) and transport.path == clean / "x.ndjson"
    assert resolve_transport_config()[1] == "env"
    assert isinstance(target("embedded:custom.db"), EmbeddedTransport)
    assert target("embedded:custom.db").path == Path("custom.db")
    assert resolve_transport_config("console") == ({"type": "console"}, "option")


def test_env_transport_options_nest_and_parse_json(clean, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "marquez")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TIMEOUT", "2.5")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__AUTH", '{"type": "api_key", "apiKey": "k"}')
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__CUSTOM_HEADERS__X_TEAM", "data")
    config, source = resolve_transport_config()
    assert source == "env"
    assert config == {
        "type": "marquez",
        "url": "http://127.0.0.1:5000",
        "timeout": 2.5,
        "auth": {"type": "api_key", "apiKey": "k"},
        "custom_headers": {"x_team": "data"},
    }
    transport = target()
    assert isinstance(transport, HttpTransport) and transport.kind == "marquez" and transport.timeout == 2.5


def test_openlineage_url_with_api_key(clean, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_URL", "https://lineage.example:8443")
    monkeypatch.setenv("OPENLINEAGE_ENDPOINT", "custom/lineage")
    monkeypatch.setenv("OPENLINEAGE_API_KEY", "secret-key")
    config, _ = resolve_transport_config()
    assert config == {
        "type": "http",
        "url": "https://lineage.example:8443",
        "endpoint": "custom/lineage",
        "auth": {"type": "api_key", "apiKey": "secret-key"},
    }
    assert "secret-key" not in target().describe()


def test_disabled(clean, monkeypatch):
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    assert isinstance(target(), NoopTransport)
    assert isinstance(target("embedded"), EmbeddedTransport), "an explicit option still wins"


def test_spec_strings():
    assert parse_spec("embedded") == {"type": "embedded"}
    assert parse_spec("embedded:/tmp/x.db") == {"type": "embedded", "path": "/tmp/x.db"}
    assert parse_spec("marquez:http://127.0.0.1:5000") == {"type": "marquez", "url": "http://127.0.0.1:5000"}
    assert parse_spec("http:https://h/ol") == {"type": "http", "url": "https://h/ol"}
    assert parse_spec("file:out.ndjson") == {"type": "file", "log_file_path": "out.ndjson"}
    assert parse_spec("console") == {"type": "console"}
    for bad in ("kafka:broker", "marquez", "marquez:127.0.0.1:5000", "file:", "bogus"):
        with pytest.raises(LineageAuditError):
            parse_spec(bad)


def test_configuration_errors_are_clear(clean, monkeypatch):
    yml = clean / "work" / "openlineage.yml"
    yml.write_text("transport:\n  type: http\n  url: [unclosed\n")
    with pytest.raises(LineageAuditError) as err:
        target()
    assert err.value.file.endswith("openlineage.yml") and err.value.line >= 3
    yml.write_text("transport:\n  type: kafka\n")
    with pytest.raises(LineageAuditError, match="unsupported OpenLineage transport type 'kafka'"):
        target()
    yml.write_text("transport:\n  type: http\n")
    with pytest.raises(LineageAuditError, match="needs a url"):
        target()
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(clean / "missing.yml"))
    with pytest.raises(LineageAuditError, match="does not exist"):
        target()


def test_yml_without_transport_falls_back_to_default(clean):
    (clean / "work" / "openlineage.yml").write_text("facets:\n  disabled: []\n")
    assert isinstance(target(), EmbeddedTransport)
