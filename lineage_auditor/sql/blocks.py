"""Procedural SQL: the statements inside procedure bodies and scripting blocks.

Users keep much of their DML in ``CREATE PROCEDURE ... BEGIN ... END`` (BigQuery, Snowflake
scripting, T-SQL ``AS BEGIN ... END``, Oracle PL/SQL, PL/pgSQL ``AS $$ ... $$``) and in scripts
with ``DECLARE``, ``IF``, ``LOOP`` and ``EXCEPTION`` around it. sqlglot parses the statements but
not the control flow, so we cut the control flow away at the token level: every piece between
semicolons loses its leading block keywords (``BEGIN``, ``IF cond THEN``, ``ELSE``, ``LOOP``,
``WHEN ... THEN``, ``END IF`` ...) and what remains is parsed as a statement of the procedure.
A piece that is itself a control statement (``DECLARE``, ``RETURN``, ``x := 1`` ...) is marked so
a parse failure becomes a warning rather than an error: it never costs the statements around it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlglot.tokens import Token, TokenType

# Words that open or continue a block and are followed directly by a statement.
_OPENERS = frozenset({"BEGIN", "ELSE", "LOOP", "REPEAT", "DO", "EXCEPTION", "THEN"})
# Words followed by a condition up to THEN / DO / LOOP (or, in T-SQL, the next statement).
_CONDITIONS = frozenset({"IF", "ELSEIF", "ELSIF", "WHILE", "WHEN", "FOR", "FOREACH", "UNTIL"})
_CONDITION_ENDS = frozenset({"THEN", "DO", "LOOP"})
# Words that end a block, optionally followed by the kind of block they end.
_BLOCK_KINDS = frozenset({"IF", "LOOP", "WHILE", "FOR", "REPEAT", "CASE", "FOREACH"})
# Statements that only steer the procedure: no lineage of their own.
CONTROL_WORDS = frozenset({
    "DECLARE", "RETURN", "RAISE", "LEAVE", "ITERATE", "CONTINUE", "BREAK", "NULL", "CALL", "EXECUTE",
    "EXEC", "PRINT", "OPEN", "FETCH", "CLOSE", "COMMIT", "ROLLBACK", "THROW", "RAISERROR", "EXIT", "GOTO",
    "ASSERT", "SIGNAL", "RESIGNAL", "LET", "GO", "PERFORM", "GET", "SET", "SAVEPOINT", "LOOP", "END",
})
# Words a statement with lineage starts with (T-SQL conditions end where one begins).
_STATEMENT_STARTS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "SELECT", "WITH", "CREATE", "BEGIN",
                               "TRUNCATE", "DROP", "ALTER", "REPLACE"})
_ROUTINES = frozenset({"PROCEDURE", "FUNCTION", "PROC"})
_STRINGS = frozenset({TokenType.STRING, TokenType.RAW_STRING, TokenType.HEREDOC_STRING, TokenType.NATIONAL_STRING})
_NOT_WORDS = frozenset({TokenType.STRING, TokenType.RAW_STRING, TokenType.HEREDOC_STRING,
                        TokenType.NATIONAL_STRING, TokenType.IDENTIFIER, TokenType.NUMBER})


@dataclass(slots=True)
class Segment:
    """One piece of a script: a statement to parse, or a procedure body to read on its own."""

    tokens: list[Token]
    procedure: str | None = None
    control: bool = False  # a control statement: a parse failure is only a warning
    body: Token | None = None  # a string token holding the procedure's body (``AS $$ ... $$``)


def _sql_language(chunk: list[Token]) -> bool:
    """Whether a routine's ``LANGUAGE`` (when given) is SQL or a SQL dialect's procedural one."""
    for k, tok in enumerate(chunk[:-1]):
        if _word(tok) == "LANGUAGE":
            return chunk[k + 1].text.upper() in ("SQL", "PLPGSQL", "PLSQL", "TSQL")
    return True


def _word(tok: Token) -> str:
    return "" if tok.token_type in _NOT_WORDS else tok.text.upper()


class BlockReader:
    """Cuts the control flow out of a script's semicolon-separated pieces, in order."""

    def __init__(self, tsql: bool = False, procedure: str | None = None) -> None:
        self.tsql = tsql
        self.procedure = procedure  # the routine whose body we are in
        self.depth = 0  # BEGIN ... END nesting inside that routine
        self.declaring = False  # Oracle IS/AS ... BEGIN: declarations, not statements
        self.inherited = procedure is not None  # a body read from a string: it is all procedure
        self.single = False  # the routine ends with the current piece

    def segments(self, chunk: list[Token]) -> Iterator[Segment]:
        yield from self._segments(chunk)
        if self.single:
            self.single = False
            self._end_routine()

    def _segments(self, chunk: list[Token]) -> Iterator[Segment]:
        i = 0
        n = len(chunk)
        while i < n:
            word = _word(chunk[i])
            if word == "CREATE" and self._routine_at(chunk, i):
                i, body = self._header(chunk, i)
                if body is not None:
                    yield Segment([], self.procedure, body=body)
                    self._end_routine()
                    return
                continue
            if word == "GO":  # T-SQL batch separator: ends a procedure without BEGIN ... END
                if not self.inherited:
                    self.procedure = None
                self.depth = 0
                i += 1
                continue
            if word == "END":
                i += 1
                following = _word(chunk[i]) if i < n else ""
                if following in _BLOCK_KINDS:
                    i += 1
                    continue
                if following in ("TRY", "CATCH"):  # T-SQL END TRY / END CATCH close a BEGIN
                    i += 1
                self._close()
                continue
            if word == "BEGIN" and not (i + 1 < n and _word(chunk[i + 1]) in ("TRANSACTION", "TRAN", "WORK")):
                if i + 1 == n and self.procedure is None:
                    return  # BEGIN; on its own starts a transaction
                self.depth += 1
                self.declaring = False
                i += 1
                if i < n and _word(chunk[i]) in ("TRY", "CATCH"):  # T-SQL BEGIN TRY / BEGIN CATCH
                    i += 1
                continue
            if word in _OPENERS and word != "BEGIN":
                i += 1
                continue
            if word in _CONDITIONS and not (word == "WHEN" and self.procedure is None and self.depth == 0):
                i = self._skip_condition(chunk, i + 1)
                continue
            break
        if i >= n:
            return
        rest = chunk[i:]
        rest = self._strip_trailing_ends(rest)
        if not rest:
            return
        if self.declaring:
            return  # a declaration (``n NUMBER;``) before the routine's BEGIN
        first = _word(rest[0])
        in_block = self.procedure is not None or self.depth > 0
        control = first in CONTROL_WORDS or (in_block and first not in _STATEMENT_STARTS)
        yield Segment(rest, self.procedure, control=control)

    def _routine_at(self, chunk: list[Token], i: int) -> bool:
        for tok in chunk[i + 1:i + 6]:
            word = _word(tok)
            if word in _ROUTINES:
                return True
            if word not in ("OR", "REPLACE", "ALTER", "TEMP", "TEMPORARY", "SECURE", "DEFINER", "EDITIONABLE"):
                return False
        return False

    def _header(self, chunk: list[Token], i: int) -> tuple[int, Token | None]:
        """Skip ``CREATE PROCEDURE name(...) ... AS|IS|BEGIN``; return where the body starts."""
        n = len(chunk)
        while i < n and _word(chunk[i]) not in _ROUTINES:
            i += 1
        i += 1
        name: list[str] = []
        if i < n:
            name.append(chunk[i].text)
            i += 1
            while i + 1 < n and chunk[i].token_type is TokenType.DOT:
                name.append(chunk[i + 1].text)
                i += 2
        if not self.inherited:
            self.procedure = ".".join(name) or "procedure"
        self.depth = 0
        paren = 0
        while i < n:
            tok = chunk[i]
            if tok.token_type is TokenType.L_PAREN:
                paren += 1
            elif tok.token_type is TokenType.R_PAREN:
                paren -= 1
            elif paren == 0:
                word = _word(tok)
                if word == "BEGIN":
                    return i, None
                if word in ("AS", "IS") and _word(chunk[i - 1]) != "EXECUTE":  # not EXECUTE AS CALLER
                    j = i + 1
                    if j < n and chunk[j].token_type in _STRINGS:
                        if not _sql_language(chunk):  # a JavaScript or Python body: not ours to read
                            self._end_routine()
                            return n, None
                        return n, chunk[j]
                    if j < n and _word(chunk[j]) == "BEGIN":
                        return j, None
                    if self.tsql:
                        return j, None  # T-SQL: the body runs to GO
                    if j < n and (chunk[j].token_type is TokenType.L_PAREN or _word(chunk[j]) in ("SELECT", "WITH")):
                        self.single = True  # a SQL function of one expression or query: this piece only
                        return j, None
                    self.declaring = True  # Oracle: declarations up to BEGIN
                    return j, None
            i += 1
        self._end_routine()
        return n, None

    def _end_routine(self) -> None:
        if not self.inherited:
            self.procedure = None
        self.depth = 0
        self.declaring = False

    def _close(self) -> None:
        if self.depth > 0:
            self.depth -= 1
        if self.depth == 0 and not self.inherited and not self.tsql:
            self.procedure = None

    def _skip_condition(self, chunk: list[Token], i: int) -> int:
        """Past a condition: to just after THEN / DO / LOOP, or (T-SQL) where a statement starts."""
        paren = 0
        n = len(chunk)
        start = i
        while i < n:
            tok = chunk[i]
            if tok.token_type is TokenType.L_PAREN:
                paren += 1
            elif tok.token_type is TokenType.R_PAREN:
                paren -= 1
            elif paren == 0:
                word = _word(tok)
                if word in _CONDITION_ENDS:
                    return i + 1
                if self.tsql and i > start and word in _STATEMENT_STARTS:  # T-SQL: IF cond INSERT ...
                    return i
            i += 1
        return n

    def _strip_trailing_ends(self, tokens: list[Token]) -> list[Token]:
        """``BEGIN INSERT ... END`` without a semicolon: the END closes the block, not a CASE."""
        if self.depth == 0:
            return tokens
        cases = sum(1 for t in tokens if _word(t) == "CASE")
        ends = sum(1 for t in tokens if _word(t) == "END")
        while ends > cases and tokens and _word(tokens[-1]) == "END":
            tokens = tokens[:-1]
            ends -= 1
            self._close()
        return tokens
