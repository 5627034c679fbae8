"""Check 2: schema drift between dataset versions, and against a declared contract.

For each AI dataset and everything upstream of it, the latest schema version is compared
with the one before: columns added, removed, renamed (an OpenLineage ``lifecycleStateChange``
RENAME, or one column out and one of the same type in), types changed (narrowing is worse
than widening). Each finding names the run that introduced the version. AI datasets with a
``contract`` are also compared with it, including nullability (against observed null counts).
"""

from __future__ import annotations

from typing import Any

from lineage_auditor.audit.config import Contract
from lineage_auditor.audit.context import AuditContext
from lineage_auditor.audit.findings import HIGH, LOW, MEDIUM, Finding, make_finding
from lineage_auditor.audit.types import NARROWING, WIDENING, classify_type_change
from lineage_auditor.audit.view import DatasetVersion
from lineage_auditor.model import DatasetRef
from lineage_auditor.times import iso

CHECK = "schema_drift"


def run(ctx: AuditContext) -> list[Finding]:
    findings: list[Finding] = []
    for dataset in ctx.upstream_of_targets() or ctx.graph.datasets():
        is_target = dataset in ctx.targets
        versions = ctx.view.dataset_versions(dataset)
        if len(versions) >= 2:
            findings.extend(compare_versions(dataset, versions[-2], versions[-1], is_target=is_target))
        target = ctx.targets.get(dataset)
        if target is not None and target.contract is not None and versions:
            findings.extend(check_contract(ctx, dataset, target.contract, versions[-1]))
    return findings


def compare_versions(dataset: DatasetRef, old: DatasetVersion, new: DatasetVersion, *, is_target: bool) -> list[Finding]:
    """Findings for the change from ``old`` to ``new`` (severity higher for AI datasets)."""
    before = {f.name: f.type for f in old.fields}
    after = {f.name: f.type for f in new.fields}
    removed = [c for c in before if c not in after]
    added = [c for c in after if c not in before]
    intro = {"dataset": str(dataset), "from_version": old.version, "to_version": new.version,
             "run_id": new.run_id, "job": str(new.job) if new.job else None, "at": iso(new.created_at)}
    findings: list[Finding] = []
    for old_name, new_name in _renames(new, removed, added, before, after):
        removed.remove(old_name)
        added.remove(new_name)
        findings.append(make_finding(
            CHECK, HIGH if is_target else MEDIUM, f"{dataset.name}.{old_name}", f"column {old_name} renamed to {new_name}",
            key=f"rename|{new.version}", evidence={**intro, "old": old_name, "new": new_name},
            remediation="Update consumers (feature code, model input schema) to the new name, or keep the old name as an alias.",
        ))
    for name in removed:
        findings.append(make_finding(
            CHECK, HIGH if is_target else MEDIUM, f"{dataset.name}.{name}", f"column {name} removed",
            key=f"removed|{new.version}", evidence={**intro, "column": name, "type": before[name]},
            remediation="A consumer reading this column will break or silently get nulls; restore it or migrate consumers first.",
        ))
    for name in added:
        findings.append(make_finding(
            CHECK, LOW, f"{dataset.name}.{name}", f"column {name} added",
            key=f"added|{new.version}", evidence={**intro, "column": name, "type": after[name]},
            remediation="Document the new column; check that models do not pick it up unreviewed (SELECT *).",
        ))
    for name in before:
        old_type, new_type = before[name], after.get(name)
        if old_type and new_type and old_type.lower() != new_type.lower():
            kind = classify_type_change(old_type, new_type)
            severity = HIGH if kind == NARROWING else (LOW if kind == WIDENING else MEDIUM)
            findings.append(make_finding(
                CHECK, severity, f"{dataset.name}.{name}", f"type of {name} changed ({kind}): {before[name]} -> {after[name]}",
                key=f"type|{new.version}", evidence={**intro, "column": name, "old_type": before[name], "new_type": after[name], "kind": kind},
                remediation="Narrowing can truncate or fail on existing values; widen back or cast explicitly and re-validate."
                if kind == NARROWING else "Check that consumers accept the new type.",
            ))
    return findings


def _renames(new: DatasetVersion, removed: list[str], added: list[str], before: dict, after: dict) -> list[tuple[str, str]]:
    """(old, new) renames: declared by a RENAME lifecycle facet, else a lone out/in pair of one type."""
    life = new.lifecycle or {}
    if str(life.get("lifecycleStateChange", "")).upper() == "RENAME":
        return []  # a dataset rename, not a column rename: nothing column-level to pair
    if len(removed) == 1 and len(added) == 1 and before[removed[0]] == after[added[0]]:
        return [(removed[0], added[0])]
    return []


def check_contract(ctx: AuditContext, dataset: DatasetRef, contract: Contract, version: DatasetVersion) -> list[Finding]:
    """The latest schema against the declared contract (types, missing columns, nullability)."""
    actual = {f.name: f.type for f in version.fields}
    nulls = _observed_null_rates(ctx, dataset)
    findings: list[Finding] = []
    base = {"dataset": str(dataset), "version": version.version, "run_id": version.run_id}
    for name, spec in contract.columns.items():
        subject = f"{dataset.name}.{name}"
        if name not in actual:
            findings.append(make_finding(
                CHECK, HIGH, subject, f"contract column {name} is missing", key="contract|missing",
                evidence={**base, "column": name}, remediation="The producer no longer honours the contract; restore the column.",
            ))
            continue
        actual_type = actual[name]
        if spec.type and actual_type and spec.type.lower() != actual_type.lower():
            kind = classify_type_change(spec.type, actual_type)
            findings.append(make_finding(
                CHECK, HIGH if kind == NARROWING else MEDIUM, subject,
                f"type of {name} is {actual[name]}, contract says {spec.type} ({kind})", key="contract|type",
                evidence={**base, "column": name, "contract_type": spec.type, "actual_type": actual[name], "kind": kind},
                remediation="Align the producer's output type with the contract, or version the contract.",
            ))
        if spec.nullable is False and nulls.get(name, 0.0) > 0:
            findings.append(make_finding(
                CHECK, MEDIUM, subject, f"{name} has nulls but the contract says not null", key="contract|nullable",
                evidence={**base, "column": name, "null_rate": round(nulls[name], 6)},
                remediation="Fill or filter nulls upstream, or declare the column nullable.",
            ))
    if contract.strict:
        for name in actual:
            if name not in contract.columns:
                findings.append(make_finding(
                    CHECK, LOW, f"{dataset.name}.{name}", f"column {name} is not in the contract", key="contract|extra",
                    evidence={**base, "column": name}, remediation="Add it to the contract or stop producing it.",
                ))
    return findings


def _observed_null_rates(ctx: AuditContext, dataset: DatasetRef) -> dict[str, Any]:
    samples = [q for q in ctx.view.quality(dataset) if q.null_rates]
    return samples[-1].null_rates if samples else {}
