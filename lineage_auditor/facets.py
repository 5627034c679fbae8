"""OpenLineage facet JSON for our model objects, and back.

Facets are plain dicts shaped exactly as the published JSON schemas (columnLineage 1-2-0,
schema 1-2-0); ``_producer``/``_schemaURL`` are added so the facets validate on their own.
"""

from __future__ import annotations

from typing import Any

from lineage_auditor.model import (
    DIRECT,
    DIRECT_RANK,
    DIRECT_SUBTYPES,
    INDIRECT,
    INDIRECT_SUBTYPES,
    ColumnRef,
    DatasetLineage,
    DatasetRef,
    InputField,
    OutputField,
    Transformation,
)

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
    suffixed with their position (``name#2``), so no column's lineage is lost. Each field
    carries the per-input ``transformations`` and, for readers that keep only those (Marquez),
    the deprecated field-level ``transformationType``/``transformationDescription`` pair.
    """
    fields: dict[str, Any] = {}
    for out in lineage.fields:
        key = out.name if out.name not in fields else f"{out.name}#{out.position}"
        spec: dict[str, Any] = {"inputFields": _merged_inputs(out.inputs)}
        kind, description = transformation_pair(out.inputs)
        if kind:
            spec["transformationType"] = kind
        if description:
            spec["transformationDescription"] = description
        fields[key] = spec
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


# The columnLineage facet's older, output-field-level pair (``transformationType`` and
# ``transformationDescription``) is deprecated in favour of each input's ``transformations``
# list, but it is the only part of the types Marquez 0.51 keeps. We write both: the type is
# the strongest DIRECT subtype of the field's inputs, the description names every input's
# type and subtype (``shop.orders.amount: DIRECT/AGGREGATION; shop.orders.currency:
# INDIRECT/CONDITIONAL``), so a reader of Marquez can recover each input's transformations.
_ENTRY_SEPARATOR = "; "
_COLUMN_SEPARATOR = ": "
_MASKING = " masking"


def transformation_pair(inputs: list[InputField]) -> tuple[str | None, str]:
    """(``transformationType``, ``transformationDescription``) of one output field."""
    direct = [t.subtype for i in inputs for t in i.transformations if t.type == DIRECT and t.subtype in DIRECT_RANK]
    strongest = max(direct, key=DIRECT_RANK.__getitem__) if direct else None
    entries = [
        f"{item.column.dataset.name}.{item.column.field}{_COLUMN_SEPARATOR}{t.type}/{t.subtype}{_MASKING if t.masking else ''}"
        for item in sorted(inputs, key=lambda i: i.column)
        for t in sorted(set(item.transformations))
    ]
    return strongest, _ENTRY_SEPARATOR.join(entries)


def transformations_from_pair(
    column: ColumnRef, transformation_type: str | None, description: str | None
) -> frozenset[Transformation]:
    """The transformations of ``column`` into an output field, read back from the pair.

    Entries of our description that name ``column`` win; an entry naming no column (as other
    producers write ``DIRECT/IDENTITY``) applies to every input; failing both, a known
    subtype in ``transformationType`` gives its one transformation.
    """
    named: set[Transformation] = set()
    bare: set[Transformation] = set()
    wanted = f"{column.dataset.name}.{column.field}"
    for entry in (description or "").split(_ENTRY_SEPARATOR):
        who, sep, what = entry.rpartition(_COLUMN_SEPARATOR)
        parsed = _parse_transformation(what)
        if parsed is None:
            continue
        if not sep:
            bare.add(parsed)
        elif who == wanted:
            named.add(parsed)
    if named or bare:
        return frozenset(named or bare)
    if transformation_type in DIRECT_SUBTYPES:
        return frozenset({Transformation(DIRECT, transformation_type)})
    if transformation_type in INDIRECT_SUBTYPES:
        return frozenset({Transformation(INDIRECT, transformation_type)})
    return frozenset()


def _parse_transformation(text: str) -> Transformation | None:
    masking = text.endswith(_MASKING)
    kind, sep, subtype = text.removesuffix(_MASKING).strip().partition("/")
    if not sep or kind not in (DIRECT, INDIRECT):
        return None
    return Transformation(kind, subtype, masking)
