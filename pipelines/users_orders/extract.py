"""The two extract steps of users-orders: users API → ``staging.users``, orders CSV → ``staging.orders``.

Both staging tables are replaced whole (new table, swapped in one transaction), so
``staging.users`` always holds the last *complete, good* users snapshot: a run whose users
fetch fails leaves it untouched, which is what ``on_source_failure: use_last_snapshot``
falls back on. ``fetched_at`` on each user row says how old that snapshot is.

Python steps have no SQL to parse, so their column lineage is declared here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lineage_auditor.model import (
    DIRECT,
    IDENTITY,
    ColumnRef,
    DatasetLineage,
    DatasetRef,
    InputField,
    OutputField,
    Transformation,
)
from pipelines.runtime.quality import Check
from pipelines.runtime.targets import Column, Table, Target

USERS_TABLE = Table(
    "staging.users",
    (
        Column("user_id", "bigint", False, "user id in the users API"),
        Column("name", "text", True, "full name"),
        Column("email", "text", True, "e-mail address"),
        Column("country", "text", True, "ISO 3166 country code"),
        Column("signup_date", "date", True, "day the account was created"),
        Column("plan", "text", True, "free, pro or enterprise"),
        Column("active", "boolean", True, "account is active"),
        Column("fetched_at", "timestamptz", True, "when this users snapshot was fetched"),
        Column("run_id", "text", True, "OpenLineage run id of the fetch"),
    ),
    key=("user_id",),
    stamps=("fetched_at", "run_id"),
)
# staging.users column <- users API field
USER_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("user_id", "id", "integer"), ("name", "name", "string"), ("email", "email", "string"),
    ("country", "country", "string"), ("signup_date", "signup_date", "string"),
    ("plan", "plan", "string"), ("active", "active", "boolean"),
)

ORDERS_TABLE = Table(
    "staging.orders",
    (
        Column("order_id", "bigint", False, "order id"),
        Column("user_id", "bigint", True, "user who placed the order"),
        Column("order_ts", "timestamptz", True, "when the order was placed, UTC"),
        Column("amount", "numeric", True, "order amount in its currency"),
        Column("currency", "text", True, "ISO 4217 currency code"),
        Column("status", "text", True, "placed, paid, shipped, delivered, cancelled or refunded"),
    ),
    key=("order_id",),
)
ORDER_FIELDS: tuple[tuple[str, str], ...] = (
    ("order_id", "integer"), ("user_id", "integer"), ("order_ts", "string"),
    ("amount", "number"), ("currency", "string"), ("status", "string"),
)


def _identity_lineage(source: DatasetRef, target: DatasetRef, pairs: Sequence[tuple[str, str]]) -> DatasetLineage:
    return DatasetLineage(target, [
        OutputField(out, i, [InputField(ColumnRef(source, src), [Transformation(DIRECT, IDENTITY)])])
        for i, (out, src) in enumerate(pairs)
    ])


def users_lineage(source: DatasetRef, target: DatasetRef) -> DatasetLineage:
    """``staging.users`` columns are the API's fields, ``id`` renamed to ``user_id``."""
    return _identity_lineage(source, target, [(out, src) for out, src, _ in USER_FIELDS])


def orders_lineage(source: DatasetRef, target: DatasetRef) -> DatasetLineage:
    """``staging.orders`` columns are the CSV's columns, typed."""
    return _identity_lineage(source, target, [(name, name) for name, _ in ORDER_FIELDS])


def user_rows(users: Sequence[Any], fetched_at: datetime, run_id: str) -> list[tuple[Any, ...]]:
    """Rows of ``staging.users`` from validated users (``pipelines.sources.users_client.User``)."""
    return [
        (u.id, u.name, u.email, u.country, u.signup_date, u.plan, u.active, fetched_at, run_id)
        for u in users
    ]


def user_records(users: Sequence[Any]) -> list[dict[str, Any]]:
    """Users as the API's field names, for data-quality metrics."""
    return [u.model_dump() for u in users]


def users_checks(result: Any) -> list[Check]:
    """The users client's validation outcome as assertions (record schema, unique id, every page)."""
    return [
        Check("user_record_valid", "schema", result.invalid_records == 0, None, "0 invalid records",
              f"{result.invalid_records} invalid", "every record matches the User model; invalid ones are dead-lettered"),
        Check("user_id_unique", "unique", result.duplicate_records == 0, "id", "0 duplicates",
              f"{result.duplicate_records} duplicates"),
        Check("all_pages_read", "completeness", not result.skipped_pages, None, f"{result.total_pages} pages",
              f"{result.pages} read, skipped {result.skipped_pages or 'none'}"),
    ]


@dataclass(frozen=True)
class _Rule:
    name: str
    assertion: str
    column: str | None
    reader_rules: tuple[str, ...]


_ORDER_RULES = (
    *(_Rule(f"{c}_not_null", "not_null", c, (f"missing_{c}",)) for c, _ in ORDER_FIELDS),
    _Rule("order_id_positive_integer", "type", "order_id", ("order_id_not_positive_integer",)),
    _Rule("user_id_positive_integer", "type", "user_id", ("user_id_not_positive_integer",)),
    _Rule("order_ts_iso_timestamp", "type", "order_ts", ("order_ts_not_timestamp",)),
    _Rule("amount_non_negative", "accepted_range", "amount", ("amount_not_non_negative_number",)),
    _Rule("currency_iso_code", "accepted_values", "currency", ("currency_not_iso_code",)),
    _Rule("status_known", "accepted_values", "status", ("status_unknown",)),
    _Rule("order_id_unique", "unique", "order_id", ("duplicate_order_id",)),
    _Rule("row_field_count", "schema", None, ("too_many_fields",)),
)


def orders_checks(stats: Any) -> list[Check]:
    """The CSV reader's rules as assertions, with how many rows broke each (those were dead-lettered)."""
    broken = stats.rejected_by_rule
    checks = []
    for rule in _ORDER_RULES:
        bad = sum(int(broken.get(r, 0)) for r in rule.reader_rules)
        checks.append(Check(rule.name, rule.assertion, bad == 0, rule.column, "0 rows", f"{bad} rows",
                            "rows breaking the rule go to the dead-letter file"))
    return checks


def last_snapshot(target: Target) -> tuple[datetime, int] | None:
    """When the users snapshot in the warehouse was fetched, and its size (None when there is none)."""
    if not target.table_exists(USERS_TABLE.name):
        return None
    taken, count = target.query(f"SELECT max(fetched_at), count(*) FROM {USERS_TABLE.name}")[0]
    return (taken, int(count)) if taken is not None else None
