"""Commands for lineage in and out: ``replay`` (deliver the spool) and ``lineage show``.

Exit codes: 0 ok, 2 usage or input error -- and for ``replay``, 2 when any event is still
undelivered (the target is down or refused an event), so a CI step or cron job notices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from collectors.emit.config import SPEC_HELP
from lineage_auditor.errors import LineageAuditError

EXIT_INPUT = 2
FORMATS = click.Choice(["text", "json"])


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


# ---------------------------------------------------------------------------- replay


@click.command("replay")
@click.option(
    "--spool",
    "spool_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Spool folder (default: $LINEAGE_AUDIT_HOME/spool, else .lineage/spool).",
)
@click.option("--lineage", "lineage", metavar="SPEC", default=None, help=f"Where to deliver: {SPEC_HELP}. Default: the configured target.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True, help="Output format.")
def replay_command(spool_dir: Path | None, lineage: str | None, fmt: str) -> None:
    """Deliver spooled OpenLineage events to the lineage target, in order.

    Events a pipeline could not deliver (target down) wait in the spool. Replay sends
    them oldest first, removes each only once the target acknowledged it, and stops at
    the first failure so order is kept; run it again when the target is back. Events
    the target refuses as invalid are set aside in the spool's rejected/ folder.
    Replaying twice never creates duplicates.

    Exit codes: 0 everything delivered, 2 events remain or were refused, or bad options.

    \b
    Examples:
      lineage-audit replay
      lineage-audit replay --lineage marquez:http://127.0.0.1:5000
      lineage-audit replay --spool /srv/etl/.lineage/spool --format json
    """
    from collectors.emit import default_spool_dir, emitter_from_config

    spool_dir = spool_dir or default_spool_dir()
    with emitter_from_config(lineage) as emitter:
        result = _replay_with_progress(spool_dir, emitter, show=fmt == "text")
    if fmt == "json":
        _echo_json({"spool": str(spool_dir), **result.to_dict()})
    else:
        _print_replay(result, spool_dir)
    if not result.complete:
        click.get_current_context().exit(EXIT_INPUT)


def _replay_with_progress(spool_dir: Path, emitter: Any, *, show: bool) -> Any:
    """Replay with a progress bar on stderr (hidden for JSON output and when not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from collectors.emit import replay

    console = Console(stderr=True)
    with Progress(
        TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), console=console, transient=True,
        disable=not show or not console.is_terminal,
    ) as progress:
        task = progress.add_task("replay", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return replay(spool_dir, emitter, progress=advance)


def _print_replay(result: Any, spool_dir: Path) -> None:
    click.echo(f"delivered {result.delivered} of {result.total} event(s) to {result.target}; {result.remaining} remaining")
    if result.recovered:
        click.echo(f"recovered {result.recovered} event(s) left half-written by a crashed process")
    if result.remaining:
        click.echo(f"stopped: {result.error}; events stay in {spool_dir} - run replay again when the target is up", err=True)
    if result.rejected:
        click.echo(
            f"{len(result.rejected)} event(s) invalid or refused by the target, set aside with the reason "
            f"in {Path(spool_dir) / 'rejected'}",
            err=True,
        )


# ---------------------------------------------------------------------------- lineage show


@click.group("lineage")
def lineage_group() -> None:
    """Query recorded lineage (embedded store, Marquez or OpenLineage files).

    \b
    Examples:
      lineage-audit lineage show analytics.user_orders --upstream
    """


@lineage_group.command("show")
@click.argument("dataset")
@click.option("--upstream", "direction", flag_value="upstream", help="Only what feeds DATASET.")
@click.option("--downstream", "direction", flag_value="downstream", help="Only what DATASET feeds.")
@click.option("--column", "-c", default=None, help="Follow one column instead of the whole dataset.")
@click.option("--depth", type=click.IntRange(min=1), default=None, help="Stop after N hops (jobs crossed). Default: no limit.")
@click.option("--store", "store", metavar="SPEC", default=None, help="Store to read: embedded[:PATH] | postgresql://HOST:PORT/DB | marquez:URL | file:PATH. Default: the configured lineage target.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True, help="Output format.")
def show_command(
    dataset: str, direction: str | None, column: str | None, depth: int | None, store: str | None, fmt: str
) -> None:
    """Show what feeds DATASET and what it feeds, at table or column level.

    DATASET is NAMESPACE/NAME, a full name, or a unique name suffix
    (analytics.user_orders matches warehouse.analytics.user_orders). Without
    --upstream or --downstream both directions are shown.

    Exit codes: 0 ok, 2 unknown dataset or column, unreadable store, bad options.

    \b
    Examples:
      lineage-audit lineage show analytics.user_orders
      lineage-audit lineage show analytics.user_orders --upstream --column revenue
      lineage-audit lineage show staging.orders --downstream --depth 1 --format json
      lineage-audit lineage show user_orders --store marquez:http://127.0.0.1:5000
    """
    from collectors.sources import SkippedEvents, describe_source, open_indexed_store, read_events
    from lineage_auditor.events import run_events
    from lineage_auditor.graph import LineageGraph

    skipped = SkippedEvents()
    embedded = open_indexed_store(store)
    if embedded is not None:  # the current graph is each job's latest run: read only those
        with embedded:
            graph = LineageGraph.from_events(run_events(embedded.latest_run_events(), skipped), skipped)
    else:
        graph = LineageGraph.from_events(read_events(store, skipped), skipped)
    if skipped.count:
        click.echo(f"warning: {skipped.summary()}", err=True)
    source = describe_source(store)
    target = _resolve_dataset(graph, dataset, source)
    directions = [direction] if direction else ["upstream", "downstream"]
    if column is not None:
        result = _column_lineage(graph, target, column, directions, depth)
    else:
        result = _table_lineage(graph, target, directions, depth)
    result["store"] = source
    if fmt == "json":
        _echo_json(result)
    else:
        _print_lineage(result)


def _resolve_dataset(graph: Any, text: str, source: str) -> Any:
    """The dataset a user means: NAMESPACE/NAME, a full name, or a unique dotted suffix."""
    datasets = graph.datasets()
    for matcher in (
        lambda d: str(d) == text,
        lambda d: d.name == text,
        lambda d: d.name.endswith("." + text) or d.name.endswith("/" + text),
    ):
        found = [d for d in datasets if matcher(d)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(str(d) for d in found[:10])
            raise LineageAuditError(f"dataset {text!r} is ambiguous in {source}: {names}; give NAMESPACE/NAME")
    known = ", ".join(d.name for d in datasets[:10]) or "none"
    more = f" (and {len(datasets) - 10} more)" if len(datasets) > 10 else ""
    raise LineageAuditError(f"no dataset {text!r} in {source}; known datasets: {known}{more}")


def _levels(walk: Any, start: Any, depth: int | None) -> dict[Any, int]:
    """Distance of every node ``walk`` reaches, by growing the depth until nothing new appears."""
    levels: dict[Any, int] = {}
    level = 1
    while depth is None or level <= depth:
        reached = walk(start, level)
        new = [n for n in reached if n not in levels]
        if not new:
            break
        for node in new:
            levels[node] = level
        level += 1
    return levels


def _dataset_json(ref: Any, level: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"namespace": ref.namespace, "name": ref.name}
    if level is not None:
        out["depth"] = level
    return out


def _table_lineage(graph: Any, target: Any, directions: list[str], depth: int | None) -> dict[str, Any]:
    result: dict[str, Any] = {"dataset": _dataset_json(target), "column": None, "depth": depth}
    for direction in directions:
        walk = graph.upstream if direction == "upstream" else graph.downstream
        levels = _levels(walk, target, depth)
        edges = []
        for node in [target, *levels]:
            if direction == "upstream" and levels.get(node, 0) < (depth or 1 << 30):
                for job in graph.producers(node):
                    for source in graph.job_inputs(job):
                        if source in levels:
                            edges.append({"from": _dataset_json(source), "to": _dataset_json(node), "job": str(job)})
            elif direction == "downstream" and levels.get(node, 0) < (depth or 1 << 30):
                for job in graph.consumers(node):
                    for out in graph.job_outputs(job):
                        if out in levels:
                            edges.append({"from": _dataset_json(node), "to": _dataset_json(out), "job": str(job)})
        result[direction] = [_dataset_json(n, lv) for n, lv in levels.items()]
        result[f"{direction}_edges"] = edges
    return result


def _column_lineage(graph: Any, target: Any, column: str, directions: list[str], depth: int | None) -> dict[str, Any]:
    from lineage_auditor.model import ColumnRef

    columns = graph.columns(target)
    ref = ColumnRef(target, column)
    if ref not in columns:
        known = ", ".join(c.field for c in columns) or "none recorded"
        raise LineageAuditError(f"dataset {target} has no column {column!r}; columns: {known}")
    result: dict[str, Any] = {"dataset": _dataset_json(target), "column": column, "depth": depth}
    for direction in directions:
        walk = graph.column_upstream if direction == "upstream" else graph.column_downstream
        levels = _levels(walk, ref, depth)
        nodes = set(levels) | {ref}
        edges = [
            {
                "from": _column_json(e.source),
                "to": _column_json(e.target),
                "job": str(e.job),
                "transformations": [t.to_json() for t in sorted(e.transformations)],
            }
            for e in graph.column_edges()
            if e.source in nodes and e.target in nodes and _on_side(levels, ref, e, direction)
        ]
        result[direction] = [{**_column_json(c), "depth": lv} for c, lv in levels.items()]
        result[f"{direction}_edges"] = edges
    return result


def _on_side(levels: dict[Any, int], start: Any, edge: Any, direction: str) -> bool:
    """An edge belongs to the walk when it points toward the start column, level by level."""
    near, far = (edge.target, edge.source) if direction == "upstream" else (edge.source, edge.target)
    near_level = 0 if near == start else levels.get(near)
    return near_level is not None and far in levels and levels[far] == near_level + 1


def _column_json(ref: Any) -> dict[str, str]:
    return {"namespace": ref.dataset.namespace, "name": ref.dataset.name, "field": ref.field}


def _label(item: dict[str, Any]) -> str:
    name = f"{item['name']}.{item['field']}" if "field" in item else item["name"]
    return f"{name}  [{item['namespace']}]"


def _print_lineage(result: dict[str, Any]) -> None:
    """A tree per direction: each node under the node it feeds (upstream) or is fed by.

    Plain text (not a rich renderable) so long names are never cropped when piped.
    """
    head = dict(result["dataset"], **({"field": result["column"]} if result["column"] else {}))
    click.echo(f"{_label(head)}   (from {result['store']})")
    for direction in ("upstream", "downstream"):
        if direction not in result:
            continue
        click.echo(f"{direction} ({len(result[direction])})")
        children: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        for edge in result[f"{direction}_edges"]:
            near, far = (edge["to"], edge["from"]) if direction == "upstream" else (edge["from"], edge["to"])
            children.setdefault(_key(near), []).append((far, edge))
        lines = _tree_lines(head, children, result["column"] is not None, set(), "")
        for line in lines or ["└── nothing recorded"]:
            click.echo(line)


def _key(node: dict[str, Any]) -> str:
    return json.dumps(node, sort_keys=True)


def _tree_lines(node: dict[str, Any], children: dict[str, list[Any]], columns: bool, path: set[str], indent: str) -> list[str]:
    """Lines for what feeds (or is fed by) ``node``; a node already on the path is a cycle."""
    here = path | {_key(node)}
    branches = sorted(children.get(_key(node), []), key=lambda fe: (_label(fe[0]), fe[1]["job"]))
    lines: list[str] = []
    for i, (far, edge) in enumerate(branches):
        last = i == len(branches) - 1
        kinds = ""
        if columns:
            kinds = "  " + ", ".join(f"{t['type']}/{t.get('subtype', '')}" for t in edge.get("transformations", []))
        cycle = _key(far) in here
        lines.append(f"{indent}{'└── ' if last else '├── '}{_label(far)}{kinds}  via {edge['job']}{'  (cycle)' if cycle else ''}")
        if not cycle:
            lines += _tree_lines(far, children, columns, here, indent + ("    " if last else "│   "))
    return lines


COMMANDS = [replay_command, lineage_group]
