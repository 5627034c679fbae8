"""``lineage-audit marquez up|down|status|logs`` and ``lineage-audit collect``.

Exit codes: 0 ok; 1 ``marquez status`` found no running server; 2 usage or input error
(Java/Maven/PostgreSQL missing, Marquez unreachable, bad store URI).
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from collectors.marquez import artifact
from lineage_auditor.scrub import scrub_url
from collectors.marquez.server import DEFAULT_ADMIN_PORT, DEFAULT_PORT, START_TIMEOUT_S, MarquezServer

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
                      help="Output format.")
STATE_DIR = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                         help="Where the pid, ports and log live [default: $LINEAGE_AUDIT_HOME/marquez or .lineage/marquez].")

err = Console(stderr=True)


def _server(state_dir: Path | None, port: int = DEFAULT_PORT, admin_port: int = DEFAULT_ADMIN_PORT,
            db_name: str = "marquez", version: str = artifact.MARQUEZ_VERSION) -> MarquezServer:
    return MarquezServer(state_dir, port=port, admin_port=admin_port, db_name=db_name, version=version)


@click.group("marquez")
def marquez() -> None:
    """Run a local Marquez lineage server (no Docker needed).

    Marquez's API server is fetched once from Maven Central with Maven (cached in
    $LINEAGE_AUDIT_CACHE or ~/.cache/lineage-audit) and runs on Java 17 against PostgreSQL
    (LINEAGE_AUDIT_PG_DSN, default: the cluster of scripts/postgres.sh). Set
    LINEAGE_AUDIT_MARQUEZ_JAR to use a marquez-api jar you already have.

    \b
    Examples:
      lineage-audit marquez up
      lineage-audit marquez up --port 0 --admin-port 0 --format json
      lineage-audit marquez status
      lineage-audit marquez logs -n 100
      lineage-audit marquez down
    """


@marquez.command("up")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="API port on 127.0.0.1 (0: any free port).")
@click.option("--admin-port", type=int, default=DEFAULT_ADMIN_PORT, show_default=True, help="Admin/health port (0: any free port).")
@click.option("--db-name", default="marquez", show_default=True, help="PostgreSQL database, owned by a role of its own: <db-name>_owner.")
@click.option("--marquez-version", default=artifact.MARQUEZ_VERSION, show_default=True, help="marquez-api version to fetch.")
@click.option("--timeout", type=float, default=START_TIMEOUT_S, show_default=True, help="Seconds to wait for the health check.")
@STATE_DIR
@FORMAT
def up(port: int, admin_port: int, db_name: str, marquez_version: str, timeout: float, state_dir: Path | None, fmt: str) -> None:
    """Start Marquez, or reuse the one already started from this state directory.

    Waits until GET /healthcheck on the admin port answers; on failure prints the end of
    the server log. The first start downloads Marquez and migrates its database.

    \b
    Examples:
      lineage-audit marquez up
      lineage-audit marquez up --port 0 --admin-port 0 --state-dir /tmp/mq --format json
    """
    server = _server(state_dir, port, admin_port, db_name, marquez_version)
    started = time.monotonic()
    with err.status("starting Marquez") as status:
        info = server.up(timeout=timeout, progress=lambda msg: status.update(msg))
    if fmt == "json":
        click.echo(json.dumps({**info.to_json(), "url": info.url, "admin_url": info.admin_url, "reused": info.reused}))
        return
    verb = "already running" if info.reused else f"started in {time.monotonic() - started:.1f} s"
    click.echo(f"Marquez {info.version} {verb}: {info.url} (admin {info.admin_url}, pid {info.pid})")
    click.echo(f"  database {info.database}; log {info.log}")


@marquez.command("down")
@STATE_DIR
@FORMAT
def down(state_dir: Path | None, fmt: str) -> None:
    """Stop the Marquez that `marquez up` started here (nothing else is touched).

    \b
    Examples:
      lineage-audit marquez down
    """
    stopped = _server(state_dir).down()
    if fmt == "json":
        click.echo(json.dumps({"stopped": stopped}))
    else:
        click.echo("Marquez stopped" if stopped else "no Marquez started from this state directory is running")


@marquez.command("status")
@STATE_DIR
@FORMAT
def status(state_dir: Path | None, fmt: str) -> None:
    """Say whether Marquez runs and passes its health check (exit 1 when it does not run).

    \b
    Examples:
      lineage-audit marquez status --format json
    """
    info = _server(state_dir).status()
    if fmt == "json":
        click.echo(json.dumps(info))
    elif info["running"]:
        health = "healthy" if info["healthy"] else "NOT healthy yet"
        click.echo(f"Marquez {info['version']} running, {health}: {info['url']} (pid {info['pid']}, up {info['uptime_s']} s)")
    else:
        click.echo(f"Marquez is not running (state directory {info['state_dir']})")
    sys.exit(0 if info["running"] else 1)


@marquez.command("logs")
@click.option("-n", "--lines", type=int, default=50, show_default=True, help="How many lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until interrupted.")
@STATE_DIR
def logs(lines: int, follow: bool, state_dir: Path | None) -> None:
    """Print the end of the Marquez server log.

    \b
    Examples:
      lineage-audit marquez logs -n 200
      lineage-audit marquez logs --follow
    """
    server = _server(state_dir)
    if not server.log_file.exists():
        click.echo(f"no log yet at {server.log_file}", err=True)
        return
    click.echo(server.log_tail(lines))
    if follow:
        _follow(server.log_file)


def _follow(path: Path) -> None:
    with open(path, errors="replace") as fh:
        fh.seek(0, 2)
        try:
            while True:
                line = fh.readline()
                if line:
                    click.echo(line, nl=False)
                else:
                    time.sleep(0.5)
        except KeyboardInterrupt:
            return


@click.command("collect")
@click.option("--from", "source", required=True, help="Store to read: marquez://HOST:PORT, marquez:URL, embedded[:PATH], postgresql://HOST:PORT/DB or file:PATH.")
@click.option("--to", "target", required=True, help="Store to write: marquez://HOST:PORT, marquez:URL, embedded[:PATH], postgresql://HOST:PORT/DB or file:PATH.ndjson.")
@FORMAT
def collect(source: str, target: str, fmt: str) -> None:
    """Copy OpenLineage events from one lineage store to another.

    Events already in the target (same run id, event type and event time) are skipped, so
    running it twice copies nothing new.

    \b
    Examples:
      lineage-audit collect --from embedded --to marquez://127.0.0.1:5000
      lineage-audit collect --from marquez://127.0.0.1:5000 --to embedded:backup.db --format json
      lineage-audit collect --from file:events.ndjson --to embedded
      lineage-audit collect --from embedded --to postgresql://lineage@db:5432/lineage
    """
    from collectors.marquez.collect import close_store, copy_events, open_store

    with ExitStack() as stack:
        src = open_store(source, must_exist=True)
        stack.callback(close_store, src)
        dst = open_store(target)
        stack.callback(close_store, dst)
        with Progress(SpinnerColumn(), TextColumn("[bold]copying events"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err, transient=True) as progress:
            task = progress.add_task("copy", total=_count(src))
            result = copy_events(src, dst, on_event=lambda: progress.advance(task))
    if fmt == "json":
        click.echo(json.dumps({"from": scrub_url(source), "to": scrub_url(target), **result.to_json()}))
    else:
        click.echo(f"{result.read} events read, {result.added} added, {result.already_present} already present")


def _count(store: object) -> int | None:
    """The number of events in a store when it can say cheaply (for the progress bar)."""
    for name in ("count_events", "count"):
        fn = getattr(store, name, None)
        if callable(fn):
            try:
                return int(fn())
            except Exception:  # a count is only for display
                return None
    return None


COMMANDS = [marquez, collect]
