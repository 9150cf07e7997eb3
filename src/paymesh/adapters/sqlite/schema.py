"""The SQLite schema, applied in order; `user_version` records how far a file has come."""

from __future__ import annotations

import contextlib
import os
import sqlite3

MIGRATIONS: list[str] = [
    """
    CREATE TABLE payments (
        id TEXT PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        status TEXT NOT NULL,
        connector TEXT NOT NULL,
        connector_payment_id TEXT,
        created_us INTEGER NOT NULL,
        updated_us INTEGER NOT NULL,
        version INTEGER NOT NULL,
        doc BLOB NOT NULL
    );
    -- The list queries: a merchant's payments, by customer or status, newest first.
    CREATE INDEX payments_by_merchant ON payments (merchant_id, created_us DESC, id DESC);
    CREATE INDEX payments_by_customer
        ON payments (merchant_id, customer_id, created_us DESC, id DESC);
    CREATE INDEX payments_by_status ON payments (merchant_id, status, created_us DESC, id DESC);
    -- Webhooks find a payment by the PSP's id; the sync job finds stale unsettled ones.
    CREATE INDEX payments_by_connector_ref ON payments (connector, connector_payment_id);
    CREATE INDEX payments_by_status_age ON payments (status, updated_us);

    CREATE TABLE refunds (
        id TEXT PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        payment_id TEXT NOT NULL
    );

    CREATE TABLE idempotency (
        merchant_id TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        lease_token TEXT NOT NULL,
        locked_until_us INTEGER NOT NULL,
        expires_us INTEGER NOT NULL,
        completed INTEGER NOT NULL,
        response_status INTEGER,
        response_body BLOB,
        PRIMARY KEY (merchant_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_by_expiry ON idempotency (expires_us);

    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        merchant_id TEXT NOT NULL,
        payment_id TEXT NOT NULL,
        type TEXT NOT NULL,
        time_us INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        delivered INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX events_by_payment ON events (merchant_id, payment_id, seq);
    CREATE INDEX events_by_merchant ON events (merchant_id, seq);
    CREATE INDEX events_undelivered ON events (seq) WHERE delivered = 0;

    CREATE TABLE processed (
        consumer TEXT NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (consumer, event_id)
    ) WITHOUT ROWID;

    CREATE TABLE notifications (
        id TEXT PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        payment_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        template TEXT NOT NULL,
        created_us INTEGER NOT NULL
    );
    CREATE INDEX notifications_by_payment ON notifications (merchant_id, payment_id);

    CREATE TABLE api_keys (
        key_hash TEXT PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        prefix TEXT NOT NULL,
        created_us INTEGER NOT NULL
    );
    """,
    # 2: the event bus: rules, one delivery per (event, rule, target), dead letters.
    """
    CREATE TABLE rules (
        merchant_id TEXT NOT NULL,
        name TEXT NOT NULL,
        doc BLOB NOT NULL,
        PRIMARY KEY (merchant_id, name)
    ) WITHOUT ROWID;

    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        merchant_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        target_id TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_us INTEGER NOT NULL,
        locked_until_us INTEGER NOT NULL DEFAULT 0,
        updated_us INTEGER NOT NULL,
        doc BLOB NOT NULL
    );
    -- Routing twice (a crash between routing and marking, two dispatchers) makes no second
    -- delivery: one per event, rule and target.
    CREATE UNIQUE INDEX deliveries_once ON deliveries (event_id, rule, target_id);
    CREATE INDEX deliveries_due ON deliveries (next_attempt_us) WHERE status = 'pending';
    CREATE INDEX deliveries_dead ON deliveries (merchant_id, updated_us DESC, id DESC)
        WHERE status = 'dead';
    """,
    """
    -- Manual reviews live in their payment's document; this column lists them.
    ALTER TABLE payments ADD COLUMN review_status TEXT;
    CREATE INDEX payments_by_review
        ON payments (merchant_id, review_status, created_us DESC, id DESC)
        WHERE review_status IS NOT NULL;

    -- Named documents: the fraud features checkpoint, routing tables. name -> blob.
    CREATE TABLE blobs (
        name TEXT PRIMARY KEY,
        saved_us INTEGER NOT NULL,
        data BLOB NOT NULL
    ) WITHOUT ROWID;
    """,
    """
    -- Recovery finds refunds the PSP never answered: the oldest pending one's time, or NULL.
    ALTER TABLE payments ADD COLUMN refund_pending_us INTEGER;
    CREATE INDEX payments_refund_pending ON payments (refund_pending_us)
        WHERE refund_pending_us IS NOT NULL;
    """,
    """
    -- Keys can be revoked (never restored); `paymesh keys list` reads them per merchant.
    ALTER TABLE api_keys ADD COLUMN revoked_us INTEGER;
    CREATE INDEX api_keys_by_merchant ON api_keys (merchant_id, created_us);

    -- Consumer marks carry the time they were written, so that old ones can be purged. Marks
    -- older than this migration count as written now: whatever their real age, none is
    -- purged before a full retention has passed.
    ALTER TABLE processed ADD COLUMN processed_us INTEGER;
    UPDATE processed SET processed_us = CAST(strftime('%s', 'now') AS INTEGER) * 1000000;
    CREATE INDEX processed_by_age ON processed (processed_us);
    """,
    """
    -- The ledger: each transaction as a document (seq: booking order), and its postings as
    -- rows, which balances are summed from. A transaction's id derives from the event that
    -- booked it, so a booking replayed is ignored.
    CREATE TABLE ledger_transactions (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        merchant_id TEXT NOT NULL,
        payment_id TEXT NOT NULL,
        psp TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        doc BLOB NOT NULL
    );
    CREATE INDEX ledger_by_merchant ON ledger_transactions (merchant_id, kind, seq);
    CREATE INDEX ledger_by_payment ON ledger_transactions (merchant_id, payment_id, seq);
    CREATE INDEX ledger_by_psp ON ledger_transactions (psp, created_us);
    CREATE TABLE ledger_postings (
        txn_id TEXT NOT NULL,
        merchant_id TEXT NOT NULL,
        account TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount INTEGER NOT NULL,
        available_on TEXT NOT NULL
    );
    CREATE INDEX ledger_postings_by_account ON ledger_postings (merchant_id, account, currency);
    """,
    """
    -- Housekeeping purges delivered deliveries past the consumer marks' retention, oldest
    -- first: without this index each purge would scan every delivery.
    CREATE INDEX deliveries_delivered ON deliveries (updated_us) WHERE status = 'delivered';
    """,
    """
    -- Blobs in a rowid table: a big one (the fraud checkpoint) is written a part at a time
    -- through SQLite's incremental blob I/O, which a WITHOUT ROWID table does not offer.
    CREATE TABLE blobs_rowid (
        name TEXT NOT NULL UNIQUE,
        saved_us INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    INSERT INTO blobs_rowid (name, saved_us, data) SELECT name, saved_us, data FROM blobs;
    DROP TABLE blobs;
    ALTER TABLE blobs_rowid RENAME TO blobs;
    """,
    """
    -- Idempotency records in a rowid table. WITHOUT ROWID keeps a whole row in the key's
    -- B-tree, its interior pages included, and a record holds the reply it replays (about
    -- 800 bytes): 4 rows a leaf, a claim's page chosen by its random key, and the reply
    -- overflowing when the claim is completed. A rowid table appends rows on its last
    -- pages, where a batch's claims and completions share their pages, and only the small
    -- (merchant, key) index takes a random page.
    CREATE TABLE idempotency_rows (
        id INTEGER PRIMARY KEY,
        merchant_id TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        lease_token TEXT NOT NULL,
        locked_until_us INTEGER NOT NULL,
        expires_us INTEGER NOT NULL,
        completed INTEGER NOT NULL,
        response_status INTEGER,
        response_body BLOB,
        UNIQUE (merchant_id, key)
    );
    INSERT INTO idempotency_rows (merchant_id, key, fingerprint, resource_id, lease_token,
        locked_until_us, expires_us, completed, response_status, response_body)
        SELECT merchant_id, key, fingerprint, resource_id, lease_token, locked_until_us,
            expires_us, completed, response_status, response_body
        FROM idempotency ORDER BY expires_us;
    DROP TABLE idempotency;
    ALTER TABLE idempotency_rows RENAME TO idempotency;
    CREATE INDEX idempotency_by_expiry ON idempotency (expires_us);

    -- A payment has no PSP reference until its PSP answers, and a webhook never looks one
    -- up by none: a payment joins this index when it is bound, not when it is made.
    DROP INDEX payments_by_connector_ref;
    CREATE INDEX payments_by_connector_ref ON payments (connector, connector_payment_id)
        WHERE connector_payment_id IS NOT NULL;
    """,
]

#: The database holds payments, customers and key hashes: only its owner may read it.
FILE_MODE = 0o600


def owner_only(path: str) -> None:
    """Create the database file readable and writable by its owner only, and take group and
    other access off an existing one and its -wal, -shm and -journal files. SQLite creates
    those with the database file's own mode, so once the file is 0600 they are too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)  # the umask can only narrow it
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, FILE_MODE)


def connect(path: str) -> sqlite3.Connection:
    owner_only(path)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (group commit needs it).
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: the WAL is fsynced at every commit, so a 2xx really is durable.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
        # One transaction per migration: a file is never left half-migrated.
        try:
            conn.executescript(f"BEGIN IMMEDIATE;{script};PRAGMA user_version={number};COMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
