"""The Store port on one SQLite file.

Writes go to the group-commit writer thread. Reads run on the event loop's thread on their
own WAL connection: a primary-key read takes microseconds, less than a hop to a thread pool,
and WAL readers never wait for the writer.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO

from paymesh.adapters.codec import (
    decode_json,
    delivery_from_row,
    delivery_to_doc,
    encode_json,
    from_micros,
    payment_from_doc,
    payment_to_doc,
    rule_from_doc,
    rule_to_doc,
    to_micros,
)
from paymesh.adapters.ledger_codec import ledger_from_doc, ledger_to_doc
from paymesh.adapters.sqlite.schema import connect, migrate
from paymesh.adapters.sqlite.writer import WRITE_LOCK_SUFFIX, GroupCommitWriter
from paymesh.domain.ledger import BALANCE_KINDS, LedgerTransaction
from paymesh.domain.payment import Payment
from paymesh.domain.refund import Refund
from paymesh.domain.status import PaymentStatus
from paymesh.ports.bus import Delivery, Rule, target_label
from paymesh.ports.store import (
    AlreadyProcessed,
    ApiKey,
    Balances,
    BlobPart,
    BlobSpill,
    Changeset,
    IdempotencyConflict,
    IdempotencyRecord,
    IdempotencyWrite,
    Notification,
    PaymentQuery,
    PaymentWrite,
    Purged,
    Spilled,
    StoredEvent,
    VersionConflict,
)

_PAYMENT_COLS = "doc, version"


def _apply(changes: Changeset, conn: sqlite3.Connection) -> None:
    """Runs on the writer thread inside a SAVEPOINT: raise to undo the whole changeset."""
    if changes.idempotency is not None:
        _write_idempotency(conn, changes.idempotency)
    marked_us = to_micros(datetime.now(UTC))  # the mark's age is the store's to keep
    for consumer, event_id in changes.processed:
        cur = conn.execute(
            "INSERT OR IGNORE INTO processed (consumer, event_id, processed_us) VALUES (?, ?, ?)",
            (consumer, event_id, marked_us),
        )
        if cur.rowcount != 1:
            raise AlreadyProcessed(f"{consumer} already applied {event_id}")
    for write in changes.payments:
        p = write.payment
        if write.expected_version == 0:
            try:
                conn.execute(
                    "INSERT INTO payments (merchant_id, customer_id, status, connector,"
                    " connector_payment_id, created_us, updated_us, version, doc, review_status,"
                    " refund_pending_us, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        p.merchant_id,
                        p.customer_id,
                        p.status.value,
                        p.connector,
                        p.connector_payment_id,
                        to_micros(p.created_at),
                        to_micros(p.updated_at),
                        1,
                        payment_to_doc(p),
                        _review_status(p),
                        _refund_pending_us(p),
                        p.id,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise VersionConflict(f"payment {p.id} already exists") from exc
        else:
            _update_payment(conn, write)
        if p.refunds:  # most payments have none: no statement for nothing
            conn.executemany(
                "INSERT OR IGNORE INTO refunds (id, merchant_id, payment_id) VALUES (?, ?, ?)",
                [(r.id, p.merchant_id, p.id) for r in p.refunds],
            )
    if changes.events:
        conn.executemany(
            "INSERT INTO events (id, merchant_id, payment_id, type, time_us, envelope)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    e.id,
                    e.merchant_id,
                    e.payment_id,
                    e.type,
                    to_micros(e.time),
                    encode_json(e.envelope()),
                )
                for e in changes.events
            ],
        )
    if changes.deliveries:
        conn.executemany(
            "INSERT OR IGNORE INTO deliveries (id, event_id, merchant_id, rule, target_id,"
            " status, attempts, next_attempt_us, updated_us, doc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    d.id,
                    d.event_id,
                    d.merchant_id,
                    d.rule,
                    d.target.id,
                    d.status,
                    d.attempts,
                    to_micros(d.next_attempt_at),
                    to_micros(d.created_at),
                    delivery_to_doc(d),
                )
                for d in changes.deliveries
            ],
        )
    if changes.routed:
        conn.executemany(
            "UPDATE events SET delivered = 1 WHERE id = ?", [(i,) for i in changes.routed]
        )
    if changes.notifications:
        conn.executemany(
            "INSERT INTO notifications (id, merchant_id, payment_id, event_id, channel,"
            " recipient, template, created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    n.id,
                    n.merchant_id,
                    n.payment_id,
                    n.event_id,
                    n.channel,
                    n.recipient,
                    n.template,
                    to_micros(n.created_at),
                )
                for n in changes.notifications
            ],
        )
    for t in changes.ledger:
        _book(conn, t)


def _review_status(p: Payment) -> str | None:
    return None if p.review is None else p.review.status.value


def _refund_pending_us(p: Payment) -> int | None:
    return None if p.oldest_pending_refund is None else to_micros(p.oldest_pending_refund)


def _update_payment(conn: sqlite3.Connection, write: PaymentWrite) -> None:
    """SQLite rewrites an index whose column an UPDATE sets, even to the value it had: a page
    of that index more in the commit, and in the WAL, and again at the checkpoint. So the
    UPDATE leaves out what a payment never changes (its merchant, customer and creation
    time, which key the list indexes), and sets its PSP reference, which changes once or
    twice in a payment's life (bound, moved by a failover), only where it differs."""
    p = write.payment
    cur = conn.execute(
        "UPDATE payments SET status = ?, updated_us = ?, version = ?, doc = ?,"
        " review_status = ?, refund_pending_us = ? WHERE id = ? AND version = ?",
        (
            p.status.value,
            to_micros(p.updated_at),
            write.expected_version + 1,
            payment_to_doc(p),
            _review_status(p),
            _refund_pending_us(p),
            p.id,
            write.expected_version,
        ),
    )
    if cur.rowcount != 1:
        raise VersionConflict(f"payment {p.id} changed since version {write.expected_version}")
    conn.execute(
        "UPDATE payments SET connector = ?1, connector_payment_id = ?2"
        " WHERE id = ?3 AND (connector IS NOT ?1 OR connector_payment_id IS NOT ?2)",
        (p.connector, p.connector_payment_id, p.id),
    )


def _book(conn: sqlite3.Connection, t: LedgerTransaction) -> None:
    cur = conn.execute(
        "INSERT OR IGNORE INTO ledger_transactions (id, merchant_id, payment_id, psp, kind,"
        " created_us, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            t.id,
            t.merchant_id,
            t.payment_id,
            t.psp,
            t.kind.value,
            to_micros(t.created_at),
            ledger_to_doc(t),
        ),
    )
    if cur.rowcount == 1:  # booked once, whatever replays the booking
        conn.executemany(
            "INSERT INTO ledger_postings (txn_id, merchant_id, account, currency, amount,"
            " available_on) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    t.id,
                    t.merchant_id,
                    p.account.value,
                    t.currency,
                    p.amount,
                    t.available_on.isoformat(),
                )
                for p in t.postings
            ],
        )


def _write_idempotency(conn: sqlite3.Connection, write: IdempotencyWrite) -> None:
    r = write.record
    values = (
        r.fingerprint,
        r.resource_id,
        r.lease_token,
        to_micros(r.locked_until),
        to_micros(r.expires_at),
        int(r.completed),
        r.response_status,
        r.response_body,
    )
    if write.expected_token is None:
        # The claim: one statement that inserts, or takes over only an expired record.
        cur = conn.execute(
            "INSERT INTO idempotency (merchant_id, key, fingerprint, resource_id, lease_token,"
            " locked_until_us, expires_us, completed, response_status, response_body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (merchant_id, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
            " resource_id = excluded.resource_id, lease_token = excluded.lease_token,"
            " locked_until_us = excluded.locked_until_us, expires_us = excluded.expires_us,"
            " completed = excluded.completed, response_status = excluded.response_status,"
            " response_body = excluded.response_body WHERE idempotency.expires_us <= ?",
            (r.merchant_id, r.key, *values, to_micros(write.now)),
        )
    else:
        cur = conn.execute(
            "UPDATE idempotency SET fingerprint = ?, resource_id = ?, lease_token = ?,"
            " locked_until_us = ?, expires_us = ?, completed = ?, response_status = ?,"
            " response_body = ? WHERE merchant_id = ? AND key = ? AND lease_token = ?",
            (*values, r.merchant_id, r.key, write.expected_token),
        )
    if cur.rowcount != 1:
        raise IdempotencyConflict(f"idempotency key {r.key!r} is held by another request")


def _event(row: tuple[Any, ...]) -> StoredEvent:
    event_id, merchant_id, payment_id, event_type, time_us, envelope = row
    return StoredEvent(
        id=event_id,
        merchant_id=merchant_id,
        payment_id=payment_id,
        type=event_type,
        time=from_micros(time_us),
        envelope=decode_json(envelope),
    )


def _api_key(row: tuple[Any, ...]) -> ApiKey:
    key_hash, merchant_id, created_us, prefix, revoked_us = row
    return ApiKey(
        key_hash=key_hash,
        merchant_id=merchant_id,
        created_at=from_micros(created_us),
        prefix=prefix,
        revoked_at=None if revoked_us is None else from_micros(revoked_us),
    )


def _purge(conn: sqlite3.Connection, now_us: int, processed_before_us: int, limit: int) -> Purged:
    # Expired, and not leased by a request still in flight (completed, or its lease is over).
    idempotency = conn.execute(
        "DELETE FROM idempotency WHERE id IN (SELECT id"
        " FROM idempotency WHERE expires_us <= ? AND (completed = 1 OR locked_until_us <= ?)"
        " LIMIT ?)",
        (now_us, now_us, limit),
    ).rowcount
    processed = conn.execute(
        "DELETE FROM processed WHERE (consumer, event_id) IN (SELECT consumer, event_id"
        " FROM processed WHERE processed_us < ? LIMIT ?)",
        (processed_before_us, limit),
    ).rowcount
    deliveries = conn.execute(
        "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
        " WHERE status = 'delivered' AND updated_us < ? LIMIT ?)",
        (processed_before_us, limit),
    ).rowcount
    return Purged(idempotency=idempotency, processed=processed, deliveries=deliveries)


_KEY_COLS = "key_hash, merchant_id, created_us, prefix, revoked_us"
_EVENT_COLS = "id, merchant_id, payment_id, type, time_us, envelope"
_DELIVERY_COLS = "id, event_id, merchant_id, rule, status, attempts, next_attempt_us, doc"


@dataclass
class _DeliverySaves:
    """Delivery saves gathered for one writer job, and the task that writes them."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    flush: asyncio.Task[None] | None = None


_SPILL_CHUNK = 1 << 20


class _FileSpill:
    """`BlobSpill` over an unbuffered temporary file: each part appended as it is kept."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._end = 0

    def keep(self, data: bytearray) -> BlobPart:
        view = memoryview(data)  # written as it is: no copy of its own
        while view:  # a regular file takes it all at once; a short write is still finished
            written = self._file.write(view)
            if not written:  # a full disk raises; nothing written and no error never ends
                raise OSError("the spill file took no bytes")
            view = view[written:]
        part = Spilled(self._file, self._end, len(data))
        self._end += len(data)
        return part

    def close(self) -> None:
        self._file.close()


def _copy_spilled(part: Spilled, blob: sqlite3.Blob) -> None:
    # pread: no shared file position between the loop that wrote and this writer thread.
    fd, at, left = part.source.fileno(), part.offset, part.nbytes
    while left:
        chunk = os.pread(fd, min(left, _SPILL_CHUNK), at)
        if not chunk:
            raise OSError(f"spill file ended {left} bytes short of a part")
        blob.write(chunk)
        at += len(chunk)
        left -= len(chunk)


# The row at its full size, zeros, for `put_blob_parts` to write into; its rowid back.
_PUT_ZEROS = (
    "INSERT INTO blobs (name, saved_us, data) VALUES (?1, ?2, zeroblob(?3))"
    " ON CONFLICT (name) DO UPDATE SET saved_us = excluded.saved_us, data = excluded.data"
    " RETURNING rowid"
)
# `?4`: whether to write at all (see `SqliteStore.put_blob`). A SELECT needs its WHERE before
# an upsert's ON CONFLICT (SQLite's parsing ambiguity).
_PUT_BLOB = (
    "INSERT INTO blobs (name, saved_us, data) SELECT ?1, ?2, ?3 WHERE ?4"
    " ON CONFLICT (name) DO UPDATE SET saved_us = excluded.saved_us, data = excluded.data"
)


class SqliteStore:
    def __init__(self, path: str | Path, *, commit_delay: float = 0.0) -> None:
        """`commit_delay`: seconds the writer may wait for company before a commit, while
        jobs arrive faster than that (`GroupCommitWriter`); 0 never waits."""
        self.path = str(path)
        self._commit_delay = commit_delay
        self._reader: sqlite3.Connection | None = None
        self._writer: GroupCommitWriter | None = None
        self._saves = _DeliverySaves()

    async def open(self) -> None:
        # A directory made here is the owner's alone, like the file (schema.owner_only).
        Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        conn = connect(self.path)
        migrate(conn)
        self._writer = GroupCommitWriter(
            conn, lock_path=self.path + WRITE_LOCK_SUFFIX, commit_delay=self._commit_delay
        )
        self._reader = connect(self.path)

    async def close(self) -> None:
        if self._writer:
            self._writer.close()
            self._writer = None
        if self._reader:
            self._reader.close()
            self._reader = None

    @property
    def _db(self) -> sqlite3.Connection:
        if self._reader is None:
            raise RuntimeError("store is not open")
        return self._reader

    async def _write(self, job: Any, *, alone: bool = False) -> Any:
        if self._writer is None:
            raise RuntimeError("store is not open")
        return await self._writer.submit(job, alone=alone)

    # -- writes ---------------------------------------------------------------------------

    async def commit(self, changes: Changeset) -> None:
        await self._write(lambda conn: _apply(changes, conn))

    async def add_api_key(self, key: ApiKey) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO api_keys (key_hash, merchant_id, prefix, created_us) VALUES (?,?,?,?)",
                (key.key_hash, key.merchant_id, key.prefix, to_micros(key.created_at)),
            )
        )

    async def revoke_api_key(self, key_hash: str, at: datetime) -> bool:
        cur = await self._write(
            lambda conn: conn.execute(
                "UPDATE api_keys SET revoked_us = ? WHERE key_hash = ? AND revoked_us IS NULL",
                (to_micros(at), key_hash),
            )
        )
        return bool(cur.rowcount == 1)

    async def purge_expired(
        self, now: datetime, processed_before: datetime, limit: int = 1000
    ) -> Purged:
        now_us, before_us = to_micros(now), to_micros(processed_before)
        # Alone: a purge changes pages all over its tables (see GroupCommitWriter).
        result: Purged = await self._write(
            lambda conn: _purge(conn, now_us, before_us, limit), alone=True
        )
        return result

    async def put_blob(self, name: str, data: bytes, at: datetime) -> None:
        def put(conn: sqlite3.Connection) -> None:
            conn.execute(_PUT_BLOB, (name, to_micros(at), data, True))
            # The cached statement keeps its own copy of a bound blob until it is bound
            # again: tens of MB for the fraud checkpoint, held for the five minutes to the
            # next one. Bound again here to an empty one, with `?4` false: no row is written.
            conn.execute(_PUT_BLOB, (name, 0, b"", False))

        await self._write(put, alone=True)  # its old pages, tens of MB (GroupCommitWriter)

    async def put_blob_parts(self, name: str, parts: Sequence[BlobPart], at: datetime) -> None:
        """The row made at its full size of zeros, then the parts written into it through
        SQLite's incremental blob I/O: no joined copy, nor the copy SQLite takes of a bound
        blob (its SQLITE_TRANSIENT), for the tens of MB of a fraud checkpoint. A part this
        store's spill wrote to its file is copied from there a MiB at a time."""
        size = sum(
            part.nbytes if isinstance(part, Spilled) else memoryview(part).nbytes for part in parts
        )

        def put(conn: sqlite3.Connection) -> None:
            (rowid,) = conn.execute(_PUT_ZEROS, (name, to_micros(at), size)).fetchone()
            with conn.blobopen("blobs", "data", rowid) as blob:
                for part in parts:
                    if isinstance(part, Spilled):
                        _copy_spilled(part, blob)
                    else:
                        blob.write(part)

        await self._write(put, alone=True)  # its old pages, tens of MB (GroupCommitWriter)

    def spill(self) -> BlobSpill:
        """A file beside the database, unnamed (gone with its last descriptor, a crash
        included): written to the page cache, which the kernel may drop or write out, so a
        checkpoint's parts are not this process's memory while the rest is made."""
        directory = None if self.path == ":memory:" else Path(self.path).parent
        return _FileSpill(tempfile.TemporaryFile(dir=directory, buffering=0))

    async def get_blob(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT data FROM blobs WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    # -- reads ----------------------------------------------------------------------------

    def _payment(self, sql: str, args: tuple[Any, ...]) -> Payment | None:
        row = self._db.execute(sql, args).fetchone()
        return None if row is None else payment_from_doc(row[0], row[1])

    async def get_payment(self, payment_id: str, merchant_id: str | None = None) -> Payment | None:
        if merchant_id is None:
            return self._payment(
                f"SELECT {_PAYMENT_COLS} FROM payments WHERE id = ?", (payment_id,)
            )
        return self._payment(
            f"SELECT {_PAYMENT_COLS} FROM payments WHERE id = ? AND merchant_id = ?",
            (payment_id, merchant_id),
        )

    async def find_payment_by_connector_ref(
        self, connector: str, connector_payment_id: str
    ) -> Payment | None:
        return self._payment(
            f"SELECT {_PAYMENT_COLS} FROM payments"
            " WHERE connector = ? AND connector_payment_id = ?",
            (connector, connector_payment_id),
        )

    async def get_refund(self, refund_id: str, merchant_id: str) -> Refund | None:
        row = self._db.execute(
            "SELECT payment_id FROM refunds WHERE id = ? AND merchant_id = ?",
            (refund_id, merchant_id),
        ).fetchone()
        if row is None:
            return None
        payment = await self.get_payment(row[0], merchant_id)
        return None if payment is None else payment.refund(refund_id)

    async def list_payments(self, query: PaymentQuery) -> tuple[list[Payment], bool]:
        where = ["merchant_id = ?"]
        args: list[Any] = [query.merchant_id]
        if query.customer_id is not None:
            where.append("customer_id = ?")
            args.append(query.customer_id)
        if query.status is not None:
            where.append("status = ?")
            args.append(query.status.value)
        if query.review_status is not None:
            where.append("review_status = ?")
            args.append(query.review_status.value)
        elif query.under_review:
            where.append("review_status IS NOT NULL")
        if query.created_gte is not None:
            where.append("created_us >= ?")
            args.append(to_micros(query.created_gte))
        if query.created_lt is not None:
            where.append("created_us < ?")
            args.append(to_micros(query.created_lt))
        if query.starting_after is not None:
            cursor = self._db.execute(
                "SELECT created_us FROM payments WHERE id = ? AND merchant_id = ?",
                (query.starting_after, query.merchant_id),
            ).fetchone()
            if cursor is None:
                return [], False
            where.append("(created_us < ? OR (created_us = ? AND id < ?))")
            args.extend([cursor[0], cursor[0], query.starting_after])
        sql = (
            f"SELECT {_PAYMENT_COLS} FROM payments WHERE {' AND '.join(where)}"
            " ORDER BY created_us DESC, id DESC LIMIT ?"
        )
        rows = self._db.execute(sql, (*args, query.limit + 1)).fetchall()
        page = [payment_from_doc(doc, version) for doc, version in rows[: query.limit]]
        return page, len(rows) > query.limit

    async def payments_to_sync(
        self, statuses: frozenset[PaymentStatus], updated_before: datetime, limit: int
    ) -> list[Payment]:
        marks = ",".join("?" * len(statuses))
        rows = self._db.execute(
            f"SELECT {_PAYMENT_COLS} FROM payments WHERE status IN ({marks})"
            " AND updated_us < ? ORDER BY updated_us LIMIT ?",
            (*[s.value for s in statuses], to_micros(updated_before), limit),
        ).fetchall()
        return [payment_from_doc(doc, version) for doc, version in rows]

    async def payments_with_pending_refunds(
        self, created_before: datetime, limit: int
    ) -> list[Payment]:
        rows = self._db.execute(
            f"SELECT {_PAYMENT_COLS} FROM payments WHERE refund_pending_us < ?"
            " ORDER BY refund_pending_us LIMIT ?",
            (to_micros(created_before), limit),
        ).fetchall()
        return [payment_from_doc(doc, version) for doc, version in rows]

    async def get_idempotency(self, merchant_id: str, key: str) -> IdempotencyRecord | None:
        row = self._db.execute(
            "SELECT fingerprint, resource_id, lease_token, locked_until_us, expires_us,"
            " completed, response_status, response_body FROM idempotency"
            " WHERE merchant_id = ? AND key = ?",
            (merchant_id, key),
        ).fetchone()
        if row is None:
            return None
        return IdempotencyRecord(
            merchant_id=merchant_id,
            key=key,
            fingerprint=row[0],
            resource_id=row[1],
            lease_token=row[2],
            locked_until=from_micros(row[3]),
            expires_at=from_micros(row[4]),
            completed=bool(row[5]),
            response_status=row[6],
            response_body=row[7],
        )

    async def events_for_payment(self, merchant_id: str, payment_id: str) -> list[StoredEvent]:
        rows = self._db.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE merchant_id = ? AND payment_id = ?"
            " ORDER BY seq",
            (merchant_id, payment_id),
        ).fetchall()
        return [_event(r) for r in rows]

    async def list_events(
        self, merchant_id: str, event_type: str | None, limit: int, starting_after: str | None
    ) -> tuple[list[StoredEvent], bool]:
        where = ["merchant_id = ?"]
        args: list[Any] = [merchant_id]
        if event_type is not None:
            where.append("type = ?")
            args.append(event_type)
        if starting_after is not None:
            where.append("seq < (SELECT seq FROM events WHERE id = ? AND merchant_id = ?)")
            args.extend([starting_after, merchant_id])
        rows = self._db.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE {' AND '.join(where)}"
            " ORDER BY seq DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        return [_event(r) for r in rows[:limit]], len(rows) > limit

    async def undelivered_events(self, limit: int) -> list[StoredEvent]:
        rows = self._db.execute(
            f"SELECT {_EVENT_COLS} FROM events WHERE delivered = 0 ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [_event(r) for r in rows]

    async def claim_outbox(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[StoredEvent]:
        # One process owns the file, and its one bus never overlaps itself: no lease needed.
        return await self.undelivered_events(limit)

    # -- ledger -----------------------------------------------------------------------------

    async def ledger_balances(self, merchant_id: str, today: date) -> Balances:
        rows = self._db.execute(
            "SELECT account, currency,"
            " SUM(CASE WHEN available_on <= ? THEN amount ELSE 0 END),"
            " SUM(CASE WHEN available_on > ? THEN amount ELSE 0 END)"
            " FROM ledger_postings WHERE merchant_id = ? GROUP BY account, currency",
            (today.isoformat(), today.isoformat(), merchant_id),
        ).fetchall()
        return {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows}

    async def balance_transactions(
        self,
        merchant_id: str,
        limit: int,
        starting_after: str | None = None,
        payment_id: str | None = None,
    ) -> tuple[list[LedgerTransaction], bool]:
        kinds = sorted(k.value for k in BALANCE_KINDS)
        where = [f"merchant_id = ? AND kind IN ({', '.join('?' * len(kinds))})"]
        args: list[Any] = [merchant_id, *kinds]
        if payment_id is not None:
            where.append("payment_id = ?")
            args.append(payment_id)
        if starting_after is not None:
            where.append(
                "seq < (SELECT seq FROM ledger_transactions WHERE id = ? AND merchant_id = ?)"
            )
            args += [starting_after, merchant_id]
        rows = self._db.execute(
            f"SELECT doc FROM ledger_transactions WHERE {' AND '.join(where)}"
            " ORDER BY seq DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        return [ledger_from_doc(r[0]) for r in rows[:limit]], len(rows) > limit

    async def ledger_transactions(
        self, psp: str, created_gte: datetime, created_lt: datetime
    ) -> list[LedgerTransaction]:
        # A PSP's day for reconciliation: as many rows as the day had payments, and more. They
        # are read and decoded in a worker thread, on a connection of its own (the reader is
        # the event loop's), so the loop gets the interpreter every switch interval meanwhile.
        _ = self._db  # a closed store says so here, as at every read
        return await asyncio.to_thread(
            self._ledger_day, psp, to_micros(created_gte), to_micros(created_lt)
        )

    def _ledger_day(self, psp: str, gte: int, lt: int) -> list[LedgerTransaction]:
        conn = connect(self.path)
        try:
            rows = conn.execute(
                "SELECT doc FROM ledger_transactions WHERE psp = ? AND created_us >= ?"
                " AND created_us < ? ORDER BY seq",
                (psp, gte, lt),
            ).fetchall()
        finally:
            conn.close()
        return [ledger_from_doc(r[0]) for r in rows]

    async def notifications_for_payment(
        self, merchant_id: str, payment_id: str
    ) -> list[Notification]:
        rows = self._db.execute(
            "SELECT id, merchant_id, payment_id, event_id, channel, recipient, template,"
            " created_us FROM notifications WHERE merchant_id = ? AND payment_id = ?"
            " ORDER BY created_us, id",
            (merchant_id, payment_id),
        ).fetchall()
        return [
            Notification(
                id=r[0],
                merchant_id=r[1],
                payment_id=r[2],
                event_id=r[3],
                channel=r[4],
                recipient=r[5],
                template=r[6],
                created_at=from_micros(r[7]),
            )
            for r in rows
        ]

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = self._db.execute(
            f"SELECT {_KEY_COLS} FROM api_keys WHERE key_hash = ?", (key_hash,)
        ).fetchone()
        return None if row is None else _api_key(row)

    async def list_api_keys(self, merchant_id: str | None = None) -> list[ApiKey]:
        if merchant_id is None:
            rows = self._db.execute(
                f"SELECT {_KEY_COLS} FROM api_keys ORDER BY created_us, prefix"
            ).fetchall()
        else:
            rows = self._db.execute(
                f"SELECT {_KEY_COLS} FROM api_keys WHERE merchant_id = ?"
                " ORDER BY created_us, prefix",
                (merchant_id,),
            ).fetchall()
        return [_api_key(r) for r in rows]

    # -- the event bus ----------------------------------------------------------------------

    async def put_rule(self, rule: Rule) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO rules (merchant_id, name, doc) VALUES (?, ?, ?) ON CONFLICT"
                " (merchant_id, name) DO UPDATE SET doc = excluded.doc",
                (rule.merchant_id, rule.name, rule_to_doc(rule)),
            )
        )

    async def delete_rule(self, merchant_id: str, name: str) -> bool:
        cur = await self._write(
            lambda conn: conn.execute(
                "DELETE FROM rules WHERE merchant_id = ? AND name = ?", (merchant_id, name)
            )
        )
        return bool(cur.rowcount == 1)

    async def rules(self) -> list[Rule]:
        rows = self._db.execute("SELECT doc FROM rules ORDER BY merchant_id, name").fetchall()
        return [rule_from_doc(r[0]) for r in rows]

    async def claim_deliveries(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[Delivery]:
        now_us = to_micros(now)
        lease_us = now_us + int(lease_seconds * 1_000_000)

        def claim(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                f"UPDATE deliveries SET locked_until_us = ? WHERE id IN (SELECT id FROM"
                f" deliveries WHERE status = 'pending' AND next_attempt_us <= ? AND"
                f" locked_until_us <= ? ORDER BY next_attempt_us LIMIT ?)"
                f" RETURNING {_DELIVERY_COLS}",
                (lease_us, now_us, now_us, limit),
            ).fetchall()

        rows = await self._write(claim)
        return [delivery_from_row(r) for r in rows]

    async def release_claims(self) -> int:
        cur = await self._write(
            lambda conn: conn.execute(
                "UPDATE idempotency SET locked_until_us = 0 WHERE completed = 0"
                " AND locked_until_us > 0"
            )
        )
        return int(cur.rowcount)

    async def release_leases(self) -> int:
        cur = await self._write(
            lambda conn: conn.execute(
                "UPDATE deliveries SET locked_until_us = 0 WHERE status = 'pending'"
                " AND locked_until_us > 0"
            )
        )
        return int(cur.rowcount)

    async def save_delivery(self, delivery: Delivery) -> None:
        # Attempts end in bunches (the writer settles a whole commit's callers at once), and
        # a payment makes about seven: the saves of one turn of the loop go to the writer as
        # one job. Each caller returns once that job is committed, as before.
        d = delivery
        row = (
            d.status,
            d.attempts,
            to_micros(d.next_attempt_at),
            to_micros(d.history[-1].at if d.history else d.created_at),
            delivery_to_doc(d),
            d.id,
        )
        batch = self._saves
        batch.rows.append(row)
        if batch.flush is None:
            batch.flush = asyncio.get_running_loop().create_task(self._save_deliveries(batch))
        # Shielded: a caller cancelled while waiting must not cancel the others' write.
        await asyncio.shield(batch.flush)

    async def _save_deliveries(self, batch: _DeliverySaves) -> None:
        await asyncio.sleep(0)  # the other attempts ending in this turn join the batch
        self._saves = _DeliverySaves()
        await self._write(
            lambda conn: conn.executemany(
                "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_us = ?,"
                " locked_until_us = 0, updated_us = ?, doc = ? WHERE id = ?",
                batch.rows,
            )
        )

    async def dead_letters(
        self, merchant_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Delivery], bool]:
        where, args = "merchant_id = ? AND status = 'dead'", [merchant_id]
        if starting_after is not None:
            where += (
                " AND (updated_us, id) < (SELECT updated_us, id FROM deliveries"
                " WHERE id = ? AND merchant_id = ?)"
            )
            args += [starting_after, merchant_id]
        rows = self._db.execute(
            f"SELECT {_DELIVERY_COLS} FROM deliveries WHERE {where}"
            " ORDER BY updated_us DESC, id DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        return [delivery_from_row(r) for r in rows[:limit]], len(rows) > limit

    async def dead_letter_depth(self) -> dict[str, int]:
        # The partial index `deliveries_dead` holds exactly these rows (few: each is a
        # failure someone should look at); a target's type and name are in its document.
        rows = self._db.execute(
            f"SELECT {_DELIVERY_COLS} FROM deliveries INDEXED BY deliveries_dead"
            " WHERE status = 'dead'"
        ).fetchall()
        dead = (delivery_from_row(r) for r in rows)
        return dict(Counter(target_label(d.target, d.default_rule) for d in dead))

    async def redrive(self, merchant_id: str, delivery_id: str, now: datetime) -> bool:
        cur = await self._write(
            lambda conn: conn.execute(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_us = ?,"
                " locked_until_us = 0 WHERE id = ? AND merchant_id = ? AND status = 'dead'",
                (to_micros(now), delivery_id, merchant_id),
            )
        )
        return bool(cur.rowcount == 1)

    async def get_event(self, event_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT envelope FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else dict(decode_json(row[0]))

    async def ping(self) -> bool:
        self._db.execute("SELECT 1").fetchone()
        return self._writer is not None
