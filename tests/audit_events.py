"""Hand-built OpenLineage events for the auditor's tests: a small shop feeding a churn model.

``sql_job_events`` builds a job's START/COMPLETE pair the way the pipelines do: the
reported ``columnLineage`` comes from our SQL engine, so a test that wants a wrong report
edits the facet afterwards.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from lineage_auditor.facets import PRODUCER, column_lineage_facet
from lineage_auditor.sql import analyze_sql

NS = "duckdb:///data/warehouse.duckdb"
JOB_NS = "shop"
T0 = datetime(2024, 6, 1, 2, 0, tzinfo=timezone.utc)
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"

USERS = {"user_id": "BIGINT", "name": "TEXT", "email": "TEXT", "country": "TEXT"}
ORDERS = {"order_id": "BIGINT", "user_id": "BIGINT", "amount": "DECIMAL(14,2)", "status": "TEXT"}
WEATHER = {"country": "TEXT", "temperature_c": "DOUBLE"}

# The audit config the shop's tests share: one AI dataset, two tagged source columns.
SHOP_CONFIG = """
ai_datasets:
  - name: features.churn
    owner: team:ml
    purpose: predict churn
    consumers: [churn-model]
tags:
  - {column: raw.users.email, tags: [pii.email]}
  - {column: raw.users.name, tags: [pii.name]}
"""

FEATURES_SQL = """
CREATE TABLE features.churn AS
SELECT u.user_id,
       u.email AS contact,
       md5(u.name) AS name_key,
       COUNT(o.order_id) AS n_orders,
       SUM(o.amount) AS revenue
FROM raw.users AS u
JOIN raw.orders AS o ON o.user_id = u.user_id
WHERE o.status <> 'cancelled'
GROUP BY u.user_id, u.email, u.name
"""


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def schema(columns: dict[str, str]) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json",
            "fields": [{"name": n, "type": t} for n, t in columns.items()]}


def dataset(name: str, columns: dict[str, str] | None = None, **facets: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"namespace": NS, "name": f"warehouse.{name}", "facets": dict(facets)}
    if columns:
        out["facets"]["schema"] = schema(columns)
    return out


def field_tags(tags: dict[str, str]) -> dict[str, Any]:
    """An OpenLineage ``tags`` dataset facet tagging fields: {field: "pii.email"}."""
    return {"_producer": PRODUCER, "_schemaURL": "https://openlineage.io/spec/facets/1-0-0/TagsDatasetFacet.json",
            "tags": [{"key": value, "value": "true", "source": "MANUAL", "field": name} for name, value in tags.items()]}


def run_events(
    job: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]], *, at: datetime = T0,
    sql: str | None = None, state: str = "COMPLETE", owners: bool = True, duration: timedelta = timedelta(minutes=2),
) -> list[dict[str, Any]]:
    """START + COMPLETE (or FAIL) of one run."""
    run_id = str(uuid.uuid4())
    job_facets: dict[str, Any] = {}
    if owners:
        job_facets["ownership"] = {"_producer": PRODUCER, "_schemaURL": "x", "owners": [{"name": "team:ml", "type": "MAINTAINER"}]}
        job_facets["documentation"] = {"_producer": PRODUCER, "_schemaURL": "x", "description": f"builds {job}"}
    if sql:
        job_facets["sql"] = {"_producer": PRODUCER, "_schemaURL": "x", "query": sql, "dialect": "duckdb"}

    def one(kind: str, when: datetime) -> dict[str, Any]:
        return {
            "eventType": kind, "eventTime": iso(when), "producer": PRODUCER, "schemaURL": SCHEMA_URL,
            "run": {"runId": run_id, "facets": {}},
            "job": {"namespace": JOB_NS, "name": job, "facets": copy.deepcopy(job_facets)},
            "inputs": copy.deepcopy(inputs), "outputs": copy.deepcopy(outputs),
        }

    return [one("START", at), one(state, at + duration)]


def sql_job_events(job: str, sql: str, tables: dict[str, dict[str, str]], *, at: datetime = T0,
                   input_facets: dict[str, dict[str, Any]] | None = None, rows: int | None = None,
                   output_types: dict[str, str] | None = None, **kw: Any) -> list[dict[str, Any]]:
    """A SQL job's run whose reported column lineage is what our engine derives from ``sql``."""
    schema_map = {f"warehouse.{t}": cols for t, cols in tables.items()}
    result = analyze_sql(sql, dialect="duckdb", schema=schema_map, namespace=NS)
    stmt = result.statements[0]
    inputs = [dataset(d.name.removeprefix("warehouse."), tables.get(d.name.removeprefix("warehouse.")),
                      **((input_facets or {}).get(d.name.removeprefix("warehouse."), {})))
              for d in stmt.inputs]
    outputs = []
    for lineage in stmt.outputs:
        cols = {f.name: (output_types or {}).get(f.name) or f.type or "TEXT" for f in lineage.fields}
        name = lineage.dataset.name if lineage.dataset.name.startswith("warehouse.") else f"warehouse.{lineage.dataset.name}"
        out = {"namespace": lineage.dataset.namespace, "name": name,
               "facets": {"schema": schema(cols), "columnLineage": column_lineage_facet(lineage)}}
        if rows is not None:
            out["outputFacets"] = {"outputStatistics": {"_producer": PRODUCER, "_schemaURL": "x", "rowCount": rows}}
        outputs.append(out)
    return run_events(job, inputs, outputs, at=at, sql=sql, **kw)


def shop_events(*, at: datetime = T0, sql: str = FEATURES_SQL, tag_email_in_store: bool = False, rows: int = 1000) -> list[dict[str, Any]]:
    """Loads of the raw tables, then the churn feature job."""
    users_facets = {"tags": field_tags({"email": "pii.email"})} if tag_email_in_store else {}
    events = run_events("load_users", [], [dataset("raw.users", USERS, **users_facets)], at=at - timedelta(hours=1))
    events += run_events("load_orders", [], [dataset("raw.orders", ORDERS)], at=at - timedelta(hours=1))
    events += sql_job_events("build_churn", sql, {"raw.users": USERS, "raw.orders": ORDERS, "raw.weather": WEATHER},
                             at=at, rows=rows)
    return events
