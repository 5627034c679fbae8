"""OpenLineage facet JSON for our model objects, and back.

Facets are plain dicts shaped exactly as the published JSON schemas (columnLineage 1-2-0,
schema 1-2-0); ``_producer``/``_schemaURL`` are added so the facets validate on their own.
"""

from __future__ import annotations

from typing import Any

from lineage_auditor.model import ColumnRef, DatasetLineage, DatasetRef, InputField, OutputField

PRODUCER = "https://github.com/lineage-audit/lineage-audit"
COLUMN_LINEAGE_SCHEMA_URL = "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet"
SCHEMA_SCHEMA_URL = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"


def _merged_inputs(inputs: list[InputField]) -> list[dict[str, Any]]:
    """One entry per input column, transformations merged, in a stable order."""
    merged: dict[ColumnRef, set] = {}
    for item in inputs:
        merged.setdefault(item.column, set()).update(item.transformations)
    return [InputField(col, sorted(ts)).to_json() for col, ts in sorted(merged.items())]


def column_lineage_facet(lineage: DatasetLineage) -> dict[str, Any]:
    """The ``columnLineage`` dataset facet for one output dataset.

    Output columns are keyed by name; when two outputs share a name the later ones are
    suffixed with their position (``name#2``), so no column's lineage is lost.
    """
    fields: dict[str, Any] = {}
    for out in lineage.fields:
        key = out.name if out.name not in fields else f"{out.name}#{out.position}"
        fields[key] = {"inputFields": _merged_inputs(out.inputs)}
    facet: dict[str, Any] = {
        "_producer": PRODUCER,
        "_schemaURL": COLUMN_LINEAGE_SCHEMA_URL,
        "fields": fields,
    }
    if lineage.dataset_inputs:
        facet["dataset"] = _merged_inputs(lineage.dataset_inputs)
    return facet


def schema_facet(lineage: DatasetLineage) -> dict[str, Any] | None:
    """The ``schema`` dataset facet, when every output column's name is known."""
    if not lineage.fields:
        return None
    return {
        "_producer": PRODUCER,
        "_schemaURL": SCHEMA_SCHEMA_URL,
        "fields": [
            {"name": f.name, **({"type": f.type} if f.type else {})} for f in lineage.fields
        ],
    }


def lineage_from_facet(dataset: DatasetRef, facet: dict[str, Any]) -> DatasetLineage:
    """Read a ``columnLineage`` facet (ours or anyone's) back into the model."""
    fields = [
        OutputField(
            name=name.split("#", 1)[0] if "#" in name and name.rsplit("#", 1)[1].isdigit() else name,
            position=i,
            inputs=[InputField.from_json(x) for x in spec.get("inputFields") or []],
        )
        for i, (name, spec) in enumerate((facet.get("fields") or {}).items())
    ]
    dataset_inputs = [InputField.from_json(x) for x in facet.get("dataset") or []]
    return DatasetLineage(dataset, fields, dataset_inputs)
