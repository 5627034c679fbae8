"""The auditor: checks over the lineage graph and run history, producing findings.

    from lineage_auditor.audit import load_config, run_audit, AuditView
    graph = LineageGraph.from_events(events)
    result = run_audit(graph, AuditView.from_events(events), load_config("lineage-audit.yml"))
"""

from lineage_auditor.audit.config import AuditConfig, load_config, parse_config
from lineage_auditor.audit.findings import Finding, make_finding
from lineage_auditor.audit.runner import CHECKS, AuditResult, resolve_targets, run_audit
from lineage_auditor.audit.view import AuditView

__all__ = ["AuditConfig", "load_config", "parse_config", "Finding", "make_finding", "CHECKS",
           "AuditResult", "resolve_targets", "run_audit", "AuditView"]
