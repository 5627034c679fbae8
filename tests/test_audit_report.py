"""`lineage-audit audit` / `report` / `baseline save` over a real embedded store, and the report's contents."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from audit_events import FEATURES_SQL, ORDERS, T0, USERS, dataset, run_events, shop_events, sql_job_events
from audit_events import SHOP_CONFIG as CONFIG
from collectors.store import EmbeddedStore
from lineage_auditor.cli import _register, cli

XSS = "<img src=x onerror=alert(1)>"


def xss_events() -> list[dict]:
    """The shop, plus a hostile source table feeding the feature table."""
    hostile = {"user_id": "BIGINT", XSS: "TEXT"}
    sql = FEATURES_SQL.replace("FROM raw.users AS u", 'FROM raw.users AS u\nJOIN raw."<img src=x onerror=alert(1)>" AS h ON h.user_id = u.user_id')
    events = [e for e in shop_events() if e["job"]["name"] != "build_churn"]
    events += run_events("load_hostile", [], [dataset(f"raw.{XSS}", hostile)], at=T0 - timedelta(hours=1))
    events += sql_job_events("build_churn", sql, {"raw.users": USERS, "raw.orders": ORDERS, f"raw.{XSS}": hostile}, rows=1000)
    return events


@pytest.fixture()
def store(tmp_path: Path) -> str:
    path = tmp_path / "lineage.db"
    with EmbeddedStore(path) as s:
        s.add_events(shop_events())
    return f"embedded:{path}"


@pytest.fixture()
def config(tmp_path: Path) -> str:
    path = tmp_path / "lineage-audit.yml"
    path.write_text(CONFIG, encoding="utf-8")
    return str(path)


def invoke(*args: str):
    _register()
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_audit_exits_1_on_findings_at_fail_on_and_0_below(store: str, config: str) -> None:
    result = invoke("audit", "--store", store, "--config", config)
    assert result.exit_code == 1, result.output
    assert "HIGH" in result.output and "pii.email" in result.output and "path:" in result.output
    # the PII finding is high; --check coverage alone finds nothing
    assert invoke("audit", "--store", store, "--config", config, "--check", "coverage").exit_code == 0


def test_audit_json_is_the_documented_shape(store: str, config: str) -> None:
    result = invoke("audit", "--store", store, "--config", config, "--format", "json", "--fail-on", "low")
    doc = json.loads(result.output)
    assert doc["format"] == "lineage-audit-findings" and doc["version"] == 1
    assert doc["failed"] is True and result.exit_code == 1
    (pii,) = [f for f in doc["findings"] if f["check"] == "pii"]
    assert set(pii) == {"id", "severity", "check", "subject", "title", "evidence", "remediation"}
    assert re.fullmatch(r"PII-[0-9a-f]{8}", pii["id"])


def test_bad_input_exits_2_with_a_located_message(store: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("ai_datasets:\n  - name: x\n    colour: blue\n", encoding="utf-8")
    result = invoke("audit", "--store", store, "--config", str(bad))
    assert result.exit_code == 2
    assert f"error: {bad}:3:5: ai_datasets.0.colour: unknown key" in result.output
    result = invoke("audit", "--store", store, "--dataset", "no.such_table")
    assert result.exit_code == 2 and "no dataset named 'no.such_table'" in result.output
    assert invoke("audit", "--store", f"embedded:{tmp_path / 'missing.db'}").exit_code == 2


def test_every_command_has_examples_in_help() -> None:
    for args in (["audit"], ["report"], ["baseline"], ["baseline", "save"]):
        out = invoke(*args, "--help").output
        assert "Examples:" in out and "lineage-audit " in out.split("Examples:")[1], args


def test_baseline_save_then_a_changed_sql_is_lineage_drift(tmp_path: Path, config: str) -> None:
    path = tmp_path / "lineage.db"
    with EmbeddedStore(path) as s:
        s.add_events(shop_events())
    baseline = tmp_path / "baseline.json"
    saved = invoke("baseline", "save", "--store", f"embedded:{path}", "--config", config, "-o", str(baseline))
    assert saved.exit_code == 0, saved.output
    assert json.loads(baseline.read_text())["format"] == "lineage-audit-baseline"
    assert invoke("audit", "--store", f"embedded:{path}", "--config", config, "--baseline", str(baseline),
                  "--check", "lineage_drift").exit_code == 0
    changed = FEATURES_SQL.replace("SUM(o.amount) AS revenue", "SUM(o.amount) + MAX(u.country = 'DE')::INT AS revenue")
    with EmbeddedStore(path) as s:
        s.add_events(sql_job_events("build_churn", changed, {"raw.users": USERS, "raw.orders": ORDERS}, at=T0 + timedelta(days=1)))
    result = invoke("audit", "--store", f"embedded:{path}", "--config", config, "--baseline", str(baseline),
                    "--check", "lineage_drift", "--fail-on", "medium", "--format", "json")
    doc = json.loads(result.output)
    assert result.exit_code == 1
    assert [f["title"] for f in doc["findings"]] == ["sources of revenue changed"]
    assert doc["findings"][0]["evidence"]["added"][0].endswith("warehouse.raw.users.country")


def test_markdown_and_json_reports_list_the_findings(store: str, config: str, tmp_path: Path) -> None:
    md_path, json_path = tmp_path / "r.md", tmp_path / "r.json"
    assert invoke("report", "--store", store, "--config", config, "-D", "features.churn", "--format", "md", "-o", str(md_path)).exit_code == 0
    assert invoke("report", "--store", store, "--config", config, "-D", "features.churn", "--format", "json", "-o", str(json_path)).exit_code == 0
    doc = json.loads(json_path.read_text())
    md = md_path.read_text()
    assert doc["format"] == "lineage-audit-report" and doc["summary"]["verdict"] == "fail"
    assert doc["datasheet"]["consumers"] == ["churn-model"]
    ids = [f["id"] for f in doc["findings"]]
    assert ids and all(i in md for i in ids)
    assert "**Verdict: FAIL**" in md
    contact = next(c for c in doc["provenance"]["columns"] if c["name"] == "contact")
    assert any(s["column"] == "warehouse.raw.users.email" and "DIRECT/IDENTITY" in s["transformations"] for s in contact["sources"])
    assert "CREATE TABLE features.churn" in contact["sql"]
    (exposed,) = [s for s in doc["sensitive"] if not s["masked"]]
    assert exposed["target"] == "warehouse.features.churn.contact"
    assert [s for s in doc["sensitive"] if s["masked"]][0]["target"] == "warehouse.features.churn.name_key"
    assert [r["state"] for r in doc["runs"]] == ["COMPLETE"]


def render_xss_report(tmp_path: Path) -> Path:
    path = tmp_path / "lineage.db"
    with EmbeddedStore(path) as s:
        s.add_events(xss_events())
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(CONFIG + f"  - column: 'raw.{XSS}.{XSS}'\n    tags: [pii.hostile]\n", encoding="utf-8")
    out = tmp_path / "report.html"
    result = invoke("report", "--store", f"embedded:{path}", "--config", str(cfg), "-D", "features.churn", "-o", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_html_report_is_self_contained_and_escapes_names(tmp_path: Path) -> None:
    html = render_xss_report(tmp_path).read_text()
    for tag, attr in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src")):
        for value in re.findall(rf"<{tag}\b[^>]*\b{attr}=[\"']?([^\"' >]+)", html, re.I):
            assert value.startswith("data:"), f"<{tag} {attr}={value}> leaves the file"
    assert XSS not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Content-Security-Policy" in html
    assert 'id="lineage-data"' in html and "\\u003cimg src=x onerror=alert(1)\\u003e" in html
    assert '<img alt="Row count per run" src="data:image/png;base64,' in html
