"""Check 3: lineage drift against a saved baseline (``lineage-audit baseline save``).

The baseline is one JSON file: each job's inputs and outputs, and for each AI dataset its
upstream datasets and, per column, the root columns it comes from (plus, optionally, a data
sample for data drift). Compared with today's graph: a job's inputs or outputs changed, a
new upstream source reached an AI dataset, a column's sources changed.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from lineage_auditor.audit.context import AuditContext
from lineage_auditor.audit.findings import HIGH, LOW, MEDIUM, Finding, make_finding
from lineage_auditor.errors import ConfigError, LineageAuditError
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import DatasetRef
from lineage_auditor.textfiles import load_json, read_text

CHECK = "lineage_drift"
BASELINE_FORMAT = "lineage-audit-baseline"
BASELINE_VERSION = 1


def snapshot(graph: LineageGraph, datasets: list[DatasetRef]) -> dict[str, Any]:
    """The baseline document for ``graph``; ``datasets`` get column-level detail."""
    jobs = {
        str(job): {"inputs": sorted(str(d) for d in graph.job_inputs(job)),
                   "outputs": sorted(str(d) for d in graph.job_outputs(job))}
        for job in graph.jobs()
    }
    detail = {}
    for ds in datasets:
        upstream = graph.upstream(ds)
        detail[str(ds)] = {
            "upstream": sorted(str(d) for d in upstream),
            "root_sources": sorted(str(d) for d in graph.root_sources(ds)),
            "columns": {c.field: sorted(_col(s) for s in graph.column_root_sources(c)) for c in graph.columns(ds)},
        }
    return {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "jobs": jobs,
        "datasets": detail,
        "data": {},
    }


def save_baseline(doc: dict[str, Any], path: str | Path) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves half a baseline."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


class _JobIO(BaseModel):
    inputs: list[str]
    outputs: list[str]


class _DatasetDetail(BaseModel):
    upstream: list[str] = Field(default_factory=list)
    root_sources: list[str] = Field(default_factory=list)
    columns: dict[str, list[str]] = Field(default_factory=dict)


class _Sample(BaseModel):
    rows: int = Field(ge=0)
    columns: dict[str, list[float | str | None]]

    @model_validator(mode="after")
    def _same_length(self) -> "_Sample":
        lengths = {len(values) for values in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError("columns of a data sample must all have the same number of values")
        return self


class _Baseline(BaseModel):
    """The shape the checks read, checked on load: a baseline edited by hand or damaged on disk
    is one error naming the bad value, not a check that fails to run."""

    created_at: str = ""
    jobs: dict[str, _JobIO] = Field(default_factory=dict)
    datasets: dict[str, _DatasetDetail] = Field(default_factory=dict)
    data: dict[str, _Sample] = Field(default_factory=dict)


def load_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    doc = load_json(read_text(path, what="baseline"), file=str(path))
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise LineageAuditError("not a lineage-audit baseline (run `lineage-audit baseline save`)", file=str(path))
    if doc.get("version") != BASELINE_VERSION:
        raise LineageAuditError(f"baseline version {str(doc.get('version'))[:20]} is not supported", file=str(path))
    try:
        _Baseline.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc") or ()) or "baseline"
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        raise ConfigError(f"not a usable baseline: {where}: {message} (save a new one with "
                          "`lineage-audit baseline save`)", file=str(path)) from None
    return doc


def run(ctx: AuditContext) -> list[Finding]:
    if ctx.baseline is None:
        ctx.details[CHECK] = {"baseline": None}
        return []
    ctx.details[CHECK] = {"baseline": ctx.baseline.get("created_at")}
    return compare(ctx.graph, ctx.baseline, list(ctx.targets), [str(j) for j in ctx.jobs_in_scope()])


def compare(graph: LineageGraph, baseline: dict[str, Any], targets: list[DatasetRef], job_names: list[str]) -> list[Finding]:
    """Findings for what changed since ``baseline`` for the given AI datasets and jobs."""
    now = snapshot(graph, targets)
    findings = _job_changes(now["jobs"], baseline.get("jobs") or {}, job_names)
    for target in targets:
        old = (baseline.get("datasets") or {}).get(str(target))
        if old is None:
            continue
        findings.extend(_dataset_changes(graph, target, now["datasets"][str(target)], old))
    return findings


def _job_changes(now: dict[str, Any], old: dict[str, Any], job_names: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    for name in job_names:
        if name not in old:
            if old:
                findings.append(make_finding(
                    CHECK, MEDIUM, name, f"new job {name} since the baseline", key="newjob",
                    evidence={"job": name, **now.get(name, {})},
                    remediation="Review the new job; save a new baseline once it is approved.",
                ))
            continue
        for side in ("inputs", "outputs"):
            added = sorted(set(now[name][side]) - set(old[name][side]))
            removed = sorted(set(old[name][side]) - set(now[name][side]))
            if added or removed:
                findings.append(make_finding(
                    CHECK, MEDIUM if added else LOW, name, f"job {name} {side} changed", key=side,
                    evidence={"job": name, "added": added, "removed": removed},
                    remediation="Confirm the change was intended; then run `lineage-audit baseline save`.",
                ))
    return findings


def _dataset_changes(graph: LineageGraph, target: DatasetRef, now: dict[str, Any], old: dict[str, Any]) -> list[Finding]:
    findings: list[Finding] = []
    roots_now = set(now["root_sources"])
    for ds in sorted(set(now["upstream"]) - set(old.get("upstream") or [])):
        is_root = ds in roots_now
        findings.append(make_finding(
            CHECK, HIGH if is_root else MEDIUM, str(target),
            f"new upstream {'source' if is_root else 'dataset'} {ds} reaches {target.name}", key=f"upstream|{ds}",
            evidence={"dataset": str(target), "new_upstream": ds, "raw_source": is_root,
                      "path": _table_path(graph, ds, target)},
            remediation="A new source feeds this AI dataset: review its license, sensitivity and quality before the next training run.",
        ))
    for ds in sorted(set(old.get("upstream") or []) - set(now["upstream"])):
        findings.append(make_finding(
            CHECK, LOW, str(target), f"{ds} no longer feeds {target.name}", key=f"gone|{ds}",
            evidence={"dataset": str(target), "removed_upstream": ds},
            remediation="Confirm the source was removed on purpose; features built on it may have changed meaning.",
        ))
    old_cols = old.get("columns") or {}
    for column, sources in sorted(now["columns"].items()):
        if column in old_cols and set(old_cols[column]) != set(sources):
            findings.append(make_finding(
                CHECK, MEDIUM, f"{target.name}.{column}", f"sources of {column} changed", key="colsources",
                evidence={"dataset": str(target), "column": column,
                          "added": sorted(set(sources) - set(old_cols[column])),
                          "removed": sorted(set(old_cols[column]) - set(sources))},
                remediation="The feature is now computed from different data; retrain or re-validate the model that uses it.",
            ))
    return findings


def _table_path(graph: LineageGraph, source_text: str, target: DatasetRef) -> list[str]:
    """One chain of datasets from the new upstream down to the target (for the evidence)."""
    by_name = {str(d): d for d in graph.datasets()}
    source = by_name.get(source_text)
    if source is None:
        return [source_text, str(target)]
    chain, current = [target], target
    seen = {target}
    while current != source:
        step = next((d for d in graph.upstream(current, depth=1) if d == source or source in graph.upstream(d)), None)
        if step is None or step in seen:
            break
        chain.append(step)
        seen.add(step)
        current = step
    return [str(d) for d in reversed(chain)]


def _col(c: Any) -> str:
    return f"{c.dataset}.{c.field}"
