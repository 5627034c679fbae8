"""Data-quality facts about what a step read: metrics (row count, nulls, min/max) and assertions.

They travel as OpenLineage input facets (``dataQualityMetrics``, ``dataQualityAssertions``)
so the auditor can watch null rates and row counts over runs without touching the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openlineage.client.facet_v2 import data_quality_assertions_dataset as dqa
from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as dqm


@dataclass(frozen=True)
class Check:
    """One validation rule and its outcome over a batch."""

    name: str
    assertion: str
    success: bool
    column: str | None = None
    expected: str | None = None
    actual: str | None = None
    description: str | None = None
    severity: str = "error"

    def to_facet(self) -> dqa.Assertion:
        return dqa.Assertion(
            assertion=self.assertion, success=self.success, column=self.column, severity=self.severity,
            name=self.name, description=self.description, expected=self.expected, actual=self.actual,
        )


def metrics_facet(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> dqm.DataQualityMetricsInputDatasetFacet:
    """Row count and, per column, null count, value count, distinct count and numeric min/max."""
    metrics: dict[str, dqm.ColumnMetrics] = {}
    for column in columns:
        values = [r.get(column) for r in rows]
        present = [v for v in values if v is not None]
        numeric = [float(v) for v in present if isinstance(v, (int, float)) and not isinstance(v, bool)]
        try:
            distinct = len(set(present))
        except TypeError:  # unhashable values (nested JSON): no distinct count
            distinct = None
        metrics[column] = dqm.ColumnMetrics(
            nullCount=len(values) - len(present),
            count=float(len(present)),
            distinctCount=distinct,
            min=min(numeric) if numeric else None,
            max=max(numeric) if numeric else None,
        )
    return dqm.DataQualityMetricsInputDatasetFacet(columnMetrics=metrics, rowCount=len(rows))


def frame_metrics_facet(frame: Any) -> dqm.DataQualityMetricsInputDatasetFacet:
    """The same metrics for a pandas DataFrame (large inputs: computed column-wise)."""
    import pandas as pd

    metrics: dict[str, dqm.ColumnMetrics] = {}
    for column in frame.columns:
        series = frame[column]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        present = int(series.notna().sum())
        metrics[str(column)] = dqm.ColumnMetrics(
            nullCount=int(len(series) - present),
            count=float(present),
            distinctCount=int(series.nunique(dropna=True)),
            min=float(series.min()) if numeric and present else None,
            max=float(series.max()) if numeric and present else None,
        )
    return dqm.DataQualityMetricsInputDatasetFacet(columnMetrics=metrics, rowCount=int(len(frame)))


def assertions_facet(checks: Sequence[Check]) -> dqa.DataQualityAssertionsDatasetFacet:
    return dqa.DataQualityAssertionsDatasetFacet(assertions=[c.to_facet() for c in checks])
