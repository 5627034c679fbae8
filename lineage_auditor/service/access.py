"""Who is calling the service, and may they write (or read) what they ask for.

Identity: a bearer token from the token file (:mod:`.tokens`); ``Authorization: Bearer``
is what openlineage-python's ``api_key`` auth and Airflow's provider send. Teams and grants
come from the governance policy (``--policy governance.yml``): an event is accepted only
when every dataset it writes is one the caller's team may write (403 naming the rule), and
pages show only what the caller's team may read. Without a policy every valid token may
write and read everything; without a token file (``--no-auth``, loopback only) every
caller is ``anonymous``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any, Protocol

from fastapi.responses import JSONResponse

from lineage_auditor.events import RunEvent
from lineage_auditor.model import DatasetRef
from lineage_auditor.service.tokens import TokenBook


class Decision(Protocol):
    def __bool__(self) -> bool: ...

    def explain(self) -> str: ...


class PolicyLike(Protocol):
    """The questions the service asks the governance policy (lineage_auditor.governance.Policy)."""

    def teams_of(self, user: str) -> list[str]: ...

    def can_write(self, team: str, dataset: Any) -> Any: ...

    def can_read(self, team: str, dataset: Any, column: str | None, tags: Any) -> Any: ...


@dataclass(frozen=True)
class Caller:
    user: str
    teams: tuple[str, ...] = field(default=())


ANONYMOUS = Caller("anonymous")


class Access:
    """Authentication (tokens) and authorization (the policy) of one service."""

    def __init__(self, book: TokenBook | None, policy: PolicyLike | None) -> None:
        self.book = book
        self.policy = policy

    def require(self, header: str | None) -> Caller | JSONResponse:
        """The caller a request's Authorization header names, or the 401 to answer with."""
        if self.book is None:
            return ANONYMOUS
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("a bearer token is required (Authorization: Bearer <token>)")
        user = self.book.user(token.strip())
        if user is None:
            return _unauthorized("unknown or revoked token")
        teams = tuple(self.policy.teams_of(user)) if self.policy is not None else ()
        return Caller(user, teams)

    def check_write(self, caller: Caller, event: RunEvent) -> str:
        """Why ``caller`` may not send ``event`` ("" when it may): the first output it may not write."""
        if self.policy is None:
            return ""
        if not caller.teams:
            return f"user {caller.user} is in no team of the policy, so may write nothing"
        for ds in event.outputs:
            decisions = [self.policy.can_write(team, ds.ref) for team in caller.teams]
            if not any(decisions):
                return decisions[0].explain()
        return ""

    def read_refusal(self, caller: Caller, dataset: DatasetRef, column: str | None, tags: Sequence[str]) -> str:
        """Why ``caller`` may not see ``column`` of ``dataset`` (its values, the SQL touching it),
        which carries ``tags``; "" when they may. Everything is readable without a policy."""
        if self.policy is None or not tags:
            return ""
        if not caller.teams:
            return f"user {caller.user} is in no team of the policy"
        decisions = [self.policy.can_read(team, dataset, column, tags) for team in caller.teams]
        return "" if any(decisions) else decisions[0].explain()


def _unauthorized(detail: str) -> JSONResponse:
    return JSONResponse({"error": "unauthorized", "detail": detail}, status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="lineage-audit"'})

