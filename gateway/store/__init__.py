"""The embedded DuckDB store: one file, short connections, ordered migrations."""

from gateway.store.connection import Store, open_store

__all__ = ["Store", "open_store"]
