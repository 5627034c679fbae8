"""Metrics folded from events: order-free, incremental, and the same through every command."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from prometheus_client.parser import text_string_to_metric_families

from collectors.store import EmbeddedStore
from collectors.store.follow import StoreFollower
from lineage_auditor.events import from_openlineage
from lineage_auditor.monitor.exposition import Extras, render
from lineage_auditor.monitor.fold import MonitorState, error_kind
from service_helpers import REPO, pipeline_run


def _events() -> list[dict]:
    out = []
    for i in range(40):
        out += pipeline_run(i, pipeline=f"p{i % 3}", team=f"t{i % 3}", failed=i % 7 == 0 or i == 39)
    return out


def _exposition(events: list[dict]) -> bytes:
    state = MonitorState()
    state.fold(from_openlineage(e) for e in events)
    return render(state, Extras())


def test_any_arrival_order_gives_the_same_metrics() -> None:
    events = _events()
    shuffled = events[:]
    random.Random(5).shuffle(shuffled)
    assert _exposition(shuffled) == _exposition(events)


def test_producers_in_other_utc_offsets_give_the_same_metrics() -> None:
    """The same instants written by producers in +05:30, -07:00 and UTC (as Airflow workers in
    different zones send them), shuffled: the same durations, latencies, last successes."""
    from lineage_auditor.times import parse_time

    events = _events()
    zones = [timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-7)), timezone.utc]
    shifted = json.loads(json.dumps(events))
    for i, e in enumerate(shifted):
        e["eventTime"] = parse_time(e["eventTime"]).astimezone(zones[i % 3]).isoformat()
    random.Random(7).shuffle(shifted)
    assert _exposition(shifted) == _exposition(events)


def test_a_cost_reported_at_1_30_in_paris_on_june_1st_is_mays() -> None:
    """The month of a cost is the UTC month of its report: 2024-06-01T01:30+02:00 is 31 May, 23:30 UTC."""
    events = _costed_run(0, "finance", datetime(2024, 5, 31, 23, 30, tzinfo=timezone.utc), {"amount": 2.0, "currency": "USD"},
                         run_by=True)
    for e in events:
        e["eventTime"] = "2024-06-01T01:30:00+02:00"
    state = MonitorState()
    state.fold(from_openlineage(e) for e in events)
    assert state.team_cost("finance", "USD", datetime(2024, 5, 15, tzinfo=timezone.utc)) == 2.0
    assert state.team_cost("finance", "USD", datetime(2024, 6, 15, tzinfo=timezone.utc)) == 0.0
    assert state.month_cost("finance_daily", datetime(2024, 5, 15, tzinfo=timezone.utc)) == 2.0, "status's cost (month)"


def test_a_refresh_folds_only_what_arrived_since_the_last(tmp_path: Path) -> None:
    events = _events()
    with EmbeddedStore(tmp_path / "s.db") as store:
        store.add_events(events[:100])
        follower = StoreFollower(store)
        assert follower.refresh() == 100
        assert follower.refresh() == 0, "nothing new, nothing folded"
        store.add_events(events[100:])
        store.add_events(events[:10])  # re-sends: not new rows
        assert follower.refresh() == len(events) - 100
        assert render(follower.state, Extras()) == _exposition(events)


def test_source_errors_are_told_apart_by_kind() -> None:
    assert error_kind("users API did not answer within 5s") == "timeout"
    assert error_kind("GET /users answered HTTP 503 after 3 attempts") == "server_error"
    assert error_kind("HTTP 429 Too Many Requests") == "rate_limited"
    assert error_kind("connection refused") == "connection"
    assert error_kind("something else") == "other"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lineage_auditor.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                                      "LINEAGE_AUDIT_HOME": str(cwd / ".lineage")})


def test_textfile_and_status_agree_with_the_events(tmp_path: Path) -> None:
    events = _events()
    with EmbeddedStore(tmp_path / "s.db") as store:
        store.add_events(events)
    done = _cli("metrics", "--store", f"embedded:{tmp_path / 's.db'}", "--textfile", str(tmp_path / "prom" / "la.prom"),
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "prom" / "la.prom").read_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    fails = sum(s.value for s in families["lineage_audit_runs"].samples if s.labels["state"] == "FAIL" and not s.labels["step"])
    assert fails == sum(1 for i in range(40) if i % 7 == 0 or i == 39)
    assert [s.value for s in families["lineage_audit_spool_depth"].samples] == [0]

    status = _cli("status", "--store", f"embedded:{tmp_path / 's.db'}", "--format", "json", cwd=tmp_path)
    assert status.returncode == 1, "p0's last run (i=39) failed: status exits 1"
    rows = {r["pipeline"]: r for r in json.loads(status.stdout)["pipelines"]}
    assert set(rows) == {"p0", "p1", "p2"}
    assert rows["p0"]["last_state"] == "FAIL" and rows["p0"]["last_error"] == "load failed: connection refused"
    assert rows["p1"]["last_state"] == "COMPLETE" and rows["p1"]["team"] == "t1"
    assert len(rows["p1"]["durations_s"]) == 10 and set(rows["p1"]["durations_s"]) == {20.0}
    only = _cli("status", "--store", f"embedded:{tmp_path / 's.db'}", "--team", "t2", "--format", "json", cwd=tmp_path)
    assert [r["pipeline"] for r in json.loads(only.stdout)["pipelines"]] == ["p2"]
    screen = _cli("status", "--store", f"embedded:{tmp_path / 's.db'}", cwd=tmp_path)
    assert "p1" in screen.stdout and "COMPLETE" in screen.stdout and "FAIL" in screen.stdout


def test_team_and_cost_come_from_the_governance_facets() -> None:
    events = pipeline_run(0, pipeline="ledger", team="ignored")
    for e in events:  # the runner puts runBy on every event of a run
        e["run"]["facets"]["lineageAudit_runBy"] = {"_producer": "p", "_schemaURL": "s", "runBy": "fred", "team": "finance"}
    for e in events[2:]:  # and the cost on the final events of the step and the pipeline
        e["run"]["facets"]["lineageAudit_cost"] = {"_producer": "p", "_schemaURL": "s", "wallSeconds": 1, "cpuSeconds": 1,
                                                   "engine": "duckdb", "measuredBy": "none", "amount": 0.25, "currency": "USD"}
    state = MonitorState()
    state.fold(from_openlineage(e) for e in events)
    assert {labels.team for labels, _ in state.cost} == {"finance"}
    assert sum(state.cost.values()) == 0.5
    assert state.month_cost("ledger", datetime(2024, 5, 20, tzinfo=timezone.utc)) == 0.5
    text = render(state, Extras()).decode()
    assert 'lineage_audit_cost_total{currency="USD",pipeline="ledger",step="",team="finance"} 0.25' in text


BUDGET_POLICY = """\
apiVersion: lineage-audit/v1
kind: Policy
teams:
  - {name: finance, members: [fred], owns: ["finance.*"]}
  - {name: growth, members: [gina], owns: ["mart.*"]}
budgets:
  - {team: finance, monthly: 10, currency: USD, warn_at: 0.5, fail_at: 0.9}
  - {team: growth, monthly: 4, currency: USD}
cost_model: {currency: USD, default: {cpu_hour: 36}}
"""


def _costed_run(i: int, team: str, when: datetime, cost: dict, *, run_by: bool) -> list[dict]:
    """A pipeline run at ``when`` whose step reports ``cost``; the team from runBy or from the job's owner."""
    events = pipeline_run(i, pipeline=f"{team}_daily", team="ignored" if run_by else team)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    for e in events:
        e["eventTime"] = stamp
        if run_by:
            e["run"]["facets"]["lineageAudit_runBy"] = {"_producer": "p", "_schemaURL": "s", "runBy": "fred", "team": team}
    events[2]["run"]["facets"]["lineageAudit_cost"] = {"_producer": "p", "_schemaURL": "s", "wallSeconds": 1,
                                                       "engine": "duckdb", "measuredBy": "none", **cost}
    return events


def test_budgets_sit_next_to_each_teams_cost_this_month(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    this_month = now.replace(day=1, hour=0, minute=0, second=30, microsecond=0)
    last_month = this_month - timedelta(days=1)
    events = (_costed_run(0, "finance", this_month, {"cpuSeconds": 1, "amount": 3.0, "currency": "USD"}, run_by=True)
              + _costed_run(1, "finance", this_month, {"cpuSeconds": 1, "amount": 2.5, "currency": "USD"}, run_by=True)
              + _costed_run(2, "finance", last_month, {"cpuSeconds": 1, "amount": 7.0, "currency": "USD"}, run_by=True)
              + _costed_run(3, "growth", this_month, {"cpuSeconds": 100}, run_by=False)  # priced now: 100 s at 36/h = 1.0
              + _costed_run(4, "growth", this_month, {"cpuSeconds": 1, "amount": 0.5, "currency": "USD"}, run_by=False))
    with EmbeddedStore(tmp_path / "s.db") as store:
        store.add_events(events)
    (tmp_path / "governance.yml").write_text(BUDGET_POLICY)
    where = ["--store", f"embedded:{tmp_path / 's.db'}", "--policy", str(tmp_path / "governance.yml")]
    expected = {"finance": (10.0, 5.5, 0.5, 0.9), "growth": (4.0, 1.5, 0.8, 1.0)}  # budget, spent, warn_at, fail_at

    done = _cli("metrics", *where, "--textfile", str(tmp_path / "la.prom"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families((tmp_path / "la.prom").read_text()) for s in f.samples}
    for team, (budget, spent, warn_at, fail_at) in expected.items():
        money = (("currency", "USD"), ("team", team))
        assert samples[("lineage_audit_budget_monthly", money)] == budget
        assert samples[("lineage_audit_budget_spent", money)] == pytest.approx(spent)
        assert samples[("lineage_audit_budget_warn_ratio", (("team", team),))] == warn_at
        assert samples[("lineage_audit_budget_fail_ratio", (("team", team),))] == fail_at

    status = _cli("status", *where, "--format", "json", cwd=tmp_path)
    budgets = {b["team"]: b for b in json.loads(status.stdout)["budgets"]}
    assert {t: (b["budget"], pytest.approx(b["spent"]), b["warn_at"], b["fail_at"]) for t, b in budgets.items()} == expected
    assert budgets["finance"]["state"] == "warn" and budgets["growth"]["state"] == "ok"
    screen = _cli("status", *where, cwd=tmp_path)
    assert "budgets this month" in screen.stdout and "warn" in screen.stdout

    costs = _cli("costs", "--store", f"embedded:{tmp_path / 's.db'}", "--policy", str(tmp_path / "governance.yml"),
                 "--format", "json", cwd=tmp_path)
    assert costs.returncode == 0, costs.stderr
    assert {b["team"]: pytest.approx(b["spent"]) for b in json.loads(costs.stdout)["budgets"]} == \
        {t: spent for t, (_, spent, _, _) in expected.items()}, "the metrics count what `costs` counts"


def test_a_teams_month_cost_does_not_depend_on_arrival_order() -> None:
    """A run's cost counts once, in its latest report, for the month that report was made
    (event time, as `lineage-audit costs` books it: a run of May's data paid in June is June's)."""
    may = datetime(2024, 5, 31, 23, 59, tzinfo=timezone.utc)
    events = _costed_run(0, "finance", may + timedelta(minutes=5), {"amount": 1.0, "currency": "USD"}, run_by=True)
    for e in events:  # the run is May's data, but its latest cost report is made in June
        e["run"]["facets"]["nominalTime"] = {"_producer": "p", "_schemaURL": "s", "nominalStartTime": "2024-05-31T00:00:00Z"}
    late = json.loads(json.dumps(events[2]))
    late["eventTime"] = "2024-06-01T00:10:00Z"  # a second, later report of the same step run replaces the first
    late["eventType"] = "FAIL"
    late["run"]["facets"]["lineageAudit_cost"]["amount"] = 4.0
    everything = [*events, late]
    sums = set()
    for seed in range(6):
        shuffled = everything[:]
        random.Random(seed).shuffle(shuffled)
        state = MonitorState()
        state.fold(from_openlineage(e) for e in shuffled)
        sums.add((state.team_cost("finance", "USD", may), state.team_cost("finance", "USD", may + timedelta(days=1))))
    assert sums == {(0.0, 4.0)}


RETRY_SPEC = """\
apiVersion: lineage-audit/v1
kind: Pipeline
id: crm_sync
team: growth
target: duckdb:wh.duckdb
steps:
  - id: fetch
    retries: {count: 3, backoff: 1s, max_delay: 1s, jitter: false}
    python: {callable: 'retry_steps:fetch', outputs: [raw.x]}
  - id: users
    extract:
      into: staging.users
      http:
        url: "{url}/users"
        paging: page
        page_size: 25
        records: data
        token_env: CRM_TOKEN
        columns:
          - {name: id, type: BIGINT, nullable: false}
          - {name: country, type: VARCHAR}
"""


def test_a_runs_retries_and_its_undelivered_lineage_reach_the_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the runner reports, not hand-made events: a step that needed three attempts and a
    source that answered 503 count in lineage_audit_retries_total; the events the producer could
    not deliver (the lineage server was down, they were spooled) count in
    lineage_audit_lineage_emit_failures_total once the spool is replayed into the central store."""
    from datetime import date

    from pipelines.dsl.loader import load_spec
    from pipelines.dsl.runner import run_spec
    from pipelines.sources.mock_api import MockApiServer
    from service_helpers import free_port

    (tmp_path / "retry_steps.py").write_text(
        "from lineage_auditor.errors import PipelineError\n"
        "calls = []\n"
        "def fetch(ctx):\n"
        "    calls.append(1)\n"
        "    if len(calls) < 3:\n"
        "        raise PipelineError('source not ready')\n"
        "    ctx.execute('CREATE SCHEMA IF NOT EXISTS raw; CREATE OR REPLACE TABLE raw.x AS SELECT 1 AS a')\n"
        "    return {'raw.x': 1}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    down = f"http:http://127.0.0.1:{free_port()}"  # nothing listens: every event is spooled
    with MockApiServer(n_users=60, seed=3) as server:
        server.set_faults({"error_rate": 0.4, "retry_after": 0, "seed": 11})
        monkeypatch.setenv("CRM_TOKEN", server.token)
        (tmp_path / "crm.yml").write_text(RETRY_SPEC.replace("{url}", server.url))
        summary = run_spec(load_spec(tmp_path / "crm.yml"), date(2024, 5, 1), target=f"duckdb:{tmp_path / 'wh.duckdb'}",
                           lineage=down, home=tmp_path / ".lineage", sleep=lambda s: None)
    assert summary.ok, summary
    spooled = sorted((tmp_path / ".lineage" / "spool").glob("*.json"))
    assert len(spooled) == 6, "START and COMPLETE of the run and of each of its two steps"
    replay = _cli("replay", "--spool", str(tmp_path / ".lineage" / "spool"), "--lineage", f"embedded:{tmp_path / 'central.db'}",
                  cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    with EmbeddedStore(tmp_path / "central.db") as store:
        events = list(store.events())
    users = next(e for e in events if e["job"]["name"] == "crm_sync.users" and e["eventType"] == "COMPLETE")
    source = users["run"]["facets"]["lineageAudit_stats"]["counts"]
    assert source["sourceRetries"] > 0 and source["sourceRequests"] == source["sourceRetries"] + 3, source  # 3 pages

    metrics = _cli("metrics", "--store", f"embedded:{tmp_path / 'central.db'}", cwd=tmp_path)
    assert metrics.returncode == 0, metrics.stderr
    samples = {(s.name, s.labels.get("step", ""), s.labels.get("pipeline")): s.value
               for family in text_string_to_metric_families(metrics.stdout) for s in family.samples}
    assert samples[("lineage_audit_retries_total", "fetch", "crm_sync")] == 2, "two re-attempts of the flaky step"
    assert samples[("lineage_audit_retries_total", "users", "crm_sync")] == source["sourceRetries"]
    assert samples[("lineage_audit_lineage_emit_failures_total", "", "crm_sync")] == 5, \
        "the final event counts the run's five events before it that the producer could not deliver"


def test_a_reported_zero_starts_the_series_so_the_first_failure_is_an_increase() -> None:
    """Prometheus's increase() cannot see a counter's first value: a run that reported no retries
    and no emit failures must still give both series (at 0), so the next one counts."""
    events = pipeline_run(1, pipeline="quiet")
    stats = {"_producer": "p", "_schemaURL": "s"}
    events[2]["run"]["facets"]["lineageAudit_stats"] = {**stats, "counts": {"attempts": 1, "retries": 0}}
    events[3]["run"]["facets"]["lineageAudit_stats"] = {**stats, "counts": {"lineageEmitFailures": 0}}
    foreign = pipeline_run(2, pipeline="other")  # a producer without the facet adds no series
    samples = {(s.name, s.labels.get("pipeline"), s.labels.get("step")): s.value
               for family in text_string_to_metric_families(_exposition(events + foreign).decode())
               for s in family.samples}
    assert samples[("lineage_audit_retries_total", "quiet", "load")] == 0
    assert samples[("lineage_audit_lineage_emit_failures_total", "quiet", "")] == 0
    assert not any(name.startswith(("lineage_audit_retries", "lineage_audit_lineage_emit")) and pipeline == "other"
                   for name, pipeline, _ in samples)
