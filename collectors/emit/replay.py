"""Deliver the spool, in order, removing only what the target acknowledged.

Replay stops at the first event the target could not take (it is probably down again), so
events are never delivered out of order and nothing is lost; run it again later. An event
the target refuses as invalid is set aside in ``rejected/`` rather than blocking the queue.
Running it twice, or after a crash between send and delete, is safe: the embedded store
dedupes on run id + event type + event time, and a spooled event may well have reached the
target already (its acknowledgement was what got lost), so every replayed event is sent as
a redelivery: the HTTP transport first asks Marquez, which stores every POST, whether it
holds that run's event of that type and time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.emit.emitter import LineageEmitter
from lineage_auditor.scrub import scrub, scrub_text
from collectors.emit.spool import Spool
from collectors.emit.transports import DeliveryError, Transport

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class ReplayResult:
    """Outcome of one replay: counts, what was set aside, and why it stopped (if it did)."""

    total: int = 0
    delivered: int = 0
    remaining: int = 0
    rejected: list[str] = field(default_factory=list)
    recovered: int = 0
    error: str | None = None
    target: str = ""

    @property
    def complete(self) -> bool:
        """Everything was delivered: nothing left, nothing refused."""
        return self.remaining == 0 and not self.rejected

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "total": self.total,
            "delivered": self.delivered,
            "remaining": self.remaining,
            "rejected": list(self.rejected),
            "recovered": self.recovered,
            "error": self.error,
        }


def replay(
    spool_dir: str | os.PathLike[str] | Spool,
    target: LineageEmitter | Transport,
    *,
    progress: Progress | None = None,
) -> ReplayResult:
    """Send every spooled event to ``target`` (an emitter's transport or a transport) in order."""
    spool = spool_dir if isinstance(spool_dir, Spool) else Spool(spool_dir)
    transport = target.transport if isinstance(target, LineageEmitter) else target
    result = ReplayResult(target=transport.describe())
    if not spool.directory.is_dir():
        return result  # nothing was ever spooled here
    with spool.exclusive():
        result.recovered = spool.recover_stale()
        files = spool.pending()
        result.total = len(files)
        for index, path in enumerate(files):
            if not _replay_one(spool, transport, path, result):
                result.remaining = len(files) - index
                break
            if progress:
                progress(index + 1, len(files))
        spool.sync()
    return result


def _replay_one(spool: Spool, transport: Transport, path: Path, result: ReplayResult) -> bool:
    """Deliver one file; False when replay must stop here."""
    try:
        event = spool.read(path)
    except FileNotFoundError:
        return True  # delivered by a replay that ran before us
    except ValueError as exc:
        spool.reject(path, f"unreadable spool file: {exc}")
        result.rejected.append(path.name)
        return True
    try:
        transport.send(scrub(event), redelivery=True)
    except DeliveryError as exc:
        if exc.retryable:
            result.error = str(exc)
            log.warning("replay stopped at %s: %s", path.name, exc)
            return False
        spool.reject(path, str(exc))
        result.rejected.append(path.name)
        log.warning("event %s refused by the target and set aside: %s", path.name, exc)
        return True
    except Exception as exc:  # an unexpected transport failure: keep the file, stop here
        result.error = scrub_text(f"{type(exc).__name__}: {exc}")
        return False
    spool.acknowledge(path)
    result.delivered += 1
    return True
