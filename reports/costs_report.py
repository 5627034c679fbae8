"""``lineage-audit costs --format html``: one self-contained page of the costs document.

The page shows the totals by group with a stacked bar plot per day (a PNG in a ``data:`` URI,
drawn by matplotlib), budget status per team and what each AI dataset costs along its
lineage. Every name goes through Jinja autoescaping; a Content-Security-Policy admits no
script and no network at all.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from reports.html_graph import csp_policy
from reports.plots import png_uri, pyplot

TEMPLATES = Path(__file__).parent / "templates"
MAX_SERIES = 8  # groups drawn one by one in the plot; the rest are summed as "other"


def render_costs_html(doc: dict[str, Any]) -> str:
    """The costs document (``lineage-audit costs --format json``) as one HTML page."""
    template = _env().get_template("costs_report.html.j2")
    return template.render(d=doc, csp=csp_policy([]), plot=_plot(doc), budget_plot=_budget_plot(doc["budgets"]))


def _days(doc: dict[str, Any]) -> list[str]:
    first = date.fromisoformat(doc["first"])
    return [(first + timedelta(days=n)).isoformat() for n in range(doc["days"])]


def _plot(doc: dict[str, Any]) -> Markup | None:
    """Stacked bars: the amount per day of each group (the costliest drawn, the rest as other)."""
    rows = doc["rows"]
    if not rows or not doc["total"]:
        return None
    days = _days(doc)
    series = [(r["key"], [r["by_day"].get(d, 0.0) for d in days]) for r in rows[:MAX_SERIES]]
    rest = rows[MAX_SERIES:]
    if rest:
        series.append(("other", [sum(r["by_day"].get(d, 0.0) for r in rest) for d in days]))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    bottom = [0.0] * len(days)
    for key, values in series:
        ax.bar(range(len(days)), values, bottom=bottom, label=key)
        bottom = [b + v for b, v in zip(bottom, values)]
    step = max(1, len(days) // 14)
    ax.set_xticks(range(0, len(days), step), [d[5:] for d in days[::step]], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(doc["currency"] or "amount")
    ax.set_title(f"Cost per day by {doc['by']}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return png_uri(fig)


def _budget_plot(budgets: list[dict[str, Any]]) -> Markup | None:
    """Each team's month-to-date spending as a share of its budget, with its warn and fail marks."""
    if not budgets:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(budgets) + 1))
    colors = {"ok": "#16a34a", "warn": "#d97706", "fail": "#dc2626"}
    ax.barh(range(len(budgets)), [b["share"] * 100 for b in budgets], color=[colors[b["state"]] for b in budgets])
    ax.set_yticks(range(len(budgets)), [b["team"] for b in budgets], fontsize=8)
    for i, b in enumerate(budgets):
        ax.plot([b["warn_at"] * 100] * 2, [i - 0.4, i + 0.4], color="#d97706", linewidth=1)
        ax.plot([b["fail_at"] * 100] * 2, [i - 0.4, i + 0.4], color="#dc2626", linewidth=1)
    ax.set_xlabel("% of the monthly budget spent")
    ax.set_title(f"Budgets, {budgets[0]['month']}", fontsize=10)
    return png_uri(fig)


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                       autoescape=select_autoescape(enabled_extensions=("html.j2",), default=True),
                       trim_blocks=True, lstrip_blocks=True)
