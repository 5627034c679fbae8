"""Split a SQL file into statements and parse each on its own.

One broken statement must not hide the lineage of the others, so the file is tokenized once,
cut at top-level semicolons, and every piece is parsed separately. Positions stay those of
the whole file, so errors point at the right line and column.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
import sqlglot.expressions as E
from sqlglot.errors import ParseError, TokenError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.tokens import Token, TokenType

from lineage_auditor.model import Problem
from lineage_auditor.sql.dialects import DialectRules


@dataclass(slots=True)
class ParsedStatement:
    expression: E.Expr
    line: int
    column: int
    start: int
    end: int


def _position(sql: str, offset: int) -> tuple[int, int]:
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _chunks(tokens: list[Token]) -> list[list[Token]]:
    chunks: list[list[Token]] = []
    current: list[Token] = []
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            if current:
                chunks.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        chunks.append(current)
    return chunks


def _parse_error(exc: ParseError, file: str, sql: str, fallback: int) -> Problem:
    info = exc.errors[0] if exc.errors else {}
    line = int(info.get("line") or 0)
    col = int(info.get("col") or 0)
    highlight = info.get("highlight") or ""
    if line and col and highlight:
        col = max(1, col - len(highlight) + 1)
    if not line:
        line, col = _position(sql, fallback)
    message = str(info.get("description") or exc).strip()
    return Problem(f"syntax error: {message}", file=file, line=line, column=col)


def parse_statements(sql: str, *, rules: DialectRules, file: str) -> tuple[list[ParsedStatement], list[Problem]]:
    """Parse every statement of ``sql``; return the parsed ones and one error per bad one.

    Identifiers are normalized by the dialect's rules (sqlglot's ``normalize_identifiers``)
    when any is written in a case the dialect folds, so CTEs, aliases and tables resolve as
    the database would resolve them; statements written in the folded case skip that walk.
    """
    d = rules.sqlglot
    try:
        tokens = d.tokenize(sql)
    except TokenError as exc:
        return _parse_by_lines(sql, d, file, exc)
    parsed: list[ParsedStatement] = []
    errors: list[Problem] = []
    for chunk in _chunks(tokens):
        first, last = chunk[0], chunk[-1]
        try:
            expressions = d.parser().parse(chunk, sql)
        except ParseError as exc:
            errors.append(_parse_error(exc, file, sql, first.start))
            continue
        line, col = _position(sql, first.start)
        normalize = rules.needs_normalizing(chunk)
        for expression in expressions:
            if expression is not None:
                if normalize:
                    normalize_identifiers(expression, d)
                parsed.append(ParsedStatement(expression, line, col, first.start, last.end + 1))
    return parsed, errors


def _parse_by_lines(sql: str, d: sqlglot.Dialect, file: str, exc: TokenError) -> tuple[list[ParsedStatement], list[Problem]]:
    """The tokenizer failed (say, an unterminated string): fall back to splitting on ``;``.

    Each piece is tokenized alone, so the bad one is reported and the rest still parse.
    """
    parsed: list[ParsedStatement] = []
    errors: list[Problem] = []
    offset = 0
    for piece in sql.split(";"):
        start = offset
        offset += len(piece) + 1
        if not piece.strip():
            continue
        lead = len(piece) - len(piece.lstrip())
        line, col = _position(sql, start + lead)
        try:
            expressions = d.parse(piece)
        except TokenError as err:
            errors.append(Problem(f"syntax error: {err}", file=file, line=line, column=col))
            continue
        except ParseError as err:
            problem = _parse_error(err, file, piece, lead)
            problem.line += line - 1
            errors.append(problem)
            continue
        for expression in expressions:
            if expression is not None:
                normalize_identifiers(expression, d)
                parsed.append(ParsedStatement(expression, line, col, start + lead, start + len(piece)))
    if not errors and not parsed:
        errors.append(Problem(f"syntax error: {exc}", file=file, line=1, column=1))
    return parsed, errors
