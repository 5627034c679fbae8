"""A realistic OpenLineage run, built with openlineage-python's ``event_v2``/``facet_v2``.

It shows every facet the reference pipelines emit, under the keys the spec uses (``version``
for the dataset version, ``processing_engine``, data quality as *input* facets), and serves
the emit benchmark, the tests and anyone writing a new pipeline step as a template.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    dataset_version_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    ownership_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
    source_code_location_job,
    sql_job,
)
from openlineage.client.uuid import generate_new_uuid

from lineage_auditor.facets import PRODUCER

NAMESPACE = "lineage-audit"
WAREHOUSE = "postgres://127.0.0.1:5432"
SQL = (
    "INSERT INTO analytics.user_orders\n"
    "SELECT u.id AS user_id, u.country, COUNT(o.order_id) AS order_count, SUM(o.amount) AS revenue\n"
    "FROM staging.users AS u JOIN staging.orders AS o ON o.user_id = u.id\nGROUP BY u.id, u.country"
)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _input_field(name: str, field: str, subtype: str, kind: str = "DIRECT") -> column_lineage_dataset.InputField:
    return column_lineage_dataset.InputField(
        namespace=WAREHOUSE,
        name=f"warehouse.staging.{name}",
        field=field,
        transformations=[column_lineage_dataset.Transformation(type=kind, subtype=subtype, masking=False)],
    )


def _column_lineage() -> column_lineage_dataset.ColumnLineageDatasetFacet:
    join_key = [_input_field("users", "id", "JOIN", "INDIRECT"), _input_field("orders", "user_id", "JOIN", "INDIRECT")]
    fields = {
        "user_id": [_input_field("users", "id", "IDENTITY")],
        "country": [_input_field("users", "country", "IDENTITY")],
        "order_count": [_input_field("orders", "order_id", "AGGREGATION")],
        "revenue": [_input_field("orders", "amount", "AGGREGATION")],
    }
    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={name: column_lineage_dataset.Fields(inputFields=inputs) for name, inputs in fields.items()},
        dataset=join_key + [_input_field("users", "country", "GROUP_BY", "INDIRECT")],
        producer=PRODUCER,
    )


def _schema(*columns: tuple[str, str]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in columns], producer=PRODUCER
    )


def _job(name: str) -> Job:
    return Job(
        namespace=NAMESPACE,
        name=name,
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="LINEAGE_AUDIT", jobType="TASK", producer=PRODUCER
            ),
            "sql": sql_job.SQLJobFacet(query=SQL, dialect="postgres", producer=PRODUCER),
            "sourceCodeLocation": source_code_location_job.SourceCodeLocationJobFacet(
                type="git",
                url="https://github.com/lineage-audit/lineage-audit/blob/0123abc/pipelines/users_orders/sql/user_orders.sql",
                repoUrl="https://github.com/lineage-audit/lineage-audit.git",
                path="pipelines/users_orders/sql/user_orders.sql",
                version="0123abcdef0123abcdef0123abcdef0123abcdef",
                producer=PRODUCER,
            ),
            "ownership": ownership_job.OwnershipJobFacet(
                owners=[ownership_job.Owner(name="team:analytics", type="TEAM")], producer=PRODUCER
            ),
            "documentation": documentation_job.DocumentationJobFacet(
                description="One row per user with order count and revenue.", producer=PRODUCER
            ),
        },
    )


def _inputs() -> list[InputDataset]:
    metrics = data_quality_metrics_input_dataset
    assertions = data_quality_assertions_dataset
    return [
        InputDataset(
            namespace=WAREHOUSE,
            name="warehouse.staging.users",
            facets={"schema": _schema(("id", "integer"), ("country", "text"), ("email", "text"))},
            inputFacets={
                "dataQualityMetrics": metrics.DataQualityMetricsInputDatasetFacet(
                    rowCount=100,
                    columnMetrics={"id": metrics.ColumnMetrics(nullCount=0, distinctCount=100, min=1, max=100)},
                    producer=PRODUCER,
                ),
                "dataQualityAssertions": assertions.DataQualityAssertionsDatasetFacet(
                    assertions=[assertions.Assertion(assertion="not_null", success=True, column="id")],
                    producer=PRODUCER,
                ),
            },
        ),
        InputDataset(
            namespace=WAREHOUSE,
            name="warehouse.staging.orders",
            facets={"schema": _schema(("order_id", "integer"), ("user_id", "integer"), ("amount", "numeric"))},
        ),
    ]


def _output(version: str) -> OutputDataset:
    return OutputDataset(
        namespace=WAREHOUSE,
        name="warehouse.analytics.user_orders",
        facets={
            "schema": _schema(("user_id", "integer"), ("country", "text"), ("order_count", "bigint"), ("revenue", "numeric")),
            "columnLineage": _column_lineage(),
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version, producer=PRODUCER),
        },
        outputFacets={
            "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=100, producer=PRODUCER
            )
        },
    )


def example_run(
    *,
    job_name: str = "users_orders.build_user_orders",
    start: datetime | None = None,
    fail: bool = False,
    parent_run_id: str | None = None,
) -> list[RunEvent]:
    """START and COMPLETE (or FAIL with ``errorMessage``) of one run of a SQL step."""
    start = start or datetime.now(timezone.utc)
    run_id = str(generate_new_uuid())
    parent_run_id = parent_run_id or str(generate_new_uuid())
    run_facets = {
        "nominalTime": nominal_time_run.NominalTimeRunFacet(nominalStartTime=_iso(start.replace(microsecond=0)), producer=PRODUCER),
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version="0.1.0", name="lineage-audit", openlineageAdapterVersion="1.54.0", producer=PRODUCER
        ),
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent_run_id),
            job=parent_run.Job(namespace=NAMESPACE, name=job_name.split(".")[0]),
            producer=PRODUCER,
        ),
    }
    first = RunEvent(
        eventType=RunState.START,
        eventTime=_iso(start),
        producer=PRODUCER,
        run=Run(runId=run_id, facets=run_facets),
        job=_job(job_name),
        inputs=_inputs(),
        outputs=[_output(run_id)],
    )
    end_facets = dict(run_facets)
    if fail:
        end_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message="users API unavailable past the deadline", programmingLanguage="python", producer=PRODUCER
        )
    last = RunEvent(
        eventType=RunState.FAIL if fail else RunState.COMPLETE,
        eventTime=_iso(start + timedelta(seconds=3)),
        producer=PRODUCER,
        run=Run(runId=run_id, facets=end_facets),
        job=_job(job_name),
        inputs=_inputs(),
        outputs=[] if fail else [_output(run_id)],
    )
    return [first, last]
