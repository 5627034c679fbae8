"""The pipeline spec (``apiVersion: lineage-audit/v1``, ``kind: Pipeline``): the one definition.

These pydantic models are the spec's grammar: the loader validates against them, the JSON
Schema editors use is generated from them (``pipelines/spec.schema.json``), and the planner and
runner read the validated objects. Closed vocabularies are ``StrEnum``; durations use the one
grammar of :mod:`lineage_auditor.durations`. Every model forbids unknown keys, so a typo is an
error with a "did you mean" rather than a setting silently ignored.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from lineage_auditor.governance.model import Approval
from lineage_auditor.yamlmodels import Duration
from pipelines.dsl.columns import check_type

API_VERSION = "lineage-audit/v1"
KIND = "Pipeline"
ID_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

StepId = Annotated[str, Field(pattern=ID_PATTERN, description="lower-case letters, digits and _")]
TableName = Annotated[str, Field(pattern=r"^[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*){1,2}$",
                                 description="a table as schema.table (or db.schema.table)")]


class _Spec(BaseModel):
    """Strict and immutable: unknown keys are errors, validated objects never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StepKind(StrEnum):
    GATE = "gate"
    EXTRACT = "extract"
    SQL = "sql"
    PYTHON = "python"
    LOAD = "load"
    CHECK = "check"


class LoadMode(StrEnum):
    APPEND = "append"
    UPSERT = "upsert"
    REPLACE = "replace"


class OnSourceFailure(StrEnum):
    FAIL = "fail"
    USE_LAST_SNAPSHOT = "use_last_snapshot"


class CheckSeverity(StrEnum):
    WARN = "warn"
    ERROR = "error"


class ParamType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"


class FileFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


class Paging(StrEnum):
    NONE = "none"
    PAGE = "page"
    CURSOR = "cursor"
    LINK = "link"


class RetryOn(StrEnum):
    SOURCE = "source"
    TIMEOUT = "timeout"
    ANY = "any"


# ---------------------------------------------------------------------- pipeline settings


class Owner(_Spec):
    name: str = Field(min_length=1, description="a person or team, e.g. team:growth or alice@example.com")
    type: str = "MAINTAINER"


class Retries(_Spec):
    count: int = Field(0, ge=0, le=20)
    backoff: Duration = Field(timedelta(seconds=30), description="first delay; doubles per attempt, with jitter")
    max_delay: Duration = timedelta(minutes=10)
    jitter: bool = True
    on: list[RetryOn] = Field(default_factory=lambda: [RetryOn.SOURCE, RetryOn.TIMEOUT])


class Sla(_Spec):
    max_duration: Duration | None = None
    deadline: Duration | None = Field(None, description="latest success after the run's nominal time")


class Param(_Spec):
    type: ParamType = ParamType.STRING
    default: Any = None
    description: str = ""

    @model_validator(mode="after")
    def _default_has_the_type(self) -> "Param":
        if self.default is not None:
            coerce_param(self.type, self.default)
        return self


class Resources(_Spec):
    """Where an orchestrator runs a step (Airflow's pool and queue); the local runner ignores them."""

    pool: str = Field("", description="an Airflow pool: caps how many such steps run at once")
    pool_slots: int = Field(1, ge=1, le=1024, description="the slots of the pool one step takes")
    queue: str = Field("", description="the worker queue the step runs on (Celery executor)")


class Output(_Spec):
    table: TableName
    ai_dataset: bool = False
    description: str = ""


# ---------------------------------------------------------------------- steps


class Column(_Spec):
    name: str = Field(min_length=1)
    type: Annotated[str, AfterValidator(check_type)] = Field(
        "VARCHAR", min_length=1, description="INTEGER, BIGINT, DOUBLE, DECIMAL(14,2), VARCHAR, DATE, TIMESTAMP or BOOLEAN")
    nullable: bool = True
    source: str = Field("", description="the record key, CSV header or query column it is read from (default: name)")

    @property
    def key(self) -> str:
        """Where the column's value is in a source record."""
        return self.source or self.name


class HttpGate(_Spec):
    url: str = Field(min_length=1)
    expect_status: int = Field(200, ge=100, le=599)


class FreshnessGate(_Spec):
    dataset: TableName
    max_staleness: Duration


class SqlProbe(_Spec):
    connection: str = "target"
    query: str = Field(min_length=1)


class Gate(_Spec):
    http: HttpGate | None = None
    freshness: FreshnessGate | None = None
    sql: SqlProbe | None = None

    @model_validator(mode="after")
    def _one(self) -> "Gate":
        return _exactly_one(self, ("http", "freshness", "sql"), "a gate")


class HttpExtract(_Spec):
    url: str = Field(min_length=1)
    paging: Paging = Paging.NONE
    page_size: int = Field(100, ge=1, le=100_000)
    page_param: str = "page"
    size_param: str = "per_page"
    cursor_param: str = "cursor"
    cursor_field: str = Field("next_cursor", description="the key of the next page's cursor in each page")
    records: str = Field("", description="the key holding the records in each page ('' for a top-level list)")
    token_env: str = Field("", description="an environment variable holding a bearer token")
    token_file: str = Field("", description="a file holding a bearer token")
    columns: list[Column] = Field(min_length=1, description="the record keys loaded, with their types")
    reject: RowRules | None = Field(None, description="row rules: records that break them are dead-lettered")


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return pattern


class RowRules(_Spec):
    """Rules a record must meet to load; one that breaks any is dead-lettered with every reason."""

    unique: list[str] = Field(default_factory=list, description="columns whose values identify a record: later repeats are refused")
    accepted_values: dict[str, list[Any]] = Field(default_factory=dict, description="column -> the only values it may hold")
    patterns: dict[str, Annotated[str, AfterValidator(_regex)]] = Field(
        default_factory=dict, description="column -> a regular expression its text must match (Python syntax, anchored at both ends)")


class FileExtract(_Spec):
    path: str = Field(min_length=1)
    format: FileFormat = FileFormat.CSV
    columns: list[Column] = Field(default_factory=list)
    reject: RowRules | None = Field(None, description="row rules: records that break them are dead-lettered")


class SqlExtract(_Spec):
    connection: str = Field(min_length=1, description="target (the warehouse itself) or the name of an environment "
                                                      "variable holding the source's postgresql:// or duckdb: URL")
    query: str = Field(min_length=1)
    dialect: str = "postgres"
    columns: list[Column] = Field(min_length=1, description="the query's columns loaded, with their types")


class Extract(_Spec):
    into: TableName = Field(description="the staging table the records land in")
    http: HttpExtract | None = None
    file: FileExtract | None = None
    sql: SqlExtract | None = None
    connector: str = Field("", description="a named connector (open_meteo)")
    options: dict[str, Any] = Field(default_factory=dict)
    dataset_namespace: str = Field("", description="the source's stable OpenLineage namespace")

    @model_validator(mode="after")
    def _one(self) -> "Extract":
        return _exactly_one(self, ("http", "file", "sql", "connector"), "an extract")


class SqlStep(_Spec):
    file: str = ""
    query: str = ""
    dialect: str = "postgres"

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if value and not value.strip():
            raise ValueError("the query is empty")
        return value

    @model_validator(mode="after")
    def _one(self) -> "SqlStep":
        return _exactly_one(self, ("file", "query"), "a sql step")


class PythonStep(_Spec):
    callable: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="module:function")
    inputs: list[TableName] = Field(default_factory=list)
    outputs: list[TableName] = Field(default_factory=list)
    column_lineage: dict[str, list[str]] = Field(
        default_factory=dict, description="output table.column -> the input table.columns it comes from")


class Load(_Spec):
    from_: StepId = Field(alias="from", description="the step whose result is loaded")
    table: TableName
    mode: LoadMode = LoadMode.APPEND
    keys: list[str] = Field(default_factory=list)
    contract: list[Column] = Field(default_factory=list)

    @model_validator(mode="after")
    def _keys(self) -> "Load":
        if self.mode is LoadMode.UPSERT and not self.keys:
            raise ValueError("mode upsert needs keys (the columns that identify a row)")
        return self


class RowCount(_Spec):
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


class AcceptedValues(_Spec):
    column: str
    values: list[Any] = Field(min_length=1)


class Relationship(_Spec):
    column: str
    to: str = Field(pattern=r"^[\w.]+\.\w+$", description="table.column the values must exist in")


class FreshnessCheck(_Spec):
    column: str
    max_age: Duration


class Check(_Spec):
    not_null: str | None = None
    unique: str | None = None
    accepted_values: AcceptedValues | None = None
    row_count: RowCount | None = None
    freshness: FreshnessCheck | None = None
    relationships: Relationship | None = None
    sql: str | None = Field(None, description="a query returning the failing rows")
    severity: CheckSeverity = CheckSeverity.ERROR

    @model_validator(mode="after")
    def _one(self) -> "Check":
        return _exactly_one(self, CHECK_KINDS, "a check")

    @property
    def kind(self) -> str:
        """Which check this is (``not_null``, ``unique``, ...): the assertion's name."""
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None)

    @property
    def columns(self) -> list[tuple[tuple[str, ...], str]]:
        """(key path in the spec, column) of every column the check names."""
        if self.not_null or self.unique:
            key = "not_null" if self.not_null else "unique"
            return [((key,), str(getattr(self, key)))]
        for key in ("accepted_values", "relationships", "freshness"):
            model = getattr(self, key)
            if model is not None:
                return [((key, "column"), model.column)]
        return []


CHECK_KINDS = ("not_null", "unique", "accepted_values", "row_count", "freshness", "relationships", "sql")


class Checks(_Spec):
    dataset: TableName
    checks: list[Check] = Field(min_length=1)


class Step(_Spec):
    id: StepId
    depends_on: list[StepId] = Field(default_factory=list)
    timeout: Duration | None = None
    retries: Retries | None = None
    resources: Resources | None = Field(None, description="set fields override the pipeline's resources for this step")
    gate: Gate | None = None
    extract: Extract | None = None
    sql: SqlStep | None = None
    python: PythonStep | None = None
    load: Load | None = None
    check: Checks | None = None

    @model_validator(mode="after")
    def _one(self) -> "Step":
        return _exactly_one(self, tuple(k.value for k in StepKind), "a step")

    @property
    def kind(self) -> StepKind:
        return next(k for k in StepKind if getattr(self, k.value) is not None)


# ---------------------------------------------------------------------- the pipeline


class Pipeline(_Spec):
    api_version: str = Field(alias="apiVersion", pattern=f"^{re.escape(API_VERSION)}$")
    kind: str = Field(pattern=f"^{KIND}$")
    id: StepId
    description: str = ""
    team: str = Field(min_length=1)
    owners: list[Owner] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    extends: str = Field("", description="a defaults file (relative to this spec) whose settings this spec inherits")
    schedule: str = Field("@daily", description="a cron expression or @hourly, @daily, @weekly, @monthly, none")
    timezone: str = "UTC"
    stagger: Duration | None = Field(None, description="spread runs over this window, by the pipeline id")
    catchup: bool = False
    max_active_runs: int = Field(1, ge=1, le=64)
    sla: Sla | None = None
    params: dict[str, Param] = Field(default_factory=dict)
    retries: Retries = Retries()
    timeout: Duration | None = None
    resources: Resources = Resources()
    on_source_failure: OnSourceFailure = OnSourceFailure.FAIL
    max_staleness: Duration | None = None
    dead_letter: str = ""
    target: str = Field("", description="the warehouse the steps write to: postgresql://... or duckdb:PATH "
                                        "[default: the local DuckDB file in the lineage home]")
    target_dialect: str = "duckdb"
    sources: list[TableName] = Field(default_factory=list, description="tables read that no step produces")
    outputs: list[Output] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list, description="approvals the governance policy asks for: "
                                                                       "reading restricted tags, writing AI datasets")
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _usable(self) -> "Pipeline":
        if self.on_source_failure is OnSourceFailure.USE_LAST_SNAPSHOT and self.max_staleness is None:
            raise ValueError("on_source_failure use_last_snapshot needs max_staleness")
        return self


def coerce_param(kind: ParamType, value: Any) -> Any:
    """A parameter value (from the spec or ``--param k=v`` text) as its declared type."""
    if kind is ParamType.STRING:
        return str(value)
    if kind is ParamType.BOOLEAN:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise ValueError(f"{value!r} is not a boolean (true or false)")
    if kind is ParamType.DATE:
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    try:
        return int(value) if kind is ParamType.INTEGER else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not {'an integer' if kind is ParamType.INTEGER else 'a number'}") from None


def _exactly_one(model: BaseModel, names: tuple[str, ...], what: str) -> Any:
    given = [n for n in names if getattr(model, n) not in (None, "")]
    if len(given) != 1:
        listed = ", ".join(names)
        found = f"found {', '.join(given)}" if given else "found none"
        raise ValueError(f"{what} takes exactly one of {listed} ({found})")
    return model
