"""Relays share the outbox: each claims rows with a lease instead of every relay reading all.

Revision ID: 0005
Revises: 0004
Create Date: 2026-07-20

`events.relay_lease_until` is when a relay's claim on an undelivered event ends. A claim takes
rows whose lease has ended (`FOR UPDATE SKIP LOCKED`), sets it, and commits; the relay then
publishes them and marks them delivered. A relay that dies in between leaves its rows to
another relay's claim once the lease ends. '-infinity' is "never claimed", so every event
written before this migration is claimable at once; a constant default rewrites no rows.

No new index: a claim walks `events_undelivered` (undelivered rows by seq) and passes over
the few leased ones, as many as relays are publishing at that moment.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE events ADD COLUMN relay_lease_until timestamptz NOT NULL DEFAULT '-infinity'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE events DROP COLUMN relay_lease_until")
