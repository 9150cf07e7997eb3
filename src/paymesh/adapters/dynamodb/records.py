"""paymesh's records as DynamoDB items, and back.

A payment is its codec document plus the attributes the indexes are keyed on (the reference's
`transactionId`, `customerId`, `createdAt`, and ours). Everything kept in the state table is
keyed (pk, sk) as listed in `state_key`; the `queue`/`position` pair puts an item in a
QueueIndex list.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from paymesh.adapters.codec import (
    decode_json,
    delivery_from_row,
    delivery_to_doc,
    encode_json,
    payment_from_doc,
    payment_to_doc,
)
from paymesh.adapters.dynamodb.items import (
    BOOL,
    B,
    Item,
    N,
    S,
    b,
    b_or,
    flag,
    key,
    n,
    n_or,
    padded,
    s,
    s_or,
    seconds,
    shard,
    us,
    when,
    when_or,
)
from paymesh.adapters.dynamodb.tables import LEDGER_SHARDS, QUEUE_SHARDS, STATUS_SHARDS
from paymesh.adapters.ledger_codec import ledger_from_doc, ledger_to_doc
from paymesh.domain.events import DomainEvent
from paymesh.domain.ledger import BALANCE_KINDS, LedgerTransaction
from paymesh.domain.payment import Payment
from paymesh.domain.review import ReviewStatus
from paymesh.domain.status import PaymentStatus
from paymesh.ports.bus import Delivery
from paymesh.ports.store import ApiKey, IdempotencyRecord, Notification, StoredEvent

#: The one partition key of PendingRefundIndex: few payments have a refund pending at once.
REFUNDS_PENDING = "pending"


def status_shard(status: PaymentStatus, payment_id: str) -> str:
    return f"{status.value}#{shard(payment_id, STATUS_SHARDS):02d}"


def review_queue(merchant_id: str, status: ReviewStatus) -> str:
    return key(merchant_id, status.value)


# -- payments -----------------------------------------------------------------------------


def payment_item(p: Payment, version: int) -> Item:
    item: Item = {
        "transactionId": S(p.id),
        "merchantId": S(p.merchant_id),
        "createdAt": N(us(p.created_at)),
        "updatedAt": N(us(p.updated_at)),
        "status": S(p.status.value),
        "statusShard": S(status_shard(p.status, p.id)),
        "amount": N(p.amount),
        "currency": S(p.currency),
        "connector": S(p.connector),
        "version": N(version),
        "doc": B(payment_to_doc(p)),
        # No `ttl`, ever: a payment is a financial record, kept for as long as the law asks
        # (years), not for a fixed time after its last change. The table defines the TTL
        # attribute (as the reference does) for nothing paymesh writes to it.
    }
    # An index key attribute may not be an empty string: leave it out, and the payment
    # out of that index, rather than have the write refused.
    if p.customer_id:
        item["customerId"] = S(p.customer_id)
    if p.connector_payment_id is not None:
        item["connectorPaymentId"] = S(p.connector_payment_id)
    if p.review is not None:
        item["reviewStatus"] = S(p.review.status.value)
        item["reviewQueue"] = S(review_queue(p.merchant_id, p.review.status))
    if (since := p.oldest_pending_refund) is not None:
        item["refundsPending"] = S(REFUNDS_PENDING)
        item["refundPendingAt"] = N(us(since))
    return item


def payment_of(item: Item) -> Payment:
    return payment_from_doc(b(item, "doc"), n(item, "version"))


# -- the ledger ---------------------------------------------------------------------------


def psp_shard(psp: str, number: int) -> str:
    return key(psp, f"{number:02d}")


def ledger_item(t: LedgerTransaction, seq: str) -> Item:
    """The transaction's document and its index keys (tables.LEDGER); no `ttl`: a ledger is
    kept as long as the payments it books."""
    item: Item = {
        "ledgerId": S(t.id),
        "merchantId": S(t.merchant_id),
        "kind": S(t.kind.value),
        "seq": S(seq),
        "createdAt": N(us(t.created_at)),
        "pspShard": S(psp_shard(t.psp, shard(t.id, LEDGER_SHARDS))),
        "doc": B(ledger_to_doc(t)),
    }
    if t.kind in BALANCE_KINDS:
        item["balanceMerchant"] = S(t.merchant_id)
        # A payout is booked on its own: no payment, and no empty index key.
        if t.payment_id:
            item["balancePayment"] = S(t.payment_id)
    return item


def ledger_of(item: Item) -> LedgerTransaction:
    return ledger_from_doc(b(item, "doc"))


# -- events -------------------------------------------------------------------------------


def event_item(e: DomainEvent, seq: str, routed: bool) -> Item:
    item: Item = {
        "eventId": S(e.id),
        "type": S(e.type),
        "time": N(us(e.time)),
        "seq": S(seq),
        "envelope": B(encode_json(e.envelope())),
    }
    if e.payment_id:
        item["paymentId"] = S(e.payment_id)
    if e.merchant_id:
        item["merchantId"] = S(e.merchant_id)
    if not routed:
        item["outboxShard"] = S(f"{shard(e.id, QUEUE_SHARDS):02d}")
    return item


def stored_event(item: Item) -> StoredEvent:
    return StoredEvent(
        id=s(item, "eventId"),
        merchant_id=s_or(item, "merchantId", "") or "",
        payment_id=s_or(item, "paymentId", "") or "",
        type=s(item, "type"),
        time=when(item, "time"),
        envelope=decode_json(b(item, "envelope")),
    )


def envelope_from_image(image: dict[str, Any]) -> dict[str, Any] | None:
    """The envelope of the event an events-table stream record shows (its NewImage), or
    None for an item that holds none. Lambda hands binary attributes over base64-encoded in
    its JSON event; boto3 (GetRecords) as bytes: both are read."""
    value = image.get("envelope", {}).get("B")
    if value is None:
        return None
    raw = base64.b64decode(value) if isinstance(value, str) else bytes(value)
    return dict(decode_json(raw))


# -- idempotency --------------------------------------------------------------------------


def idempotency_key(merchant_id: str, k: str) -> str:
    return key(merchant_id, k)


def idempotency_item(r: IdempotencyRecord) -> Item:
    hash_key = idempotency_key(r.merchant_id, r.key)
    item: Item = {
        "idempotencyKey": S(hash_key),
        "merchantId": S(r.merchant_id),
        "key": S(r.key),
        "fingerprint": S(r.fingerprint),
        "resourceId": S(r.resource_id),
        "leaseToken": S(r.lease_token),
        "lockedUntil": N(us(r.locked_until)),
        "expiresAt": N(us(r.expires_at)),
        "expiryShard": S(f"{shard(hash_key, QUEUE_SHARDS):02d}"),
        "completed": BOOL(r.completed),
        # DynamoDB's own cleanup, behind `purge_expired`: not before the record has expired
        # and its lease is over, when the purge would delete it too. A record TTL has not
        # reached yet reads as on any backend (the claim's condition, not TTL, decides
        # whether an expired key is free).
        "ttl": N(seconds(max(r.expires_at, r.locked_until))),
    }
    if r.response_status is not None:
        item["responseStatus"] = N(r.response_status)
    if r.response_body is not None:
        item["responseBody"] = B(r.response_body)
    return item


def idempotency_of(item: Item) -> IdempotencyRecord:
    return IdempotencyRecord(
        merchant_id=s(item, "merchantId"),
        key=s(item, "key"),
        fingerprint=s(item, "fingerprint"),
        resource_id=s(item, "resourceId"),
        lease_token=s(item, "leaseToken"),
        locked_until=when(item, "lockedUntil"),
        expires_at=when(item, "expiresAt"),
        completed=flag(item, "completed"),
        response_status=n_or(item, "responseStatus"),
        response_body=b_or(item, "responseBody"),
    )


# -- the state table ----------------------------------------------------------------------
# pk                                   sk              what
# processed#<consumer>#<event>         mark            a consumer mark (QueueIndex: by age)
# connref#<connector>#<psp id>         ref             PSP reference -> payment
# refund#<refund id>                   refund          refund -> payment
# notifications#<merchant>#<payment>   <id>            a notification sent for a payment
# apikeys                              <hash>          an API key (one partition: few keys)
# rules                                <merchant>#<n>  a merchant's rule (one partition)
# blob#<name>                          head | chunk#…  a named document, in chunks
# delivery#<id>                        delivery        a delivery (QueueIndex: due or dead)
# route#<event>                        <rule>#<target> one delivery per (event, rule, target)
# deadletters                          <merchant>      a merchant that has had a dead letter

MARK = "mark"


def mark_item(consumer: str, event_id: str, marked_at: datetime, ttl: datetime) -> Item:
    pk = key("processed", consumer, event_id)
    return {
        "pk": S(pk),
        "sk": S(MARK),
        "queue": S(key("processed", f"{shard(pk, QUEUE_SHARDS):02d}")),
        "position": S(padded(us(marked_at))),
        "markedAt": N(us(marked_at)),
        "ttl": N(seconds(ttl)),
    }


def notification_item(x: Notification) -> Item:
    return {
        "pk": S(key("notifications", x.merchant_id, x.payment_id)),
        "sk": S(x.id),
        "merchantId": S(x.merchant_id),
        "paymentId": S(x.payment_id),
        "eventId": S(x.event_id),
        "channel": S(x.channel),
        "recipient": S(x.recipient),
        "template": S(x.template),
        "createdAt": N(us(x.created_at)),
    }


def notification_of(item: Item) -> Notification:
    return Notification(
        id=s(item, "sk"),
        merchant_id=s(item, "merchantId"),
        payment_id=s(item, "paymentId"),
        event_id=s(item, "eventId"),
        channel=s(item, "channel"),
        recipient=s(item, "recipient"),
        template=s(item, "template"),
        created_at=when(item, "createdAt"),
    )


API_KEYS = "apikeys"


def api_key_item(k: ApiKey) -> Item:
    item: Item = {
        "pk": S(API_KEYS),
        "sk": S(k.key_hash),
        "merchantId": S(k.merchant_id),
        "createdAt": N(us(k.created_at)),
        "prefix": S(k.prefix),
    }
    if k.revoked_at is not None:
        item["revokedAt"] = N(us(k.revoked_at))
    return item


def api_key_of(item: Item) -> ApiKey:
    return ApiKey(
        key_hash=s(item, "sk"),
        merchant_id=s(item, "merchantId"),
        created_at=when(item, "createdAt"),
        prefix=s(item, "prefix"),
        revoked_at=when_or(item, "revokedAt"),
    )


# -- deliveries ---------------------------------------------------------------------------

DELIVERY = "delivery"
#: A lease that has ended (or never began): due as soon as the delivery is.
NO_LEASE = 0


def delivery_key(delivery_id: str) -> Item:
    return {"pk": S(key("delivery", delivery_id)), "sk": S(DELIVERY)}


def route_key(d: Delivery) -> Item:
    return {"pk": S(key("route", d.event_id)), "sk": S(key(d.rule, d.target.id))}


def due_queue(delivery_id: str) -> str:
    return key("due", f"{shard(delivery_id, QUEUE_SHARDS):02d}")


def dead_queue(merchant_id: str) -> str:
    return key("dead", merchant_id)


#: One partition naming every merchant that has had a dead letter, so the dead-letter depth
#: of all merchants is a query per merchant's `dead#<merchant>` queue, never a scan.
DEAD_MERCHANTS = "deadletters"


def dead_merchant_item(merchant_id: str) -> Item:
    return {"pk": S(DEAD_MERCHANTS), "sk": S(merchant_id)}


def queue_position(at_micros: int, delivery_id: str) -> str:
    """A time, then the id: equal times keep a stable order, and a cursor names one item."""
    return f"{padded(at_micros)}#{delivery_id}"


def delivery_item(d: Delivery) -> Item:
    updated = us(d.history[-1].at if d.history else d.created_at)
    item: Item = {
        **delivery_key(d.id),
        "deliveryId": S(d.id),
        "eventId": S(d.event_id),
        "merchantId": S(d.merchant_id),
        "rule": S(d.rule),
        "status": S(d.status),
        "attempts": N(d.attempts),
        "nextAttemptAt": N(us(d.next_attempt_at)),
        "lockedUntil": N(NO_LEASE),
        "updatedAt": N(updated),
        # The merchant's dead-letter queue, kept so a save that kills the delivery can move
        # it there from the stored merchant (an update may copy one attribute to another),
        # whatever merchant the saved object claims.
        "deadQueue": S(dead_queue(d.merchant_id)),
        "doc": B(delivery_to_doc(d)),
    }
    if d.status == "pending":
        item["queue"] = S(due_queue(d.id))
        item["position"] = S(queue_position(us(d.next_attempt_at), d.id))
    elif d.status == "dead":
        item["queue"] = S(dead_queue(d.merchant_id))
        item["position"] = S(queue_position(updated, d.id))
    return item


def delivery_of(item: Item) -> Delivery:
    return delivery_from_row(
        (
            s(item, "deliveryId"),
            s(item, "eventId"),
            s(item, "merchantId"),
            s(item, "rule"),
            s(item, "status"),
            n(item, "attempts"),
            n(item, "nextAttemptAt"),
            b(item, "doc"),
        )
    )
