"""Check 1: does the column lineage a job reported match what its SQL says?

For every job with an ``sql`` job facet we rebuild column lineage with our engine and
compare edge by edge with the ``columnLineage`` the job's events reported: edges the job
did not report (missing), edges it reported that the SQL does not make (extra), output
columns it reported no lineage for, and edges whose transformation type disagrees.

Names: the SQL says ``staging.users`` where the event says ``warehouse.staging.users`` in a
``duckdb://`` namespace, so the engine gets the job's input tables (with their columns) as
its schema and each rebuilt dataset is mapped onto the job's reported dataset it names.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from lineage_auditor.audit.context import AuditContext
from lineage_auditor.audit.findings import HIGH, LOW, MEDIUM, Finding, make_finding
from lineage_auditor.audit.names import name_matches
from lineage_auditor.graph import JobRef, LineageGraph
from lineage_auditor.model import DIRECT, ColumnRef, DatasetRef, Transformation

CHECK = "reported_vs_rebuilt"
Edges = dict[tuple[ColumnRef, ColumnRef], frozenset[Transformation]]


def run(ctx: AuditContext) -> list[Finding]:
    findings: list[Finding] = []
    rebuilt_jobs = []
    for job in ctx.jobs_in_scope():
        sql = ctx.graph.info(job).get("sql")
        if not sql:
            continue
        rebuilt_jobs.append(str(job))
        findings.extend(compare_job(ctx.graph, job, sql, _dialect(ctx.graph, job)))
    ctx.details[CHECK] = {"jobs_compared": rebuilt_jobs}
    return findings


def compare_job(graph: LineageGraph, job: JobRef, sql: str, dialect: str | None) -> list[Finding]:
    """Findings for one job: its reported edges against the edges rebuilt from ``sql``."""
    from lineage_auditor.sql import analyze_sql

    known = graph.job_inputs(job) + graph.job_outputs(job)
    schema = {d.name: {c.field: graph.info(c).get("type") for c in graph.columns(d)} for d in graph.job_inputs(job)}
    schema = {name: cols for name, cols in schema.items() if cols}
    namespace = _common_namespace(known)
    try:
        result = analyze_sql(sql, file=f"job {job}", dialect=dialect, schema=schema or None, namespace=namespace)
    except Exception as exc:  # the engine raising is itself worth a finding, not a crashed audit
        return [_unparsable(job, str(exc))]
    if result.errors and not result.statements:
        return [_unparsable(job, "; ".join(str(p) for p in result.errors))]
    rebuilt_graph = LineageGraph.from_sql_result(result)
    rebuilt = _map_names(_edges(rebuilt_graph, None), known)
    reported = _edges(graph, job)
    rebuilt_outputs = {_map(d, known) for s in result.statements for o in s.outputs for d in [o.dataset]}
    # only compare what the job reported writing and the SQL writes (a _select_ is no output)
    reported = {k: v for k, v in reported.items() if k[1].dataset in rebuilt_outputs}
    return _diff(job, reported, rebuilt)


def _diff(job: JobRef, reported: Edges, rebuilt: Edges) -> list[Finding]:
    findings: list[Finding] = []
    reported_targets = {t for _, t in reported}
    missing_by_target: dict[ColumnRef, list[tuple[ColumnRef, frozenset[Transformation]]]] = defaultdict(list)
    for (src, dst), ts in rebuilt.items():
        if (src, dst) not in reported:
            missing_by_target[dst].append((src, ts))
    for dst, sources in sorted(missing_by_target.items()):
        if dst not in reported_targets and any(_is_direct(ts) for _, ts in sources):
            findings.append(make_finding(
                CHECK, MEDIUM, str(dst), f"column {dst} has no reported lineage",
                key=f"{job}|nolineage", evidence={"job": str(job), "rebuilt_sources": _edge_list(sources)},
                remediation="Emit a columnLineage facet covering this column (the SQL engine's lineage can be used as is).",
            ))
            continue
        for src, ts in sorted(sources):
            findings.append(make_finding(
                CHECK, MEDIUM if _is_direct(ts) else LOW, str(dst), f"missing edge {src} -> {dst}",
                key=f"{job}|missing|{src}",
                evidence={"job": str(job), "source": str(src), "target": str(dst), "rebuilt": _ts(ts)},
                remediation="The job's SQL reads this column but the reported lineage omits it; fix the integration that emits column lineage.",
            ))
    for (src, dst), ts in sorted(reported.items()):
        if (src, dst) not in rebuilt:
            findings.append(make_finding(
                CHECK, MEDIUM, str(dst), f"extra edge {src} -> {dst}",
                key=f"{job}|extra|{src}",
                evidence={"job": str(job), "source": str(src), "target": str(dst), "reported": _ts(ts)},
                remediation="The reported lineage names a source the SQL does not read; the facet is stale or the SQL facet is not the code that ran.",
            ))
        elif _kinds(ts) != _kinds(rebuilt[(src, dst)]):
            masked_differs = _masked(ts) != _masked(rebuilt[(src, dst)])
            findings.append(make_finding(
                CHECK, HIGH if masked_differs else LOW, str(dst), f"transformation of {src} -> {dst} differs",
                key=f"{job}|type|{src}",
                evidence={"job": str(job), "source": str(src), "target": str(dst),
                          "reported": _ts(ts), "rebuilt": _ts(rebuilt[(src, dst)])},
                remediation="Report the transformation type the SQL performs"
                + (" (masking disagrees: PII tracing depends on it)." if masked_differs else "."),
            ))
    return findings


def _edges(graph: LineageGraph, job: JobRef | None) -> Edges:
    out: dict[tuple[ColumnRef, ColumnRef], frozenset[Transformation]] = {}
    for edge in graph.column_edges():
        if job is None or edge.job == job:
            key = (edge.source, edge.target)
            out[key] = out.get(key, frozenset()) | edge.transformations
    return out


def _map(ref: DatasetRef, known: list[DatasetRef]) -> DatasetRef:
    """The reported dataset a rebuilt one names (same name, or the name as a suffix)."""
    for d in known:
        if d == ref:
            return d
    matches = [d for d in known if name_matches(d.name, ref.name)]
    return matches[0] if len(matches) == 1 else ref


def _map_names(edges: Edges, known: list[DatasetRef]) -> Edges:
    cache: dict[DatasetRef, DatasetRef] = {}

    def col(c: ColumnRef) -> ColumnRef:
        if c.dataset not in cache:
            cache[c.dataset] = _map(c.dataset, known)
        return ColumnRef(cache[c.dataset], c.field)

    out: dict[tuple[ColumnRef, ColumnRef], frozenset[Transformation]] = {}
    for (s, t), ts in edges.items():
        key = (col(s), col(t))
        out[key] = out.get(key, frozenset()) | ts
    return out


def _kinds(ts: frozenset[Transformation]) -> set[tuple[str, str, bool]]:
    return {(t.type, t.subtype, t.masking) for t in ts}


def _is_direct(ts: frozenset[Transformation]) -> bool:
    return any(t.type == DIRECT for t in ts) or not ts


def _masked(ts: frozenset[Transformation]) -> bool:
    return any(t.masking for t in ts)


def _ts(ts: frozenset[Transformation]) -> list[str]:
    return sorted(f"{t.type}/{t.subtype}" + (" masked" if t.masking else "") for t in ts)


def _edge_list(items: list[tuple[ColumnRef, frozenset[Transformation]]]) -> list[dict[str, Any]]:
    return [{"source": str(s), "transformations": _ts(ts)} for s, ts in sorted(items)]


def _common_namespace(datasets: list[DatasetRef]) -> str:
    spaces = {d.namespace for d in datasets}
    return spaces.pop() if len(spaces) == 1 else "default"


def _dialect(graph: LineageGraph, job: JobRef) -> str | None:
    sql_facet = (graph.info(job).get("facets") or {}).get("sql") or {}
    dialect = sql_facet.get("dialect")
    return str(dialect).lower() if dialect else None


def _unparsable(job: JobRef, message: str) -> Finding:
    return make_finding(
        CHECK, MEDIUM, str(job), "the job's SQL could not be analyzed", key="unparsable",
        evidence={"job": str(job), "error": message[:2000]},
        remediation="Check the sql facet's dialect, or the SQL itself; lineage for this job cannot be verified.",
    )
