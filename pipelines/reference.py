"""The reference pipelines' surroundings: what their specs need that a spec cannot say.

The pipelines themselves are specs (``pipelines/specs/``) run by the DSL runner like any other.
What remains here is how to reach their sources when nobody names one: the days the Open-Meteo
replay has recordings for (the offline default), and the bundled mock users API, started on
127.0.0.1 for the length of a run when no users API URL is given.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from pipelines.dsl.loader import LoadedSpec, load_spec
from pipelines.specs import reference_spec_path

#: The bundled mock users API's lineage namespace: it listens on a port picked per run, and a
#: namespace with that port would make every run's users a new dataset.
MOCK_USERS_NAMESPACE = "http://mock-users-api"
#: The environment variable the users-orders spec reads its bearer token from (``token_env``).
USERS_TOKEN_ENV = "LINEAGE_AUDIT_USERS_API_TOKEN"


def reference_spec(name: str) -> LoadedSpec:
    """The shipped spec of a reference pipeline (``weather``, ``users_orders``, ``churn_features``)."""
    return load_spec(reference_spec_path(name))


def days_between(start: date, end: date) -> list[date]:
    """Every day from ``start`` through ``end``."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def recorded_days() -> list[date]:
    """The days the Open-Meteo replay has recordings for (what ``--offline`` runs by default)."""
    from pipelines.sources.replay_server import load_fixtures

    fixtures = load_fixtures()
    if not fixtures:
        return []
    return days_between(min(f.start_date for f in fixtures), max(f.end_date for f in fixtures))


@dataclass
class UsersApi:
    """Where one run's users come from, as the users-orders spec's params (the token is never shown)."""

    url: str
    namespace: str = ""
    mock: bool = False
    token: str | None = field(default=None, repr=False)

    def params(self) -> dict[str, str]:
        return {"api_url": self.url, "users_namespace": self.namespace}


@contextlib.contextmanager
def users_api(url: str | None = None, token: str | None = None) -> Iterator[UsersApi]:
    """The users API for a run: ``url`` (bearer token ``token``, else the environment's), or the
    bundled mock API on 127.0.0.1 for the life of the block, named ``MOCK_USERS_NAMESPACE``.

    The spec reads its token from ``USERS_TOKEN_ENV``; a token given here is put there for the
    block and the previous value restored after.
    """
    if url:
        api = UsersApi(url.rstrip("/"), token=token or os.environ.get(USERS_TOKEN_ENV))
        with _token(api.token):
            yield api
        return
    from pipelines.sources.mock_api import MockApiServer

    with MockApiServer() as server:
        api = UsersApi(server.url, MOCK_USERS_NAMESPACE, mock=True, token=server.token)
        with _token(api.token):
            yield api


@contextlib.contextmanager
def _token(token: str | None) -> Iterator[None]:
    if token is None:
        yield
        return
    before = os.environ.get(USERS_TOKEN_ENV)
    os.environ[USERS_TOKEN_ENV] = token
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(USERS_TOKEN_ENV, None)
        else:
            os.environ[USERS_TOKEN_ENV] = before
