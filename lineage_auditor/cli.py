"""The ``lineage-audit`` command line: the one place that wires the packages together.

Exit codes (every command): 0 ok, 1 findings at or above ``--fail-on``, 2 usage or input
error, 3 an unexpected internal error (a bug: one line on stderr names the file holding the
full trace), so a CI gate can tell a crash from a finding. Commands that drive one package live next to it (``collectors/cli.py``,
``pipelines/cli.py``, ``lineage_auditor/cli_audit.py``) and are registered here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from lineage_auditor.errors import LineageAuditError
from lineage_auditor.scrub import scrub_text

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INPUT = 2
EXIT_INTERNAL = 3
CRASH_PREFIX = "lineage-audit-crash-"

DIALECTS = ("ansi", "postgres", "duckdb", "bigquery", "snowflake", "spark", "databricks", "hive",
            "mysql", "tsql", "trino", "presto", "redshift", "sqlite", "oracle", "clickhouse", "teradata")


# Commands other packages define: name -> (module whose ``COMMANDS`` holds it, the first
# paragraph of its help). Modules load only when one of their commands runs, so ``--help``,
# ``--version`` and every light command start without pandas, duckdb, sqlglot or httpx; the
# help is repeated here for the command list, and a test holds it equal to each docstring.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("lineage_auditor.cli_audit",
              "Audit AI datasets: lineage, drift, freshness, PII propagation, coverage, failed data-quality assertions and governance."),
    "baseline": ("lineage_auditor.cli_audit",
                 "Save the lineage (and data samples) that later audits compare against."),
    "report": ("lineage_auditor.cli_audit", "Write a datasheet-style audit report for one AI dataset."),
    "replay": ("collectors.cli", "Deliver spooled OpenLineage events to the lineage target, in order."),
    "lineage": ("collectors.cli", "Query recorded lineage (embedded store, Marquez or OpenLineage files)."),
    "marquez": ("collectors.marquez.cli", "Run a local Marquez lineage server (no Docker needed)."),
    "collect": ("collectors.marquez.cli", "Copy OpenLineage events from one lineage store to another."),
    "run": ("pipelines.cli", "Run a reference pipeline once, emitting OpenLineage events for every step."),
    "demo": ("pipelines.cli", "Run both reference pipelines offline end to end and draw their lineage."),
    "mock-api": ("pipelines.sources.cli",
                 "Serve the mock users REST API (paginated users, bearer auth, fault injection)."),
    "pipelines": ("pipelines.dsl.cli", "Pipelines as YAML specs (apiVersion: lineage-audit/v1, kind: Pipeline)."),
    "costs": ("lineage_auditor.governance.cli",
              "What pipelines cost, by team, pipeline, dataset or day; budget status per team; and what each AI dataset costs along its lineage (every upstream step summed)."),
    "serve": ("lineage_auditor.service.cli",
              "Serve the OpenLineage endpoint, Prometheus metrics and status pages over a lineage store."),
    "metrics": ("lineage_auditor.service.cli", "Print (or write) the Prometheus metrics that `serve` exposes at /metrics."),
    "status": ("lineage_auditor.service.cli",
               "One screen for all pipelines: last run, recent durations, deadline, findings, cost."),
    "tokens": ("lineage_auditor.service.cli", "Bearer tokens for `serve` (kept hashed; a token is shown once, when added)."),
    "alerts": ("lineage_auditor.service.cli",
               "Alerts without Prometheus: the policy's alerts: routes pipeline failures, missed deadlines, spool backlog, budgets and HIGH AI-dataset findings to webhooks and the console."),
    "policy": ("lineage_auditor.governance.cli",
               "The governance policy (governance.yml): teams, grants, restricted tags, budgets, costs."),
    "generate-orders": ("pipelines.sources.cli",
                        "Write a seeded orders CSV (order_id,user_id,order_ts,amount,currency,status)."),
}


class AuditGroup(click.Group):
    """A click group that loads commands on first use, turns our errors into one clear line
    and exit code 2, and anything unexpected into one line, a trace file and exit code 3.

    The line is scrubbed of secrets whatever raised it: an address given on the command
    line (``marquez:http://user:password@host``) may be quoted in any message.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            load_commands(LAZY_COMMANDS[cmd_name][0])
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        unknown = getattr(click.exceptions, "NoSuchCommand", None)  # click >= 8.2 suggests close names
        if unknown and name and not name.startswith("-") and self.get_command(ctx, name) is None:
            raise unknown(name, possibilities=self.list_commands(ctx), ctx=ctx)  # every name, loaded or not
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from :data:`LAZY_COMMANDS`, without importing a command module."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is None:
                stand_in = click.Command(name, help=LAZY_COMMANDS[name][1])  # shortened the way click does
                rows.append((name, stand_in.get_short_help_str(limit)))
            elif not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: usage errors (exit 2), ctx.exit(n), Ctrl-C
        except LineageAuditError as exc:
            click.echo(f"error: {scrub_text(str(exc))}", err=True)
            ctx.exit(EXIT_INPUT)
        except OSError as exc:
            name = getattr(exc, "filename", None)
            msg = f"{name}: {exc.strerror}" if name and exc.strerror else str(exc)
            click.echo(f"error: {scrub_text(msg)}", err=True)
            ctx.exit(EXIT_INPUT)
        except Exception as exc:  # noqa: BLE001 - a bug: never a traceback, never exit 1
            report_crash(exc)
            ctx.exit(EXIT_INTERNAL)


def report_crash(exc: BaseException) -> str:
    """Write the full trace (scrubbed of secrets) to a file, say so in one line; the file's path.

    The one line is what a CI log shows; the file is what a bug report needs.
    """
    import os
    import tempfile
    import traceback

    from lineage_auditor.scrub import scrub_text

    trace = scrub_text("".join(traceback.format_exception(exc)))
    summary = scrub_text(f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__)
    try:
        fd, path = tempfile.mkstemp(prefix=CRASH_PREFIX, suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"lineage-audit {_version()}\n{scrub_text(' '.join(sys.argv))}\n\n{trace}")
        where = f"full trace in {path}"
    except OSError as write_error:
        path, where = "", f"could not write the trace ({write_error.strerror})"
    click.echo(f"internal error: {summary[:300]} (a bug in lineage-audit; {where})", err=True)
    return path


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lineage-audit")
    except PackageNotFoundError:
        return "(not installed)"


@click.group(cls=AuditGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="lineage-audit")
def cli() -> None:
    """Audit where every column of your data came from.

    \b
    Examples:
      lineage-audit sql models/*.sql --schema schema.yml --format json
      lineage-audit graph models/*.sql -o lineage.html
      lineage-audit demo

    Exit codes: 0 ok, 1 findings at or above --fail-on, 2 usage or input error,
    3 internal error (a bug; stderr names the file with the full trace).
    """


def _sql_options(func):
    """Options shared by the commands that read SQL files."""
    func = click.option("--namespace", default="default", show_default=True,
                        help="OpenLineage namespace of the tables, e.g. postgres://db:5432.")(func)
    func = click.option("--schema", "schema_path", type=click.Path(dir_okay=False),
                        help="JSON or YAML file: {table: {column: type}}.")(func)
    func = click.option("--dialect", "-d", type=click.Choice(DIALECTS, case_sensitive=False), default=None,
                        help="SQL dialect of the files (default: sqlglot's generic dialect).")(func)
    func = click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))(func)
    return func


PROGRESS_AFTER_FILES = 20


def _analyze(files, dialect, schema_path, namespace):
    """Run the engine over the files, with a progress bar on stderr for long runs."""
    from rich.progress import Progress

    from lineage_auditor.sql import analyze_files, load_schema

    schema = load_schema(schema_path) if schema_path else None
    kwargs = {"dialect": dialect.lower() if dialect else None, "schema": schema, "namespace": namespace}
    if len(files) < PROGRESS_AFTER_FILES:
        return analyze_files(list(files), **kwargs)
    with Progress(transient=True, console=_stderr_console()) as progress:
        task = progress.add_task("column lineage", total=len(files))
        result = analyze_files(list(files), on_file=lambda _: progress.advance(task), **kwargs)
    return result


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _write_html(result, out: str | None, title: str) -> str:
    from lineage_auditor.graph import LineageGraph
    from reports.html_graph import write_graph_html

    path = Path(out or "lineage.html")
    write_graph_html(LineageGraph.from_sql_result(result), path, title=title)
    return str(path)


@cli.command("sql")
@_sql_options
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def sql_command(files, dialect, schema_path, namespace, fmt, out) -> None:
    """Column-level lineage of SQL files (OpenLineage columnLineage semantics).

    Every statement that writes (CREATE TABLE AS, CREATE VIEW, INSERT, MERGE, UPDATE) or
    reads (SELECT, reported as _select_<n>) gets the lineage of each output column.
    Several files are read in order as one script: lineage is also traced end to end
    through tables and views the script itself created.

    \b
    Examples:
      lineage-audit sql etl/daily.sql --dialect postgres --schema schema.yml
      lineage-audit sql models/*.sql -d duckdb --format json -o lineage.json
      lineage-audit sql report.sql --format html -o report-lineage.html

    Exit code 2 when any statement does not parse (the others still get lineage).
    """
    from lineage_auditor.sql.output import render_text, result_to_json

    result = _analyze(files, dialect, schema_path, namespace)
    if fmt == "html":
        path = _write_html(result, out, title=", ".join(Path(f).name for f in files))
        click.echo(f"wrote {path}", err=True)
    else:
        text = json.dumps(result_to_json(result), indent=2) + "\n" if fmt == "json" else render_text(result)
        if out:
            Path(out).write_text(text, encoding="utf-8")
        else:
            click.echo(text, nl=False)
    if fmt != "text":
        for problem in result.errors:
            click.echo(f"error: {problem}", err=True)
    sys.exit(EXIT_INPUT if result.errors else EXIT_OK)


@cli.command("graph")
@_sql_options
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), default="lineage.html", show_default=True)
@click.option("--title", default=None, help="Page title (default: the file names).")
def graph_command(files, dialect, schema_path, namespace, out, title) -> None:
    """Write one self-contained, interactive HTML lineage graph from SQL files.

    The page works offline: table and column views, a search box, click a node to see its
    columns and what is upstream and downstream of it.

    \b
    Examples:
      lineage-audit graph models/*.sql --schema schema.yml -o lineage.html
      lineage-audit graph etl.sql -d postgres --title "Nightly ETL"
    """
    result = _analyze(files, dialect, schema_path, namespace)
    path = _write_html(result, out, title=title or ", ".join(Path(f).name for f in files))
    for problem in result.errors:
        click.echo(f"error: {problem}", err=True)
    click.echo(f"wrote {path}")
    sys.exit(EXIT_INPUT if result.errors else EXIT_OK)


def load_commands(module_name: str) -> None:
    """Attach the commands one module defines (its ``COMMANDS``) to the group."""
    import importlib

    for command in importlib.import_module(module_name).COMMANDS:
        if command.name not in cli.commands:
            cli.add_command(command)


def _register() -> None:
    """Attach every command now (tests and tools that walk ``cli.commands``)."""
    for module_name in dict.fromkeys(module for module, _ in LAZY_COMMANDS.values()):
        load_commands(module_name)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="lineage-audit", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
