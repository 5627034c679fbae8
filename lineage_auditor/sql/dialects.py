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

from collections.abc import Callable
from dataclasses import dataclass

import sqlglot.expressions as E
from sqlglot.dialects.dialect import Dialect, NormalizationStrategy
from sqlglot.tokens import Token, TokenType

from lineage_auditor.errors import SqlError

# Names users may pass that sqlglot spells differently.
ALIASES = {"ansi": ""}

# Dialects where ``SELECT a + 1 AS p, p * 2 AS q`` reads the alias ``p`` (a column of the
# FROM tables with that name still wins). PostgreSQL, Trino/Presto, T-SQL, BigQuery, MySQL,
# Oracle, Hive and the SQL standard read ``p`` as a column of the FROM tables only.
LATERAL_ALIAS_DIALECTS = frozenset(
    {"", "snowflake", "duckdb", "redshift", "databricks", "spark", "teradata", "clickhouse"}
)

# How each dialect names an unaliased expression column (documented in the README):
#   postgres: a function's name (``upper``, ``count``), a cast column's name, else ``?column?``;
#   bigquery: ``f0_``, ``f1_`` ... counting unaliased columns; hive: ``_c<position>``;
#   text: the expression as written; TEXT: the expression upper-cased (Snowflake, Oracle);
#   _col (Trino, Presto, T-SQL, generic, ansi): ``_col<position>``, 0-based.
UNNAMED = {
    "postgres": "postgres", "redshift": "postgres", "bigquery": "bigquery", "hive": "hive",
    "spark": "text", "databricks": "text", "duckdb": "text", "mysql": "text", "sqlite": "text",
    "clickhouse": "text", "teradata": "TEXT", "snowflake": "TEXT", "oracle": "TEXT",
}

_UPPER = (NormalizationStrategy.UPPERCASE, NormalizationStrategy.CASE_INSENSITIVE_UPPERCASE)
_IGNORE_QUOTES = (NormalizationStrategy.CASE_INSENSITIVE, NormalizationStrategy.CASE_INSENSITIVE_UPPERCASE)


def _keep(text: str) -> str:
    return text


class DialectRules:
    """One dialect as the engine uses it (built once per run; lookups are on the hot path)."""

    __slots__ = ("name", "sqlglot", "lateral_aliases", "strategy", "case_sensitive_tables", "_unquoted", "_quoted")

    def __init__(self, name: str, sqlglot: Dialect, lateral_aliases: bool, strategy: NormalizationStrategy,
                 case_sensitive_tables: bool) -> None:
        self.name = name  # as the user gave it, lower case ("" for the generic dialect)
        self.sqlglot = sqlglot
        self.lateral_aliases = lateral_aliases
        self.strategy = strategy
        self.case_sensitive_tables = case_sensitive_tables  # BigQuery: dataset-qualified tables keep their case
        folds: Callable[[str], str] = str.upper if strategy in _UPPER else str.lower
        self._unquoted = _keep if strategy is NormalizationStrategy.CASE_SENSITIVE else folds
        self._quoted = folds if strategy in _IGNORE_QUOTES else _keep

    def fold(self, text: str, quoted: bool = False) -> str:
        """An identifier's text as the dialect resolves it."""
        return self._quoted(text) if quoted else self._unquoted(text)

    def needs_normalizing(self, tokens: list[Token]) -> bool:
        """Whether a statement's identifier tokens are written in a case the dialect folds."""
        strategy = self.strategy
        if strategy is NormalizationStrategy.CASE_SENSITIVE:
            return False
        fold = str.upper if strategy in _UPPER else str.lower
        ignore_quotes = strategy in _IGNORE_QUOTES
        last = len(tokens) - 1
        for i, tok in enumerate(tokens):
            kind = tok.token_type
            if (kind is TokenType.VAR or (ignore_quotes and kind is TokenType.IDENTIFIER)) and fold(tok.text) != tok.text:
                if i < last and tokens[i + 1].token_type is TokenType.L_PAREN:
                    continue  # a function name: case never matters to lineage
                return True
        return False

    def folder(self) -> Callable[[str], str]:
        """``fold`` for names written unquoted, as one fast function (for whole schemas)."""
        return self._unquoted

    def ident(self, node: E.Expr | str | None) -> str:
        """The normalized name of an identifier node (or of an unquoted name)."""
        if type(node) is E.Identifier:
            return self._quoted(node.this) if node.args.get("quoted") else self._unquoted(node.this)
        if node is None:
            return ""
        if isinstance(node, str):
            return self._unquoted(node)
        return self._unquoted(node.name)

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

    def unnamed(self, expr: E.Expr, position: int, anonymous: int) -> str:
        """The name the dialect gives an unaliased expression (``SELECT a + b``, ``UPPER(x)``).

        ``position`` counts every output column before this one, ``anonymous`` the unaliased ones.
        """
        style = UNNAMED.get(self.name, "_col")
        if style == "postgres":
            if isinstance(expr, (E.Cast, E.TryCast)) and isinstance(expr.this, E.Column):
                return self.ident(expr.this.this)
            if isinstance(expr, E.Anonymous):
                return self.fold(str(expr.this))
            if isinstance(expr, E.Func):
                return expr.sql_name().lower()
            return "?column?"
        if style == "bigquery":
            return f"f{anonymous}_"
        if style == "hive":
            return f"_c{position}"
        if style == "text":
            return expr.sql(dialect=self.sqlglot)
        if style == "TEXT":
            return expr.sql(dialect=self.sqlglot).upper()
        return f"_col{position}"

    def key(self, name: str) -> str:
        """A schema file's table name (written unquoted) as the dialect resolves it."""
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
