"""``lineage-audit policy check | schema`` and ``lineage-audit costs``: governance on the command line.

This module wires the store (collectors), the policy and cost totals (lineage_auditor.governance)
and the HTML page (reports). Exit codes: 0 ok, 1 a budget finding at or above ``--fail-on``,
2 bad input (a policy with problems, each printed as file:line:col).
"""

from __future__ import annotations

import json
import math
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import click


@click.group("policy")
def policy_group() -> None:
    """The governance policy (governance.yml): teams, grants, restricted tags, budgets, costs.

    \b
    Examples:
      lineage-audit policy check governance.yml
      lineage-audit policy schema > policy.schema.json
    """


@policy_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check_command(path: Path, fmt: str) -> None:
    """Check a policy like a compiler: every problem at file:line:col; exit 2 when there is any.

    \b
    Examples:
      lineage-audit policy check governance.yml
      lineage-audit policy check governance.yml --format json
    """
    from lineage_auditor.governance import PolicyErrors, load_policy

    try:
        policy = load_policy(path)
    except PolicyErrors as exc:
        if fmt == "json":
            click.echo(json.dumps({"valid": False, "problems": [p.__dict__ for p in exc.problems]}, indent=2))
        else:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
        raise SystemExit(2) from None
    doc = policy.document
    summary = {"valid": True, "teams": len(doc.teams), "grants": len(doc.grants), "restricted_tags": len(doc.restricted_tags),
               "ai_datasets": len(doc.ai_datasets), "budgets": len(doc.budgets), "cost_model": doc.cost_model is not None,
               "alert_webhooks": len(doc.alerts.webhooks) if doc.alerts else 0,
               "alert_console": bool(doc.alerts and doc.alerts.console)}
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        routes = (f", alerts to {summary['alert_webhooks']} webhooks" + (" and the console" if summary["alert_console"] else "")
                  if doc.alerts else "")
        click.echo(f"{path}: valid ({summary['teams']} teams, {summary['grants']} grants, {summary['restricted_tags']} "
                   f"restricted tags, {summary['ai_datasets']} AI datasets, {summary['budgets']} budgets"
                   + (", a cost model" if summary["cost_model"] else ", no cost model") + routes + ")")


@policy_group.command("schema")
@click.option("--write", is_flag=True, help="Write it to the package's policy.schema.json instead of printing it.")
def schema_command(write: bool) -> None:
    """Print the policy's JSON Schema (for editors: yaml-language-server: $schema=...)."""
    from lineage_auditor.governance.schema import SCHEMA_FILE, policy_json_schema

    text = policy_json_schema()
    if write:
        SCHEMA_FILE.write_text(text, encoding="utf-8")
        click.echo(f"wrote {SCHEMA_FILE}")
    else:
        click.echo(text, nl=False)


# ---------------------------------------------------------------------- costs


def read_cost_records(store: str | None, policy: Any, since: date | None) -> tuple[list[Any], Any]:
    """Step costs in the store from ``since`` on (event time), priced by ``policy`` where unpriced; and what was skipped."""
    from collectors.sources import SkippedEvents, open_indexed_store, read_events
    from lineage_auditor.events import run_events
    from lineage_auditor.governance.costs import cost_records

    skipped = SkippedEvents()
    start = datetime.combine(since, time(0), tzinfo=timezone.utc) if since else None
    embedded = open_indexed_store(store)
    if embedded is None:
        events = [e for e in read_events(store, skipped) if start is None or e.time >= start]
    else:
        with embedded:
            events = list(run_events(embedded.events(since=start), skipped))
    return cost_records(events, policy), skipped


@click.command("costs")
@click.option("--by", "by", type=click.Choice(["team", "pipeline", "dataset", "day"]), default="team", show_default=True,
              help="Group the costs by.")
@click.option("--since", default="30d", show_default=True, metavar="DURATION|DATE",
              help="Window start: a duration back from --at (7d, 2w) or a date (YYYY-MM-DD).")
@click.option("--at", "at_day", metavar="DATE", help="The window's last day and the day budgets are measured on [default: today, UTC].")
@click.option("--dataset", "-D", "datasets", multiple=True,
              help="Show what this dataset costs along its lineage (repeatable) [default: the AI datasets of the policy and config].")
@click.option("--store", default=None, metavar="SPEC", help="Lineage store: embedded[:PATH], marquez:URL, file:PATH (default: the configured one).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Governance policy (budgets, cost model) [default: governance: in the project config].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Project config [default: ./lineage-audit.yml when present].")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where --format html writes [default: costs.html].")
@click.option("--fail-on", type=click.Choice(["low", "medium", "high"]), default=None,
              help="Exit 1 when a budget finding is at least this severe (over warn_at: medium, over fail_at: high).")
def costs_command(by: str, since: str, at_day: str | None, datasets: tuple[str, ...], store: str | None,
                  policy_path: Path | None, config_path: Path | None, fmt: str, output: Path | None,
                  fail_on: str | None) -> None:
    """What pipelines cost, by team, pipeline, dataset or day; budget status per team; and what
    each AI dataset costs along its lineage (every upstream step summed).

    Figures come from the lineageAudit_cost facet of every step run in the store (process CPU
    and time, what the warehouse scanned, the money by the policy's cost model).

    \b
    Examples:
      lineage-audit costs --by team --since 7d
      lineage-audit costs --by pipeline --format json > costs.json
      lineage-audit costs --by day --format html -o costs.html
      lineage-audit costs --by dataset -D features.churn_features
      lineage-audit costs --fail-on high          # exit 1 when a team is over its budget's fail_at

    \b
    Exit codes: 0 ok, 1 a budget finding at or above --fail-on, 2 bad input.
    """
    from lineage_auditor.governance import find_policy

    last = _day(at_day)
    first = _since(since, last)
    policy = find_policy(policy_path, config_path).policy
    month_start = last.replace(day=1)
    records, skipped = read_cost_records(store, policy, min(first, month_start))
    doc = cost_report(records, by=by, first=first, last=last, policy=policy, store=store,
                      config_path=config_path, datasets=datasets)
    if skipped.count:
        click.echo(f"warning: {skipped.summary()}", err=True)
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
    elif fmt == "html":
        from reports.costs_report import render_costs_html

        path = output or Path("costs.html")
        path.write_text(render_costs_html(doc), encoding="utf-8")
        click.echo(f"wrote {path}", err=True)
    else:
        _print_costs(doc)
    for finding in doc["findings"]:
        click.echo(f"{'error' if finding['severity'] == 'high' else 'warning'}: {finding['title']}", err=True)
    if fail_on and any(f["severity_rank"] >= _RANKS[fail_on] for f in doc["findings"]):
        sys.exit(1)


_RANKS = {"low": 1, "medium": 2, "high": 3}


def cost_report(records: list[Any], *, by: str, first: date, last: date, policy: Any, store: str | None,
                config_path: Path | None, datasets: tuple[str, ...]) -> dict[str, Any]:
    """The ``costs`` document: totals of the window, budgets this month, cost along lineage, findings."""
    from collectors.sources import describe_source
    from lineage_auditor.audit.governance import budget_findings
    from lineage_auditor.governance.costs import GroupBy, budget_status, in_window, totals

    window = in_window(records, first, last)
    rows = totals(window, GroupBy(by))
    statuses = budget_status(records, policy, last) if policy is not None else []
    findings = budget_findings(statuses, policy) if policy is not None else []
    currencies = sorted({r.currency for r in window if r.currency})
    return {
        "by": by, "first": first.isoformat(), "last": last.isoformat(), "days": (last - first).days + 1,
        "store": describe_source(store), "policy": policy.file if policy is not None else None,
        "currency": currencies[0] if len(currencies) == 1 else (policy.currency if policy is not None else None),
        "currencies": currencies, "runs": len(window), "unpriced_runs": sum(1 for r in window if r.amount is None),
        "priced_now": sum(1 for r in window if r.priced_now),
        "total": round(sum(r.amount or 0.0 for r in window), 9),
        "rows": [r.to_json() for r in rows],
        "budgets": [s.to_json() for s in statuses],
        "lineage": _lineage(window, store, policy, config_path, datasets),
        "findings": [{**f.to_json(), "severity_rank": f.severity.rank} for f in findings],
    }


def _lineage(records: list[Any], store: str | None, policy: Any, config_path: Path | None,
             datasets: tuple[str, ...]) -> list[dict[str, Any]]:
    """Cost along lineage of the named datasets, else of every AI dataset the policy or config names."""
    from collectors.sources import latest_graph
    from lineage_auditor.audit.config import DEFAULT_CONFIG, load_config
    from lineage_auditor.audit.names import find_datasets, resolve_dataset
    from lineage_auditor.governance.costs import lineage_cost

    graph = latest_graph(store)
    if datasets:
        targets = [resolve_dataset(graph.datasets(), name) for name in datasets]
    else:
        found = [d for d in graph.datasets() if policy is not None and policy.ai_dataset(d)]
        config_file = config_path or Path(DEFAULT_CONFIG)
        if config_file.exists():
            for item in load_config(config_file).ai_datasets:
                found += find_datasets(graph.datasets(), item.name)
        targets = list(dict.fromkeys(found))
    return [lineage_cost(records, graph, target).to_json() for target in targets]


def _print_costs(doc: dict[str, Any]) -> None:
    from lineage_auditor.console import stdout_console
    from rich.table import Table

    console = stdout_console(highlight=False, soft_wrap=True)
    unit = doc["currency"] or ""
    console.print(f"costs by {doc['by']}: {doc['first']} .. {doc['last']} ({doc['days']} days), {doc['runs']} step runs "
                  f"in {doc['store']}" + (f"; amounts in {unit}" if unit else ""))
    days = [(date.fromisoformat(doc["first"]) + timedelta(days=n)).isoformat() for n in range(doc["days"])]
    table = Table(title_justify="left")
    for heading in (doc["by"], "runs", "amount", "CPU s", "rows read", "bytes read", "per day"):
        table.add_column(heading, justify="left" if heading in (doc["by"], "per day") else "right", overflow="fold")
    for row in doc["rows"]:
        table.add_row(row["key"], str(row["runs"]), _money(row["amount"]), f"{row['cpu_seconds']:.2f}",
                      f"{row['rows_read']:,}", _bytes(row["bytes_read"]), sparkline([row["by_day"].get(d, 0.0) for d in days]))
    table.add_row("total", str(doc["runs"]), _money(doc["total"]), "", "", "", "")
    console.print(table)
    if doc["unpriced_runs"]:
        console.print(f"{doc['unpriced_runs']} runs have no amount: no cost model when they ran, and none in force now")
    for budget in doc["budgets"]:
        console.print(f"budget {budget['team']} {budget['month']}: {_money(budget['spent'])} of {budget['budget']:g} "
                      f"{budget['currency']} ({budget['share']:.0%}), projected {_money(budget['projected'])}: {budget['state']}")
    for item in doc["lineage"]:
        top = item["steps"][0]["key"] if item["steps"] else "no step"
        console.print(f"along lineage {item['dataset']}: {_money(item['total'])} in the window, "
                      f"{_money(item['average_per_day'])} a day, {len(item['steps'])} upstream steps "
                      f"({item['upstream_datasets']} upstream datasets; most: {top})")


BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """One character per value, scaled to the largest (blank for nothing)."""
    top = max(values, default=0.0)
    if top <= 0:
        return " " * len(values)
    return "".join(" " if v <= 0 else BARS[min(len(BARS) - 1, math.ceil(v / top * len(BARS)) - 1)] for v in values)


def _money(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 100 else f"{value:,.2f}"


def _bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _day(text: str | None) -> date:
    from lineage_auditor.errors import ConfigError

    if not text:
        return datetime.now(timezone.utc).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at: {text!r} is not a date (YYYY-MM-DD)") from None


def _since(text: str, last: date) -> date:
    """``--since``: a date, or a duration back from ``last`` (7d: the 7 days ending on ``last``)."""
    from lineage_auditor.durations import parse_duration
    from lineage_auditor.errors import ConfigError

    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        span = parse_duration(text)
    except (ValueError, ConfigError):
        raise ConfigError(f"--since: {text!r} is neither a duration (7d, 2w) nor a date (YYYY-MM-DD)") from None
    days = max(1, math.ceil(span.total_seconds() / 86400))
    return last - timedelta(days=days - 1)


COMMANDS = [policy_group, costs_command]
