"""Deliver the spool, in order, removing only what the target acknowledged.

Replay stops at the first event the target could not take (it is probably down again), so
events are never delivered out of order and nothing is lost; run it again later. An event
that is not valid OpenLineage (checked here, before any target sees it: a store must never
hold one) or that the target refuses as invalid is set aside in ``rejected/`` with the
reason, rather than blocking the events queued behind it.
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
from collectors.emit.spool import Spool
from collectors.emit.transports import DeliveryError, Transport
from lineage_auditor.errors import EventError
from lineage_auditor.events import from_openlineage, is_static_event
from lineage_auditor.scrub import scrub, scrub_text

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
        if not is_static_event(event):
            from_openlineage(event)
    except FileNotFoundError:
        return True  # delivered by a replay that ran before us
    except OSError as exc:  # unreadable for now (permissions, I/O): keep it, stop here
        result.error = f"cannot read {path.name}: {exc.strerror or exc}"
        return False
    except EventError as exc:
        _set_aside(spool, path, f"not a valid OpenLineage event: {exc.message}", result)
        return True
    try:
        transport.send(scrub(event), redelivery=True)
    except DeliveryError as exc:
        if exc.retryable:
            result.error = str(exc)
            log.warning("replay stopped at %s: %s", path.name, exc)
            return False
        _set_aside(spool, path, str(exc), result)
        return True
    except Exception as exc:  # an unexpected transport failure: keep the file, stop here
        result.error = scrub_text(f"{type(exc).__name__}: {exc}")
        return False
    spool.acknowledge(path)
    result.delivered += 1
    return True


def _set_aside(spool: Spool, path: Path, reason: str, result: ReplayResult) -> None:
    """Move one event to ``rejected/`` with its reason; the queue behind it goes on."""
    spool.reject(path, reason)
    result.rejected.append(path.name)
    log.warning("event %s set aside in %s/: %s", path.name, "rejected", reason)
