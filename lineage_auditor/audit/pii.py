"""Check 6: PII and restricted data reaching AI datasets.

From every tagged source column (tags in the config, and OpenLineage field-level ``tags``
in the store) we follow DIRECT column lineage down to the AI datasets. Each AI-dataset
column reached is a finding unless every path passes a masking step: a transformation with
``masking: true``, or one whose producing SQL wraps the source column in an allow-listed
masking function (``masking.functions`` in the config). INDIRECT use (joining or filtering
on an e-mail) moves no value into the feature, so it is not followed.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

from lineage_auditor.audit.context import AuditContext
from lineage_auditor.audit.findings import HIGH, Finding, make_finding
from lineage_auditor.audit.names import column_rule_matches
from lineage_auditor.governance.tags import tag_texts
from lineage_auditor.graph import Hop, LineageGraph
from lineage_auditor.model import ColumnRef

CHECK = "pii"
MAX_PATHS = 20


def sensitive_columns(ctx: AuditContext) -> dict[ColumnRef, list[str]]:
    """Tagged columns with their sensitive tags (config rules plus tags seen in the store)."""
    patterns = [p.lower() for p in ctx.config.sensitive_tags]
    found: dict[ColumnRef, list[str]] = {}
    for column in ctx.graph.columns():
        tags = [t for rule in ctx.config.tags if column_rule_matches(rule.column, column) for t in rule.tags]
        tags += [t for tag in ctx.graph.info(column).get("tags") or [] for t in tag_texts(tag)]
        keep = sorted({t for t in tags if any(fnmatchcase(t.lower(), p) for p in patterns)})
        if keep:
            found[column] = keep
    return found


def run(ctx: AuditContext) -> list[Finding]:
    findings: list[Finding] = []
    allow = {f.lower() for f in ctx.config.masking.functions}
    target_columns = {c for t in ctx.targets for c in ctx.current_columns(t)}
    traced = []
    for source, tags in sorted(sensitive_columns(ctx).items()):
        reached = [c for c in ctx.graph.column_downstream(source, direct_only=True) if c in target_columns]
        traced.append({"column": str(source), "tags": tags, "reaches": [str(c) for c in reached]})
        for column in reached:
            finding = _trace(ctx.graph, source, column, tags, allow)
            if finding is not None:
                findings.append(finding)
    ctx.details[CHECK] = {"sensitive_columns": traced}
    return findings


def _trace(graph: LineageGraph, source: ColumnRef, target: ColumnRef, tags: list[str], allow: set[str]) -> Finding | None:
    paths = graph.paths(source, target, direct_only=True, limit=MAX_PATHS)
    paths = [p for p in paths if all(_direct(h) for h in p)]
    if not paths:
        return None
    exposed = [p for p in paths if not any(_masked(graph, h, allow) for h in p)]
    if not exposed:
        return None
    restricted = any(not t.lower().startswith("pii") for t in tags)
    return make_finding(
        CHECK, HIGH, str(target),
        f"{', '.join(tags)} from {source} reaches {target} unmasked",
        key=str(source),
        evidence={
            "source": f"{source.dataset}.{source.field}", "target": f"{target.dataset}.{target.field}", "tags": tags,
            "paths": [path_json(p) for p in exposed],
            "masked_paths": len(paths) - len(exposed),
        },
        remediation=("Hash or tokenize the column before it reaches the feature table (e.g. sha256 with a secret salt), "
                     "drop it, or document an approved exception."
                     + (" Restricted-license data may not be used for training without clearance." if restricted else "")),
    )


def _direct(hop: Hop) -> bool:
    return any(t.type == "DIRECT" for t in hop.transformations)


def _masked(graph: LineageGraph, hop: Hop, allow: set[str]) -> bool:
    if any(t.masking for t in hop.transformations if t.type == "DIRECT"):
        return True
    if not allow:
        return False
    return any(_sql_masks(str(graph.info(job).get("sql") or ""), hop.source.field, hop.target.field, frozenset(allow)) for job in hop.jobs)


@lru_cache(maxsize=4096)
def _sql_masks(sql: str, source_field: str, target_field: str, allow: frozenset[str]) -> bool:
    """True when the SQL's projection named ``target_field`` reads ``source_field`` only inside an allow-listed function."""
    if not sql:
        return False
    import sqlglot
    from sqlglot import exp

    try:
        trees = sqlglot.parse(sql)
    except Exception:  # unparsable SQL proves nothing about masking
        return False
    for tree in trees:
        for select in tree.find_all(exp.Select) if tree else []:
            for projection in select.expressions:
                if projection.alias_or_name.lower() != target_field.lower():
                    continue
                uses = [c for c in projection.find_all(exp.Column) if c.name.lower() == source_field.lower()]
                if uses and all(_inside_allowed(c, projection, allow) for c in uses):
                    return True
    return False


def _inside_allowed(node: Any, stop: Any, allow: frozenset[str]) -> bool:
    from sqlglot import exp

    current = node.parent
    while current is not None and current is not stop.parent:
        if isinstance(current, exp.Func):
            name = (current.name if isinstance(current, exp.Anonymous) else current.sql_name()).lower()
            if name in allow or current.key.lower() in allow:
                return True
        current = current.parent
    return False


def path_json(path: list[Hop]) -> list[dict[str, Any]]:
    """A path as JSON: each hop's source, target, jobs and transformations."""
    return [
        {
            "source": f"{h.source.dataset}.{h.source.field}",
            "target": f"{h.target.dataset}.{h.target.field}",
            "jobs": [str(j) for j in h.jobs],
            "transformations": sorted(f"{t.type}/{t.subtype}" + (" masked" if t.masking else "") for t in h.transformations),
        }
        for h in path
    ]

