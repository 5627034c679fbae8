"""Which tags a dataset or column carries: the audit config's tag rules and the store's ``tags`` facets.

The policy says which tags are restricted; this index says where they are. Tags come from
``tags:`` in the project config (``dataset.column`` with a glob in the column part) and from
OpenLineage ``tags`` facets seen in the lineage store (dataset-level entries, and entries
naming a ``field``). Datasets are matched by name on dot boundaries, in any namespace, as
people write them (``crm.users`` finds ``warehouse.crm.users``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from lineage_auditor.model import ColumnRef, DatasetRef


def tag_texts(tag: Any) -> list[str]:
    """A store tag ``(key, value)`` as the texts a pattern may match: ``key``, ``key.value``."""
    if isinstance(tag, (tuple, list)) and len(tag) == 2:
        key, value = str(tag[0]), str(tag[1] or "")
        if value and value.lower() not in ("true", "yes", "1"):
            return [key, f"{key}.{value}", value]
        return [key]
    return [str(tag)]


def _name_matches(name: str, wanted: str) -> bool:
    name, wanted = name.lower(), wanted.lower()
    return name == wanted or name.endswith("." + wanted) or name.endswith("/" + wanted)


@dataclass
class TagIndex:
    """Tags by dataset and column; ``rules`` are (``dataset.column-glob``, tags) pairs."""

    rules: Sequence[tuple[str, Sequence[str]]] = ()
    datasets: dict[str, list[str]] = field(default_factory=dict)  # dataset name -> dataset-level tags
    columns: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (dataset name, column) -> tags

    @classmethod
    def from_rules(cls, rules: Iterable[tuple[str, Sequence[str]]]) -> "TagIndex":
        return cls(rules=list(rules))

    def observe(self, graph: Any) -> "TagIndex":
        """Add the tags a :class:`~lineage_auditor.graph.LineageGraph` holds (from ``tags`` facets)."""
        for dataset in graph.datasets():
            texts = [t for tag in graph.info(dataset).get("tags") or [] for t in tag_texts(tag)]
            if texts:
                self.datasets.setdefault(dataset.name, []).extend(texts)
            for column in graph.columns(dataset):
                texts = [t for tag in graph.info(column).get("tags") or [] for t in tag_texts(tag)]
                if texts:
                    self.columns.setdefault((dataset.name, column.field), []).extend(texts)
        return self

    def dataset_tags(self, dataset: str | DatasetRef) -> list[str]:
        """Tags on the dataset itself (they apply to every column)."""
        name = _name(dataset)
        return _unique(t for stored, tags in self.datasets.items() if _name_matches(stored, name) for t in tags)

    def column_tags(self, dataset: str | DatasetRef, column: str) -> list[str]:
        """Tags on one column, its dataset's tags included."""
        name = _name(dataset)
        ref = ColumnRef(DatasetRef("", name), column)
        from_rules = [t for rule, tags in self.rules if _rule_matches(rule, ref) for t in tags]
        stored = [t for (d, c), tags in self.columns.items() if c.lower() == column.lower() and _name_matches(d, name)
                  for t in tags]
        return _unique([*self.dataset_tags(dataset), *from_rules, *stored])

    def tagged_columns(self, dataset: str | DatasetRef) -> dict[str, list[str]]:
        """Every column of ``dataset`` known to carry a tag (a rule's column glob stands for its columns)."""
        name = _name(dataset)
        found: dict[str, list[str]] = {}
        for rule, tags in self.rules:
            table, _, column = rule.rpartition(".")
            if _name_matches(name, table) or _name_matches(table, name):
                found.setdefault(column, []).extend(tags)
        for (stored, column), tags in self.columns.items():
            if _name_matches(stored, name):
                found.setdefault(column, []).extend(tags)
        return {column: _unique(tags) for column, tags in found.items()}


def _rule_matches(rule: str, column: ColumnRef) -> bool:
    """``rule`` is ``dataset.column``: dataset by dot-suffix (either way round), column as a glob."""
    table, _, pattern = rule.rpartition(".")
    name = column.dataset.name
    return (_name_matches(name, table) or _name_matches(table, name)) and fnmatchcase(column.field.lower(), pattern.lower())


def _name(dataset: str | DatasetRef) -> str:
    return dataset.name if isinstance(dataset, DatasetRef) else dataset


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def config_rules(config: Any) -> list[tuple[str, Sequence[str]]]:
    """The ``tags:`` rules of an audit config as (``dataset.column``, tags) pairs."""
    return [(rule.column, list(rule.tags)) for rule in getattr(config, "tags", ())]


__all__ = ["TagIndex", "config_rules", "tag_texts"]

