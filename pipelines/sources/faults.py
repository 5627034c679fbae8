"""Fault injection for the mock users API: what can go wrong, decided reproducibly.

Every decision is a pure function of (fault seed, request key, how many times that key was
requested before), so the same client doing the same requests meets the same faults on every
run, whatever the timing. Per-request faults are exclusive and their rates add up: with
``error_rate=0.3, rate_limit_rate=0.1, timeout_rate=0.05`` 45% of requests fail.
Record corruption depends only on the user id, so it is data, not a transient fault: a retry
gets the same invalid record.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Outcome = Literal["ok", "error", "rate_limit", "timeout", "malformed"]
MALFORMED_KINDS = ("truncated", "invalid", "wrong_shape")
CORRUPTIONS = ("bad_email", "missing_id", "bad_signup_date", "unknown_plan")


class FaultConfig(BaseModel):
    """The faults to inject; every field defaults to "no fault". JSON body of the control endpoint."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(0.0, ge=0, le=1, description="share of requests answered with a 5xx")
    error_codes: list[int] = Field(default_factory=lambda: [500, 502, 503], min_length=1)
    rate_limit_rate: float = Field(0.0, ge=0, le=1, description="share answered 429 with Retry-After")
    retry_after: int = Field(1, ge=0, description="Retry-After seconds sent with a 429")
    latency_ms: int = Field(0, ge=0, description="added to every data request")
    timeout_rate: float = Field(0.0, ge=0, le=1, description="share that stall for timeout_seconds")
    timeout_seconds: float = Field(30.0, gt=0, description="how long a stalled request sleeps")
    malformed_rate: float = Field(0.0, ge=0, le=1, description="share with a truncated or invalid body")
    malformed_pages: list[int] = Field(default_factory=list, description="pages whose body is always malformed")
    invalid_record_rate: float = Field(0.0, ge=0, le=1, description="share of users served invalid")
    invalid_record_ids: list[int] = Field(default_factory=list, description="users always served invalid")
    outage_seconds: float = Field(0.0, ge=0, description="every request 503 for this long after setting")
    outage: bool = Field(False, description="every request 503 until the faults are reset")
    seed: int | None = Field(None, description="fault seed (default: the server's seed)")

    @field_validator("error_codes")
    @classmethod
    def _server_errors(cls, codes: list[int]) -> list[int]:
        bad = [c for c in codes if not 500 <= c <= 599]
        if bad:
            raise ValueError(f"error codes must be 5xx, got {bad}")
        return codes

    @model_validator(mode="after")
    def _rates_fit(self) -> "FaultConfig":
        total = self.error_rate + self.rate_limit_rate + self.timeout_rate + self.malformed_rate
        if total > 1.0 + 1e-9:
            raise ValueError(f"error_rate + rate_limit_rate + timeout_rate + malformed_rate = {total:g} > 1")
        return self


@dataclass(frozen=True)
class Decision:
    """What to do with one request."""

    outcome: Outcome
    status: int = 200
    malformed_kind: str = ""


class FaultPlan:
    """A :class:`FaultConfig` in force, with the per-key request counters that make it reproducible."""

    def __init__(self, config: FaultConfig, seed: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.seed = config.seed if config.seed is not None else seed
        self._clock = clock
        self._set_at = clock()
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def outage_active(self) -> bool:
        cfg = self.config
        return cfg.outage or (cfg.outage_seconds > 0 and self._clock() - self._set_at < cfg.outage_seconds)

    def outage_remaining(self) -> float | None:
        """Seconds left in a timed outage (None for an open-ended one or none)."""
        if self.config.outage or self.config.outage_seconds <= 0:
            return None
        return max(0.0, self.config.outage_seconds - (self._clock() - self._set_at))

    def decide(self, key: str, *, page: int | None = None) -> Decision:
        """The fate of this request for ``key`` (method + path + query that names the data)."""
        with self._lock:
            n = self._seen[key]
            self._seen[key] += 1
        cfg = self.config
        rng = random.Random(f"faults|{self.seed}|{key}|{n}")
        u = rng.random()
        kind = MALFORMED_KINDS[rng.randrange(len(MALFORMED_KINDS))]
        if page is not None and page in cfg.malformed_pages:
            return Decision("malformed", 200, kind)
        for outcome, rate in (("error", cfg.error_rate), ("rate_limit", cfg.rate_limit_rate),
                              ("timeout", cfg.timeout_rate), ("malformed", cfg.malformed_rate)):
            if u < rate:
                status = {"error": cfg.error_codes[rng.randrange(len(cfg.error_codes))],
                          "rate_limit": 429}.get(outcome, 200)
                return Decision(outcome, status, kind if outcome == "malformed" else "")  # type: ignore[arg-type]
            u -= rate
        return Decision("ok")

    def is_invalid(self, user_id: int) -> bool:
        cfg = self.config
        if user_id in cfg.invalid_record_ids:
            return True
        return cfg.invalid_record_rate > 0 and \
            random.Random(f"invalid|{self.seed}|{user_id}").random() < cfg.invalid_record_rate

    def serve_user(self, user: dict[str, Any]) -> dict[str, Any]:
        """The user as served: corrupted (one way, chosen by id) when it is marked invalid."""
        if not self.is_invalid(user["id"]):
            return user
        return corrupt(user, CORRUPTIONS[user["id"] % len(CORRUPTIONS)])


def corrupt(user: dict[str, Any], how: str) -> dict[str, Any]:
    """A copy of ``user`` that fails validation in the named way."""
    bad = dict(user)
    if how == "bad_email":
        bad["email"] = bad["email"].replace("@", " at ")
    elif how == "missing_id":
        del bad["id"]
    elif how == "bad_signup_date":
        bad["signup_date"] = "2024-13-45"
    elif how == "unknown_plan":
        bad["plan"] = "platinum"
    else:
        raise ValueError(f"unknown corruption {how!r}")
    return bad


def malformed_body(body: dict[str, Any], kind: str) -> bytes:
    """A body that a strict client must reject: cut short, invalid JSON, or the wrong shape."""
    text = json.dumps(body, separators=(",", ":"))
    if kind == "truncated":
        return text[: max(1, len(text) // 2)].encode()
    if kind == "invalid":
        return text.replace("[", "[,", 1).replace(":", ":NaN,", 1).encode()
    if kind == "wrong_shape":
        return json.dumps({"page": body.get("page"), "data": "temporarily unavailable"}).encode()
    raise ValueError(f"unknown malformed kind {kind!r}")
