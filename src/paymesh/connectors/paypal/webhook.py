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

Both are read through the same typed structures (`Payment`, `Order`, `Dispute`): a
resource of the event's type with a field of another type is a malformed body (rejected), or
an answer that is not the resource (unconfirmed). The resource is decoded by the event's
type, only for the types we act on; any other is acknowledged and ignored.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

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
from paymesh.connectors.webhook_template import WebhookTemplate
from paymesh.ports.connector import RefundUpdate, WebhookEvent, WebhookRejected

__all__ = [
    "DISPUTE_OUTCOMES",
    "DISPUTE_REASONS",
    "TOLERANCE_SECONDS",
    "Dispute",
    "Order",
    "PayPalWebhooks",
    "Payment",
    "confirmed_by_capture",
    "confirmed_by_order",
    "confirmed_by_refund",
    "load_certificate",
    "verify",
]

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

_CAPTURE_EVENTS = frozenset(
    {
        "PAYMENT.CAPTURE.COMPLETED",
        "PAYMENT.CAPTURE.PENDING",
        "PAYMENT.CAPTURE.DECLINED",
        "PAYMENT.CAPTURE.DENIED",
    }
)
_AUTHORIZATION_EVENTS = frozenset({"PAYMENT.AUTHORIZATION.CREATED", "PAYMENT.AUTHORIZATION.VOIDED"})
_REFUND_EVENTS = {
    "PAYMENT.CAPTURE.REFUNDED": True,
    "PAYMENT.REFUND.FAILED": False,
    "PAYMENT.REFUND.CANCELLED": False,
}
_ORDER_EVENT = "CHECKOUT.ORDER.APPROVED"
_DISPUTE_EVENT = "CUSTOMER.DISPUTE.CREATED"
_DISPUTE_RESOLVED = "CUSTOMER.DISPUTE.RESOLVED"
#: A resolved dispute's `dispute_outcome.outcome_code`: True where the merchant keeps the
#: money (PayPal decided for the seller, the buyer withdrew, the claim was denied), False
#: where the buyer does. Any other code (a payout PayPal made itself, NONE) moves nothing
#: of the merchant's: acknowledged, ignored.
DISPUTE_OUTCOMES = {
    "RESOLVED_SELLER_FAVOUR": True,
    "CANCELED_BY_BUYER": True,
    "DENIED": True,
    "RESOLVED_BUYER_FAVOUR": False,
    "ACCEPTED": False,
}


def load_certificate(pem: bytes) -> x509.Certificate:
    certificate = x509.load_pem_x509_certificate(pem)
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise ValueError("PayPal signs webhooks with RSA; this certificate has another key")
    return certificate


def verify(
    headers: Mapping[str, str],
    body: bytes,
    certificate: x509.Certificate,
    webhook_id: str,
    now: datetime,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
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
        public_key.verify(
            base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise WebhookRejected("paypal-transmission-sig does not match the payload") from exc


# -- the fields we read, with their types ---------------------------------------------------
# omit_defaults: `msgspec.to_builtins` gives back only the fields the resource had, as the
# dicts `translate` reads the API's answers as. Amounts stay PayPal's strings until
# `from_paypal` reads them (a ValueError there is a malformed body too).


#: An id: the de-duplication key of an event, the name of a dispute. Never empty.
Id = Annotated[str, msgspec.Meta(min_length=1)]


class _Struct(msgspec.Struct, omit_defaults=True):
    pass


class Money(_Struct):
    currency_code: str | None = None
    value: str | None = None


class _RelatedIds(_Struct):
    order_id: str | None = None


class _SupplementaryData(_Struct):
    related_ids: _RelatedIds | None = None


class _ProcessorResponse(_Struct):
    response_code: str | None = None
    avs_code: str | None = None
    cvv_code: str | None = None
    payment_advice_code: str | None = None


class _StatusDetails(_Struct):
    reason: str | None = None


class Payment(_Struct):
    """A capture, an authorization or a refund."""

    id: str | None = None
    status: str | None = None
    amount: Money | None = None
    custom_id: str | None = None
    supplementary_data: _SupplementaryData | None = None
    processor_response: _ProcessorResponse | None = None
    status_details: _StatusDetails | None = None

    @property
    def order_id(self) -> str | None:
        related = self.supplementary_data.related_ids if self.supplementary_data else None
        return related.order_id if related else None


class _Payments(_Struct):
    captures: list[Payment] | None = None
    authorizations: list[Payment] | None = None


class _PurchaseUnit(_Struct):
    custom_id: str | None = None
    amount: Money | None = None
    payments: _Payments | None = None


class _Link(_Struct):
    rel: str | None = None
    href: str | None = None


class _ThreeDSecure(_Struct):
    authentication_status: str | None = None


class _AuthenticationResult(_Struct):
    liability_shift: str | None = None
    three_d_secure: _ThreeDSecure | None = None


class _Card(_Struct):
    authentication_result: _AuthenticationResult | None = None


class _PaymentSource(_Struct):
    card: _Card | None = None


class Order(_Struct):
    id: str | None = None
    status: str | None = None
    intent: str | None = None
    purchase_units: list[_PurchaseUnit] | None = None
    links: list[_Link] | None = None
    payment_source: _PaymentSource | None = None

    @property
    def first_unit(self) -> _PurchaseUnit:
        return self.purchase_units[0] if self.purchase_units else _PurchaseUnit()


class _DisputedTransaction(_Struct):
    seller_transaction_id: str | None = None
    custom: str | None = None


class _DisputeOutcome(_Struct):
    outcome_code: str | None = None


class Dispute(_Struct):
    dispute_id: Id
    dispute_amount: Money
    reason: str | None = None
    disputed_transactions: list[_DisputedTransaction] | None = None
    dispute_outcome: _DisputeOutcome | None = None


class _Event(msgspec.Struct):
    id: Id
    event_type: str
    create_time: str
    resource: msgspec.Raw  # decoded by the event's type


Resource = Payment | Order | Dispute


@dataclass(frozen=True, slots=True)
class PayPalNotice:
    """An event, and its resource decoded by its type (None: a type we do not act on)."""

    id: str
    event_type: str
    create_time: str
    resource: Resource | None


def _resource_type(event_type: str) -> type[Resource] | None:
    if (
        event_type in _CAPTURE_EVENTS
        or event_type in _AUTHORIZATION_EVENTS
        or event_type in _REFUND_EVENTS
    ):
        return Payment
    if event_type == _ORDER_EVENT:
        return Order
    if event_type in (_DISPUTE_EVENT, _DISPUTE_RESOLVED):
        return Dispute
    return None


def _money(money: Money | None) -> tuple[int | None, str | None]:
    """(amount, currency) of a PayPal amount, or Nones if there is none to read."""
    try:
        return from_paypal(msgspec.to_builtins(money) if money is not None else None)
    except ValueError:
        return None, None


class PayPalWebhooks(WebhookTemplate[PayPalNotice]):
    display_name = "PayPal"

    def __init__(
        self,
        certificate: x509.Certificate | None,
        webhook_id: str,
        tolerance: int = TOLERANCE_SECONDS,
    ) -> None:
        self._certificate = certificate
        self._webhook_id = webhook_id
        self._tolerance = tolerance

    def verify(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        if self._certificate is None:
            raise WebhookRejected("no trusted PayPal certificate is configured")
        verify(headers, body, self._certificate, self._webhook_id, now, self._tolerance)

    def decode(self, body: bytes) -> PayPalNotice:
        event = msgspec.json.decode(body, type=_Event)
        wanted = _resource_type(event.event_type)
        resource = msgspec.json.decode(event.resource, type=wanted) if wanted else None
        return PayPalNotice(event.id, event.event_type, event.create_time, resource)

    def to_events(
        self, decoded: PayPalNotice, headers: Mapping[str, str], now: datetime
    ) -> list[WebhookEvent]:
        resource, event_type = decoded.resource, decoded.event_type
        created = _created(decoded.create_time)
        # The delivery's own id, signed: a transmission seen before is a replay.
        transmission = headers.get("paypal-transmission-id")
        base = WebhookEvent(
            psp_event_id=decoded.id,
            created=created,
            payment_id=None,
            connector_payment_id=None,
            transmission_id=transmission,
        )
        if isinstance(resource, Payment):
            event = _payment_event(base, event_type, resource)
        elif isinstance(resource, Order):
            event = _order_event(base, resource)
        elif isinstance(resource, Dispute) and event_type == _DISPUTE_RESOLVED:
            event = _resolved_dispute_event(base, resource)
        elif isinstance(resource, Dispute):
            event = _dispute_event(base, resource)
        else:
            event = None  # a type we do not act on: acknowledged, ignored
        return [] if event is None else [event]


def _created(create_time: str) -> datetime:
    try:
        return datetime.fromisoformat(create_time).astimezone(UTC)
    except OSError as exc:  # a local time this platform cannot convert
        raise ValueError("create_time is not a time") from exc


def _payment_event(base: WebhookEvent, event_type: str, resource: Payment) -> WebhookEvent | None:
    order_id = resource.order_id
    # A capture, refund or dispute holds a part of the payment's money: only its currency
    # says something about the payment. An authorization or an order holds all of it.
    amount, currency = _money(resource.amount)
    wire = msgspec.to_builtins(resource)
    if event_type in _CAPTURE_EVENTS:
        return replace(
            base,
            payment_id=resource.custom_id,
            connector_payment_id=order_id,
            outcome=outcome_from_capture(wire, order_id),
            currency=currency,
        )
    if event_type in _AUTHORIZATION_EVENTS:
        return replace(
            base,
            payment_id=resource.custom_id,
            connector_payment_id=order_id,
            outcome=outcome_from_authorization(wire, order_id),
            amount=amount,
            currency=currency,
        )
    if resource.status == "PENDING":
        return None  # a refund accepted, with no verdict yet
    if resource.id is None or amount is None:
        raise ValueError("a refund without its id or amount")
    succeeded = _REFUND_EVENTS[event_type] and resource.status == "COMPLETED"
    refund = RefundUpdate(
        refund_id=resource.custom_id,  # ours, echoed back
        connector_refund_id=resource.id,
        amount=amount,
        succeeded=succeeded,
        failure_reason=None if succeeded else str(resource.status).lower(),
    )
    return replace(base, connector_payment_id=order_id, refund=refund, currency=currency)


def _order_event(base: WebhookEvent, order: Order) -> WebhookEvent:
    unit = order.first_unit
    amount, currency = _money(unit.amount)
    return replace(
        base,
        payment_id=unit.custom_id,
        connector_payment_id=order.id,
        outcome=outcome_from_order(msgspec.to_builtins(order)),
        amount=amount,
        currency=currency,
    )


def _dispute_event(base: WebhookEvent, dispute: Dispute) -> WebhookEvent:
    transactions = dispute.disputed_transactions or [_DisputedTransaction()]
    amount, currency = from_paypal(msgspec.to_builtins(dispute.dispute_amount))
    reason = DISPUTE_REASONS.get(str(dispute.reason), "general")
    # The dispute names the capture, not the order: `confirm` finds the order from it.
    return replace(
        base,
        payment_id=transactions[0].custom,
        dispute=(dispute.dispute_id, amount, reason),
        currency=currency,
        psp_object_id=transactions[0].seller_transaction_id,
    )


def _resolved_dispute_event(base: WebhookEvent, dispute: Dispute) -> WebhookEvent | None:
    outcome = dispute.dispute_outcome.outcome_code if dispute.dispute_outcome else None
    won = DISPUTE_OUTCOMES.get(str(outcome))
    if won is None:
        return None
    transactions = dispute.disputed_transactions or [_DisputedTransaction()]
    _, currency = _money(dispute.dispute_amount)
    # Tied to its order through the disputed capture, as the opening is (`confirm`).
    return replace(
        base,
        payment_id=transactions[0].custom,
        dispute_closed=(dispute.dispute_id, won),
        currency=currency,
        psp_object_id=transactions[0].seller_transaction_id,
    )


# -- what PayPal's API says about the resource, as the event to act on ---------------------

R = TypeVar("R", Payment, Order)


def _read(answer: dict[str, Any], kind: type[R]) -> R | None:
    """PayPal's answer as the resource, or None if it is not one (a field of another type)."""
    try:
        return msgspec.convert(answer, kind)
    except msgspec.ValidationError:
        return None


def _text(value: str | None) -> str | None:
    return value or None


def confirmed_by_order(event: WebhookEvent, answer: dict[str, Any]) -> WebhookEvent | None:
    """A payment event, as the order `GET /v2/checkout/orders/{id}` answers it: its state,
    our payment id, its amount and currency; None if the answer is not an order."""
    order = _read(answer, Order)
    if order is None:
        return None
    unit = order.first_unit
    amount, currency = _money(unit.amount)
    order_id = _text(order.id)
    if order_id is None or amount is None:
        return None
    try:
        outcome = outcome_from_order(msgspec.to_builtins(order))
    except ValueError:  # an amount PayPal would not write
        return None
    return replace(
        event,
        payment_id=_text(unit.custom_id),
        connector_payment_id=order_id,
        outcome=outcome,
        amount=amount,
        currency=currency,
    )


def confirmed_by_refund(event: WebhookEvent, answer: dict[str, Any]) -> WebhookEvent | None:
    """A refund event, as `GET /v2/payments/refunds/{id}` answers it: its order, and its
    verdict if it has one (a refund still PENDING there settles nothing yet)."""
    refund = _read(answer, Payment)
    if refund is None:
        return None
    order_id = _text(refund.order_id)
    amount, currency = _money(refund.amount)
    refund_id = _text(refund.id)
    if order_id is None or amount is None or refund_id is None:
        return None
    update = None
    if refund.status in ("COMPLETED", "FAILED", "CANCELLED"):
        succeeded = refund.status == "COMPLETED"
        update = RefundUpdate(
            refund_id=_text(refund.custom_id),
            connector_refund_id=refund_id,
            amount=amount,
            succeeded=succeeded,
            failure_reason=None if succeeded else refund.status.lower(),
        )
    return replace(
        event,
        payment_id=None,
        connector_payment_id=order_id,
        refund=update,
        amount=None,
        currency=currency,
    )


def confirmed_by_capture(event: WebhookEvent, answer: dict[str, Any]) -> WebhookEvent | None:
    """A dispute event, tied to its order by the disputed capture
    (`GET /v2/payments/captures/{id}`). The dispute itself is the body's word: the sandbox,
    like many integrations, has no Disputes API; its amount is only ever a part of the
    payment's, checked as such."""
    capture = _read(answer, Payment)
    if capture is None:
        return None
    order_id = _text(capture.order_id)
    _, currency = _money(capture.amount)
    if order_id is None or currency is None:
        return None
    return replace(
        event, payment_id=_text(capture.custom_id), connector_payment_id=order_id, currency=currency
    )
