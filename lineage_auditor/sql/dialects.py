"""The SQL dialects we accept and the name-resolution rules each one implies.

Users name dialects as their database does (``ansi``, ``postgres``, ``tsql`` ...); sqlglot has
no ``ansi`` dialect, so ansi is parsed by sqlglot's generic dialect with the standard's rules.
Everything the engine needs to know about a dialect lives here, in one place:

- how an identifier is normalized (sqlglot's normalization strategy for the dialect: unquoted
  names folded to lower case in PostgreSQL, to upper case in Snowflake and Oracle, never folded
  in MySQL and ClickHouse, case-insensitive even when quoted in BigQuery, DuckDB, T-SQL, Spark,
  Trino ...);
- whether a projection may refer to an alias defined earlier in the same SELECT list
  (lateral column aliases).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot.expressions as E
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy

from lineage_auditor.errors import SqlError

# Names users may pass that sqlglot spells differently.
ALIASES = {"ansi": ""}

# Dialects where ``SELECT a + 1 AS p, p * 2 AS q`` reads the alias ``p`` (a column of the
# FROM tables with that name still wins). PostgreSQL, Trino/Presto, T-SQL, BigQuery, MySQL,
# Oracle, Hive and the SQL standard read ``p`` as a column of the FROM tables only.
LATERAL_ALIAS_DIALECTS = frozenset(
    {"", "snowflake", "duckdb", "redshift", "databricks", "spark", "teradata", "clickhouse"}
)

_UPPER = (NormalizationStrategy.UPPERCASE, NormalizationStrategy.CASE_INSENSITIVE_UPPERCASE)
_IGNORE_QUOTES = (NormalizationStrategy.CASE_INSENSITIVE, NormalizationStrategy.CASE_INSENSITIVE_UPPERCASE)


@dataclass(frozen=True, slots=True)
class DialectRules:
    """One dialect as the engine uses it."""

    name: str  # as the user gave it, lower case ("" for the generic dialect)
    sqlglot: Dialect
    lateral_aliases: bool
    strategy: NormalizationStrategy
    case_sensitive_tables: bool  # BigQuery: dataset-qualified table names keep their case

    def fold(self, text: str, quoted: bool = False) -> str:
        """An identifier's text as the dialect resolves it."""
        strategy = self.strategy
        if strategy is NormalizationStrategy.CASE_SENSITIVE or (quoted and strategy not in _IGNORE_QUOTES):
            return text
        return text.upper() if strategy in _UPPER else text.lower()

    def ident(self, node: E.Expr | str | None) -> str:
        """The normalized name of an identifier node (or of an unquoted name)."""
        if node is None:
            return ""
        if isinstance(node, str):
            return self.fold(node)
        if isinstance(node, E.Identifier):
            return self.fold(node.this, bool(node.quoted))
        return self.fold(node.name)

    def table(self, table: E.Table) -> str:
        """``catalog.db.name`` of a table reference, normalized."""
        keep = self.case_sensitive_tables and bool(table.args.get("db"))
        parts = []
        for key in ("catalog", "db", "this"):
            part = table.args.get(key)
            if part is None:
                continue
            text = part.this if isinstance(part, E.Identifier) else part.name
            if not text:
                continue
            parts.append(text if keep else self.ident(part))
        return ".".join(parts)

    def key(self, name: str) -> str:
        """A schema file's table or column name (written unquoted) as the dialect resolves it."""
        if self.case_sensitive_tables and "." in name:
            return name
        return self.fold(name)


def dialect_rules(name: str | None) -> DialectRules:
    """The rules for a dialect name; an unknown name is our error, never sqlglot's ValueError."""
    given = (name or "").lower()
    sqlglot_name = ALIASES.get(given, given)
    try:
        dialect = Dialect.get_or_raise(sqlglot_name or None)
    except ValueError as exc:
        raise SqlError(f"unknown SQL dialect {name!r}: {exc}") from None
    strategy = dialect.normalization_strategy
    return DialectRules(
        name=given,
        sqlglot=dialect,
        lateral_aliases=given in LATERAL_ALIAS_DIALECTS,
        strategy=strategy,
        case_sensitive_tables=sqlglot_name == "bigquery" and strategy is NormalizationStrategy.CASE_INSENSITIVE,
    )
