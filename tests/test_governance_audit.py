"""The governance audit check and ``lineage-audit costs``: what the store says, held to the policy."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from audit_events import NS, PRODUCER, SCHEMA_URL, SHOP_CONFIG, T0, dataset, iso, run_events, shop_events
from browser import BrowserPage
from collectors.store import EmbeddedStore
from lineage_auditor.audit.config import parse_config
from lineage_auditor.audit.runner import run_audit
from lineage_auditor.audit.view import AuditView
from lineage_auditor.cli import cli
from lineage_auditor.events import run_events as typed
from lineage_auditor.governance import load_policy
from lineage_auditor.governance.costs import cost_records
from lineage_auditor.graph import LineageGraph

POLICY = """\
apiVersion: lineage-audit/v1
kind: Policy
teams:
  - name: ml
    members: [mia]
    owns: ["features.*", "raw.*"]
  - name: growth
    members: [gina]
    owns: ["mart.*"]
  - name: finance
    members: [fred]
    owns: ["finance.*"]
  - name: privacy
    members: [dana]
restricted_tags:
  - tag: "pii.*"
    approvers: ["team:privacy"]
budgets:
  - {team: ml, monthly: 10, currency: EUR}
  - {team: growth, monthly: 10, currency: EUR, warn_at: 0.5}
  - {team: finance, monthly: 100, currency: EUR}
cost_model:
  currency: EUR
  default: {cpu_hour: 0.36}
"""


def _facet(**fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": "https://example.test/facet.json", **fields}


def costed(job: str, team: str, day: date, *, amount: float | None, pipeline: str | None = None,
           outputs: list[str] = (), cpu: float = 1.0, state: str = "COMPLETE", approvals: list[dict] | None = None,
           inputs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """START + COMPLETE of a step run that records who ran it for which team and what it cost."""
    run_id = str(uuid.uuid4())
    start = datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=3)
    cost = _facet(wallSeconds=2.0, cpuSeconds=cpu, engine="duckdb", measuredBy="duckdb-profiling", rowsRead=10, bytesRead=100)
    if amount is not None:
        cost.update(amount=amount, currency="EUR")
    run_facets: dict[str, Any] = {
        "lineageAudit_runBy": _facet(runBy="someone", team=team, identitySource="--as", approvals=approvals),
        "nominalTime": _facet(nominalStartTime=iso(start.replace(hour=0))),
    }
    if pipeline:
        parent_job = {"namespace": "pipelines", "name": pipeline}
        run_facets["parent"] = _facet(run={"runId": str(uuid.uuid4())}, job=parent_job,
                                      root={"run": {"runId": str(uuid.uuid4())}, "job": parent_job})

    def one(kind: str, when: datetime, facets: dict[str, Any]) -> dict[str, Any]:
        return {"eventType": kind, "eventTime": iso(when), "producer": PRODUCER, "schemaURL": SCHEMA_URL,
                "run": {"runId": run_id, "facets": facets}, "job": {"namespace": "pipelines", "name": job, "facets": {}},
                "inputs": inputs or [], "outputs": [dataset(o) for o in outputs]}

    return [one("START", start, dict(run_facets)), one(state, start + timedelta(seconds=2), {**run_facets, "lineageAudit_cost": cost})]


def _store(tmp_path: Path, events: list[dict[str, Any]]) -> str:
    with EmbeddedStore(tmp_path / "lineage.db") as store:
        store.add_events(events)
    return f"embedded:{tmp_path / 'lineage.db'}"


def _costs(*args: str) -> Any:
    return CliRunner().invoke(cli, ["costs", *args])


# ------------------------------------------------------------------ costs


THREE_TEAMS = [
    *costed("ml.train_features", "ml", date(2024, 5, 2), amount=1.25, pipeline="churn", outputs=["features.churn"]),
    *costed("ml.train_features", "ml", date(2024, 5, 3), amount=2.5, pipeline="churn", outputs=["features.churn"]),
    *costed("growth.revenue", "growth", date(2024, 5, 3), amount=0.5, pipeline="revenue", outputs=["mart.revenue"]),
    *costed("growth.revenue", "growth", date(2024, 5, 4), amount=0.25, pipeline="revenue", outputs=["mart.revenue"], state="FAIL"),
    *costed("finance.ledger", "finance", date(2024, 5, 4), amount=4.0, pipeline="ledger", outputs=["finance.ledger", "finance.fx"]),
    *costed("finance.ledger", "finance", date(2024, 4, 20), amount=100.0, pipeline="ledger", outputs=["finance.ledger"]),  # before the window
    *costed("finance.check", "finance", date(2024, 5, 4), amount=None, cpu=3600.0, pipeline="ledger"),  # priced now: 0.36
]


def test_costs_add_up_three_teams_runs(tmp_path: Path) -> None:
    (tmp_path / "governance.yml").write_text(POLICY)
    store = _store(tmp_path, THREE_TEAMS)
    window = ["--store", store, "--policy", str(tmp_path / "governance.yml"), "--at", "2024-05-04", "--since", "7d", "--format", "json"]
    res = _costs("--by", "team", *window)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert (doc["first"], doc["last"], doc["currency"], doc["runs"]) == ("2024-04-28", "2024-05-04", "EUR", 6)
    teams = {r["key"]: (r["runs"], round(r["amount"], 6)) for r in doc["rows"]}
    assert teams == {"finance": (2, 4.36), "ml": (2, 3.75), "growth": (2, 0.75)}  # a failed run costs too
    assert [r["key"] for r in doc["rows"]] == ["finance", "ml", "growth"]  # most expensive first
    assert doc["total"] == pytest.approx(8.86) and doc["priced_now"] == 1
    assert doc["rows"][1]["by_day"] == {"2024-05-02": 1.25, "2024-05-03": 2.5}

    by_day = {r["key"]: round(r["amount"], 6) for r in json.loads(_costs("--by", "day", *window).stdout)["rows"]}
    assert by_day == {"2024-05-02": 1.25, "2024-05-03": 3.0, "2024-05-04": 4.61}
    by_pipeline = {r["key"]: round(r["amount"], 6) for r in json.loads(_costs("--by", "pipeline", *window).stdout)["rows"]}
    assert by_pipeline == {"ledger": 4.36, "churn": 3.75, "revenue": 0.75}
    by_dataset = {r["key"].split("/")[-1]: round(r["amount"], 6) for r in json.loads(_costs("--by", "dataset", *window).stdout)["rows"]}
    assert by_dataset == {"warehouse.features.churn": 3.75, "warehouse.finance.ledger": 2.0, "warehouse.finance.fx": 2.0,
                          "warehouse.mart.revenue": 0.75, "(unknown)": 0.36}  # two outputs share a step's cost

    # budgets are this month's (of --at): ml spent 3.75 of 10, growth 0.75 of 10 (warn at 50%: fine)
    budgets = {b["team"]: (round(b["spent"], 6), b["state"]) for b in doc["budgets"]}
    assert budgets == {"ml": (3.75, "ok"), "growth": (0.75, "ok"), "finance": (4.36, "ok")}
    text = _costs("--by", "team", *window[:-2])
    assert text.exit_code == 0 and "finance" in text.output and "budget ml 2024-05: 3.7500 of 10 EUR (38%)" in text.output


def test_a_budget_over_fail_at_is_a_high_finding_and_fails_ci(tmp_path: Path) -> None:
    (tmp_path / "governance.yml").write_text(POLICY)
    over = THREE_TEAMS + costed("ml.train_features", "ml", date(2024, 5, 4), amount=7.0, pipeline="churn")
    store = _store(tmp_path, over)
    args = ["--store", store, "--policy", str(tmp_path / "governance.yml"), "--at", "2024-05-04"]
    res = _costs(*args, "--format", "json", "--fail-on", "high")
    assert res.exit_code == 1
    (finding,) = json.loads(res.stdout)["findings"]
    assert (finding["severity"], finding["check"], finding["subject"]) == ("high", "governance", "team:ml")
    assert finding["title"] == "team ml spent 10.75 of its 10 EUR budget for 2024-05 (108%, over 100%)"
    assert finding["evidence"]["rule"]["line"] == 19 and finding["evidence"]["rule"]["path"] == "budgets[0]"
    assert "error: team ml spent 10.75" in res.stderr
    assert _costs(*args, "--format", "json").exit_code == 0  # reported; gating is --fail-on's


# ------------------------------------------------------------------ the audit check


def _audit(events: list[dict[str, Any]], policy_text: str, tmp_path: Path, now: datetime, costs: bool = True):  # type: ignore[no-untyped-def]
    (tmp_path / "governance.yml").write_text(policy_text)
    policy = load_policy(tmp_path / "governance.yml")
    graph = LineageGraph.from_events(events)
    records = cost_records(typed(events), policy) if costs else []
    tags_only = parse_config(SHOP_CONFIG[SHOP_CONFIG.index("tags:"):])  # the shop's tags, no AI dataset to look for
    return run_audit(graph, AuditView.from_events(events), tags_only, checks=["governance"], now=now,
                     policy=policy, costs=records)


def _titles(result) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return sorted((f.severity.value, f.title) for f in result.findings)


def test_an_unapproved_restricted_read_in_the_store_is_a_high_finding(tmp_path: Path) -> None:
    """build_churn, run outside the DSL (no runBy facet, team from its owner), reads raw.users.email and name."""
    result = _audit(shop_events(), POLICY, tmp_path, T0, costs=False)
    assert _titles(result) == [("high", "build_churn read warehouse.raw.users.email without an approval"),
                               ("high", "build_churn read warehouse.raw.users.name without an approval")]
    email = next(f for f in result.findings if f.subject.endswith("email"))
    assert email.evidence["team"] == "ml" and email.evidence["tags"] == ["pii.email"]
    assert email.evidence["decision"]["rule"]["line"] == 16


def test_an_approval_expired_since_the_run_is_still_in_use(tmp_path: Path) -> None:
    approvals = [{"tag": "pii.*", "by": "dana", "reason": "churn features", "expires": "2024-06-30"}]
    users = dataset("raw.users", {"user_id": "BIGINT", "email": "TEXT"})
    events = costed("ml.contacts", "ml", date(2024, 6, 1), amount=0.1, approvals=approvals, inputs=[users],
                    outputs=["features.contacts"])
    lineage = {"_producer": PRODUCER, "_schemaURL": "x", "fields": {"email": {"inputFields": [
        {"namespace": NS, "name": "warehouse.raw.users", "field": "email",
         "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}]}]}}}
    for event in events:
        event["outputs"][0]["facets"]["columnLineage"] = lineage
        event["outputs"][0]["facets"]["schema"] = {"_producer": PRODUCER, "_schemaURL": "x", "fields": [{"name": "email"}]}
    before = _audit(events, POLICY, tmp_path, datetime(2024, 6, 15, tzinfo=timezone.utc), costs=False)
    assert before.findings == []  # approved, and still valid
    after = _audit(events, POLICY, tmp_path, datetime(2024, 7, 2, tzinfo=timezone.utc), costs=False)
    assert _titles(after) == [("medium", "ml.contacts relies on an approval for warehouse.raw.users.email that has expired")]
    assert after.findings[0].evidence["decision"]["reason"].endswith("the approval by dana expired on 2024-06-30")


def test_writes_outside_ownership_in_the_store(tmp_path: Path) -> None:
    events = costed("growth.fx", "growth", date(2024, 6, 1), amount=0.1, outputs=["finance.fx"])
    events += run_events("adhoc_export", [], [dataset("mart.exports")], owners=False)
    result = _audit(events, POLICY, tmp_path, T0, costs=False)
    assert _titles(result) == [
        ("high", "growth.fx (team growth) wrote warehouse.finance.fx outside its datasets"),
        ("medium", "adhoc_export of no known team wrote warehouse.mart.exports, owned by team growth")]


def test_budget_overrun_is_a_finding_and_audit_exits_1_under_fail_on_high(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    today = datetime.now(timezone.utc).date()
    events = shop_events(at=datetime.now(timezone.utc) - timedelta(minutes=30))
    events += costed("ml.train_features", "ml", today, amount=11.0, outputs=["features.churn"])
    events += costed("growth.revenue", "growth", today, amount=6.0, outputs=["mart.revenue"])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "governance.yml").write_text(POLICY.replace("tag: \"pii.*\"", "tag: \"secret.*\""))
    (tmp_path / "lineage-audit.yml").write_text(SHOP_CONFIG + "governance: governance.yml\n")
    store = _store(tmp_path, events)
    res = CliRunner().invoke(cli, ["audit", "--store", store, "--check", "governance", "--fail-on", "high", "--format", "json"])
    assert res.exit_code == 1, res.output
    found = {(f["severity"], f["subject"]) for f in json.loads(res.stdout)["findings"]}
    assert found == {("high", "team:ml"), ("medium", "team:growth")}  # over fail_at; over warn_at (50%) only
    assert CliRunner().invoke(cli, ["audit", "--store", store, "--check", "governance", "--fail-on", "high",
                                    "--policy", str(tmp_path / "nowhere.yml")]).exit_code == 2


# ------------------------------------------------------------------ the HTML page


def test_the_costs_page_is_self_contained_with_its_plot(tmp_path: Path, browser_page: BrowserPage) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    events = THREE_TEAMS + costed("x.y", hostile, date(2024, 5, 4), amount=0.5, outputs=["mart.revenue"])
    (tmp_path / "governance.yml").write_text(POLICY)
    out = tmp_path / "costs.html"
    res = _costs("--store", _store(tmp_path, events), "--policy", str(tmp_path / "governance.yml"), "--at", "2024-05-04",
                 "--since", "7d", "--format", "html", "-o", str(out))
    assert res.exit_code == 0, res.output
    browser_page.open(out)
    page = browser_page.page
    assert page.locator("#cr-plot").evaluate("img => img.naturalWidth") > 100  # the plot decoded and drew
    assert page.locator("#cr-budget-plot").count() == 1
    assert page.locator("#cr-total").inner_text() == "9.3600"
    rows = page.locator("#cr-rows tr[data-key]")
    assert rows.count() == 4 and hostile in page.locator("#cr-rows").inner_text()  # shown as text, never run
    browser_page.screenshot("costs", full_page=True)
    browser_page.assert_clean()


# ------------------------------------------------------------------ cost along lineage, from real runs


PLATFORM = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: platform_orders
team: data-platform
retries: {count: 0}
steps:
  - id: extract
    extract:
      into: staging.orders
      file: {path: orders.csv, columns: [{name: user_id, type: INTEGER}, {name: amount, type: DOUBLE}]}
  - id: clean
    depends_on: [extract]
    sql:
      dialect: duckdb
      query: "CREATE TABLE analytics.orders AS SELECT user_id, amount FROM staging.orders WHERE amount > 0"
"""
FEATURES = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: churn_features
team: ml
retries: {count: 0}
sources: [analytics.orders]
steps:
  - id: build
    sql:
      dialect: duckdb
      query: "CREATE TABLE features.churn AS SELECT user_id, SUM(amount) AS spend FROM analytics.orders GROUP BY user_id"
"""
UNRELATED = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: dashboard
team: growth
retries: {count: 0}
sources: [analytics.orders]
steps:
  - id: revenue
    sql:
      dialect: duckdb
      query: "CREATE TABLE mart.revenue AS SELECT SUM(amount) AS revenue FROM analytics.orders"
"""
LINEAGE_POLICY = """\
apiVersion: lineage-audit/v1
kind: Policy
teams:
  - {name: data-platform, members: [pat], owns: ["staging.*", "analytics.*"]}
  - {name: ml, members: [mia], owns: ["features.*"]}
  - {name: growth, members: [gina], owns: ["mart.*"]}
grants:
  - {team: data-platform, run: ["*"]}
ai_datasets:
  - {dataset: features.churn, owner: mia}
cost_model:
  currency: USD
  default: {cpu_hour: 36.0}
"""


def test_an_ai_dataset_costs_every_step_upstream_of_it_and_nothing_else(tmp_path: Path) -> None:
    from lineage_auditor.governance import Identity, IdentitySource
    from pipelines.dsl import load_spec
    from pipelines.dsl.governance import Governance
    from pipelines.dsl.runner import run_spec

    (tmp_path / "orders.csv").write_text("user_id,amount\n" + "".join(f"{i % 50},{i % 9}.5\n" for i in range(5000)))
    (tmp_path / "governance.yml").write_text(LINEAGE_POLICY)
    store = tmp_path / "lineage.db"
    for name, text in (("platform.yml", PLATFORM), ("features.yml", FEATURES), ("dashboard.yml", UNRELATED)):
        (tmp_path / name).write_text(text)
        for day in (date(2024, 5, 1), date(2024, 5, 2)):
            summary = run_spec(load_spec(tmp_path / name), day, target=f"duckdb:{tmp_path / 'wh.duckdb'}",
                               lineage=f"embedded:{store}", home=tmp_path / "state",
                               governance=Governance(None, "none"), identity=Identity("pat", IdentitySource.OPTION))
            # recorded without a cost model: `costs` prices them with the policy's, as the assertions below do
            assert summary.ok, summary.error
    with EmbeddedStore(store) as s:
        facets = [(e["job"]["name"], e["run"]["facets"]["lineageAudit_cost"]) for e in s.events()
                  if e["eventType"] == "COMPLETE" and "lineageAudit_cost" in e["run"]["facets"]]
    policy = load_policy(tmp_path / "governance.yml")
    rates = policy.rates("duckdb")
    assert rates is not None
    from lineage_auditor.governance.pricing import price

    def spent(jobs: set[str]) -> float:  # priced now: these runs were recorded without a cost model
        return sum(price(rates, cpu_seconds=f["cpuSeconds"], bytes_scanned=f.get("bytesRead"),
                         warehouse_seconds=f.get("warehouseSeconds"))["total"] for job, f in facets if job in jobs)

    upstream = {"platform_orders.extract", "platform_orders.clean", "churn_features.build"}
    today = datetime.now(timezone.utc).date()  # costs fall on the day the runs ran (a backfill of May's data included)
    res = _costs("--store", f"embedded:{store}", "--policy", str(tmp_path / "governance.yml"), "--at", today.isoformat(),
                 "--since", "2d", "--by", "dataset", "--format", "json")
    assert res.exit_code == 0, res.output
    (lineage,) = json.loads(res.stdout)["lineage"]  # the policy's AI dataset
    assert lineage["dataset"].endswith("wh.features.churn")
    assert lineage["upstream_datasets"] == 3  # analytics.orders, staging.orders and the CSV file it came from
    assert {s["key"] for s in lineage["steps"]} == upstream  # the dashboard reads the same table but is not upstream
    assert all(s["runs"] == 2 for s in lineage["steps"])
    assert lineage["total"] == pytest.approx(spent(upstream), rel=1e-6) and spent(upstream) > 0
    assert sorted(lineage["per_day"]) == [today.isoformat()]
    assert lineage["average_per_day"] == pytest.approx(lineage["total"])
    everything = json.loads(res.stdout)["total"]
    assert everything == pytest.approx(spent(upstream | {"dashboard.revenue"}), rel=1e-6)
