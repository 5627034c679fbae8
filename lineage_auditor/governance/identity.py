"""Who runs a pipeline: ``--as``, else ``$LINEAGE_AUDIT_USER``, else the operating-system user.

The identity is asserted, not authenticated: the local runner trusts the machine it runs on
(as a cron job or CI runner does). It decides which team's pipelines the user may run and is
recorded in every run (the ``lineageAudit_runBy`` run facet), so the store says who ran what.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from lineage_auditor.errors import ConfigError

USER_ENV = "LINEAGE_AUDIT_USER"


class IdentitySource(StrEnum):
    """Where the identity came from (recorded with it)."""

    OPTION = "--as"
    ENV = USER_ENV
    OS = "os"


@dataclass(frozen=True)
class Identity:
    user: str
    source: IdentitySource

    def __str__(self) -> str:
        return f"{self.user} (from {self.source.value})"


def resolve_identity(as_user: str | None = None, environ: Mapping[str, str] | None = None) -> Identity:
    """The user a run acts as: ``as_user`` (``--as``), else ``$LINEAGE_AUDIT_USER``, else the OS user."""
    env = os.environ if environ is None else environ
    if as_user is not None:
        if not as_user.strip():
            raise ConfigError("--as: the user name is empty")
        return Identity(as_user.strip(), IdentitySource.OPTION)
    if env.get(USER_ENV, "").strip():
        return Identity(env[USER_ENV].strip(), IdentitySource.ENV)
    try:
        return Identity(getpass.getuser(), IdentitySource.OS)
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid) and no LOGNAME/USER
        raise ConfigError(f"cannot tell who runs this: no --as, no ${USER_ENV}, and the OS user has no name") from None
