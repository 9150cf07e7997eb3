"""The Store and BusStore ports on PostgreSQL, through one asyncpg pool.

A commit is one transaction (`changeset.py`); with the server's default
`synchronous_commit = on` it is durable when it returns. Several processes may share one
database:

- deliveries are leased with `FOR UPDATE SKIP LOCKED`, so two workers never take the same one;
- relays to NATS claim outbox rows with a lease (`claim_outbox`, `FOR UPDATE SKIP LOCKED`),
  so each publishes its own share instead of every relay reading every row;
- without NATS each process's bus reads the outbox plainly, and two may route the same event
  at once: the unique (event, rule, target) on deliveries keeps one delivery of each, and the
  second one's insert does nothing;
- `release_leases` frees every worker's leases: call it only where no other process runs.

Lease and due times are the callers' clocks, as in every adapter: keep the hosts' clocks in
sync (NTP) when several share a database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from paymesh.adapters.codec import (
    decode_json,
    delivery_from_row,
    delivery_to_doc,
    payment_from_doc,
    rule_from_doc,
    rule_to_doc,
)
from paymesh.adapters.ledger_codec import ledger_from_doc
from paymesh.adapters.postgres.changeset import apply, rowcount
from paymesh.adapters.postgres.migrate import upgrade
from paymesh.domain.ledger import BALANCE_KINDS, LedgerTransaction
from paymesh.domain.payment import Payment
from paymesh.domain.refund import Refund
from paymesh.domain.status import PaymentStatus
from paymesh.ports.bus import Delivery, Rule, target_label
from paymesh.ports.store import (
    ApiKey,
    Balances,
    Changeset,
    IdempotencyRecord,
    JoinedBlobParts,
    Notification,
    PaymentQuery,
    Purged,
    StoredEvent,
)

_PAYMENT_COLS = "doc, version"
_KEY_COLS = "key_hash, merchant_id, created_at, prefix, revoked_at"
_EVENT_COLS = "id, merchant_id, payment_id, type, occurred_at, envelope"
# delivery_from_row takes the due time in microseconds; extract() is exact, a float is not.
_DELIVERY_COLS = (
    "id, event_id, merchant_id, rule, status, attempts,"
    " (extract(epoch FROM next_attempt_at) * 1000000)::bigint, doc"
)


def _event(row: Any) -> StoredEvent:
    return StoredEvent(
        id=row[0],
        merchant_id=row[1],
        payment_id=row[2],
        type=row[3],
        time=row[4],
        envelope=decode_json(row[5]),
    )


def _delivery(row: Any) -> Delivery:
    return delivery_from_row(tuple(row))


class _Where:
    """A conjunction of conditions with numbered parameters, for the list queries."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, condition: str) -> None:
        self.conditions.append(condition)

    def __str__(self) -> str:
        return " AND ".join(self.conditions)


async def _as_it_is(conn: Any) -> None:
    """A connection goes back to the pool without asyncpg's default reset: a round trip of
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release, 15 of the
    48 statements of a payment in a scale-out (counted in PostgreSQL's statement log, 1 API
    and 2 workers). paymesh leaves no session state to undo: no session advisory lock (the
    migration's is transaction-scoped, on a connection of its own), no LISTEN, no SET, no
    cursor WITH HOLD. asyncpg still rolls back a transaction left open before calling this."""


class PostgresStore(JoinedBlobParts):
    """`open()` migrates the schema to head (safe from many processes at once), then pools."""

    def __init__(self, dsn: str, min_size: int = 2, max_size: int = 10) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self._pool: Any = None
        self._relay: Callable[[list[StoredEvent], datetime], None] | None = None
        self._relay_lease = timedelta(0)

    def hand_outbox_to(
        self, relay: Callable[[list[StoredEvent], datetime], None], lease_seconds: float
    ) -> None:
        """From now on the events a commit writes go in leased to this process's `relay` for
        `lease_seconds` (other relays' claims pass over them), and once committed are handed
        to it with the lease's end: it publishes them without claiming them back from the
        table, a round trip and a read of every envelope per commit. Should this process die
        first, they are any relay's once the lease is over, as a dead relay's claim is."""
        self._relay, self._relay_lease = relay, timedelta(seconds=lease_seconds)

    async def open(self) -> None:
        await upgrade(self.dsn)
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self.min_size,
            max_size=self.max_size,
            server_settings={"application_name": "paymesh"},
            reset=_as_it_is,
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def _db(self) -> Any:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    @property
    def pool(self) -> Any:
        """The open pool, for adapters that share the store's connections (the rate limiter)."""
        return self._db

    # -- writes ---------------------------------------------------------------------------

    async def commit(self, changes: Changeset) -> None:
        relay = self._relay
        if relay is None or not changes.events:
            async with self._db.acquire() as conn:
                await apply(conn, changes)  # one statement: its own transaction
            return
        lease_ends = datetime.now(UTC) + self._relay_lease
        # Each envelope made once: encoded into the statement, handed over as it is.
        outbox = [
            StoredEvent(e.id, e.merchant_id, e.payment_id, e.type, e.time, e.envelope())
            for e in changes.events
        ]
        async with self._db.acquire() as conn:
            await apply(conn, changes, lease_ends, [e.envelope for e in outbox])
        relay(outbox, lease_ends)

    async def add_api_key(self, key: ApiKey) -> None:
        await self._db.execute(
            "INSERT INTO api_keys (key_hash, merchant_id, prefix, created_at)"
            " VALUES ($1, $2, $3, $4)",
            key.key_hash,
            key.merchant_id,
            key.prefix,
            key.created_at,
        )

    async def revoke_api_key(self, key_hash: str, at: datetime) -> bool:
        status = await self._db.execute(
            "UPDATE api_keys SET revoked_at = $2 WHERE key_hash = $1 AND revoked_at IS NULL",
            key_hash,
            at,
        )
        return rowcount(status) == 1

    async def purge_expired(
        self, now: datetime, processed_before: datetime, limit: int = 1000
    ) -> Purged:
        # Three short statements, each its own transaction. SKIP LOCKED passes over a record a
        # claim is taking over right now; the outer condition is re-checked against the row
        # as committed, so a record a claim has just made fresh again is never deleted.
        expired = "expires_at <= $1 AND (completed OR locked_until <= $1)"
        idempotency = await self._db.execute(
            f"DELETE FROM idempotency WHERE (merchant_id, key) IN (SELECT merchant_id, key"
            f" FROM idempotency WHERE {expired} LIMIT $2 FOR UPDATE SKIP LOCKED) AND {expired}",
            now,
            limit,
        )
        processed = await self._db.execute(
            "DELETE FROM processed WHERE (consumer, event_id) IN (SELECT consumer, event_id"
            " FROM processed WHERE processed_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            processed_before,
            limit,
        )
        deliveries = await self._db.execute(
            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
            " WHERE status = 'delivered' AND updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " AND status = 'delivered'",
            processed_before,
            limit,
        )
        return Purged(
            idempotency=rowcount(idempotency),
            processed=rowcount(processed),
            deliveries=rowcount(deliveries),
        )

    async def put_blob(self, name: str, data: bytes, at: datetime) -> None:
        await self._db.execute(
            "INSERT INTO blobs (name, saved_at, data) VALUES ($1, $2, $3) ON CONFLICT (name)"
            " DO UPDATE SET saved_at = excluded.saved_at, data = excluded.data",
            name,
            at,
            data,
        )

    async def get_blob(self, name: str) -> bytes | None:
        data = await self._db.fetchval("SELECT data FROM blobs WHERE name = $1", name)
        return None if data is None else bytes(data)

    # -- reads ----------------------------------------------------------------------------

    async def _payment(self, sql: str, *args: Any) -> Payment | None:
        row = await self._db.fetchrow(sql, *args)
        return None if row is None else payment_from_doc(row[0], row[1])

    async def get_payment(self, payment_id: str, merchant_id: str | None = None) -> Payment | None:
        if merchant_id is None:
            return await self._payment(
                f"SELECT {_PAYMENT_COLS} FROM payments WHERE id = $1", payment_id
            )
        return await self._payment(
            f"SELECT {_PAYMENT_COLS} FROM payments WHERE id = $1 AND merchant_id = $2",
            payment_id,
            merchant_id,
        )

    async def find_payment_by_connector_ref(
        self, connector: str, connector_payment_id: str
    ) -> Payment | None:
        return await self._payment(
            f"SELECT {_PAYMENT_COLS} FROM payments"
            " WHERE connector = $1 AND connector_payment_id = $2",
            connector,
            connector_payment_id,
        )

    async def get_refund(self, refund_id: str, merchant_id: str) -> Refund | None:
        payment = await self._payment(
            "SELECT p.doc, p.version FROM refunds r JOIN payments p ON p.id = r.payment_id"
            " WHERE r.id = $1 AND r.merchant_id = $2 AND p.merchant_id = $2",
            refund_id,
            merchant_id,
        )
        return None if payment is None else payment.refund(refund_id)

    async def list_payments(self, query: PaymentQuery) -> tuple[list[Payment], bool]:
        where = _Where()
        where.add(f"merchant_id = {where.arg(query.merchant_id)}")
        if query.customer_id is not None:
            where.add(f"customer_id = {where.arg(query.customer_id)}")
        if query.status is not None:
            where.add(f"status = {where.arg(query.status.value)}")
        if query.review_status is not None:
            where.add(f"review_status = {where.arg(query.review_status.value)}")
        elif query.under_review:
            where.add("review_status IS NOT NULL")
        if query.created_gte is not None:
            where.add(f"created_at >= {where.arg(query.created_gte)}")
        if query.created_lt is not None:
            where.add(f"created_at < {where.arg(query.created_lt)}")
        if query.starting_after is not None:
            cursor = await self._db.fetchval(
                "SELECT created_at FROM payments WHERE id = $1 AND merchant_id = $2",
                query.starting_after,
                query.merchant_id,
            )
            if cursor is None:
                return [], False
            after = f"({where.arg(cursor)}, {where.arg(query.starting_after)})"
            where.add(f"(created_at, id) < {after}")
        rows = await self._db.fetch(
            f"SELECT {_PAYMENT_COLS} FROM payments WHERE {where}"
            f" ORDER BY created_at DESC, id DESC LIMIT {where.arg(query.limit + 1)}",
            *where.args,
        )
        page = [payment_from_doc(row[0], row[1]) for row in rows[: query.limit]]
        return page, len(rows) > query.limit

    async def payments_to_sync(
        self, statuses: frozenset[PaymentStatus], updated_before: datetime, limit: int
    ) -> list[Payment]:
        rows = await self._db.fetch(
            f"SELECT {_PAYMENT_COLS} FROM payments WHERE status = ANY($1::text[])"
            " AND updated_at < $2 ORDER BY updated_at LIMIT $3",
            [s.value for s in statuses],
            updated_before,
            limit,
        )
        return [payment_from_doc(row[0], row[1]) for row in rows]

    async def payments_with_pending_refunds(
        self, created_before: datetime, limit: int
    ) -> list[Payment]:
        rows = await self._db.fetch(
            f"SELECT {_PAYMENT_COLS} FROM payments WHERE refund_pending_at < $1"
            " ORDER BY refund_pending_at LIMIT $2",
            created_before,
            limit,
        )
        return [payment_from_doc(row[0], row[1]) for row in rows]

    async def get_idempotency(self, merchant_id: str, key: str) -> IdempotencyRecord | None:
        row = await self._db.fetchrow(
            "SELECT fingerprint, resource_id, lease_token, locked_until, expires_at, completed,"
            " response_status, response_body FROM idempotency WHERE merchant_id = $1 AND key = $2",
            merchant_id,
            key,
        )
        if row is None:
            return None
        return IdempotencyRecord(
            merchant_id=merchant_id,
            key=key,
            fingerprint=row[0],
            resource_id=row[1],
            lease_token=row[2],
            locked_until=row[3],
            expires_at=row[4],
            completed=row[5],
            response_status=row[6],
            response_body=row[7],
        )

    async def events_for_payment(self, merchant_id: str, payment_id: str) -> list[StoredEvent]:
        rows = await self._db.fetch(
            f"SELECT {_EVENT_COLS} FROM events WHERE merchant_id = $1 AND payment_id = $2"
            " ORDER BY seq",
            merchant_id,
            payment_id,
        )
        return [_event(row) for row in rows]

    async def list_events(
        self, merchant_id: str, event_type: str | None, limit: int, starting_after: str | None
    ) -> tuple[list[StoredEvent], bool]:
        where = _Where()
        where.add(f"merchant_id = {where.arg(merchant_id)}")
        if event_type is not None:
            where.add(f"type = {where.arg(event_type)}")
        if starting_after is not None:
            where.add(
                f"seq < (SELECT seq FROM events WHERE id = {where.arg(starting_after)}"
                " AND merchant_id = $1)"
            )
        rows = await self._db.fetch(
            f"SELECT {_EVENT_COLS} FROM events WHERE {where}"
            f" ORDER BY seq DESC LIMIT {where.arg(limit + 1)}",
            *where.args,
        )
        return [_event(row) for row in rows[:limit]], len(rows) > limit

    async def undelivered_events(self, limit: int) -> list[StoredEvent]:
        rows = await self._db.fetch(
            f"SELECT {_EVENT_COLS} FROM events WHERE NOT delivered ORDER BY seq LIMIT $1", limit
        )
        return [_event(row) for row in rows]

    async def claim_outbox(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[StoredEvent]:
        # As `claim_deliveries`: SKIP LOCKED passes over rows another relay is claiming right
        # now; one whose claim has just committed is re-checked and fails the lease test, and
        # one just marked delivered fails `NOT delivered`. RETURNING has no order: the CTE
        # gives the batch back oldest first.
        rows = await self._db.fetch(
            f"WITH claimed AS (UPDATE events SET relay_lease_until = $2 WHERE seq IN"
            f" (SELECT seq FROM events WHERE NOT delivered AND relay_lease_until <= $1"
            f" ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING seq, {_EVENT_COLS})"
            f" SELECT {_EVENT_COLS} FROM claimed ORDER BY seq",
            now,
            now + timedelta(seconds=lease_seconds),
            limit,
        )
        return [_event(row) for row in rows]

    async def notifications_for_payment(
        self, merchant_id: str, payment_id: str
    ) -> list[Notification]:
        rows = await self._db.fetch(
            "SELECT id, merchant_id, payment_id, event_id, channel, recipient, template,"
            " created_at FROM notifications WHERE merchant_id = $1 AND payment_id = $2"
            " ORDER BY created_at, id",
            merchant_id,
            payment_id,
        )
        return [Notification(*row) for row in rows]

    # -- the ledger -------------------------------------------------------------------------

    async def ledger_balances(self, merchant_id: str, today: date) -> Balances:
        rows = await self._db.fetch(
            "SELECT account, currency,"
            " COALESCE(SUM(amount) FILTER (WHERE available_on <= $2), 0),"
            " COALESCE(SUM(amount) FILTER (WHERE available_on > $2), 0)"
            " FROM ledger_postings WHERE merchant_id = $1 GROUP BY account, currency",
            merchant_id,
            today,
        )
        return {(row[0], row[1]): (int(row[2]), int(row[3])) for row in rows}

    async def balance_transactions(
        self,
        merchant_id: str,
        limit: int,
        starting_after: str | None = None,
        payment_id: str | None = None,
    ) -> tuple[list[LedgerTransaction], bool]:
        where = _Where()
        where.add(f"merchant_id = {where.arg(merchant_id)}")
        where.add(f"kind = ANY({where.arg(sorted(k.value for k in BALANCE_KINDS))}::text[])")
        if payment_id is not None:
            where.add(f"payment_id = {where.arg(payment_id)}")
        if starting_after is not None:
            where.add(
                f"seq < (SELECT seq FROM ledger_transactions WHERE id = {where.arg(starting_after)}"
                " AND merchant_id = $1)"
            )
        rows = await self._db.fetch(
            f"SELECT doc FROM ledger_transactions WHERE {where}"
            f" ORDER BY seq DESC LIMIT {where.arg(limit + 1)}",
            *where.args,
        )
        return [ledger_from_doc(row[0]) for row in rows[:limit]], len(rows) > limit

    async def ledger_transactions(
        self, psp: str, created_gte: datetime, created_lt: datetime
    ) -> list[LedgerTransaction]:
        rows = await self._db.fetch(
            "SELECT doc FROM ledger_transactions WHERE psp = $1 AND created_at >= $2"
            " AND created_at < $3 ORDER BY seq",
            psp,
            created_gte,
            created_lt,
        )
        return [ledger_from_doc(row[0]) for row in rows]

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = await self._db.fetchrow(
            f"SELECT {_KEY_COLS} FROM api_keys WHERE key_hash = $1", key_hash
        )
        return None if row is None else ApiKey(*row)

    async def list_api_keys(self, merchant_id: str | None = None) -> list[ApiKey]:
        if merchant_id is None:
            rows = await self._db.fetch(
                f"SELECT {_KEY_COLS} FROM api_keys ORDER BY created_at, prefix"
            )
        else:
            rows = await self._db.fetch(
                f"SELECT {_KEY_COLS} FROM api_keys WHERE merchant_id = $1"
                " ORDER BY created_at, prefix",
                merchant_id,
            )
        return [ApiKey(*row) for row in rows]

    async def ping(self) -> bool:
        return bool(await self._db.fetchval("SELECT true"))

    # -- the event bus ----------------------------------------------------------------------

    async def put_rule(self, rule: Rule) -> None:
        await self._db.execute(
            "INSERT INTO rules (merchant_id, name, doc) VALUES ($1, $2, $3)"
            " ON CONFLICT (merchant_id, name) DO UPDATE SET doc = excluded.doc",
            rule.merchant_id,
            rule.name,
            rule_to_doc(rule),
        )

    async def delete_rule(self, merchant_id: str, name: str) -> bool:
        status = await self._db.execute(
            "DELETE FROM rules WHERE merchant_id = $1 AND name = $2", merchant_id, name
        )
        return rowcount(status) == 1

    async def rules(self) -> list[Rule]:
        rows = await self._db.fetch("SELECT doc FROM rules ORDER BY merchant_id, name")
        return [rule_from_doc(row[0]) for row in rows]

    async def claim_deliveries(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[Delivery]:
        # SKIP LOCKED: a row another worker is leasing right now is passed over, not waited
        # for; one whose lease that worker has just committed is re-checked and now fails
        # `locked_until <= now`. Either way no two workers hold the same delivery.
        rows = await self._db.fetch(
            f"UPDATE deliveries SET locked_until = $2 WHERE id IN (SELECT id FROM deliveries"
            f" WHERE status = 'pending' AND next_attempt_at <= $1 AND locked_until <= $1"
            f" ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_DELIVERY_COLS}",
            now,
            now + timedelta(seconds=lease_seconds),
            limit,
        )
        return [_delivery(row) for row in rows]

    async def release_claims(self) -> int:
        status = await self._db.execute(
            # The epoch, not -infinity: it reads back as an aware datetime like any other.
            "UPDATE idempotency SET locked_until = 'epoch' WHERE NOT completed"
            " AND locked_until > 'epoch'"
        )
        return rowcount(status)

    async def release_leases(self) -> int:
        status = await self._db.execute(
            "UPDATE deliveries SET locked_until = '-infinity' WHERE status = 'pending'"
            " AND locked_until > '-infinity'"
        )
        return rowcount(status)

    async def save_delivery(self, delivery: Delivery) -> None:
        d = delivery
        await self._db.execute(
            "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3,"
            " locked_until = '-infinity', updated_at = $4, doc = $5 WHERE id = $6",
            d.status,
            d.attempts,
            d.next_attempt_at,
            d.history[-1].at if d.history else d.created_at,
            delivery_to_doc(d),
            d.id,
        )

    async def dead_letters(
        self, merchant_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Delivery], bool]:
        where = "merchant_id = $1 AND status = 'dead'"
        args: list[Any] = [merchant_id, limit + 1]
        if starting_after is not None:
            where += (
                " AND (updated_at, id) < (SELECT updated_at, id FROM deliveries"
                " WHERE id = $3 AND merchant_id = $1)"
            )
            args.append(starting_after)
        rows = await self._db.fetch(
            f"SELECT {_DELIVERY_COLS} FROM deliveries WHERE {where}"
            " ORDER BY updated_at DESC, id DESC LIMIT $2",
            *args,
        )
        return [_delivery(row) for row in rows[:limit]], len(rows) > limit

    async def dead_letter_depth(self) -> dict[str, int]:
        # The partial index `deliveries_dead` holds exactly these rows (few: each is a
        # failure someone should look at); a target's type and name are in its document.
        rows = await self._db.fetch(
            f"SELECT {_DELIVERY_COLS} FROM deliveries WHERE status = 'dead'"
        )
        dead = (_delivery(row) for row in rows)
        return dict(Counter(target_label(d.target, d.default_rule) for d in dead))

    async def redrive(self, merchant_id: str, delivery_id: str, now: datetime) -> bool:
        status = await self._db.execute(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1,"
            " locked_until = '-infinity' WHERE id = $2 AND merchant_id = $3 AND status = 'dead'",
            now,
            delivery_id,
            merchant_id,
        )
        return rowcount(status) == 1

    async def get_event(self, event_id: str) -> dict[str, Any] | None:
        envelope = await self._db.fetchval("SELECT envelope FROM events WHERE id = $1", event_id)
        return None if envelope is None else dict(decode_json(envelope))
