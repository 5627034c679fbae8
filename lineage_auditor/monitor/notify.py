"""Deliver alert notifications to the policy's routes: the console, and webhooks with retries and a dead letter.

One evaluation (:meth:`Alerting.check`) runs under an exclusive lock on the state file, so
``serve`` and a cron job's ``lineage-audit alerts check`` on one host never notify the same
episode twice:

1. the conditions are evaluated and compared with the episodes in the state file
   (:func:`lineage_auditor.monitor.alerts.transition`);
2. each webhook's notifications are appended to its dead-letter file (JSON lines, fsync'd)
   *before* the state is saved, so a crash anywhere after loses nothing: the file is the
   webhook's queue of what it has not acknowledged;
3. the queue is sent oldest first: what failed before gets one try (its receiver was down),
   what is new gets the one retry policy (:mod:`lineage_auditor.retry`: backoff with jitter,
   ``Retry-After``); the first failure of a receiver that is down (no connection, a timeout,
   a 5xx/429 after the retries) stops the round, keeping the order of what waits. A receiver
   refusing one payload (another 4xx) keeps that entry and goes on with the next.

Delivery is at least once: a receiver that took a POST but whose answer was lost gets it
again; Alertmanager's format carries a ``fingerprint`` per alert to tell repeats apart.
The payload is Alertmanager's webhook JSON (version 4, one alert per request), so receivers
written for Alertmanager read it unchanged. Secrets stay out of files: the bearer token is
read from the environment at send time, and a URL's password is scrubbed in the dead letter.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lineage_auditor.errors import ConfigError
from lineage_auditor.governance.model import AlertsPolicy, WebhookRoute
from lineage_auditor.monitor.alerts import Episodes, Notification, Snapshot, Status, evaluate, transition
from lineage_auditor.retry import (Deadline, GaveUp, Retryable, RetryPolicy, parse_retry_after, retry_call,
                                   retryable_reason, retryable_status)
from lineage_auditor.scrub import scrub_text, scrub_url
from lineage_auditor.textfiles import load_json, read_text
from lineage_auditor.times import iso

NEVER = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing
MAX_DELAY_S = 30.0


def payload(note: Notification, receiver: str) -> dict[str, Any]:
    """One notification in Alertmanager's webhook format (version 4)."""
    alert = note.alert
    labels, annotations = dict(alert.labels), dict(alert.annotations)
    return {
        "version": "4", "groupKey": f"lineage-audit:{alert.fingerprint}", "truncatedAlerts": 0,
        "status": note.status.value, "receiver": receiver, "groupLabels": {"alertname": alert.name},
        "commonLabels": labels, "commonAnnotations": annotations, "externalURL": "",
        "alerts": [{"status": note.status.value, "labels": labels, "annotations": annotations,
                    "startsAt": iso(note.starts_at), "endsAt": iso(note.ends_at) if note.ends_at else NEVER,
                    "generatorURL": "", "fingerprint": alert.fingerprint}],
    }


def console_line(note: Notification) -> str:
    """``FIRING LineageAuditPipelineFailed pipeline=x team=y: summary`` (control characters escaped)."""
    alert = note.alert
    labels = " ".join(f"{k}={v}" for k, v in alert.labels.items() if k not in ("alertname", "severity"))
    text = f"{note.status.value.upper()} {alert.name} [{alert.labels.get('severity', '')}] {labels}: {alert.annotations['summary']}"
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], text)


def _routed(route: Any, note: Notification) -> bool:
    if note.alert.condition not in route.conditions:
        return False
    if note.status is Status.RESOLVED and not route.send_resolved:
        return False
    return not route.teams or note.alert.team in route.teams


# ---------------------------------------------------------------------- files


class QueueFile:
    """A webhook's dead letter: JSON lines of notifications it has not acknowledged, oldest first."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[dict[str, Any]]:
        """The waiting notifications; ConfigError at the first line that is not one (edited or damaged)."""
        if not self.path.exists():
            return []
        out = []
        for n, line in enumerate(read_text(self.path, what="alert dead-letter file").splitlines(), 1):
            if line.strip():
                entry = load_json(line, file=str(self.path), line=n)
                if not isinstance(entry, dict) or not isinstance(entry.get("payload"), dict):
                    raise ConfigError("not a waiting notification (an object with a payload object); the dead-letter "
                                      "file was edited or damaged", file=str(self.path), line=n)
                out.append(entry)
        return out

    def append(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
            handle.flush()
            os.fsync(handle.fileno())

    def replace(self, entries: list[dict[str, Any]]) -> None:
        """Keep only ``entries`` (written aside, then renamed over: never half a file)."""
        if not entries:
            self.path.unlink(missing_ok=True)
            return
        temp = self.path.with_name(self.path.name + ".tmp")
        with temp.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)


@contextmanager
def locked_state(path: Path) -> Iterator[tuple[Episodes, Callable[[Episodes], None]]]:
    """The episodes in ``path`` under an exclusive lock (``path.lock``), and a function saving new ones."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            episodes = Episodes()
            if path.exists():
                try:
                    episodes = Episodes.from_json(load_json(read_text(path, what="alert state file"), file=str(path)))
                except ValueError as exc:
                    raise ConfigError(f"not an alert state file ({exc}); remove it to start afresh", file=str(path)) from None

            def save(new: Episodes) -> None:
                temp = path.with_name(path.name + ".tmp")
                temp.write_text(json.dumps(new.to_json(), indent=1, sort_keys=True), encoding="utf-8")
                os.replace(temp, path)

            yield episodes, save
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------------- webhooks


class DeliveryFailed(Exception):
    """A POST that did not succeed; ``down``: the receiver is unreachable or failing (stop the round)."""

    def __init__(self, reason: str, *, down: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.down = down


@dataclass
class WebhookReport:
    name: str
    delivered: int = 0
    waiting: int = 0  # in the dead-letter file after this round
    error: str = ""
    dead_letter: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "delivered": self.delivered, "waiting": self.waiting, "error": self.error,
                "dead_letter": self.dead_letter}


class Webhook:
    """One ``webhooks:`` route: its queue (the dead-letter file) and how it POSTs."""

    def __init__(self, route: WebhookRoute, name: str, dead_letter: Path, *, env: Mapping[str, str],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.route = route
        self.name = name
        self.queue = QueueFile(dead_letter)
        self.env = env
        self.sleep = sleep
        backoff = route.backoff.total_seconds()
        timeout = route.timeout.total_seconds()
        max_delay = max(backoff, MAX_DELAY_S)
        self.policy = RetryPolicy(max_attempts=route.attempts, base_delay=backoff, max_delay=max_delay, timeout=timeout,
                                  deadline=route.attempts * (timeout + max_delay) + 1.0, max_retry_after=max_delay)
        self.once = RetryPolicy(max_attempts=1, timeout=timeout, deadline=timeout + 1.0)

    def enqueue(self, notes: list[Notification], now: datetime) -> None:
        self.queue.append([{"receiver": self.name, "url": scrub_url(self.route.url), "queued_at": iso(now),
                            "attempts": 0, "error": "", "payload": payload(n, self.name)}
                           for n in notes if _routed(self.route, n)])

    def flush(self) -> WebhookReport:
        """Send what waits, oldest first (see the module doc); the rest stays in the file."""
        report = WebhookReport(self.name, dead_letter=str(self.queue.path))
        entries = self.queue.entries()
        if not entries:
            return report
        import httpx

        kept: list[dict[str, Any]] = []
        with httpx.Client(headers=self._headers()) as client:
            for i, entry in enumerate(entries):
                try:
                    self._send(client, entry["payload"], self.once if entry.get("attempts") else self.policy)
                    report.delivered += 1
                except DeliveryFailed as exc:
                    entry["attempts"] = int(entry.get("attempts") or 0) + 1
                    entry["error"] = report.error = scrub_text(exc.reason)
                    kept.append(entry)
                    if exc.down:
                        kept += entries[i + 1:]
                        break
        self.queue.replace(kept)
        report.waiting = len(kept)
        return report

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "lineage-audit-alerts"}
        if self.route.token_env:
            token = self.env.get(self.route.token_env)
            if not token:
                raise DeliveryFailed(f"environment variable {self.route.token_env} (token_env) is not set", down=True)
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _send(self, client: Any, body: dict[str, Any], policy: RetryPolicy) -> None:
        import httpx

        target = scrub_url(self.route.url)

        def attempt() -> None:
            try:
                response = client.post(self.route.url, json=body, timeout=policy.timeout)
            except httpx.HTTPError as exc:
                reason = retryable_reason(exc)
                if reason is None:
                    raise DeliveryFailed(f"{target}: {type(exc).__name__}: {exc}", down=True) from None
                raise Retryable(f"{target}: {reason}") from None
            if response.status_code < 300:
                return
            if retryable_status(response.status_code):
                raise Retryable(f"{target} answered HTTP {response.status_code}",
                                retry_after=parse_retry_after(response.headers.get("retry-after")))
            raise DeliveryFailed(f"{target} answered HTTP {response.status_code}", down=False)

        try:
            retry_call(attempt, policy=policy, deadline=Deadline(policy.deadline, name="alert delivery deadline"),
                       sleep=self.sleep)
        except GaveUp as exc:
            raise DeliveryFailed(f"{exc.last.reason} ({exc.why})", down=True) from None


# ---------------------------------------------------------------------- one evaluation


@dataclass
class CheckReport:
    """What one evaluation found and did."""

    firing: list[dict[str, Any]] = field(default_factory=list)  # every alert firing after it
    notified: list[Notification] = field(default_factory=list)  # fired or resolved in it
    webhooks: list[WebhookReport] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"firing": self.firing,
                "notified": [{"status": n.status.value, "alertname": n.alert.name, "labels": dict(n.alert.labels),
                              "summary": n.alert.annotations["summary"]} for n in self.notified],
                "webhooks": [w.to_json() for w in self.webhooks]}


class Alerting:
    """The policy's ``alerts:`` with its files: the state (episodes) and a dead letter per webhook.

    ``folder`` holds the files the policy does not place (state.json, NAME.dead-letter.jsonl);
    ``base`` is where relative paths in the policy start (the policy file's folder).
    """

    def __init__(self, policy: AlertsPolicy, *, folder: Path, base: Path, console: Callable[[str], None],
                 env: Mapping[str, str] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.policy = policy
        self.state = base / policy.state if policy.state else folder / "state.json"
        self.console = console
        self.webhooks = []
        for i, route in enumerate(policy.webhooks):
            name = policy.webhook_name(i)
            dead_letter = base / route.dead_letter if route.dead_letter else (
                self.state.parent / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.dead-letter.jsonl")
            self.webhooks.append(Webhook(route, name, dead_letter, env=os.environ if env is None else env, sleep=sleep))

    @property
    def every_s(self) -> float:
        return self.policy.every.total_seconds()

    def check(self, snapshot: Snapshot, now: datetime | None = None) -> CheckReport:
        """Evaluate, notify what started or ended, deliver what waits (see the module doc)."""
        moment = now or datetime.now(timezone.utc)
        with locked_state(self.state) as (episodes, save):
            after, notes = transition(episodes, evaluate(snapshot), moment, self.policy.hold)
            for hook in self.webhooks:
                hook.enqueue(notes, moment)
            save(after)
            if self.policy.console is not None:
                for note in notes:
                    if _routed(self.policy.console, note):
                        self.console(console_line(note))
            reports = []
            for hook in self.webhooks:
                try:
                    reports.append(hook.flush())
                except DeliveryFailed as exc:  # no token: everything waits
                    reports.append(WebhookReport(hook.name, waiting=len(hook.queue.entries()), error=exc.reason,
                                                 dead_letter=str(hook.queue.path)))
        return CheckReport(list(after.firing.values()), notes, reports)
