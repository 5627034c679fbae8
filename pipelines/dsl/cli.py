"""``lineage-audit pipelines validate | plan | schema``: the spec as the product.

Exit codes: 0 every spec is valid, 2 a spec has problems (each printed as file:line:col).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from lineage_auditor.errors import ConfigError

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "spec.schema.json"


def _governance_options(func):
    """``--policy`` and ``--config``: where the governance policy (and the tags it needs) come from."""
    func = click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                        help="Project config naming the policy (governance:) and tags [default: ./lineage-audit.yml].")(func)
    func = click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path),
                        help="Governance policy to enforce [default: governance: in the project config, else none].")(func)
    return func


@click.group("pipelines")
def pipelines_group() -> None:
    """Pipelines as YAML specs (apiVersion: lineage-audit/v1, kind: Pipeline).

    \b
    Examples:
      lineage-audit pipelines validate specs/
      lineage-audit pipelines plan specs/daily_revenue.yml --date 2024-05-01
      lineage-audit pipelines plan specs/daily_revenue.yml --param min_amount=10 --format json
      lineage-audit pipelines validate specs/ --policy governance.yml
      lineage-audit pipelines run specs/daily_revenue.yml --date 2024-05-01 --as gina
      lineage-audit pipelines compile --airflow dags/ specs/
      lineage-audit pipelines schema > spec.schema.json
    """


@pipelines_group.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--date", "day", help="Render templates for this day (YYYY-MM-DD) [default: yesterday, UTC].")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_governance_options
def validate_command(paths: tuple[Path, ...], day: str | None, fmt: str, policy_path: Path | None,
                     config_path: Path | None) -> None:
    """Check specs like a compiler: every problem of every spec, each at file:line:col.

    PATHS are spec files or folders searched for them [default: the current folder]. Checks the
    grammar, then references: depends_on, load.from, cycles, SQL files (they must parse) and
    that every table a step reads is produced by a step it depends on or listed in sources.
    With a governance policy, every dataset a spec writes and every column it reads is checked
    against it. One broken spec never hides the problems of another; exit 2 when any is invalid.
    """
    from pipelines.dsl.governance import check_plan, load_governance
    from pipelines.dsl.loader import SpecErrors, load_specs, spec_files
    from pipelines.dsl.plan import plan_spec

    files = spec_files(paths or (Path("."),))
    if not files:  # a gate that checked nothing must not pass
        where = ", ".join(str(p) for p in paths) or "the current folder"
        raise ConfigError(f"no pipeline spec in {where} (a spec is a YAML file saying kind: Pipeline)")
    gov = load_governance(policy_path, config_path)
    specs, problems = load_specs(files)
    valid = 0  # a spec's problems may sit in another file (its SQL, its defaults): count specs, not files
    for loaded in specs:
        try:
            denied = check_plan(loaded, plan_spec(loaded, _day(day)), gov)
        except SpecErrors as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(denied)
        valid += not denied
    if fmt == "json":
        click.echo(json.dumps({"specs": len(files), "valid": valid, "problems": [p.__dict__ for p in problems]}, indent=2))
    else:
        for problem in problems:
            click.echo(str(problem), err=True)
        click.echo(f"{valid} valid spec{'s' if valid != 1 else ''}, {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    if problems:
        raise SystemExit(2)


@pipelines_group.command("plan")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--date", "day", help="The day to plan (YYYY-MM-DD) [default: yesterday, UTC].")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a declared parameter (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where --format html writes the page [default: <pipeline id>-plan.html].")
@_governance_options
def plan_command(spec: Path, day: str | None, params: tuple[str, ...], fmt: str, output: Path | None,
                 policy_path: Path | None, config_path: Path | None) -> None:
    """Show what SPEC will do, before anything runs: steps in order, tables read and written,
    the column lineage every SQL step produces, and the checks (--format html: as the
    interactive lineage graph); then what the governance policy says of it (exit 2 on a denial)."""
    from pipelines.dsl.governance import ai_fingerprints, check_plan, load_governance
    from pipelines.dsl.loader import load_spec
    from pipelines.dsl.plan import plan_spec

    loaded = load_spec(spec)
    plan = plan_spec(loaded, _day(day), _params(params))
    gov = load_governance(policy_path, config_path)
    denied = check_plan(loaded, plan, gov)
    fingerprints = ai_fingerprints(loaded, plan, gov)
    _show_plan(plan, fmt, output, {"policy": gov.policy.file if gov.policy else None, "summary": gov.describe(),
                                   "ai_datasets": fingerprints, "denials": [p.__dict__ for p in denied]})
    if denied:
        for problem in denied:
            click.echo(str(problem), err=True)
        raise SystemExit(2)


def _show_plan(plan: Any, fmt: str, output: Path | None, governance: dict[str, Any]) -> None:
    if fmt == "html":
        from pipelines.dsl.plan_graph import plan_graph
        from reports.html_graph import write_graph_html

        path = write_graph_html(plan_graph(plan), output or Path(f"{plan.pipeline.id}-plan.html"),
                                title=f"{plan.pipeline.id}: planned column lineage for {plan.day}")
        click.echo(f"wrote {path}")
        return
    if fmt == "json":
        click.echo(json.dumps({**plan.to_json(), "governance": governance}, indent=2))
        return
    click.echo(f"{plan.pipeline.id} (team {plan.pipeline.team}) on {plan.day}: {len(plan.steps)} steps")
    for n, step in enumerate(plan.steps, 1):
        after = f" after {', '.join(step.depends_on)}" if step.depends_on else ""
        click.echo(f"{n:>3}. {step.id} [{step.kind.value}]{after}")
        if step.reads:
            click.echo(f"       reads  {', '.join(step.reads)}")
        if step.writes:
            click.echo(f"       writes {', '.join(step.writes)}")
        for table, fields in step.to_json()["column_lineage"].items():
            for name, inputs in fields.items():
                sources = ", ".join(f"{i['from']} ({'; '.join(i['transformations'])})" for i in inputs) or "(no input column)"
                click.echo(f"         {table}.{name} <- {sources}")
        for check in step.checks:
            click.echo(f"       check  {check}")
    click.echo(governance["summary"])
    for table, ai in governance["ai_datasets"].items():
        click.echo(f"  AI dataset {table}: SQL fingerprint {ai['sql']} (owner {ai['owner']} approves it: "
                   f"approvals: [{{dataset: {table}, by: {ai['owner'].removeprefix('team:')}, sql: {ai['sql']}}}])")
    if governance["policy"]:
        denials = len(governance["denials"])
        click.echo(f"  {denials} denial{'s' if denials != 1 else ''}")


@pipelines_group.command("run")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--date", "day", help="The day to run (YYYY-MM-DD) [default: yesterday, UTC].")
@click.option("--start", help="First day of a backfill (YYYY-MM-DD), with --end; days run in order.")
@click.option("--end", help="Last day of a backfill (YYYY-MM-DD), with --start.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a declared parameter (repeatable).")
@click.option("--target", help="postgresql://USER[:PASS]@HOST:PORT/DB or duckdb:PATH [default: the spec's, else the local DuckDB].")
@click.option("--lineage", help="Where lineage goes: embedded[:PATH] | marquez:URL | http:URL | file:PATH | console | none.")
@click.option("--offline", is_flag=True, help="Connectors replay recorded responses (open_meteo) instead of live sources.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--as", "as_user", metavar="USER", help="Run as this user [default: $LINEAGE_AUDIT_USER, else the OS user].")
@_governance_options
def run_command(spec: Path, day: str | None, start: str | None, end: str | None, params: tuple[str, ...],
                target: str | None, lineage: str | None, offline: bool, fmt: str, as_user: str | None,
                policy_path: Path | None, config_path: Path | None) -> None:
    """Run SPEC locally: steps in dependency order, retries and timeouts from the spec, one
    OpenLineage parent run for the pipeline and a child run per step.

    Without --date or --start/--end it runs yesterday (UTC); a spec with `catchup: true` first
    runs every day after its last completed run (read from the lineage store), oldest first.
    A backfill stops at the first failed day.

    With a governance policy, the run is checked again on its rendered SQL and against who
    runs it (--as, LINEAGE_AUDIT_USER or the OS user); every run records runBy and team.
    Exit 0 when every run completed, 1 when a run failed or was denied (its FAIL event says why).
    """
    from lineage_auditor.governance import resolve_identity
    from pipelines.dsl.governance import load_governance
    from pipelines.dsl.loader import load_spec
    from pipelines.dsl.runner import run_spec

    loaded = load_spec(spec)
    if day or start or end:
        days = _days(day, start, end)
    else:  # yesterday; with catchup, every day since the last completed run
        from pipelines.dsl.listing import days_to_run

        days = days_to_run(loaded, store=lineage, today=datetime.now(timezone.utc).date())
    gov = load_governance(policy_path, config_path, store=lineage)
    identity = resolve_identity(as_user)
    summaries = []
    for one in days:
        summary = run_spec(loaded, one, params=_params(params), target=target, lineage=lineage, offline=offline,
                           progress=lambda text: click.echo(text, err=True), governance=gov, identity=identity)
        summaries.append(summary)
        if not summary.ok:
            break  # a backfill stops at the first failed day: later days would build on it
    if fmt == "json":
        click.echo(json.dumps({"ok": all(s.ok for s in summaries), "runs": [s.to_dict() for s in summaries]}, indent=2, default=str))
    else:
        for s in summaries:
            click.echo(f"{s.pipeline} {s.nominal_start or ''}: {s.state} in {s.duration_s:.1f}s" + (f": {s.error}" if s.error else ""))
            for step in s.steps:
                click.echo(f"  {step.job}: {step.state} ({step.duration_s:.2f}s)" + (f": {step.error}" if step.error else ""))
    if not all(s.ok for s in summaries):
        raise SystemExit(1)


def _days(day: str | None, start: str | None, end: str | None) -> list[date]:
    if start or end:
        if not (start and end) or day:
            raise ConfigError("a backfill needs both --start and --end (and no --date)")
        first, last = _day(start), _day(end)
        if last < first:
            raise ConfigError(f"--end {last} is before --start {first}")
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [_day(day)]


@pipelines_group.command("list")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--store", help="Lineage store to read last runs from [default: the configured one].")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_command(paths: tuple[Path, ...], store: str | None, fmt: str) -> None:
    """Every spec under PATHS: team, schedule as staggered, next run, last run and its duration."""
    from pipelines.dsl.listing import list_pipelines

    rows, problems = list_pipelines(paths or (Path("."),), store=store)
    if fmt == "json":
        click.echo(json.dumps({"pipelines": rows, "problems": [str(p) for p in problems]}, indent=2))
    else:
        from lineage_auditor.console import stdout_console
        from rich.table import Table

        table = Table(title="pipelines", title_justify="left")
        for heading in ("id", "team", "schedule", "next run (UTC)", "last run", "duration"):
            table.add_column(heading, no_wrap=heading in ("id", "schedule"), overflow="fold")  # never cut an id
        for row in rows:
            last = f"{row['last_state']} {_minute(row['last_run_at'])}".strip() if row["last_state"] else "never ran"
            duration = f"{row['last_duration_s']:.1f}s" if row["last_duration_s"] is not None else ""
            table.add_row(row["id"], row["team"], row["schedule"], _minute(row["next_run"]) or "-", last, duration)
        stdout_console().print(table)
        for problem in problems:
            click.echo(str(problem), err=True)
    if problems:
        raise SystemExit(2)


@pipelines_group.command("compile")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--airflow", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The Airflow DAG folder to write one <pipeline id>.py into per spec.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def compile_command(paths: tuple[Path, ...], out_dir: Path, fmt: str) -> None:
    """Compile specs into Apache Airflow 3 DAG files: one static, readable file per spec.

    PATHS are spec files or folders searched for them [default: the current folder]. Each
    step becomes a task of lineage-audit's operator running the same step code as `pipelines
    run`; the OpenLineage provider reports its column lineage. Recompiling an unchanged spec
    gives the same bytes (the file is not rewritten), so DAG diffs review well. A broken spec
    writes nothing: every problem is printed at file:line:col and the exit code is 2.

    \b
    Examples:
      lineage-audit pipelines compile --airflow dags/ specs/
      lineage-audit pipelines compile --airflow dags/ specs/daily_revenue.yml --format json
    """
    from pipelines.airflow.compile import compile_specs
    from pipelines.dsl.loader import SpecErrors, load_specs, spec_files

    specs, problems = load_specs(spec_files(paths or (Path("."),)))
    if not specs and not problems:
        raise ConfigError(f"no pipeline specs found in {', '.join(str(p) for p in paths) or 'the current folder'}")
    try:
        compiled = compile_specs(specs, out_dir, write=not problems)
    except SpecErrors as exc:
        problems.extend(exc.problems)
    if problems:  # nothing is written while any spec is broken
        for problem in problems:
            click.echo(str(problem), err=True)
        raise SystemExit(2)
    if fmt == "json":
        click.echo(json.dumps({"dags": [{"dag_id": c.dag_id, "spec": str(c.spec), "file": str(c.path), "tasks": c.tasks,
                                         "changed": c.changed} for c in compiled]}, indent=2))
        return
    for c in compiled:
        click.echo(f"{c.path}: {c.dag_id}, {c.tasks} task{'s' if c.tasks != 1 else ''}"
                   + ("" if c.changed else " (unchanged)"))


@pipelines_group.command("schema")
@click.option("--write", is_flag=True, help=f"Write it to the package's {SCHEMA_FILE.name} instead of printing it.")
def schema_command(write: bool) -> None:
    """Print the spec's JSON Schema (for editors: yaml-language-server: $schema=...)."""
    from pipelines.dsl.schema import spec_json_schema

    text = spec_json_schema()
    if write:
        SCHEMA_FILE.write_text(text, encoding="utf-8")
        click.echo(f"wrote {SCHEMA_FILE}")
    else:
        click.echo(text, nl=False)


def _minute(stamp: str | None) -> str:
    """An ISO time as ``2026-12-05 02:30`` (a table cell; JSON keeps the full time)."""
    return stamp[:16].replace("T", " ") if stamp else ""


def _day(text: str | None) -> date:
    if not text:
        return (datetime.now(timezone.utc) - timedelta(days=1)).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--date: {text!r} is not a date (YYYY-MM-DD)") from None


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--param {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


COMMANDS = [pipelines_group]
