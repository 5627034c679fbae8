"""The CLI under hostile input and its own bugs: our error at file:line (exit 2), a crash is exit 3.

Every case runs the real console entry point in a subprocess, as a CI job would: what
matters is the exit code and what lands on stderr, never a Python traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, code: str | None = None) -> subprocess.CompletedProcess:
    """``lineage-audit ARGS`` in a fresh interpreter; ``code`` runs first (to plant a bug)."""
    script = (code or "") + "\nfrom lineage_auditor.cli import main\nimport sys\nmain(sys.argv[1:])\n"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(cwd), **(env or {})},
    )


# ---------------------------------------------------------------- exit 3: a bug, not a finding


PLANTED_BUG = """
import lineage_auditor.sql as engine
def broken(*args, **kwargs):
    raise KeyError("column 'x' went missing while connecting to postgresql://etl:hunter2@db/wh")
engine.analyze_files = broken
"""


def test_an_unexpected_exception_exits_3_with_one_line_and_the_trace_in_a_file(tmp_path):
    query = tmp_path / "q.sql"
    query.write_text("SELECT 1 AS a")
    done = run_cli("sql", str(query), cwd=tmp_path, code=PLANTED_BUG)
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("internal error: KeyError:") and "a bug in lineage-audit" in lines[0]
    assert "hunter2" not in done.stderr, "the one line is scrubbed of secrets"
    trace_file = Path(lines[0].rsplit("full trace in ", 1)[1].rstrip(")"))
    assert trace_file.parent == tmp_path and trace_file.is_file()
    trace = trace_file.read_text()
    assert "Traceback (most recent call last)" in trace and "in broken" in trace and "KeyError" in trace
    assert "hunter2" not in trace, "the trace file is scrubbed of secrets too"


def test_our_errors_and_usage_errors_stay_exit_2(tmp_path):
    bad = tmp_path / "broken.sql"
    bad.write_bytes(b"SELECT 1 AS a FROM t WHERE b = '\xff'")
    done = run_cli("sql", str(bad), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {bad}:1:33: not UTF-8 text (invalid start byte at byte 33)"
    usage = run_cli("sql", cwd=tmp_path)
    assert usage.returncode == 2 and "Missing argument" in usage.stderr and "internal error" not in usage.stderr
    help_text = run_cli("--help", cwd=tmp_path).stdout
    assert "3 internal error" in " ".join(help_text.split()), "the exit codes are documented in --help"


# ---------------------------------------------------------------- hostile input: one clear line, exit 2


NOT_UTF8_YAML = b"version: 1\nai_datasets:\n  - name: caf\xe9\n"
DEEP_YAML = b"a: " + b"[" * 5000
DEEP_JSON = b'{"t": ' + b"[" * 5000


@pytest.mark.parametrize(
    "name, content, args, expected",
    [
        ("schema.yml", NOT_UTF8_YAML, ["sql", "{q}", "--schema", "{f}"], "{f}:3:14: not UTF-8 text (invalid continuation byte at byte 38)"),
        ("schema.yml", DEEP_YAML, ["sql", "{q}", "--schema", "{f}"], "{f}:1:103: invalid YAML: nested deeper than 100 levels"),
        ("schema.json", DEEP_JSON, ["sql", "{q}", "--schema", "{f}"], "{f}:1:506: invalid JSON: nested deeper than 500 levels"),
        ("audit.yml", NOT_UTF8_YAML, ["audit", "--config", "{f}"], "{f}:3:14: not UTF-8 text (invalid continuation byte at byte 38)"),
        ("audit.yml", DEEP_YAML, ["audit", "--config", "{f}"], "{f}:1:103: invalid YAML: nested deeper than 100 levels"),
        ("audit.yml", b"a: &x [*x]\n", ["audit", "--config", "{f}"], "{f}:1:4: invalid YAML: an alias refers to a node that contains it"),
        ("audit.yml", b"version: 1\nbaseline: 2024-13-45\n", ["audit", "--config", "{f}"], "{f}:2:11: invalid YAML value: month must be in 1..12"),
        ("spec.yml", NOT_UTF8_YAML, ["pipelines", "validate", "{f}"], "{f}:3:14: not UTF-8 text (invalid continuation byte at byte 38)"),
        ("spec.yml", DEEP_YAML, ["pipelines", "validate", "{f}"], "{f}:1:103: invalid YAML: nested deeper than 100 levels"),
        ("spec.yml", b"name: x\x00\n", ["pipelines", "validate", "{f}"], "{f}:1:8: invalid YAML: character #x0000 is not allowed"),
        ("lineage.db", b"SQLite format 3\x00" + b"\x00" * 200, ["lineage", "show", "x", "--store", "embedded:{f}"], "{f}: not a readable lineage-audit store"),
        ("events.json", DEEP_JSON, ["lineage", "show", "x", "--store", "file:{f}"], "skipped 1 event that is not valid OpenLineage (first: {f}:1:506: invalid JSON: nested deeper than 500 levels)"),
    ],
    ids=lambda v: v if isinstance(v, str) and "{" not in v and "." in v else None,
)
def test_hostile_input_is_one_error_line_with_file_line_column(tmp_path, name, content, args, expected):
    path = tmp_path / name
    path.write_bytes(content)
    query = tmp_path / "q.sql"
    query.write_text("SELECT 1 AS a")
    done = run_cli(*[a.format(f=path, q=query) for a in args], cwd=tmp_path, env={"LINEAGE_AUDIT_HOME": str(tmp_path / "state")})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert expected.format(f=path) in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr


# ---------------------------------------------------------------- a fast start: --help and --version

HEAVY = ("pandas", "numpy", "scipy", "duckdb", "sqlglot", "networkx", "jinja2", "httpx", "pyvis", "psycopg",
         "pydantic", "rich", "matplotlib", "openlineage", "orjson", "yaml")
IMPORTED_AFTER = """
import json, sys
from lineage_auditor.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(%r))))
""" % (HEAVY,)


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["-h"]])
def test_help_and_version_import_no_heavy_module(tmp_path, args):
    """Measured as what got imported, not wall time: the machine's load cannot make it flaky."""
    done = subprocess.run([sys.executable, "-c", IMPORTED_AFTER, *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    *output, imported = done.stdout.strip().splitlines()
    assert json.loads(imported) == [], f"lineage-audit {' '.join(args)} imported {imported}"
    text = "\n".join(output)
    assert ("version" in text) if args == ["--version"] else ("Commands:" in text and "audit" in text)


def test_the_command_list_matches_every_command_without_loading_it():
    """``--help`` lists commands from LAZY_COMMANDS; it must say what each command's own help says."""
    import importlib

    import click

    from lineage_auditor.cli import LAZY_COMMANDS, cli

    defined = {command.name: command for module, _ in LAZY_COMMANDS.values()
               for command in importlib.import_module(module).COMMANDS}
    assert set(defined) == set(LAZY_COMMANDS), "every command module's COMMANDS, and nothing else, is listed"
    for name, (module, help_text) in LAZY_COMMANDS.items():
        command = defined[name]
        assert command in importlib.import_module(module).COMMANDS, f"loading {module} does not define {name}"
        for limit in (45, 1000):
            assert click.Command(name, help=help_text).get_short_help_str(limit) == command.get_short_help_str(limit), name
    assert {"sql", "graph"} <= set(cli.commands), "the commands defined in cli.py itself"
