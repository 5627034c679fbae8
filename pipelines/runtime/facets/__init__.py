"""JSON schemas of the run facets lineage-audit adds to OpenLineage events (package data)."""
