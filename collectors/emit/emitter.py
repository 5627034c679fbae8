"""Emit OpenLineage events without ever losing one or breaking the pipeline that emits it.

openlineage-python's ``client.emit()`` raises when the transport fails; a lineage server
being down must not fail a data pipeline, and the event must not vanish either. So
:meth:`LineageEmitter.emit` never raises: it serialises with openlineage-python's Serde
(spec-shaped facets), scrubs secrets, tries the transport, and on any failure writes the
event to the local spool for ``lineage-audit replay``.

After a failure the emitter spools straight away for ``cooldown`` seconds instead of
waiting on a dead server for every event, then tries the target again. An event that is not
valid OpenLineage is never sent (a store must not hold one, and a refusal would read as the
target being down): it goes to the spool's ``rejected/`` with the reason, and the events
after it are delivered as usual.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from collectors.emit.spool import Spool
from collectors.emit.transports import DeliveryError, Transport
from lineage_auditor.errors import EventError
from lineage_auditor.events import from_openlineage, is_static_event
from lineage_auditor.scrub import scrub, scrub_text

log = logging.getLogger(__name__)

DEFAULT_COOLDOWN_S = 30.0


@dataclass
class EmitStats:
    """What happened to the events given to one emitter.

    ``delivered + failed == emitted`` and ``spooled + lost == failed``; ``lost`` counts events
    that could not even be written to the spool (disk full, unserialisable object).
    """

    emitted: int = 0
    delivered: int = 0
    failed: int = 0
    spooled: int = 0
    lost: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def to_event_dict(event: Any) -> dict[str, Any]:
    """An openlineage-python event (``event_v2`` or legacy) or a dict, as spec-shaped JSON data.

    Serde drops ``None`` values, turns enums, datetimes and UUIDs into strings, and keeps
    the facets' ``_producer``/``_schemaURL``.
    """
    from openlineage.client.serde import Serde

    data = Serde.to_dict(event)
    if not isinstance(data, dict):
        raise TypeError(f"not an OpenLineage event: {type(event).__name__}")
    return data


class LineageEmitter:
    """Delivers events through one transport, spooling whatever it cannot deliver."""

    def __init__(
        self,
        transport: Transport,
        spool: Spool | str | Path,
        *,
        cooldown: float = DEFAULT_COOLDOWN_S,
    ) -> None:
        self.transport = transport
        self.spool = spool if isinstance(spool, Spool) else Spool(spool)
        self.cooldown = cooldown
        self.stats = EmitStats()
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._closed = False

    def __repr__(self) -> str:
        return f"LineageEmitter({self.transport.describe()}, spool={str(self.spool.directory)!r})"

    def __enter__(self) -> "LineageEmitter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def emit(self, event: Any) -> bool:
        """Send one event; True when the target acknowledged it. Never raises."""
        try:
            return self._emit(event)
        except BaseException as exc:  # noqa: BLE001 - the pipeline must never see our failure
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            log.error("lineage event lost: %s", scrub_text(f"{type(exc).__name__}: {exc}"))
            self._count(lost=1, failed=1)
            return False

    def _emit(self, event: Any) -> bool:
        self._count(emitted=1)
        try:
            data = scrub(to_event_dict(event))
        except Exception as exc:
            log.error("lineage event lost: cannot serialise %s: %s", type(event).__name__, scrub_text(str(exc)))
            self._count(lost=1, failed=1)
            return False
        invalid = _invalid(data)
        reason = invalid or self._deliver(data)
        if reason is None:
            self._count(delivered=1)
            return True
        self._count(failed=1)
        try:
            path = self.spool.write(data)
            if invalid:
                path = self.spool.reject(path, invalid)
                log.error("lineage event not sent, set aside in %s: %s", path, invalid)
        except Exception as exc:
            log.error(
                "lineage event lost: %s, and the spool %s is not writable: %s",
                reason, self.spool.directory, scrub_text(str(exc)),
            )
            self._count(lost=1)
            return False
        self._count(spooled=1)
        log.debug("lineage event spooled to %s", path.name)
        return False

    def _deliver(self, data: dict[str, Any]) -> str | None:
        """Try the transport unless it failed moments ago; the failure reason, or None."""
        if self._closed:
            return "emitter closed"
        if time.monotonic() < self._down_until:
            return "target down"
        try:
            self.transport.send(data)
            return None
        except DeliveryError as exc:
            reason = str(exc)
        except Exception as exc:  # a transport bug is still not the pipeline's problem
            reason = scrub_text(f"{type(exc).__name__}: {exc}")
        with self._lock:
            first = time.monotonic() >= self._down_until
            self._down_until = time.monotonic() + self.cooldown
        if first:
            log.warning(
                "lineage delivery failed (%s); spooling events to %s - run `lineage-audit replay` to send them",
                reason, self.spool.directory,
            )
        return reason

    def close(self) -> None:
        """Release the transport; says how many events wait in the spool."""
        if self._closed:
            return
        self._closed = True
        try:
            self.transport.close()
        except Exception as exc:  # closing must not fail a finished pipeline either
            log.warning("closing lineage transport: %s", scrub_text(str(exc)))
        if self.stats.spooled:
            log.warning(
                "%d lineage event(s) spooled in %s; deliver them with `lineage-audit replay`",
                self.stats.spooled, self.spool.directory,
            )


def _invalid(data: dict[str, Any]) -> str | None:
    """Why an event is not valid OpenLineage (the event model's check), or None."""
    if is_static_event(data):
        return None
    try:
        from_openlineage(data)
    except EventError as exc:
        return f"not a valid OpenLineage event: {exc.message}"
    return None

