"""Alerts without Prometheus: the policy's ``alerts:`` to a real webhook receiver on 127.0.0.1 and the console.

``lineage-audit alerts check`` (cron) and ``serve`` evaluate the conditions of
deploy/prometheus/alerts.yml on the store; a notification goes out once per episode (fires,
then resolves), is retried with backoff, waits in a dead-letter file while the receiver is
down, and is delivered in order by a later check once it is back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from collectors.store import EmbeddedStore
from lineage_auditor.governance.costs import BudgetStatus
from lineage_auditor.governance.model import AlertCondition, Budget
from lineage_auditor.monitor.alerts import RULES, Episodes, Snapshot, Status, evaluate, transition
from service_helpers import REPO, add_token, pipeline_run, start_server

TOKEN = "s3cret-webhook-token"


class Hook(BaseHTTPRequestHandler):
    """A webhook receiver: records each POST (headers and JSON); answers ``mode`` (200 or a failure status)."""

    mode = 200
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        type(self).received.append({"auth": self.headers.get("Authorization"), "status": self.mode, "body": body})
        self.send_response(self.mode)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


class Receiver:
    """The receiver's server on a fixed port, which the test can take down and bring back."""

    def __init__(self) -> None:
        Hook.mode, Hook.received = 200, []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.port = self.server.server_address[1]
        self._serve()

    def _serve(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def up(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Hook)
        self._serve()

    def delivered(self) -> list[dict[str, Any]]:
        """Bodies the receiver accepted (2xx), in order."""
        return [r["body"] for r in Hook.received if r["status"] < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    try:
        yield hook
    finally:
        hook.down()


def _policy(port: int, every: str = "1m") -> str:
    return f"""\
apiVersion: lineage-audit/v1
kind: Policy
teams:
  - {{name: growth, members: [gina], owns: ["mart.*"]}}
alerts:
  every: {every}
  console: {{}}
  webhooks:
    - name: oncall
      url: http://127.0.0.1:{port}/hook
      token_env: ALERT_TOKEN
      attempts: 3
      backoff: 0.2s
      timeout: 2s
"""


def _check(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lineage_auditor.cli", "alerts", "check", "--store",
                           f"embedded:{tmp_path / 's.db'}", "--policy", str(tmp_path / "governance.yml")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "LINEAGE_AUDIT_HOME": str(tmp_path / ".lineage"),
                               "ALERT_TOKEN": TOKEN})


def _store(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    with EmbeddedStore(tmp_path / "s.db") as store:
        store.add_events(events)


def _names(bodies: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(b["status"], b["alerts"][0]["labels"]["pipeline"]) for b in bodies]


def test_a_failing_run_notifies_once_waits_while_the_receiver_is_down_and_resolves(tmp_path: Path, receiver: Receiver) -> None:
    (tmp_path / "governance.yml").write_text(_policy(receiver.port))
    _store(tmp_path, pipeline_run(1, pipeline="orders", team="growth", failed=True) + pipeline_run(2, pipeline="sales"))
    first = _check(tmp_path)
    assert first.returncode == 1, first.stderr  # an alert is firing
    assert len(Hook.received) == 1
    sent = Hook.received[0]
    assert sent["auth"] == f"Bearer {TOKEN}"
    body = sent["body"]
    assert {k: body[k] for k in ("version", "status", "receiver", "truncatedAlerts")} == \
        {"version": "4", "status": "firing", "receiver": "oncall", "truncatedAlerts": 0}
    alert = body["alerts"][0]
    assert alert["labels"] == {"alertname": "LineageAuditPipelineFailed", "pipeline": "orders", "team": "growth",
                               "severity": "page"}
    assert alert["annotations"]["summary"] == "pipeline orders (team growth) failed"
    assert "load failed: connection refused" in alert["annotations"]["description"]
    assert alert["status"] == "firing" and alert["endsAt"] == "0001-01-01T00:00:00Z" and alert["fingerprint"]
    assert "FIRING LineageAuditPipelineFailed [page] pipeline=orders team=growth" in first.stdout, "the console route"

    again = _check(tmp_path)
    assert again.returncode == 1 and len(Hook.received) == 1, "one notification per episode, not per check"
    assert "FIRING" not in again.stdout

    Hook.mode = 503  # the receiver fails: retried with backoff, then dead-lettered
    _store(tmp_path, pipeline_run(3, pipeline="billing", team="growth", failed=True))
    failing = _check(tmp_path)
    assert [r["status"] for r in Hook.received[1:]] == [503, 503, 503], "3 attempts (attempts: 3)"
    dead_letter = tmp_path / ".lineage" / "alerts" / "oncall.dead-letter.jsonl"
    assert "1 notification(s) waiting" in failing.stderr and "HTTP 503" in failing.stderr
    waiting = [json.loads(line) for line in dead_letter.read_text().splitlines()]
    assert _names([w["payload"] for w in waiting]) == [("firing", "billing")]
    assert waiting[0]["attempts"] == 1 and "HTTP 503" in waiting[0]["error"]

    receiver.down()  # nothing listens: queued behind what waits, in order
    _store(tmp_path, pipeline_run(4, pipeline="ledger", team="growth", failed=True))
    refused = _check(tmp_path)
    assert "2 notification(s) waiting" in refused.stderr
    waiting = [json.loads(line) for line in dead_letter.read_text().splitlines()]
    assert _names([w["payload"] for w in waiting]) == [("firing", "billing"), ("firing", "ledger")]
    assert TOKEN not in dead_letter.read_text() + (tmp_path / ".lineage" / "alerts" / "state.json").read_text()

    receiver.up()
    Hook.mode = 200
    _store(tmp_path, pipeline_run(5, pipeline="orders", team="growth"))  # orders succeeds: its alert resolves
    back = _check(tmp_path)
    assert back.returncode == 1, back.stderr  # billing and ledger still fail
    assert _names(receiver.delivered()) == [("firing", "orders"), ("firing", "billing"), ("firing", "ledger"),
                                            ("resolved", "orders")], "what waited first, in order, then the new"
    resolved = receiver.delivered()[-1]["alerts"][0]
    assert resolved["endsAt"] != "0001-01-01T00:00:00Z" and resolved["fingerprint"] == alert["fingerprint"]
    assert not dead_letter.exists(), "nothing waits once delivered"
    assert "RESOLVED LineageAuditPipelineFailed" in back.stdout


def test_serve_evaluates_the_alerts_on_its_interval(tmp_path: Path, receiver: Receiver) -> None:
    (tmp_path / "governance.yml").write_text(_policy(receiver.port, every="0.5s"))
    token = add_token(tmp_path, "gina")
    server = start_server(["--store", f"embedded:{tmp_path / 's.db'}", "--tokens", str(tmp_path / "tokens.json"),
                           "--policy", str(tmp_path / "governance.yml")], tmp_path,
                          env={"LINEAGE_AUDIT_HOME": str(tmp_path / ".lineage"), "ALERT_TOKEN": TOKEN})
    try:
        for event in pipeline_run(7, pipeline="orders", team="growth", failed=True):
            assert httpx.post(f"{server.url}/api/v1/lineage", json=event,
                              headers={"Authorization": f"Bearer {token}"}).status_code == 201
        deadline = time.monotonic() + 30
        while not receiver.delivered() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.0)  # four more evaluations
    finally:
        server.stop()
    assert _names(receiver.delivered()) == [("firing", "orders")], f"once per episode: {Hook.received}"
    assert "lineage-audit alert: FIRING LineageAuditPipelineFailed" in server.log.read_text()


def test_the_conditions_are_the_prometheus_rules() -> None:
    rules = {r["alert"]: r["labels"]["severity"]
             for g in yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    assert {name: severity for name, severity in RULES.values()} == {k: v for k, v in rules.items() if k in dict(RULES.values())}
    assert set(dict(RULES.values())) <= set(rules)
    now = datetime(2024, 5, 20, tzinfo=timezone.utc)
    budget = BudgetStatus.of(Budget(team="ml", monthly=100, warn_at=0.5), 60.0, now.date())
    alerts = evaluate(Snapshot(missed=[("daily", "ml")], spool=4, budgets=[budget], ai_high={"features.churn": 2},
                               instance="host-1"))
    assert [(a.name, a.annotations["summary"]) for a in alerts] == [
        ("LineageAuditDeadlineMissed", "pipeline daily missed its deadline"),
        ("LineageAuditSpoolBacklog", "4 lineage events waiting in the spool of host-1"),
        ("LineageAuditBudgetWarn", "team ml spent 60% of its monthly budget"),
        ("LineageAuditHighFindingsOnAIDataset", "2 HIGH audit findings on AI dataset features.churn"),
    ]


def test_a_condition_fires_only_after_holding_for_its_for_and_never_if_it_ends_before() -> None:
    hold = {AlertCondition.SPOOL_BACKLOG: timedelta(minutes=15)}.get
    backlog = evaluate(Snapshot(spool=3, instance="h"))
    t0 = datetime(2024, 5, 20, tzinfo=timezone.utc)

    def step(episodes: Episodes, alerts: list[Any], minutes: int) -> tuple[Episodes, list[Any]]:
        return transition(episodes, alerts, t0 + timedelta(minutes=minutes), lambda c: hold(c) or timedelta(0))

    episodes, notes = step(Episodes(), backlog, 0)
    assert notes == [] and episodes.pending
    episodes, notes = step(episodes, backlog, 10)
    assert notes == []
    episodes, notes = step(episodes, backlog, 15)
    assert [n.status for n in notes] == [Status.FIRING] and notes[0].starts_at == t0 + timedelta(minutes=15)
    episodes, notes = step(episodes, backlog, 16)
    assert notes == []
    episodes, notes = step(episodes, [], 20)
    assert [n.status for n in notes] == [Status.RESOLVED] and not episodes.firing
    episodes, notes = step(episodes, backlog, 30)  # a short backlog that clears before 15 minutes never fires
    episodes, notes = step(episodes, [], 40)
    assert notes == [] and not episodes.pending and not episodes.firing


def test_alerts_problems_are_named_at_their_line(tmp_path: Path) -> None:
    policy = tmp_path / "governance.yml"
    policy.write_text(_policy(1).replace("attempts: 3", "attempts: 0").replace("console: {}", "console: {teams: [grwth]}")
                      + "    - {url: 'ftp://x', name: oncall, conditions: [pipline_failed]}\n")
    done = subprocess.run([sys.executable, "-m", "lineage_auditor.cli", "policy", "check", str(policy)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    assert f"{policy}:12:17: alerts.webhooks[0].attempts: " in done.stderr
    assert f"{policy}:15:13: alerts.webhooks[1].url: 'ftp://x' is not an http:// or https:// URL" in done.stderr
    assert "'pipline_failed' is not one of pipeline_failed" in done.stderr and "did you mean 'pipeline_failed'" in done.stderr
