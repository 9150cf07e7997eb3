"""Alembic's environment: runs the revisions on the connection `migrate.upgrade` hands in.

There is no URL here and no engine of its own: the connection already holds the advisory
lock and the transaction the whole upgrade runs in (see `migrate.py`).
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "paymesh applies its PostgreSQL migrations at PostgresStore.open(); "
        "this environment needs the connection it hands in"
    )
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
