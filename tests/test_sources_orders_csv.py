"""Orders CSV: the seeded generator, the shipped sample, and validation with exact line numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lineage_auditor.errors import LineageAuditError
from pipelines.sources.dead_letter import DeadLetterWriter, read_dead_letters
from pipelines.sources.orders_csv import (BAD_ROW_KINDS, COLUMNS, DTYPES, generate_orders, read_orders)

SAMPLE = Path(__file__).resolve().parent.parent / "pipelines" / "fixtures" / "orders_sample.csv"


def read(path: Path, tmp_path: Path) -> tuple[pd.DataFrame, object, list[dict]]:
    dl_path = tmp_path / f"{path.stem}.dead.jsonl"
    with DeadLetterWriter(dl_path) as dl:
        frame, stats = read_orders(path, dl)
    return frame, stats, read_dead_letters(dl_path)


def physical_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def test_generator_is_deterministic_per_seed(tmp_path):
    a = generate_orders(tmp_path / "a.csv", 2000, 50, seed=1).path.read_bytes()
    b = generate_orders(tmp_path / "b.csv", 2000, 50, seed=1).path.read_bytes()
    c = generate_orders(tmp_path / "c.csv", 2000, 50, seed=2).path.read_bytes()
    assert a == b and a != c


def test_clean_file_reads_back_whole_and_typed(tmp_path):
    out = generate_orders(tmp_path / "orders.csv", 5000, 40, seed=3)
    assert out.rows == 5000 and out.bad_rows == {}
    assert physical_lines(out.path)[0] == ",".join(COLUMNS)
    frame, stats, dead = read(out.path, tmp_path)
    assert dead == [] and stats.rows_read == stats.rows_valid == 5000 and stats.rows_rejected == 0
    assert {c: str(t) for c, t in frame.dtypes.items()} == DTYPES
    assert frame["order_id"].is_unique and frame["order_id"].tolist() == list(range(1, 5001))
    assert frame["user_id"].between(1, 40).all() and frame["amount"].gt(0).all()
    assert frame["order_ts"].is_monotonic_increasing
    assert frame["order_ts"].dt.year.eq(2024).all()
    assert set(frame["currency"]) == {"USD", "EUR", "GBP"}


def test_every_generated_bad_row_is_caught_with_its_line_and_raw_text(tmp_path):
    out = generate_orders(tmp_path / "orders.csv", 3000, 40, seed=4, bad_row_rate=0.01)
    assert out.bad_rows == {kind: 5 if i < 2 else 4 for i, kind in enumerate(BAD_ROW_KINDS)}
    frame, stats, dead = read(out.path, tmp_path)
    assert stats.rows_rejected == len(dead) == 30 and stats.rows_valid == len(frame) == 2970
    assert stats.duplicates == out.bad_rows["duplicate_order_id"]
    lines = physical_lines(out.path)
    for entry in dead:
        assert entry["raw"] == lines[entry["line"] - 1]
        assert entry["source"] == "orders_csv:orders.csv"
    assert [e["line"] for e in dead] == sorted(e["line"] for e in dead)
    assert frame["order_id"].is_unique


def test_handwritten_file_rejects_each_kind_at_the_right_line(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,user_id,order_ts,amount,currency,status\n"      # 1
        "1,10,2024-01-01T10:00:00Z,12.50,USD,paid\n"              # 2 ok
        "2,x,2024-01-01T11:00:00Z,3.00,EUR,paid\n"                # 3 user_id type
        "\n"                                                      # 4 blank: not a record
        "3,11,2024-02-30T10:00:00Z,abc,usd,flying\n"              # 5 four problems
        "1,12,2024-01-02T10:00:00Z,5,GBP,shipped\n"               # 6 duplicate of line 2
        "4,13,2024-01-03T10:00:00Z,5,GBP,shipped,extra\n"         # 7 too many fields
        ",14,2024-01-03T10:00:00Z,5,GBP,shipped\n"                # 8 missing order_id
        '5,15,"2024-01-04T10:00:00+02:00",7.25,USD,"delivered"\n'  # 9 ok (quoted, offset)
        '6,16,2024-01-05T10:00:00Z,-1,USD,"deli\nvered"\n'        # 10-11 negative, bad status
        "7,17,2024-01-05T10:00:00Z\n",                            # 12 too few fields
        encoding="utf-8")
    frame, stats, dead = read(path, tmp_path)
    assert frame["order_id"].tolist() == [1, 5]
    assert frame["order_ts"].tolist()[1] == pd.Timestamp("2024-01-04T08:00:00Z")
    got = {e["line"]: e["reason"] for e in dead}
    assert sorted(got) == [3, 5, 6, 7, 8, 10, 12]
    assert got[3] == "user_id is not a positive integer: 'x'"
    assert got[5].startswith("order_ts is not an ISO 8601 timestamp: '2024-02-30T10:00:00Z'; ")
    assert "amount is not a non-negative number: 'abc'" in got[5]
    assert "currency is not a 3-letter code: 'usd'" in got[5] and "'flying'" in got[5]
    assert got[6] == "duplicate order_id 1 (first on line 2)"
    assert got[7] == "too many fields (expected 6)"
    assert got[8] == "missing order_id"
    assert "'-1'" in got[10] and "'deli\\nvered'" in got[10]
    assert got[12] == "missing amount; missing currency; missing status"
    raw = {e["line"]: e["raw"] for e in dead}
    assert raw[7] == "4,13,2024-01-03T10:00:00Z,5,GBP,shipped,extra"
    assert raw[10] == '6,16,2024-01-05T10:00:00Z,-1,USD,"deli\nvered"'
    assert (stats.rows_read, stats.rows_valid, stats.rows_rejected, stats.blank_lines) == (9, 2, 7, 1)
    assert stats.rejected_by_rule["too_many_fields"] == 1 and stats.rejected_by_rule["duplicate_order_id"] == 1


def test_shipped_sample_has_a_few_bad_rows_of_each_kind(tmp_path):
    frame, stats, dead = read(SAMPLE, tmp_path)
    assert stats.rows_read == 500 and 5 <= stats.rows_rejected <= 15
    reasons = " | ".join(e["reason"] for e in dead)
    for expected in ("duplicate order_id", "missing order_id", "missing user_id",
                     "user_id is not a positive integer", "amount is not a non-negative number",
                     "order_ts is not an ISO 8601 timestamp"):
        assert expected in reasons
    lines = physical_lines(SAMPLE)
    assert all(lines[e["line"] - 1] == e["raw"] for e in dead)
    assert frame["order_id"].is_unique and frame["user_id"].between(1, 100).all()


def test_a_file_without_the_order_columns_is_an_input_error(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("id,name\n1,Ada\n", encoding="utf-8")
    with DeadLetterWriter(tmp_path / "dl.jsonl") as dl, pytest.raises(LineageAuditError) as err:
        read_orders(path, dl)
    assert str(err.value).startswith(f"{path}:1: missing column(s) order_id, user_id")


def test_header_only_file_gives_an_empty_typed_frame(tmp_path):
    out = generate_orders(tmp_path / "empty.csv", 0, 5, seed=1)
    frame, stats, dead = read(out.path, tmp_path)
    assert len(frame) == 0 and dead == [] and list(frame.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == DTYPES


def test_a_byte_order_mark_and_crlf_endings_are_accepted(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefforder_id,user_id,order_ts,amount,currency,status\r\n"
                     "1,2,2024-03-01T00:00:00Z,1.00,EUR,paid\r\n"
                     "1,3,2024-03-01T00:00:00Z,1.00,EUR,paid\r\n".encode("utf-8"))
    frame, stats, dead = read(path, tmp_path)
    assert len(frame) == 1 and [(e["line"], e["raw"]) for e in dead] == [
        (3, "1,3,2024-03-01T00:00:00Z,1.00,EUR,paid")]


def test_values_the_target_columns_cannot_hold_are_dead_lettered_with_their_lines(tmp_path):
    from pipelines.runtime.targets import Column, Table

    ORDERS_TABLE = Table("staging.orders", (  # as the users-orders spec declares it
        Column("order_id", "bigint", False), Column("user_id", "bigint", False), Column("order_ts", "timestamptz"),
        Column("amount", "numeric"), Column("currency", "text"), Column("status", "text")), key=("order_id",))

    rows = [
        ("1", "9223372036854775807", "123456789012.34"),  # BIGINT max, 12 digits: fit
        ("2", "9223372036854775808", "1.00"),  # BIGINT max + 1
        ("3", "7", "999999999999.99"),  # the largest NUMERIC(14,2)
        ("4", "7", "1000000000000.00"),  # one cent more
        ("5", "7", "1.005"),  # a third decimal the database would round away
        ("6", "7", "1.50"),
        ("7", "7", "1e3"),
        ("99999999999999999999", "7", "2.00"),  # order_id past BIGINT
        ("9007199254740993", "9007199254740993", "3.00"),  # past 2**53: must stay exact
    ]
    path = tmp_path / "orders.csv"
    path.write_text(",".join(COLUMNS) + "\n" + "".join(
        f"{oid},{uid},2024-01-01T00:00:00Z,{amount},USD,paid\n" for oid, uid, amount in rows), encoding="utf-8")
    dl_path = tmp_path / "dead.jsonl"
    with DeadLetterWriter(dl_path) as dl:
        frame, stats = read_orders(path, dl, target=ORDERS_TABLE)
    dead = {d["line"]: d["reason"] for d in read_dead_letters(dl_path)}
    assert sorted(dead) == [3, 5, 6, 9]
    assert "user_id '9223372036854775808' does not fit staging.orders.user_id BIGINT: outside" in dead[3]
    assert "amount '1000000000000.00' does not fit staging.orders.amount NUMERIC(14,2): more than 12 digits" in dead[5]
    assert "more than 2 decimal places" in dead[6]
    assert "order_id '99999999999999999999' does not fit" in dead[9]
    assert frame["order_id"].tolist() == [1, 3, 6, 7, 9007199254740993]
    assert frame["user_id"].tolist() == [9223372036854775807, 7, 7, 7, 9007199254740993]
    assert frame["amount"].tolist() == [123456789012.34, 999999999999.99, 1.5, 1000.0, 3.0]
    assert stats.rejected_by_rule == {"user_id_out_of_range": 1, "amount_out_of_range": 2, "order_id_out_of_range": 1}

    with DeadLetterWriter(tmp_path / "plain.jsonl") as dl:
        _, plain = read_orders(path, dl)  # without a target: the frame's own types (ids are int64)
    assert plain.rejected_by_rule == {"user_id_out_of_range": 1, "order_id_out_of_range": 1}
    assert "user_id '9223372036854775808' does not fit BIGINT: outside" in read_dead_letters(tmp_path / "plain.jsonl")[0]["reason"]
