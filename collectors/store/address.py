"""The one parser of store addresses: where lineage is written to or read from.

Every option that names a store (``--lineage``, ``--store``, ``--from``, ``--to``) goes
through :func:`parse_address`, so the same text means the same store everywhere:

* ``embedded`` or ``embedded:PATH``: the SQLite store (default ``$LINEAGE_AUDIT_HOME/lineage.db``);
* ``postgresql://USER@HOST:PORT/DB`` (or ``postgres://``): the same store in PostgreSQL, for a
  service with several replicas (the DSN's password never reaches a message);
* ``marquez:URL``, ``marquez://HOST:PORT[/PATH]`` or a bare ``http(s)://`` URL: a Marquez server;
* ``http:URL``: any OpenLineage HTTP endpoint (write only);
* ``file:PATH``: NDJSON/JSON event files, or a folder of them;
* ``console`` and ``none`` (write only).

The result is an OpenLineage transport config dict (``{"type": ..., "url"/"path"/...}``),
the shape openlineage.yml and ``OPENLINEAGE__TRANSPORT__*`` use too.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lineage_auditor.errors import ConfigError
from lineage_auditor.scrub import scrub_url

HOME_ENV = "LINEAGE_AUDIT_HOME"
DEFAULT_HOME = ".lineage"
STORE_FILE = "lineage.db"
SPOOL_DIR = "spool"


class StoreKind(StrEnum):
    EMBEDDED = "embedded"
    POSTGRESQL = "postgresql"
    MARQUEZ = "marquez"
    HTTP = "http"
    FILE = "file"
    CONSOLE = "console"
    NONE = "none"


KINDS = tuple(k.value for k in StoreKind)
SPEC_HELP = "embedded[:PATH] | postgresql://HOST:PORT/DB | marquez:URL | marquez://HOST:PORT | http:URL | file:PATH | console | none"
READABLE = (StoreKind.EMBEDDED, StoreKind.POSTGRESQL, StoreKind.MARQUEZ, StoreKind.FILE)
#: Stores with an event index (latest runs, runs touching datasets, incremental reads).
INDEXED = (StoreKind.EMBEDDED, StoreKind.POSTGRESQL)


def lineage_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The local state folder: ``home``, else ``$LINEAGE_AUDIT_HOME``, else ``./.lineage``."""
    return Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME)


def default_store_path(home: str | os.PathLike[str] | None = None) -> Path:
    return lineage_home(home) / STORE_FILE


def default_spool_dir(home: str | os.PathLike[str] | None = None) -> Path:
    return lineage_home(home) / SPOOL_DIR


def parse_address(text: str) -> dict[str, Any]:
    """A store address as a transport config dict; ConfigError for anything else."""
    spec = text.strip()
    if spec.startswith(("postgresql://", "postgres://")):
        parts = _split(spec, text)
        if not parts.hostname and "host=" not in parts.query:
            raise ConfigError(f"store address {scrub_url(text)!r} needs a host: postgresql://USER@HOST:PORT/DATABASE")
        return {"type": StoreKind.POSTGRESQL.value, "dsn": spec}
    if spec.startswith(("http://", "https://")):
        return {"type": StoreKind.MARQUEZ.value, "url": _url(spec, spec)}
    if spec.startswith("marquez://"):
        parts = _split(spec, text)
        if not parts.netloc:
            raise ConfigError(f"store address {text!r} needs a host: marquez://HOST:PORT")
        return {"type": StoreKind.MARQUEZ.value, "url": _url(f"http://{parts.netloc}{parts.path}", text)}
    head, _, rest = spec.partition(":")
    try:
        kind = StoreKind(head.lower())
    except ValueError:
        raise ConfigError(f"unknown store {text!r}; expected {SPEC_HELP}") from None
    if kind is StoreKind.EMBEDDED:
        return {"type": kind.value, **({"path": rest} if rest else {})}
    if kind in (StoreKind.MARQUEZ, StoreKind.HTTP):
        if not rest.startswith(("http://", "https://")):
            raise ConfigError(f"{kind} needs a URL, e.g. {kind}:http://127.0.0.1:5000 (got {text!r})")
        return {"type": kind.value, "url": _url(rest, text)}
    if kind is StoreKind.FILE:
        if not rest:
            raise ConfigError("file needs a path, e.g. file:lineage.ndjson")
        return {"type": kind.value, "log_file_path": rest}
    if rest:
        raise ConfigError(f"{kind} takes no argument (got {text!r})")
    return {"type": kind.value}


def _split(url: str, text: str) -> Any:
    """``urlsplit`` with its ValueError (a stray bracket, a port that is not a number) as ours."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed lazily; raises for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"store address {scrub_url(text)!r} is not a valid URL ({exc})") from None
    return parts


def _url(url: str, text: str) -> str:
    parts = _split(url, text)
    if not parts.netloc:
        raise ConfigError(f"store address {scrub_url(text)!r} needs a host")
    return url.rstrip("/") if parts.path in ("", "/") else url


def store_path(config: dict[str, Any]) -> Path:
    """The file (or folder) of an embedded or file store config."""
    if config["type"] == StoreKind.EMBEDDED:
        return Path(config.get("path") or default_store_path())
    return Path(config.get("log_file_path") or config.get("path") or "")


def describe(config: dict[str, Any]) -> str:
    """A store config as an address again, readable and with any password removed."""
    kind = config["type"]
    if kind in (StoreKind.EMBEDDED, StoreKind.FILE):
        return f"{kind}:{store_path(config)}"
    if kind == StoreKind.POSTGRESQL:
        return scrub_url(str(config["dsn"]))
    if config.get("url"):
        return f"{kind}:{scrub_url(str(config['url']))}"
    return str(kind)
