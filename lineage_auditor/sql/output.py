"""The engine's result as the documented JSON document and as a readable text tree.

The JSON shape is a contract (other tools and our tests read it):
``{"statements": [...], "end_to_end": [...], "errors": [...], "warnings": [...]}`` where every
output carries OpenLineage ``columnLineage`` and ``schema`` facets.
"""

from __future__ import annotations

from typing import Any

from lineage_auditor.facets import column_lineage_facet, schema_facet
from lineage_auditor.model import DatasetLineage, InputField, SqlLineageResult


def dataset_json(lineage: DatasetLineage) -> dict[str, Any]:
    """One output dataset with its facets."""
    facets: dict[str, Any] = {"columnLineage": column_lineage_facet(lineage)}
    schema = schema_facet(lineage)
    if schema is not None:
        facets["schema"] = schema
    return {**lineage.dataset.to_json(), "facets": facets}


def result_to_json(result: SqlLineageResult) -> dict[str, Any]:
    """The full document for ``lineage-audit sql --format json``."""
    return {
        "statements": [
            {
                "index": st.index,
                "file": st.file,
                "line": st.line,
                "kind": st.kind,
                "procedure": st.procedure,
                "inputs": [ds.to_json() for ds in st.inputs],
                "outputs": [dataset_json(out) for out in st.outputs],
            }
            for st in result.statements
        ],
        "end_to_end": [dataset_json(out) for out in result.end_to_end],
        "errors": [e.to_json() for e in result.errors],
        "warnings": [w.to_json() for w in result.warnings],
    }


def _describe(transformations) -> str:
    parts = []
    for t in transformations:
        label = f"{t.type}/{t.subtype}" if t.subtype else t.type
        parts.append(label + (" masked" if t.masking else ""))
    return ", ".join(parts)


def _column(item: InputField) -> str:
    table = item.column.dataset.name or "(table unknown)"
    return f"{table}.{item.column.field}"


def render_text(result: SqlLineageResult) -> str:
    """A tree per output column: where each came from and how."""
    lines: list[str] = []
    for st in result.statements:
        lines.append(f"{st.file}:{st.line}  [{st.index}] {st.kind}" + (f" in {st.procedure}" if st.procedure else ""))
        if st.inputs:
            lines.append("  reads " + ", ".join(ds.name for ds in st.inputs))
        for out in st.outputs:
            lines.append(f"  {out.dataset.name}")
            for field in out.fields:
                lines.append(f"    {field.name}" + (f" ({field.type})" if field.type else ""))
                if not field.inputs:
                    lines.append("      (no input columns)")
                for item in field.inputs:
                    lines.append(f"      <- {_column(item)}  {_describe(item.transformations)}")
            if out.dataset_inputs:
                lines.append("    (whole dataset)")
                for item in out.dataset_inputs:
                    lines.append(f"      <- {_column(item)}  {_describe(item.transformations)}")
        lines.append("")
    for problem in result.warnings:
        lines.append(f"warning: {problem}")
    for problem in result.errors:
        lines.append(f"error: {problem}")
    return "\n".join(lines).rstrip() + "\n"
