"""Process management of ``lineage-audit marquez``: up, reuse, status, logs, down, failures.

Marquez itself is exercised by tests/test_marquez.py. Here the java process is a tiny
stand-in compiled at test time (a JDK HTTP server answering ``/healthcheck`` on the admin
port Marquez would use), so start-up failures, time-outs and stray processes can be
provoked on purpose. Everything else is real: java, the state directory, the PostgreSQL
role and database, the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from collectors.marquez.artifact import MarquezSetupError
from collectors.marquez.cli import marquez as marquez_cli
from collectors.marquez.database import drop_database
from lineage_auditor.errors import LineageAuditError
from collectors.marquez.server import MarquezServer, port_in_use

pytestmark = pytest.mark.postgres

STUB = r"""
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.nio.file.*;

public class StubMarquez {
  public static void main(String[] args) throws Exception {
    if (args.length != 2 || !args[0].equals("server") || !Files.exists(Path.of(args[1]))) {
      System.out.println("usage: server <existing config>"); System.exit(2);
    }
    if (System.getenv("STUB_FAIL") != null) { System.out.println("stub failing on purpose"); System.exit(1); }
    for (String key : new String[] {"POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER"}) {
      if (System.getenv(key) == null) { System.out.println("missing " + key); System.exit(3); }
    }
    int api = Integer.parseInt(System.getenv("MARQUEZ_PORT"));
    int admin = Integer.parseInt(System.getenv("MARQUEZ_ADMIN_PORT"));
    HttpServer a = HttpServer.create(new InetSocketAddress("127.0.0.1", api), 0);
    a.start();
    if (System.getenv("STUB_NEVER_HEALTHY") == null) {
      HttpServer h = HttpServer.create(new InetSocketAddress("127.0.0.1", admin), 0);
      h.createContext("/healthcheck", ex -> { byte[] b = "{}".getBytes(); ex.sendResponseHeaders(200, b.length); ex.getResponseBody().write(b); ex.close(); });
      h.start();
    }
    System.out.println("stub started db=" + System.getenv("POSTGRES_DB"));
    Thread.sleep(Long.MAX_VALUE);
  }
}
"""


@pytest.fixture(scope="module")
def stub_jar(tmp_path_factory) -> Path:
    if not shutil.which("javac") or not shutil.which("jar"):
        pytest.fail("javac/jar (a JDK 17) are needed to build the stand-in server", pytrace=False)
    folder = tmp_path_factory.mktemp("stub")
    (folder / "StubMarquez.java").write_text(STUB)
    subprocess.run(["javac", "StubMarquez.java"], cwd=folder, check=True, timeout=300)
    subprocess.run(["jar", "cfe", "stub-marquez.jar", "StubMarquez", "StubMarquez.class"], cwd=folder, check=True)
    return folder / "stub-marquez.jar"


@pytest.fixture
def env(stub_jar, pg_admin_dsn, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LINEAGE_AUDIT_PG_DSN", pg_admin_dsn)  # where MarquezServer creates its database
    monkeypatch.setenv("LINEAGE_AUDIT_MARQUEZ_JAR", str(stub_jar))
    monkeypatch.setenv("LINEAGE_AUDIT_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def db_name(pg_admin_dsn):
    name = f"t_mqsrv_{uuid.uuid4().hex[:8]}"
    yield name
    drop_database(name, pg_admin_dsn)


def _server(state: Path, db_name: str) -> MarquezServer:
    return MarquezServer(state, port=0, admin_port=0, db_name=db_name)


def test_up_starts_reuses_and_down_stops(env, db_name):
    state = env / "state"
    info = _server(state, db_name).up(timeout=60)
    try:
        assert not info.reused
        status = _server(state, db_name).status()
        assert status["running"] and status["healthy"] and status["url"] == info.url

        again = _server(state, db_name).up(timeout=60)  # a new process asking again
        assert again.reused and again.pid == info.pid and again.admin_port == info.admin_port

        assert f"stub started db={db_name}" in _server(state, db_name).log_tail()
    finally:
        stopped = _server(state, db_name).down()
    assert stopped
    assert not _pid_alive(info.pid)
    assert _server(state, db_name).status() == {"running": False, "state_dir": str(state)}
    assert _server(state, db_name).down() is False


def test_database_is_owned_by_a_role_of_its_own(env, db_name):
    server = _server(env / "state", db_name)
    server.up(timeout=60)
    server.down()
    with psycopg.connect(os.environ["LINEAGE_AUDIT_PG_DSN"]) as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (db_name,)
        ).fetchone()
        login = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (f"{db_name}_owner",)).fetchone()
    assert owner == (f"{db_name}_owner",)
    assert login == (True,)


def _passwords(dsn: str) -> dict[str, str | None]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT rolname, rolpassword FROM pg_authid").fetchall())


def test_up_never_changes_an_existing_roles_password(env, db_name, pg_admin_dsn, monkeypatch):
    other_db = f"{db_name}_b"
    before = _passwords(pg_admin_dsn)
    first = _server(env / "state-a", db_name)
    first.up(timeout=60)
    first.down()
    second = MarquezServer(env / "state-b", port=0, admin_port=0, db_name=other_db)
    try:
        second.up(timeout=60)
        second.down()
        after = _passwords(pg_admin_dsn)
        # Every role that was there keeps its password; each instance got a role of its own.
        assert {r: after[r] for r in before} == before
        assert set(after) - set(before) == {f"{db_name}_owner", f"{other_db}_owner"}
        # Up again (same instance): the kept password is reused, nothing is altered.
        first.up(timeout=60)
        first.down()
        assert _passwords(pg_admin_dsn) == after
    finally:
        drop_database(other_db, pg_admin_dsn)


def test_a_role_whose_password_is_not_known_is_a_clear_error_and_stays_as_it_was(env, db_name, pg_admin_dsn, monkeypatch):
    role = f"{db_name}_owner"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'theirs-Pa55'")
    before = _passwords(pg_admin_dsn)[role]
    monkeypatch.delenv("MARQUEZ_DB_PASSWORD", raising=False)
    with pytest.raises(LineageAuditError, match=f"role {role} already exists and its password is not known.*MARQUEZ_DB_PASSWORD"):
        _server(env / "state", db_name).up(timeout=60)
    assert _passwords(pg_admin_dsn)[role] == before

    monkeypatch.setenv("MARQUEZ_DB_PASSWORD", "theirs-Pa55")  # the owner says what it is
    server = _server(env / "state", db_name)
    server.up(timeout=60)
    server.down()
    assert _passwords(pg_admin_dsn)[role] == before


def test_password_never_reaches_state_or_log(env, db_name, monkeypatch):
    monkeypatch.setenv("MARQUEZ_DB_PASSWORD", "s3cret-Pa55")
    server = _server(env / "state", db_name)
    server.up(timeout=60)
    server.down()
    for path in (env / "state").iterdir():
        assert "s3cret-Pa55" not in path.read_text(errors="replace"), path


def test_down_leaves_a_process_it_did_not_start(env, db_name):
    state = env / "state"
    server = _server(state, db_name)
    server.up(timeout=60)
    record = json.loads((state / "server.json").read_text())
    server.down()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], process_group=0)
    try:
        # server.json names a live pid that now runs something else (a recycled pid)
        record["pid"] = other.pid
        (state / "server.json").write_text(json.dumps(record))
        assert server.down() is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_server_that_exits_reports_its_log(env, db_name, monkeypatch):
    monkeypatch.setenv("STUB_FAIL", "1")
    server = _server(env / "state", db_name)
    with pytest.raises(MarquezSetupError, match="exited during start-up(.|\n)*stub failing on purpose"):
        server.up(timeout=60)
    assert not (env / "state" / "server.json").exists()


def test_a_server_that_never_gets_healthy_times_out_and_is_stopped(env, db_name, monkeypatch):
    monkeypatch.setenv("STUB_NEVER_HEALTHY", "1")
    server = _server(env / "state", db_name)
    with pytest.raises(MarquezSetupError, match="health check within 5 s(.|\n)*lineage-audit: starting"):
        server.up(timeout=5)
    assert not (env / "state" / "server.json").exists()
    assert not port_in_use(server.port)  # the stand-in, which had bound it, was stopped
    assert server.status()["running"] is False


def test_a_busy_port_is_a_clear_error(env, db_name):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        server = MarquezServer(env / "state", port=busy, admin_port=0, db_name=db_name)
        with pytest.raises(MarquezSetupError, match=f"port {busy} .* already in use"):
            server.up(timeout=10)


def test_missing_java_and_missing_maven_are_named(env, db_name, monkeypatch):
    empty = env / "bin-empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(MarquezSetupError, match="java not found.*Java 17"):
        _server(env / "state", db_name).up(timeout=10)

    only_java = env / "bin-java"
    only_java.mkdir()
    (only_java / "java").symlink_to(shutil.which("java", path=os.defpath + ":/usr/bin") or "/usr/bin/java")
    monkeypatch.setenv("PATH", str(only_java))
    monkeypatch.delenv("LINEAGE_AUDIT_MARQUEZ_JAR")
    with pytest.raises(MarquezSetupError, match="mvn not found.*Maven.*LINEAGE_AUDIT_MARQUEZ_JAR"):
        _server(env / "state", db_name).up(timeout=10)


def test_cli_up_status_logs_down(env, db_name):
    state = str(env / "state")
    runner = CliRunner()
    up = runner.invoke(marquez_cli, ["up", "--port", "0", "--admin-port", "0", "--db-name", db_name,
                                     "--state-dir", state, "--format", "json", "--timeout", "60"])
    assert up.exit_code == 0, up.output
    info = json.loads(up.output.strip().splitlines()[-1])
    try:
        assert info["url"].startswith("http://127.0.0.1:") and info["reused"] is False
        status = runner.invoke(marquez_cli, ["status", "--state-dir", state, "--format", "json"])
        assert status.exit_code == 0 and json.loads(status.output)["healthy"] is True
        logs = runner.invoke(marquez_cli, ["logs", "--state-dir", state, "-n", "5"])
        assert "stub started" in logs.output
    finally:
        down = runner.invoke(marquez_cli, ["down", "--state-dir", state])
    assert down.exit_code == 0 and "stopped" in down.output
    after = runner.invoke(marquez_cli, ["status", "--state-dir", state])
    assert after.exit_code == 1 and "not running" in after.output


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"

