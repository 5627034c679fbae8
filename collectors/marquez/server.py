"""Run a real Marquez API server locally, without Docker: up, down, status, logs.

One server per state directory (default ``$LINEAGE_AUDIT_HOME/marquez`` or
``.lineage/marquez``). ``up`` records the process id, ports and command line in
``server.json`` there; a second ``up`` finds the live server and reuses it, and ``down``
stops only a process whose command line still matches what ``up`` recorded, so a recycled
process id is never killed. ``scripts/marquez.sh`` and the test fixtures drive this module.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from collectors.marquez import artifact, database
from collectors.marquez.artifact import MarquezSetupError

DEFAULT_PORT = 5000
DEFAULT_ADMIN_PORT = 5001
DEFAULT_DB_NAME = "marquez"
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40


@dataclass
class ServerInfo:
    """What ``up`` started, as recorded in ``server.json``."""

    pid: int
    port: int
    admin_port: int
    version: str
    database: str
    log: str
    command: list[str]
    started_at: float
    reused: bool = field(default=False, compare=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("reused")
        return data


def default_state_dir() -> Path:
    home = os.environ.get("LINEAGE_AUDIT_HOME") or ".lineage"
    return Path(home) / "marquez"


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class MarquezServer:
    """A local Marquez bound to 127.0.0.1, its database and its state directory."""

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        port: int = DEFAULT_PORT,
        admin_port: int = DEFAULT_ADMIN_PORT,
        db_name: str = DEFAULT_DB_NAME,
        pg_dsn: str | None = None,
        version: str = artifact.MARQUEZ_VERSION,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.port = port or free_port()
        self.admin_port = admin_port or free_port()
        self.db_name = db_name
        self.pg_dsn = pg_dsn
        self.version = version

    @property
    def state_file(self) -> Path:
        return self.state_dir / "server.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "marquez.log"

    # -- queries -------------------------------------------------------------------------

    def recorded(self) -> ServerInfo | None:
        """The server ``up`` recorded, if its process is still the one it started."""
        try:
            info = ServerInfo(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return info if _is_our_process(info) else None

    def status(self) -> dict:
        """Running or not, where, and whether the health check passes."""
        info = self.recorded()
        if info is None:
            return {"running": False, "state_dir": str(self.state_dir)}
        return {
            "running": True,
            "healthy": healthy(info.admin_port),
            "pid": info.pid,
            "url": info.url,
            "admin_url": info.admin_url,
            "version": info.version,
            "database": info.database,
            "log": info.log,
            "uptime_s": round(time.time() - info.started_at, 1),
        }

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- lifecycle -----------------------------------------------------------------------

    def up(self, *, timeout: float = START_TIMEOUT_S, progress=None) -> ServerInfo:
        """Start Marquez (or reuse the one this state directory started) and wait for health.

        ``progress`` is an optional callable taking a short status string.
        """
        say = progress or (lambda _msg: None)
        running = self.recorded()
        if running is not None:
            if healthy(running.admin_port):
                running.reused = True
                return running
            say("waiting for the running server to become healthy")
            self._wait_healthy(running, timeout)
            running.reused = True
            return running
        self._check_ports_free()
        say(f"resolving Marquez {self.version}")
        launch = artifact.resolve(self.version)
        say("preparing the marquez database")
        db = database.ensure_database(self.db_name, artifact.cache_dir(self.version).parent / "db-roles", self.pg_dsn)
        info = self._spawn(launch, db)
        say(f"starting Marquez on {info.url} (pid {info.pid})")
        try:
            self._wait_healthy(info, timeout)
        except MarquezSetupError:
            self._terminate(info)
            self.state_file.unlink(missing_ok=True)
            raise
        return info

    def down(self, *, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the server ``up`` started here; False when there was none."""
        info = self.recorded()
        if info is None:
            self.state_file.unlink(missing_ok=True)
            return False
        self._terminate(info, timeout)
        self.state_file.unlink(missing_ok=True)
        return True

    # -- internals -----------------------------------------------------------------------

    def _check_ports_free(self) -> None:
        for port in (self.port, self.admin_port):
            if port_in_use(port):
                raise MarquezSetupError(
                    f"port {port} on 127.0.0.1 is already in use by another program; "
                    "choose others with --port/--admin-port (0 picks a free one)"
                )

    def _spawn(self, launch: artifact.Launch, db: database.MarquezDatabase) -> ServerInfo:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config = artifact.deploy_dir() / "marquez.yml"
        if not config.is_file():
            raise MarquezSetupError(f"{config} is missing (set LINEAGE_AUDIT_DEPLOY_DIR to a folder holding pom.xml and marquez.yml)")
        command = launch.command(config.resolve())
        env = {
            **os.environ,
            **db.env(),
            "MARQUEZ_PORT": str(self.port),
            "MARQUEZ_ADMIN_PORT": str(self.admin_port),
            "MARQUEZ_BIND_HOST": "127.0.0.1",
        }
        with open(self.log_file, "ab") as log:
            log.write(f"--- lineage-audit: starting {' '.join(command)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=self.state_dir, process_group=0,
            )
        info = ServerInfo(
            pid=proc.pid, port=self.port, admin_port=self.admin_port, version=self.version,
            database=db.describe(), log=str(self.log_file.resolve()), command=command,
            started_at=time.time(),
        )
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info.to_json(), indent=2))
        tmp.replace(self.state_file)
        return info

    def _wait_healthy(self, info: ServerInfo, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(info.pid):
                raise MarquezSetupError(
                    f"Marquez exited during start-up; last lines of {info.log}:\n{self.log_tail()}"
                )
            if healthy(info.admin_port):
                return
            time.sleep(0.5)
        raise MarquezSetupError(
            f"Marquez did not pass its health check within {timeout:.0f} s; last lines of {info.log}:\n{self.log_tail()}"
        )

    def _terminate(self, info: ServerInfo, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the process group ``up`` created, SIGKILL it if it lingers."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(info.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not _alive(info.pid):
                    return
                time.sleep(0.2)


def healthy(admin_port: int) -> bool:
    """Marquez's admin health check answers 200."""
    try:
        return httpx.get(f"http://127.0.0.1:{admin_port}/healthcheck", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own exited child, if it is one
    except ChildProcessError:
        pass
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return os.path.exists(f"/proc/{pid}") or not Path("/proc").is_dir()


def _is_our_process(info: ServerInfo) -> bool:
    """The recorded pid is alive and still runs the command ``up`` launched."""
    if not _alive(info.pid):
        return False
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): trust the pid
    args = [a.decode(errors="replace") for a in cmdline if a]
    return args[-2:] == info.command[-2:]
