"""The Store and BusStore ports in memory: dicts and lists, no file, no socket, no thread.

It passes the contract suites SQLite and PostgreSQL pass, so what runs on it behaves as it
would on them. Two things make that true of a plain dict:

- Atomicity: no method awaits, so under asyncio each runs whole before any other starts, as
  one transaction would. `commit` checks every condition (and encodes everything it will
  keep) before it changes anything, so a failed condition writes nothing.
- Snapshots: payments go through the document codec the SQL stores use and everything else
  mutable is copied, on the way in and out. A caller that edits what it read, or keeps editing
  what it wrote, changes nothing stored; and a field the codec would drop is dropped here too.

Where the port leaves a detail open (ties, cursors that name nothing) this follows SQLite.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Container, Hashable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

from paymesh.adapters.codec import decode_json, encode_json, payment_from_doc, payment_to_doc
from paymesh.domain.ledger import BALANCE_KINDS, LedgerTransaction, balances
from paymesh.domain.payment import Payment
from paymesh.domain.refund import Refund
from paymesh.domain.status import PaymentStatus
from paymesh.ports.bus import Delivery, Rule, target_label
from paymesh.ports.store import (
    AlreadyProcessed,
    ApiKey,
    Balances,
    Changeset,
    IdempotencyConflict,
    IdempotencyRecord,
    JoinedBlobParts,
    Notification,
    PaymentQuery,
    Purged,
    StoredEvent,
    VersionConflict,
)

#: An ended lease, as SQLite's 0: a claim released at start reads back locked until 1970.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

K = TypeVar("K", bound=Hashable)


def _snapshot(payment: Payment, version: int) -> Payment:
    """The payment as a store keeps it: its document, read back (no pending events)."""
    return payment_from_doc(payment_to_doc(payment), version)


@dataclass(slots=True)
class _Event:
    seq: int  # commit order: timelines, the event log and the outbox all follow it
    id: str
    merchant_id: str
    payment_id: str
    type: str
    time: datetime
    envelope: bytes  # JSON, as the SQL stores keep it: a caller cannot edit it in place
    delivered: bool = False

    def read(self) -> StoredEvent:
        return StoredEvent(
            id=self.id,
            merchant_id=self.merchant_id,
            payment_id=self.payment_id,
            type=self.type,
            time=self.time,
            envelope=decode_json(self.envelope),
        )


@dataclass(slots=True)
class _DeliveryRow:
    delivery: Delivery
    updated_at: datetime  # the dead-letter queue's order: the last attempt's time
    locked_until: datetime = _EPOCH

    def order(self) -> tuple[datetime, str]:
        return self.updated_at, self.delivery.id


@dataclass(slots=True)
class _Tables:
    payments: dict[str, Payment] = field(default_factory=dict)
    refunds: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> merchant, payment
    idempotency: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    processed: dict[tuple[str, str], datetime] = field(default_factory=dict)  # -> marked at
    events: dict[str, _Event] = field(default_factory=dict)
    notifications: dict[str, Notification] = field(default_factory=dict)
    api_keys: dict[str, ApiKey] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    rules: dict[tuple[str, str], Rule] = field(default_factory=dict)
    deliveries: dict[str, _DeliveryRow] = field(default_factory=dict)
    routes: set[tuple[str, str, str]] = field(default_factory=set)  # event, rule, target
    ledger: dict[str, LedgerTransaction] = field(default_factory=dict)  # in booking order


def _check(db: _Tables, changes: Changeset) -> None:
    """Raise if any condition of `changes` fails; reads only."""
    if (write := changes.idempotency) is not None:
        held = db.idempotency.get((write.record.merchant_id, write.record.key))
        if write.expected_token is None:  # a claim: the key is free, or its record expired
            free = held is None or held.expires_at <= write.now
        else:
            free = held is not None and held.lease_token == write.expected_token
        if not free:
            raise IdempotencyConflict(
                f"idempotency key {write.record.key!r} is held by another request"
            )
    if (mark := _repeated(db.processed, changes.processed)) is not None:
        raise AlreadyProcessed(f"{mark[0]} already applied {mark[1]}")
    # Each write must find the version the previous one left, as in SQL, where the writes of
    # one changeset run in turn; a payment not stored yet is at version 0.
    versions: dict[str, int] = {}
    for w in changes.payments:
        stored = db.payments.get(w.payment.id)
        if (
            versions.get(w.payment.id, 0 if stored is None else stored.version)
            != w.expected_version
        ):
            raise VersionConflict(
                f"payment {w.payment.id} changed since version {w.expected_version}"
            )
        versions[w.payment.id] = w.expected_version + 1
    # The port names no error for these; the SQL stores' unique keys refuse them.
    if (i := _repeated(db.events, (e.id for e in changes.events))) is not None:
        raise ValueError(f"event {i} is already stored")
    if (i := _repeated(db.notifications, (n.id for n in changes.notifications))) is not None:
        raise ValueError(f"notification {i} is already stored")


def _repeated(stored: Container[K], keys: Iterable[K]) -> K | None:
    """The first of `keys` already stored or given twice: what a unique key would refuse."""
    seen: set[K] = set()
    for k in keys:
        if k in stored or k in seen:
            return k
        seen.add(k)
    return None


class MemoryStore(JoinedBlobParts):
    """Implements `paymesh.ports.bus_backend.BusBackend`. Its contents outlive `close()`, as a
    database's do; a closed store refuses work, as the others do."""

    def __init__(self) -> None:
        self._tables = _Tables()
        self._open = False

    @property
    def _db(self) -> _Tables:
        if not self._open:
            raise RuntimeError("store is not open")
        return self._tables

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def ping(self) -> bool:
        return self._open

    def outstanding(self) -> int:
        """Events still in the outbox plus deliveries still pending: zero when a bus running
        on this store has nothing left to do (what a test waits for). Not part of the port."""
        db = self._db
        return sum(not e.delivered for e in db.events.values()) + sum(
            r.delivery.status == "pending" for r in db.deliveries.values()
        )

    # -- UnitOfWork -------------------------------------------------------------------------

    async def commit(self, changes: Changeset) -> None:
        db = self._db
        _check(db, changes)
        # Everything that could still fail (encoding) before the first change.
        payments = [_snapshot(w.payment, w.expected_version + 1) for w in changes.payments]
        events = [
            _Event(
                len(db.events) + n,
                e.id,
                e.merchant_id,
                e.payment_id,
                e.type,
                e.time,
                encode_json(e.envelope()),
            )
            for n, e in enumerate(changes.events)
        ]
        deliveries = copy.deepcopy(changes.deliveries)
        # From here on, plain assignments.
        if (write := changes.idempotency) is not None:
            db.idempotency[write.record.merchant_id, write.record.key] = replace(write.record)
        marked_at = datetime.now(UTC)  # the mark's age is the store's to keep
        for mark in changes.processed:
            db.processed[mark] = marked_at
        for p in payments:
            db.payments[p.id] = p
            for r in p.refunds:  # a refund id stays with the payment that first wrote it
                db.refunds.setdefault(r.id, (p.merchant_id, p.id))
        db.events.update((e.id, e) for e in events)
        for d in deliveries:  # routing twice makes no second delivery (SQL: INSERT OR IGNORE)
            route = (d.event_id, d.rule, d.target.id)
            if d.id not in db.deliveries and route not in db.routes:
                db.routes.add(route)
                db.deliveries[d.id] = _DeliveryRow(d, updated_at=d.created_at)
        for event_id in changes.routed:
            if event_id in db.events:
                db.events[event_id].delivered = True
        db.notifications.update((n.id, n) for n in changes.notifications)
        for t in changes.ledger:
            db.ledger.setdefault(t.id, t)

    # -- LedgerStore ------------------------------------------------------------------------

    async def ledger_balances(self, merchant_id: str, today: date) -> Balances:
        return balances(
            (t for t in self._db.ledger.values() if t.merchant_id == merchant_id), today
        )

    async def balance_transactions(
        self,
        merchant_id: str,
        limit: int,
        starting_after: str | None = None,
        payment_id: str | None = None,
    ) -> tuple[list[LedgerTransaction], bool]:
        newest_first = [
            t
            for t in reversed(self._db.ledger.values())
            if t.merchant_id == merchant_id
            and t.kind in BALANCE_KINDS
            and (payment_id is None or t.payment_id == payment_id)
        ]
        if starting_after is not None:
            ids = [t.id for t in newest_first]
            if starting_after not in ids:
                return [], False
            newest_first = newest_first[ids.index(starting_after) + 1 :]
        return newest_first[:limit], len(newest_first) > limit

    async def ledger_transactions(
        self, psp: str, created_gte: datetime, created_lt: datetime
    ) -> list[LedgerTransaction]:
        return [
            t
            for t in self._db.ledger.values()
            if t.psp == psp and created_gte <= t.created_at < created_lt
        ]

    # -- PaymentStore -----------------------------------------------------------------------

    async def get_payment(self, payment_id: str, merchant_id: str | None = None) -> Payment | None:
        p = self._db.payments.get(payment_id)
        if p is None or merchant_id not in (None, p.merchant_id):
            return None
        return _snapshot(p, p.version)

    async def find_payment_by_connector_ref(
        self, connector: str, connector_payment_id: str
    ) -> Payment | None:
        for p in self._db.payments.values():
            if (p.connector, p.connector_payment_id) == (connector, connector_payment_id):
                return _snapshot(p, p.version)
        return None

    async def get_refund(self, refund_id: str, merchant_id: str) -> Refund | None:
        owner = self._db.refunds.get(refund_id)
        if owner is None or owner[0] != merchant_id:
            return None
        payment = await self.get_payment(owner[1], merchant_id)
        return None if payment is None else payment.refund(refund_id)

    async def list_payments(self, query: PaymentQuery) -> tuple[list[Payment], bool]:
        db, q = self._db, query

        def wanted(p: Payment) -> bool:
            review = None if p.review is None else p.review.status
            if q.review_status is not None and review != q.review_status:
                return False
            if q.under_review and review is None:
                return False
            return (
                p.merchant_id == q.merchant_id
                and q.customer_id in (None, p.customer_id)
                and q.status in (None, p.status)
                and (q.created_gte is None or p.created_at >= q.created_gte)
                and (q.created_lt is None or p.created_at < q.created_lt)
            )

        rows = sorted(
            filter(wanted, db.payments.values()), key=lambda p: (p.created_at, p.id), reverse=True
        )
        if q.starting_after is not None:
            cursor = db.payments.get(q.starting_after)
            if cursor is None or cursor.merchant_id != q.merchant_id:
                return [], False
            rows = [p for p in rows if (p.created_at, p.id) < (cursor.created_at, cursor.id)]
        return [_snapshot(p, p.version) for p in rows[: q.limit]], len(rows) > q.limit

    async def payments_to_sync(
        self, statuses: frozenset[PaymentStatus], updated_before: datetime, limit: int
    ) -> list[Payment]:
        rows = sorted(
            (
                p
                for p in self._db.payments.values()
                if p.status in statuses and p.updated_at < updated_before
            ),
            key=lambda p: (p.updated_at, p.id),
        )
        return [_snapshot(p, p.version) for p in rows[:limit]]

    async def payments_with_pending_refunds(
        self, created_before: datetime, limit: int
    ) -> list[Payment]:
        waiting = [
            (since, p)
            for p in self._db.payments.values()
            if (since := p.oldest_pending_refund) is not None and since < created_before
        ]
        waiting.sort(key=lambda row: (row[0], row[1].id))
        return [_snapshot(p, p.version) for _, p in waiting[:limit]]

    # -- IdempotencyStore -------------------------------------------------------------------

    async def get_idempotency(self, merchant_id: str, key: str) -> IdempotencyRecord | None:
        record = self._db.idempotency.get((merchant_id, key))
        return None if record is None else replace(record)

    async def release_claims(self) -> int:
        unfinished = [
            r for r in self._db.idempotency.values() if not r.completed and r.locked_until > _EPOCH
        ]
        for r in unfinished:
            r.locked_until = _EPOCH
        return len(unfinished)

    async def purge_expired(
        self, now: datetime, processed_before: datetime, limit: int = 1000
    ) -> Purged:
        db = self._db
        # Expired, and not leased by a request still in flight (completed, or its lease over).
        records = list(
            islice(
                (
                    k
                    for k, r in db.idempotency.items()
                    if r.expires_at <= now and (r.completed or r.locked_until <= now)
                ),
                limit,
            )
        )
        marks = list(islice((m for m, at in db.processed.items() if at < processed_before), limit))
        delivered = list(
            islice(
                (
                    i
                    for i, r in db.deliveries.items()
                    if r.delivery.status == "delivered" and r.updated_at < processed_before
                ),
                limit,
            )
        )
        for k in records:
            del db.idempotency[k]
        for m in marks:
            del db.processed[m]
        for i in delivered:
            del db.deliveries[i]
        return Purged(idempotency=len(records), processed=len(marks), deliveries=len(delivered))

    # -- EventLog ---------------------------------------------------------------------------

    async def events_for_payment(self, merchant_id: str, payment_id: str) -> list[StoredEvent]:
        return [
            e.read()
            for e in self._db.events.values()
            if (e.merchant_id, e.payment_id) == (merchant_id, payment_id)
        ]

    async def list_events(
        self, merchant_id: str, event_type: str | None, limit: int, starting_after: str | None
    ) -> tuple[list[StoredEvent], bool]:
        db = self._db
        before = len(db.events)
        if starting_after is not None:
            cursor = db.events.get(starting_after)
            if cursor is None or cursor.merchant_id != merchant_id:
                return [], False
            before = cursor.seq
        rows = [
            e
            for e in reversed(db.events.values())
            if e.seq < before and e.merchant_id == merchant_id and event_type in (None, e.type)
        ]
        return [e.read() for e in rows[:limit]], len(rows) > limit

    async def undelivered_events(self, limit: int) -> list[StoredEvent]:
        return [
            e.read()
            for e in islice((e for e in self._db.events.values() if not e.delivered), limit)
        ]

    async def claim_outbox(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[StoredEvent]:
        # One process, one bus: nothing else claims, so no lease is needed.
        return await self.undelivered_events(limit)

    async def notifications_for_payment(
        self, merchant_id: str, payment_id: str
    ) -> list[Notification]:
        return sorted(
            (
                n
                for n in self._db.notifications.values()
                if (n.merchant_id, n.payment_id) == (merchant_id, payment_id)
            ),
            key=lambda n: (n.created_at, n.id),
        )

    # -- KeyStore ---------------------------------------------------------------------------

    async def add_api_key(self, key: ApiKey) -> None:
        if key.key_hash in self._db.api_keys:
            raise ValueError(f"api key {key.prefix} is already stored")
        self._db.api_keys[key.key_hash] = key

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        return self._db.api_keys.get(key_hash)

    async def list_api_keys(self, merchant_id: str | None = None) -> list[ApiKey]:
        return sorted(
            (k for k in self._db.api_keys.values() if merchant_id in (None, k.merchant_id)),
            key=lambda k: (k.created_at, k.prefix),
        )

    async def revoke_api_key(self, key_hash: str, at: datetime) -> bool:
        key = self._db.api_keys.get(key_hash)
        if key is None or key.revoked_at is not None:
            return False
        self._db.api_keys[key_hash] = replace(key, revoked_at=at)
        return True

    # -- StateStore -------------------------------------------------------------------------

    async def put_blob(self, name: str, data: bytes, at: datetime) -> None:
        self._db.blobs[name] = bytes(data)

    async def get_blob(self, name: str) -> bytes | None:
        return self._db.blobs.get(name)

    # -- RuleStore --------------------------------------------------------------------------

    async def put_rule(self, rule: Rule) -> None:
        self._db.rules[rule.merchant_id, rule.name] = copy.deepcopy(rule)

    async def delete_rule(self, merchant_id: str, name: str) -> bool:
        return self._db.rules.pop((merchant_id, name), None) is not None

    async def rules(self) -> list[Rule]:
        return [copy.deepcopy(r) for _, r in sorted(self._db.rules.items())]

    # -- DeliveryStore ----------------------------------------------------------------------

    async def claim_deliveries(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[Delivery]:
        due = sorted(
            (
                r
                for r in self._db.deliveries.values()
                if r.delivery.status == "pending"
                and r.delivery.next_attempt_at <= now
                and r.locked_until <= now
            ),
            key=lambda r: r.delivery.next_attempt_at,
        )
        for r in due[:limit]:
            r.locked_until = now + timedelta(seconds=lease_seconds)
        return [copy.deepcopy(r.delivery) for r in due[:limit]]

    async def release_leases(self) -> int:
        leased = [
            r
            for r in self._db.deliveries.values()
            if r.delivery.status == "pending" and r.locked_until > _EPOCH
        ]
        for r in leased:
            r.locked_until = _EPOCH
        return len(leased)

    async def save_delivery(self, delivery: Delivery) -> None:
        row = self._db.deliveries.get(delivery.id)
        if row is None:
            return
        # The attempt's outcome is saved; what it was routed as (event, merchant, rule) stays,
        # so no edit can move it into another merchant's dead letters.
        old = row.delivery
        row.delivery = replace(
            copy.deepcopy(delivery),
            event_id=old.event_id,
            merchant_id=old.merchant_id,
            rule=old.rule,
        )
        row.updated_at = delivery.history[-1].at if delivery.history else delivery.created_at
        row.locked_until = _EPOCH

    async def dead_letters(
        self, merchant_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Delivery], bool]:
        db = self._db
        rows = sorted(
            (
                r
                for r in db.deliveries.values()
                if r.delivery.status == "dead" and r.delivery.merchant_id == merchant_id
            ),
            key=_DeliveryRow.order,
            reverse=True,
        )
        if starting_after is not None:
            cursor = db.deliveries.get(starting_after)
            if cursor is None or cursor.delivery.merchant_id != merchant_id:
                return [], False
            rows = [r for r in rows if r.order() < cursor.order()]
        return [copy.deepcopy(r.delivery) for r in rows[:limit]], len(rows) > limit

    async def dead_letter_depth(self) -> dict[str, int]:
        return dict(
            Counter(
                target_label(r.delivery.target, r.delivery.default_rule)
                for r in self._db.deliveries.values()
                if r.delivery.status == "dead"
            )
        )

    async def redrive(self, merchant_id: str, delivery_id: str, now: datetime) -> bool:
        row = self._db.deliveries.get(delivery_id)
        if row is None or (row.delivery.merchant_id, row.delivery.status) != (merchant_id, "dead"):
            return False
        row.delivery.status, row.delivery.attempts = "pending", 0
        row.delivery.next_attempt_at, row.locked_until = now, _EPOCH
        return True

    async def get_event(self, event_id: str) -> dict[str, Any] | None:
        event = self._db.events.get(event_id)
        return None if event is None else dict(decode_json(event.envelope))
