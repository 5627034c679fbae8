"""The pages of ``lineage-audit serve``: status, a pipeline, a dataset, findings, costs.

Server-rendered from one Jinja template (autoescape: every name is text, never markup) and
self-contained: no CDN, no script except the graph view's two inline scripts, which the
dataset page's Content-Security-Policy allows by hash (:func:`reports.html_graph.csp_policy`).
Data comes in ready-made (rows of dicts, the one run model, the lineage graph); nothing here
reads a store.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from lineage_auditor.events import Run
from lineage_auditor.graph import LineageGraph
from lineage_auditor.model import ColumnRef, DatasetRef, JobRef
from reports.html_graph import _env, csp_policy, graph_view

PLOT_W, PLOT_H, BAR_GAP = 600, 120, 2
FRAME_ANCESTORS = "; frame-ancestors 'none'"


def _render(page: str, title: str, user: str, **context: Any) -> str:
    context.setdefault("view", None)
    return _env().get_template("service_page.html.j2").render(page=page, title=title, user=user, **context)


def status_page(rows: list[dict[str, Any]], *, store: str, user: str) -> str:
    return _render("status", "Pipelines", user, rows=rows, store=store)


def duration_plot(runs: Sequence[Run]) -> dict[str, Any]:
    """Bars of the runs' durations (oldest left), as SVG geometry: no script draws it."""
    timed = [r for r in runs if r.duration_s is not None][-60:]
    longest = max((r.duration_s or 0.0 for r in timed), default=0.0) or 1.0
    width = max(4, (PLOT_W - BAR_GAP * len(timed)) // max(1, len(timed)))
    bars = []
    for i, run in enumerate(timed):
        height = max(1, int((run.duration_s or 0.0) / longest * (PLOT_H - 16)))
        bars.append({"x": i * (width + BAR_GAP), "y": PLOT_H - height, "w": width, "h": height,
                     "cls": "ok" if run.state.value == "COMPLETE" else "bad",
                     "label": f"{run.started_at.isoformat() if run.started_at else '?'}: {run.duration_s:.1f} s {run.state.value}"})
    return {"width": PLOT_W, "height": PLOT_H, "bars": bars, "max_label": f"max {longest:.0f} s"}


def pipeline_page(name: str, status: Any, runs: Sequence[Run], steps: list[dict[str, Any]], *, user: str) -> str:
    """Run history (newest first) with a duration plot, the steps' latest runs, errors."""
    return _render("pipeline", f"Pipeline {name}", user, status=status, plot=duration_plot(runs),
                   runs=[r.to_json() for r in reversed(runs)], steps=steps)


def dataset_page(graph: LineageGraph, dataset: DatasetRef, findings: Iterable[Any], *, user: str,
                 withheld_columns: Mapping[ColumnRef, str] | None = None,
                 withheld_jobs: Collection[JobRef] = ()) -> tuple[str, str]:
    """The dataset's columns and where each comes from, its writers, its findings and the
    lineage graph focused on it; the page and its CSP.

    A column in ``withheld_columns`` (the reader may not read it; the value says why) is shown
    by name with the reason; the SQL of the jobs in ``withheld_jobs`` is left out everywhere.
    """
    hidden = withheld_columns or {}
    columns = []
    for column in graph.columns(dataset):
        upstream = [f"{c.dataset.name}.{c.field}" for c in graph.column_upstream(column, 1)]
        columns.append({"name": column.field, "upstream": upstream, "withheld": hidden.get(column, "")})
    writers = []
    for job in graph.producers(dataset):
        sql = str(graph.info(job).get("sql") or "")
        withheld = job in withheld_jobs
        writers.append({"job": str(job), "sql": "" if withheld else sql, "sql_hidden": bool(sql) and withheld})
    view = graph_view(graph, focus=dataset, hide_sql=withheld_jobs)
    html = _render("dataset", f"Dataset {dataset.name}", user, dataset=dataset, columns=columns, writers=writers,
                   findings=[f.to_json() for f in findings], view=view)
    return html, csp_policy(view.script_hashes) + FRAME_ANCESTORS


def login_page(*, next: str, error: str) -> str:
    """The sign-in form (a token, posted to /login; no script)."""
    return _render("login", "Sign in", "", next=next, error=error)


def findings_page(findings: Iterable[Any], *, error: str, user: str) -> str:
    return _render("findings", "Findings", user, findings=[f.to_json() for f in findings], error=error)


def costs_page(costs: list[dict[str, Any]], *, user: str) -> str:
    return _render("costs", "Costs", user, costs=costs)
