"""Spec columns (SQL type names as analysts write them) as the runtime's logical column types.

A spec says ``type: BIGINT`` or ``DECIMAL(14,2)``; the loaders and targets know a closed set
of logical types (:mod:`pipelines.runtime.coltypes`) with the limits a value is checked
against before a load. This maps one onto the other, and refuses at validation time a type
the loaders cannot create, naming the ones they can.
"""

from __future__ import annotations

from collections import Counter

import re
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from pipelines.runtime.coltypes import value_problem

_LOGICAL = {
    "int": ("INT", "INTEGER", "INT4", "SMALLINT", "INT2"),
    "bigint": ("BIGINT", "INT8", "LONG"),
    "double": ("DOUBLE", "DOUBLE PRECISION", "FLOAT", "FLOAT8", "REAL", "FLOAT4"),
    "numeric": ("NUMERIC", "DECIMAL", "NUMERIC(14,2)", "DECIMAL(14,2)"),
    "text": ("TEXT", "VARCHAR", "STRING", "CHAR"),
    "date": ("DATE",),
    "timestamptz": ("TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE", "DATETIME"),
    "boolean": ("BOOLEAN", "BOOL"),
}
_BY_NAME = {name: logical for logical, names in _LOGICAL.items() for name in names}
SUPPORTED = "INTEGER, BIGINT, DOUBLE, DECIMAL(14,2), VARCHAR, DATE, TIMESTAMP, BOOLEAN"


def logical_type(sql_type: str) -> str:
    """The logical type of a spec column's SQL type; ValueError names what is supported."""
    key = re.sub(r"\s+", " ", sql_type.strip().upper())
    key = re.sub(r"^(VARCHAR|CHAR|TEXT|STRING)\s*\(\s*\d+\s*\)$", r"\1", key)
    key = re.sub(r"\s*,\s*", ",", key).replace("( ", "(").replace(" )", ")")
    logical = _BY_NAME.get(key)
    if logical is None:
        raise ValueError(f"column type {sql_type!r} cannot be loaded (use one of {SUPPORTED})")
    return logical


def check_type(sql_type: str) -> str:
    """A pydantic validator: the type as written, once it is known to be loadable."""
    logical_type(sql_type)
    return sql_type


def coerce(logical: str, value: Any) -> Any:
    """A JSON value as the column's Python value; ValueError says why it does not fit."""
    if value is None:
        return None
    if logical == "timestamptz" and isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if logical == "date" and isinstance(value, date) and not isinstance(value, datetime):
        return value
    if logical in ("int", "bigint", "numeric", "double") and isinstance(value, Decimal):
        value = str(value)
    if logical == "text":
        return value if isinstance(value, str) else str(value)
    if logical == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if isinstance(value, str) and text in ("true", "t", "yes", "1", "false", "f", "no", "0"):
            return text in ("true", "t", "yes", "1")
        raise ValueError(f"{value!r} is not a boolean")
    if logical in ("int", "bigint", "numeric", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{value!r} is not a number")
        if isinstance(value, str):
            value = value.strip()
        problem = value_problem(logical, str(value)) if logical != "double" else None
        if problem:
            raise ValueError(f"{value!r}: {problem}")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
        if logical == "double":
            return float(number)
        return int(number) if logical != "numeric" else number
    text = str(value)
    try:
        if logical == "date":
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 {'date' if logical == 'date' else 'date-time'}") from None


def fit_record(record: dict[str, Any], columns: list[tuple[str, str, bool]]) -> tuple[tuple[Any, ...], str]:
    """A record (CSV row, JSON line, API record) as a row of ``(name, logical type, nullable)``
    columns, or ``((), why)`` when it does not fit: the one check both extract kinds use."""
    values = []
    for name, logical, nullable in columns:
        value = record.get(name)
        if value is None and not nullable:
            return (), f"{name}: missing (the column is not nullable)"
        try:
            values.append(coerce(logical, value))
        except ValueError as exc:
            return (), f"{name}: {exc}"
    return tuple(values), ""


class RowRuleCheck:
    """Applies an extract's ``reject`` rules record by record (state: the keys seen so far)."""

    def __init__(self, unique: list[str], accepted: dict[str, list[Any]], names: list[str],
                 patterns: dict[str, str] | None = None) -> None:
        # the planner has checked that every column named here is declared
        self.key = [names.index(c) for c in unique]
        self.key_names = list(unique)
        self.accepted = {names.index(c): (c, {str(v) for v in values}) for c, values in accepted.items()}
        self.patterns = {names.index(c): (c, re.compile(p)) for c, p in (patterns or {}).items()}
        self.seen: dict[tuple[Any, ...], Any] = {}
        self.unique_broken = 0  # records refused as repeats of an earlier key
        self.values_broken: Counter[str] = Counter()  # column -> records refused for a value not accepted
        self.pattern_broken: Counter[str] = Counter()  # column -> records refused for text not matching
        self.records_refused = 0

    @classmethod
    def of(cls, rules: Any, names: list[str]) -> "RowRuleCheck | None":
        """The check of an extract's ``reject`` rules (None when it has none)."""
        return cls(rules.unique, rules.accepted_values, names, rules.patterns) if rules is not None else None

    def problems(self, row: tuple[Any, ...], where: Any) -> list[str]:
        found = []
        for index, (name, values) in self.accepted.items():
            if row[index] is not None and str(row[index]) not in values:
                found.append(f"{name}: {row[index]!r} is not one of {', '.join(sorted(values))}")
                self.values_broken[name] += 1
        for index, (name, pattern) in self.patterns.items():
            if row[index] is not None and not pattern.fullmatch(str(row[index])):
                found.append(f"{name}: {row[index]!r} does not match {pattern.pattern}")
                self.pattern_broken[name] += 1
        if self.key:
            key = tuple(row[i] for i in self.key)
            if key in self.seen:
                found.append(f"duplicate {', '.join(self.key_names)} (first at {self.seen[key]})")
                self.unique_broken += 1
            elif not found:
                self.seen[key] = where
        self.records_refused += bool(found)
        return found
