"""Column-level lineage from SQL, with OpenLineage semantics.

    >>> from lineage_auditor.sql import analyze_sql
    >>> result = analyze_sql("CREATE TABLE m AS SELECT id FROM raw.users", dialect="duckdb")
    >>> [f.name for f in result.statements[0].outputs[0].fields]
    ['id']
"""

from lineage_auditor.sql.schema import load_schema, validate_schema
from lineage_auditor.sql.script import DEFAULT_NAMESPACE, analyze_files, analyze_sql

__all__ = ["analyze_sql", "analyze_files", "load_schema", "validate_schema", "DEFAULT_NAMESPACE"]
