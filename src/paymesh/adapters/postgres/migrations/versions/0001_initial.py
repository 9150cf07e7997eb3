"""The schema SQLite reached at its fourth migration: payments, the outbox, the event bus.

Revision ID: 0001
Revises:
Create Date: 2026-05-20

Documents (payments, rules, deliveries, event envelopes) are `bytea` holding the codec's
JSON bytes as they are, not `jsonb`: jsonb refuses a `\\u0000` that a merchant's metadata may
carry and rewrites numbers (`1e5` reads back as the integer 100000), so a payment would no
longer read back exactly as every other backend returns it. What a query needs is a column.

Times are `timestamptz`. Text that orders a page or a list (`payments.id`, `deliveries.id`,
rule names) is `COLLATE "C"`: byte order, as in SQLite, whatever the database's locale.
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_STATEMENTS = (
    """CREATE TABLE payments (
        id text COLLATE "C" PRIMARY KEY,
        merchant_id text NOT NULL,
        customer_id text NOT NULL,
        status text NOT NULL,
        connector text NOT NULL,
        connector_payment_id text,
        review_status text,
        refund_pending_at timestamptz,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        version integer NOT NULL,
        doc bytea NOT NULL
    )""",
    # The list queries: a merchant's payments, by customer, status or review, newest first.
    "CREATE INDEX payments_by_merchant ON payments (merchant_id, created_at DESC, id DESC)",
    """CREATE INDEX payments_by_customer
        ON payments (merchant_id, customer_id, created_at DESC, id DESC)""",
    """CREATE INDEX payments_by_status
        ON payments (merchant_id, status, created_at DESC, id DESC)""",
    """CREATE INDEX payments_by_review
        ON payments (merchant_id, review_status, created_at DESC, id DESC)
        WHERE review_status IS NOT NULL""",
    # Webhooks find a payment by the PSP's id, the sync job finds stale unsettled ones.
    "CREATE INDEX payments_by_connector_ref ON payments (connector, connector_payment_id)",
    "CREATE INDEX payments_by_status_age ON payments (status, updated_at)",
    # Recovery finds refunds the PSP never answered: the oldest pending one's time, or NULL.
    """CREATE INDEX payments_refund_pending ON payments (refund_pending_at)
        WHERE refund_pending_at IS NOT NULL""",
    """CREATE TABLE refunds (
        id text PRIMARY KEY,
        merchant_id text NOT NULL,
        payment_id text NOT NULL
    )""",
    """CREATE TABLE idempotency (
        merchant_id text NOT NULL,
        key text NOT NULL,
        fingerprint text NOT NULL,
        resource_id text NOT NULL,
        lease_token text NOT NULL,
        locked_until timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        completed boolean NOT NULL,
        response_status integer,
        response_body bytea,
        PRIMARY KEY (merchant_id, key)
    )""",
    "CREATE INDEX idempotency_by_expiry ON idempotency (expires_at)",
    # seq is the outbox's order. Sequence values are taken before commit, so a reader may see
    # seq 10 before seq 9 commits. The outbox is read by its `delivered` flag, never by a
    # high-water mark, so the late event is routed on the next pass.
    """CREATE TABLE events (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        merchant_id text NOT NULL,
        payment_id text NOT NULL,
        type text NOT NULL,
        occurred_at timestamptz NOT NULL,
        envelope bytea NOT NULL,
        delivered boolean NOT NULL DEFAULT false
    )""",
    "CREATE INDEX events_by_payment ON events (merchant_id, payment_id, seq)",
    "CREATE INDEX events_by_merchant ON events (merchant_id, seq)",
    "CREATE INDEX events_undelivered ON events (seq) WHERE NOT delivered",
    """CREATE TABLE processed (
        consumer text NOT NULL,
        event_id text NOT NULL,
        PRIMARY KEY (consumer, event_id)
    )""",
    """CREATE TABLE notifications (
        id text PRIMARY KEY,
        merchant_id text NOT NULL,
        payment_id text NOT NULL,
        event_id text NOT NULL,
        channel text NOT NULL,
        recipient text NOT NULL,
        template text NOT NULL,
        created_at timestamptz NOT NULL
    )""",
    "CREATE INDEX notifications_by_payment ON notifications (merchant_id, payment_id)",
    """CREATE TABLE api_keys (
        key_hash text PRIMARY KEY,
        merchant_id text NOT NULL,
        prefix text NOT NULL,
        created_at timestamptz NOT NULL
    )""",
    """CREATE TABLE rules (
        merchant_id text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        doc bytea NOT NULL,
        PRIMARY KEY (merchant_id, name)
    )""",
    # A delivery is leased until `locked_until`, and '-infinity' means not leased.
    """CREATE TABLE deliveries (
        id text COLLATE "C" PRIMARY KEY,
        event_id text NOT NULL,
        merchant_id text NOT NULL,
        rule text NOT NULL,
        target_id text NOT NULL,
        status text NOT NULL,
        attempts integer NOT NULL,
        next_attempt_at timestamptz NOT NULL,
        locked_until timestamptz NOT NULL DEFAULT '-infinity',
        updated_at timestamptz NOT NULL,
        doc bytea NOT NULL
    )""",
    # Routing twice (a crash between routing and marking, two dispatchers reading the same
    # outbox) makes no second delivery: one per event, rule and target.
    "CREATE UNIQUE INDEX deliveries_once ON deliveries (event_id, rule, target_id)",
    "CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending'",
    """CREATE INDEX deliveries_dead ON deliveries (merchant_id, updated_at DESC, id DESC)
        WHERE status = 'dead'""",
    # Named documents: the fraud features checkpoint, routing tables.
    """CREATE TABLE blobs (
        name text PRIMARY KEY,
        saved_at timestamptz NOT NULL,
        data bytea NOT NULL
    )""",
)

_TABLES = (
    "blobs",
    "deliveries",
    "rules",
    "api_keys",
    "notifications",
    "processed",
    "events",
    "idempotency",
    "refunds",
    "payments",
)


def upgrade() -> None:
    # One statement per execute: the asyncpg driver prepares each, and a prepared
    # statement holds one command.
    for statement in _STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute(f"DROP TABLE {', '.join(_TABLES)}")
