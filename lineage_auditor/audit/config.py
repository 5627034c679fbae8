"""``lineage-audit.yml``: which datasets feed AI, what is sensitive, and how strict to be.

Validated with pydantic; every error names the file, line and column of the offending key
(found by walking the YAML node tree along pydantic's error location), so a typo in a
forty-line config is one glance away. See ``pipelines/features/lineage-audit.yml`` (the demo's config, which ``lineage-audit demo``
copies into the working directory) for every option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lineage_auditor.durations import parse_seconds
from lineage_auditor.errors import ConfigError, LineageAuditError
from lineage_auditor.textfiles import load_yaml, position, read_text

DEFAULT_CONFIG = "lineage-audit.yml"
DEFAULT_BASELINE = ".lineage/baseline.json"
DEFAULT_SENSITIVE = ("pii", "pii.*", "license.restricted", "restricted", "restricted.*", "sensitive", "sensitive.*")

DriftMethod = Literal["auto", "ks", "wasserstein", "chisquare", "jensenshannon", "psi"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(_Model):
    """When a statistic counts as drift (defaults follow common drift-monitoring practice)."""

    ks_pvalue: float = Field(0.05, gt=0, lt=1, description="KS test: drift when p-value is below")
    wasserstein: float = Field(0.1, gt=0, description="Wasserstein distance / reference std: drift when above")
    chi2_pvalue: float = Field(0.05, gt=0, lt=1, description="chi-square test: drift when p-value is below")
    jensenshannon: float = Field(0.1, gt=0, le=1, description="Jensen-Shannon distance: drift when above")
    psi: float = Field(0.2, gt=0, description="population stability index: drift when above")
    small_sample: int = Field(1000, gt=0, description="below this many rows: KS / chi-square; above: Wasserstein / JS")
    drift_share: float = Field(0.5, gt=0, le=1, description="dataset drift when this share of columns drifted")


class ColumnDrift(_Model):
    method: DriftMethod = "auto"
    threshold: float | None = None
    skip: bool = False


class DriftConfig(_Model):
    drift_share: float | None = Field(None, gt=0, le=1)
    columns: dict[str, ColumnDrift] = Field(default_factory=dict)
    exclude: list[str] = Field(default_factory=list)


class DataConfig(_Model):
    """Where to read the AI dataset's rows for data drift and quality."""

    warehouse: str = Field(..., description="duckdb:PATH or postgresql://... (password from env)")
    table: str
    time_column: str | None = None
    current_window: float | None = Field(None, description="with time_column: the current window (e.g. 7d); reference is the window before")
    reference: Literal["baseline", "previous_window"] = "baseline"
    sample_rows: int = Field(100_000, gt=0)

    @field_validator("current_window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> float | None:
        return None if value is None else parse_seconds(value)


class Freshness(_Model):
    max_age: float = Field(..., description="the last successful run may be at most this old (e.g. 26h)")

    @field_validator("max_age", mode="before")
    @classmethod
    def _age(cls, value: Any) -> float:
        return parse_seconds(value)


class Volume(_Model):
    min_rows: int | None = Field(None, ge=0)
    max_rows: int | None = Field(None, ge=0)
    tolerance: float | None = Field(None, gt=0, description="allowed relative change against the median of earlier runs")


class ContractColumn(_Model):
    type: str | None = None
    nullable: bool | None = None


class Contract(_Model):
    columns: dict[str, ContractColumn] = Field(default_factory=dict)
    strict: bool = Field(False, description="columns not in the contract are findings")

    @field_validator("columns", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        """``{col: TYPE}`` is short for ``{col: {type: TYPE}}``."""
        if isinstance(value, dict):
            return {k: ({"type": v} if isinstance(v, str) or v is None else v) for k, v in value.items()}
        return value


class AIDataset(_Model):
    """A dataset that trains or feeds a model."""

    name: str = Field(..., description="dataset name (suffix match: analytics.user_orders) or namespace/name")
    purpose: str = ""
    owner: str = ""
    consumers: list[str] = Field(default_factory=list)
    description: str = ""
    license: str = ""
    freshness: Freshness | None = None
    volume: Volume | None = None
    contract: Contract | None = None
    data: DataConfig | None = None
    drift: DriftConfig = Field(default_factory=DriftConfig)


class TagRule(_Model):
    """Sensitivity tags for source columns: ``column`` is ``dataset.column`` (glob in the column part)."""

    column: str
    tags: list[str]

    @field_validator("column")
    @classmethod
    def _has_dataset(cls, value: str) -> str:
        if "." not in value:
            raise ValueError("write the column as dataset.column, e.g. staging.users.email")
        return value


class Masking(_Model):
    """What counts as masking besides OpenLineage ``masking: true``."""

    functions: list[str] = Field(default_factory=list, description="SQL functions that mask (e.g. md5, my_tokenize)")


class Checks(_Model):
    reported_vs_rebuilt: bool = True
    schema_drift: bool = True
    lineage_drift: bool = True
    data_drift: bool = True
    freshness: bool = True
    pii: bool = True
    coverage: bool = True
    assertions: bool = True

    def enabled(self) -> list[str]:
        return [name for name, on in self.model_dump().items() if on]


class ReportConfig(_Model):
    runs: int = Field(10, gt=0, description="runs shown in quality and run history")


class AuditConfig(_Model):
    version: Literal[1] = 1
    store: str | None = Field(None, description="lineage store spec, as --store")
    governance: str | None = Field(None, description="the governance policy (governance.yml), relative to this file")
    baseline: str = DEFAULT_BASELINE
    ai_datasets: list[AIDataset] = Field(default_factory=list)
    tags: list[TagRule] = Field(default_factory=list)
    sensitive_tags: list[str] = Field(default_factory=lambda: list(DEFAULT_SENSITIVE))
    masking: Masking = Field(default_factory=Masking)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    checks: Checks = Field(default_factory=Checks)
    report: ReportConfig = Field(default_factory=ReportConfig)
    source_file: str = Field("", exclude=True)

    def ai_dataset(self, name: str) -> AIDataset | None:
        for item in self.ai_datasets:
            if item.name == name:
                return item
        return None


def load_config(path: str | Path) -> AuditConfig:
    """Read and validate a config file; errors name file:line:column."""
    return parse_config(read_text(path, what="config"), source=str(path))


def parse_config(text: str, *, source: str = DEFAULT_CONFIG) -> AuditConfig:
    """Validate config text (YAML); errors name ``source`` and the line of the bad key."""
    data, root = load_yaml(text, file=source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LineageAuditError("the config must be a mapping (version, ai_datasets, tags, ...)", file=source, line=1)
    try:
        config = AuditConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err.get("loc") or ())
        line, column = position(root, loc, at_key=err.get("type") == "extra_forbidden")
        where = ".".join(str(p) for p in loc) or "config"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{where}: {_message(dict(err))}{more}", file=source, line=line, column=column) from None
    config.source_file = source
    return config


def _message(err: dict[str, Any]) -> str:
    if err.get("type") == "extra_forbidden":
        return "unknown key"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")
