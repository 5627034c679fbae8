"""The pipeline's SQL, written once (DuckDB dialect) and transpiled by sqlglot per warehouse.

Each file in ``sql/`` is one ``CREATE TABLE <target> AS SELECT …``. :func:`load_model`
parses it, and :class:`SqlModel` gives the statement and its SELECT in any dialect sqlglot
writes (``duckdb``, ``postgres``, ``bigquery``, …), each checked to parse back in that
dialect, plus the column lineage our SQL engine rebuilds from it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import expressions as exp
from sqlglot.errors import ParseError

from lineage_auditor.errors import LineageAuditError
from lineage_auditor.model import ColumnRef, DatasetLineage, DatasetRef, InputField, OutputField
from lineage_auditor.sql import analyze_sql

SQL_DIR = Path(__file__).resolve().parent / "sql"
SOURCE_DIALECT = "duckdb"


@dataclass(frozen=True)
class SqlModel:
    """One ``CREATE TABLE … AS SELECT`` model file."""

    path: Path
    text: str
    target: str  # schema.table
    statement: exp.Create

    def sql(self, dialect: str) -> str:
        """The whole statement in ``dialect`` (what the ``sql`` job facet records)."""
        return _render(self.statement, dialect)

    def select_sql(self, dialect: str) -> str:
        """Just the SELECT in ``dialect`` (what the loader wraps to build the new table)."""
        return _render(self.statement.expression, dialect)

    def lineage(self, schema: dict[str, Any], resolve: Any) -> DatasetLineage:
        """Column lineage of the target from the SQL engine; ``resolve`` maps ``schema.table`` to a DatasetRef."""
        result = analyze_sql(self.text, file=str(self.path), dialect=SOURCE_DIALECT, schema=schema, namespace="sql")
        if result.errors:
            raise LineageAuditError(str(result.errors[0]))
        outputs = [o for s in result.statements for o in s.outputs if _bare(o.dataset.name) == self.target]
        if not outputs:
            raise LineageAuditError(f"the SQL engine found no output {self.target}", file=str(self.path))
        return _renamed(outputs[-1], resolve)


def _render(expression: exp.Expression, dialect: str) -> str:
    text = expression.sql(dialect=dialect, pretty=True, comments=False)
    try:
        sqlglot.parse_one(text, read=dialect)
    except ParseError as exc:  # a transpiler bug must not reach a warehouse
        raise LineageAuditError(f"SQL generated for {dialect} does not parse back: {exc}") from None
    return text


def _bare(name: str) -> str:
    """``schema.table`` from a name that may carry a catalog."""
    return ".".join(name.split(".")[-2:])


def _renamed(lineage: DatasetLineage, resolve: Any) -> DatasetLineage:
    def ref(d: DatasetRef) -> DatasetRef:
        return resolve(_bare(d.name))

    def field(i: InputField) -> InputField:
        return InputField(ColumnRef(ref(i.column.dataset), i.column.field), list(i.transformations))

    return DatasetLineage(
        ref(lineage.dataset),
        [OutputField(f.name, f.position, [field(i) for i in f.inputs], f.type) for f in lineage.fields],
        [field(i) for i in lineage.dataset_inputs],
    )


@functools.cache
def load_model(name: str) -> SqlModel:
    """Parse ``sql/<name>.sql``; errors name the file, line and column."""
    path = SQL_DIR / f"{name}.sql"
    text = path.read_text(encoding="utf-8")
    try:
        statements = [s for s in sqlglot.parse(text, read=SOURCE_DIALECT) if s is not None]
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        raise LineageAuditError(
            str(err.get("description") or exc), file=str(path), line=int(err.get("line") or 0), column=int(err.get("col") or 0)
        ) from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Create) or not isinstance(statements[0].expression, exp.Query):
        raise LineageAuditError("expected exactly one CREATE TABLE … AS SELECT statement", file=str(path), line=1)
    create = statements[0]
    table = create.this if isinstance(create.this, exp.Table) else create.this.find(exp.Table)
    return SqlModel(path=path, text=text, target=f"{table.db}.{table.name}", statement=create)
