"""The daily weather pipeline: Open-Meteo → convert and validate → upsert into the warehouse.

One pipeline run per day (its nominal time is that UTC day), with one step,
``weather.load_hourly``, that fetches every configured location, transforms the readings
and upserts ``weather.hourly`` and ``weather.hourly_quarantine`` in one transaction keyed on
(location, observed_at). Re-running a day leaves the tables exactly as they were.

``offline=True`` starts the local replay server (recorded Open-Meteo responses) and fetches
from it; the input dataset keeps the name of the API it stands in for, so lineage from an
offline run and a live run lines up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone

from pipelines.runtime.events import RunContext
from pipelines.runtime.naming import http_dataset
from pipelines.runtime.quality import assertions_facet, metrics_facet
from pipelines.runtime.run import Environment, Progress, RunSummary, quiet, pipeline_job, step_job, summarize
from pipelines.runtime.spec import WeatherSpec
from pipelines.runtime.targets import Table
from pipelines.sources.open_meteo import FORECAST_PATH, Location, fetch_hourly
from pipelines.sources.resilience import RetryPolicy
from pipelines.weather import transform as tx

log = logging.getLogger(__name__)


def days_between(start: date, end: date) -> list[date]:
    """Every day from ``start`` through ``end``."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def recorded_days() -> list[date]:
    """The days the replay server has recordings for (the offline default)."""
    from pipelines.sources.replay_server import load_fixtures

    fixtures = load_fixtures()
    if not fixtures:
        return []
    return days_between(min(f.start_date for f in fixtures), max(f.end_date for f in fixtures))


@contextlib.contextmanager
def weather_api(spec: WeatherSpec, *, offline: bool, base_url: str | None = None) -> Iterator[str]:
    """The base URL to fetch from: ``base_url``, the spec's, or a replay server's for the life of the block."""
    if base_url or not offline:
        yield base_url or spec.source.base_url
        return
    from pipelines.sources.replay_server import ReplayServer

    with ReplayServer() as server:
        yield server.url


def run_weather(
    spec: WeatherSpec,
    env: Environment,
    days: list[date],
    *,
    offline: bool = False,
    base_url: str | None = None,
    policy: RetryPolicy | None = None,
    progress: Progress = quiet,
) -> list[RunSummary]:
    """Run the pipeline for each day in order; one summary per day (a failed day does not stop the rest).

    ``base_url`` fetches from a stand-in for the API (a proxy or a replay server you run);
    the input dataset keeps the spec's name either way. ``policy`` overrides the retry policy.
    """
    summaries = []
    with weather_api(spec, offline=offline, base_url=base_url) as url:
        for day in days:
            progress(f"weather {day.isoformat()}")
            summaries.append(run_weather_day(spec, env, day, base_url=url, policy=policy))
    return summaries


def _tables(spec: WeatherSpec) -> tuple[Table, Table]:
    return tx.HOURLY_TABLE.renamed(spec.target.table), tx.QUARANTINE_TABLE.renamed(spec.target.quarantine_table)


def default_policy(spec: WeatherSpec) -> RetryPolicy:
    """Retries for one day's fetch: the spec's per-request timeout, a total deadline of six of them."""
    return RetryPolicy(timeout=spec.source.timeout_s, deadline=6 * spec.source.timeout_s)


def run_weather_day(spec: WeatherSpec, env: Environment, day: date, *, base_url: str,
                    policy: RetryPolicy | None = None) -> RunSummary:
    """One day: START/COMPLETE (or FAIL) for the pipeline and its load step."""
    start = datetime.combine(day, time(0), tzinfo=timezone.utc)
    first_event = len(env.events.events)
    run = RunContext(env.events, pipeline_job(spec, __file__), nominal=(start, start + timedelta(days=1)))
    step = run.child(step_job(
        spec, "load_hourly",
        "Fetch hourly readings for every location, convert units, quarantine impossible readings, "
        "upsert into the warehouse keyed on (location, observed_at).",
        tx.__file__,
    ))
    hourly, quarantine = _tables(spec)
    source = http_dataset(spec.source.base_url.rstrip("/") + FORECAST_PATH)
    hourly_ref, quarantine_ref = env.target.dataset(hourly.name), env.target.dataset(quarantine.name)
    step.add_input(source, schema=tx.SOURCE_FIELDS)
    step.add_output(hourly_ref, schema=env.target.schema_fields(hourly), lineage=tx.hourly_lineage(source, hourly_ref))
    step.add_output(quarantine_ref, schema=env.target.schema_fields(quarantine), lineage=tx.quarantine_lineage(source, quarantine_ref))
    counts: dict[str, int] = {}
    with contextlib.suppress(Exception), run:
        with step:
            locations = [Location(loc.name, loc.latitude, loc.longitude) for loc in spec.locations]
            responses = fetch_hourly(locations, day, base_url=base_url, policy=policy or default_policy(spec))
            result = tx.transform(responses, step.run_id)
            loaded, held = env.target.upsert_many([(hourly, result.rows), (quarantine, result.quarantined)])
            counts = {
                "rows_read": len(result.records), "rows_loaded": loaded.rows, "rows_changed": loaded.written,
                "rows_in_table": loaded.total, "quarantined": held.rows,
            }
            step.add_input(
                source,
                metrics=metrics_facet(result.records, [name for name, _ in tx.SOURCE_FIELDS]),
                assertions=assertions_facet(result.checks),
            )
            step.add_output(hourly_ref, rows=loaded.rows)
            step.add_output(quarantine_ref, rows=held.rows)
    if run.state == "FAIL":
        log.debug("weather %s failed: %s", day, run.error)
    return summarize(run, env, first_event=first_event, counts=counts)
