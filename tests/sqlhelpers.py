"""Compact views of engine output so tests can assert whole lineages at a glance.

Each input is written ``table.column:TYPE/SUBTYPE`` (``+masked`` when masking), so a test
states the complete expected lineage of an output column as a set of strings.
"""

from __future__ import annotations

from lineage_auditor.model import DatasetLineage, InputField, SqlLineageResult
from lineage_auditor.sql import analyze_sql


def _labels(inputs: list[InputField]) -> set[str]:
    out = set()
    for item in inputs:
        for t in item.transformations:
            label = f"{item.column.dataset.name}.{item.column.field}:{t.type}/{t.subtype}"
            out.add(label + ("+masked" if t.masking else ""))
    return out


def fields_of(lineage: DatasetLineage) -> dict[str, set[str]]:
    """{output column: {input labels}}; duplicate names keyed ``name#position``."""
    result: dict[str, set[str]] = {}
    for f in lineage.fields:
        key = f.name if f.name not in result else f"{f.name}#{f.position}"
        result[key] = _labels(f.inputs)
    return result


def dataset_of(lineage: DatasetLineage) -> set[str]:
    return _labels(lineage.dataset_inputs)


def analyze(sql: str, **kwargs) -> SqlLineageResult:
    result = analyze_sql(sql, **kwargs)
    assert not result.errors, [str(e) for e in result.errors]
    return result


def output(sql: str, statement: int = -1, **kwargs) -> DatasetLineage:
    """The (single) output of one statement of ``sql``."""
    result = analyze(sql, **kwargs)
    outputs = result.statements[statement].outputs
    assert len(outputs) == 1
    return outputs[0]


def lineage(sql: str, statement: int = -1, **kwargs) -> dict[str, set[str]]:
    return fields_of(output(sql, statement, **kwargs))
