"""Errors a data source raises, so a pipeline can tell "retry later" from "bad input"."""

from __future__ import annotations

from lineage_auditor.errors import PipelineError


class SourceError(PipelineError):
    """A source answered, but not in a way a retry can fix (401, 404, a 400 with a reason)."""

    def __init__(self, message: str, *, source: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.status = status


class SourceUnavailable(SourceError):
    """The source stayed down past the deadline, or its circuit breaker is open.

    A pipeline catches this to fail cleanly or fall back to its last good snapshot.
    ``attempts`` counts every HTTP request of the fetch that gave up (all its pages).
    """

    def __init__(self, message: str, *, source: str = "", attempts: int = 0,
                 last_error: str = "", breaker_open: bool = False) -> None:
        super().__init__(message, source=source)
        self.attempts = attempts
        self.last_error = last_error
        self.breaker_open = breaker_open


class MalformedResponse(SourceError):
    """A 2xx response whose body could not be parsed or did not have the expected shape.

    ``raw`` keeps the body (decoded leniently) so it can go to a dead-letter file.
    """

    def __init__(self, message: str, *, raw: str = "", source: str = "", status: int | None = None) -> None:
        super().__init__(message, source=source, status=status)
        self.raw = raw
