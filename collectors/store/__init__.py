"""The embedded lineage store (SQLite): raw OpenLineage events plus a small run index."""

from collectors.store.sqlite import EmbeddedStore

__all__ = ["EmbeddedStore"]
