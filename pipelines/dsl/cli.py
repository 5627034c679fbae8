"""``lineage-audit pipelines validate | plan | schema``: the spec as the product.

Exit codes: 0 every spec is valid, 2 a spec has problems (each printed as file:line:col).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import click

from lineage_auditor.errors import ConfigError

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "spec.schema.json"


@click.group("pipelines")
def pipelines_group() -> None:
    """Pipelines as YAML specs (apiVersion: lineage-audit/v1, kind: Pipeline).

    \b
    Examples:
      lineage-audit pipelines validate specs/
      lineage-audit pipelines plan specs/daily_revenue.yml --date 2024-05-01
      lineage-audit pipelines plan specs/daily_revenue.yml --param min_amount=10 --format json
      lineage-audit pipelines schema > spec.schema.json
    """


@pipelines_group.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--date", "day", help="Render templates for this day (YYYY-MM-DD) [default: yesterday, UTC].")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def validate_command(paths: tuple[Path, ...], day: str | None, fmt: str) -> None:
    """Check specs like a compiler: every problem of every spec, each at file:line:col.

    PATHS are spec files or folders searched for them [default: the current folder]. Checks the
    grammar, then references: depends_on, load.from, cycles, SQL files (they must parse) and
    that every table a step reads is produced by a step it depends on or listed in sources.
    One broken spec never hides the problems of another; exit 2 when any is invalid.
    """
    from pipelines.dsl.loader import SpecErrors, load_specs
    from pipelines.dsl.plan import plan_spec

    specs, problems = load_specs(paths or (Path("."),))
    for loaded in specs:
        try:
            plan_spec(loaded, _day(day))
        except SpecErrors as exc:
            problems.extend(exc.problems)
    valid = len(specs) - len({p.file for p in problems if p.file in {str(s.path) for s in specs}})
    if fmt == "json":
        click.echo(json.dumps({"specs": len(specs) + len({p.file for p in problems} - {str(s.path) for s in specs}),
                               "valid": valid, "problems": [p.__dict__ for p in problems]}, indent=2))
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
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan_command(spec: Path, day: str | None, params: tuple[str, ...], fmt: str) -> None:
    """Show what SPEC will do, before anything runs: steps in order, tables read and written,
    the column lineage every SQL step produces, and the checks."""
    from pipelines.dsl.loader import load_spec
    from pipelines.dsl.plan import plan_spec

    plan = plan_spec(load_spec(spec), _day(day), _params(params))
    if fmt == "json":
        click.echo(json.dumps(plan.to_json(), indent=2))
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
