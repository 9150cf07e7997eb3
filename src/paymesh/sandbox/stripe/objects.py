"""Stripe API objects, field for field as the API (version 2024-06-20) returns them.

They are msgspec Structs: the sandbox mutates them in place as a PaymentIntent
moves through its states, and `msgspec.json.encode` writes them straight to
the wire without an intermediate dict, which keeps the hot path cheap. Fields
this sandbox never fills are still present (as null), because clients and
typed SDKs expect Stripe's full shape.
"""

from __future__ import annotations

from typing import Any

import msgspec

from paymesh.sandbox.cards import TestCard

__all__ = [
    "API_VERSION",
    "Charge",
    "Dispute",
    "Event",
    "EventData",
    "EventRequest",
    "LastPaymentError",
    "ListPage",
    "PaymentIntent",
    "Refund",
    "card_payment_method",
]

API_VERSION = "2024-06-20"


class LastPaymentError(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Stripe's error object; absent facts are left out, as Stripe leaves them out."""

    type: str
    message: str
    code: str | None = None
    decline_code: str | None = None
    doc_url: str | None = None
    param: str | None = None
    charge: str | None = None
    payment_method: dict[str, Any] | None = None


class PaymentIntent(msgspec.Struct, kw_only=True):
    id: str
    object: str = "payment_intent"
    amount: int
    amount_capturable: int = 0
    amount_received: int = 0
    application: None = None
    application_fee_amount: int | None = None
    automatic_payment_methods: dict[str, Any] | None = None
    canceled_at: int | None = None
    cancellation_reason: str | None = None
    capture_method: str
    client_secret: str
    confirmation_method: str
    created: int
    currency: str
    customer: str | None = None
    description: str | None = None
    invoice: None = None
    last_payment_error: LastPaymentError | None = None
    latest_charge: str | None = None
    livemode: bool = False
    metadata: dict[str, str]
    next_action: dict[str, Any] | None = None
    on_behalf_of: None = None
    payment_method: str | None = None
    payment_method_options: dict[str, Any]
    payment_method_types: list[str]
    processing: None = None
    receipt_email: str | None = None
    review: None = None
    setup_future_usage: str | None = None
    shipping: dict[str, Any] | None = None
    source: None = None
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None
    status: str
    transfer_data: None = None
    transfer_group: None = None


class Charge(msgspec.Struct, kw_only=True):
    id: str
    object: str = "charge"
    amount: int
    amount_captured: int = 0
    # Includes an uncaptured remainder released by a partial capture, as Stripe counts it.
    amount_refunded: int = 0
    balance_transaction: str | None = None
    billing_details: dict[str, Any]
    calculated_statement_descriptor: str | None = None
    captured: bool = False
    created: int
    currency: str
    customer: str | None = None
    description: str | None = None
    disputed: bool = False
    failure_code: str | None = None
    failure_message: str | None = None
    fraud_details: dict[str, Any]
    livemode: bool = False
    metadata: dict[str, str]
    outcome: dict[str, Any]
    paid: bool
    payment_intent: str
    payment_method: str
    payment_method_details: dict[str, Any]
    receipt_url: str | None = None
    refunded: bool = False
    status: str


class Refund(msgspec.Struct, kw_only=True):
    id: str
    object: str = "refund"
    amount: int
    balance_transaction: str | None = None
    charge: str
    created: int
    currency: str
    metadata: dict[str, str]
    payment_intent: str | None
    reason: str | None = None
    receipt_number: None = None
    source_transfer_reversal: None = None
    status: str = "succeeded"
    transfer_reversal: None = None


class Dispute(msgspec.Struct, kw_only=True):
    id: str
    object: str = "dispute"
    amount: int
    balance_transactions: list[Any]
    charge: str
    created: int
    currency: str
    evidence_details: dict[str, Any]
    is_charge_refundable: bool = False
    livemode: bool = False
    metadata: dict[str, str]
    payment_intent: str | None
    reason: str = "fraudulent"
    status: str = "needs_response"


class EventRequest(msgspec.Struct):
    """The API request that caused an event; both null for a customer's action (3DS)."""

    id: str | None
    idempotency_key: str | None


class EventData(msgspec.Struct):
    object: Any


class Event(msgspec.Struct, kw_only=True):
    id: str
    object: str = "event"
    api_version: str = API_VERSION
    created: int
    data: EventData
    livemode: bool = False
    pending_webhooks: int
    request: EventRequest
    type: str


class ListPage(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[Any]
    has_more: bool
    url: str


def card_payment_method(card: TestCard, created: int) -> dict[str, Any]:
    """The PaymentMethod a test token stands for (its id is the token itself)."""
    return {
        "id": card.token,
        "object": "payment_method",
        "billing_details": _EMPTY_BILLING,
        "card": card_details(card),
        "created": created,
        "customer": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def card_details(card: TestCard) -> dict[str, Any]:
    return {
        "brand": card.brand,
        "country": card.country,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "fingerprint": card.fingerprint,
        "funding": card.funding,
        "last4": card.last4,
    }


_EMPTY_BILLING: dict[str, Any] = {
    "address": {
        "city": None,
        "country": None,
        "line1": None,
        "line2": None,
        "postal_code": None,
        "state": None,
    },
    "email": None,
    "name": None,
    "phone": None,
}


def empty_billing_details() -> dict[str, Any]:
    return _EMPTY_BILLING
