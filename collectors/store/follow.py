"""Keep a :class:`~lineage_auditor.monitor.fold.MonitorState` up to date with a store.

Each :meth:`StoreFollower.refresh` folds only the events stored since the last one (the
store's ``events_after`` cursor), so a ``/metrics`` scrape costs the new events, not the
history; the first refresh of a process reads the store once.
"""

from __future__ import annotations

import threading

from collectors.store import Cursor, IndexedStore
from lineage_auditor.errors import EventError
from lineage_auditor.events import run_events
from lineage_auditor.monitor.fold import MonitorState

PAGE = 5000


class StoreFollower:
    """A state and the cursor up to which it has folded the store's events (thread-safe)."""

    def __init__(self, store: IndexedStore, state: MonitorState | None = None) -> None:
        self.store = store
        self.state = state or MonitorState()
        self.cursor: Cursor = (0, 0)
        self.skipped = 0
        self._lock = threading.Lock()

    def refresh(self) -> int:
        """Fold what arrived since the last refresh; how many events that was."""
        with self._lock:
            folded = 0
            while True:
                raws, cursor = self.store.events_after(self.cursor, PAGE)
                if not raws:
                    return folded
                folded += self.state.fold(run_events(raws, self._skip))
                self.cursor = cursor
                if len(raws) < PAGE:
                    return folded

    def _skip(self, error: EventError) -> None:
        self.skipped += 1
