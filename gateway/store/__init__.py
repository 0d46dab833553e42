"""The embedded DuckDB store: one file, short connections, ordered migrations."""

from gateway.store.connection import Store, open_store, rows_as_dicts

__all__ = ["Store", "open_store", "rows_as_dicts"]
