"""Revocable API keys; consumer marks stamped with their write time, so old ones can be purged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-06-15

`processed.processed_at` defaults to the writing transaction's `now()`: the mark's age is the
database's clock, never a caller's, so hosts with drifting clocks cannot purge a young mark.
Adding a column with a stable default rewrites no rows: every mark older than this migration
reads the migration's time, so none is purged before a full retention has passed, whatever
its real age.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_STATEMENTS = (
    # A revoked key never authenticates again; `revoked_at` is set once and never cleared.
    "ALTER TABLE api_keys ADD COLUMN revoked_at timestamptz",
    "CREATE INDEX api_keys_by_merchant ON api_keys (merchant_id, created_at)",
    "ALTER TABLE processed ADD COLUMN processed_at timestamptz NOT NULL DEFAULT now()",
    "CREATE INDEX processed_by_age ON processed (processed_at)",
)


def upgrade() -> None:
    # One statement per execute: the asyncpg driver prepares each (see 0001).
    for statement in _STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX processed_by_age")
    op.execute("ALTER TABLE processed DROP COLUMN processed_at")
    op.execute("DROP INDEX api_keys_by_merchant")
    op.execute("ALTER TABLE api_keys DROP COLUMN revoked_at")
