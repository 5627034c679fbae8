"""A spec's ``extract: file`` step: CSV or JSON lines checked row by row against the declared columns.

Each row is coerced to its columns' types (the same coercion as ``extract: http``); a row
that does not fit (a missing non-nullable value, a number too large for its column, a date
that is not one, a line that is not JSON) goes to the dead-letter file with its line number
and the reason, and the rest load. The loaded table is then written by the target like any
other (atomic replace, on DuckDB or PostgreSQL).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lineage_auditor.errors import ConfigError
from lineage_auditor.textfiles import read_text
from pipelines.dsl.columns import RowRuleCheck, fit_record, logical_type
from pipelines.dsl.model import FileExtract, FileFormat


@dataclass
class FileRows:
    """The rows that fit, and the ones that did not with their line and reason."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line of each row that fit
    raws: list[Any] = field(default_factory=list)  # and its text as read
    rules: RowRuleCheck | None = None  # the row rules applied, with what each refused

    def keep(self, row: tuple[Any, ...], line: int, raw: Any) -> None:
        self.rows.append(row)
        self.lines.append(line)
        self.raws.append(raw)


def read_rows(extract: FileExtract, path: Path) -> FileRows:
    """Rows of a CSV or JSON-lines file in the declared column order."""
    if extract.format is FileFormat.PARQUET:
        raise ConfigError("extract file: Parquet with declared columns is not read row by row; "
                          "leave out columns to load it as it is (DuckDB targets)")
    text = read_text(path, what="extract file")
    columns = [(c.key, logical_type(c.type), c.nullable) for c in extract.columns]
    found = _csv(text, columns, path) if extract.format is FileFormat.CSV else _jsonl(text, columns)
    return _apply_rules(found, extract, [c.name for c in extract.columns])


def _apply_rules(found: FileRows, extract: FileExtract, names: list[str]) -> FileRows:
    """The extract's ``reject`` rules over the rows that fit, in file order."""
    if extract.reject is None:
        return found
    rules = RowRuleCheck.of(extract.reject, names)
    assert rules is not None
    kept = FileRows(rejected=found.rejected, rules=rules)
    for row, line, raw in zip(found.rows, found.lines, found.raws):
        problems = rules.problems(row, f"line {line}")
        if problems:
            kept.rejected.append({"line": line, "reason": "; ".join(problems), "raw": raw})
        else:
            kept.keep(row, line, raw)
    kept.rejected.sort(key=lambda r: r["line"])
    return kept


def _csv(text: str, columns: list[tuple[str, str, bool]], path: Path) -> FileRows:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise ConfigError("extract file: the CSV is empty (no header)", file=str(path), line=1)
    index = {name.strip(): i for i, name in enumerate(header)}
    missing = [name for name, _, _ in columns if name not in index]
    if missing:
        raise ConfigError(f"extract file: the header has no column {', '.join(missing)} (it has {', '.join(header)})",
                          file=str(path), line=1)
    out = FileRows()
    line = reader.line_num
    for cells in reader:
        start, line = line + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        record = {name: (cells[i] if i < len(cells) else "") for name, i in index.items()}
        row, problem = fit_record({k: (v if v.strip() != "" else None) for k, v in record.items()}, columns)
        if problem:
            out.rejected.append({"line": start, "reason": problem, "raw": ",".join(cells)})
        else:
            out.keep(row, start, ",".join(cells))
    return out


def _jsonl(text: str, columns: list[tuple[str, str, bool]]) -> FileRows:
    out = FileRows()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            out.rejected.append({"line": number, "reason": f"not JSON: {str(exc)[:80]}", "raw": line[:2000]})
            continue
        if not isinstance(record, dict):
            out.rejected.append({"line": number, "reason": "a record is a JSON object", "raw": line[:2000]})
            continue
        row, problem = fit_record(record, columns)
        if problem:
            out.rejected.append({"line": number, "reason": problem, "raw": record})
        else:
            out.keep(row, number, record)
    return out
