"""The DynamoDB tables, as data: the one definition both the store (creating them where none
exist, as in tests against moto) and the CDK stack (infra/) build from.

The transactions table is the reference's (`transactionId`, `CustomerIdIndex` and
`StatusIndex` on `createdAt`, `ttl`, streams with both images, point-in-time recovery,
on-demand billing) with one change: `StatusIndex` is keyed on `statusShard`
(`<status>#<00..15>`, the shard a hash of the payment id) instead of the bare status. Every
new payment is `pending`, so a bare-status key puts the whole write load on one partition of
the index; sixteen shards spread it, and a query by status asks the sixteen and merges them.

Indexes added for the store's own queries are sparse (their key attributes are set only on
the items they list), so an item outside the list costs no index write: `ReviewIndex` (the
review queue), `PendingRefundIndex` (recovery), the outbox, the idempotency records by expiry
and the state table's queues (due deliveries, dead letters, consumer marks by age).
"""

from __future__ import annotations

from dataclasses import dataclass

#: How many shards a status is spread over in StatusIndex.
STATUS_SHARDS = 16
#: How many shards the write-heavy sparse lists (the outbox, idempotency records by expiry,
#: consumer marks by age, due deliveries) are spread over: every commit writes into them,
#: and one partition key would take them all. A reader asks each shard and merges.
QUEUE_SHARDS = 4


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    type: str  # "S" | "N" | "B"


@dataclass(frozen=True, slots=True)
class Index:
    """A global secondary index, projecting every attribute."""

    name: str
    hash_key: Key
    range_key: Key | None = None


@dataclass(frozen=True, slots=True)
class TableSpec:
    #: The table is named `<prefix>-<suffix>` (prefix: PAYMESH_DYNAMODB_PREFIX).
    suffix: str
    hash_key: Key
    range_key: Key | None = None
    indexes: tuple[Index, ...] = ()
    #: StreamViewType, or None for no stream.
    stream: str | None = None
    ttl_attribute: str | None = None

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.suffix}"

    def attributes(self) -> list[Key]:
        """Every key attribute of the table and its indexes, once (AttributeDefinitions)."""
        seen: dict[str, Key] = {}
        for key in (self.hash_key, self.range_key):
            if key is not None:
                seen.setdefault(key.name, key)
        for index in self.indexes:
            for key in (index.hash_key, index.range_key):
                if key is not None:
                    seen.setdefault(key.name, key)
        return list(seen.values())


CREATED_AT = Key("createdAt", "N")

TRANSACTIONS = TableSpec(
    suffix="transactions",
    hash_key=Key("transactionId", "S"),
    indexes=(
        Index("CustomerIdIndex", Key("customerId", "S"), CREATED_AT),
        Index("StatusIndex", Key("statusShard", "S"), CREATED_AT),
        Index("MerchantIndex", Key("merchantId", "S"), CREATED_AT),
        # Sparse: `reviewQueue` (`<merchant>#<review status>`) is set only on a payment with
        # a review, so the review queue reads reviews and nothing else.
        Index("ReviewIndex", Key("reviewQueue", "S"), CREATED_AT),
        # Sparse: set only while a refund is pending, on the oldest one's creation time.
        Index("PendingRefundIndex", Key("refundsPending", "S"), Key("refundPendingAt", "N")),
    ),
    stream="NEW_AND_OLD_IMAGES",
    ttl_attribute="ttl",
)

IDEMPOTENCY = TableSpec(
    suffix="idempotency",
    hash_key=Key("idempotencyKey", "S"),
    # Housekeeping finds expired records here (explicit deletes; TTL is the backstop).
    indexes=(Index("ExpiryIndex", Key("expiryShard", "S"), Key("expiresAt", "N")),),
    ttl_attribute="ttl",
)

#: The outbox: every committed event, written in the transaction of the change that caused
#: it. Its stream (new images) is what the publisher puts on EventBridge.
EVENTS = TableSpec(
    suffix="events",
    hash_key=Key("eventId", "S"),
    indexes=(
        Index("PaymentIndex", Key("paymentId", "S"), Key("seq", "S")),
        Index("MerchantIndex", Key("merchantId", "S"), Key("seq", "S")),
        # Sparse: `outboxShard` is removed when the event is routed, so this lists the
        # outbox (committed, not yet routed), oldest first.
        Index("OutboxIndex", Key("outboxShard", "S"), Key("seq", "S")),
    ),
    stream="NEW_IMAGE",
)

#: Everything else, one table keyed (pk, sk): API keys, rules, deliveries, notifications,
#: consumer marks, connector references, named state documents.
STATE = TableSpec(
    suffix="state",
    hash_key=Key("pk", "S"),
    range_key=Key("sk", "S"),
    # Sparse: an item in a queue (a due delivery, a dead letter, a consumer mark) names it
    # in `queue` and its place in `position` (a zero-padded time, then a tie-breaker).
    indexes=(Index("QueueIndex", Key("queue", "S"), Key("position", "S")),),
    ttl_attribute="ttl",
)

#: How many shards a PSP's ledger transactions are spread over in PspIndex: every booking
#: of every merchant on that PSP writes there, so one partition per PSP would take them all.
LEDGER_SHARDS = 16

#: The double-entry ledger: one item per transaction, keyed by its id (which derives from
#: the booking event, so a replayed booking meets its own item and is kept once). `seq` is
#: the booking order (the commit's time, the place in it, the id), as the events' `seq`.
LEDGER = TableSpec(
    suffix="ledger",
    hash_key=Key("ledgerId", "S"),
    indexes=(
        # All of a merchant's transactions: what its balances are summed from.
        Index("MerchantIndex", Key("merchantId", "S"), Key("seq", "S")),
        # Sparse: `balanceMerchant` and `balancePayment` are set only on the kinds that
        # change what the PSP owes (`BALANCE_KINDS`), so a page of balance transactions
        # reads those and nothing else.
        Index("BalanceIndex", Key("balanceMerchant", "S"), Key("seq", "S")),
        Index("PaymentBalanceIndex", Key("balancePayment", "S"), Key("seq", "S")),
        # A PSP's transactions by creation time (`<psp>#<00..15>`): reconciliation's day.
        Index("PspIndex", Key("pspShard", "S"), CREATED_AT),
    ),
)

TABLES: tuple[TableSpec, ...] = (TRANSACTIONS, IDEMPOTENCY, EVENTS, STATE, LEDGER)
