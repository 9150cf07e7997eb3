"""The store port: everything paymesh keeps, behind primitives any backend can implement.

Writes go through `commit(changeset)`: one atomic, durable write of everything a step changed
(payments with their refunds, events for the outbox, an idempotency record, consumer marks).
Each part carries its own condition, so the same changeset maps onto one SQL transaction or one
DynamoDB TransactWriteItems:

- a payment is written only if its stored version is still the one it was read at
  (`expected_version`, 0 for a new one)                                   -> VersionConflict
- an idempotency record with `expected_token=None` is written only if the key is absent or
  expired; otherwise only if the stored lease token still equals `expected_token`
                                                                          -> IdempotencyConflict
- a consumer mark (consumer, event id) is written only if absent           -> AlreadyProcessed
  (the store stamps it with the time it was written, for `purge_expired`)
- ledger transactions are written with the change that booked them; one whose id is
  already stored is kept once (its id derives from the booking event)

If any condition fails nothing is written. When `commit` returns, the write is durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, BinaryIO, Protocol

from paymesh.domain.events import DomainEvent
from paymesh.domain.ledger import LedgerTransaction, book
from paymesh.domain.payment import Payment
from paymesh.domain.refund import Refund
from paymesh.domain.review import ReviewStatus
from paymesh.domain.status import PaymentStatus
from paymesh.ports.bus import Delivery


class StoreConflict(Exception):
    """A changeset's condition failed; nothing was written."""


class VersionConflict(StoreConflict):
    pass


class IdempotencyConflict(StoreConflict):
    pass


class AlreadyProcessed(StoreConflict):
    pass


@dataclass(slots=True)
class IdempotencyRecord:
    merchant_id: str
    key: str
    fingerprint: str
    #: The resource this request creates or acts on, fixed when the key is first claimed, so a
    #: retry after a crash resumes the same payment instead of making a second one.
    resource_id: str
    lease_token: str
    locked_until: datetime
    expires_at: datetime
    completed: bool = False
    response_status: int | None = None
    response_body: bytes | None = None


@dataclass(frozen=True, slots=True)
class IdempotencyWrite:
    record: IdempotencyRecord
    now: datetime
    expected_token: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentWrite:
    payment: Payment
    expected_version: int


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    merchant_id: str
    payment_id: str
    event_id: str
    channel: str
    recipient: str
    template: str
    created_at: datetime


@dataclass(slots=True)
class Changeset:
    payments: list[PaymentWrite] = field(default_factory=list)
    events: list[DomainEvent] = field(default_factory=list)
    idempotency: IdempotencyWrite | None = None
    processed: list[tuple[str, str]] = field(default_factory=list)  # (consumer, event id)
    notifications: list[Notification] = field(default_factory=list)
    #: Routing: events leave the outbox together with the deliveries they fan out to.
    routed: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    #: The double-entry transactions of the money the change moved (`save` books them from
    #: the events' movements; a payout is booked on its own).
    ledger: list[LedgerTransaction] = field(default_factory=list)

    def save(self, payment: Payment) -> None:
        """Write `payment` at its read version, take the events it recorded and book the
        money they moved."""
        self.payments.append(PaymentWrite(payment, payment.version))
        self.events.extend(payment.events)
        for e in payment.events:
            if e.movements:
                self.ledger += book(
                    event_id=e.id,
                    merchant_id=payment.merchant_id,
                    payment_id=payment.id,
                    psp=payment.connector,
                    currency=payment.currency,
                    at=e.time,
                    movements=e.movements,
                    psp_reference=payment.connector_payment_id or "",
                )

    def committed(self) -> None:
        """After a successful commit: the payments are at their new versions, events are out."""
        for write in self.payments:
            write.payment.version = write.expected_version + 1
            write.payment.events.clear()


@dataclass(frozen=True, slots=True)
class PaymentQuery:
    merchant_id: str
    customer_id: str | None = None
    status: PaymentStatus | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None
    limit: int = 10
    starting_after: str | None = None
    #: Only payments with a review (in this status, when given): the review queue.
    under_review: bool = False
    review_status: ReviewStatus | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as published: the EventBridge envelope, and whether the outbox delivered it."""

    id: str
    merchant_id: str
    payment_id: str
    type: str
    time: datetime
    envelope: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as stored: its SHA-256 (never the secret) and the secret's first characters
    (`pmk_` and six more), which name the key to a human in `paymesh keys list`."""

    key_hash: str
    merchant_id: str
    created_at: datetime
    prefix: str
    #: When it was revoked; a revoked key never authenticates again and is never restored.
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Purged:
    """Rows one `purge_expired` call removed."""

    idempotency: int
    processed: int
    #: Delivered deliveries (a store whose database expires them itself reports 0).
    deliveries: int = 0


# -- the store, by what it holds ------------------------------------------------------------
# Each consumer asks for the protocols it uses; a backend implements them all (`Store`). Each
# has its own contract suite (tests/contract/store_contract.py).


class UnitOfWork(Protocol):
    """The one way to write: a payment change, its events, its idempotency record and consumer
    marks, all or nothing."""

    async def commit(self, changes: Changeset) -> None:
        """Apply every write or none (see module doc); durable when it returns."""
        ...


class PaymentStore(Protocol):
    """Payments with their refunds and reviews, and the queries the jobs run over them."""

    async def get_payment(self, payment_id: str, merchant_id: str | None = None) -> Payment | None:
        """The payment with its refunds; with `merchant_id`, only if it is that merchant's."""
        ...

    async def find_payment_by_connector_ref(
        self, connector: str, connector_payment_id: str
    ) -> Payment | None: ...

    async def get_refund(self, refund_id: str, merchant_id: str) -> Refund | None: ...

    async def list_payments(self, query: PaymentQuery) -> tuple[list[Payment], bool]:
        """Newest first; (page, has_more). With `under_review`, the review queue."""
        ...

    async def payments_to_sync(
        self, statuses: frozenset[PaymentStatus], updated_before: datetime, limit: int
    ) -> list[Payment]: ...

    async def payments_with_pending_refunds(
        self, created_before: datetime, limit: int
    ) -> list[Payment]:
        """Payments with a refund still pending since before `created_before` (recovery)."""
        ...


class IdempotencyStore(Protocol):
    """Idempotency records (written through `UnitOfWork.commit`) and their housekeeping."""

    async def get_idempotency(self, merchant_id: str, key: str) -> IdempotencyRecord | None: ...

    async def release_claims(self) -> int:
        """End the lease of every unfinished idempotency claim, so a client's retry resumes at
        once instead of waiting out the lease. Only where no other process can be running: an
        embedded server at start, whose in-flight requests died with the last process."""
        ...

    async def purge_expired(
        self, now: datetime, processed_before: datetime, limit: int = 1000
    ) -> Purged:
        """Delete up to `limit` idempotency records expired at `now` (none still leased),
        up to `limit` consumer marks written before `processed_before`, and up to `limit`
        delivered deliveries last saved before `processed_before`. A delivery is routing's
        once-only record of (event, rule, target), as a mark is a consumer's, so it is kept
        as long; a pending or dead one is never purged. Call again while a count equals
        `limit`: each call is one short write, never a long lock."""
        ...


class EventLog(Protocol):
    """The outbox and the record of what was published and sent: events, notifications."""

    async def events_for_payment(self, merchant_id: str, payment_id: str) -> list[StoredEvent]:
        """The payment's timeline, oldest first."""
        ...

    async def list_events(
        self, merchant_id: str, event_type: str | None, limit: int, starting_after: str | None
    ) -> tuple[list[StoredEvent], bool]: ...

    async def undelivered_events(self, limit: int) -> list[StoredEvent]:
        """Outbox: committed events not yet delivered, oldest first."""
        ...

    async def claim_outbox(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[StoredEvent]:
        """The outbox for one of several relays: up to `limit` undelivered events, oldest
        first, that no other claim holds at `now`, leased to this one until `now` +
        `lease_seconds`. The relay publishes them and marks them routed; one that dies first
        leaves them to the next claim after the lease. A backend only ever relayed by one
        process at a time may return `undelivered_events(limit)`: its one relay never
        overlaps itself."""
        ...

    async def notifications_for_payment(
        self, merchant_id: str, payment_id: str
    ) -> list[Notification]: ...


class KeyStore(Protocol):
    """API keys, by the hash of their secret."""

    async def add_api_key(self, key: ApiKey) -> None: ...

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The key with this hash, revoked or not (the caller checks `revoked_at`)."""
        ...

    async def list_api_keys(self, merchant_id: str | None = None) -> list[ApiKey]:
        """Every key (of `merchant_id`, when given), revoked ones too, oldest first."""
        ...

    async def revoke_api_key(self, key_hash: str, at: datetime) -> bool:
        """Revoke the key; True if this call revoked it, False if it is unknown or was
        already revoked (its first revocation time stands)."""
        ...


@dataclass(frozen=True, slots=True)
class Spilled:
    """A part of a blob kept in a file while the rest is made (`BlobSpill.keep`): `nbytes`
    bytes from `offset` of `source`, which its spill owns and closes."""

    source: BinaryIO
    offset: int
    nbytes: int


#: A part of a blob: a buffer `bytes.join` takes, or one a store's spill wrote to a file.
BlobPart = bytes | bytearray | memoryview | Spilled


class BlobSpill(Protocol):
    """Where the parts of a blob being made wait for `put_blob_parts`, from its store's
    `spill()`. A store that can write parts from a file keeps them there (the fraud
    checkpoint's hundred MB are then not held in memory while the checkpoint is made);
    one that cannot keeps them as they are (`KeptAsTheyAre`)."""

    def keep(self, data: bytearray) -> BlobPart:
        """`data` (a step's buffer, which the caller lets go), as the part to give
        `put_blob_parts` in its place."""
        ...

    def close(self) -> None:
        """Once the parts are written, or given up: what they were kept in goes."""
        ...


class KeptAsTheyAre:
    def keep(self, data: bytearray) -> BlobPart:
        return bytes(data)  # its exact size: a step's buffer grew with room to spare

    def close(self) -> None:
        pass


class StateStore(Protocol):
    """Named documents kept across restarts: learned fraud features, a routing table."""

    async def put_blob(self, name: str, data: bytes, at: datetime) -> None: ...

    async def put_blob_parts(self, name: str, parts: Sequence[BlobPart], at: datetime) -> None:
        """`put_blob(name, b"".join(parts), at)`, without that join where the store can:
        the fraud checkpoint's parts are a hundred MB at the engine's caps, and a joined copy
        beside them (and a database driver's copy of that) tripled what a save took."""
        ...

    async def get_blob(self, name: str) -> bytes | None: ...

    def spill(self) -> BlobSpill:
        """Somewhere to keep a blob's parts while the rest of it is made; closed by the
        caller once `put_blob_parts` has them (or they are given up)."""
        ...


class JoinedBlobParts:
    """`put_blob_parts` for a store whose driver takes a blob as one buffer (asyncpg's bytea,
    DynamoDB's binary attribute, a dict): the parts joined, then `put_blob`. Its spill keeps
    parts as they are, so it is never given a `Spilled` one."""

    async def put_blob_parts(
        self: StateStore, name: str, parts: Sequence[BlobPart], at: datetime
    ) -> None:
        buffers = [part for part in parts if not isinstance(part, Spilled)]
        if len(buffers) != len(parts):
            raise TypeError("a part spilled to a file by another store's spill")
        await self.put_blob(name, b"".join(buffers), at)

    def spill(self) -> BlobSpill:
        return KeptAsTheyAre()


#: (account, currency) -> (the part available on the day asked about, the part still pending)
Balances = dict[tuple[str, str], tuple[int, int]]


class LedgerStore(Protocol):
    """The ledger's transactions (written through `UnitOfWork.commit`) and the sums of their
    postings: balances are always derived, never stored."""

    async def ledger_balances(self, merchant_id: str, today: date) -> Balances:
        """Every account of the merchant with postings, per currency: the sum of postings of
        transactions available on or before `today`, and of those available later."""
        ...

    async def balance_transactions(
        self,
        merchant_id: str,
        limit: int,
        starting_after: str | None = None,
        payment_id: str | None = None,
    ) -> tuple[list[LedgerTransaction], bool]:
        """The merchant's transactions that change what the PSPs owe it (`BALANCE_KINDS`),
        newest first (of one payment, when given); (page, has_more)."""
        ...

    async def ledger_transactions(
        self, psp: str, created_gte: datetime, created_lt: datetime
    ) -> list[LedgerTransaction]:
        """Every transaction booked against `psp` in the window, all merchants, oldest first
        (reconciliation reads a PSP's day)."""
        ...


class Lifecycle(Protocol):
    async def open(self) -> None:
        """Connect, and bring the schema up to date."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the store can serve; for /readyz."""
        ...


class Store(
    UnitOfWork,
    PaymentStore,
    IdempotencyStore,
    EventLog,
    KeyStore,
    StateStore,
    LedgerStore,
    Lifecycle,
    Protocol,
):
    """Durable state, all of it. Implementations: SQLite (embedded), PostgreSQL (scale-out),
    in memory (tests)."""
