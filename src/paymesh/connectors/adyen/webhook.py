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

A failed CAPTURE or CANCELLATION leaves the payment as it was: nothing to apply. Other event
codes are verified and acknowledged, then ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import msgspec

from paymesh.connectors.adyen.refusals import failure_for
from paymesh.connectors.adyen.translate import authorised
from paymesh.domain.payment import Failure, PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import RefundUpdate, WebhookEvent, WebhookRejected

__all__ = ["items", "sign", "translate", "verify"]

S = PaymentStatus
Item = dict[str, Any]

_SIGNED_FIELDS = ("pspReference", "originalReference", "merchantAccountCode",
                  "merchantReference", "value", "currency", "eventCode", "success")


def sign(item: Item, key: bytes) -> str:
    amount = item.get("amount") or {}
    fields = {**item, "value": amount.get("value"), "currency": amount.get("currency")}
    signed = ":".join("" if fields.get(name) is None else str(fields[name])
                      for name in _SIGNED_FIELDS)
    return base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha256).digest()).decode()


def items(payload: bytes) -> list[Item]:
    """The notification's items, or WebhookRejected if the body is not Adyen's."""
    try:
        body = msgspec.json.decode(payload)
        wrapped = body["notificationItems"]
        found = [entry["NotificationRequestItem"] for entry in wrapped]
    except (msgspec.DecodeError, KeyError, TypeError) as exc:
        raise WebhookRejected("the body is not an Adyen notification") from exc
    if not found or not all(_well_formed(item) for item in found):
        raise WebhookRejected("the body is not an Adyen notification")
    return found


def _well_formed(item: object) -> bool:
    if not isinstance(item, dict):
        return False
    amount = item.get("amount")
    return (isinstance(item.get("pspReference"), str) and isinstance(item.get("eventCode"), str)
            and isinstance(item.get("success"), str) and isinstance(amount, dict)
            and isinstance(amount.get("value"), int) and isinstance(amount.get("currency"), str)
            and isinstance(item.get("additionalData") or {}, dict))


def verify(payload: bytes, key: bytes) -> list[Item]:
    found = items(payload)
    for item in found:
        given = (item.get("additionalData") or {}).get("hmacSignature")
        if not isinstance(given, str) or not given:
            raise WebhookRejected("an Adyen notification item has no hmacSignature")
        if not hmac.compare_digest(sign(item, key).encode(), given.encode()):
            raise WebhookRejected("an Adyen notification item's hmacSignature does not match")
    return found


def translate(found: list[Item], now: datetime) -> list[WebhookEvent]:
    try:
        events = [_event(item, now) for item in found]
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        # Signed means Adyen sent it, not that every field has the shape we expect.
        raise WebhookRejected("the notification's fields are not Adyen's") from exc
    return [event for event in events if event is not None]


def _event(item: Item, now: datetime) -> WebhookEvent | None:
    code = item["eventCode"]
    success = item["success"] == "true"
    psp_reference = item["pspReference"]
    original = item.get("originalReference") or None
    merchant_reference = item.get("merchantReference") or None
    amount = int(item["amount"]["value"])
    currency = str(item["amount"]["currency"])
    base: dict[str, Any] = {"psp_event_id": f"{code}:{psp_reference}:{item['success']}",
                            "created": _created(item.get("eventDate"), now),
                            "currency": currency}
    if code == "AUTHORISATION":
        if success:
            # Held until the payment's own capture mode says otherwise (see the module doc).
            return WebhookEvent(**base, payment_id=merchant_reference,
                                connector_payment_id=psp_reference, amount=amount,
                                outcome=authorised(psp_reference, amount, manual=True),
                                capture_as_requested=True)
        refused = failure_for("Refused", item.get("reason"))
        failure = Failure(code=refused.code, message=refused.message, retryable=False,
                          decline_code=refused.decline_code)
        outcome = PspOutcome(status=S.FAILED, connector_payment_id=psp_reference,
                             failure=failure)
        return WebhookEvent(**base, payment_id=merchant_reference,
                            connector_payment_id=psp_reference, amount=amount, outcome=outcome)
    if code == "CAPTURE" and success:
        outcome = PspOutcome(status=S.SUCCEEDED, connector_payment_id=original,
                             amount_received=amount)
        return WebhookEvent(**base, payment_id=merchant_reference, connector_payment_id=original,
                            outcome=outcome)
    if code == "CANCELLATION" and success:
        outcome = PspOutcome(status=S.CANCELED, connector_payment_id=original)
        return WebhookEvent(**base, payment_id=merchant_reference, connector_payment_id=original,
                            outcome=outcome)
    if code in ("REFUND", "REFUND_FAILED"):
        succeeded = success and code == "REFUND"
        refund = RefundUpdate(refund_id=merchant_reference, connector_refund_id=psp_reference,
                              amount=amount, succeeded=succeeded,
                              failure_reason=None if succeeded else item.get("reason") or code)
        return WebhookEvent(**base, payment_id=None, connector_payment_id=original, refund=refund)
    if code == "CHARGEBACK":
        return WebhookEvent(**base, payment_id=merchant_reference, connector_payment_id=original,
                            dispute=(psp_reference, amount, item.get("reason") or None))
    return None


def _created(event_date: object, now: datetime) -> datetime:
    if not isinstance(event_date, str):
        return now
    try:
        created = datetime.fromisoformat(event_date)
    except ValueError:
        return now
    return created if created.tzinfo else created.replace(tzinfo=UTC)
