"""The API rate limit's token buckets, one row per API key, shared by every process.

Revision ID: 0002
Revises: 0001
Create Date: 2026-06-01

UNLOGGED: every API request updates a row here, and a logged table would make each of those
commits wait for a WAL flush (and ship to replicas) for state worth nothing after a crash. A
crash empties the table, which only refills every bucket: one extra burst per key at most.

`refilled_at` is the database's clock (`clock_timestamp()`), never a caller's; `admitted` is
the last check's outcome, kept so that the check's one statement can return it (see
`paymesh.adapters.postgres.ratelimit`).
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE UNLOGGED TABLE rate_buckets (
        key text PRIMARY KEY,
        tokens double precision NOT NULL,
        refilled_at timestamptz NOT NULL,
        admitted boolean NOT NULL
    )""")


def downgrade() -> None:
    op.execute("DROP TABLE rate_buckets")
