"""The users-orders pipeline: users API + orders CSV → staging → SQL → ``analytics.user_orders``.

Steps (each a child run of the pipeline run, each with its own START/COMPLETE or FAIL):

1. ``extract_users``: every page of the users API through the resilient client; invalid
   records and unreadable pages go to the dead-letter file; ``staging.users`` is replaced.
2. ``extract_orders``: the orders CSV through the validating reader (bad rows dead-lettered
   with their line numbers); ``staging.orders`` is replaced.
3. ``build_user_orders``: ``sql/user_orders.sql`` transpiled to the warehouse's dialect
   builds the new table, swapped in within one transaction. Its column lineage comes from
   our SQL engine.

When the users API stays down past the client's deadline the run fails cleanly, or, with
``on_source_failure: use_last_snapshot``, builds from the users snapshot already in
``staging.users`` if it is younger than ``max_staleness`` and marks the run degraded (a
``lineageAudit_degraded`` run facet). Either way ``analytics.user_orders`` is never half-written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from lineage_auditor.durations import display_duration
from lineage_auditor.errors import LineageAuditError
from lineage_auditor.model import DatasetRef
from pipelines.runtime.events import DEGRADED_FACET, STATS_FACET, DegradedRunFacet, RunContext, RunStatsRunFacet, iso
from pipelines.runtime.naming import file_dataset, http_dataset, public_url
from pipelines.runtime.quality import assertions_facet, frame_metrics_facet, metrics_facet
from pipelines.runtime.run import Environment, Progress, RunSummary, quiet, pipeline_job, step_job, summarize
from pipelines.runtime.spec import UsersOrdersSpec
from pipelines.sources.dead_letter import DeadLetterWriter
from pipelines.sources.errors import SourceUnavailable
from pipelines.sources.orders_csv import read_orders
from pipelines.sources.resilience import RetryPolicy
from pipelines.sources.users_client import UsersClient
from pipelines.users_orders import extract as ex
from pipelines.users_orders.transpile import load_model

MODEL = "user_orders"


#: The bundled mock users API's lineage namespace: it listens on a port picked per run, and
#: a namespace with that port would make every run's users a new dataset.
MOCK_USERS_NAMESPACE = "http://mock-users-api"


@dataclass
class UsersApi:
    """Where the users come from for one run (the token is a secret: never printed).

    ``dataset_namespace`` is the users dataset's lineage namespace: the spec's, else the
    configured URL's ``scheme://host[:port]``, else ``MOCK_USERS_NAMESPACE``; never the
    ephemeral address of a server started for the run.
    """

    url: str
    token: str | None = field(default=None, repr=False)
    mock: bool = False
    dataset_namespace: str | None = None

    @property
    def dataset(self) -> DatasetRef:
        return http_dataset(f"{self.url}/users", namespace=self.dataset_namespace)


@contextlib.contextmanager
def users_api(spec: UsersOrdersSpec, *, api_url: str | None = None, api_token: str | None = None) -> Iterator[UsersApi]:
    """The users API for a run: the given URL (token from the option or ``token_env``), or the
    bundled mock API started on 127.0.0.1 for the life of the block."""
    url = api_url or spec.source.users.api_url
    namespace = spec.source.users.dataset_namespace
    if url:
        yield UsersApi(url.rstrip("/"), api_token or os.environ.get(spec.source.users.token_env) or None,
                       dataset_namespace=namespace)
        return
    from pipelines.sources.mock_api import MockApiServer

    with MockApiServer() as server:
        yield UsersApi(server.url, api_token or server.token, mock=True,
                       dataset_namespace=namespace or MOCK_USERS_NAMESPACE)


def run_users_orders(
    spec: UsersOrdersSpec,
    env: Environment,
    *,
    api_url: str | None = None,
    api_token: str | None = None,
    orders_path: str | Path | None = None,
    policy: RetryPolicy | None = None,
    progress: Progress = quiet,
) -> RunSummary:
    """One run of the pipeline (see the module doc); never raises for a failed run, the summary says so."""
    with users_api(spec, api_url=api_url, api_token=api_token) as api:
        env.events.add_secret(api.token)
        return _run(spec, env, api, Path(orders_path) if orders_path else spec.resolve(spec.source.orders.path),
                    policy or spec.source.users.retry_policy(), progress)


def _run(spec: UsersOrdersSpec, env: Environment, api: UsersApi, orders: Path, policy: RetryPolicy,
         progress: Progress) -> RunSummary:
    first_event = len(env.events.events)
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    run = RunContext(env.events, pipeline_job(spec, __file__), nominal=(hour, hour + timedelta(hours=1)))
    dead_letter_path = env.home / "dead_letter" / f"{spec.name}-{run.run_id}.jsonl"
    counts: dict[str, int] = {}
    degraded = False
    dead_letter = DeadLetterWriter(dead_letter_path, source=spec.name)
    try:
        with contextlib.suppress(Exception), run:
            progress("users-orders: users API")
            degraded = not _extract_users(spec, env, run, api, policy, dead_letter, counts)
            progress("users-orders: orders CSV")
            _extract_orders(spec, env, run, orders, dead_letter, counts)
            progress("users-orders: build analytics.user_orders")
            _build(spec, env, run, counts)
    finally:
        dead_letter.close()
    counts["dead_letters"] = dead_letter.count
    with contextlib.suppress(OSError):
        if dead_letter_path.stat().st_size == 0:
            dead_letter_path.unlink()
    return summarize(
        run, env, first_event=first_event, counts=counts, degraded=degraded,
        dead_letter_file=str(dead_letter_path) if dead_letter_path.exists() else None,
    )


def _extract_users(spec: UsersOrdersSpec, env: Environment, run: RunContext, api: UsersApi,
                   policy: RetryPolicy, dead_letter: DeadLetterWriter, counts: dict[str, int]) -> bool:
    """Fetch and stage the users; False when the run is degraded (pages skipped, or the last
    snapshot used because the API stayed down)."""
    source = api.dataset
    staged = env.target.dataset(ex.USERS_TABLE.name)
    step = run.child(step_job(
        spec, "extract_users",
        "Read every page of the users API (retries, circuit breaker, per-record validation) into staging.users.",
        ex.__file__,
    ))
    step.add_input(source, schema=[(api_name, kind) for _, api_name, kind in ex.USER_FIELDS])
    step.add_output(staged, schema=env.target.schema_fields(ex.USERS_TABLE), lineage=ex.users_lineage(source, staged))
    try:
        with step, UsersClient(api.url, token=api.token, per_page=spec.source.users.per_page, policy=policy,
                               dead_letter=dead_letter) as client:
            result = client.fetch_all()
            fetched_at = datetime.now(timezone.utc)
            rows = ex.user_rows(result.users, fetched_at, step.run_id)
            complete = not result.skipped_pages
            # A page that could not be read must not delete its users: merge instead of replace.
            loaded = env.target.replace(ex.USERS_TABLE, rows) if complete else env.target.upsert(ex.USERS_TABLE, rows)
            step.add_input(source, metrics=metrics_facet(ex.user_records(result.users), [n for _, n, _ in ex.USER_FIELDS]),
                           assertions=assertions_facet(ex.users_checks(result)))
            step.add_output(staged, rows=loaded.rows)
            stats = {"users": len(result.users), "pages": result.pages, "requests": result.requests,
                     "retries": result.retries, "invalid_records": result.invalid_records,
                     "duplicate_records": result.duplicate_records, "skipped_pages": len(result.skipped_pages)}
            step.add_run_facet(STATS_FACET, RunStatsRunFacet(counts=stats))
            counts.update(users=len(result.users), api_requests=result.requests, api_retries=result.retries)
            if not complete:
                pages = sorted(result.skipped_pages)
                run.add_run_facet(DEGRADED_FACET, DegradedRunFacet(
                    reason=f"{len(pages)} page(s) of the users API could not be read (dead-lettered); "
                           "users from earlier snapshots were kept for them",
                    source=public_url(api.url), skippedPages=pages,
                ))
            return complete
    except SourceUnavailable as exc:
        if spec.on_source_failure != "use_last_snapshot":
            raise
        return _fall_back(spec, env, run, exc, public_url(api.url), counts)


def _fall_back(spec: UsersOrdersSpec, env: Environment, run: RunContext, exc: SourceUnavailable, url: str,
               counts: dict[str, int]) -> bool:
    """Use the users snapshot in the warehouse if it is fresh enough; else fail the run."""
    snapshot = ex.last_snapshot(env.target)
    limit = spec.max_staleness
    if snapshot is None:
        raise LineageAuditError(f"{exc}; no users snapshot to fall back on") from exc
    taken_at, rows = snapshot
    age = datetime.now(timezone.utc) - taken_at
    if age > limit:
        raise LineageAuditError(
            f"{exc}; the last users snapshot ({iso(taken_at)}) is {display_duration(age)} old, older than max_staleness {display_duration(limit)}"
        ) from exc
    run.add_run_facet(DEGRADED_FACET, DegradedRunFacet(
        reason=env.events.redact(str(exc)), source=url, snapshotTakenAt=iso(taken_at),
        snapshotAgeSeconds=round(age.total_seconds(), 3), maxStalenessSeconds=limit.total_seconds(),
    ))
    counts.update(users=rows, users_from_snapshot=rows)
    return False


def _extract_orders(spec: UsersOrdersSpec, env: Environment, run: RunContext, path: Path,
                    dead_letter: DeadLetterWriter, counts: dict[str, int]) -> None:
    source = file_dataset(path)
    staged = env.target.dataset(ex.ORDERS_TABLE.name)
    step = run.child(step_job(
        spec, "extract_orders",
        "Read the orders CSV, validate every row (bad rows dead-lettered with their line numbers) into staging.orders.",
        ex.__file__,
    ))
    step.add_input(source, schema=ex.ORDER_FIELDS)
    step.add_output(staged, schema=env.target.schema_fields(ex.ORDERS_TABLE), lineage=ex.orders_lineage(source, staged))
    with step:
        if not path.is_file():
            raise LineageAuditError("orders file not found", file=str(path))
        frame, stats = read_orders(path, dead_letter, target=ex.ORDERS_TABLE)
        loaded = env.target.replace(ex.ORDERS_TABLE, frame)
        metrics = frame_metrics_facet(frame)
        step.add_input(source, metrics=metrics, assertions=assertions_facet(ex.orders_checks(stats)))
        step.add_output(staged, rows=loaded.rows)
        step.add_run_facet(STATS_FACET, RunStatsRunFacet(counts={
            "rows_read": stats.rows_read, "rows_valid": stats.rows_valid, "rows_rejected": stats.rows_rejected}))
        counts.update(orders=stats.rows_valid, orders_rejected=stats.rows_rejected)


def _build(spec: UsersOrdersSpec, env: Environment, run: RunContext, counts: dict[str, int]) -> None:
    model = load_model(MODEL)
    dialect = env.target.dialect
    step = run.child(step_job(
        spec, f"build_{MODEL}", f"Build {model.target} from the staging tables ({model.path.name}), swap it in atomically.",
        str(model.path), sql=model.sql(dialect), dialect=dialect,
    ))
    users, orders, output = (env.target.dataset(n) for n in (ex.USERS_TABLE.name, ex.ORDERS_TABLE.name, model.target))
    step.add_input(users, schema=env.target.schema_fields(ex.USERS_TABLE))
    step.add_input(orders, schema=env.target.schema_fields(ex.ORDERS_TABLE))
    step.add_output(output, lineage=model.lineage(sql_schema(env), env.target.dataset))
    with step:
        built = env.target.replace_from_sql(model.target, model.select_sql(dialect))
        step.add_output(output, schema=env.target.columns(model.target), rows=built.rows)
        counts["user_orders_rows"] = built.rows


def sql_schema(env: Environment) -> dict[str, Any]:
    """The staging tables as the SQL engine's schema (``{schema: {table: {column: type}}}``)."""
    schema: dict[str, Any] = {}
    for table in (ex.USERS_TABLE, ex.ORDERS_TABLE):
        schema.setdefault(table.schema, {})[table.name.split(".", 1)[1]] = {
            c.name: env.target.sql_type(c) for c in table.columns
        }
    return schema
