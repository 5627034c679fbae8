"""The audit report for one AI dataset: a datasheet in JSON, Markdown and HTML.

:func:`build_report` gathers everything into one JSON document (the stable, documented
format; Markdown and HTML are renderings of it). Format ``lineage-audit-report`` version 1:

* ``dataset`` {namespace, name}; ``generated_at``; ``summary`` {verdict pass|warn|fail,
  findings, by_severity, max_severity};
* ``datasheet`` {purpose, owners, consumers, description, license};
* ``provenance`` {upstream [{dataset, depth, raw_source}], jobs [{job, sql, state}],
  columns [{name, type, sources [{column, transformations, jobs}], root_sources (DIRECT only), sql}]};
* ``sources`` [{dataset, owners, tags, sensitive_columns}]; ``sensitive`` [{source, tags,
  target, masked, paths}];
* ``quality`` [{run_id, time, row_count, null_rates}]; ``drift`` (data drift results);
* ``runs`` [{run_id, job, state, started_at, ended_at, duration_s, version}];
* ``findings`` [{id, severity, check, subject, title, evidence, remediation}].

The HTML page is one self-contained file: the provenance graph is the shared graph view
(:mod:`reports.html_graph`), plots are PNGs in ``data:`` URIs, every name goes through
Jinja autoescaping, and a Content-Security-Policy admits only the page's own scripts.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from lineage_auditor.audit.config import AuditConfig
from lineage_auditor.audit.findings import max_severity
from lineage_auditor.audit.pii import path_json, sensitive_columns
from lineage_auditor.audit.context import AuditContext
from lineage_auditor.audit.runner import AuditResult, resolve_targets
from lineage_auditor.audit.view import AuditView
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import DIRECT, DatasetRef
from lineage_auditor.times import iso
from reports.html_graph import csp_policy, graph_view
from reports.plots import png_uri, pyplot

TEMPLATES = Path(__file__).parent / "templates"
REPORT_FORMAT = "lineage-audit-report"
REPORT_VERSION = 1
MAX_SQL_CHARS = 20_000


# ---------------------------------------------------------------------------- JSON


def _run_state(run: Any) -> str:
    """The state of a job's latest run, or "" when it never ran."""
    return str(run.state) if run is not None else ""


def build_report(result: AuditResult, graph: LineageGraph, view: AuditView, config: AuditConfig, dataset: DatasetRef) -> dict[str, Any]:
    """The report document for ``dataset`` (JSON-ready, stable key order)."""
    targets = resolve_targets(graph, config, str(dataset))
    target = targets[dataset]
    ctx = AuditContext(graph, view, config, targets)
    findings = [f for f in result.findings if _concerns(f, dataset, graph)]
    upstream = graph.upstream(dataset)
    by_severity = {s: sum(f.severity == s for f in findings) for s in ("high", "medium", "low")}
    verdict = "fail" if by_severity["high"] else ("warn" if by_severity["medium"] else "pass")
    owners = [target.owner] if target.owner else []
    owners += [_owner(o) for j in graph.producers(dataset) for o in graph.info(j).get("owners") or []]
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "generated_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "dataset": {"namespace": dataset.namespace, "name": dataset.name},
        "summary": {"verdict": verdict, "findings": len(findings), "by_severity": by_severity,
                    "max_severity": max_severity(findings), "checks": result.checks},
        "datasheet": {
            "purpose": target.purpose, "owners": sorted(set(owners)), "consumers": list(target.consumers),
            "description": target.description or str(graph.info(dataset).get("description") or ""),
            "license": target.license,
        },
        "provenance": _provenance(graph, dataset, upstream, ctx.current_columns(dataset)),
        "sources": _sources(graph, ctx, dataset, upstream),
        "sensitive": _sensitive(graph, ctx, dataset),
        "quality": [
            {"run_id": q.run_id, "time": iso(q.time), "row_count": q.row_count,
             "null_rates": {k: round(v, 6) for k, v in q.null_rates.items()}}
            for q in view.quality(dataset)[-config.report.runs:]
        ],
        "drift": (result.details.get("data_drift") or {}).get(str(dataset)),
        "runs": _runs(view, dataset, config.report.runs),
        "findings": [f.to_json() for f in findings],
    }


def _concerns(finding: Any, dataset: DatasetRef, graph: LineageGraph) -> bool:
    """Findings about this dataset, its columns, or anything upstream of it."""
    names = {dataset.name, str(dataset)} | {d.name for d in graph.upstream(dataset)} | {str(d) for d in graph.upstream(dataset)}
    names |= {str(j) for d in [dataset, *graph.upstream(dataset)] for j in graph.producers(d)}
    subject = finding.subject
    return subject in names or any(subject.startswith(n + ".") for n in names) or finding.check in ("data_drift", "pii") and dataset.name in subject


def _provenance(graph: LineageGraph, dataset: DatasetRef, upstream: list[DatasetRef], current: list[Any]) -> dict[str, Any]:
    depth = graph.upstream_depths(dataset)
    roots = set(graph.root_sources(dataset))
    jobs = sorted({j for d in [dataset, *upstream] for j in graph.producers(d)})
    columns = []
    for col in current:
        inputs = graph.column_inputs(col)
        sources = [{
            "column": f"{hop.source.dataset.name}.{hop.source.field}",
            "transformations": sorted(f"{t.type}/{t.subtype}" + (" masked" if t.masking else "") for t in hop.transformations),
            "direct": any(t.type == DIRECT for t in hop.transformations),
            "jobs": sorted(str(j) for j in hop.jobs),
        } for hop in inputs]
        producing = sorted({j for hop in inputs for j in hop.jobs})
        sql = "\n\n".join(str(graph.info(j).get("sql") or "") for j in producing if graph.info(j).get("sql"))
        columns.append({
            "name": col.field, "type": graph.info(col).get("type"),
            "sources": sources,
            "root_sources": sorted(f"{c.dataset.name}.{c.field}" for c in graph.column_root_sources(col, direct_only=True)),
            "sql": sql[:MAX_SQL_CHARS],
        })
    return {
        "upstream": [{"dataset": str(d), "name": d.name, "depth": depth.get(d), "raw_source": d in roots} for d in upstream],
        "jobs": [{"job": str(j), "sql": str(graph.info(j).get("sql") or "")[:MAX_SQL_CHARS],
                  "state": _run_state(graph.latest_run(j)),
                  "owners": [_owner(o) for o in graph.info(j).get("owners") or []]} for j in jobs],
        "columns": columns,
    }


def _sources(graph: LineageGraph, ctx: AuditContext, dataset: DatasetRef, upstream: list[DatasetRef]) -> list[dict[str, Any]]:
    sensitive = sensitive_columns(ctx)
    out = []
    for d in graph.root_sources(dataset):
        info = graph.info(d)
        out.append({
            "dataset": str(d), "name": d.name,
            "owners": sorted({_owner(o) for j in graph.consumers(d) for o in graph.info(j).get("owners") or []}
                             | {_owner(o) for o in info.get("owners") or []}),
            "tags": [f"{k}:{v}" if v else k for k, v in info.get("tags") or []],
            "sensitive_columns": {c.field: tags for c, tags in sensitive.items() if c.dataset == d},
        })
    return out


def _sensitive(graph: LineageGraph, ctx: AuditContext, dataset: DatasetRef) -> list[dict[str, Any]]:
    targets = set(ctx.current_columns(dataset))
    out = []
    for source, tags in sorted(sensitive_columns(ctx).items()):
        for column in graph.column_downstream(source, direct_only=True):
            if column not in targets:
                continue
            paths = graph.paths(source, column, direct_only=True, limit=20)
            out.append({
                "source": f"{source.dataset.name}.{source.field}", "tags": tags,
                "target": f"{column.dataset.name}.{column.field}",
                "masked": all(any(h.masking for h in p) for p in paths) if paths else True,
                "paths": [path_json(p) for p in paths],
            })
    return out


def _runs(view: AuditView, dataset: DatasetRef, limit: int) -> list[dict[str, Any]]:
    versions = view.dataset_versions(dataset)
    version_of = {}
    for v in versions:
        version_of[v.run_id] = v.version
    out = []
    current = None
    for run in view.runs_writing(dataset):
        current = version_of.get(run.run_id, current)
        out.append({**run.to_json(), "rows": run.row_counts.get(dataset), "version": current})
    return out[-limit:]


def _owner(owner: Any) -> str:
    return str(owner.get("name", "")) if isinstance(owner, dict) else str(owner)


# ---------------------------------------------------------------------------- Markdown


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown (GitHub-flavoured tables; names escaped for tables)."""
    template = _env().get_template("audit_report.md.j2")
    return template.render(r=report)


def _md(text: Any) -> str:
    """Text safe in a Markdown table cell: no pipes, no HTML, no line breaks."""
    value = str("" if text is None else text)
    for char, repl in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("`", "\\`"), ("*", "\\*"), ("_", "\\_"), ("[", "\\["), ("]", "\\]")):
        value = value.replace(char, repl)
    return " ".join(value.split())


def _fence(text: Any) -> str:
    """A code fence long enough that the text cannot close it."""
    value = str(text or "")
    ticks = 3
    while "`" * ticks in value:
        ticks += 1
    return "`" * ticks


# ---------------------------------------------------------------------------- HTML


def render_html(report: dict[str, Any], graph: LineageGraph) -> str:
    """The report as one self-contained HTML page with the interactive provenance graph."""
    dataset = DatasetRef(report["dataset"]["namespace"], report["dataset"]["name"])
    sub = graph.subgraph([dataset, *graph.upstream(dataset)])
    view = graph_view(sub, focus=dataset)
    plots = {
        "rows": _row_count_plot(report["quality"]),
        "drift": _drift_plot(report.get("drift")),
    }
    template = _env().get_template("audit_report.html.j2")
    return template.render(r=report, view=view, csp=csp_policy(view.script_hashes), plots=plots)


def _row_count_plot(quality: list[dict[str, Any]]) -> Markup | None:
    points = [(q["time"], q["row_count"]) for q in quality if q.get("row_count") is not None]
    if len(points) < 1:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.4))
    ax.plot(range(len(points)), [p[1] for p in points], marker="o", color="#2563eb")
    ax.set_xticks(range(len(points)), [p[0][:16].replace("T", " ") for p in points], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("rows")
    ax.set_title("Row count per run", fontsize=10)
    ax.grid(alpha=0.3)
    return png_uri(fig)


def _drift_plot(drift: dict[str, Any] | None) -> Markup | None:
    columns = (drift or {}).get("columns") or []
    if not columns:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(columns) + 1))
    ratios = [c["statistic"] / c["threshold"] if c["method"] not in ("ks", "chisquare") else
              (c["threshold"] / max(c["p_value"] or 1e-12, 1e-12)) for c in columns]
    colors = ["#dc2626" if c["drifted"] else "#16a34a" for c in columns]
    ax.barh(range(len(columns)), ratios, color=colors)
    ax.set_yticks(range(len(columns)), [c["column"] for c in columns], fontsize=8)
    ax.axvline(1.0, color="#0f172a", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("statistic / threshold (above 1 = drift)")
    ax.set_title("Data drift per column", fontsize=10)
    return png_uri(fig)


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",), disabled_extensions=("md.j2",), default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["md"] = _md
    env.filters["fence"] = _fence
    return env
