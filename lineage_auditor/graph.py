"""One lineage graph of datasets, columns and jobs, and the questions people ask of it.

Nodes are the model's own references (``DatasetRef``, ``ColumnRef`` and ``JobRef``), so
every query answers with model objects and never leaks internal ids. Edges, in one
``networkx.MultiDiGraph``:

* dataset -> job (``input``) and job -> dataset (``output``): table-level lineage;
* column -> column (``column``), keyed by the job that made it, carrying the set of
  OpenLineage transformations. One edge per (source, target, job), so replacing what a
  job reported never touches what other jobs said about the same columns;
* column -> dataset (``member``): which dataset a column belongs to.

A facet's dataset-level inputs (columns used only in WHERE, JOIN ON, GROUP BY, ...) become
INDIRECT column edges to *every* output column of that dataset, because that is what they
mean: a filter decides which values reach each column. Column-level queries (upstream,
paths, PII tracing) then see them without a special case. When the output's columns are
unknown they still count at table level (input edge to the job).

Events replace by run: an event of a newer run of a job drops that job's edges first, while
events of the same run (START, then COMPLETE) add up. The graph so shows the current view,
and each job keeps the ids of every run it has seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Union

import networkx as nx

from lineage_auditor.errors import EventError
from lineage_auditor.events import EventDataset, Run, RunEvent, as_run_events, merge_facets, sort_events
from lineage_auditor.model import (
    DIRECT,
    ColumnRef,
    DatasetLineage,
    DatasetRef,
    JobRef,
    SqlLineageResult,
    Transformation,
    column_ref,
    dataset_ref,
)

INPUT = "input"
OUTPUT = "output"
COLUMN = "column"
MEMBER = "member"


Node = Union[DatasetRef, ColumnRef, JobRef]


@dataclass(frozen=True, slots=True)
class ColumnEdge:
    """What one job said about one column feeding another."""

    source: ColumnRef
    target: ColumnRef
    job: JobRef
    transformations: frozenset[Transformation]


@dataclass(frozen=True, slots=True)
class Hop:
    """One step of a path between two columns, every job's transformations merged."""

    source: ColumnRef
    target: ColumnRef
    transformations: tuple[Transformation, ...]
    jobs: tuple[JobRef, ...]

    @property
    def masking(self) -> bool:
        return any(t.masking for t in self.transformations)


class LineageGraph:
    """Datasets, columns and jobs with their lineage edges; built from SQL or from events."""

    def __init__(self) -> None:
        self._g: nx.MultiDiGraph = nx.MultiDiGraph()
        # (source, target) of every column edge a job made, so a newer run can drop them.
        self._job_edges: dict[JobRef, set[tuple[ColumnRef, ColumnRef]]] = {}

    # ---------------------------------------------------------------- building

    @classmethod
    def from_sql_result(cls, result: SqlLineageResult, job_namespace: str = "sql") -> "LineageGraph":
        """One job per statement, named ``<file>#<index>``, with the statement's SQL; the
        statements of a stored procedure are one job named after it."""
        graph = cls()
        for stmt in result.statements:
            job = JobRef(job_namespace, stmt.procedure or f"{stmt.file}#{stmt.index}")
            graph.add_job(job, sql=stmt.sql, statement_kind=stmt.kind, file=stmt.file, line=stmt.line)
            graph.add_io(job, stmt.inputs, [out.dataset for out in stmt.outputs])
            for lineage in stmt.outputs:
                graph.add_dataset_lineage(job, lineage)
        return graph

    @classmethod
    def from_events(cls, events: Iterable[RunEvent | Mapping[str, Any]],
                    on_skip: Callable[[EventError], None] | None = None) -> "LineageGraph":
        """Replay run events in event-time order (raw OpenLineage dicts are validated first)."""
        graph = cls()
        for event in sort_events(as_run_events(events)):
            graph.add_event(event, on_skip)
        return graph

    def add_event(self, event: RunEvent, on_skip: Callable[[EventError], None] | None = None) -> None:
        """Apply one RunEvent; a newer run of the same job replaces that job's edges.

        A malformed ``columnLineage`` facet raises, or with ``on_skip`` is reported there and
        left out: the rest of the event (its run, datasets and schemas) still counts.
        """
        job = event.job
        self._record_run(event)
        facets = merge_facets(self._g.nodes[job].get("facets"), event.job_facets)
        self.add_job(job, facets=facets, **_facet_attrs(event.job_facets))
        inputs = [self._add_event_dataset(d) for d in event.inputs]
        outputs = [self._add_event_dataset(d) for d in event.outputs]
        self.add_io(job, inputs, outputs)
        for out in event.outputs:
            try:
                lineage = out.column_lineage()
            except EventError as exc:
                if on_skip is None:
                    raise
                on_skip(EventError(f"{exc.message} (column lineage of {job} run {event.run_id} left out)"))
                continue
            if lineage is not None:
                self.add_dataset_lineage(job, lineage)

    def add_job(self, job: JobRef, **attrs: Any) -> None:
        """Add a job (or update its attributes: sql, statement_kind, facets, runs, ...)."""
        self._add_node(job, "job", attrs)

    def add_dataset(self, dataset: DatasetRef, **attrs: Any) -> None:
        """Add a dataset (or update its attributes: facets, tags, owners, description)."""
        self._add_node(dataset, "dataset", attrs)

    def add_column(self, column: ColumnRef, **attrs: Any) -> None:
        """Add a column of its dataset (type, position, description, tags)."""
        if column in self._g:
            self._g.nodes[column].update(attrs)
            return
        self.add_dataset(column.dataset)
        self._g.add_node(column, kind="column", **attrs)
        self._g.add_edge(column, column.dataset, MEMBER, kind=MEMBER)

    def add_io(self, job: JobRef, inputs: Iterable[DatasetRef], outputs: Iterable[DatasetRef]) -> None:
        """Table-level edges: the datasets a job reads and writes."""
        self.add_job(job)
        for ds in inputs:
            self.add_dataset(ds)
            self._g.add_edge(ds, job, INPUT, kind=INPUT)
        for ds in outputs:
            self.add_dataset(ds)
            self._g.add_edge(job, ds, OUTPUT, kind=OUTPUT)

    def add_dataset_lineage(self, job: JobRef, lineage: DatasetLineage) -> None:
        """The one way column edges get in: a job's column lineage for one output dataset.

        Every input column's dataset also becomes a table-level input of the job, so table
        and column views never disagree. Columns are keyed by name: two outputs sharing a
        name (possible in a bare SELECT) become one column node with both lineages.
        """
        out_ds = lineage.dataset
        sources = {i.column.dataset for f in lineage.fields for i in f.inputs if i.column.dataset.name}
        sources.update(i.column.dataset for i in lineage.dataset_inputs if i.column.dataset.name)
        self.add_io(job, sorted(sources), [out_ds])
        made = self._job_edges.setdefault(job, set())
        targets = []
        for out in lineage.fields:
            target = column_ref(out_ds, out.name)
            attrs: dict[str, Any] = {"type": out.type} if out.type else {}
            if target not in self._g or "position" not in self._g.nodes[target]:
                attrs["position"] = out.position  # a schema facet's order wins when known
            self.add_column(target, **attrs)
            targets.append(target)
            for item in out.inputs:
                self._add_column_edge(item.column, target, job, item.transformations, made)
        for item in lineage.dataset_inputs:
            for target in targets:
                self._add_column_edge(item.column, target, job, item.transformations, made)

    def remove_job_edges(self, job: JobRef) -> None:
        """Forget what a job said (its inputs, outputs and column edges); keep the nodes."""
        if job not in self._g:
            return
        for u, v, key in list(self._g.in_edges(job, keys=True)) + list(self._g.out_edges(job, keys=True)):
            self._g.remove_edge(u, v, key)
        for u, v in self._job_edges.pop(job, set()):
            if self._g.has_edge(u, v, job):
                self._g.remove_edge(u, v, job)

    # ---------------------------------------------------------------- accessors

    @property
    def nx(self) -> nx.MultiDiGraph:
        """The underlying networkx graph, for read-only use by algorithms we don't wrap."""
        return self._g

    def datasets(self) -> list[DatasetRef]:
        return sorted(n for n in self._g if type(n) is DatasetRef)

    def jobs(self) -> list[JobRef]:
        return sorted(n for n in self._g if type(n) is JobRef)

    def columns(self, dataset: DatasetRef | None = None) -> list[ColumnRef]:
        """Columns of one dataset in their position order, or every column in the graph."""
        if dataset is None:
            return sorted(n for n in self._g if type(n) is ColumnRef)
        if dataset not in self._g:
            return []
        cols = [p for p in self._g.predecessors(dataset) if type(p) is ColumnRef]
        nodes = self._g.nodes
        return sorted(cols, key=lambda c: (nodes[c].get("position", 1 << 30), c.field))

    def latest_run(self, job: JobRef) -> Run | None:
        """The job's most recent run (state, start/end time, run facets), if events said so."""
        runs = self._g.nodes[job].get("runs", ()) if job in self._g else ()
        return runs[-1] if runs else None

    def info(self, node: Node) -> Mapping[str, Any]:
        """A read-only view of a node's attributes (facets, tags, owners, runs, sql, ...)."""
        return MappingProxyType(self._g.nodes[node])

    def __contains__(self, node: object) -> bool:
        return node in self._g

    def producers(self, dataset: DatasetRef) -> list[JobRef]:
        """Jobs that write the dataset."""
        return sorted(j for j in self._g.predecessors(dataset) if type(j) is JobRef)

    def consumers(self, dataset: DatasetRef) -> list[JobRef]:
        """Jobs that read the dataset."""
        return sorted(j for j in self._g.successors(dataset) if type(j) is JobRef)

    def job_inputs(self, job: JobRef) -> list[DatasetRef]:
        return sorted(self._g.predecessors(job))

    def job_outputs(self, job: JobRef) -> list[DatasetRef]:
        return sorted(self._g.successors(job))

    def column_edges(self) -> Iterator[ColumnEdge]:
        """Every column edge, one per (source, target, job)."""
        for u, v, key, data in self._g.edges(keys=True, data=True):
            if data["kind"] == COLUMN:
                yield ColumnEdge(u, v, key, data["transformations"])

    # ---------------------------------------------------------------- queries

    def upstream(self, node: DatasetRef | JobRef, depth: int | None = None) -> list[DatasetRef]:
        """Datasets that feed ``node``, nearest first; depth counts jobs crossed."""
        return self._table_walk(node, depth, self._g.predecessors)

    def downstream(self, node: DatasetRef | JobRef, depth: int | None = None) -> list[DatasetRef]:
        """Datasets fed by ``node``, nearest first; depth counts jobs crossed."""
        return self._table_walk(node, depth, self._g.successors)

    def upstream_depths(self, node: DatasetRef | JobRef) -> dict[DatasetRef, int]:
        """Every dataset that feeds ``node`` with its distance in jobs crossed (nearest 1)."""
        if node not in self._g:
            return {}
        levels = _bfs_levels([node], None, self._dataset_hop(self._g.predecessors))
        return {d: level for d, level in levels.items() if d != node and type(d) is DatasetRef}

    def column_inputs(self, column: ColumnRef) -> list[Hop]:
        """The columns one step upstream of ``column``, each with every job's transformations."""
        if column not in self._g:
            return []
        sources = sorted(c for c in self._g.pred[column] if type(c) is ColumnRef)
        return [self._hop(source, column) for source in sources]

    def column_upstream(self, column: ColumnRef, depth: int | None = None, *, direct_only: bool = False) -> list[ColumnRef]:
        """Columns that feed ``column``, nearest first (``direct_only``: DIRECT edges only)."""
        if column not in self._g:
            return []
        return _bfs(column, depth, self._column_neighbours(self._g.pred, direct_only))[1:]

    def column_downstream(self, column: ColumnRef, depth: int | None = None, *, direct_only: bool = False) -> list[ColumnRef]:
        """Columns fed by ``column``, nearest first (``direct_only``: DIRECT edges only)."""
        if column not in self._g:
            return []
        return _bfs(column, depth, self._column_neighbours(self._g.succ, direct_only))[1:]

    def paths(self, source: ColumnRef, target: ColumnRef, *, direct_only: bool = False, limit: int | None = None) -> list[list[Hop]]:
        """All simple paths from ``source`` to ``target``, each hop with its transformations.

        The search only enters columns upstream of ``target``, so a dead end costs nothing;
        ``limit`` caps the number of paths for graphs where they explode combinatorially.
        """
        if source not in self._g or target not in self._g or source == target:
            return []
        forward = self._column_neighbours(self._g.succ, direct_only)
        reaches = set(_bfs(target, None, self._column_neighbours(self._g.pred, direct_only)))
        if source not in reaches:
            return []
        found: list[list[Hop]] = []
        trail = [source]
        on_trail = {source}
        stack = [iter(sorted(n for n in forward(source) if n in reaches))]
        while stack and (limit is None or len(found) < limit):
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                on_trail.discard(trail.pop())
            elif nxt == target:
                found.append([self._hop(a, b) for a, b in zip(trail, trail[1:] + [target])])
            elif nxt not in on_trail:
                trail.append(nxt)
                on_trail.add(nxt)
                stack.append(iter(sorted(n for n in forward(nxt) if n in reaches)))
        return found

    def root_sources(self, dataset: DatasetRef) -> list[DatasetRef]:
        """Upstream datasets nothing feeds (raw sources); empty when ``dataset`` is one."""
        return [d for d in self.upstream(dataset) if not self.upstream(d, depth=1)]

    def column_root_sources(self, column: ColumnRef, *, direct_only: bool = False) -> list[ColumnRef]:
        """Upstream columns nothing feeds; empty when ``column`` is itself a source."""
        back = self._column_neighbours(self._g.pred, direct_only)
        return [c for c in self.column_upstream(column, direct_only=direct_only) if next(back(c), None) is None]

    def layers(self) -> dict[DatasetRef | JobRef, int]:
        """Lineage depth of every dataset and job (0 = raw source), for left-to-right layouts.

        Cycles (a job that reads and writes one table) share a depth, via the condensation.
        """
        table = nx.DiGraph()
        table.add_nodes_from(n for n in self._g if type(n) is not ColumnRef)
        table.add_edges_from((u, v) for u, v, d in self._g.edges(data=True) if d["kind"] in (INPUT, OUTPUT))
        dag = nx.condensation(table)
        members = dag.graph["mapping"]
        depth_of = {}
        for depth, generation in enumerate(nx.topological_generations(dag)):
            for scc in generation:
                depth_of[scc] = depth
        return {node: depth_of[scc] for node, scc in members.items()}

    def subgraph(self, datasets: Iterable[DatasetRef]) -> "LineageGraph":
        """The part of the graph among ``datasets``: their columns, jobs and edges between them.

        Handy for a report on one dataset: ``g.subgraph([d, *g.upstream(d)])``.
        """
        keep: set[Node] = set(datasets)
        keep |= {c for d in list(keep) if type(d) is DatasetRef and d in self._g for c in self.columns(d)}
        keep |= {j for d in list(keep) if type(d) is DatasetRef and d in self._g for j in self._g.pred[d] if type(j) is JobRef}
        out = LineageGraph()
        out._g = self._g.subgraph(n for n in keep if n in self._g).copy()
        for job, pairs in self._job_edges.items():
            if job in out._g:
                out._job_edges[job] = {(u, v) for u, v in pairs if out._g.has_edge(u, v, job)}
        return out

    # ---------------------------------------------------------------- internals

    def _add_node(self, node: Node, kind: str, attrs: Mapping[str, Any]) -> None:
        if node in self._g:
            self._g.nodes[node].update(attrs)
        else:
            self._g.add_node(node, kind=kind, **attrs)

    def _add_column_edge(
        self, source: ColumnRef, target: ColumnRef, job: JobRef, transformations: Iterable[Transformation], made: set
    ) -> None:
        """One (source, target, job) edge; a repeat merges its transformations.

        A column whose table is unknown (SQL without a schema) has no node to hang from: the
        job's table-level inputs already say which tables it may come from.
        """
        if not source.dataset.name:
            return
        if source not in self._g:
            self.add_column(source)
        keyed = self._g.succ[source].get(target)
        if keyed is not None and job in keyed:
            keyed[job]["transformations"] = keyed[job]["transformations"] | frozenset(transformations)
        else:
            self._g.add_edge(source, target, job, kind=COLUMN, transformations=frozenset(transformations))
        made.add((source, target))

    def _record_run(self, event: RunEvent) -> None:
        """Keep every run; a run we have not seen before replaces the job's edges."""
        job = event.job
        self.add_job(job)
        runs: tuple[Run, ...] = self._g.nodes[job].get("runs", ())
        if not runs or runs[-1].run_id != event.run_id:
            if runs:
                self.remove_job_edges(job)
            runs = runs + (Run(event.run_id, job),)
            self.add_job(job, runs=runs)
        runs[-1].add(event)

    def _add_event_dataset(self, data: EventDataset) -> DatasetRef:
        """A dataset from an event, with its schema, tags, owners and description."""
        ds = data.ref
        facets = data.all_facets
        prev = self._g.nodes[ds].get("facets") if ds in self._g else None
        self.add_dataset(ds, facets=merge_facets(prev, facets), **_facet_attrs(facets))
        for pos, schema_field in enumerate(data.schema or ()):
            col_attrs: dict[str, Any] = {"position": pos}
            if schema_field.type:
                col_attrs["type"] = schema_field.type
            if schema_field.description:
                col_attrs["description"] = schema_field.description
            self.add_column(column_ref(ds, schema_field.name), **col_attrs)
        field_tags: dict[str, list[tuple[str, str]]] = {}
        for key, value, field_name in data.tags:
            if field_name:
                field_tags.setdefault(str(field_name), []).append((key, value))
        for name, col_tags in field_tags.items():
            self.add_column(column_ref(ds, name), tags=col_tags)
        return ds

    def _table_walk(self, node: Node, depth: int | None, step: Callable[[Node], Iterable[Node]]) -> list[DatasetRef]:
        """BFS over dataset/job nodes; a dataset-job-dataset step is one level of depth."""
        if node not in self._g:
            return []
        hop = self._dataset_hop(step)
        if type(node) is JobRef:
            first = sorted(d for d in step(node) if type(d) is DatasetRef)
            if depth is not None and depth < 1:
                return []
            rest = _bfs_many(first, None if depth is None else depth - 1, hop)
            return [d for d in rest if d != node]
        return _bfs(node, depth, hop)[1:]

    @staticmethod
    def _dataset_hop(step: Callable[[Node], Iterable[Node]]) -> Callable[[Node], Iterator[Node]]:
        """Neighbour function from a dataset to the datasets one job away (a job: its datasets)."""

        def hop(n: Node) -> Iterator[Node]:
            if type(n) is JobRef:
                yield from (d for d in step(n) if type(d) is DatasetRef)
                return
            for job in step(n):
                if type(job) is JobRef:
                    yield from (d for d in step(job) if type(d) is DatasetRef)

        return hop

    def _column_neighbours(self, adjacency: Any, direct_only: bool) -> Callable[[ColumnRef], Iterator[ColumnRef]]:
        """Neighbour function over column edges (pred or succ), optionally DIRECT only."""

        def neighbours(col: ColumnRef) -> Iterator[ColumnRef]:
            for other, keyed in adjacency[col].items():
                if type(other) is not ColumnRef:
                    continue
                if direct_only and not any(
                    t.type == DIRECT for data in keyed.values() for t in data["transformations"]
                ):
                    continue
                yield other

        return neighbours

    def _hop(self, source: ColumnRef, target: ColumnRef) -> Hop:
        keyed = self._g.succ[source][target]
        merged = set().union(*(data["transformations"] for data in keyed.values()))
        return Hop(source, target, tuple(sorted(merged)), tuple(sorted(keyed)))


def _bfs(start: Node, depth: int | None, neighbours: Callable[[Any], Iterable[Any]]) -> list[Any]:
    """Breadth-first order from ``start`` (included first), nearest first, ties sorted."""
    return _bfs_many([start], depth, neighbours)


def _bfs_many(starts: list[Any], depth: int | None, neighbours: Callable[[Any], Iterable[Any]]) -> list[Any]:
    return list(_bfs_levels(starts, depth, neighbours))


def _bfs_levels(starts: list[Any], depth: int | None, neighbours: Callable[[Any], Iterable[Any]]) -> dict[Any, int]:
    """The one breadth-first search: every node reached, in order, with its level (starts: 0)."""
    levels = dict.fromkeys(starts, 0)
    frontier = list(starts)
    level = 0
    while frontier and (depth is None or level < depth):
        level += 1
        found = set()
        for node in frontier:
            for other in neighbours(node):
                if other not in levels and other not in found:
                    found.add(other)
        frontier = sorted(found)
        levels.update(dict.fromkeys(frontier, level))
    return levels


def _facet_attrs(facets: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes people query without digging into facets: tags, owners, description, SQL."""
    attrs: dict[str, Any] = {}
    if "tags" in facets:
        tags = (facets["tags"] or {}).get("tags") or []
        attrs["tags"] = [(t.get("key", ""), t.get("value", "")) for t in tags if not t.get("field")]
    if "ownership" in facets:
        attrs["owners"] = [dict(o) for o in (facets["ownership"] or {}).get("owners") or []]
    if "documentation" in facets:
        attrs["description"] = (facets["documentation"] or {}).get("description", "")
    if "sql" in facets:
        attrs["sql"] = (facets["sql"] or {}).get("query", "")
    return attrs
