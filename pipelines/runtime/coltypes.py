"""Logical column types: how each warehouse dialect spells them, and which values they can hold.

One table for both, so that validating a row before a load and creating the column it lands
in cannot disagree: a reader asks :func:`value_problem` whether a parsed value fits the
target column (integer range, decimal precision and scale) and dead-letters the row with the
reason, instead of the load failing for every row on one out-of-range value (DuckDB:
"Could not cast value ... to DECIMAL(14,2)", PostgreSQL: "numeric field overflow").
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

#: Money columns: 14 digits, 2 of them after the point (999,999,999,999.99 at most).
NUMERIC_PRECISION = 14
NUMERIC_SCALE = 2

SQL_TYPES: dict[str, dict[str, str]] = {
    "postgres": {
        "text": "TEXT", "double": "DOUBLE PRECISION", "int": "INTEGER", "bigint": "BIGINT",
        "timestamptz": "TIMESTAMPTZ", "date": "DATE", "numeric": f"NUMERIC({NUMERIC_PRECISION},{NUMERIC_SCALE})",
        "boolean": "BOOLEAN",
    },
    "duckdb": {
        "text": "VARCHAR", "double": "DOUBLE", "int": "INTEGER", "bigint": "BIGINT",
        "timestamptz": "TIMESTAMPTZ", "date": "DATE", "numeric": f"DECIMAL({NUMERIC_PRECISION},{NUMERIC_SCALE})",
        "boolean": "BOOLEAN",
    },
}

#: Inclusive ranges of the integer types (the same in both dialects).
INTEGER_RANGES: dict[str, tuple[int, int]] = {"int": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}

#: Logical types whose values :func:`value_problem` can refuse.
LIMITED = frozenset({*INTEGER_RANGES, "numeric"})


def spelled(logical: str) -> str:
    """The type as people know it, the same in every dialect: ``NUMERIC(14,2)``, ``BIGINT``."""
    return SQL_TYPES["postgres"][logical]


def value_problem(logical: str, text: str) -> str | None:
    """Why the number in ``text`` cannot be stored in a column of ``logical`` type, or None.

    The reason is short ("more than 12 digits before the decimal point"); the caller names
    the column and its type.

    ``text`` is a value a reader already accepted as a number; types without limits
    (text, double, dates) always fit. A decimal with more places than the scale would be
    rounded by the database without a word, so it is refused like an overflow.
    """
    if logical not in LIMITED:
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return "not a number"
    if not value.is_finite():
        return "not a finite number"
    if logical in INTEGER_RANGES:
        low, high = INTEGER_RANGES[logical]
        if value != value.to_integral_value():
            return "not a whole number"
        if not low <= value <= high:
            return f"outside {low}..{high}"
        return None
    places = -value.normalize().as_tuple().exponent  # type: ignore[operator]
    if places > NUMERIC_SCALE:
        return f"more than {NUMERIC_SCALE} decimal places (the database would round it)"
    if abs(value) >= Decimal(10) ** (NUMERIC_PRECISION - NUMERIC_SCALE):
        return f"more than {NUMERIC_PRECISION - NUMERIC_SCALE} digits before the decimal point"
    return None
