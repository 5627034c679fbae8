"""``lineage-audit policy check | schema``: the governance policy on the command line.

Exit codes: 0 the policy is valid, 2 it has problems (each printed as file:line:col).
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("policy")
def policy_group() -> None:
    """The governance policy (governance.yml): teams, grants, restricted tags, budgets, costs.

    \b
    Examples:
      lineage-audit policy check governance.yml
      lineage-audit policy schema > policy.schema.json
    """


@policy_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check_command(path: Path, fmt: str) -> None:
    """Check a policy like a compiler: every problem at file:line:col; exit 2 when there is any.

    \b
    Examples:
      lineage-audit policy check governance.yml
      lineage-audit policy check governance.yml --format json
    """
    from lineage_auditor.governance import PolicyErrors, load_policy

    try:
        policy = load_policy(path)
    except PolicyErrors as exc:
        if fmt == "json":
            click.echo(json.dumps({"valid": False, "problems": [p.__dict__ for p in exc.problems]}, indent=2))
        else:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
        raise SystemExit(2) from None
    doc = policy.document
    summary = {"valid": True, "teams": len(doc.teams), "grants": len(doc.grants), "restricted_tags": len(doc.restricted_tags),
               "ai_datasets": len(doc.ai_datasets), "budgets": len(doc.budgets), "cost_model": doc.cost_model is not None}
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"{path}: valid ({summary['teams']} teams, {summary['grants']} grants, {summary['restricted_tags']} "
                   f"restricted tags, {summary['ai_datasets']} AI datasets, {summary['budgets']} budgets"
                   + (", a cost model)" if summary["cost_model"] else ", no cost model)"))


@policy_group.command("schema")
@click.option("--write", is_flag=True, help="Write it to the package's policy.schema.json instead of printing it.")
def schema_command(write: bool) -> None:
    """Print the policy's JSON Schema (for editors: yaml-language-server: $schema=...)."""
    from lineage_auditor.governance.schema import SCHEMA_FILE, policy_json_schema

    text = policy_json_schema()
    if write:
        SCHEMA_FILE.write_text(text, encoding="utf-8")
        click.echo(f"wrote {SCHEMA_FILE}")
    else:
        click.echo(text, nl=False)


COMMANDS = [policy_group]
