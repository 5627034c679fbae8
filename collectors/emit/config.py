"""Which transport to use, decided the OpenLineage way plus a command-line option.

Precedence, strongest first:

1. ``--lineage SPEC`` (``embedded[:PATH]``, ``marquez:URL``, ``http:URL``, ``file:PATH``,
   ``console``, ``none``);
2. environment: ``OPENLINEAGE_DISABLED=true``, then ``OPENLINEAGE__TRANSPORT__TYPE=...`` with
   its ``OPENLINEAGE__TRANSPORT__<KEY>`` siblings, then ``OPENLINEAGE_URL`` (with
   ``OPENLINEAGE_ENDPOINT`` / ``OPENLINEAGE_API_KEY``);
3. ``openlineage.yml``: the file named by ``OPENLINEAGE_CONFIG``, else ``./openlineage.yml``,
   else ``~/.openlineage/openlineage.yml`` (openlineage-python's search order);
4. the embedded store at ``$LINEAGE_AUDIT_HOME/lineage.db`` (default ``.lineage/lineage.db``).

Undelivered events are spooled to ``$LINEAGE_AUDIT_HOME/spool``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from collectors.emit.emitter import LineageEmitter
from collectors.emit.spool import Spool
from collectors.emit.transports import (
    ConsoleTransport,
    EmbeddedTransport,
    FileTransport,
    HttpTransport,
    NoopTransport,
    PostgresTransport,
    Transport,
)
from collectors.store.address import (
    KINDS,
    SPEC_HELP,
    default_spool_dir,
    default_store_path,
    lineage_home,
    parse_address,
)
from lineage_auditor.errors import LineageAuditError
from lineage_auditor.textfiles import read_yaml

__all__ = ["KINDS", "SPEC_HELP", "default_spool_dir", "default_store_path", "lineage_home", "parse_spec",
           "resolve_transport_config", "transport_from_config", "emitter_from_config", "find_config_file"]

ENV_PREFIX = "OPENLINEAGE__TRANSPORT__"


def parse_spec(spec: str) -> dict[str, Any]:
    """A ``--lineage`` string as an OpenLineage transport config dict (see :mod:`collectors.store.address`)."""
    return parse_address(spec)


def _env_value(raw: str) -> Any:
    """``OPENLINEAGE__`` values are JSON when they parse (auth objects, numbers), else text."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _from_env(environ: dict[str, str]) -> dict[str, Any] | None:
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return {"type": "none"}
    keys = {k[len(ENV_PREFIX):].lower(): _env_value(v) for k, v in environ.items() if k.startswith(ENV_PREFIX)}
    if keys.get("type"):
        config: dict[str, Any] = {}
        for key, value in keys.items():  # FOO__BAR nests like openlineage-python does
            parts = key.split("__")
            node = config
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        config["type"] = str(config["type"]).lower()
        return config
    if environ.get("OPENLINEAGE_URL"):
        config = {"type": "http", "url": environ["OPENLINEAGE_URL"]}
        if environ.get("OPENLINEAGE_ENDPOINT"):
            config["endpoint"] = environ["OPENLINEAGE_ENDPOINT"]
        if environ.get("OPENLINEAGE_API_KEY"):
            config["auth"] = {"type": "api_key", "apiKey": environ["OPENLINEAGE_API_KEY"]}
        return config
    return None


def find_config_file(environ: dict[str, str], cwd: Path) -> Path | None:
    """openlineage.yml in openlineage-python's order: $OPENLINEAGE_CONFIG, cwd, ~/.openlineage."""
    named = environ.get("OPENLINEAGE_CONFIG")
    if named:
        if not Path(named).is_file():
            raise LineageAuditError("OPENLINEAGE_CONFIG names a file that does not exist", file=named)
        return Path(named)
    for candidate in (cwd / "openlineage.yml", Path.home() / ".openlineage" / "openlineage.yml"):
        if candidate.is_file():
            return candidate
    return None


def _from_yaml(path: Path) -> dict[str, Any] | None:
    data = read_yaml(path, what="lineage config")[0] or {}
    transport = data.get("transport") if isinstance(data, dict) else None
    if transport is None:
        return None
    if not isinstance(transport, dict) or not transport.get("type"):
        raise LineageAuditError("`transport` needs a `type`", file=str(path))
    return {**transport, "type": str(transport["type"]).lower()}


def resolve_transport_config(
    lineage: str | None = None,
    *,
    environ: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, Any], str]:
    """The transport config that wins, and where it came from (``option``/``env``/file/``default``)."""
    environ = dict(os.environ if environ is None else environ)
    if lineage:
        return parse_spec(lineage), "option"
    from_env = _from_env(environ)
    if from_env:
        return from_env, "env"
    path = find_config_file(environ, Path(cwd or os.getcwd()))
    if path:
        from_file = _from_yaml(path)
        if from_file:
            return from_file, str(path)
    return {"type": "embedded"}, "default"


def transport_from_config(config: dict[str, Any], *, home: str | os.PathLike[str] | None = None) -> Transport:
    """Build the transport a config dict describes."""
    kind = str(config.get("type", "")).lower()
    if kind == "embedded":
        return EmbeddedTransport(config.get("path") or default_store_path(home))
    if kind == "postgresql":
        return PostgresTransport(config)
    if kind in ("http", "marquez"):
        if not config.get("url"):
            raise LineageAuditError(f"the {kind} transport needs a url")
        return HttpTransport(config, kind=kind)
    if kind == "file":
        path = config.get("log_file_path") or config.get("path")
        if not path:
            raise LineageAuditError("the file transport needs log_file_path")
        return FileTransport(path)
    if kind == "console":
        return ConsoleTransport()
    if kind in ("none", "noop"):
        return NoopTransport()
    raise LineageAuditError(f"unsupported OpenLineage transport type {kind!r}; supported: {', '.join(KINDS)}")


def emitter_from_config(
    lineage: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    cooldown: float | None = None,
) -> LineageEmitter:
    """The emitter for this process: option > env > openlineage.yml > embedded default.

    Raises LineageAuditError for a configuration that cannot work (unknown type, missing
    URL); delivery problems later never raise.
    """
    config, _source = resolve_transport_config(lineage)
    transport = transport_from_config(config, home=home)
    kwargs = {} if cooldown is None else {"cooldown": cooldown}
    return LineageEmitter(transport, Spool(default_spool_dir(home)), **kwargs)
