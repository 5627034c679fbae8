"""Layering: no import cycle between the project's packages, function-level imports included.

A function-level import hides a cycle from Python but not from a reader: each package must
stay usable without the ones above it. Layers, bottom first: the core (``lineage_auditor``'s
model, events, times, errors, graph, SQL engine, audit), the store and event files, emission,
the Marquez collector, store readers, pipelines, reports; the CLI modules sit on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("lineage_auditor", "collectors", "pipelines", "reports")
# Composition roots: the CLI modules, and the service's app and wiring (lineage-audit serve,
# metrics, status), which wire store, audit, reports and specs together as the CLI does.
CLI_MODULES = {"lineage_auditor.cli", "lineage_auditor.cli_audit", "collectors.cli", "collectors.marquez.cli",
               "pipelines.cli", "pipelines.dsl.cli", "pipelines.sources.cli", "pipelines.demo",
               "lineage_auditor.governance.cli", "lineage_auditor.service.cli", "lineage_auditor.service.app",
               "lineage_auditor.service.wiring"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _component(module: str) -> str:
    """The package a module belongs to (``collectors.emit``); modules at the top are their own."""
    parts = module.split(".")
    if len(parts) <= 2 or (REPO.joinpath(*parts) / "__init__.py").is_file():
        return module
    return ".".join(parts[:-1])


def import_graph() -> nx.DiGraph:
    graph: nx.DiGraph = nx.DiGraph()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            module = _module_name(path)
            if module in CLI_MODULES:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    if name.split(".")[0] in PACKAGES and name not in CLI_MODULES:
                        source, target = _component(module), _component(name)
                        if source != target:
                            graph.add_edge(source, target, where=f"{module} imports {name}")
    return graph


def test_no_import_cycle_between_packages():
    graph = import_graph()
    cycles = list(nx.simple_cycles(graph))
    described = [" -> ".join(c + [c[0]]) + ": " + "; ".join(graph.edges[a, b]["where"] for a, b in zip(c, c[1:] + c[:1]))
                 for c in cycles]
    assert not cycles, "\n".join(described)


def test_the_core_imports_nothing_above_it():
    graph = import_graph()
    core = [n for n in graph if n.split(".")[0] == "lineage_auditor"]
    upward = [graph.edges[a, b]["where"] for a in core for b in graph.successors(a) if b.split(".")[0] != "lineage_auditor"]
    assert not upward, upward


def test_the_graph_is_not_empty():
    """Guards the two tests above against a walk that finds nothing."""
    graph = import_graph()
    assert graph.has_edge("collectors.emit", "collectors.store")
    assert graph.has_edge("lineage_auditor.audit", "lineage_auditor.events")
