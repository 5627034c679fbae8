"""Named connectors: reference-pipeline sources any spec can use as ``extract: {connector: NAME}``.

A connector is what SQL cannot say about a source (its API, its unit conversions, its
quarantine) kept in the step functions the hand-written pipelines use, behind one small
interface: the tables it writes (for the planner, so later steps can read them) and a run
that loads them and reports what it read and wrote, with the column lineage it declares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lineage_auditor.errors import ConfigError
from lineage_auditor.model import DatasetLineage, DatasetRef
from pipelines.runtime.targets import Target


@dataclass
class DatasetIO:
    """One dataset a step (or a connector inside it) read or wrote, with the facets it knows."""

    ref: DatasetRef
    schema: Sequence[tuple[str, ...]] | None = None
    lineage: DatasetLineage | None = None
    rows: int | None = None
    metrics: Any = None
    assertions: Any = None


@dataclass
class ConnectorResult:
    """What a connector run read and wrote; ``rows`` per table it loaded, ``rejected`` the records
    it set aside (quarantined or dead-lettered) instead."""

    inputs: list[DatasetIO] = field(default_factory=list)
    outputs: list[DatasetIO] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    requests: int = 0  # made to the source, retries included
    retries: int = 0


class Connector(Protocol):
    name: str

    def tables(self, into: str, options: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
        """The tables a run writes, each with its (column, SQL type) list."""
        ...

    def run(self, into: str, options: Mapping[str, Any], *, day: date, target: Target, run_id: str,
            offline: bool = False) -> ConnectorResult:
        """Load ``into`` for ``day``; ``offline``: replay recorded responses instead of the live source."""
        ...


class _OpenMeteoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    locations: list[dict[str, Any]] = Field(min_length=1)
    base_url: str = ""
    offline: bool = False
    quarantine: str = ""
    timeout_s: float = Field(10.0, gt=0)


class OpenMeteo:
    """Hourly Open-Meteo readings for the spec's locations: converted, range-checked, upserted.

    Options: ``locations`` (name, latitude, longitude), ``base_url`` (a stand-in for the API),
    ``offline`` (replay recorded responses from a local server), ``quarantine`` (the table for
    impossible readings; default: ``<into>_quarantine``), ``timeout_s``.
    """

    name = "open_meteo"

    def _options(self, options: Mapping[str, Any]) -> _OpenMeteoOptions:
        try:
            return _OpenMeteoOptions.model_validate(dict(options))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"connector open_meteo: options.{where}: {first['msg']}") from None

    def tables(self, into: str, options: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
        from pipelines.runtime.coltypes import spelled

        return {t.name: [(c.name, spelled(c.type)) for c in t.columns] for t in self._tables(into, self._options(options))}

    @staticmethod
    def _tables(into: str, opts: _OpenMeteoOptions) -> tuple[Any, Any]:
        """The readings table and its quarantine, named as the spec says."""
        from pipelines.weather import transform as tx

        return tx.HOURLY_TABLE.renamed(into), tx.QUARANTINE_TABLE.renamed(opts.quarantine or f"{into}_quarantine")

    def run(self, into: str, options: Mapping[str, Any], *, day: date, target: Target, run_id: str,
            offline: bool = False) -> ConnectorResult:
        from pipelines.runtime.naming import http_dataset
        from pipelines.runtime.quality import assertions_facet, metrics_facet
        from pipelines.sources.open_meteo import DEFAULT_BASE_URL, FORECAST_PATH, Location, fetch_hourly
        from pipelines.sources.resilience import CallStats, RetryPolicy
        from pipelines.weather import transform as tx

        opts = self._options(options)
        try:
            locations = [Location(str(loc["name"]), float(loc["latitude"]), float(loc["longitude"])) for loc in opts.locations]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"connector open_meteo: a location needs name, latitude and longitude ({exc})") from None
        hourly, quarantine = self._tables(into, opts)
        # the dataset keeps the name of the API a stand-in or a replay serves for, as the pipeline's does
        source = http_dataset(DEFAULT_BASE_URL.rstrip("/") + FORECAST_PATH)
        policy, calls = RetryPolicy(timeout=opts.timeout_s, deadline=6 * opts.timeout_s), CallStats()
        if (opts.offline or offline) and not opts.base_url:
            from pipelines.sources.replay_server import ReplayServer

            with ReplayServer() as server:
                responses = fetch_hourly(locations, day, base_url=server.url, policy=policy, stats=calls)
        else:
            responses = fetch_hourly(locations, day, base_url=opts.base_url or DEFAULT_BASE_URL, policy=policy, stats=calls)
        result = tx.transform(responses, run_id)
        loaded, held = target.upsert_many([(hourly, result.rows), (quarantine, result.quarantined)])
        hourly_ref, quarantine_ref = target.dataset(hourly.name), target.dataset(quarantine.name)
        return ConnectorResult(
            inputs=[DatasetIO(source, schema=list(tx.SOURCE_FIELDS),
                                metrics=metrics_facet(result.records, [name for name, _ in tx.SOURCE_FIELDS]),
                                assertions=assertions_facet(result.checks))],
            outputs=[DatasetIO(hourly_ref, schema=target.schema_fields(hourly), rows=loaded.rows,
                                 lineage=tx.hourly_lineage(source, hourly_ref)),
                     DatasetIO(quarantine_ref, schema=target.schema_fields(quarantine), rows=held.rows,
                                 lineage=tx.quarantine_lineage(source, quarantine_ref))],
            rows={hourly.name: loaded.rows}, rejected=held.rows, requests=calls.requests, retries=calls.retries,
        )


CONNECTORS: dict[str, Callable[[], Connector]] = {"open_meteo": OpenMeteo}


def connector(name: str) -> Connector:
    """The connector called ``name``; ConfigError lists the known ones."""
    factory = CONNECTORS.get(name)
    if factory is None:
        raise ConfigError(f"no connector named {name!r} (known: {', '.join(sorted(CONNECTORS))})")
    return factory()
