"""The double-entry ledger: each transaction as a document, its postings as rows to sum.

Revision ID: 0004
Revises: 0003
Create Date: 2026-07-01

`ledger_transactions.seq` is the booking order (balance transactions list newest first by
it, as the outbox lists events). A transaction's id derives from the event that booked it:
the unique id makes a replayed booking insert nothing, and its postings are inserted only
with the row (`changeset.py`), so no sum counts a posting twice.

Postings carry what balances group and split by (merchant, account, currency, the day the
money is available), so a merchant's balances are one index range summed in SQL, with no
join. Amounts are `bigint`: integer minor units, signed (a debit positive, a credit negative).
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_STATEMENTS = (
    """CREATE TABLE ledger_transactions (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        merchant_id text NOT NULL,
        payment_id text NOT NULL,
        psp text NOT NULL,
        kind text NOT NULL,
        created_at timestamptz NOT NULL,
        doc bytea NOT NULL
    )""",
    # A merchant's balance transactions newest first, all or one payment's; a PSP's day.
    "CREATE INDEX ledger_by_merchant ON ledger_transactions (merchant_id, seq)",
    "CREATE INDEX ledger_by_payment ON ledger_transactions (merchant_id, payment_id, seq)",
    "CREATE INDEX ledger_by_psp ON ledger_transactions (psp, created_at)",
    """CREATE TABLE ledger_postings (
        txn_id text NOT NULL,
        n integer NOT NULL,
        merchant_id text NOT NULL,
        account text NOT NULL,
        currency text NOT NULL,
        amount bigint NOT NULL,
        available_on date NOT NULL,
        PRIMARY KEY (txn_id, n)
    )""",
    # Covers the balances' sum: an index-only scan of the merchant's range.
    """CREATE INDEX ledger_postings_by_account
        ON ledger_postings (merchant_id, account, currency, available_on) INCLUDE (amount)""",
)


def upgrade() -> None:
    # One statement per execute: the asyncpg driver prepares each (see 0001).
    for statement in _STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE ledger_postings, ledger_transactions")
