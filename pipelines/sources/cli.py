"""Commands for the pipelines' data sources: the mock users API and the orders CSV generator."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from pydantic import ValidationError

from lineage_auditor.errors import LineageAuditError

RATE = click.FloatRange(0.0, 1.0)


def _fault_config(**options: object):
    """A FaultConfig from CLI options, with a usage error (exit 2) when they do not fit."""
    from pipelines.sources.faults import FaultConfig

    try:
        return FaultConfig(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise click.UsageError(f"invalid faults: {where + ': ' if where else ''}{first['msg']}") from None


@click.command("mock-api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0 picks a free one and prints it).")
@click.option("--token", envvar="LINEAGE_AUDIT_MOCK_API_TOKEN", default="demo-token", show_default=True,
              help="Bearer token clients must send (env LINEAGE_AUDIT_MOCK_API_TOKEN).")
@click.option("--users", "n_users", type=click.IntRange(0), default=1000, show_default=True,
              help="How many users to serve.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the users and the faults.")
@click.option("--error-rate", type=RATE, help="Share of requests answered with a 5xx.")
@click.option("--error-codes", help="Comma-separated 5xx codes to use [default: 500,502,503].")
@click.option("--rate-limit-rate", type=RATE, help="Share of requests answered 429 with Retry-After.")
@click.option("--retry-after", type=click.IntRange(0), help="Retry-After seconds sent with a 429 [default: 1].")
@click.option("--latency-ms", type=click.IntRange(0), help="Latency added to every request.")
@click.option("--timeout-rate", type=RATE, help="Share of requests that stall for --timeout-seconds.")
@click.option("--timeout-seconds", type=click.FloatRange(0, min_open=True), help="Stall length [default: 30].")
@click.option("--malformed-rate", type=RATE, help="Share of responses with a truncated or invalid body.")
@click.option("--malformed-page", "malformed_pages", type=click.IntRange(1), multiple=True,
              help="Page whose body is always malformed (repeatable).")
@click.option("--invalid-record-rate", type=RATE, help="Share of users served with an invalid field.")
@click.option("--invalid-record-id", "invalid_record_ids", type=click.IntRange(1), multiple=True,
              help="User always served invalid (repeatable).")
@click.option("--outage-seconds", type=click.FloatRange(0), help="Answer everything 503 for this long at start.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True, help="Server log level (info logs each request).")
def mock_api_command(host: str, port: int, token: str, n_users: int, seed: int, error_codes: str | None,
                     malformed_pages: tuple[int, ...], invalid_record_ids: tuple[int, ...], log_level: str,
                     **rates: object) -> None:
    """Serve the mock users REST API (paginated users, bearer auth, fault injection).

    Endpoints: GET /users?page=&per_page= and GET /users/{id} (need
    "Authorization: Bearer TOKEN"), GET /healthz, and GET|POST|DELETE /_control/faults to
    read, replace (JSON body with the option names in snake_case) or reset the faults while
    it runs. The same seed serves the same users and the same faults. Stop with Ctrl-C.

    \b
    Examples:
      lineage-audit mock-api --port 8080
      lineage-audit mock-api --port 0 --users 5000 --token s3cret
      lineage-audit mock-api --error-rate 0.3 --rate-limit-rate 0.1 --timeout-rate 0.05
      lineage-audit mock-api --malformed-page 3 --invalid-record-id 7 --outage-seconds 20
      curl -H 'Authorization: Bearer demo-token' 'http://127.0.0.1:8080/users?page=1&per_page=5'
      curl -X POST -H 'Authorization: Bearer demo-token' -H 'Content-Type: application/json' \\
           -d '{"error_rate": 0.5}' http://127.0.0.1:8080/_control/faults
    """
    from pipelines.sources.mock_api import MockApiState, bind_socket, create_app, uvicorn_server

    codes = None
    if error_codes:
        try:
            codes = [int(c) for c in error_codes.split(",") if c.strip()]
        except ValueError:
            raise click.BadParameter("expected comma-separated integers", param_hint="--error-codes") from None
    faults = _fault_config(error_codes=codes, malformed_pages=list(malformed_pages) or None,
                           invalid_record_ids=list(invalid_record_ids) or None, **rates)
    if not token:
        raise click.BadParameter("must not be empty", param_hint="--token")
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise LineageAuditError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    state = MockApiState(token=token, seed=seed, n_users=n_users, faults=faults)
    active = {k: v for k, v in faults.model_dump(exclude_defaults=True).items()}
    click.echo(f"mock users API on http://{host}:{sock.getsockname()[1]} "
               f"({n_users} users, seed {seed}, bearer token required)")
    click.echo(f"faults: {json.dumps(active) if active else 'none'}")
    server = uvicorn_server(create_app(state), log_level=log_level, access_log=log_level in ("info", "debug"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; stopping is the normal end
        pass
    finally:
        state.stopping = True
    click.echo("mock users API stopped")


@click.command("generate-orders")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rows", type=click.IntRange(0), default=100_000, show_default=True, help="Orders to write.")
@click.option("--users", "n_users", type=click.IntRange(1), default=1000, show_default=True,
              help="User ids are drawn from 1..N (match the mock API's --users).")
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same file.")
@click.option("--bad-row-rate", type=RATE, default=0.0, show_default=True,
              help="Share of rows broken on purpose (wrong types, missing keys, duplicate ids).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Summary as text or JSON.")
def generate_orders_command(path: Path, rows: int, n_users: int, seed: int, bad_row_rate: float, fmt: str) -> None:
    """Write a seeded orders CSV (order_id,user_id,order_ts,amount,currency,status).

    \b
    Examples:
      lineage-audit generate-orders orders.csv --rows 1000000
      lineage-audit generate-orders orders.csv --rows 500 --users 100 --bad-row-rate 0.02
      lineage-audit generate-orders big.csv --rows 5000000 --format json
    """
    from pipelines.sources.orders_csv import generate_orders

    from rich.console import Console

    started = time.monotonic()
    with Console(stderr=True).status(f"writing {rows:,} orders to {path}"):
        result = generate_orders(path, rows, n_users, seed, bad_row_rate=bad_row_rate)
    summary = {"path": str(result.path), "rows": result.rows, "bad_rows": result.bad_rows,
               "seconds": round(time.monotonic() - started, 2)}
    if fmt == "json":
        click.echo(json.dumps(summary))
    else:
        bad = sum(result.bad_rows.values())
        click.echo(f"wrote {result.rows:,} orders ({bad:,} broken on purpose) to {result.path} "
                   f"in {summary['seconds']}s")


COMMANDS = [mock_api_command, generate_orders_command]


if __name__ == "__main__":  # pragma: no cover - `python -m pipelines.sources.cli` serves the mock API
    mock_api_command()
