"""Errors the CLI turns into a clear message and exit code 2 (never a traceback)."""

from __future__ import annotations


class LineageAuditError(Exception):
    """A user-facing error: bad input, a missing file, an unreachable store.

    ``where`` names the file (and line/column when known) so the message can point at it.
    """

    def __init__(self, message: str, *, file: str = "", line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = self.file
        if where and self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: {self.message}" if where else self.message


def yaml_error(exc: Exception, *, file: str) -> LineageAuditError:
    """A YAML parser's error as ours, pointing at the line and column where parsing stopped."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or exc
    return LineageAuditError(
        f"invalid YAML: {problem}",
        file=file,
        line=mark.line + 1 if mark else 0,
        column=mark.column + 1 if mark else 0,
    )
