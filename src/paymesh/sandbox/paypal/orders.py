"""Orders v2: create an order, show it, and capture or authorize it once approved.

An order with a vaulted card (`payment_source.card.vault_id`, the sandbox's
test tokens such as `pm_card_visa`) is processed in the create call, as
PayPal's advanced card processing does, unless the card needs 3-D Secure
(`PAYER_ACTION_REQUIRED`, a `payer-action` link to the sandbox's 3DS page).
An order with `payment_source.paypal` waits for the buyer at the `payer-action`
link; one with no payment source is `CREATED` with an `approve` link. Once the
payer has acted the order is `APPROVED`, and the merchant captures or
authorizes it.

PayPal requires a `PayPal-Request-Id` on a create that processes a payment at
once (a card); without one it answers 400 PAYPAL_REQUEST_ID_REQUIRED.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from paymesh.sandbox.cards import card_for
from paymesh.sandbox.paypal.amounts import parse_money
from paymesh.sandbox.paypal.calls import Call
from paymesh.sandbox.paypal.charging import complete_order
from paymesh.sandbox.paypal.errors import PayPalError
from paymesh.sandbox.paypal.fields import mapping, text, url
from paymesh.sandbox.paypal.ids import resource_id
from paymesh.sandbox.paypal.objects import Order
from paymesh.sandbox.paypal.state import Answer, Brief
from paymesh.sandbox.paypal.wallets import wallet_for

__all__ = ["authorize", "capture", "create", "retrieve"]

_INTENTS = ("CAPTURE", "AUTHORIZE")
_UNIT = "/purchase_units/@reference_id=='default'"


def create(call: Call) -> Answer:
    body = call.body
    intent = body.get("intent")
    if intent is None:
        raise PayPalError.missing("/intent")
    if intent not in _INTENTS:
        raise PayPalError.invalid_value(
            "/intent", intent, "The value of a field is invalid: CAPTURE or AUTHORIZE."
        )
    units = body.get("purchase_units")
    if not isinstance(units, list) or not units:
        raise PayPalError.missing("/purchase_units")
    if len(units) > 1:
        raise PayPalError.invalid_request(
            "INVALID_ARRAY_MAX_ITEMS",
            "The sandbox takes one purchase unit per order.",
            field="/purchase_units",
            value=len(units),
        )
    unit = units[0]
    if not isinstance(unit, dict):
        raise PayPalError.missing(_UNIT)
    order = Order(
        id=resource_id(),
        intent=intent,
        status="CREATED",
        amount=parse_money(unit.get("amount"), f"{_UNIT}/amount"),
        reference_id=text(unit, "reference_id", f"{_UNIT}/reference_id", 256) or "default",
        custom_id=text(unit, "custom_id", f"{_UNIT}/custom_id", 255),
        invoice_id=text(unit, "invoice_id", f"{_UNIT}/invoice_id", 127),
        description=text(unit, "description", f"{_UNIT}/description", 127),
        created=datetime.now(UTC),
    )
    source = mapping(body, "payment_source", "/payment_source")
    process_now = _apply_payment_source(call, order, source)
    call.merchant.orders[order.id] = order
    call.merchants.by_order[order.id] = call.merchant
    if process_now:
        complete_order(call, order)
    return Answer(201, order, Brief.ORDER)


def _apply_payment_source(call: Call, order: Order, source: dict[str, Any] | None) -> bool:
    """Attach the payment source; True if the order is to be processed at once."""
    if source is None:
        return False
    kinds = sorted(source)
    if kinds not in (["card"], ["paypal"]):
        raise PayPalError.invalid_value(
            "/payment_source",
            ",".join(kinds),
            "The sandbox takes one payment source: card or paypal.",
        )
    if "paypal" in source:
        wallet_source = mapping(source, "paypal", "/payment_source/paypal") or {}
        _experience(order, wallet_source, "/payment_source/paypal")
        order.wallet = wallet_for(
            text(wallet_source, "email_address", "/payment_source/paypal/email_address", 254)
        )
        order.status = "PAYER_ACTION_REQUIRED"
        return False
    card_source = mapping(source, "card", "/payment_source/card") or {}
    vault_id = text(card_source, "vault_id", "/payment_source/card/vault_id", 255, required=True)
    assert vault_id is not None
    if call.request_id is None:
        raise PayPalError.invalid_request(
            "PAYPAL_REQUEST_ID_REQUIRED",
            "A PayPal-Request-Id is required if you are trying to process payment for an Order. "
            "Please specify a PayPal-Request-Id or Create the Order without a 'payment_source' "
            "specified.",
        )
    card = card_for(vault_id)
    if card is None:
        raise PayPalError.unprocessable(
            "TOKEN_ID_NOT_FOUND",
            "Specified token was not found. Verify the token and try the request again.",
            field="/payment_source/card/vault_id",
        )
    order.card = card
    _experience(order, card_source, "/payment_source/card")
    attributes = mapping(card_source, "attributes", "/payment_source/card/attributes") or {}
    verification = (
        mapping(attributes, "verification", "/payment_source/card/attributes/verification") or {}
    )
    always = verification.get("method") == "SCA_ALWAYS"
    if card.requires_3ds or always:
        order.status = "PAYER_ACTION_REQUIRED"
        return False
    return True


def _experience(order: Order, source: dict[str, Any], field: str) -> None:
    context = mapping(source, "experience_context", f"{field}/experience_context") or {}
    order.return_url = url(context, "return_url", f"{field}/experience_context/return_url", 4000)
    order.cancel_url = url(context, "cancel_url", f"{field}/experience_context/cancel_url", 4000)


def retrieve(call: Call) -> Answer:
    return Answer(200, call.merchant.order(call.path["id"]))


def capture(call: Call) -> Answer:
    return _complete(
        call,
        "CAPTURE",
        "ORDER_ALREADY_CAPTURED",
        "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
    )


def authorize(call: Call) -> Answer:
    return _complete(
        call,
        "AUTHORIZE",
        "ORDER_ALREADY_AUTHORIZED",
        "Order already authorized.If 'intent=AUTHORIZE' only one authorization per "
        "order is allowed.",
    )


def _complete(call: Call, intent: str, done_issue: str, done_description: str) -> Answer:
    order = call.merchant.order(call.path["id"])
    if order.intent != intent:
        action = "authorize" if order.intent == "AUTHORIZE" else "capture"
        raise PayPalError.unprocessable(
            "ACTION_DOES_NOT_MATCH_INTENT",
            f"Order was created with an intent to '{order.intent}'. Please use "
            f"v2/checkout/orders/order_id/{action} to complete the transaction or alternately "
            f"create an order with an intent of '{intent}'.",
        )
    if order.status == "COMPLETED":
        raise PayPalError.unprocessable(done_issue, done_description)
    if order.status != "APPROVED":
        raise PayPalError.unprocessable(
            "ORDER_NOT_APPROVED",
            "Payer has not yet approved the Order for payment. Please redirect the payer to the "
            "'rel':'approve' url returned as part of the HATEOAS links within the Create Order "
            "call or provide a valid payment_source in the request.",
        )
    complete_order(call, order)
    return Answer(201, order)
