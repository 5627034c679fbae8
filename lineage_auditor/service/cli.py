"""``lineage-audit serve | metrics | status | tokens``: central monitoring of every pipeline.

Exit codes: 0 ok, 2 usage or input error (a bad store address, spec folder, token file); for
``status``, 1 when a pipeline's last run failed or missed its deadline, so a cron job notices.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from lineage_auditor.errors import ConfigError

STORE_HELP = "Lineage store: embedded[:PATH] or postgresql://USER@HOST:PORT/DB [default: the embedded store]."
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _default_store(store: str | None) -> str:
    from collectors.store.address import default_store_path

    return store or f"embedded:{default_store_path()}"


def _default_tokens() -> Path:
    from collectors.store.address import lineage_home

    return lineage_home() / "tokens.json"


_store_option = click.option("--store", default=None, metavar="ADDRESS", help=STORE_HELP)
_specs_option = click.option("--specs", "specs", multiple=True, type=click.Path(exists=True, path_type=Path),
                             help="Spec files or folders: schedules, teams and deadlines (repeatable).")
_config_option = click.option("--config", "audit_config", type=click.Path(dir_okay=False, exists=True), default=None,
                              help="Audit config (lineage-audit.yml): its findings become metrics.")
_budget_policy_option = click.option("--policy", default=None, type=click.Path(dir_okay=False, exists=True),
                                     help="Governance policy: its teams' budgets next to their cost this month "
                                          "[default: governance: in the --config, or ./lineage-audit.yml].")


def _policy(path: str | None, audit_config: str | None) -> Any:
    """The policy of --policy, else the one the project config names (lineage_auditor.governance.find_policy)."""
    from lineage_auditor.governance import find_policy

    return find_policy(path, audit_config).policy


@click.command("serve")
@_store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--tokens", "tokens", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Token file (lineage-audit tokens add) [default: $LINEAGE_AUDIT_HOME/tokens.json].")
@click.option("--no-auth", is_flag=True, help="Accept callers without a token (refused unless --host is loopback).")
@click.option("--policy", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Governance policy (teams, grants): who may write and read which datasets.")
@_specs_option
@_config_option
@click.option("--audit-every", default="60s", show_default=True, help="Re-audit at most this often when events arrived.")
@click.option("--spool", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A spool folder whose depth /metrics reports (lineage emit backlog of this host).")
@click.option("--no-alerts", is_flag=True,
              help="Do not evaluate the policy's alerts: here (another replica or a cron `alerts check` does).")
def serve_command(store: str | None, host: str, port: int, tokens: Path | None, no_auth: bool, policy: str | None,
                  specs: tuple[Path, ...], audit_config: str | None, audit_every: str, spool: Path | None,
                  no_alerts: bool) -> None:
    """Serve the OpenLineage endpoint, Prometheus metrics and status pages over a lineage store.

    POST /api/v1/lineage takes what openlineage-python's HttpTransport, Airflow's provider
    and other producers send (one event per request; re-sends are stored once; an invalid
    event is refused with 422 and a reason). GET /metrics is for Prometheus; GET /healthz
    (and the sign-in form) are the only routes open without a token. The pages (/ status,
    /pipelines/NAME, /datasets?name=..., /findings, /costs) take the token as a header, or
    from a browser signed in at /login. Several replicas may share one PostgreSQL store.
    With a policy that has alerts:, the alert conditions are evaluated every alerts.every.

    \b
    Examples:
      lineage-audit tokens add alice          # prints a token once
      lineage-audit serve --store postgresql://lineage@db:5432/lineage --specs pipelines/
      lineage-audit serve --policy governance.yml --config lineage-audit.yml --port 5000
      OPENLINEAGE_URL=http://127.0.0.1:5000 OPENLINEAGE_API_KEY=<token> lineage-audit pipelines run ...
      open http://127.0.0.1:5000/login       # the pages, signed in with the same token
    """
    import uvicorn

    from lineage_auditor.durations import parse_seconds
    from lineage_auditor.service.app import ServiceConfig, create_app

    if no_auth and host not in LOOPBACK:
        raise click.UsageError("--no-auth is only allowed on a loopback address (--host 127.0.0.1)")
    token_file = None if no_auth else (tokens or _default_tokens())
    if token_file is not None and not token_file.exists():
        raise ConfigError("no token file yet: add one with `lineage-audit tokens add USER` (or --no-auth on loopback)",
                          file=str(token_file))
    config = ServiceConfig(store=_default_store(store), tokens=token_file, policy=policy,
                           specs=tuple(str(s) for s in specs), audit_config=audit_config, spool=spool,
                           audit_every_s=parse_seconds(audit_every), alerts=not no_alerts)
    app = create_app(config)
    click.echo(f"lineage-audit serve: {app.state.monitor.store.describe()} on http://{host}:{port}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False)


@click.command("metrics")
@_store_option
@click.option("--textfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here (atomically) for node_exporter's textfile collector instead of stdout.")
@_specs_option
@_config_option
@_budget_policy_option
@click.option("--spool", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Spool folder to report [default: $LINEAGE_AUDIT_HOME/spool].")
def metrics_command(store: str | None, textfile: Path | None, specs: tuple[Path, ...], audit_config: str | None,
                    policy: str | None, spool: Path | None) -> None:
    """Print (or write) the Prometheus metrics that `serve` exposes at /metrics.

    \b
    Examples:
      lineage-audit metrics
      lineage-audit metrics --textfile /var/lib/node_exporter/textfile/lineage_audit.prom --specs pipelines/
      lineage-audit metrics --policy governance.yml     # with each team's budget and its cost this month
      */5 * * * * lineage-audit metrics --store postgresql://lineage@db/lineage --textfile /var/lib/node_exporter/la.prom
    """
    from collectors.store.address import default_spool_dir
    from lineage_auditor.monitor.exposition import write_textfile
    from lineage_auditor.service.wiring import Monitor

    monitor = Monitor.open(_default_store(store), specs=[str(s) for s in specs], audit_config=audit_config,
                           spool=spool or default_spool_dir(), policy=_policy(policy, audit_config))
    try:
        if audit_config:
            monitor.refresh()
            monitor.run_audit()
        if textfile:
            monitor.refresh()
            textfile.parent.mkdir(parents=True, exist_ok=True)
            write_textfile(textfile, monitor.follower.state, monitor.extras())
            click.echo(f"wrote {textfile}", err=True)
        else:
            click.echo(monitor.metrics().decode("utf-8"), nl=False)
    finally:
        monitor.close()


@click.command("status")
@_store_option
@_specs_option
@_config_option
@_budget_policy_option
@click.option("--team", default=None, help="Only this team's pipelines.")
@click.option("--watch", is_flag=True, help="Redraw every --interval until Ctrl-C.")
@click.option("--interval", default="5s", show_default=True, help="Redraw interval for --watch.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status_command(store: str | None, specs: tuple[Path, ...], audit_config: str | None, policy: str | None,
                   team: str | None, watch: bool, interval: str, fmt: str) -> None:
    """One screen for all pipelines: last run, recent durations, deadline, findings, cost.

    Pipelines come from the specs (schedule, next run, deadline) and from the store (any
    producer's jobs); with a policy, each team's budget next to what it spent this month.
    Exit 1 when a shown pipeline's last run failed or missed its deadline.

    \b
    Examples:
      lineage-audit status --specs pipelines/specs/v1
      lineage-audit status --team growth --watch
      lineage-audit status --store postgresql://lineage@db/lineage --format json
      lineage-audit status --policy governance.yml       # budgets: amount, warn_at, fail_at, spent
    """
    from lineage_auditor.console import stdout_console
    from rich.live import Live

    from lineage_auditor.durations import parse_seconds
    from lineage_auditor.service.wiring import Monitor

    monitor = Monitor.open(_default_store(store), specs=[str(s) for s in specs], audit_config=audit_config,
                           policy=_policy(policy, audit_config))
    try:
        if audit_config:
            monitor.refresh()
            monitor.run_audit()
        rows = monitor.status_rows(team=team)
        budgets = [b.to_json() for b in monitor.budgets() if not team or b.team == team]
        for problem in monitor.spec_problems:
            click.echo(f"warning: {problem}", err=True)
        if fmt == "json":
            click.echo(json.dumps({"store": monitor.store.describe(), "pipelines": rows, "budgets": budgets},
                                  indent=2, default=str))
        elif not watch:
            stdout_console().print(status_screen(rows, budgets, monitor.store.describe()))
        else:
            every = parse_seconds(interval)
            with Live(status_screen(rows, budgets, monitor.store.describe()), refresh_per_second=1, screen=False) as live:
                try:
                    while True:
                        time.sleep(every)
                        rows = monitor.status_rows(team=team)
                        budgets = [b.to_json() for b in monitor.budgets() if not team or b.team == team]
                        live.update(status_screen(rows, budgets, monitor.store.describe()))
                except KeyboardInterrupt:
                    pass
    finally:
        monitor.close()
    bad = [r for r in rows if r["last_state"] in ("FAIL", "ABORT") or r["deadline"] == "missed"]
    sys.exit(1 if bad else 0)


STATE_STYLE = {"COMPLETE": "green", "FAIL": "bold red", "ABORT": "red", "START": "yellow", "RUNNING": "yellow"}


def status_table(rows: list[dict[str, Any]], store: str) -> Any:
    """The status screen as a rich table (every name escaped: rich markup in a name is text)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"pipelines in {escape(store)}", title_justify="left", expand=False)
    for column in ("pipeline", "team", "schedule", "next run", "last run", "state", "last 10 durations",
                   "deadline", "findings", "cost (month)"):
        table.add_column(column, no_wrap=column in ("pipeline", "state", "last 10 durations"))
    for r in rows:
        state = r["last_state"] or "-"
        durations = r["durations_s"]
        spark = f"{r['sparkline']} {durations[-1]:.0f}s" if durations else "-"
        deadline = r["deadline"]
        table.add_row(
            escape(r["pipeline"]), escape(r["team"] or "-"), escape(r["schedule"] or "-"),
            _minute(r["next_run"]), _minute(r["last_run_at"]),
            f"[{STATE_STYLE.get(state, 'white')}]{escape(state)}[/]", spark,
            "[bold red]missed[/]" if deadline == "missed" else escape(deadline),
            str(r["open_findings"]), f"{r['cost_month']:.2f}" if r["cost_month"] else "-",
        )
    return table


BUDGET_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def status_screen(rows: list[dict[str, Any]], budgets: list[dict[str, Any]], store: str) -> Any:
    """The pipelines table, and the budgets table when the policy has budgets."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    if not budgets:
        return status_table(rows, store)
    table = Table(title="budgets this month (UTC)", title_justify="left", expand=False)
    for column in ("team", "spent", "budget", "share", "warn at", "fail at", "projected", "state"):
        table.add_column(column, justify="left" if column in ("team", "state") else "right")
    for b in budgets:
        table.add_row(escape(b["team"]), f"{b['spent']:.2f} {escape(b['currency'])}", f"{b['budget']:g}",
                      f"{b['share']:.0%}", f"{b['warn_at']:.0%}", f"{b['fail_at']:.0%}", f"{b['projected']:.2f}",
                      f"[{BUDGET_STYLE[b['state']]}]{b['state']}[/]")
    return Group(status_table(rows, store), table)


def _minute(text: str | None) -> str:
    return text[:16].replace("T", " ") if text else "-"


@click.group("tokens")
def tokens_group() -> None:
    """Bearer tokens for `serve` (kept hashed; a token is shown once, when added).

    \b
    Examples:
      lineage-audit tokens add alice
      lineage-audit tokens list --format json
      lineage-audit tokens revoke 1a2b3c4d
    """


_tokens_file = click.option("--tokens", "path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                            help="Token file [default: $LINEAGE_AUDIT_HOME/tokens.json].")
_format = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)


@tokens_group.command("add")
@click.argument("user")
@_tokens_file
@_format
def tokens_add(user: str, path: Path | None, fmt: str) -> None:
    """Add a token for USER and print it (once: only its hash is kept).

    \b
    Examples:
      lineage-audit tokens add alice
      lineage-audit tokens add airflow-prod --tokens /etc/lineage-audit/tokens.json --format json
    """
    from lineage_auditor.service.tokens import add_token

    entry, token = add_token(path or _default_tokens(), user)
    if fmt == "json":
        click.echo(json.dumps({"id": entry.id, "user": entry.user, "token": token}))
    else:
        click.echo(token)
        click.echo(f"token {entry.id} for {user} added; it is shown only now", err=True)


@tokens_group.command("revoke")
@click.argument("token_id")
@_tokens_file
@_format
def tokens_revoke(token_id: str, path: Path | None, fmt: str) -> None:
    """Revoke a token by its id (running servers notice within a request).

    \b
    Examples:
      lineage-audit tokens revoke 1a2b3c4d
    """
    from lineage_auditor.service.tokens import revoke_token

    entry = revoke_token(path or _default_tokens(), token_id)
    click.echo(json.dumps({"id": entry.id, "revoked": entry.revoked}) if fmt == "json"
               else f"token {entry.id} of {entry.user} revoked")


@tokens_group.command("list")
@_tokens_file
@_format
def tokens_list(path: Path | None, fmt: str) -> None:
    """List tokens (ids, users, dates; never the tokens).

    \b
    Examples:
      lineage-audit tokens list
    """
    from lineage_auditor.service.tokens import load_tokens

    entries = load_tokens(path or _default_tokens())
    if fmt == "json":
        click.echo(json.dumps([{k: v for k, v in e.to_json().items() if k != "sha256"} for e in entries], indent=2))
        return
    for e in entries:
        click.echo(f"{e.id}  {e.user:20}  created {e.created}" + (f"  revoked {e.revoked}" if e.revoked else ""))


@click.group("alerts")
def alerts_group() -> None:
    """Alerts without Prometheus: the policy's alerts: routes pipeline failures, missed deadlines, spool backlog, budgets and HIGH AI-dataset findings to webhooks and the console.

    `serve --policy` evaluates them every alerts.every; `alerts check` evaluates once (cron).
    Both notify an alert once when its condition starts and once when it ends, sharing one
    state file (locked), so they never notify one episode twice on one host.

    \b
    Examples:
      lineage-audit alerts check --policy governance.yml --specs pipelines/specs
      */5 * * * * lineage-audit alerts check --store postgresql://lineage@db/lineage --policy /etc/lineage/governance.yml
    """


@alerts_group.command("check")
@_store_option
@_specs_option
@_config_option
@_budget_policy_option
@click.option("--spool", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Spool folder whose backlog is a condition [default: $LINEAGE_AUDIT_HOME/spool].")
@_format
def alerts_check(store: str | None, specs: tuple[Path, ...], audit_config: str | None, policy: str | None,
                 spool: Path | None, fmt: str) -> None:
    """Evaluate the alert conditions once: notify what started or ended, deliver what waits.

    Webhook notifications that cannot be delivered (the receiver stays down after the
    retries) wait in a dead-letter file and are sent, in order, by a later check.
    Exit 0 when no alert is firing, 1 when one is, 2 for bad input (no alerts: in the policy).

    \b
    Examples:
      lineage-audit alerts check --policy governance.yml --specs pipelines/specs --config lineage-audit.yml
      lineage-audit alerts check --policy governance.yml --format json
    """
    from collectors.store.address import default_spool_dir
    from lineage_auditor.service.wiring import Monitor

    found = _policy(policy, audit_config)
    if found is None:
        raise ConfigError("no governance policy: give --policy (its alerts: section routes the alerts)")
    if found.document.alerts is None:
        raise ConfigError("the policy has no alerts: section (webhooks:, console:)", file=found.file)
    monitor = Monitor.open(_default_store(store), specs=[str(s) for s in specs], audit_config=audit_config,
                           spool=spool or default_spool_dir(), policy=found)
    try:
        if audit_config:
            monitor.refresh()
            monitor.run_audit()
        alerting = monitor.alerting(lambda line: click.echo(line, err=fmt == "json"))
        assert alerting is not None
        report = alerting.check(monitor.alert_snapshot())
    finally:
        monitor.close()
    for problem in monitor.spec_problems:
        click.echo(f"warning: {problem}", err=True)
    for hook in report.webhooks:
        if hook.waiting:
            click.echo(f"warning: webhook {hook.name}: {hook.waiting} notification(s) waiting in {hook.dead_letter} "
                       f"({hook.error})", err=True)
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        delivered = ", ".join(f"{h.name} {h.delivered} delivered, {h.waiting} waiting" for h in report.webhooks)
        click.echo(f"{len(report.firing)} alert(s) firing; {len(report.notified)} notification(s) this check"
                   + (f"; webhooks: {delivered}" if delivered else ""), err=True)
    sys.exit(1 if report.firing else 0)


COMMANDS = [serve_command, metrics_command, status_command, tokens_group, alerts_group]
