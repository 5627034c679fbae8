"""Split a SQL file into statements and parse each on its own.

One broken statement must not hide the lineage of the others, so the file is tokenized once,
cut at top-level semicolons, and every piece is parsed separately. Positions stay those of
the whole file, so errors point at the right line and column.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

import sqlglot
import sqlglot.expressions as E
from sqlglot.errors import ParseError, TokenError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.tokens import Token, TokenType

from lineage_auditor.model import Problem
from lineage_auditor.sql.blocks import BlockReader, Segment
from lineage_auditor.sql.dialects import DialectRules


@dataclass(slots=True)
class ParsedStatement:
    expression: E.Expr
    line: int
    column: int
    start: int
    end: int
    procedure: str | None = None  # the stored procedure or function whose body holds it


_NEWLINE = re.compile("\n")


class _Positions:
    """Line and column of an offset, in O(log n): a script may have 10,000 statements."""

    def __init__(self, sql: str) -> None:
        self.newlines = [m.start() for m in _NEWLINE.finditer(sql)]

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect_left(self.newlines, offset)
        begin = self.newlines[line - 1] + 1 if line else 0
        return line + 1, offset - begin + 1


def _chunks(tokens: list[Token]) -> Iterator[list[Token]]:
    """The tokens between top-level semicolons, one statement's worth at a time.

    Tokens already handed out are dropped from ``tokens`` (in halves, so the cost stays
    linear): a 20 MB script's tokens need not outlive the statements they were cut into.
    """
    start = 0
    i = 0
    semicolon = TokenType.SEMICOLON
    while i < len(tokens):
        if tokens[i].token_type is semicolon:
            if i > start:
                yield tokens[start:i]
            start = i + 1
            if start > 4096 and start > len(tokens) // 2:
                del tokens[:start]
                i -= start
                start = 0
        i += 1
    if start < len(tokens):
        yield tokens[start:]


def _parse_error(exc: ParseError, file: str, positions: _Positions, fallback: int) -> Problem:
    info = exc.errors[0] if exc.errors else {}
    line = int(info.get("line") or 0)
    col = int(info.get("col") or 0)
    highlight = info.get("highlight") or ""
    if line and col and highlight:
        col = max(1, col - len(highlight) + 1)
    if not line:
        line, col = positions.at(fallback)
    message = _readable(str(info.get("description") or exc).strip())
    return Problem(f"syntax error: {message}", file=file, line=line, column=col)


_REQUIRED = re.compile(r"Required keyword: '(\w+)' missing for <class '[\w.]*?(\w+)'>")


def _readable(message: str) -> str:
    """The parser's words without its class names: ``Required keyword: 'this' missing for
    <class 'sqlglot...Paren'>`` says an expression ends before it is complete."""
    match = _REQUIRED.search(message)
    if match is None:
        return message
    node = {"Paren": "parenthesised expression"}.get(match.group(2)) or re.sub(r"(?<!^)(?=[A-Z])", " ", match.group(2)).lower()
    return f"incomplete {node}: the statement ends before it is complete (an unclosed parenthesis or a missing operand?)"


def parse_statements(
    sql: str, *, rules: DialectRules, file: str, errors: list[Problem], warnings: list[Problem],
    procedure: str | None = None, shift: int = 0,
) -> Iterator[ParsedStatement]:
    """Parse the statements of ``sql`` one by one, as the caller asks for them.

    One error per bad statement goes to ``errors``; warnings to ``warnings``. Yielding one
    statement at a time keeps one parsed tree alive at a time, however long the script.
    Statements inside procedure bodies and scripting blocks are parsed on their own (see
    ``blocks``); a control statement the parser rejects is a warning, not an error.
    Identifiers are normalized by the dialect's rules (sqlglot's ``normalize_identifiers``)
    when any is written in a case the dialect folds, so CTEs, aliases and tables resolve as
    the database would resolve them; statements written in the folded case skip that walk.
    ``shift`` is added to offsets (a procedure body parsed from a string of the file).
    """
    d = rules.sqlglot
    try:
        tokens = d.tokenize(sql)
    except TokenError as exc:
        fallback, problems = _parse_by_lines(sql, d, file, exc)
        errors.extend(problems)
        yield from fallback
        return
    positions = _Positions(sql)
    reader = BlockReader(tsql=rules.name == "tsql", procedure=procedure)
    for chunk in _chunks(tokens):
        chunk = _expand_commands(chunk, sql, positions, d)
        for segment in reader.segments(chunk):
            if segment.body is not None:
                yield from _parse_body(sql, segment, positions, rules, file, shift, errors, warnings)
                continue
            piece = segment.tokens
            first, last = piece[0], piece[-1]
            _SQLGLOT_LOG.addFilter(_FALLBACK_FILTER)
            try:
                expressions = d.parser().parse(piece, sql)
            except RecursionError:  # sqlglot's parser recurses once per nesting level
                line, col = positions.at(first.start)
                errors.append(Problem(TOO_DEEP, file=file, line=line, column=col))
                continue
            except ParseError as exc:
                problem = _parse_error(exc, file, positions, first.start)
                if segment.control:
                    problem.message = problem.message.replace("syntax error:", "control statement not analysed:", 1)
                    warnings.append(problem)
                else:
                    errors.append(problem)
                continue
            finally:
                _SQLGLOT_LOG.removeFilter(_FALLBACK_FILTER)
            line, col = positions.at(first.start)
            normalize = rules.needs_normalizing(piece)
            for expression in expressions:
                if isinstance(expression, E.Command) and not segment.control:
                    if first.text.upper() in _LINEAGE_WORDS:  # lineage would be lost silently
                        warnings.append(Problem("statement not analysed: its syntax is not supported in this "
                                                "dialect (read only as a command)", file=file, line=line, column=col))
                    continue
                if expression is not None:
                    if normalize:
                        try:
                            normalize_identifiers(expression, d)
                        except RecursionError:
                            errors.append(Problem(TOO_DEEP, file=file, line=line, column=col))
                            continue
                    yield ParsedStatement(expression, line, col, first.start + shift, last.end + 1 + shift,
                                          segment.procedure)


TOO_DEEP = "statement not analysed: nested too deeply (thousands of levels of brackets or operators)"

_BLOCK_COMMANDS = frozenset({"BEGIN", "GO", "END", "ELSE"})
_LINEAGE_WORDS = frozenset({"INSERT", "UPDATE", "MERGE", "CREATE", "SELECT", "WITH", "REPLACE"})


class _CommandFallbackFilter(logging.Filter):
    """sqlglot logs each statement it can only read as a command; we report those ourselves
    (with file and line, and only where lineage is lost), so its line on stderr is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a" not in record.getMessage()



_SQLGLOT_LOG = logging.getLogger("sqlglot")
_FALLBACK_FILTER = _CommandFallbackFilter()


def _expand_commands(chunk: list[Token], sql: str, positions: _Positions, d: sqlglot.Dialect) -> list[Token]:
    """Undo the tokenizer's command mode for block words: ``BEGIN INSERT ...`` in BigQuery and
    ``GO SELECT ...`` in T-SQL come out as one command token and one string of the rest.

    The rest is tokenized again where it stands in the file (padded, then shifted), so the
    statement after the block word is parsed like any other.
    """
    k = 0
    while k + 1 < len(chunk):
        tok, rest = chunk[k], chunk[k + 1]
        if tok.text.upper() not in _BLOCK_COMMANDS or rest.token_type is not TokenType.STRING or not rest.text:
            k += 1
            continue
        begin = sql.rfind(rest.text, 0, rest.end + 1)
        if begin <= tok.end or sql[begin - 1] in "'\"$":  # a real string literal, not command text
            k += 1
            continue
        line, col = positions.at(begin)
        padding = "\n" * (line - 1) + " " * (col - 1)
        try:
            again = d.tokenize(padding + rest.text)
        except TokenError:
            return chunk
        delta = begin - len(padding)
        for t in again:
            t.start += delta
            t.end += delta
        chunk = chunk[:k + 1] + again + chunk[k + 2:]
        k += 1
    return chunk


def _parse_body(sql: str, segment: Segment, positions: _Positions, rules: DialectRules, file: str, shift: int,
                errors: list[Problem], warnings: list[Problem]) -> Iterator[ParsedStatement]:
    """A body written as a string (``AS $$ ... $$``): parse it where it stands in the file.

    The body is padded with the newlines and spaces before it, so every line and column the
    parser reports is the file's.
    """
    tok = segment.body
    assert tok is not None
    raw = sql[tok.start:tok.end + 1]
    inner = raw.find(tok.text) if tok.text else -1
    begin = tok.start + (inner if inner >= 0 else 1)
    line, col = positions.at(begin)
    padding = "\n" * (line - 1) + " " * (col - 1)
    yield from parse_statements(padding + tok.text, rules=rules, file=file, errors=errors, warnings=warnings,
                                procedure=segment.procedure, shift=shift + begin - len(padding))


def _parse_by_lines(sql: str, d: sqlglot.Dialect, file: str, exc: TokenError) -> tuple[list[ParsedStatement], list[Problem]]:
    """The tokenizer failed (say, an unterminated string): fall back to splitting on ``;``.

    Each piece is tokenized alone, so the bad one is reported and the rest still parse.
    """
    parsed: list[ParsedStatement] = []
    errors: list[Problem] = []
    positions = _Positions(sql)
    offset = 0
    for piece in sql.split(";"):
        start = offset
        offset += len(piece) + 1
        if not piece.strip():
            continue
        lead = len(piece) - len(piece.lstrip())
        line, col = positions.at(start + lead)
        try:
            expressions = d.parse(piece)
        except TokenError as err:
            errors.append(Problem(f"syntax error: {err}", file=file, line=line, column=col))
            continue
        except ParseError as err:
            problem = _parse_error(err, file, _Positions(piece), lead)
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
