"""Dataset names for the pipelines' sources and targets, per the OpenLineage naming spec.

| kind | namespace | name |
|---|---|---|
| PostgreSQL table | ``postgres://{host}:{port}`` | ``{database}.{schema}.{table}`` |
| DuckDB table | ``duckdb://{absolute path of the database file}`` | ``{catalog}.{schema}.{table}`` (catalog = file stem, as DuckDB names it) |
| local file (CSV) | ``file`` | ``{absolute path}`` (together: the ``file://`` URL) |
| HTTP API | ``{scheme}://{host}[:{port}]``, or a logical namespace from the spec | ``{path}`` without its leading ``/`` |

The spec has no entry for DuckDB; the scheme above keeps two DuckDB files apart (their
paths differ) and reads like DuckDB's own three-part names. Names are built only from
host, port, path and table, so a DSN password or an API token can never end up in one.

A dataset's identity must survive from run to run (lineage and drift compare datasets by
it), so a source reached on a port picked at run time (the bundled mock users API) is named
by a logical namespace instead of its URL. An HTTP name drops the path's leading slash:
consumers join ``namespace/name``, and ``http://host//users`` is not the resource.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from openlineage.client.naming.dataset import LocalFileSystem, Postgres

from lineage_auditor.model import DatasetRef


def postgres_dataset(host: str, port: int | str, database: str, table: str) -> DatasetRef:
    """A PostgreSQL table ``schema.table`` in ``database`` on ``host:port``."""
    schema, _, name = table.rpartition(".")
    naming = Postgres(host=host, port=str(port), database=database, schema=schema or "public", table=name)
    return DatasetRef(naming.get_namespace(), naming.get_name())


def duckdb_dataset(path: str | Path, table: str) -> DatasetRef:
    """A DuckDB table ``schema.table`` in the database file at ``path``."""
    file = Path(path).resolve()
    schema, _, name = table.rpartition(".")
    return DatasetRef(f"duckdb://{file.as_posix()}", f"{file.stem}.{schema or 'main'}.{name}")


def file_dataset(path: str | Path) -> DatasetRef:
    """A local file, by its absolute path."""
    naming = LocalFileSystem(path=Path(path).resolve().as_posix())
    return DatasetRef(naming.get_namespace(), naming.get_name())


def http_dataset(url: str, *, namespace: str | None = None) -> DatasetRef:
    """An HTTP resource: namespace ``scheme://host[:port]`` (or ``namespace``, a logical one
    that stays the same across runs), name the path without its leading slash (no query, no
    userinfo)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    authority = f"{host}:{parts.port}" if parts.port else host
    return DatasetRef(namespace or f"{parts.scheme}://{authority}", parts.path.lstrip("/") or "/")


def public_url(url: str) -> str:
    """A URL safe to record: userinfo (``user:password@``) removed, everything else kept."""
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()
