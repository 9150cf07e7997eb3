"""Adyen's standard notification webhooks, signed as Adyen signs them.

Each notification is `{"live": "false", "notificationItems": [{"NotificationRequestItem":
{...}}]}` with one item, as Adyen sends them today. The item's `additionalData.hmacSignature`
is HMAC-SHA256, keyed with the hex-decoded HMAC key, over

    pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success

(an absent field is an empty string), base64-encoded: what the official libraries check.

    AUTHORISATION  pspReference = the payment; success false for a refusal, with `reason`
    CAPTURE        pspReference = the capture, originalReference = the payment
    CANCELLATION   pspReference = the cancel, originalReference = the payment
    REFUND         pspReference = the refund, originalReference = the payment,
                   merchantReference = the refund's own reference
    CHARGEBACK     pspReference = the dispute, originalReference = the payment

The payment's `metadata` comes back in the AUTHORISATION item's additionalData as
`metadata.<key>`, as Adyen returns it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from paymesh.sandbox.adyen.ledger import SandboxPayment, new_psp_reference

__all__ = ["Item", "Notifier", "authorisation", "chargeback", "hmac_signature", "modification"]

Item = dict[str, Any]

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
_USER_AGENT = "Adyen HttpClient 1.0"


def hmac_signature(item: Mapping[str, Any], hex_key: str) -> str:
    amount = item.get("amount") or {}
    values = {**item, "value": amount.get("value"), "currency": amount.get("currency")}
    signed = ":".join(
        "" if values.get(name) is None else str(values[name]) for name in _SIGNED_FIELDS
    )
    digest = hmac.new(bytes.fromhex(hex_key), signed.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _item(
    event_code: str,
    psp_reference: str,
    payment: SandboxPayment,
    value: int,
    merchant_reference: str,
    success: bool,
    **extra: Any,
) -> Item:
    item: Item = {
        "additionalData": {},
        "amount": {"currency": payment.currency, "value": value},
        "eventCode": event_code,
        "eventDate": datetime.now(UTC).isoformat(timespec="seconds"),
        "merchantAccountCode": payment.merchant_account,
        "merchantReference": merchant_reference,
        "paymentMethod": payment.brand,
        "pspReference": psp_reference,
        "success": "true" if success else "false",
    }
    item.update({k: v for k, v in extra.items() if v is not None})
    return item


def authorisation(payment: SandboxPayment) -> Item:
    success = payment.authorised
    item = _item(
        "AUTHORISATION",
        payment.psp_reference,
        payment,
        payment.value,
        payment.reference,
        success,
        operations=["CANCEL", "CAPTURE", "REFUND"] if success else None,
        reason=payment.refusal.reason if payment.refusal else None,
    )
    additional = item["additionalData"]
    additional.update({f"metadata.{k}": v for k, v in payment.metadata.items()})
    if payment.refusal is not None and payment.refusal.raw:
        additional["refusalReasonRaw"] = payment.refusal.raw
    return item


def modification(
    event_code: str,
    payment: SandboxPayment,
    psp_reference: str,
    value: int,
    merchant_reference: str | None,
) -> Item:
    return _item(
        event_code,
        psp_reference,
        payment,
        value,
        merchant_reference or payment.reference,
        True,
        originalReference=payment.psp_reference,
    )


def chargeback(payment: SandboxPayment) -> Item:
    item = _item(
        "CHARGEBACK",
        new_psp_reference(),
        payment,
        payment.amount_captured,
        payment.reference,
        True,
        originalReference=payment.psp_reference,
        reason="Other Fraud-Card Absent Environment",
    )
    item["additionalData"].update(
        {
            "chargebackReasonCode": "10.4",
            "chargebackSchemeCode": "visa",
            "disputeStatus": "Undefended",
            "defendable": "true",
        }
    )
    return item


class Destination(Protocol):
    """Where notifications go and the key that signs them, read at each send."""

    webhook_url: str | None
    hmac_key: str


class Sender(Protocol):
    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> None: ...


class Notifier:
    def __init__(self, destination: Destination, sender: Sender) -> None:
        self._destination = destination
        self._sender = sender

    def send(self, items: list[Item]) -> None:
        url = self._destination.webhook_url
        if not url:
            return
        for item in items:
            item["additionalData"]["hmacSignature"] = hmac_signature(
                item, self._destination.hmac_key
            )
            body = msgspec.json.encode(
                {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
            )
            self._sender.send(
                url, body, {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
            )
