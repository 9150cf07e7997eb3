"""Stripe webhooks: verify `Stripe-Signature` as Stripe documents it, then translate.

The signed payload is "{t}.{raw body}", HMAC-SHA256 with the endpoint secret; any of the v1
signatures may match (Stripe sends several while a secret is rolled); the timestamp must be
within the tolerance, which stops a captured webhook being replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import msgspec

from paymesh.connectors.stripe.translate import outcome_from_intent
from paymesh.ports.connector import WebhookEvent, WebhookRejected
from paymesh.service.signing import signature_header

TOLERANCE_SECONDS = 300


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    return signature_header(payload, secret, timestamp)


def verify(payload: bytes, header: str | None, secret: str, now: datetime,
           tolerance: int = TOLERANCE_SECONDS) -> None:
    if not header:
        raise WebhookRejected("missing Stripe-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise WebhookRejected("malformed Stripe-Signature timestamp") from exc
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookRejected("Stripe-Signature has no timestamp or no v1 signature")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload,
                        hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise WebhookRejected("Stripe-Signature does not match the payload")
    if abs(now.timestamp() - timestamp) > tolerance:
        raise WebhookRejected("Stripe-Signature timestamp is outside the tolerance")


def _metadata_payment_id(obj: dict[str, Any]) -> str | None:
    value = (obj.get("metadata") or {}).get("paymesh_payment_id")
    return value if isinstance(value, str) else None


def _currency(obj: dict[str, Any]) -> str | None:
    value = obj.get("currency")
    return value if isinstance(value, str) else None


def _amount(obj: dict[str, Any]) -> int | None:
    value = obj.get("amount")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def translate(payload: bytes) -> list[WebhookEvent]:
    try:
        event = msgspec.json.decode(payload)
        event_id, event_type = event["id"], event["type"]
        obj = event["data"]["object"]
        created = datetime.fromtimestamp(int(event["created"]), tz=UTC)
        if not (isinstance(event_id, str) and isinstance(event_type, str)
                and isinstance(obj, dict)):
            raise TypeError("id, type or data.object")
        return _translate(event_id, event_type, obj, created)
    except (msgspec.DecodeError, KeyError, TypeError, ValueError, OverflowError,
            OSError, AttributeError) as exc:
        # Signed means Stripe sent it, not that every field has the shape we expect.
        raise WebhookRejected("the body is not a Stripe event") from exc


def _translate(event_id: str, event_type: str, obj: dict[str, Any],
               created: datetime) -> list[WebhookEvent]:
    # The whole body is signed, so every field below is Stripe's. A PaymentIntent and its
    # Charge state the payment's whole amount; a dispute only the part disputed.
    if event_type.startswith("payment_intent."):
        return [WebhookEvent(psp_event_id=event_id, created=created,
                             payment_id=_metadata_payment_id(obj),
                             connector_payment_id=obj.get("id"),
                             outcome=outcome_from_intent(obj),
                             amount=_amount(obj), currency=_currency(obj))]
    if event_type == "charge.refunded":
        refunds = (obj.get("refunds") or {}).get("data") or []
        return [WebhookEvent(psp_event_id=event_id, created=created,
                             payment_id=_metadata_payment_id(obj),
                             connector_payment_id=obj.get("payment_intent"),
                             amount_refunded=int(obj.get("amount_refunded") or 0),
                             connector_refund_ids=tuple(r["id"] for r in refunds),
                             amount=_amount(obj), currency=_currency(obj))]
    if event_type == "charge.dispute.created":
        return [WebhookEvent(psp_event_id=event_id, created=created, payment_id=None,
                             connector_payment_id=obj.get("payment_intent"),
                             dispute=(obj["id"], int(obj.get("amount") or 0),
                                      obj.get("reason")),
                             currency=_currency(obj))]
    return []  # a type we do not act on: acknowledged, ignored
