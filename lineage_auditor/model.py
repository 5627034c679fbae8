"""The data model every part of lineage-audit speaks.

The vocabulary is OpenLineage's: datasets are (namespace, name), columns are fields of a
dataset, and every edge from an input field to an output field carries transformations of
type DIRECT (IDENTITY, TRANSFORMATION, AGGREGATION) or INDIRECT (JOIN, GROUP_BY, FILTER,
SORT, WINDOW, CONDITIONAL). The SQL engine produces these objects, collectors read and write
them as OpenLineage JSON, the graph is built from them and reports render them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DIRECT = "DIRECT"
INDIRECT = "INDIRECT"

IDENTITY = "IDENTITY"
TRANSFORMATION = "TRANSFORMATION"
AGGREGATION = "AGGREGATION"
DIRECT_SUBTYPES = (IDENTITY, TRANSFORMATION, AGGREGATION)

JOIN = "JOIN"
GROUP_BY = "GROUP_BY"
FILTER = "FILTER"
SORT = "SORT"
WINDOW = "WINDOW"
CONDITIONAL = "CONDITIONAL"
INDIRECT_SUBTYPES = (JOIN, GROUP_BY, FILTER, SORT, WINDOW, CONDITIONAL)

# When a column passes through several steps, the strongest DIRECT subtype wins:
# an identity of an aggregate is an aggregate.
DIRECT_RANK = {IDENTITY: 0, TRANSFORMATION: 1, AGGREGATION: 2}


@dataclass(frozen=True, slots=True, order=True)
class DatasetRef:
    """A dataset named the OpenLineage way (namespace + name).

    Refs are graph node keys hashed millions of times on a large store, so the hash is
    computed once and equality short-cuts on identity.
    """

    namespace: str
    name: str
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((DatasetRef, self.namespace, self.name)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not DatasetRef:
            return NotImplemented
        return self._hash == other._hash and self.name == other.name and self.namespace == other.namespace

    def to_json(self) -> dict[str, str]:
        return {"namespace": self.namespace, "name": self.name}

    def __str__(self) -> str:
        """``namespace/name``; a path-like name joins as a URL (``file:///data/x.csv``)."""
        if not self.namespace:
            return self.name
        if self.name.startswith("/"):
            return self.namespace + ("" if "://" in self.namespace else "://") + self.name
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, order=True)
class ColumnRef:
    """One field of one dataset (hash cached like ``DatasetRef``)."""

    dataset: DatasetRef
    field: str
    _hash: int = dataclasses.field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((ColumnRef, self.dataset._hash, self.field)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not ColumnRef:
            return NotImplemented
        return self._hash == other._hash and self.field == other.field and self.dataset == other.dataset

    def __str__(self) -> str:
        return f"{self.dataset.name}.{self.field}"


@dataclass(frozen=True, slots=True, order=True)
class JobRef:
    """A job named the OpenLineage way (namespace + name)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


class Severity(StrEnum):
    """How bad a finding is; the values are what reports and JSON say."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}


_DATASETS: dict[tuple[str, str], DatasetRef] = {}
_COLUMNS: dict[tuple[DatasetRef, str], ColumnRef] = {}
_INTERN_LIMIT = 1_000_000


def dataset_ref(namespace: str, name: str) -> DatasetRef:
    """The one ``DatasetRef`` for (namespace, name).

    Reading events creates the same refs again and again; handing out one object per name
    lets dict and graph lookups match on identity instead of comparing fields.
    """
    key = (namespace, name)
    ref = _DATASETS.get(key)
    if ref is None:
        if len(_DATASETS) >= _INTERN_LIMIT:
            _DATASETS.clear()
        ref = _DATASETS[key] = DatasetRef(namespace, name)
    return ref


def column_ref(dataset: DatasetRef, field_name: str) -> ColumnRef:
    """The one ``ColumnRef`` for a dataset's field (see ``dataset_ref``)."""
    key = (dataset, field_name)
    ref = _COLUMNS.get(key)
    if ref is None:
        if len(_COLUMNS) >= _INTERN_LIMIT:
            _COLUMNS.clear()
        ref = _COLUMNS[key] = ColumnRef(dataset, field_name)
    return ref


@dataclass(frozen=True, slots=True, order=True)
class Transformation:
    """One OpenLineage transformation: type, subtype and whether it masks the value."""

    type: str
    subtype: str
    masking: bool = False
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "subtype": self.subtype}
        if self.description:
            out["description"] = self.description
        out["masking"] = self.masking
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Transformation":
        return cls(
            type=str(data.get("type") or ""),
            subtype=str(data.get("subtype", "") or ""),
            masking=bool(data.get("masking", False)),
            description=str(data.get("description", "") or ""),
        )


_TRANSFORMATIONS: dict[tuple, Transformation] = {}


def _transformation(data: dict[str, Any]) -> Transformation:
    """``Transformation.from_json``, shared: events repeat a handful of transformations."""
    key = (data.get("type"), data.get("subtype"), data.get("masking"), data.get("description"))
    hit = _TRANSFORMATIONS.get(key)
    if hit is None:
        hit = _TRANSFORMATIONS[key] = Transformation.from_json(data)
    return hit


@dataclass(slots=True)
class InputField:
    """An input column and the transformations that carry it into one output."""

    column: ColumnRef
    transformations: list[Transformation] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        ds = self.column.dataset
        return {
            "namespace": ds.namespace,
            "name": ds.name,
            "field": self.column.field,
            "transformations": [t.to_json() for t in sorted(set(self.transformations))],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "InputField":
        ref = column_ref(dataset_ref(data.get("namespace") or "", data["name"]), data["field"])
        return cls(ref, [_transformation(t) for t in data.get("transformations") or []])


@dataclass(slots=True)
class OutputField:
    """One output column: its position, name, type when known, and where it came from."""

    name: str
    position: int
    inputs: list[InputField] = field(default_factory=list)
    type: str | None = None


@dataclass(slots=True)
class DatasetLineage:
    """Column lineage of one written dataset, as one OpenLineage columnLineage facet."""

    dataset: DatasetRef
    fields: list[OutputField] = field(default_factory=list)
    dataset_inputs: list[InputField] = field(default_factory=list)

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


@dataclass(slots=True)
class Problem:
    """An error or warning tied to a place in a file (1-based line and column)."""

    message: str
    file: str = ""
    line: int = 0
    column: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "message": self.message}

    def __str__(self) -> str:
        where = self.file or "<sql>"
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        return f"{where}: {self.message}"


@dataclass(slots=True)
class StatementLineage:
    """What one SQL statement reads and writes, with column lineage for each output."""

    index: int
    file: str
    line: int
    kind: str
    sql: str
    inputs: list[DatasetRef] = field(default_factory=list)
    outputs: list[DatasetLineage] = field(default_factory=list)
    procedure: str | None = None  # the stored procedure whose body holds the statement (its job)


@dataclass(slots=True)
class SqlLineageResult:
    """The engine's answer for a set of files: statements, end-to-end lineage, problems."""

    statements: list[StatementLineage] = field(default_factory=list)
    end_to_end: list[DatasetLineage] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
