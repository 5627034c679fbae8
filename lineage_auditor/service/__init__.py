"""``lineage-audit serve``: the OpenLineage endpoint, metrics and pages over a lineage store."""
