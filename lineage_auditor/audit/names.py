"""Finding datasets and columns by the short names people write in configs and on the CLI.

``analytics.user_orders`` finds ``warehouse.analytics.user_orders`` in any namespace;
``namespace/name`` is exact. Matching is case-insensitive and on dot boundaries.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from lineage_auditor.errors import LineageAuditError
from lineage_auditor.model import ColumnRef, DatasetRef


def name_matches(name: str, wanted: str) -> bool:
    """True when ``wanted`` is ``name`` or a dot-boundary suffix of it (case-insensitive)."""
    name, wanted = name.lower(), wanted.lower()
    return name == wanted or name.endswith("." + wanted) or name.endswith("/" + wanted)


def find_datasets(datasets: Iterable[DatasetRef], wanted: str) -> list[DatasetRef]:
    """Every dataset ``wanted`` names (exact ``namespace/name`` first, then by name)."""
    datasets = list(datasets)
    exact = [d for d in datasets if str(d) == wanted]
    if exact:
        return exact
    return [d for d in datasets if name_matches(d.name, wanted)]


def resolve_dataset(datasets: Iterable[DatasetRef], wanted: str, *, source: str = "") -> DatasetRef:
    """The one dataset ``wanted`` names, or a clear error (none, or which ones are ambiguous)."""
    found = find_datasets(datasets, wanted)
    if not found:
        raise LineageAuditError(f"no dataset named {wanted!r} in the lineage store", file=source)
    if len(found) > 1:
        names = ", ".join(str(d) for d in found[:5])
        raise LineageAuditError(f"{wanted!r} names {len(found)} datasets ({names}); write namespace/name", file=source)
    return found[0]


def column_rule_matches(rule: str, column: ColumnRef) -> bool:
    """``rule`` is ``dataset.column``: dataset by suffix, column as a glob (``staging.users.*mail*``)."""
    dataset_part, _, column_part = rule.rpartition(".")
    return name_matches(column.dataset.name, dataset_part) and fnmatchcase(column.field.lower(), column_part.lower())
