"""Commands that run the reference pipelines: ``run weather``, ``run users-orders``, ``demo``.

The reference pipelines are specs (``pipelines/specs/``) run by the DSL runner; these commands
are shortcuts that know how to reach their sources (the Open-Meteo replay, the bundled mock
users API) and map familiar options onto the specs' params.

Exit codes: 0 every run completed (a degraded run completes), 1 a run failed (its FAIL
event carries the error), 2 bad input (an invalid spec, date, target or option).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from pipelines.sources.cli import COMMANDS as SOURCE_COMMANDS

LINEAGE_HELP = "Where lineage goes: embedded[:PATH] | marquez:URL | http:URL | file:PATH | console | none " \
               "[default: OPENLINEAGE_* env, openlineage.yml, else the embedded store]."
FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
                      help="Output format.")
TARGET = click.option("--target", help="postgresql://USER[:PASS]@HOST:PORT/DB or duckdb:PATH "
                                       "[default: the spec's, else .lineage/warehouse.duckdb].")
LINEAGE = click.option("--lineage", help=LINEAGE_HELP)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from None


@contextmanager
def _progress(total: int, fmt: str) -> Iterator[Callable[[str], None]]:
    """A rich progress display on stderr (silent for JSON output or when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if fmt == "json" or not console.is_terminal:
        yield lambda _: None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("starting", total=total)
        started = False

        def step(description: str) -> None:
            nonlocal started
            if started:
                bar.advance(task)
            started = True
            bar.update(task, description=description)

        yield step
        bar.update(task, completed=total)


def _print_runs(runs: list[Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps({"ok": all(r.ok for r in runs), "runs": [r.to_dict() for r in runs]}, indent=2, default=str))
        return
    console = _console()
    console.print(_runs_table(runs))
    for run in runs:
        if run.error:
            console.print(f"[red]error[/red] {run.pipeline} {run.nominal_start or ''}: {run.error}", markup=True,
                          highlight=False)
        if run.dead_letter_file:
            console.print(f"dead letters: {run.dead_letter_file}", highlight=False)
    undelivered = sum(r.events_undelivered for r in runs)
    if undelivered:
        console.print(f"[yellow]{undelivered} lineage event(s) spooled[/yellow]: deliver them with `lineage-audit replay`")


def _console() -> Any:
    """stdout console; wide enough for the runs table when output goes to a file or pipe."""
    from lineage_auditor.console import stdout_console

    return stdout_console()


def _runs_table(runs: list[Any]) -> Any:
    from rich.table import Table

    table = Table(title="pipeline runs", title_justify="left")
    for column, justify in (("pipeline", "left"), ("nominal time", "left"), ("state", "left"), ("rows", "right"),
                            ("rejected", "right"), ("datasets", "right"), ("columns w/ lineage", "right"),
                            ("seconds", "right"), ("run id", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for run in runs:
        c = run.counts
        rows = c.get("rows_loaded", c.get("user_orders_rows", 0))
        rejected = c.get("quarantined", 0) + c.get("dead_letters", 0)
        state = f"[green]{run.state}[/green]" if run.ok else f"[red]{run.state}[/red]"
        if run.degraded:
            state += " [yellow](degraded)[/yellow]"
        table.add_row(run.pipeline, (run.nominal_start or "")[:16], state, str(rows), str(rejected),
                      str(len(set(run.inputs) | set(run.outputs))), str(run.columns_with_lineage),
                      f"{run.duration_s:.1f}", run.run_id)
    return table


@click.group("run")
def run_group() -> None:
    """Run a reference pipeline once, emitting OpenLineage events for every step.

    Exit codes: 0 every run completed (degraded runs complete), 1 a run failed
    (its FAIL event carries the error), 2 bad input (spec, date, target, option).

    \b
    Examples:
      lineage-audit run weather --offline
      lineage-audit run weather --date 2024-06-01 --target postgresql://me@127.0.0.1:5432/wh
      lineage-audit run users-orders --orders orders.csv --lineage marquez:http://127.0.0.1:5000
    """


@run_group.command("weather")
@click.option("--date", "day", help="The UTC day to load (YYYY-MM-DD) [default: yesterday; --offline: the recorded days].")
@click.option("--start", help="First day of a backfill (YYYY-MM-DD), with --end.")
@click.option("--end", help="Last day of a backfill (YYYY-MM-DD), with --start.")
@click.option("--offline", is_flag=True, help="Fetch from the local replay of recorded Open-Meteo responses.")
@TARGET
@LINEAGE
@FORMAT
def weather_command(day: str | None, start: str | None, end: str | None, offline: bool, target: str | None,
                    lineage: str | None, fmt: str) -> None:
    """Load hourly weather for the spec's locations: fetch, convert, quarantine, upsert.

    Runs the shipped spec pipelines/specs/weather.yml (the same as `pipelines run` on it).
    Re-running a day leaves the same rows (upsert keyed on location and observed_at).
    Readings outside physical bounds go to the quarantine table with their reason.
    Every day of a backfill runs, in order, even after a failed one.

    \b
    Examples:
      lineage-audit run weather --offline
      lineage-audit run weather --date 2024-06-01 --offline --target duckdb:weather.duckdb
      lineage-audit run weather --start 2024-05-01 --end 2024-05-31 --target postgresql://me@db:5432/wh
      lineage-audit run weather --offline --lineage file:events.ndjson --format json
    """
    from pipelines.dsl.runner import run_spec
    from pipelines.reference import recorded_days, reference_spec
    from pipelines.runtime.run import Environment

    days = _weather_days(_day(day, "--date"), _day(start, "--start"), _day(end, "--end"), offline, recorded_days)
    spec = reference_spec("weather")
    with Environment.open(target, lineage=lineage) as env, _progress(len(days), fmt) as progress:
        runs = []
        for one in days:
            progress(f"weather {one.isoformat()}")
            runs.append(run_spec(spec, one, offline=offline, env=env))
    _print_runs(runs, fmt)
    sys.exit(0 if all(r.ok for r in runs) else 1)


def _weather_days(day: date | None, start: date | None, end: date | None, offline: bool,
                  recorded: Callable[[], list[date]]) -> list[date]:
    from pipelines.reference import days_between

    if day and (start or end):
        raise click.UsageError("use either --date or --start/--end")
    if bool(start) != bool(end):
        raise click.UsageError("--start and --end go together")
    if start and end:
        if end < start:
            raise click.BadParameter(f"{end} is before --start {start}", param_hint="--end")
        return days_between(start, end)
    if day:
        return [day]
    if offline:
        return recorded() or [date.today() - timedelta(days=1)]
    return [datetime.now(timezone.utc).date() - timedelta(days=1)]


@run_group.command("users-orders")
@click.option("--api-url", help="Base URL of the users API [default: start the bundled mock API].")
@click.option("--api-token", help="Bearer token for the users API [default: $LINEAGE_AUDIT_USERS_API_TOKEN].")
@click.option("--orders", "orders", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Orders CSV [default: the spec's sample].")
@click.option("--date", "day", help="The run's day (YYYY-MM-DD) [default: today, UTC].")
@TARGET
@LINEAGE
@FORMAT
def users_orders_command(api_url: str | None, api_token: str | None, orders: Path | None, day: str | None,
                         target: str | None, lineage: str | None, fmt: str) -> None:
    """Build analytics.user_orders from the users API and the orders CSV.

    Runs the shipped spec pipelines/specs/users_orders.yml. Users that do not fit and bad CSV
    rows (repeated order ids, unknown statuses too) go to dead-letter files with their page or
    line. If the users API stays down, the run uses the last good users snapshot younger than
    the spec's max_staleness and is marked degraded, or fails without one. The analytics
    table is replaced atomically, never half-written.

    \b
    Examples:
      lineage-audit run users-orders
      lineage-audit run users-orders --orders big.csv --target postgresql://me@127.0.0.1:5432/wh
      LINEAGE_AUDIT_USERS_API_TOKEN=s3cret lineage-audit run users-orders --api-url http://127.0.0.1:8080
    """
    from pipelines.dsl.runner import run_spec
    from pipelines.reference import reference_spec, users_api
    from pipelines.runtime.run import Environment

    spec = reference_spec("users_orders")
    when = _day(day, "--date") or datetime.now(timezone.utc).date()
    with users_api(api_url, api_token) as api, _progress(len(spec.pipeline.steps), fmt) as progress:
        params = api.params() | ({"orders_file": str(orders.resolve())} if orders else {})
        with Environment.open(target, lineage=lineage, secrets=(api.token,) if api.token else ()) as env:
            run = run_spec(spec, when, params=params, env=env, progress=progress)
    _print_runs([run], fmt)
    sys.exit(0 if run.ok else 1)


def _graph_writer() -> Callable[[list[dict[str, Any]], Path], Path] | None:
    """The HTML graph writer from ``reports`` (wired here, in the CLI, to keep ``pipelines`` free of it)."""
    try:
        from lineage_auditor.graph import LineageGraph
        from reports.html_graph import write_graph_html
    except ImportError:
        return None

    def write(events: list[dict[str, Any]], path: Path) -> Path:
        return write_graph_html(LineageGraph.from_events(events), path, title="lineage-audit demo: column lineage")

    return write


@click.command("demo")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"),
              show_default=True, help="Folder for the DuckDB warehouse and the HTML lineage graph.")
@click.option("--lineage", default="embedded", show_default=True, help=LINEAGE_HELP)
@FORMAT
def demo_command(out: Path, lineage: str, fmt: str) -> None:
    """Run both reference pipelines offline end to end and draw their lineage.

    Starts the mock users API and the Open-Meteo replay on 127.0.0.1, runs weather (every
    recorded day) and users-orders (sample orders CSV) into a DuckDB file, records every
    OpenLineage event in the embedded store, prints a summary and writes lineage.html.
    Leaves the demo's audit config, lineage-audit.yml, in the current folder (unless one is
    there already: never overwritten), so `lineage-audit audit` next audits the feature table.
    Exit codes: 0 every run completed, 1 a run failed, 2 bad options.

    \b
    Examples:
      lineage-audit demo
      lineage-audit demo --out /tmp/demo --format json
      lineage-audit demo --lineage marquez:http://127.0.0.1:5000
    """
    from pipelines.demo import run_demo

    with _progress(4, fmt) as progress:
        result = run_demo(out, lineage=lineage, progress=progress, write_graph=_graph_writer(), config_dir=Path.cwd())
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        _print_demo(result)
    sys.exit(0 if result.ok else 1)


def _print_demo(result: Any) -> None:
    from rich.table import Table

    from pipelines.demo import AUDIT_CONFIG

    console = _console()
    console.print(_runs_table(result.runs))
    totals = result.totals()
    summary = Table(title="demo summary", title_justify="left", show_header=False)
    summary.add_column(justify="left")
    summary.add_column(justify="right")
    for label, key in (("pipeline runs", "runs"), ("step runs", "steps"), ("failed runs", "failed"),
                       ("rows loaded", "rows_loaded"), ("datasets", "datasets"),
                       ("columns with lineage", "columns_with_lineage"), ("OpenLineage events", "events"),
                       ("events spooled", "events_undelivered")):
        summary.add_row(label, str(totals[key]))
    console.print(summary)
    console.print(f"warehouse: {result.warehouse}", highlight=False)
    console.print(f"lineage:   {result.store}", highlight=False)
    if result.graph:
        console.print(f"graph:     {result.graph}", highlight=False)
    if result.config_written:
        console.print(f"audit:     wrote {result.config.name}, the demo's audit config; next: "
                      "lineage-audit audit (or report -D features.churn_features)", highlight=False)
    elif result.config is not None:
        console.print(f"audit:     {result.config.name} already here, left unchanged (the demo's is "
                      f"{AUDIT_CONFIG}); lineage-audit audit reads it", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note[/yellow]: {note}")
    for run in result.runs:
        if run.error:
            console.print(f"[red]error[/red] {run.pipeline}: {run.error}", highlight=False)


COMMANDS = [run_group, demo_command, *SOURCE_COMMANDS]
