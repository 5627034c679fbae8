"""Hand-made OpenLineage RunEvents for the Marquez tests (valid per tests/olspec.py).

One small job, ``build_user_orders``, reads ``users`` and ``orders`` and writes
``user_orders`` with a schema and a columnLineage facet. Every test gets its own job
namespace and dataset namespace, so tests sharing one Marquez never see each other's data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

PRODUCER = "https://github.com/lineage-audit/lineage-audit/tests"
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
SCHEMA_URL = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
LINEAGE_URL = "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet"
ERROR_URL = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"

USERS = [("id", "INTEGER"), ("name", "TEXT"), ("email", "TEXT"), ("country", "TEXT")]
ORDERS = [("order_id", "INTEGER"), ("user_id", "INTEGER"), ("amount", "NUMERIC")]
USER_ORDERS = [("user_id", "INTEGER"), ("country", "TEXT"), ("order_count", "BIGINT"), ("revenue", "NUMERIC")]
# output column -> [(input table, input column, subtype)]
LINEAGE = {
    "user_id": [("users", "id", "IDENTITY")],
    "country": [("users", "country", "IDENTITY")],
    "order_count": [("orders", "order_id", "AGGREGATION")],
    "revenue": [("orders", "amount", "AGGREGATION")],
}


@dataclass(frozen=True)
class Scenario:
    """Names for one test's events: its own job namespace and warehouse namespace."""

    job_namespace: str
    ds_namespace: str
    job: str = "build_user_orders"

    @classmethod
    def fresh(cls) -> "Scenario":
        tag = uuid.uuid4().hex[:8]
        return cls(job_namespace=f"t-{tag}", ds_namespace=f"postgres://t{tag}:5432")

    def table(self, short: str) -> str:
        return {"users": "shop.public.users", "orders": "shop.public.orders", "user_orders": "shop.analytics.user_orders"}[short]

    def edges(self) -> set[tuple[str, str, str, str]]:
        """(input table, input column, output table, output column) the facet declares."""
        out = self.table("user_orders")
        return {(self.table(t), c, out, o) for o, ins in LINEAGE.items() for t, c, _ in ins}

    def run_events(self, *, fail: str | None = None, start: datetime | None = None) -> list[dict[str, Any]]:
        """START then COMPLETE (or FAIL with ``fail`` as the error message) of one new run."""
        run_id = str(uuid.uuid4())
        begin = start or datetime.now(timezone.utc)
        end_type = "FAIL" if fail else "COMPLETE"
        events = [self._event("START", run_id, begin), self._event(end_type, run_id, begin + timedelta(seconds=2))]
        if fail:
            events[1]["run"]["facets"]["errorMessage"] = {
                "_producer": PRODUCER, "_schemaURL": ERROR_URL,
                "message": fail, "programmingLanguage": "python",
            }
        return events

    def _event(self, event_type: str, run_id: str, when: datetime) -> dict[str, Any]:
        return {
            "eventType": event_type,
            "eventTime": when.isoformat().replace("+00:00", "Z"),
            "producer": PRODUCER,
            "schemaURL": SPEC,
            "run": {"runId": run_id, "facets": {}},
            "job": {"namespace": self.job_namespace, "name": self.job, "facets": {}},
            "inputs": [self._dataset("users", USERS), self._dataset("orders", ORDERS)],
            "outputs": [self._output()],
        }

    def _dataset(self, short: str, columns: list[tuple[str, str]]) -> dict[str, Any]:
        return {
            "namespace": self.ds_namespace,
            "name": self.table(short),
            "facets": {"schema": _schema(columns)},
        }

    def _output(self) -> dict[str, Any]:
        fields = {
            out: {
                "inputFields": [
                    {
                        "namespace": self.ds_namespace, "name": self.table(t), "field": c,
                        "transformations": [{"type": "DIRECT", "subtype": sub, "masking": False}],
                    }
                    for t, c, sub in ins
                ]
            }
            for out, ins in LINEAGE.items()
        }
        facet = {"_producer": PRODUCER, "_schemaURL": LINEAGE_URL, "fields": fields}
        data = self._dataset("user_orders", USER_ORDERS)
        data["facets"]["columnLineage"] = facet
        return data


def _schema(columns: list[tuple[str, str]]) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": SCHEMA_URL, "fields": [{"name": n, "type": t} for n, t in columns]}
