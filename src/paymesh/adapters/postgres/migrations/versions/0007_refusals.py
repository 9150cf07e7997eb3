"""A function a statement calls to refuse itself: a changeset is one statement.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

A changeset's conditions (the payment still at the version it was read at, the
idempotency key still held, the consumer mark not there yet) are checked by the statement
that writes it, one CTE per table (`paymesh.adapters.postgres.changeset`). When one fails,
`paymesh_refuse_unless` raises, and the whole statement, its own transaction, is undone.
A plain expression cannot do this safely: PostgreSQL may fold `1/0` or a failing cast
while planning, whatever the condition. VOLATILE (the default) is never folded.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION paymesh_refuse_unless(ok boolean, refusal text) RETURNS boolean"
        " LANGUAGE plpgsql VOLATILE AS $$ BEGIN"
        " IF ok IS NOT TRUE THEN RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = refusal;"
        " END IF; RETURN true; END $$"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION paymesh_refuse_unless(boolean, text)")
