"""The Store and BusStore ports on DynamoDB: five tables (`tables.py`), one boto3 client.

Every AWS call runs on one thread of its own (`connection.py`): boto3 blocks, and moto's
in-process DynamoDB, which the tests run on, is not thread-safe.

A commit is one `TransactWriteItems` (`changeset.py`), the ledger's transactions with it
(their reads: `ledger.py`). Everything else is one conditional write or a read, except where
DynamoDB has no single call for what the port asks; each such place says why it is still
safe:

- claiming deliveries: a query for due ones, then one conditional update per delivery, so
  two workers never lease the same one (the condition re-checks the lease on the item);
- purging: a query for expired records, then one conditional delete each, which re-checks
  the expiry, so a record claimed again meanwhile is kept;
- releasing claims and leases: a query, then conditional updates (start-up only);
- a named blob larger than an item: chunks written first, then the head that names them
  swapped in one write, so a reader sees the old document or the new one.

Reads of one item are strongly consistent. Lists come from global secondary indexes, which
DynamoDB keeps eventually consistent: a list may miss a write of the last moment, never a
committed one for long; each write's condition is checked on the item itself.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from paymesh.adapters.dynamodb import records
from paymesh.adapters.dynamodb.bus import BusTables, queue_shards
from paymesh.adapters.dynamodb.changeset import Transaction, plan
from paymesh.adapters.dynamodb.connection import conditional_failed
from paymesh.adapters.dynamodb.items import B, Item, N, S, b, key, n, padded, s, us
from paymesh.adapters.dynamodb.ledger import LedgerTables
from paymesh.adapters.dynamodb.queries import Query, merged, run, take
from paymesh.adapters.dynamodb.tables import QUEUE_SHARDS, STATUS_SHARDS
from paymesh.domain.payment import Payment
from paymesh.domain.refund import Refund
from paymesh.domain.review import ReviewStatus
from paymesh.domain.status import PaymentStatus
from paymesh.ports.store import (
    ApiKey,
    Changeset,
    IdempotencyRecord,
    JoinedBlobParts,
    Notification,
    PaymentQuery,
    Purged,
    StoredEvent,
)

#: How long DynamoDB's TTL keeps a consumer mark if `purge_expired` has not deleted it: past
#: housekeeping's window (45 days by default) so TTL never forgets a mark the purge keeps.
MARK_TTL = timedelta(days=90)
#: A blob is cut into items of this many bytes (an item holds at most 400 KB).
BLOB_CHUNK = 350_000
#: Attempts of a transaction that another one held (TransactionConflict) or was throttled.
_TRANSIENT_ATTEMPTS = 6


def _created(item: Item) -> tuple[int, str]:
    return n(item, "createdAt"), s(item, "transactionId")


class DynamoStore(BusTables, LedgerTables, JoinedBlobParts):
    """Implements `paymesh.ports.bus_backend.BusBackend` on the tables `<prefix>-*`.

    `create_tables`: create missing tables at `open()` (tests, local deploys); otherwise
    they must exist (the CDK stack made them). `mark_ttl`: when DynamoDB's TTL may delete a
    consumer mark that `purge_expired` missed (keep it past housekeeping's window)."""

    def __init__(
        self,
        prefix: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        create_tables: bool = False,
        mark_ttl: timedelta = MARK_TTL,
    ) -> None:
        super().__init__(
            prefix, region=region, endpoint_url=endpoint_url, create_tables=create_tables
        )
        self.mark_ttl = mark_ttl

    # -- UnitOfWork -------------------------------------------------------------------------

    async def commit(self, changes: Changeset) -> None:
        if self._client is None:  # a closed store refuses work before planning any
            raise RuntimeError("store is not open")
        marked_at = datetime.now(UTC)  # a consumer mark's age is the store's to keep
        tx = plan(changes, self.tables, marked_at, marked_at + self.mark_ttl)
        transient = 0
        while tx.actions:
            reasons = await self._call(self._transact, tx)
            if reasons is None:
                return
            failure = tx.failure(reasons)
            if isinstance(failure, Exception):
                raise failure
            if failure:  # only skippable writes failed: the rest, again
                tx = tx.without(failure)
                continue
            transient += 1
            if transient >= _TRANSIENT_ATTEMPTS:
                raise RuntimeError("DynamoDB kept cancelling the transaction (conflicts)")
            await asyncio.sleep(random.uniform(0, 0.02 * 2**transient))

    def _transact(self, tx: Transaction) -> list[dict[str, Any]] | None:
        """Send `tx`: None when it committed, else the cancellation reasons (one per item).

        The request token makes botocore's own retry of a request whose answer was lost
        idempotent: DynamoDB answers it with the first outcome instead of applying it again
        (which would fail its conditions and report a conflict for a commit that happened)."""
        try:
            self._db.transact_write_items(
                TransactItems=tx.items(), ClientRequestToken=uuid.uuid4().hex
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons: list[dict[str, Any]] = err.response.get("CancellationReasons", [])
            return reasons
        return None

    # -- PaymentStore -----------------------------------------------------------------------

    def _payment(self, payment_id: str, merchant_id: str | None = None) -> Payment | None:
        item = self._get(self.tables.transactions, {"transactionId": S(payment_id)})
        if item is None or merchant_id not in (None, s(item, "merchantId")):
            return None
        return records.payment_of(item)

    async def get_payment(self, payment_id: str, merchant_id: str | None = None) -> Payment | None:
        return await self._call(self._payment, payment_id, merchant_id)

    def _by_connector_ref(self, connector: str, ref: str) -> Payment | None:
        lookup = self._get(
            self.tables.state, {"pk": S(key("connref", connector, ref)), "sk": S("ref")}
        )
        if lookup is None:
            return None
        p = self._payment(s(lookup, "paymentId"))
        # The reference may have moved on (a new PSP attempt): it names the payment only
        # while the payment still carries it, as a SQL query on its columns would find.
        if p is None or (p.connector, p.connector_payment_id) != (connector, ref):
            return None
        return p

    async def find_payment_by_connector_ref(
        self, connector: str, connector_payment_id: str
    ) -> Payment | None:
        return await self._call(self._by_connector_ref, connector, connector_payment_id)

    def _refund(self, refund_id: str, merchant_id: str) -> Refund | None:
        lookup = self._get(
            self.tables.state, {"pk": S(key("refund", refund_id)), "sk": S("refund")}
        )
        if lookup is None or s(lookup, "merchantId") != merchant_id:
            return None
        p = self._payment(s(lookup, "paymentId"), merchant_id)
        return next((r for r in ([] if p is None else p.refunds) if r.id == refund_id), None)

    async def get_refund(self, refund_id: str, merchant_id: str) -> Refund | None:
        return await self._call(self._refund, refund_id, merchant_id)

    def _list_payments(self, q: PaymentQuery) -> tuple[list[Payment], bool]:
        after: tuple[int, str] | None = None
        lo = None if q.created_gte is None else us(q.created_gte)
        hi = None if q.created_lt is None else us(q.created_lt) - 1
        if q.starting_after is not None:
            cursor = self._get(self.tables.transactions, {"transactionId": S(q.starting_after)})
            if cursor is None or s(cursor, "merchantId") != q.merchant_id:
                return [], False
            after = _created(cursor)
            hi = after[0] if hi is None else min(hi, after[0])
        if lo is not None and hi is not None and lo > hi:
            return [], False
        reviews = (
            [q.review_status]
            if q.review_status is not None
            else list(ReviewStatus)
            if q.under_review
            else []
        )
        # The index whose partitions hold the fewest payments besides the wanted ones.
        if q.customer_id is not None:
            index, attribute, partitions = "CustomerIdIndex", "customerId", [q.customer_id]
        elif reviews:
            partitions = [records.review_queue(q.merchant_id, r) for r in reviews]
            index, attribute = "ReviewIndex", "reviewQueue"
        elif q.status is not None:
            partitions = [f"{q.status.value}#{i:02d}" for i in range(STATUS_SHARDS)]
            index, attribute = "StatusIndex", "statusShard"
        else:
            index, attribute, partitions = "MerchantIndex", "merchantId", [q.merchant_id]

        def query(partition: str) -> Iterator[Item]:
            qq = Query(self.tables.transactions, index).partition(attribute, S(partition))
            if lo is not None and hi is not None:
                qq.between("createdAt", N(lo), N(hi))
            elif lo is not None:
                qq.sort("createdAt", ">=", N(lo))
            elif hi is not None:
                qq.sort("createdAt", "<=", N(hi))
            # What the partition does not already narrow down (an index's key attribute
            # may not be filtered on).
            if index in ("CustomerIdIndex", "StatusIndex"):
                qq.where("merchantId", "=", S(q.merchant_id))
            if q.status is not None and index != "StatusIndex":
                qq.where("status", "=", S(q.status.value))
            if reviews and index != "ReviewIndex":
                if q.review_status is not None:
                    qq.where("reviewStatus", "=", S(q.review_status.value))
                else:
                    qq.where_exists("reviewStatus")
            return run(self._db, qq, forward=False, page=max(q.limit + 1, 25))

        stream = merged(
            (query(p) for p in partitions), lambda i: n(i, "createdAt"), descending=True
        )
        rows = take(stream, q.limit, _created, descending=True, after=after)
        page = [records.payment_of(i) for i in rows[: q.limit]]
        return page, len(rows) > q.limit

    async def list_payments(self, query: PaymentQuery) -> tuple[list[Payment], bool]:
        return await self._call(self._list_payments, query)

    def _to_sync(
        self, statuses: frozenset[PaymentStatus], updated_before: datetime, limit: int
    ) -> list[Payment]:
        before = us(updated_before)

        def shard(partition: str) -> Iterator[Item]:
            # created <= updated < before: the key condition narrows to payments made
            # before the cutoff, the filter to those not updated since.
            qq = Query(self.tables.transactions, "StatusIndex")
            qq.partition("statusShard", S(partition)).sort("createdAt", "<", N(before))
            return run(self._db, qq.where("updatedAt", "<", N(before)))

        partitions = [
            f"{status.value}#{i:02d}" for status in sorted(statuses) for i in range(STATUS_SHARDS)
        ]
        stream = merged((shard(p) for p in partitions), lambda i: n(i, "createdAt"), False)
        # The oldest made first (what StatusIndex orders by), then by last update as the
        # SQL stores order: the sync job wants the stalest, and a payment is never updated
        # before it was made.
        rows = take(stream, limit, _created, descending=False)[:limit]
        rows.sort(key=lambda i: (n(i, "updatedAt"), s(i, "transactionId")))
        return [records.payment_of(i) for i in rows]

    async def payments_to_sync(
        self, statuses: frozenset[PaymentStatus], updated_before: datetime, limit: int
    ) -> list[Payment]:
        return await self._call(self._to_sync, statuses, updated_before, limit)

    def _pending_refunds(self, created_before: datetime, limit: int) -> list[Payment]:
        qq = Query(self.tables.transactions, "PendingRefundIndex")
        qq.partition("refundsPending", S(records.REFUNDS_PENDING))
        qq.sort("refundPendingAt", "<", N(us(created_before)))

        def order(item: Item) -> tuple[int, str]:
            return n(item, "refundPendingAt"), s(item, "transactionId")

        rows = take(run(self._db, qq), limit, order, descending=False)[:limit]
        return [records.payment_of(i) for i in rows]

    async def payments_with_pending_refunds(
        self, created_before: datetime, limit: int
    ) -> list[Payment]:
        return await self._call(self._pending_refunds, created_before, limit)

    # -- IdempotencyStore -------------------------------------------------------------------

    def _idempotency(self, merchant_id: str, k: str) -> IdempotencyRecord | None:
        item = self._get(
            self.tables.idempotency,
            {"idempotencyKey": S(records.idempotency_key(merchant_id, k))},
        )
        return None if item is None else records.idempotency_of(item)

    async def get_idempotency(self, merchant_id: str, key: str) -> IdempotencyRecord | None:
        return await self._call(self._idempotency, merchant_id, key)

    def _by_expiry(self, now_us: int | None, filters: Callable[[Query], Query]) -> Iterator[Item]:
        def shard(i: int) -> Iterator[Item]:
            qq = Query(self.tables.idempotency, "ExpiryIndex")
            qq.partition("expiryShard", S(f"{i:02d}"))
            if now_us is not None:
                qq.sort("expiresAt", "<=", N(now_us))
            return run(self._db, filters(qq))

        return merged((shard(i) for i in range(QUEUE_SHARDS)), lambda i: n(i, "expiresAt"), False)

    def _release_claims(self) -> int:
        unfinished = self._by_expiry(
            None,
            lambda qq: qq.where("completed", "=", {"BOOL": False}).where("lockedUntil", ">", N(0)),
        )
        released = 0
        for item in unfinished:
            released += (
                self._update(
                    TableName=self.tables.idempotency,
                    Key={"idempotencyKey": item["idempotencyKey"]},
                    UpdateExpression="SET #l = :zero",
                    ConditionExpression="#t = :t AND #c = :false AND #l > :zero",
                    ExpressionAttributeNames={
                        "#l": "lockedUntil",
                        "#t": "leaseToken",
                        "#c": "completed",
                    },
                    ExpressionAttributeValues={
                        ":zero": N(0),
                        ":t": item["leaseToken"],
                        ":false": {"BOOL": False},
                    },
                )
                is not None
            )
        return released

    async def release_claims(self) -> int:
        return await self._call(self._release_claims)

    def _purge(self, now: datetime, processed_before: datetime, limit: int) -> Purged:
        now_us = us(now)
        # Expired and not leased by a request still in flight; the delete checks it again
        # on the item, so a key claimed afresh since the query is kept.
        expired = "#e <= :now AND (#c = :true OR #l <= :now)"
        names = {"#e": "expiresAt", "#c": "completed", "#l": "lockedUntil"}
        values = {":now": N(now_us), ":true": {"BOOL": True}}

        def purgeable(qq: Query) -> Query:
            qq.names.update({"#c": "completed", "#l": "lockedUntil"})
            qq.values.update({":now": N(now_us), ":true": {"BOOL": True}})
            qq.filters.append("(#c = :true OR #l <= :now)")
            return qq

        records_gone = sum(
            self._delete(
                TableName=self.tables.idempotency,
                Key={"idempotencyKey": item["idempotencyKey"]},
                ConditionExpression=expired,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            for item in itertools.islice(self._by_expiry(now_us, purgeable), limit)
        )

        def marks(partition: str) -> Iterator[Item]:
            qq = Query(self.tables.state, "QueueIndex").partition("queue", S(partition))
            return run(self._db, qq.sort("position", "<", S(padded(us(processed_before)))))

        old = merged(
            (marks(p) for p in queue_shards("processed")), lambda i: s(i, "position"), False
        )
        marks_gone = sum(
            self._delete(
                TableName=self.tables.state,
                Key={"pk": item["pk"], "sk": item["sk"]},
                ConditionExpression="#m < :before",
                ExpressionAttributeNames={"#m": "markedAt"},
                ExpressionAttributeValues={":before": N(us(processed_before))},
            )
            for item in itertools.islice(old, limit)
        )
        # Delivered deliveries carry a TTL (`mark_ttl`, as marks do): DynamoDB deletes them.
        return Purged(idempotency=records_gone, processed=marks_gone)

    async def purge_expired(
        self, now: datetime, processed_before: datetime, limit: int = 1000
    ) -> Purged:
        return await self._call(self._purge, now, processed_before, limit)

    # -- EventLog ---------------------------------------------------------------------------

    def _timeline(self, merchant_id: str, payment_id: str) -> list[StoredEvent]:
        qq = Query(self.tables.events, "PaymentIndex").partition("paymentId", S(payment_id))
        qq.where("merchantId", "=", S(merchant_id))
        return [records.stored_event(i) for i in run(self._db, qq)]

    async def events_for_payment(self, merchant_id: str, payment_id: str) -> list[StoredEvent]:
        return await self._call(self._timeline, merchant_id, payment_id)

    def _list_events(
        self, merchant_id: str, event_type: str | None, limit: int, starting_after: str | None
    ) -> tuple[list[StoredEvent], bool]:
        qq = Query(self.tables.events, "MerchantIndex").partition("merchantId", S(merchant_id))
        if starting_after is not None:
            cursor = self._get(self.tables.events, {"eventId": S(starting_after)})
            if cursor is None or cursor.get("merchantId") != S(merchant_id):
                return [], False
            qq.sort("seq", "<", cursor["seq"])
        if event_type is not None:
            qq.where("type", "=", S(event_type))
        rows = list(itertools.islice(run(self._db, qq, forward=False, page=limit + 1), limit + 1))
        return [records.stored_event(i) for i in rows[:limit]], len(rows) > limit

    async def list_events(
        self, merchant_id: str, event_type: str | None, limit: int, starting_after: str | None
    ) -> tuple[list[StoredEvent], bool]:
        return await self._call(self._list_events, merchant_id, event_type, limit, starting_after)

    def _outbox(self, limit: int) -> list[StoredEvent]:
        def shard(i: int) -> Iterator[Item]:
            qq = Query(self.tables.events, "OutboxIndex")
            return run(self._db, qq.partition("outboxShard", S(f"{i:02d}")), page=max(limit, 1))

        stream = merged((shard(i) for i in range(QUEUE_SHARDS)), lambda i: s(i, "seq"), False)
        return [records.stored_event(i) for i in itertools.islice(stream, limit)]

    async def undelivered_events(self, limit: int) -> list[StoredEvent]:
        return await self._call(self._outbox, limit)

    async def claim_outbox(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[StoredEvent]:
        # On AWS the events table's stream is the relay, one reader per shard; nothing here
        # runs two relays over one outbox.
        return await self.undelivered_events(limit)

    def _notifications(self, merchant_id: str, payment_id: str) -> list[Notification]:
        qq = Query(self.tables.state, None)
        qq.partition("pk", S(key("notifications", merchant_id, payment_id)))
        found = [records.notification_of(i) for i in run(self._db, qq)]
        return sorted(found, key=lambda x: (x.created_at, x.id))

    async def notifications_for_payment(
        self, merchant_id: str, payment_id: str
    ) -> list[Notification]:
        return await self._call(self._notifications, merchant_id, payment_id)

    # -- KeyStore ---------------------------------------------------------------------------

    def _add_key(self, k: ApiKey) -> None:
        try:
            self._db.put_item(
                TableName=self.tables.state,
                Item=records.api_key_item(k),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as err:
            if conditional_failed(err):
                raise ValueError(f"api key {k.prefix} is already stored") from err
            raise

    async def add_api_key(self, key: ApiKey) -> None:
        await self._call(self._add_key, key)

    def _find_key(self, key_hash: str) -> ApiKey | None:
        item = self._get(self.tables.state, {"pk": S(records.API_KEYS), "sk": S(key_hash)})
        return None if item is None else records.api_key_of(item)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        return await self._call(self._find_key, key_hash)

    def _list_keys(self, merchant_id: str | None) -> list[ApiKey]:
        # One partition holds every key: listing them all is a query, not a table scan.
        qq = Query(self.tables.state, None).partition("pk", S(records.API_KEYS))
        if merchant_id is not None:
            qq.where("merchantId", "=", S(merchant_id))
        keys = [records.api_key_of(i) for i in run(self._db, qq)]
        return sorted(keys, key=lambda k: (k.created_at, k.prefix))

    async def list_api_keys(self, merchant_id: str | None = None) -> list[ApiKey]:
        return await self._call(self._list_keys, merchant_id)

    def _revoke(self, key_hash: str, at: datetime) -> bool:
        return (
            self._update(
                TableName=self.tables.state,
                Key={"pk": S(records.API_KEYS), "sk": S(key_hash)},
                UpdateExpression="SET #r = :at",
                # The first revocation stands: a second one finds it set and changes nothing.
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#r)",
                ExpressionAttributeNames={"#r": "revokedAt"},
                ExpressionAttributeValues={":at": N(us(at))},
            )
            is not None
        )

    async def revoke_api_key(self, key_hash: str, at: datetime) -> bool:
        return await self._call(self._revoke, key_hash, at)

    # -- StateStore -------------------------------------------------------------------------

    def _put_blob(self, name: str, data: bytes, at: datetime) -> None:
        pk = S(key("blob", name))
        head: Item = {"pk": pk, "sk": S("head"), "savedAt": N(us(at))}
        if len(data) <= BLOB_CHUNK:
            head["data"] = B(data)
        else:
            generation = uuid.uuid4().hex
            chunks = [data[i : i + BLOB_CHUNK] for i in range(0, len(data), BLOB_CHUNK)]
            self._batch_write(
                {
                    "PutRequest": {
                        "Item": {"pk": pk, "sk": S(f"chunk#{generation}#{i:06d}"), "data": B(chunk)}
                    }
                }
                for i, chunk in enumerate(chunks)
            )
            head.update(generation=S(generation), chunks=N(len(chunks)))
        # The swap: readers see the old head or this one, never a mix of chunks. It returns
        # what it replaced, so each put deletes exactly the chunks it made unreachable.
        old = self._db.put_item(TableName=self.tables.state, Item=head, ReturnValues="ALL_OLD")
        replaced = old.get("Attributes", {}).get("generation")
        if replaced is not None:
            self._batch_write(
                {"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}}
                for item in self._chunks(pk, replaced["S"])
            )

    def _chunks(self, pk: dict[str, Any], generation: str) -> Iterator[Item]:
        qq = Query(self.tables.state, None).partition("pk", pk)
        return run(self._db, qq.sort("sk", "begins_with", S(f"chunk#{generation}#")))

    def _batch_write(self, requests: Any) -> None:
        pending = list(requests)
        for start in range(0, len(pending), 25):  # BatchWriteItem's limit
            batch = {self.tables.state: pending[start : start + 25]}
            for attempt in itertools.count():
                left = self._db.batch_write_item(RequestItems=batch).get("UnprocessedItems")
                if not left:
                    break
                if attempt >= 8:
                    raise RuntimeError("DynamoDB kept refusing a batch write (throttled)")
                batch = left

    def _get_blob(self, name: str) -> bytes | None:
        pk = S(key("blob", name))
        for _ in range(3):
            head = self._get(self.tables.state, {"pk": pk, "sk": S("head")})
            if head is None:
                return None
            if "data" in head:
                return b(head, "data")
            chunks = [b(i, "data") for i in self._chunks(pk, s(head, "generation"))]
            if len(chunks) == n(head, "chunks"):
                return b"".join(chunks)
            # A newer put swapped the head and deleted these chunks while they were read.
        raise RuntimeError(f"blob {name!r} kept changing while it was read")

    async def put_blob(self, name: str, data: bytes, at: datetime) -> None:
        await self._call(self._put_blob, name, bytes(data), at)

    async def get_blob(self, name: str) -> bytes | None:
        return await self._call(self._get_blob, name)
