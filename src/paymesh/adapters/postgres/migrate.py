"""Bring a database's schema to head with Alembic, safely from many processes at once.

Every paymesh process runs this at start. The upgrade is one transaction that first takes a
transaction-scoped advisory lock, so when several start together one migrates and the others
wait for it, then find the schema at head and do nothing. PostgreSQL's DDL is transactional:
a failed upgrade leaves the schema as it was.

Alembic speaks SQLAlchemy; its connection is made by asyncpg from the store's own DSN
(`async_creator`), so there is one driver and one DSN syntax, and no second DB-API to install.

Alembic's `op` and `context` are process-wide proxies to the running upgrade, so two upgrades
interleaving on one event loop (two stores opening at once, on different databases) would
send one's statements down the other's connection. Each upgrade therefore runs on a thread
of its own with its own event loop, one at a time in a process; the caller's loop is free
meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from functools import partial
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

SCRIPTS = Path(__file__).with_name("migrations")

#: pg_advisory_xact_lock key for "migrating paymesh": b"paymesh" as an integer.
MIGRATION_LOCK = int.from_bytes(b"paymesh", "big")

#: One Alembic run at a time in this process (see the module doc).
_ALEMBIC = threading.Lock()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade(dsn: str) -> None:
    """Apply every migration the database lacks; returns once the schema is at head."""
    await asyncio.to_thread(_upgrade_alone, dsn)


def _upgrade_alone(dsn: str) -> None:
    with _ALEMBIC:
        asyncio.run(_upgrade_locked(dsn))


async def _upgrade_locked(dsn: str) -> None:
    engine = create_async_engine(
        "postgresql+asyncpg://", poolclass=NullPool, async_creator=partial(asyncpg.connect, dsn)
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()
