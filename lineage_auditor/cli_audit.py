"""``lineage-audit audit``, ``report`` and ``baseline save``: the auditor on the command line.

This module wires the store (collectors), the checks (lineage_auditor.audit) and the
renderers (reports); the lead's ``cli.py`` registers ``COMMANDS``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from lineage_auditor.audit.config import DEFAULT_CONFIG, AuditConfig, Checks, load_config
from lineage_auditor.audit.findings import SEVERITIES
from lineage_auditor.errors import LineageAuditError

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2
SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}


def _config(path: str | None) -> AuditConfig:
    """The named config, else ./lineage-audit.yml when present, else defaults."""
    if path:
        return load_config(path)
    if Path(DEFAULT_CONFIG).exists():
        return load_config(DEFAULT_CONFIG)
    return AuditConfig()


def _load(store: str | None, config: AuditConfig, dataset: str | None = None) -> tuple[Any, Any, int, Any]:
    """The graph and the view the checks read, and how many events the store holds.

    The embedded store is asked only for what the checks look at; other stores are read in
    one pass over every event. Events that are not valid OpenLineage are skipped, and the
    audit then cannot pass: it says how many and why, and exits 2 after its report.
    """
    from rich.console import Console

    from collectors.sources import SkippedEvents, describe_source, open_indexed_store, read_events
    from lineage_auditor.audit.runner import load_scoped
    from lineage_auditor.audit.view import load_lineage

    spec = store or config.store
    console = Console(stderr=True)
    skipped = SkippedEvents()
    with console.status(f"reading lineage from {describe_source(spec)}", spinner="dots"):
        embedded = open_indexed_store(spec)
        if embedded is None:
            graph, view, count = load_lineage(read_events(spec, skipped), skipped)
        else:
            with embedded:
                graph, view, count = load_scoped(embedded, config, dataset, skipped)
    if skipped.count:
        click.echo(f"warning: {skipped.summary()}", err=True)  # one line, never wrapped
    if not count:
        raise LineageAuditError(f"the lineage store {describe_source(spec)} has no events")
    return graph, view, count, skipped


def _baseline(path: str | None, config: AuditConfig, *, required: bool = False) -> dict[str, Any] | None:
    from lineage_auditor.audit.lineage_drift import load_baseline

    target = Path(path or config.baseline)
    if not target.exists():
        if required or path:
            raise LineageAuditError("no baseline file (run `lineage-audit baseline save`)", file=str(target))
        return None
    return load_baseline(target)


def _run(dataset: str | None, store: str | None, config_path: str | None, baseline_path: str | None,
         checks: tuple[str, ...], policy_path: str | None = None) -> tuple[Any, Any, Any, AuditConfig]:
    from lineage_auditor.audit.rows import load_rows
    from lineage_auditor.audit.runner import run_audit

    config = _config(config_path)
    policy, costs = _governance(policy_path, config_path, store or config.store)
    if not dataset and not config.ai_datasets:  # an audit of nothing must not pass
        where = config.source_file or f"the defaults (no ./{DEFAULT_CONFIG} here)"
        raise LineageAuditError(
            f"no AI datasets declared in {where}: add ai_datasets to {DEFAULT_CONFIG}, name one with "
            "--dataset, or run `lineage-audit demo` for an example config")
    graph, view, _, skipped = _load(store, config, dataset)
    baseline = _baseline(baseline_path, config)
    result = run_audit(graph, view, config, dataset=dataset, baseline=baseline, load_rows=load_rows,
                       checks=list(checks) or None, policy=policy, costs=costs)
    result.skipped_events = skipped.count
    return result, graph, view, config


def _governance(policy_path: str | None, config_path: str | None, store: str | None) -> tuple[Any, list[Any]]:
    """The governance policy (--policy, else governance: in the config) and, for its budgets, this month's step costs."""
    from datetime import datetime, timezone

    from lineage_auditor.governance import find_policy

    policy = find_policy(policy_path, config_path).policy
    if policy is None or not policy.document.budgets:
        return policy, []
    from lineage_auditor.governance.cli import read_cost_records

    costs, _ = read_cost_records(store, policy, datetime.now(timezone.utc).date().replace(day=1))
    return policy, costs


_common = [
    click.option("--store", default=None, metavar="SPEC",
                 help="Lineage store: embedded[:PATH], marquez:URL, file:PATH (default: the configured one)."),
    click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                 help=f"Audit config (default: ./{DEFAULT_CONFIG} when present)."),
    click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False), default=None,
                 help="Baseline file for lineage and data drift (default: the config's baseline)."),
    click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
                 help="Governance policy for the governance check (default: governance: in the config)."),
]


def _options(func):
    for option in reversed(_common):
        func = option(func)
    return func


@click.command("audit")
@click.option("--dataset", "-D", default=None, help="Audit one dataset (default: every AI dataset in the config).")
@_options
@click.option("--check", "checks", multiple=True, type=click.Choice(list(Checks.model_fields)),
    help="Run only this check (repeatable; default: those enabled in the config).")
@click.option("--fail-on", type=click.Choice([s.value for s in SEVERITIES]), default="high", show_default=True,
              help="Exit 1 when any finding is at least this severe.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def audit_command(dataset, store, config_path, baseline_path, policy_path, checks, fail_on, fmt) -> None:
    """Audit AI datasets: lineage, drift, freshness, PII propagation, coverage, failed data-quality assertions and governance.

    Runs the checks enabled in lineage-audit.yml over the lineage store and prints every
    finding with its id, severity, evidence and remediation. Use it as a CI gate.

    \b
    Examples:
      lineage-audit audit
      lineage-audit audit --dataset features.churn_features --fail-on medium
      lineage-audit audit --store marquez:http://127.0.0.1:5000 --format json > findings.json
      lineage-audit audit --config ci/lineage-audit.yml --check pii --check schema_drift

    \b
    Exit codes: 0 no finding at or above --fail-on, 1 findings at or above it,
    2 bad input (config, store, unknown dataset, or events in the store that are not valid
    OpenLineage: they are skipped and counted, and an audit that skipped any cannot pass).
    """
    result, *_ = _run(dataset, store, config_path, baseline_path, checks, policy_path)
    if fmt == "json":
        click.echo(json.dumps({**result.to_json(), "fail_on": fail_on, "failed": result.failed(fail_on)}, indent=2, default=str))
    else:
        _print_text(result, fail_on)
    if result.skipped_events:
        sys.exit(EXIT_INPUT)
    sys.exit(EXIT_FINDINGS if result.failed(fail_on) else EXIT_OK)


def _print_text(result: Any, fail_on: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    names = ", ".join(d.name for d in result.datasets) or "(no AI datasets)"
    console.print(f"audited {escape(names)} with {len(result.checks)} checks")
    for f in result.findings:
        style = SEVERITY_STYLE[f.severity]
        console.print(f"[{style}]{f.severity.upper():6}[/] {f.id}  [{escape(f.check)}] {escape(f.subject)}: {escape(f.title)}")
        for line in _evidence_lines(f.evidence):
            console.print(f"         {escape(line)}")
        if f.remediation:
            console.print(f"         [dim]fix: {escape(f.remediation)}[/]")
    counts = result.counts()
    verdict = "FAIL" if result.failed(fail_on) else "ok"
    console.print(f"{len(result.findings)} findings (high {counts['high']}, medium {counts['medium']}, "
                  f"low {counts['low']}); --fail-on {fail_on}: {verdict}")


def _evidence_lines(evidence: dict[str, Any]) -> list[str]:
    lines = []
    for path in evidence.get("paths") or []:
        hops = [path[0]["source"]] + [f"-[{', '.join(h['transformations'])}]-> {h['target']}" for h in path]
        lines.append("path: " + " ".join(hops))
    for key in ("job", "run_id", "old_type", "new_type", "added", "removed", "statistic", "error", "team"):
        if evidence.get(key) not in (None, [], ""):
            lines.append(f"{key}: {evidence[key]}")
    rule = evidence.get("rule") or (evidence.get("decision") or {}).get("rule")
    if isinstance(rule, dict) and rule.get("file"):
        lines.append(f"rule: {rule['file']}:{rule.get('line', 0)}: {rule.get('text', '')}")
    return lines


@click.command("report")
@click.option("--dataset", "-D", required=True, help="The AI dataset to report on.")
@_options
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json"]), default="html", show_default=True)
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), default=None,
              help="Output file (default: audit-<dataset>.<ext>; '-' for stdout).")
@click.option("--fail-on", type=click.Choice([s.value for s in SEVERITIES]), default=None,
              help="Also exit 1 when a finding reaches this severity (default: always 0 once written).")
def report_command(dataset, store, config_path, baseline_path, policy_path, fmt, out, fail_on) -> None:
    """Write a datasheet-style audit report for one AI dataset.

    Summary and verdict, owners, purpose and consumers, provenance down to the raw sources
    (an interactive graph in HTML), each column's sources and SQL, sensitive columns and
    their paths, quality and drift with plots, run history, and every finding.

    \b
    Examples:
      lineage-audit report --dataset features.churn_features -o churn-audit.html
      lineage-audit report -D analytics.user_orders --format md -o AUDIT.md
      lineage-audit report -D features.churn_features --format json -o - | jq .summary

    The HTML file is self-contained: it opens offline and loads nothing from the network.
    """
    from reports.audit_report import build_report, render_html, render_markdown
    from lineage_auditor.audit.names import resolve_dataset

    result, graph, view, config = _run(dataset, store, config_path, baseline_path, (), policy_path)
    ref = resolve_dataset(graph.datasets(), dataset)
    report = build_report(result, graph, view, config, ref)
    if fmt == "json":
        text = json.dumps(report, indent=2, default=str) + "\n"
    elif fmt == "md":
        text = render_markdown(report)
    else:
        text = render_html(report, graph)
    if out == "-":
        click.echo(text, nl=False)
    else:
        path = Path(out or f"audit-{ref.name.replace('/', '_')}.{fmt}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path} ({report['summary']['verdict']}, {len(report['findings'])} findings)", err=True)
    sys.exit(EXIT_FINDINGS if fail_on and result.failed(fail_on) else EXIT_OK)


@click.group("baseline")
def baseline_group() -> None:
    """Save the lineage (and data samples) that later audits compare against.

    \b
    Examples:
      lineage-audit baseline save
      lineage-audit baseline save -o ci/baseline.json --config lineage-audit.yml
    """


@baseline_group.command("save")
@click.option("--store", default=None, metavar="SPEC", help="Lineage store (default: the configured one).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help=f"Audit config (default: ./{DEFAULT_CONFIG} when present).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), default=None,
              help="Where to write (default: the config's baseline, .lineage/baseline.json).")
@click.option("--no-data", is_flag=True, help="Do not sample the AI datasets' rows for data drift.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def baseline_save_command(store, config_path, out, no_data, fmt) -> None:
    """Snapshot today's lineage as the baseline for lineage drift.

    Records every job's inputs and outputs and, for each AI dataset, its upstream datasets
    and each column's root sources. With a data section in the config, a sample of the AI
    dataset's rows is kept too, as the reference for data drift.

    \b
    Examples:
      lineage-audit baseline save
      lineage-audit baseline save -o ci/baseline.json --store embedded:.lineage/lineage.db
    """
    from lineage_auditor.audit.lineage_drift import save_baseline, snapshot
    from lineage_auditor.audit.rows import baseline_sample, query_table
    from lineage_auditor.audit.runner import resolve_targets

    config = _config(config_path)
    graph, _, event_count, _ = _load(store, config)
    targets = resolve_targets(graph, config)
    doc = snapshot(graph, sorted(targets))
    if not no_data:
        for target in targets.values():
            if target.data is not None:
                doc["data"][target.name] = baseline_sample(query_table(target.data))
    path = save_baseline(doc, out or config.baseline)
    summary = {"path": str(path), "jobs": len(doc["jobs"]), "ai_datasets": sorted(doc["datasets"]),
               "data_samples": {k: v["rows"] for k, v in doc["data"].items()}, "events": event_count}
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"saved baseline {path}: {len(doc['jobs'])} jobs, {len(targets)} AI datasets, "
                   f"{len(doc['data'])} data samples")


COMMANDS = [audit_command, report_command, baseline_group]
