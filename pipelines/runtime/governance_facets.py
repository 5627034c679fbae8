"""Run facets of ours that governance writes: who ran a run for which team, and what it cost.

``lineageAudit_runBy`` is on every run of a pipeline (the pipeline's and each step's: a step
runs as its pipeline runs); ``lineageAudit_cost`` is on each step's run only, so summing the
cost of every run never counts a pipeline twice. Their JSON schemas are published beside the
other custom facets (``pipelines/runtime/facets/``); other runners (an Airflow operator) build
the same objects, so the figures live with the lineage in any store.
"""

from __future__ import annotations

from typing import Any

import attr
from openlineage.client.facet_v2 import RunFacet

from lineage_auditor.governance import COST_FACET, RUN_BY_FACET
from pipelines.runtime.events import FACET_SCHEMAS


@attr.define
class RunByRunFacet(RunFacet):
    """Who ran the run (``--as``, ``$LINEAGE_AUDIT_USER`` or the OS user) and the team it belongs to.

    ``policy`` is the governance policy file in force (None: none was); ``approvals`` are the
    spec's approvals the run relied on (to read a restricted tag, to write an AI dataset), so
    an audit can tell an approval that has expired since from a read nobody approved.
    """

    runBy: str  # noqa: N815
    team: str
    identitySource: str  # noqa: N815
    policy: str | None = attr.field(default=None)
    approvals: list[dict[str, Any]] | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMAS}/RunByRunFacet.json#/$defs/RunByRunFacet"


@attr.define
class CostRunFacet(RunFacet):
    """What one step cost: process time, what the warehouse read and wrote, and the money.

    ``cpuSeconds`` is the runner process's user + system CPU (``getrusage``: all its threads,
    so an embedded DuckDB's work is in it; a PostgreSQL server's is not, that is in
    ``warehouseSeconds``). Rows and bytes read are what the warehouse reports scanning
    (``measuredBy`` says how); ``amount`` prices them with the policy's cost model (None
    without one).
    """

    wallSeconds: float  # noqa: N815
    cpuSeconds: float  # noqa: N815
    engine: str
    measuredBy: str  # noqa: N815
    statements: int = attr.field(default=0)
    rowsRead: int | None = attr.field(default=None)  # noqa: N815
    bytesRead: int | None = attr.field(default=None)  # noqa: N815
    rowsWritten: int | None = attr.field(default=None)  # noqa: N815
    bytesWritten: int | None = attr.field(default=None)  # noqa: N815
    warehouseSeconds: float | None = attr.field(default=None)  # noqa: N815
    amount: float | None = attr.field(default=None)
    currency: str | None = attr.field(default=None)
    breakdown: dict[str, float] | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return f"{FACET_SCHEMAS}/CostRunFacet.json#/$defs/CostRunFacet"


__all__ = ["COST_FACET", "CostRunFacet", "RUN_BY_FACET", "RunByRunFacet"]
