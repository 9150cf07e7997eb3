"""Delivered deliveries are purged past the consumer marks' retention: an index to find them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Housekeeping deletes delivered deliveries last saved before the marks' retention (45 days
by default), oldest first; a partial index on `updated_at` over the delivered ones keeps
each purge a short range read instead of a scan of every delivery.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX deliveries_delivered ON deliveries (updated_at) WHERE status = 'delivered'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX deliveries_delivered")
