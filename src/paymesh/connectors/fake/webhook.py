"""The fake PSP's webhooks: a small JSON body of its own, signed like Stripe's.

    header  Fake-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{body}">
    body    {"id", "type": "charge.updated" | "refund.updated", "created",
             "charge": the charge as it is now, "refund": the refund (refund.updated only)}

The whole body is signed, and the timestamp must be within the tolerance, so, as with Stripe,
every field is the PSP's and `confirm` has nothing to ask. Read as every PSP's webhooks are
(`WebhookTemplate`): verify, decode into types (a field of another type rejects the body),
translate.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import msgspec

from paymesh.connectors.webhook_template import WebhookTemplate
from paymesh.domain.payment import Failure, PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import RefundUpdate, WebhookEvent, WebhookRejected
from paymesh.signing import signature_header

__all__ = [
    "SIGNATURE_HEADER",
    "TOLERANCE_SECONDS",
    "ChargeBody",
    "FailureBody",
    "FakeWebhooks",
    "Notification",
    "RefundBody",
    "SignedWebhook",
    "sign",
]

SIGNATURE_HEADER = "fake-signature"
TOLERANCE_SECONDS = 300


class SignedWebhook(NamedTuple):
    """One notification as the PSP would post it: unpacks as (headers, body)."""

    headers: dict[str, str]
    body: bytes


class FailureBody(msgspec.Struct):
    code: str
    message: str
    retryable: bool
    decline_code: str | None = None


class ChargeBody(msgspec.Struct):
    id: str
    reference: str  # our payment id, echoed from the authorisation
    status: PaymentStatus
    amount: int
    currency: str
    amount_capturable: int
    amount_received: int
    failure: FailureBody | None = None
    next_action: dict[str, str] | None = None


class RefundBody(msgspec.Struct):
    id: str
    reference: str  # our refund id
    amount: int
    succeeded: bool
    failure_reason: str | None = None


class Notification(msgspec.Struct):
    id: str
    type: Literal["charge.updated", "refund.updated"]
    created: int
    charge: ChargeBody
    refund: RefundBody | None = None


def sign(notification: Notification, secret: str) -> SignedWebhook:
    body = msgspec.json.encode(notification)
    return SignedWebhook(
        {SIGNATURE_HEADER: signature_header(body, secret, notification.created)}, body
    )


def _verify(body: bytes, header: str | None, secret: str, now: datetime, tolerance: int) -> None:
    if not header:
        raise WebhookRejected(f"missing {SIGNATURE_HEADER} header")
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError as exc:
        raise WebhookRejected(f"{SIGNATURE_HEADER} has no timestamp") from exc
    expected = signature_header(body, secret, timestamp).partition(",v1=")[2]
    # Constant time: a forger must not learn the signature a byte at a time.
    if not hmac.compare_digest(expected, fields.get("v1", "")):
        raise WebhookRejected(f"{SIGNATURE_HEADER} does not match the payload")
    # After the signature: only a signed timestamp says how old the webhook is.
    if abs(now.timestamp() - timestamp) > tolerance:
        raise WebhookRejected(f"{SIGNATURE_HEADER} timestamp is outside the tolerance")


def _outcome(charge: ChargeBody) -> PspOutcome:
    failure = (
        None
        if charge.failure is None
        else Failure(
            code=charge.failure.code,
            message=charge.failure.message,
            retryable=charge.failure.retryable,
            decline_code=charge.failure.decline_code,
        )
    )
    next_action: dict[str, Any] | None = dict(charge.next_action) if charge.next_action else None
    return PspOutcome(
        status=charge.status,
        connector_payment_id=charge.id,
        amount_capturable=charge.amount_capturable,
        amount_received=charge.amount_received,
        failure=failure,
        next_action=next_action,
    )


class FakeWebhooks(WebhookTemplate[Notification]):
    display_name = "the fake PSP"

    def __init__(self, secret: str, tolerance: int = TOLERANCE_SECONDS) -> None:
        self._secret = secret
        self._tolerance = tolerance

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        _verify(body, headers.get(SIGNATURE_HEADER), self._secret, now, self._tolerance)

    def decode(self, body: bytes) -> Notification:
        return msgspec.json.decode(body, type=Notification)

    def to_events(
        self, decoded: Notification, headers: Mapping[str, str], now: datetime
    ) -> list[WebhookEvent]:
        charge, refund = decoded.charge, decoded.refund
        try:
            created = datetime.fromtimestamp(decoded.created, tz=UTC)
        except (OverflowError, OSError) as exc:  # no date this platform can hold
            raise ValueError("created is not a time") from exc
        if decoded.type == "charge.updated":
            # The charge states the payment's whole amount.
            return [
                WebhookEvent(
                    psp_event_id=decoded.id,
                    created=created,
                    payment_id=charge.reference,
                    connector_payment_id=charge.id,
                    outcome=_outcome(charge),
                    amount=charge.amount,
                    currency=charge.currency,
                )
            ]
        if refund is None:
            raise ValueError("a refund.updated notification without its refund")
        # A refund is a part of the payment: its amount is in `refund`, not `amount`.
        return [
            WebhookEvent(
                psp_event_id=decoded.id,
                created=created,
                payment_id=charge.reference,
                connector_payment_id=charge.id,
                refund=RefundUpdate(
                    refund_id=refund.reference,
                    connector_refund_id=refund.id,
                    amount=refund.amount,
                    succeeded=refund.succeeded,
                    failure_reason=refund.failure_reason,
                ),
                currency=charge.currency,
            )
        ]
