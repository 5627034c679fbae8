"""The alert rules with real Prometheus and Alertmanager (Debian's packages, scripts/prometheus.sh).

``promtool check rules`` validates deploy/prometheus/alerts.yml. Then Prometheus scrapes a
real ``lineage-audit serve`` every second with a bearer token, evaluates the shipped rules
every second and sends to a real Alertmanager, which posts to a webhook receiver here: a
failing pipeline run must reach the receiver as a LineageAuditPipelineFailed alert within a
bounded time, and a successful run must not; the run's cost puts its team over its budget's
warn_at (serve --policy exposes the budgets), which must arrive as LineageAuditBudgetWarn.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from service_helpers import REPO, Server, add_token, free_port, pipeline_run, start_server

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
DELIVERY_BOUND_S = 60.0
POLICY = """\
apiVersion: lineage-audit/v1
kind: Policy
teams:
  - {name: growth, members: [prometheus], owns: ["mart.*"]}
budgets:
  - {team: growth, monthly: 10, currency: USD, warn_at: 0.8}
"""


def _bin(name: str) -> str:
    path = Path(os.environ.get("LINEAGE_AUDIT_PROMETHEUS_BIN", "/usr/bin")) / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run scripts/prometheus.sh (installs Debian's prometheus and "
                    "prometheus-alertmanager)", pytrace=False)
    return str(path)


def test_promtool_accepts_the_alert_rules() -> None:
    done = subprocess.run([_bin("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_the_example_prometheus_and_alertmanager_configs_are_valid(tmp_path: Path) -> None:
    """deploy/prometheus/prometheus.yml (with the rules and a token file beside it, as its comment
    says) passes `promtool check config`; alertmanager.yml passes `amtool check-config`."""
    import shutil

    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(RULES.parent / name, tmp_path / name)
    (tmp_path / "lineage-audit.token").write_text("la_example\n")
    done = subprocess.run([_bin("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout, "the config loads the shipped rules"
    done = subprocess.run([_bin("amtool"), "check-config", str(RULES.parent / "alertmanager.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "2 receivers" in done.stdout, done.stdout + done.stderr


class Receiver(BaseHTTPRequestHandler):
    """Alertmanager's webhook receiver: keeps every notification with the time it arrived."""

    received: list[tuple[float, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((time.monotonic(), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url} exited with {process.returncode}: {log.read_text()[-2000:]}", pytrace=False)
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} not ready within {timeout}s: {log.read_text()[-2000:]}", pytrace=False)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """serve + Alertmanager + Prometheus on 127.0.0.1, and the webhook receiver."""
    Receiver.received = []
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    token = add_token(tmp_path, "prometheus")
    (tmp_path / "token").write_text(token)
    (tmp_path / "governance.yml").write_text(POLICY)
    server: Server = start_server(["--store", f"embedded:{tmp_path / 'store.db'}", "--tokens",
                                   str(tmp_path / "tokens.json"), "--policy", str(tmp_path / "governance.yml")], tmp_path)
    am_port, prom_port = free_port(), free_port()
    (tmp_path / "alertmanager.yml").write_text(json.dumps({
        "route": {"receiver": "hook", "group_by": ["alertname", "pipeline"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "hook", "webhook_configs": [
            {"url": f"http://127.0.0.1:{hook.server_address[1]}/alerts", "send_resolved": False}]}],
    }))
    (tmp_path / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(RULES)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "lineage-audit", "authorization": {"credentials_file": str(tmp_path / "token")},
                            "static_configs": [{"targets": [server.url.removeprefix("http://")]}]}],
    }))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        am_log, prom_log = tmp_path / "alertmanager.log", tmp_path / "prometheus.log"
        am = subprocess.Popen([_bin("prometheus-alertmanager"), f"--config.file={tmp_path / 'alertmanager.yml'}",
                               f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
                               "--cluster.listen-address="], stdout=am_log.open("w"), stderr=subprocess.STDOUT)
        processes.append(am)
        prom = subprocess.Popen([_bin("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=prom_log.open("w"), stderr=subprocess.STDOUT)
        processes.append(prom)
        _wait_http(f"http://127.0.0.1:{am_port}/-/ready", am, am_log)
        _wait_http(f"http://127.0.0.1:{prom_port}/-/ready", prom, prom_log)
        yield {"serve": server, "token": token, "prometheus": f"http://127.0.0.1:{prom_port}", "logs": (am_log, prom_log)}
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        server.stop()
        hook.shutdown()
        hook.server_close()


def _scraped(prometheus: str, timeout: float = 30.0) -> None:
    """Wait until Prometheus has scraped serve successfully (up == 1)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = httpx.get(f"{prometheus}/api/v1/query", params={"query": 'up{job="lineage-audit"}'}).json()
        if any(r["value"][1] == "1" for r in result["data"]["result"]):
            return
        time.sleep(0.5)
    pytest.fail(f"Prometheus never scraped serve: {result}", pytrace=False)


def test_a_failing_run_pages_through_prometheus_and_alertmanager(stack: dict[str, Any]) -> None:
    server, token = stack["serve"], stack["token"]
    auth = {"Authorization": f"Bearer {token}"}
    _scraped(stack["prometheus"])
    for event in pipeline_run(1, pipeline="healthy_daily", team="growth"):
        assert httpx.post(f"{server.url}/api/v1/lineage", json=event, headers=auth).status_code == 201
    injected = time.monotonic()
    failed = pipeline_run(2, pipeline="orders_<b>daily</b>", team="growth", failed=True)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    failed[2]["eventTime"] = failed[3]["eventTime"] = now  # the failed step cost 9 of growth's 10 this month
    failed[2]["run"]["facets"]["lineageAudit_cost"] = {"_producer": "p", "_schemaURL": "s", "wallSeconds": 1, "cpuSeconds": 1,
                                                        "engine": "duckdb", "measuredBy": "none", "amount": 9.0, "currency": "USD"}
    for event in failed:
        assert httpx.post(f"{server.url}/api/v1/lineage", json=event, headers=auth).status_code == 201
    alerts: list[dict[str, Any]] = []
    budget: list[dict[str, Any]] = []
    while time.monotonic() - injected < DELIVERY_BOUND_S and not (alerts and budget):
        alerts = [(at, a) for at, note in Receiver.received for a in note["alerts"]
                  if a["labels"].get("alertname") == "LineageAuditPipelineFailed"]  # type: ignore[misc]
        budget = [a for _, note in Receiver.received for a in note["alerts"]
                  if a["labels"].get("alertname") == "LineageAuditBudgetWarn"]
        time.sleep(0.2)
    if not alerts:
        am_log, prom_log = stack["logs"]
        pytest.fail(f"no alert delivered within {DELIVERY_BOUND_S}s; received {Receiver.received}; "
                    f"prometheus log: {prom_log.read_text()[-1500:]}", pytrace=False)
    at, alert = alerts[0]  # type: ignore[misc]
    latency = at - injected
    print(f"\nfailing run -> Alertmanager webhook: {latency:.1f} s")
    assert alert["status"] == "firing"
    assert alert["labels"]["pipeline"] == "orders_<b>daily</b>" and alert["labels"]["team"] == "growth"
    assert alert["labels"]["severity"] == "page"
    assert alert["annotations"]["summary"] == "pipeline orders_<b>daily</b> (team growth) failed"
    assert budget and budget[0]["labels"]["team"] == "growth", f"the budget rule has data: {Receiver.received}"
    assert budget[0]["annotations"]["summary"] == "team growth spent 90% of its monthly budget"
    fired = {a["labels"].get("pipeline") for _, n in Receiver.received for a in n["alerts"]}
    assert "healthy_daily" not in fired, "a pipeline whose last run succeeded does not page"
