"""What ``pip install .`` ships: every data file a command needs at run time, and a clean build.

The wheel is built from this checkout without network (``--no-build-isolation``, with the
setuptools and wheel of the test environment) and inspected: ``marquez up`` needs its pom
and server configuration, reports need their templates and assets, pipelines their specs,
SQL and fixtures. setuptools must not warn about folders it would leave out.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

NEEDED = (
    "collectors/marquez/deploy/pom.xml",
    "collectors/marquez/deploy/marquez.yml",
    "reports/templates/audit_report.html.j2",
    "reports/templates/graph_page.html.j2",
    "reports/assets/graph_view.js",
    "reports/assets/graph_view.css",
    "pipelines/specs/users_orders.yml",
    "pipelines/users_orders/sql/user_orders.sql",
    "pipelines/features/churn_features.sql",
    "pipelines/runtime/facets/DegradedRunFacet.json",
    "lineage_auditor/governance/policy.schema.json",
    "pipelines/runtime/facets/RunByRunFacet.json",
    "pipelines/runtime/facets/CostRunFacet.json",
    "pipelines/fixtures/orders_sample.csv",
)


def test_the_wheel_ships_what_the_commands_need_and_builds_without_warnings(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "is absent from the `packages` configuration" not in log, log[-3000:]
    (wheel,) = tmp_path.glob("lineage_audit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [n for n in NEEDED if n not in names] == []
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "deploy/", "bench/"))]
