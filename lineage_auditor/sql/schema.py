"""Table schemas: the user's schema file plus tables a script creates as it runs.

Keys may be ``db.schema.table``, ``schema.table`` or ``table``. A reference in SQL matches
the key written the same way, or the one key that ends with it (``raw.users`` finds
``warehouse.raw.users``), so lineage names tables as fully as the schema knows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lineage_auditor.errors import LineageAuditError
from lineage_auditor.sql.dialects import DialectRules, dialect_rules
from lineage_auditor.textfiles import load_json, load_yaml, read_text

Columns = dict[str, str | None]  # column name (normalized by the dialect) -> type, insertion-ordered


def load_schema(path: str | Path) -> dict[str, Columns]:
    """Read a JSON or YAML schema file: ``{table: {column: type}}``.

    Errors name the file and, for syntax errors, the line and column.
    """
    path = Path(path)
    text = read_text(path, what="schema file")
    data = load_json(text, file=str(path)) if path.suffix.lower() == ".json" else load_yaml(text, file=str(path))[0]
    return validate_schema(data, source=str(path))


def validate_schema(data: Any, *, source: str = "<schema>") -> dict[str, Columns]:
    """Check the shape of a schema mapping; names stay as written (the catalog normalizes
    them by the dialect of the SQL that reads them)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LineageAuditError("schema must map table names to {column: type}", file=source)
    tables: dict[str, Columns] = {}
    for table, columns in data.items():
        if not isinstance(columns, dict):
            raise LineageAuditError(
                f"table {table!r}: expected a mapping of column to type, got {type(columns).__name__}",
                file=source,
            )
        tables[str(table)] = {str(c): (str(t) if t is not None else None) for c, t in columns.items()}
    return tables


class Catalog:
    """Looks up tables by the name SQL uses, in the schema and in the running script."""

    def __init__(self, schema: dict[str, Columns] | None = None, rules: DialectRules | None = None) -> None:
        rules = rules or dialect_rules(None)
        self._fold = rules.folder()
        # column names are normalized when a table is first read (a schema may have thousands)
        self._tables: dict[str, Columns] = {rules.key(table): columns for table, columns in (schema or {}).items()}
        self._folded: set[str] = set()
        self._suffixes: dict[str, list[str]] = {}
        for key in self._tables:
            self._index(key)
        self._resolved: dict[str, str] = {}

    def _index(self, key: str) -> None:
        parts = key.split(".")
        for i in range(1, len(parts)):
            self._suffixes.setdefault(".".join(parts[i:]), []).append(key)

    def canonical(self, name: str) -> str:
        """The schema's full name for a table reference, or the reference itself."""
        hit = self._resolved.get(name)
        if hit is not None:
            return hit
        if name in self._tables:
            hit = name
        else:
            keys = self._suffixes.get(name, ())
            hit = keys[0] if len(keys) == 1 else name
        self._resolved[name] = hit
        return hit

    def columns(self, name: str) -> Columns | None:
        """Columns of a table (by canonical name), or None when unknown."""
        columns = self._tables.get(name)
        if columns is not None and name not in self._folded:
            self._folded.add(name)
            fold = self._fold
            if any(fold(c) != c for c in columns):
                columns = self._tables[name] = {fold(c): t for c, t in columns.items()}
        return columns

    def define(self, name: str, columns: Columns) -> None:
        """Record a table the script created (it shadows the schema from now on)."""
        if name not in self._tables:
            self._index(name)
        self._tables[name] = columns
        self._folded.add(name)  # the script's own columns are normalized already
        self._resolved.clear()

    def drop(self, name: str) -> None:
        self._tables.pop(name, None)
        self._resolved.clear()
