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
SHOP = REPO / "examples" / "shop"


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
