"""Read OpenLineage events back from whichever store lineage was written to.

The same ``SPEC`` strings as ``--lineage`` name a store to read: ``embedded[:PATH]`` (the
SQLite store), ``marquez:URL`` / ``http:URL`` / ``marquez://HOST:PORT`` (a Marquez server),
``file:PATH`` (NDJSON or JSON files, or a folder of them). Without a spec, the configured
lineage target is read (``--lineage`` > ``OPENLINEAGE__...`` env > openlineage.yml >
embedded), so ``lineage show`` looks where the pipelines wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collectors.emit.config import default_store_path, parse_spec, resolve_transport_config
from collectors.openlineage_json import iter_events
from lineage_auditor.errors import LineageAuditError


def _store_config(spec: str | None) -> dict[str, Any]:
    if spec and spec.startswith("marquez://"):
        return {"type": "marquez", "url": "http://" + spec[len("marquez://"):]}
    if spec:
        return parse_spec(spec)
    return resolve_transport_config(None)[0]


def describe_source(spec: str | None) -> str:
    """A readable name for the store a spec (or the configuration) points at."""
    config = _store_config(spec)
    kind = config["type"]
    if kind == "embedded":
        return f"embedded:{config.get('path') or default_store_path()}"
    if kind == "file":
        return f"file:{config.get('log_file_path') or config.get('path')}"
    return f"{kind}:{config.get('url', '')}"


def open_embedded(spec: str | None = None) -> Any:
    """The embedded store a spec (or the configuration) names, or None for other stores.

    Callers use it for queries only the embedded store can answer (latest runs, runs
    touching given datasets) and fall back to :func:`read_events` for the others.
    """
    config = _store_config(spec)
    if config["type"] != "embedded":
        return None
    path = Path(config.get("path") or default_store_path())
    if not path.exists():
        raise LineageAuditError("no embedded lineage store here yet (run a pipeline first)", file=str(path))
    from collectors.store.sqlite import EmbeddedStore

    return EmbeddedStore(path)


def read_events(spec: str | None = None) -> Iterator[dict[str, Any]]:
    """Every event in the named (or configured) store, oldest first."""
    config = _store_config(spec)
    kind = config["type"]
    if kind == "embedded":
        path = Path(config.get("path") or default_store_path())
        if not path.exists():
            raise LineageAuditError("no embedded lineage store here yet (run a pipeline first)", file=str(path))
        from collectors.store.sqlite import EmbeddedStore

        with EmbeddedStore(path) as store:
            yield from store.events()
        return
    if kind == "file":
        yield from iter_events(config.get("log_file_path") or config.get("path"))
        return
    if kind in ("marquez", "http"):
        yield from _marquez_events(config)
        return
    raise LineageAuditError(f"lineage written to {kind!r} cannot be read back; name a store with --store")


def _marquez_events(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    try:
        from collectors.marquez.client import MarquezClient
    except ImportError:  # pragma: no cover - the marquez collector ships with the product
        raise LineageAuditError("reading from Marquez needs collectors.marquez") from None
    auth = config.get("auth") if isinstance(config.get("auth"), dict) else {}
    client = MarquezClient(str(config["url"]), api_key=auth.get("apiKey") or auth.get("api_key"))
    try:
        yield from client.events()
    finally:
        client.close()
