"""SQLite: the embedded store (one file, WAL, fsync on every commit)."""

from paymesh.adapters.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
