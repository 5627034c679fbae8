"""Reading lineage from a Marquez server (and writing events to it) over its REST API.

Plain httpx rather than marquez-python: that client lacks the lineage graph, column lineage
and raw events calls we need most, and imports ``pytz`` without declaring it.

Facts about the API this module relies on (Marquez 0.50/0.51, ``spec/openapi.yml``):

* lists take ``limit``/``offset``; most answer ``totalCount`` too, runs and versions don't,
  so paging stops on a short page;
* ``GET /api/v1/lineage`` is undirected (it returns the whole connected neighbourhood up to
  ``depth`` job hops); direction is recovered here from each node's in/out edges, walked
  by :class:`~lineage_auditor.graph.LineageGraph`;
* ``GET /api/v1/column-lineage`` returns ``DATASET_FIELD`` nodes whose ``data.inputFields``
  name the columns each field was derived from; downstream nodes only with
  ``withDownstream=true``. Marquez keeps one ``transformationType``/``Description`` per
  output column (the facet's older fields), not the per-input ``transformations`` list.
  Its downstream answer is empty for a column that is not itself derived (the recursive
  query is anchored on output fields), so the impact question
  (:meth:`MarquezClient.downstream_columns`) is answered from the stored events instead;
* ``GET /api/v1/events/lineage`` lists RunEvents only (dataset and job events are stored
  but not listed), filters on event time (``after`` inclusive, ``before`` exclusive, default
  ``before`` is 2030-01-01) and keeps every POST: the same event posted twice is stored
  twice, so :meth:`MarquezClient.events` deduplicates on run id + event type + event time,
  as the embedded store does, and :meth:`MarquezClient.add_event` checks before it posts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from collectors.openlineage_json import event_identity
from lineage_auditor.scrub import scrub_text
from lineage_auditor.times import parse_time, time_key, try_parse_time
from lineage_auditor.errors import LineageAuditError
from lineage_auditor.facets import transformations_from_pair
from lineage_auditor.graph import ColumnEdge, LineageGraph, Node
from lineage_auditor.model import ColumnRef, DatasetLineage, DatasetRef, InputField, JobRef, OutputField

API = "/api/v1"
PAGE_SIZE = 100
FAR_FUTURE = "2999-12-31T00:00:00Z"
FAR_PAST = "1970-01-01T00:00:00Z"
UPSTREAM, DOWNSTREAM, BOTH = "upstream", "downstream", "both"


class MarquezUnreachable(LineageAuditError):
    """Marquez did not answer (``timed_out``: it accepted the connection and said nothing)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class MarquezHTTPError(LineageAuditError):
    """Marquez answered with an error status (``status`` holds it)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def dataset_node(namespace: str, name: str) -> str:
    return f"dataset:{namespace}:{name}"


def field_node(namespace: str, name: str, field: str) -> str:
    return f"datasetField:{namespace}:{name}:{field}"


def job_node(namespace: str, name: str) -> str:
    return f"job:{namespace}:{name}"


#: Marquez's column-lineage answer names no job; its edges are attributed to this one.
COLUMN_LINEAGE_JOB = JobRef("marquez", "column-lineage")


@dataclass
class LineageView:
    """A Marquez lineage answer (``{"graph": [nodes]}``) indexed by node id.

    Questions about it (which nodes lie downstream, which column edges it holds) are asked
    of the one lineage model, :class:`~lineage_auditor.graph.LineageGraph`, built from the
    answer by :meth:`to_graph`.
    """

    nodes: dict[str, dict[str, Any]]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LineageView":
        return cls({node["id"]: node for node in data.get("graph") or []})

    def neighbours(self, node_id: str, direction: str) -> set[str]:
        """Nodes one edge away in ``direction``.

        Marquez writes an edge under both of its ends, and its column-lineage ``inEdges``
        name the node itself as origin; so the neighbour is whichever end is not this node.
        """
        node = self.nodes.get(node_id) or {}
        keys = {UPSTREAM: ("inEdges",), DOWNSTREAM: ("outEdges",), BOTH: ("inEdges", "outEdges")}[direction]
        found: set[str] = set()
        for key in keys:
            for edge in node.get(key) or []:
                for end in (edge.get("origin"), edge.get("destination")):
                    if end and end != node_id:
                        found.add(end)
        return found

    def refs(self) -> dict[str, Node]:
        """Each node id's model reference, read from the node's data (ids are ambiguous:
        namespaces such as ``postgres://host:5432`` contain the separator)."""
        out: dict[str, Node] = {}
        for node_id, node in self.nodes.items():
            ref = _node_ref(node)
            if ref is not None:
                out[node_id] = ref
        return out

    def to_graph(self) -> LineageGraph:
        """This answer as a lineage graph: job inputs/outputs from the in/out edges of
        ``DATASET`` and ``JOB`` nodes, column edges from ``DATASET_FIELD`` nodes' inputs."""
        refs = self.refs()
        graph = LineageGraph()
        for node_id, node in self.nodes.items():
            ref = refs.get(node_id)
            if isinstance(ref, (DatasetRef, JobRef)):
                for edge in node.get("inEdges") or []:
                    _add_table_edge(graph, refs.get(edge.get("origin")), refs.get(edge.get("destination")))
                for edge in node.get("outEdges") or []:
                    _add_table_edge(graph, refs.get(edge.get("origin")), refs.get(edge.get("destination")))
        present = {r for r in refs.values() if isinstance(r, ColumnRef)}
        by_dataset: dict[DatasetRef, list[OutputField]] = {}
        for node_id, node in self.nodes.items():
            target = refs.get(node_id)
            if not isinstance(target, ColumnRef):
                continue
            data = node.get("data") or {}
            inputs = []
            for item in data.get("inputFields") or []:
                source = ColumnRef(DatasetRef(item["namespace"], item["dataset"]), item["field"])
                if source in present:
                    kinds = transformations_from_pair(
                        source,
                        item.get("transformationType") or data.get("transformationType"),
                        item.get("transformationDescription") or data.get("transformationDescription"),
                    )
                    inputs.append(InputField(source, sorted(kinds)))
            fields = by_dataset.setdefault(target.dataset, [])
            fields.append(OutputField(target.field, len(fields), inputs, data.get("fieldType") or None))
        for dataset, fields in sorted(by_dataset.items()):
            graph.add_dataset_lineage(COLUMN_LINEAGE_JOB, DatasetLineage(dataset, fields))
        return graph

    def reachable(self, starts: str | Iterable[str], direction: str) -> set[str]:
        """Ids of the nodes reachable from ``starts`` following edges one way (``UPSTREAM``
        or ``DOWNSTREAM``), by the lineage graph's own walks; the starts are excluded
        unless one reaches another."""
        refs = self.refs()
        graph = self.to_graph()
        found: set[Node] = set()
        for start in [starts] if isinstance(starts, str) else starts:
            ref = refs.get(start)
            if isinstance(ref, ColumnRef):
                walk = graph.column_downstream if direction == DOWNSTREAM else graph.column_upstream
                found.update(walk(ref))
            elif isinstance(ref, (DatasetRef, JobRef)):
                datasets = graph.downstream(ref) if direction == DOWNSTREAM else graph.upstream(ref)
                jobs = graph.consumers if direction == DOWNSTREAM else graph.producers
                found.update(datasets)
                for dataset in [ref, *datasets] if isinstance(ref, DatasetRef) else datasets:
                    found.update(j for j in jobs(dataset) if j != ref)
        ids = {node: node_id for node_id, node in refs.items()}
        return {ids[n] for n in found if n in ids}

    def directed(self, start: str, direction: str) -> "LineageView":
        """Only ``start`` and what lies in ``direction`` of it: the client-side filter that
        makes Marquez's undirected answer an upstream or downstream one."""
        if direction == BOTH:
            return self
        keep = self.reachable(start, direction) | {start}
        return LineageView({k: v for k, v in self.nodes.items() if k in keep})

    def column_edges(self) -> list[ColumnEdge]:
        """The column edges among ``DATASET_FIELD`` nodes (from ``data.inputFields``).

        Only edges whose both ends are in this view: a view filtered to one direction must
        not report the inputs of its start column as part of the answer. Their job is
        :data:`COLUMN_LINEAGE_JOB`; their transformations are what Marquez kept, the
        deprecated type/description pair (see :func:`transformations_from_pair`).
        """
        return list(self.to_graph().column_edges())

    def columns(self) -> set[ColumnRef]:
        """The columns named by the ``DATASET_FIELD`` nodes of this view."""
        return {r for r in self.refs().values() if isinstance(r, ColumnRef)}


def _node_ref(node: dict[str, Any]) -> Node | None:
    data = node.get("data") or {}
    kind = node.get("type")
    if kind == "DATASET_FIELD" and "field" in data:
        return ColumnRef(DatasetRef(data["namespace"], data["dataset"]), data["field"])
    named = data.get("id")
    ident: dict[str, Any] = named if isinstance(named, dict) else data
    if kind == "DATASET" and "name" in ident:
        return DatasetRef(ident["namespace"], ident["name"])
    if kind == "JOB" and "name" in ident:
        return JobRef(ident["namespace"], ident["name"])
    return None


def _add_table_edge(graph: LineageGraph, origin: Node | None, destination: Node | None) -> None:
    if isinstance(origin, DatasetRef) and isinstance(destination, JobRef):
        graph.add_io(destination, [origin], [])
    elif isinstance(origin, JobRef) and isinstance(destination, DatasetRef):
        graph.add_io(origin, [], [destination])


class MarquezClient:
    """A Marquez REST client: reads with paging, one-event-per-request writes."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        api_key: str | None = None,
        page_size: int = PAGE_SIZE,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        verify: bool | str = True,
    ) -> None:
        """``headers``, ``auth`` (basic) and ``verify`` let a writer that already talks to
        this Marquez (the HTTP transport) read from it with the same credentials.

        A user and password in ``url`` become basic auth and leave the URL, so neither our
        messages nor httpx's request log can repeat them.
        """
        parts = urlsplit(url)
        if parts.username is not None:
            auth = auth or (unquote(parts.username), unquote(parts.password or ""))
            netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.url = url.rstrip("/")
        self.page_size = page_size
        sent = {**(headers or {}), "Accept": "application/json"}
        sent.pop("Content-Type", None)
        if api_key:
            sent["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, headers=sent, transport=transport, auth=auth, verify=verify
        )
        self._graph: LineageGraph | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "MarquezClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------

    def post_event(self, event: dict[str, Any]) -> None:
        """POST one OpenLineage event (Marquez has no batch endpoint)."""
        self._graph = None
        self._request("POST", f"{API}/lineage", json=event)

    def has_event(self, event: dict[str, Any]) -> bool:
        """True when Marquez already holds an event with the same identity.

        One narrow query: events in a 2 ms window around the event's time, compared by
        run id + event type + event time.
        """
        moment = try_parse_time(event.get("eventTime"))
        if moment is None:
            return False
        wanted = event_key(event)
        params = {
            "after": _iso(moment - timedelta(milliseconds=1)),
            "before": _iso(moment + timedelta(milliseconds=1)),
            "sortDirection": "asc",
        }
        return any(event_key(e) == wanted for e in self._pages(f"{API}/events/lineage", "events", params))

    def add_event(self, event: dict[str, Any]) -> bool:
        """Post ``event`` unless Marquez already has it; True when it was new.

        The same contract as the embedded store's ``add_event``, so copying and replaying
        into Marquez twice leaves every event there once.
        """
        if self.has_event(event):
            return False
        self.post_event(event)
        return True

    # -- reading: entities ---------------------------------------------------------------

    def namespaces(self) -> Iterator[dict[str, Any]]:
        return self._pages(f"{API}/namespaces", "namespaces")

    def datasets(self, namespace: str) -> Iterator[dict[str, Any]]:
        """Datasets of a namespace, each with ``fields`` (name, type, tags) and ``tags``."""
        return self._pages(f"{API}/namespaces/{_seg(namespace)}/datasets", "datasets")

    def dataset(self, namespace: str, name: str) -> dict[str, Any]:
        return self._get(f"{API}/namespaces/{_seg(namespace)}/datasets/{_seg(name)}")

    def dataset_versions(self, namespace: str, name: str) -> Iterator[dict[str, Any]]:
        return self._pages(f"{API}/namespaces/{_seg(namespace)}/datasets/{_seg(name)}/versions", "versions")

    def jobs(self, namespace: str) -> Iterator[dict[str, Any]]:
        return self._pages(f"{API}/namespaces/{_seg(namespace)}/jobs", "jobs")

    def job(self, namespace: str, name: str) -> dict[str, Any]:
        return self._get(f"{API}/namespaces/{_seg(namespace)}/jobs/{_seg(name)}")

    def runs(self, namespace: str, job: str) -> Iterator[dict[str, Any]]:
        """Runs of a job, newest first, each with ``state``, ``facets`` (``errorMessage`` on
        a failure) and ``inputDatasetVersions``/``outputDatasetVersions``."""
        return self._pages(f"{API}/namespaces/{_seg(namespace)}/jobs/{_seg(job)}/runs", "runs")

    def run(self, run_id: str) -> dict[str, Any]:
        return self._get(f"{API}/jobs/runs/{_seg(run_id)}")

    def run_facets(self, run_id: str) -> dict[str, Any]:
        """The run facets Marquez merged from every event of a run (``errorMessage`` on a FAIL)."""
        return self._get(f"{API}/jobs/runs/{_seg(run_id)}/facets", {"type": "run"}).get("facets") or {}

    def search(self, query: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Datasets and jobs whose name matches ``query`` (each with ``type``, ``nodeId``)."""
        params: dict[str, Any] = {"q": query}
        if limit is not None:
            params["limit"] = limit
        return list(self._get(f"{API}/search", params).get("results") or [])

    # -- reading: graphs -----------------------------------------------------------------

    def lineage(self, node_id: str, *, depth: int = 20, direction: str = BOTH) -> LineageView:
        """The dataset/job lineage graph around ``node_id``, filtered to ``direction``."""
        data = self._get(f"{API}/lineage", {"nodeId": node_id, "depth": depth})
        return LineageView.from_json(data).directed(node_id, direction)

    def column_lineage(self, node_id: str, *, depth: int = 20, direction: str = UPSTREAM) -> LineageView:
        """Column lineage around a ``datasetField:`` or ``dataset:`` node.

        A node Marquez has no column lineage for answers 404; that is an empty view here.
        Direction filtering applies to field nodes; for a ``dataset:`` node every field of
        the dataset is a start.
        """
        params = {"nodeId": node_id, "depth": depth, "withDownstream": str(direction != UPSTREAM).lower()}
        try:
            view = LineageView.from_json(self._get(f"{API}/column-lineage", params))
        except MarquezHTTPError as exc:
            if exc.status == 404:
                return LineageView({})
            raise
        if direction == BOTH:
            return view
        starts = [node_id] if node_id in view.nodes else _fields_of_dataset_node(view, node_id)
        keep = set(starts) | view.reachable(starts, direction)
        return LineageView({k: v for k, v in view.nodes.items() if k in keep})

    def graph(self, *, refresh: bool = False) -> LineageGraph:
        """The lineage graph of every event Marquez stored, built the way the embedded
        store's is; kept until this client posts again (or ``refresh``)."""
        if self._graph is None or refresh:
            self._graph = LineageGraph.from_events(self.events())
        return self._graph

    def downstream_columns(self, namespace: str, name: str, field: str, *, depth: int | None = None) -> set[ColumnRef]:
        """Every column derived, directly or not, from one column: the impact query.

        Not Marquez's own ``/column-lineage?withDownstream=true``: its recursive query is
        anchored on output fields, so for a column that is not itself derived (every raw
        source column) it answers ``{"graph": []}``. The answer comes from the graph of
        the events Marquez stored instead (:meth:`graph`), which is also what every other
        reader of a Marquez store uses, so impact through Marquez equals impact through
        the embedded store. ``depth`` counts column hops (None: unlimited).
        """
        return set(self.graph().column_downstream(ColumnRef(DatasetRef(namespace, name), field), depth))

    # -- reading: raw events -------------------------------------------------------------

    def events(self, since: datetime | str | None = None) -> Iterator[dict[str, Any]]:
        """Every OpenLineage event Marquez stored, oldest first, each once.

        ``since`` keeps events at or after that time. Duplicates (the same event posted more
        than once) are dropped, so a graph built from these equals one built from the
        embedded store's events.
        """
        after = _iso(parse_time(since)) if since is not None else FAR_PAST
        params = {"after": after, "before": FAR_FUTURE, "sortDirection": "asc"}
        seen: set[tuple[str, str, str]] = set()
        for event in self._pages(f"{API}/events/lineage", "events", params):
            key = event_key(event)
            if key in seen:
                continue
            seen.add(key)
            yield event

    def count_events(self) -> int:
        """How many events Marquez stored, duplicates included (its ``totalCount``)."""
        data = self._get(f"{API}/events/lineage", {"after": FAR_PAST, "before": FAR_FUTURE, "limit": 1})
        return int(data.get("totalCount") or 0)

    # -- plumbing ------------------------------------------------------------------------

    def _pages(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            data = self._get(path, {**(params or {}), "limit": self.page_size, "offset": offset})
            items = data.get(key) or []
            yield from items
            offset += len(items)
            total = data.get("totalCount")
            if len(items) < self.page_size or (isinstance(total, (int, float)) and offset >= total):
                return

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._request("GET", path, params=params).json()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise MarquezUnreachable(scrub_text(f"cannot reach Marquez at {self.url}: {exc}"),
                                     timed_out=isinstance(exc, httpx.TimeoutException)) from None
        if response.status_code >= 400:
            body = response.text.strip().replace("\n", " ")[:300]
            raise MarquezHTTPError(
                scrub_text(f"Marquez {method} {path} answered {response.status_code}: {body or response.reason_phrase}"),
                response.status_code,
            )
        return response


def _seg(value: str) -> str:
    """One URL path segment (namespaces such as ``postgres://host:5432`` contain slashes)."""
    return quote(value, safe="")


def event_key(event: dict[str, Any]) -> tuple[str, str, str]:
    """run id + event type + canonical event time: Marquez rewrites the time's format."""
    run_id, event_type, event_time = event_identity(event)
    try:
        return run_id, event_type, time_key(event_time)
    except ValueError:
        return run_id, event_type, event_time


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return FAR_PAST
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fields_of_dataset_node(view: LineageView, node_id: str) -> list[str]:
    """The field node ids of the dataset named by a ``dataset:ns:name`` node id."""
    if not node_id.startswith("dataset:"):
        return []
    prefix = "datasetField:" + node_id[len("dataset:"):] + ":"
    return [k for k in view.nodes if k.startswith(prefix) and ":" not in k[len(prefix):]]
