"""Bearer tokens of the service's users, kept hashed in one JSON file.

Why a file: every replica of ``serve`` reads the same file (a mounted secret, a shared
volume), ``lineage-audit tokens add|revoke`` edits it, and a replica notices a change by its
modification time without a restart. Only a SHA-256 of each token is kept: tokens are 256
random bits, so a fast hash is safe (a slow password hash buys nothing against a guess of
that size) and checking one costs microseconds per request. The token is shown once, when
it is added.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lineage_auditor.errors import ConfigError
from lineage_auditor.textfiles import load_json, read_text
from lineage_auditor.times import iso

PREFIX = "la"
FORMAT = 1


@dataclass(frozen=True)
class TokenEntry:
    id: str
    user: str
    digest: str
    created: str
    revoked: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "sha256": self.digest, "created": self.created, "revoked": self.revoked}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_tokens(path: Path) -> list[TokenEntry]:
    """The file's entries ([] when it does not exist); ConfigError naming the file otherwise."""
    if not path.exists():
        return []
    data = load_json(read_text(path, what="token file"), file=str(path))
    try:
        entries = [TokenEntry(str(e["id"]), str(e["user"]), str(e["sha256"]), str(e["created"]), e.get("revoked"))
                   for e in data["tokens"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"not a lineage-audit token file ({type(exc).__name__}: {exc})", file=str(path)) from None
    return entries


def save_tokens(path: Path, entries: list[TokenEntry]) -> None:
    """Write the file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"format": FORMAT, "tokens": [e.to_json() for e in entries]}, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def add_token(path: Path, user: str) -> tuple[TokenEntry, str]:
    """A new token for ``user``: the entry kept and the token itself (shown once)."""
    if not user or any(c.isspace() for c in user):
        raise ConfigError(f"a user name without spaces is needed, got {user!r}")
    entries = load_tokens(path)
    token_id = secrets.token_hex(4)
    token = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
    entry = TokenEntry(token_id, user, _digest(token), iso(datetime.now(timezone.utc)))
    save_tokens(path, [*entries, entry])
    return entry, token


def revoke_token(path: Path, token_id: str) -> TokenEntry:
    """Mark a token revoked (kept for the record); ConfigError when there is no such token."""
    entries = load_tokens(path)
    found = [e for e in entries if e.id == token_id]
    if not found:
        raise ConfigError(f"no token {token_id!r} (see `lineage-audit tokens list`)", file=str(path))
    revoked = TokenEntry(found[0].id, found[0].user, found[0].digest, found[0].created,
                         found[0].revoked or iso(datetime.now(timezone.utc)))
    save_tokens(path, [revoked if e.id == token_id else e for e in entries])
    return revoked


class TokenBook:
    """Who a bearer token belongs to, re-reading the file when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_id: dict[str, TokenEntry] = {}

    def _current(self) -> dict[str, TokenEntry]:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        with self._lock:
            if stamp != self._stamp:
                self._by_id = {e.id: e for e in load_tokens(self.path)}
                self._stamp = stamp
            return self._by_id

    def user(self, token: str) -> str | None:
        """The user of a valid, unrevoked token; None for anything else."""
        parts = token.split("_")
        if len(parts) < 3 or parts[0] != PREFIX:
            return None
        entry = self._current().get(parts[1])
        if entry is None or entry.revoked:
            return None
        return entry.user if hmac.compare_digest(entry.digest, _digest(token)) else None
