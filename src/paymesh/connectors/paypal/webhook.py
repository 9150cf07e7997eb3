"""PayPal webhooks: verify the transmission signature offline, then translate.

PayPal signs `<transmission id>|<transmission time>|<webhook id>|<CRC32 of the raw body>`
(the CRC as an unsigned decimal) with RSA-SHA256, PKCS#1 v1.5, and names the
certificate in `paypal-cert-url`. We never fetch that URL: whoever forged the
request would choose what it serves. The signature is checked against the
certificate we were configured to trust, so a body signed with any other key
fails, whatever certificate the header points at. The webhook id in the
message binds a transmission to our endpoint, and the transmission time must
be within the tolerance, which stops a captured webhook being replayed later
(PayPal re-signs every retry, so a late retry is still fresh).

The event `id` (`WH-...`) is the same on every delivery of one event: it is
our de-duplication key. The `paypal-transmission-id` is new on every delivery:
one seen before is a replay of a captured request, and changes nothing.

A verified body is still only PayPal's word at the moment it was sent, and
PayPal signs a hash of the body with our webhook id, not a statement that the
resource is ours: so nothing is acted on as the body says it. The connector's
`confirm` asks PayPal's API for the resource (the order, the refund, the
disputed capture) and `confirmed_by_*` below rebuild the event from what the
API answers.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from paymesh.connectors.paypal.amounts import from_paypal
from paymesh.connectors.paypal.translate import (
    outcome_from_authorization,
    outcome_from_capture,
    outcome_from_order,
)
from paymesh.ports.connector import RefundUpdate, WebhookEvent, WebhookRejected

__all__ = ["DISPUTE_REASONS", "TOLERANCE_SECONDS", "confirmed_by_capture", "confirmed_by_order",
           "confirmed_by_refund", "load_certificate", "translate", "verify"]

TOLERANCE_SECONDS = 300
AUTH_ALGO = "SHA256withRSA"

#: PayPal's dispute reasons in the vocabulary our payments use (Stripe's).
DISPUTE_REASONS = {
    "UNAUTHORISED": "fraudulent",
    "MERCHANDISE_OR_SERVICE_NOT_RECEIVED": "product_not_received",
    "MERCHANDISE_OR_SERVICE_NOT_AS_DESCRIBED": "product_unacceptable",
    "DUPLICATE_TRANSACTION": "duplicate",
    "CREDIT_NOT_PROCESSED": "credit_not_processed",
    "CANCELED_RECURRING_BILLING": "subscription_canceled",
}

_CAPTURE_EVENTS = frozenset({"PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.PENDING",
                             "PAYMENT.CAPTURE.DECLINED", "PAYMENT.CAPTURE.DENIED"})
_AUTHORIZATION_EVENTS = frozenset({"PAYMENT.AUTHORIZATION.CREATED",
                                   "PAYMENT.AUTHORIZATION.VOIDED"})
_REFUND_EVENTS = {"PAYMENT.CAPTURE.REFUNDED": True, "PAYMENT.REFUND.FAILED": False,
                  "PAYMENT.REFUND.CANCELLED": False}


def load_certificate(pem: bytes) -> x509.Certificate:
    certificate = x509.load_pem_x509_certificate(pem)
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise ValueError("PayPal signs webhooks with RSA; this certificate has another key")
    return certificate


def verify(headers: dict[str, str], body: bytes, certificate: x509.Certificate,
           webhook_id: str, now: datetime, tolerance: int = TOLERANCE_SECONDS) -> None:
    h = {k.lower(): v for k, v in headers.items()}
    transmission_id = h.get("paypal-transmission-id")
    sent = h.get("paypal-transmission-time")
    signature = h.get("paypal-transmission-sig")
    if not (transmission_id and sent and signature and h.get("paypal-cert-url")):
        raise WebhookRejected("missing PayPal transmission headers")
    if h.get("paypal-auth-algo") != AUTH_ALGO:
        raise WebhookRejected(f"unsupported paypal-auth-algo {h.get('paypal-auth-algo')!r}")
    try:
        sent_at = datetime.fromisoformat(sent)
    except ValueError as exc:
        raise WebhookRejected("malformed paypal-transmission-time") from exc
    if sent_at.tzinfo is None:
        raise WebhookRejected("paypal-transmission-time has no time zone")
    if abs((now - sent_at).total_seconds()) > tolerance:
        raise WebhookRejected("paypal-transmission-time is outside the tolerance")
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise WebhookRejected("the trusted PayPal certificate is not valid now")
    crc = zlib.crc32(body) & 0xFFFFFFFF
    message = f"{transmission_id}|{sent}|{webhook_id}|{crc}".encode()
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)  # checked by load_certificate
    try:
        public_key.verify(base64.b64decode(signature, validate=True), message,
                          padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise WebhookRejected("paypal-transmission-sig does not match the payload") from exc


def translate(payload: bytes) -> list[WebhookEvent]:
    try:
        event = msgspec.json.decode(payload)
        event_id, event_type = event["id"], event["event_type"]
        resource: dict[str, Any] = event["resource"]
        created = datetime.fromisoformat(event["create_time"]).astimezone(UTC)
        if not isinstance(event_id, str) or not isinstance(resource, dict):
            raise TypeError("id or resource")
        return _translate(event_id, str(event_type), resource, created)
    except (msgspec.DecodeError, KeyError, TypeError, ValueError, IndexError,
            OverflowError) as exc:
        raise WebhookRejected("the body is not a PayPal webhook event") from exc


def _money(obj: Any) -> tuple[int | None, str | None]:
    """(amount, currency) of a PayPal resource's `amount`, or Nones if it has none."""
    try:
        return from_paypal(obj.get("amount") if isinstance(obj, dict) else None)
    except ValueError:
        return None, None


def _translate(event_id: str, event_type: str, resource: dict[str, Any],
               created: datetime) -> list[WebhookEvent]:
    related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    order_id = related.get("order_id")
    # A capture, refund or dispute holds a part of the payment's money: only its currency
    # says something about the payment. An authorization or an order holds all of it.
    _, currency = _money(resource)
    if event_type in _CAPTURE_EVENTS:
        return [WebhookEvent(psp_event_id=event_id, created=created,
                             payment_id=resource.get("custom_id"), connector_payment_id=order_id,
                             outcome=outcome_from_capture(resource, order_id),
                             currency=currency)]
    if event_type in _AUTHORIZATION_EVENTS:
        amount, currency = _money(resource)
        return [WebhookEvent(psp_event_id=event_id, created=created,
                             payment_id=resource.get("custom_id"), connector_payment_id=order_id,
                             outcome=outcome_from_authorization(resource, order_id),
                             amount=amount, currency=currency)]
    if event_type in _REFUND_EVENTS:
        status = resource.get("status")
        if status == "PENDING":
            return []  # accepted, no verdict yet
        succeeded = _REFUND_EVENTS[event_type] and status == "COMPLETED"
        amount, _ = from_paypal(resource["amount"])
        refund = RefundUpdate(refund_id=resource.get("custom_id"),  # ours, echoed back
                              connector_refund_id=resource["id"], amount=amount,
                              succeeded=succeeded,
                              failure_reason=None if succeeded else str(status).lower())
        return [WebhookEvent(psp_event_id=event_id, created=created, payment_id=None,
                             connector_payment_id=order_id, refund=refund, currency=currency)]
    if event_type == "CHECKOUT.ORDER.APPROVED":
        units = resource.get("purchase_units") or [{}]
        amount, currency = _money(units[0])
        return [WebhookEvent(psp_event_id=event_id, created=created,
                             payment_id=units[0].get("custom_id"),
                             connector_payment_id=resource.get("id"),
                             outcome=outcome_from_order(resource),
                             amount=amount, currency=currency)]
    if event_type == "CUSTOMER.DISPUTE.CREATED":
        transactions = resource.get("disputed_transactions") or [{}]
        amount, currency = from_paypal(resource["dispute_amount"])
        reason = DISPUTE_REASONS.get(str(resource.get("reason")), "general")
        # The dispute names the capture, not the order: `confirm` finds the order from it.
        return [WebhookEvent(psp_event_id=event_id, created=created,
                             payment_id=transactions[0].get("custom"),
                             connector_payment_id=None,
                             dispute=(str(resource["dispute_id"]), amount, reason),
                             currency=currency,
                             psp_object_id=transactions[0].get("seller_transaction_id"))]
    return []  # a type we do not act on: acknowledged, ignored


# -- what PayPal's API says about the resource, as the event to act on ---------------------


def _first_unit(order: dict[str, Any]) -> dict[str, Any]:
    units = order.get("purchase_units")
    unit = units[0] if isinstance(units, list) and units else None
    return unit if isinstance(unit, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _order_of(resource: dict[str, Any]) -> str | None:
    related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    return _text(related.get("order_id")) if isinstance(related, dict) else None


def confirmed_by_order(event: WebhookEvent, order: dict[str, Any]) -> WebhookEvent | None:
    """A payment event, as the order `GET /v2/checkout/orders/{id}` answers it: its state,
    our payment id, its amount and currency; None if the answer is not an order."""
    unit = _first_unit(order)
    amount, currency = _money(unit)
    order_id = _text(order.get("id"))
    if order_id is None or amount is None:
        return None
    try:
        outcome = outcome_from_order(order)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return None
    return replace(event, payment_id=_text(unit.get("custom_id")), connector_payment_id=order_id,
                   outcome=outcome, amount=amount, currency=currency)


def confirmed_by_refund(event: WebhookEvent, refund: dict[str, Any]) -> WebhookEvent | None:
    """A refund event, as `GET /v2/payments/refunds/{id}` answers it: its order, and its
    verdict if it has one (a refund still PENDING there settles nothing yet)."""
    order_id = _order_of(refund)
    amount, currency = _money(refund)
    refund_id = _text(refund.get("id"))
    if order_id is None or amount is None or refund_id is None:
        return None
    status = refund.get("status")
    update = None
    if status in ("COMPLETED", "FAILED", "CANCELLED"):
        succeeded = status == "COMPLETED"
        update = RefundUpdate(refund_id=_text(refund.get("custom_id")),
                              connector_refund_id=refund_id, amount=amount, succeeded=succeeded,
                              failure_reason=None if succeeded else str(status).lower())
    return replace(event, payment_id=None, connector_payment_id=order_id, refund=update,
                   amount=None, currency=currency)


def confirmed_by_capture(event: WebhookEvent, capture: dict[str, Any]) -> WebhookEvent | None:
    """A dispute event, tied to its order by the disputed capture
    (`GET /v2/payments/captures/{id}`). The dispute itself is the body's word: the sandbox,
    like many integrations, has no Disputes API; its amount is only ever a part of the
    payment's, checked as such."""
    order_id = _order_of(capture)
    _, currency = _money(capture)
    if order_id is None or currency is None:
        return None
    return replace(event, payment_id=_text(capture.get("custom_id")),
                   connector_payment_id=order_id, currency=currency)
