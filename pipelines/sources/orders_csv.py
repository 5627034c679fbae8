"""The orders CSV: a fast seeded generator and a validating reader that never drops a row.

Columns: ``order_id, user_id, order_ts, amount, currency, status``. The reader checks types,
required values, allowed values and duplicate order ids with vectorized pandas operations
(a million rows in a few seconds) and, given the table the rows will be loaded into, whether
each value fits its column there (integer ranges, decimal precision and scale: see
:mod:`pipelines.runtime.coltypes`), so one out-of-range amount costs one row, not the load.
Every rejected row goes to the dead-letter file with its 1-based physical line number in the
file (the header is line 1) and its raw text.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.dtypes import StringDType

from lineage_auditor.errors import LineageAuditError
from pipelines.runtime.coltypes import INTEGER_RANGES, LIMITED, NUMERIC_PRECISION, NUMERIC_SCALE, spelled, value_problem
from pipelines.runtime.targets import Table
from pipelines.sources.dead_letter import DeadLetterWriter

COLUMNS = ("order_id", "user_id", "order_ts", "amount", "currency", "status")
CURRENCIES = ("USD", "EUR", "GBP")
CURRENCY_WEIGHTS = (0.6, 0.3, 0.1)
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "refunded")
STATUS_WEIGHTS = (0.10, 0.15, 0.15, 0.50, 0.06, 0.04)
CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")
BAD_ROW_KINDS = ("amount_not_number", "user_id_not_integer", "bad_timestamp", "missing_order_id",
                 "missing_user_id", "duplicate_order_id", "unknown_status")
START = np.datetime64("2024-01-01T00:00:00", "s")
SPAN_SECONDS = 365 * 86400

#: pandas dtypes of the frame :func:`read_orders` returns.
DTYPES = {"order_id": "int64", "user_id": "int64", "order_ts": "datetime64[us, UTC]",
          "amount": "float64", "currency": "str", "status": "str"}


@dataclass(frozen=True)
class GeneratedOrders:
    """What :func:`generate_orders` wrote."""

    path: Path
    rows: int
    bad_rows: dict[str, int]


@dataclass
class OrdersStats:
    """What :func:`read_orders` saw: rows read, loaded and rejected, by rule."""

    path: str
    rows_read: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0
    duplicates: int = 0
    blank_lines: int = 0
    rejected_by_rule: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "rows_read": self.rows_read, "rows_valid": self.rows_valid,
                "rows_rejected": self.rows_rejected, "duplicates": self.duplicates,
                "blank_lines": self.blank_lines, "rejected_by_rule": dict(self.rejected_by_rule)}


# --------------------------------------------------------------------------- generator

def generate_orders(path: str | os.PathLike[str], n_rows: int, n_users: int, seed: int,
                    bad_row_rate: float = 0.0) -> GeneratedOrders:
    """Write ``n_rows`` orders for users ``1..n_users``, deterministic for ``seed``.

    Orders are in time order over 2024 with increasing ids. With ``bad_row_rate`` > 0 that
    share of rows is broken, cycling through :data:`BAD_ROW_KINDS` (each kind once before
    any repeats), so the reader's dead-letter path has something to catch.
    """
    if n_rows < 0 or n_users < 1 or not 0.0 <= bad_row_rate <= 1.0:
        raise ValueError("need n_rows >= 0, n_users >= 1 and 0 <= bad_row_rate <= 1")
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, SPAN_SECONDS, n_rows))
    cents = np.round(rng.lognormal(3.6, 0.9, n_rows) * 100).astype(np.int64) + 99
    text = StringDType()
    cols: dict[str, np.ndarray] = {
        "order_id": np.arange(1, n_rows + 1, dtype=np.int64).astype(text),
        "user_id": rng.integers(1, n_users + 1, n_rows).astype(text),
        "order_ts": np.strings.add(np.datetime_as_string(START + seconds, unit="s").astype(text), "Z"),
        "amount": np.strings.add(np.strings.add((cents // 100).astype(text), "."),
                                 np.strings.zfill((cents % 100).astype(text), 2)),
        "currency": rng.choice(np.array(CURRENCIES, dtype=text), n_rows, p=CURRENCY_WEIGHTS),
        "status": rng.choice(np.array(STATUSES, dtype=text), n_rows, p=STATUS_WEIGHTS),
    }
    bad = _break_rows(cols, rng, int(round(n_rows * bad_row_rate)))
    lines = cols["order_id"]
    for name in COLUMNS[1:]:
        lines = np.strings.add(np.strings.add(lines, ","), cols[name])
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(",".join(COLUMNS) + "\n")
        if n_rows:
            fh.write("\n".join(lines.tolist()) + "\n")
    return GeneratedOrders(path=out, rows=n_rows, bad_rows=dict(bad))


def _break_rows(cols: dict[str, np.ndarray], rng: np.random.Generator, n_bad: int) -> Counter[str]:
    n_rows = len(cols["order_id"])
    n_bad = min(n_bad, max(0, n_rows - 1))
    if n_bad == 0:
        return Counter()
    rows = np.sort(rng.choice(np.arange(1, n_rows), n_bad, replace=False))  # row 0 stays good
    done: Counter[str] = Counter()
    for i, row in enumerate(rows.tolist()):
        kind = BAD_ROW_KINDS[i % len(BAD_ROW_KINDS)]
        if kind == "amount_not_number":
            cols["amount"][row] = "12.3O"
        elif kind == "user_id_not_integer":
            cols["user_id"][row] = f"u{cols['user_id'][row]}"
        elif kind == "bad_timestamp":
            cols["order_ts"][row] = "2024-02-30T25:61:00Z"
        elif kind == "missing_order_id":
            cols["order_id"][row] = ""
        elif kind == "missing_user_id":
            cols["user_id"][row] = ""
        elif kind == "duplicate_order_id":
            cols["order_id"][row] = cols["order_id"][row - 1] or cols["order_id"][0]
        elif kind == "unknown_status":
            cols["status"][row] = "lost_in_space"
        done[kind] += 1
    return done


# --------------------------------------------------------------------------- reader

def read_orders(path: str | os.PathLike[str], dead_letter: DeadLetterWriter, *,
                source: str | None = None, target: Table | None = None) -> tuple[pd.DataFrame, OrdersStats]:
    """Valid orders as a typed DataFrame (see :data:`DTYPES`) and what was rejected.

    With ``target`` (the table the frame will be loaded into) a value that its column cannot
    hold is a rejected row too. Every rejected row is written to ``dead_letter`` with
    ``line`` (1-based physical line of the row's start), ``reason`` (every rule it broke) and
    ``raw`` (the row's text). A file that is not an orders CSV at all (missing columns,
    unreadable) raises LineageAuditError naming the file and line.
    """
    p = Path(path)
    source = source or f"orders_csv:{p.name}"
    data = p.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    frame, record_lines, record_ends, overlong = _parse(data, p)
    stats = OrdersStats(path=str(p))
    blank = (frame == "").all(axis=1).to_numpy()
    stats.blank_lines = int(blank.sum())
    frame = frame.loc[~blank].reset_index(drop=True)
    lines, ends = record_lines[~blank], record_ends[~blank]
    typed, problems = _check(frame)
    dup = problems.pop("__duplicate_of__")
    misfits = _check_fit(frame, typed, problems, target)
    reasons = _reasons(frame, problems, dup, lines, misfits)
    bad_mask = np.zeros(len(frame), dtype=bool)
    for mask in problems.values():
        bad_mask |= mask
    stats.rows_read = len(frame) + len(overlong)
    stats.duplicates = int(problems["duplicate_order_id"].sum())
    rule_counts = Counter({rule: int(mask.sum()) for rule, mask in problems.items() if mask.any()})
    if overlong:
        rule_counts["too_many_fields"] = len(overlong)
    stats.rejected_by_rule = dict(rule_counts)
    bad_rows = [(int(lines[i]), int(ends[i]), reasons[i]) for i in np.flatnonzero(bad_mask).tolist()]
    _dead_letter_rows(dead_letter, source, data, bad_rows + overlong)
    stats.rows_rejected = int(bad_mask.sum()) + len(overlong)
    good = typed.loc[~bad_mask].reset_index(drop=True)
    good = good.astype({"order_id": "int64", "user_id": "int64"})
    stats.rows_valid = len(good)
    return good, stats


def _parse(data: bytes, path: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, list[tuple[int, int, str]]]:
    """All rows as strings, the physical first and last line of each, and over-long rows pandas skipped."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_filter=False,
                                skip_blank_lines=False, on_bad_lines="warn", encoding="utf-8")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise LineageAuditError(f"not a readable CSV file: {exc}", file=str(path), line=1) from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise LineageAuditError(f"missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}",
                                file=str(path), line=1)
    frame = frame[list(COLUMNS)]
    skipped = sorted(int(m) for w in caught for m in re.findall(r"Skipping line (\d+)", str(w.message)))
    n_records = len(frame) + len(skipped) + 1  # + header
    starts, ends = _record_lines(data, n_records)
    keep = np.ones(n_records + 1, dtype=bool)
    keep[[0, 1, *skipped]] = False  # record numbers are 1-based; record 1 is the header
    rows = np.flatnonzero(keep)
    overlong = [(int(starts[k]), int(ends[k]), f"too many fields (expected {len(COLUMNS)})") for k in skipped]
    return frame, starts[rows], ends[rows], overlong


def _record_lines(data: bytes, n_records: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``first``, ``last``: the physical lines where CSV record ``k`` (1-based) starts and ends.

    Without a quote character every record is one line; otherwise quoted fields may hold
    newlines and the csv module tells where each record starts and ends.
    """
    if b'"' not in data:
        lines = np.arange(n_records + 1, dtype=np.int64)
        return lines, lines
    first, last = [0], [0]
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    end = 0
    for _ in reader:
        first.append(end + 1)
        end = reader.line_num
        last.append(end)
    while len(first) < n_records + 1:
        first.append(last[-1] + 1)
        last.append(last[-1] + 1)
    return np.asarray(first[: n_records + 1], dtype=np.int64), np.asarray(last[: n_records + 1], dtype=np.int64)


def _check(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Typed columns and one boolean mask per broken rule (vectorized)."""
    problems: dict[str, np.ndarray] = {}
    typed = pd.DataFrame(index=frame.index)
    for col in COLUMNS:
        problems[f"missing_{col}"] = (frame[col] == "").to_numpy()
    for col in ("order_id", "user_id"):
        num = pd.to_numeric(frame[col], errors="coerce")
        ok = num.notna() & (num % 1 == 0) & (num > 0)
        problems[f"{col}_not_positive_integer"] = (~ok).to_numpy() & ~problems[f"missing_{col}"]
        typed[col] = _exact_integers(num.where(ok, 0), frame[col])
    ts = pd.to_datetime(frame["order_ts"], format="ISO8601", utc=True, errors="coerce")
    problems["order_ts_not_timestamp"] = ts.isna().to_numpy() & ~problems["missing_order_ts"]
    typed["order_ts"] = ts.astype("datetime64[us, UTC]")
    amount = pd.to_numeric(frame["amount"], errors="coerce")
    ok_amount = amount.notna() & np.isfinite(amount) & (amount >= 0)
    problems["amount_not_non_negative_number"] = (~ok_amount).to_numpy() & ~problems["missing_amount"]
    typed["amount"] = amount.astype("float64")
    problems["currency_not_iso_code"] = _not_in(frame["currency"], lambda v: bool(CURRENCY_PATTERN.fullmatch(v))) \
        & ~problems["missing_currency"]
    problems["status_unknown"] = _not_in(frame["status"], lambda v: v in STATUSES) & ~problems["missing_status"]
    typed["currency"] = frame["currency"].astype("str")
    typed["status"] = frame["status"].astype("str")
    ids = typed["order_id"].where(~(problems["missing_order_id"] | problems["order_id_not_positive_integer"]))
    dup = ids.notna() & ids.duplicated(keep="first")
    problems["duplicate_order_id"] = dup.to_numpy()
    first_pos = pd.Series(np.arange(len(ids)), index=ids.index).groupby(ids).transform("min")
    problems["__duplicate_of__"] = first_pos.fillna(-1).astype("int64").to_numpy()
    return typed, problems


def _exact_integers(values: pd.Series, text: pd.Series) -> pd.Series:
    """``values`` with every whole number past 2**53 taken from its text: a float column (one
    bad value makes pandas parse the whole column as floats) would silently change such ids."""
    if values.dtype.kind != "f":
        return values
    big = (values.abs() >= 2**53).to_numpy()
    if not big.any():
        return values
    exact = values.astype(object)
    exact[big] = [int(Decimal(t.strip())) for t in text[big]]
    return exact


def _check_fit(frame: pd.DataFrame, typed: pd.DataFrame, problems: dict[str, np.ndarray],
               target: Table | None) -> dict[str, dict[str, str]]:
    """Add a ``<column>_out_of_range`` mask per column whose type can refuse values.

    The types are the target table's when given, and at least the frame's own (ids are
    int64, i.e. BIGINT). Only values that passed their own column's checks are tried (one
    reason per problem), exactly (on the text) and once per distinct value, but only for the
    few values whose parsed number is near a limit. Returns, per rule, each bad value's reason.
    """
    checks = {c.name: (c.type, f"{target.name}.{c.name} ") for c in target.columns} if target else {}
    for name in ("order_id", "user_id"):
        checks.setdefault(name, ("bigint", ""))
    misfits: dict[str, dict[str, str]] = {}
    for name, (logical, where) in checks.items():
        if name not in frame.columns or logical not in LIMITED:
            continue
        own = [mask for rule, mask in problems.items() if rule == f"missing_{name}" or rule.startswith(f"{name}_not_")]
        tried = ~np.logical_or.reduce(own)
        values = frame[name]
        suspect = tried & _may_not_fit(logical, typed[name])
        bad = {v: why for v in values[suspect].unique() if (why := value_problem(logical, v)) is not None}
        rule = f"{name}_out_of_range"
        problems[rule] = tried & values.isin(list(bad)).to_numpy()
        misfits[rule] = {v: f"{name} {v!r} does not fit {where}{spelled(logical)}: {why}" for v, why in bad.items()}
    return misfits


def _may_not_fit(logical: str, parsed: pd.Series) -> np.ndarray:
    """A cheap superset of the values that may not fit ``logical``, from their parsed numbers;
    :func:`value_problem` then decides exactly, on the text. Floats blur the limits, so the
    margins are wide: integers from 2**52, decimals from a tenth of the limit or when off the
    grid of the scale by more than a millionth of its unit."""
    numbers = pd.to_numeric(parsed, errors="coerce").astype("float64").abs()
    if logical in INTEGER_RANGES:
        return (numbers >= 2.0 ** 52).to_numpy()
    units = numbers * 10.0 ** NUMERIC_SCALE
    big = numbers >= 0.1 * 10.0 ** (NUMERIC_PRECISION - NUMERIC_SCALE)
    return (big | ((units - units.round()).abs() > 1e-6)).to_numpy()


def _not_in(values: pd.Series, allowed: Any) -> np.ndarray:
    """True where a value fails ``allowed``; the predicate runs once per distinct value."""
    good = [v for v in values.unique() if isinstance(v, str) and allowed(v)]
    return (~values.isin(good)).to_numpy()


_MESSAGES = {
    "order_id_not_positive_integer": "order_id is not a positive integer",
    "user_id_not_positive_integer": "user_id is not a positive integer",
    "order_ts_not_timestamp": "order_ts is not an ISO 8601 timestamp",
    "amount_not_non_negative_number": "amount is not a non-negative number",
    "currency_not_iso_code": "currency is not a 3-letter code",
    "status_unknown": f"status is not one of {', '.join(STATUSES)}",
}


def _reasons(frame: pd.DataFrame, problems: dict[str, np.ndarray], dup_of: np.ndarray,
             lines: np.ndarray, misfits: dict[str, dict[str, str]]) -> dict[int, str]:
    """A human reason per bad row position, naming every rule it broke and the bad value."""
    out: dict[int, list[str]] = {}
    for rule, mask in problems.items():
        for i in np.flatnonzero(mask).tolist():
            if rule in misfits:
                text = misfits[rule][frame.at[i, rule.removesuffix("_out_of_range")]]
            elif rule.startswith("missing_"):
                text = f"missing {rule[len('missing_'):]}"
            elif rule == "duplicate_order_id":
                text = f"duplicate order_id {frame.at[i, 'order_id']} (first on line {int(lines[dup_of[i]])})"
            else:
                col = rule.split("_not_")[0].split("_unknown")[0]
                text = f"{_MESSAGES[rule]}: {frame.at[i, col]!r}"
            out.setdefault(i, []).append(text)
    return {i: "; ".join(parts) for i, parts in out.items()}


def _dead_letter_rows(dead_letter: DeadLetterWriter, source: str, data: bytes,
                      rows: list[tuple[int, int, str]]) -> None:
    """Write each rejected row (first line, last line, reason) with its raw text, in file order."""
    if not rows:
        return
    rows.sort()
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    line_starts = np.concatenate(([0], newlines + 1))
    line_ends = np.concatenate((newlines, [len(data)]))

    def text(first: int, last: int) -> str:
        if first - 1 >= len(line_starts):
            return ""
        chunk = data[line_starts[first - 1]:line_ends[min(last, len(line_ends)) - 1]]
        return chunk.decode("utf-8", errors="replace").replace("\r\n", "\n").rstrip("\r")

    dead_letter.write_many(dead_letter.record(reason, text(first, last), source=source, line=first)
                           for first, last, reason in rows)
