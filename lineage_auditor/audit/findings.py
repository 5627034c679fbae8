"""Findings: what a check found, how bad it is, the evidence, and what to do about it.

Ids are stable: a hash of the check, the subject and a short detail key, so the same
problem keeps the same id across runs (CI can suppress or track it) and two different
problems never share one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from lineage_auditor.model import Severity

LOW, MEDIUM, HIGH = Severity.LOW, Severity.MEDIUM, Severity.HIGH
SEVERITIES = tuple(Severity)
SEVERITY_RANK = {s: s.rank for s in Severity}

# check name -> id prefix
PREFIXES = {
    "reported_vs_rebuilt": "RVR",
    "schema_drift": "SCH",
    "lineage_drift": "LIN",
    "data_drift": "DAT",
    "freshness": "FRS",
    "pii": "PII",
    "coverage": "COV",
    "governance": "GOV",
}


@dataclass(frozen=True)
class Finding:
    """One problem found by one check.

    ``subject`` names what the finding is about (a dataset, column or job, as text);
    ``evidence`` is JSON-ready detail (paths, before/after, statistics).
    """

    id: str
    severity: Severity
    check: str
    subject: str
    title: str
    evidence: dict[str, Any] = field(default_factory=dict)
    remediation: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.value,
            "check": self.check,
            "subject": self.subject,
            "title": self.title,
            "evidence": self.evidence,
            "remediation": self.remediation,
        }

    def reaches(self, level: Severity | str) -> bool:
        """True when this finding is at least as severe as ``level``."""
        return self.severity.rank >= Severity(level).rank


def finding_id(check: str, subject: str, key: str = "") -> str:
    """A stable id: ``<PREFIX>-<8 hex>`` from the check, subject and detail key."""
    digest = hashlib.sha1(f"{check}\x00{subject}\x00{key}".encode("utf-8")).hexdigest()[:8]
    return f"{PREFIXES.get(check, check[:3].upper())}-{digest}"


def make_finding(
    check: str,
    severity: Severity | str,
    subject: str,
    title: str,
    *,
    key: str = "",
    evidence: dict[str, Any] | None = None,
    remediation: str = "",
) -> Finding:
    """Build a finding with its stable id (``key`` tells apart findings on one subject)."""
    return Finding(
        id=finding_id(check, subject, key or title),
        severity=Severity(severity),
        check=check,
        subject=subject,
        title=title,
        evidence=evidence or {},
        remediation=remediation,
    )


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then by check and subject, so output is deterministic."""
    return sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.check, f.subject, f.id))


def max_severity(findings: list[Finding]) -> Severity | None:
    if not findings:
        return None
    return max((f.severity for f in findings), key=SEVERITY_RANK.__getitem__)
