"""A plan as a lineage graph: each step a job, with the tables it reads and writes and its SQL's
column lineage, so the existing graph view draws a pipeline before it has ever run."""

from __future__ import annotations

from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import JobRef, dataset_ref
from pipelines.dsl.listing import JOB_NAMESPACE
from pipelines.dsl.plan import Plan


def plan_graph(plan: Plan) -> LineageGraph:
    graph = LineageGraph()
    for step in plan.steps:
        job = JobRef(JOB_NAMESPACE, f"{plan.pipeline.id}.{step.id}")
        graph.add_job(job, sql=step.sql or "", owners=[{"name": o.name, "type": o.type} for o in plan.pipeline.owners])
        graph.add_io(job, [dataset_ref(plan.namespace, t) for t in step.reads],
                     [dataset_ref(plan.namespace, t) for t in step.writes])
        for lineage in step.lineage:
            graph.add_dataset_lineage(job, lineage)
    return graph
