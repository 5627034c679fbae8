"""Pipeline specs: the YAML files in ``pipelines/specs/`` read into typed, validated objects.

A spec says what a pipeline is (name, description, owners), when it runs (a cron schedule for
orchestrators), where it reads and writes, and how it behaves when its source is down
(``on_source_failure`` and ``max_staleness``). Validation errors name the file, line and
column of the offending value, so a typo in a spec reads like a compiler error.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from lineage_auditor.durations import parse_duration
from lineage_auditor.errors import ConfigError, LineageAuditError
from lineage_auditor.retry import RetryPolicy
from lineage_auditor.textfiles import position, read_yaml

SPEC_DIR = Path(__file__).resolve().parent.parent / "specs"

_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_ALIASES = {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}


def check_cron(expr: str) -> str:
    """Accept a five-field cron expression (or an @alias), the form orchestrators expect."""
    expr = " ".join(expr.split())
    if expr in _CRON_ALIASES:
        return expr
    fields = expr.split(" ")
    if len(fields) != 5:
        raise ValueError(f"cron needs 5 fields (minute hour day month weekday), got {len(fields)}: {expr!r}")
    for value, (low, high) in zip(fields, _CRON_RANGES):
        if not _CRON_FIELD.match(value):
            raise ValueError(f"bad cron field {value!r} in {expr!r}")
        for number in re.findall(r"(?<![/\d])\d+", value):
            if not low <= int(number) <= high:
                raise ValueError(f"cron value {number} outside {low}-{high} in {expr!r}")
    return expr


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Owner(_Strict):
    """An owner as the OpenLineage ownership facet records it (``team:x``, ``user:y``)."""

    name: str = Field(min_length=1)
    type: str = "MAINTAINER"


class Location(_Strict):
    """A place the weather pipeline fetches; ``name`` is the key stored with each reading."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class TargetSettings(_Strict):
    """Where a pipeline writes. ``url`` is ``postgresql://…`` or ``duckdb:PATH``; unset means
    the embedded DuckDB warehouse under the local state directory."""

    url: str | None = None


class WeatherSource(_Strict):
    base_url: str = "https://api.open-meteo.com"
    timeout_s: float = Field(default=10.0, gt=0)


class WeatherTarget(TargetSettings):
    table: str = Field(default="weather.hourly", pattern=r"^\w+\.\w+$")
    quarantine_table: str = Field(default="weather.hourly_quarantine", pattern=r"^\w+\.\w+$")


#: Requests for one users page. With the mock API's fault mix (45% of requests failing) the
#: longest run of failures on one page is 11 in 1,000 seeded runs of 20 pages.
USERS_PAGE_ATTEMPTS = 12


class UsersSource(_Strict):
    """The users API and its budget.

    ``timeout_s`` bounds one request, ``page_deadline_s`` one page with all its retries and
    waits (an API that cannot serve a page in that long is down: the run fails or falls back
    at once), ``deadline_s`` the whole fetch. A budget per page scales with the pages there
    are, so a flaky API that keeps making progress is not cut off at an arbitrary total.
    """

    api_url: str | None = None
    #: Lineage namespace of the users dataset; unset: ``scheme://host[:port]`` of ``api_url``,
    #: or ``MOCK_USERS_NAMESPACE`` for the bundled mock API (whose port changes every run).
    dataset_namespace: str | None = Field(default=None, min_length=1)
    token_env: str = "LINEAGE_AUDIT_USERS_API_TOKEN"
    per_page: int = Field(default=100, ge=1, le=1000)
    timeout_s: float = Field(default=5.0, gt=0)
    page_deadline_s: float = Field(default=60.0, gt=0)
    deadline_s: float = Field(default=600.0, gt=0)

    def retry_policy(self) -> RetryPolicy:
        """The retry policy of a users fetch under this budget."""
        return RetryPolicy(max_attempts=USERS_PAGE_ATTEMPTS, timeout=self.timeout_s, call_deadline=self.page_deadline_s,
                           deadline=self.deadline_s)


class OrdersSource(_Strict):
    path: str = "../fixtures/orders_sample.csv"


class UsersOrdersSources(_Strict):
    users: UsersSource = UsersSource()
    orders: OrdersSource = OrdersSource()


class UsersOrdersTarget(TargetSettings):
    """The warehouse; table names live in the pipeline's SQL (``sql/user_orders.sql``)."""


class _PipelineSpec(_Strict):
    """What every pipeline spec has, whatever it runs."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    owners: list[Owner] = Field(min_length=1)
    schedule: str
    namespace: str = "lineage-audit"
    on_source_failure: Literal["fail", "use_last_snapshot"] = "fail"
    max_staleness: timedelta = timedelta(hours=36)
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("max_staleness", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    def resolve(self, relative: str) -> Path:
        """A path from the spec, relative to the spec file's folder."""
        base = self.path.parent if self.path else Path.cwd()
        return (base / relative).resolve()


class WeatherSpec(_PipelineSpec):
    pipeline: Literal["weather"]
    source: WeatherSource = WeatherSource()
    locations: list[Location] = Field(min_length=1)
    target: WeatherTarget = WeatherTarget()

    @field_validator("on_source_failure")
    @classmethod
    def _no_snapshot(cls, value: str) -> str:
        if value != "fail":
            raise ValueError("weather keeps no snapshot to fall back on: on_source_failure must be 'fail'")
        return value

    @field_validator("locations")
    @classmethod
    def _unique(cls, value: list[Location]) -> list[Location]:
        names = [loc.name for loc in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate location names: {', '.join(dupes)}")
        return value


class UsersOrdersSpec(_PipelineSpec):
    pipeline: Literal["users_orders"]
    source: UsersOrdersSources = UsersOrdersSources()
    target: UsersOrdersTarget = UsersOrdersTarget()


PipelineSpec = Annotated[Union[WeatherSpec, UsersOrdersSpec], Field(discriminator="pipeline")]
_ADAPTER: TypeAdapter = TypeAdapter(PipelineSpec)
_TAGS = ("weather", "users_orders")


def _first_error(path: Path, root: Any, exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    if loc and loc[0] in _TAGS:  # the discriminated union's tag is not part of the document
        loc = loc[1:]
    if err["type"].startswith("union_tag"):
        loc = ("pipeline",)
    line, column = position(root, loc)
    dotted = ".".join(str(p) for p in loc)
    msg = err["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return ConfigError(
        f"{dotted or 'spec'}: {msg}{suffix}",
        file=str(path),
        line=line,
        column=column,
    )


def load_spec(path: str | Path) -> WeatherSpec | UsersOrdersSpec:
    """Read and validate one spec file; errors point at ``file:line:column``."""
    path = Path(path)
    data, root = read_yaml(path, what="spec")
    if not isinstance(data, dict) or root is None:
        raise LineageAuditError("a spec must be a mapping of settings", file=str(path), line=1)
    if "pipeline" not in data:
        raise LineageAuditError("missing 'pipeline' (weather or users_orders)", file=str(path), line=1, column=1)
    try:
        spec = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise _first_error(path, root, exc) from exc
    return spec.model_copy(update={"path": path.resolve()})


def builtin_spec(name: str) -> WeatherSpec | UsersOrdersSpec:
    """The shipped spec for a pipeline (``weather`` or ``users_orders``)."""
    return load_spec(SPEC_DIR / f"{name.replace('-', '_')}.yml")
