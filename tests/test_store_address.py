"""One address syntax names a store for every command: --lineage, --store, --from, --to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from collectors.sources import describe_source
from collectors.store.address import parse_address
from lineage_auditor.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_forms_of_an_address():
    assert parse_address("embedded") == {"type": "embedded"}
    assert parse_address("embedded:/tmp/x.db") == {"type": "embedded", "path": "/tmp/x.db"}
    assert parse_address("marquez:http://127.0.0.1:5000/") == {"type": "marquez", "url": "http://127.0.0.1:5000"}
    assert parse_address("marquez://127.0.0.1:5000") == {"type": "marquez", "url": "http://127.0.0.1:5000"}
    assert parse_address("https://marquez.internal") == {"type": "marquez", "url": "https://marquez.internal"}
    assert parse_address("http:https://h/api/v1/lineage") == {"type": "http", "url": "https://h/api/v1/lineage"}
    assert parse_address("file:out.ndjson") == {"type": "file", "log_file_path": "out.ndjson"}
    assert parse_address("none") == {"type": "none"}
    assert parse_address("postgresql://la@db:5432/lineage") == {"type": "postgresql", "dsn": "postgresql://la@db:5432/lineage"}
    assert parse_address("postgres://db/lineage")["type"] == "postgresql"
    for bad in ("kafka:broker", "marquez", "marquez://", "marquez:127.0.0.1:5000", "file:", "console:x", "embeded",
                "postgresql:///lineage", "postgresql://db:port/x"):
        with pytest.raises(ConfigError):
            parse_address(bad)


def test_descriptions_never_show_a_password():
    assert describe_source("marquez:http://user:s3cret@127.0.0.1:5000") == "marquez:http://user:***@127.0.0.1:5000"
    assert "s3cret" not in describe_source("marquez://user:s3cret@127.0.0.1:5000")
    assert describe_source("postgresql://la:s3cret@db:5432/lineage") == "postgresql://la:***@db:5432/lineage"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lineage_auditor.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                                      "LINEAGE_AUDIT_HOME": str(cwd / ".lineage")})


def test_the_same_file_address_works_in_show_and_collect(tmp_path: Path):
    from test_store_parity import _events

    (tmp_path / "events.ndjson").write_text("".join(json.dumps(e) + "\n" for e in _events()))
    show = _cli("lineage", "show", "analytics.table_ab", "--store", "file:events.ndjson", "--format", "json", cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    copied = _cli("collect", "--from", "file:events.ndjson", "--to", "embedded:copy.db", "--format", "json", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert json.loads(copied.stdout.strip().splitlines()[-1])["added"] == 8
    again = _cli("collect", "--from", "embedded:copy.db", "--to", "file:back.ndjson", "--format", "json", cwd=tmp_path)
    assert json.loads(again.stdout.strip().splitlines()[-1])["added"] == 8
    twice = _cli("collect", "--from", "embedded:copy.db", "--to", "file:back.ndjson", "--format", "json", cwd=tmp_path)
    assert json.loads(twice.stdout.strip().splitlines()[-1])["added"] == 0, "copying twice copies nothing new"
    from_copy = _cli("lineage", "show", "analytics.table_ab", "--store", "embedded:copy.db", "--format", "json", cwd=tmp_path)
    assert json.loads(from_copy.stdout)["upstream"] == json.loads(show.stdout)["upstream"]
    unknown = _cli("collect", "--from", "kafka:x", "--to", "embedded", cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: unknown store") and "Traceback" not in unknown.stderr
