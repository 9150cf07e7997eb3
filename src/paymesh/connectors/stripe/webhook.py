"""Stripe webhooks: verify `Stripe-Signature` as Stripe documents it, decode, translate.

The signed payload is "{t}.{raw body}", HMAC-SHA256 with the endpoint secret; any of the v1
signatures may match (Stripe sends several while a secret is rolled); the timestamp must be
within the tolerance, which stops a captured webhook being replayed later.

The whole body is signed, so every field is Stripe's. The event's `data.object` is decoded by
the event's type, only for the types we act on (a PaymentIntent, a Charge, a Dispute); the
object of any other type is acknowledged and ignored, whatever it holds.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import msgspec

from paymesh.connectors.stripe.translate import outcome_from_intent
from paymesh.connectors.webhook_template import WebhookTemplate
from paymesh.ports.connector import WebhookEvent, WebhookRejected
from paymesh.signing import signature_header

__all__ = ["TOLERANCE_SECONDS", "StripeWebhooks", "sign", "verify"]

TOLERANCE_SECONDS = 300


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    return signature_header(payload, secret, timestamp)


def verify(
    payload: bytes,
    header: str | None,
    secret: str,
    now: datetime,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
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
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise WebhookRejected("Stripe-Signature does not match the payload")
    if abs(now.timestamp() - timestamp) > tolerance:
        raise WebhookRejected("Stripe-Signature timestamp is outside the tolerance")


# -- the fields we read, with their types ---------------------------------------------------

#: An id: the de-duplication key of an event, the name of a dispute. Never empty.
Id = Annotated[str, msgspec.Meta(min_length=1)]

# omit_defaults: `msgspec.to_builtins` gives back only the fields the body had, as the dicts
# `translate` reads the API's answers as.


class _Object(msgspec.Struct, omit_defaults=True):
    """What every object we act on states about the payment's money."""

    id: str | None = None
    amount: int | None = None
    currency: str | None = None
    metadata: dict[str, str] | None = None


class _PaymentError(msgspec.Struct, omit_defaults=True):
    type: str | None = None
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


class _Redirect(msgspec.Struct, omit_defaults=True):
    url: str | None = None


class _NextAction(msgspec.Struct, omit_defaults=True):
    type: str | None = None
    redirect_to_url: _Redirect | None = None


class PaymentIntent(_Object, omit_defaults=True):
    status: str | None = None
    amount_capturable: int | None = None
    amount_received: int | None = None
    last_payment_error: _PaymentError | None = None
    next_action: _NextAction | None = None


class _RefundRef(msgspec.Struct):
    id: str


class _Refunds(msgspec.Struct, omit_defaults=True):
    data: list[_RefundRef] | None = None


class Charge(_Object, omit_defaults=True):
    payment_intent: str | None = None
    amount_refunded: int | None = None
    refunds: _Refunds | None = None


class Dispute(msgspec.Struct, omit_defaults=True):
    id: Id
    amount: int | None = None
    currency: str | None = None
    payment_intent: str | None = None
    reason: str | None = None
    status: str | None = None


#: A closed dispute's final status: won (the funds came back) or lost. Stripe also closes a
#: `warning_closed` inquiry, which never took money and is not a dispute we hold.
_CLOSED = {"won": True, "lost": False}


class _Data(msgspec.Struct):
    object: msgspec.Raw  # decoded by the event's type


class _Event(msgspec.Struct):
    id: Id
    type: str
    created: int
    data: _Data


@dataclass(frozen=True, slots=True)
class StripeNotice:
    """An event, and its object decoded by its type (None: a type we do not act on)."""

    id: str
    type: str
    created: int
    object: PaymentIntent | Charge | Dispute | None


def _object_type(event_type: str) -> type[PaymentIntent | Charge | Dispute] | None:
    if event_type.startswith("payment_intent."):
        return PaymentIntent
    if event_type == "charge.refunded":
        return Charge
    if event_type in ("charge.dispute.created", "charge.dispute.closed"):
        return Dispute
    return None


def _created(timestamp: int) -> datetime:
    try:
        return datetime.fromtimestamp(timestamp, tz=UTC)
    except (OverflowError, OSError) as exc:  # no date this platform can hold
        raise ValueError("created is not a time") from exc


class StripeWebhooks(WebhookTemplate[StripeNotice]):
    display_name = "Stripe"

    def __init__(self, secret: str, tolerance: int = TOLERANCE_SECONDS) -> None:
        self._secret = secret
        self._tolerance = tolerance

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        verify(body, headers.get("stripe-signature"), self._secret, now, self._tolerance)

    def decode(self, body: bytes) -> StripeNotice:
        event = msgspec.json.decode(body, type=_Event)
        wanted = _object_type(event.type)
        obj = msgspec.json.decode(event.data.object, type=wanted) if wanted else None
        return StripeNotice(event.id, event.type, event.created, obj)

    def to_events(
        self, decoded: StripeNotice, headers: Mapping[str, str], now: datetime
    ) -> list[WebhookEvent]:
        obj, event_id, created = decoded.object, decoded.id, _created(decoded.created)
        # A PaymentIntent and its Charge state the payment's whole amount; a dispute only the
        # part disputed.
        if isinstance(obj, PaymentIntent):
            return [
                WebhookEvent(
                    psp_event_id=event_id,
                    created=created,
                    payment_id=_payment_id(obj),
                    connector_payment_id=obj.id,
                    outcome=outcome_from_intent(msgspec.to_builtins(obj)),
                    amount=obj.amount,
                    currency=obj.currency,
                )
            ]
        if isinstance(obj, Charge):
            refunds = obj.refunds.data if obj.refunds and obj.refunds.data else []
            return [
                WebhookEvent(
                    psp_event_id=event_id,
                    created=created,
                    payment_id=_payment_id(obj),
                    connector_payment_id=obj.payment_intent,
                    amount_refunded=obj.amount_refunded or 0,
                    connector_refund_ids=tuple(r.id for r in refunds),
                    amount=obj.amount,
                    currency=obj.currency,
                )
            ]
        if isinstance(obj, Dispute) and decoded.type == "charge.dispute.closed":
            won = _CLOSED.get(str(obj.status))
            if won is None:
                return []
            return [
                WebhookEvent(
                    psp_event_id=event_id,
                    created=created,
                    payment_id=None,
                    connector_payment_id=obj.payment_intent,
                    dispute_closed=(obj.id, won),
                    currency=obj.currency,
                )
            ]
        if isinstance(obj, Dispute):
            return [
                WebhookEvent(
                    psp_event_id=event_id,
                    created=created,
                    payment_id=None,
                    connector_payment_id=obj.payment_intent,
                    dispute=(obj.id, obj.amount or 0, obj.reason),
                    currency=obj.currency,
                )
            ]
        return []  # a type we do not act on: acknowledged, ignored


def _payment_id(obj: _Object) -> str | None:
    return (obj.metadata or {}).get("paymesh_payment_id")
