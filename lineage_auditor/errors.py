"""The one error root of lineage-audit, with a subclass per stage.

The CLI turns any :class:`LineageAuditError` into one clear line and exit code 2 (never a
traceback). Each stage raises its own subclass so callers can tell a bad store from a bad
config or a failed delivery without parsing messages; no foreign exception is meant to cross
a stage boundary: wrap it in the stage's error, naming the file, line and column when known.
"""

from __future__ import annotations


class LineageAuditError(Exception):
    """A user-facing error: bad input, a missing file, an unreachable store.

    ``file``, ``line`` and ``column`` name where the problem is, so the message can point at it.
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


class ConfigError(LineageAuditError):
    """A configuration, spec, schema or policy file that cannot be used as written."""


class EventError(LineageAuditError):
    """An OpenLineage event that does not have the shape the spec requires."""


class StoreError(LineageAuditError):
    """A lineage store that cannot be opened, read or written (corrupt, foreign, unreachable)."""


class StoreNotFound(StoreError):
    """No embedded store at the address yet: nothing has been recorded (for a reader, no events)."""


class SqlError(LineageAuditError):
    """SQL that the engine cannot analyse (a parse error, an ambiguous alias)."""


class PipelineError(LineageAuditError):
    """A pipeline step that failed: a source, a transform or a load."""


class DeliveryError(LineageAuditError):
    """An event was not acknowledged by the place it was sent to.

    ``retryable`` is False when sending the same event again cannot succeed (the target
    rejected it as invalid); replay sets such events aside instead of retrying forever.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def yaml_error(exc: Exception, *, file: str) -> ConfigError:
    """A YAML parser's error as ours, pointing at the line and column where parsing stopped."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or exc
    return ConfigError(
        f"invalid YAML: {problem}",
        file=file,
        line=mark.line + 1 if mark else 0,
        column=mark.column + 1 if mark else 0,
    )
