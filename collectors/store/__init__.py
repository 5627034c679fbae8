"""The embedded lineage store (SQLite): raw OpenLineage events plus a current view."""

from collectors.store.sqlite import EmbeddedStore
from collectors.store.times import time_key

__all__ = ["EmbeddedStore", "time_key"]
