"""Adyen's standard notifications: verify every item's HMAC signature, then translate.

Each `NotificationRequestItem` is signed on its own: HMAC-SHA256, keyed with the hex-decoded
HMAC key, over `pspReference:originalReference:merchantAccountCode:merchantReference:value:
currency:eventCode:success` (absent fields empty), base64 in `additionalData.hmacSignature`.
A body with one item that fails is rejected whole: a forger must not slip an item in next to
a genuine one. Adyen signs no timestamp, so replays are stopped downstream, by `psp_event_id`
(`eventCode:pspReference:success`, the same on every delivery of one event).

Only those signed fields decide anything. The rest of an item (`additionalData`, `reason`,
`eventDate`) can be changed by whoever holds one genuine notification, so it may describe a
failure but never choose a state:

    AUTHORISATION ok    the payment is authorised, captured or not as we asked: the payment's
                        own capture mode decides (`capture_as_requested`), never the
                        unsigned `additionalData` (which echoes the metadata we sent, and
                        would let a replayed item turn a held authorisation into "paid")
    AUTHORISATION fail  FAILED; the unsigned `reason` only describes it, so it is never
                        retried on its word
    CAPTURE             SUCCEEDED, amount_received = the amount captured
    CANCELLATION        CANCELED
    REFUND              a refund's verdict (merchantReference = our refund id)
    REFUND_FAILED       a refund that failed after Adyen had accepted it
    CHARGEBACK          a dispute (pspReference = the dispute's)
    CHARGEBACK_REVERSED the dispute won: the funds come back (same pspReference)
    SECOND_CHARGEBACK   the dispute lost: the issuer declined the defence, final

A failed CAPTURE or CANCELLATION leaves the payment as it was: nothing to apply. Other event
codes are verified and acknowledged, then ignored.

Adyen signs fields, not bytes: verifying an item means reading its signed fields, so `verify`
decodes the body too (into the same typed items `decode` gives), and an item with a field of
another type is rejected before any signature is computed over it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

import msgspec

from paymesh.connectors.adyen.refusals import failure_for
from paymesh.connectors.adyen.translate import authorised
from paymesh.connectors.webhook_template import WebhookTemplate
from paymesh.domain.payment import Failure, PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import RefundUpdate, WebhookEvent, WebhookRejected

__all__ = ["AdyenWebhooks", "NotificationItem", "sign"]

S = PaymentStatus

_SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)


def _signature(values: Mapping[str, object], key: bytes) -> str:
    signed = ":".join(
        "" if values.get(name) is None else str(values[name]) for name in _SIGNED_FIELDS
    )
    return base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha256).digest()).decode()


def sign(item: Mapping[str, Any], key: bytes) -> str:
    """An item's hmacSignature, as Adyen computes it (for tests and tools that sign)."""
    amount = item.get("amount") or {}
    return _signature(
        {**item, "value": amount.get("value"), "currency": amount.get("currency")}, key
    )


# -- the fields we read, with their types ---------------------------------------------------


class _Amount(msgspec.Struct):
    value: int
    currency: str


class _AdditionalData(msgspec.Struct, rename="camel"):
    # The rest of additionalData is unsigned and never read.
    hmac_signature: str | None = None


class NotificationItem(msgspec.Struct, rename="camel"):
    psp_reference: Annotated[str, msgspec.Meta(min_length=1)]  # part of the event's id
    event_code: str
    success: str  # "true" or "false", as Adyen writes it
    amount: _Amount
    original_reference: str | None = None
    merchant_account_code: str | None = None
    merchant_reference: str | None = None
    reason: str | None = None  # unsigned
    event_date: str | None = None  # unsigned
    additional_data: _AdditionalData | None = None

    def signature(self, key: bytes) -> str:
        return _signature(
            {
                "pspReference": self.psp_reference,
                "originalReference": self.original_reference,
                "merchantAccountCode": self.merchant_account_code,
                "merchantReference": self.merchant_reference,
                "value": self.amount.value,
                "currency": self.amount.currency,
                "eventCode": self.event_code,
                "success": self.success,
            },
            key,
        )


class _Entry(msgspec.Struct, rename="pascal"):
    notification_request_item: NotificationItem


class _Notification(msgspec.Struct, rename="camel"):
    notification_items: list[_Entry]


def _items(body: bytes) -> list[NotificationItem]:
    items = [
        entry.notification_request_item
        for entry in msgspec.json.decode(body, type=_Notification).notification_items
    ]
    if not items:
        raise WebhookRejected("an Adyen notification with no items")
    return items


class AdyenWebhooks(WebhookTemplate[list[NotificationItem]]):
    display_name = "Adyen"

    def __init__(self, key: bytes) -> None:
        self._key = key

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        """Every item's signature: a body with one item that fails is rejected whole, so a
        forger cannot slip an item in next to a genuine one."""
        try:
            items = _items(body)
        except msgspec.DecodeError as exc:
            raise WebhookRejected(f"not a webhook Adyen sends: {exc}") from exc
        for item in items:
            given = item.additional_data.hmac_signature if item.additional_data else None
            if not given:
                raise WebhookRejected("an Adyen notification item has no hmacSignature")
            if not hmac.compare_digest(item.signature(self._key).encode(), given.encode()):
                raise WebhookRejected("an Adyen notification item's hmacSignature does not match")

    def decode(self, body: bytes) -> list[NotificationItem]:
        return _items(body)

    def to_events(
        self, decoded: list[NotificationItem], headers: Mapping[str, str], now: datetime
    ) -> list[WebhookEvent]:
        events = [_event(item, now) for item in decoded]
        return [event for event in events if event is not None]


#: The dispute notifications that decide it: won or lost.
_VERDICTS = {"CHARGEBACK_REVERSED": True, "SECOND_CHARGEBACK": False}


def _event(item: NotificationItem, now: datetime) -> WebhookEvent | None:
    code, ref = item.event_code, item.psp_reference
    success = item.success == "true"
    original = item.original_reference or None
    merchant_reference = item.merchant_reference or None
    amount, currency = item.amount.value, item.amount.currency
    # What every event of this item says: which notification, when, in which currency.
    about = partial(
        WebhookEvent,
        psp_event_id=f"{code}:{ref}:{item.success}",
        created=_created(item.event_date, now),
        currency=currency,
    )
    if code == "AUTHORISATION":
        if success:
            # Held until the payment's own capture mode says otherwise (see the module doc).
            return about(
                payment_id=merchant_reference,
                connector_payment_id=ref,
                amount=amount,
                outcome=authorised(ref, amount, manual=True),
                capture_as_requested=True,
            )
        refused = failure_for("Refused", item.reason)
        failure = Failure(
            code=refused.code,
            message=refused.message,
            retryable=False,
            decline_code=refused.decline_code,
        )
        return about(
            payment_id=merchant_reference,
            connector_payment_id=ref,
            amount=amount,
            outcome=PspOutcome(status=S.FAILED, connector_payment_id=ref, failure=failure),
        )
    if code == "CAPTURE" and success:
        outcome = PspOutcome(
            status=S.SUCCEEDED, connector_payment_id=original, amount_received=amount
        )
        return about(
            payment_id=merchant_reference,
            connector_payment_id=original,
            outcome=outcome,
        )
    if code == "CANCELLATION" and success:
        outcome = PspOutcome(status=S.CANCELED, connector_payment_id=original)
        return about(
            payment_id=merchant_reference,
            connector_payment_id=original,
            outcome=outcome,
        )
    if code in ("REFUND", "REFUND_FAILED"):
        succeeded = success and code == "REFUND"
        refund = RefundUpdate(
            refund_id=merchant_reference,
            connector_refund_id=ref,
            amount=amount,
            succeeded=succeeded,
            failure_reason=None if succeeded else item.reason or code,
        )
        return about(
            payment_id=None,
            connector_payment_id=original,
            refund=refund,
        )
    if code in _VERDICTS and success:
        # Adyen's docs call CHARGEBACK_REVERSED "not final": an issuer may still present a
        # second chargeback. The funds are back when it is sent, and that is what we book.
        return about(
            payment_id=merchant_reference,
            connector_payment_id=original,
            dispute_closed=(ref, _VERDICTS[code]),
        )
    if code == "CHARGEBACK":
        return about(
            payment_id=merchant_reference,
            connector_payment_id=original,
            dispute=(ref, amount, item.reason or None),
        )
    return None


def _created(event_date: str | None, now: datetime) -> datetime:
    # Unsigned: a date that does not read as one is only a missing date.
    if event_date is None:
        return now
    try:
        created = datetime.fromisoformat(event_date)
    except ValueError:
        return now
    return created if created.tzinfo else created.replace(tzinfo=UTC)
