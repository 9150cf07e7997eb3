"""`/v1/payment_intents/{id}/confirm`, `/capture` and `/cancel`: moving a PaymentIntent on.

Each refuses, with Stripe's `payment_intent_unexpected_state`, a PaymentIntent
whose status does not allow the step, and otherwise hands the card's outcome
to `charging`.
"""

from __future__ import annotations

from paymesh.sandbox.stripe.calls import Call, Execute, now
from paymesh.sandbox.stripe.charging import (
    CAPTURE_METHODS,
    capture_charge,
    card_for_token,
    confirm_with_card,
)
from paymesh.sandbox.stripe.errors import StripeError
from paymesh.sandbox.stripe.objects import PaymentIntent
from paymesh.sandbox.stripe.params import Params, merge_metadata
from paymesh.sandbox.stripe.payment_intents import PASSIVE_PARAMS

__all__ = ["cancel", "capture", "confirm"]

_CANCELLATION_REASONS = ("abandoned", "duplicate", "fraudulent", "requested_by_customer")
_CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_CONFIRM = frozenset({"payment_method", "return_url", "capture_method", *PASSIVE_PARAMS})


def confirm(params: Params) -> Execute:
    params.only(_CONFIRM)
    intent_id = params.path_id()
    token = params.string("payment_method")
    return_url = params.url("return_url")
    off_session = params.off_session()
    capture_method = params.choice("capture_method", CAPTURE_METHODS)

    def execute(call: Call) -> PaymentIntent:
        intent = call.account.payment_intents.require(intent_id, "intent")
        if intent.status == "succeeded":
            raise StripeError.unexpected_state(
                "You cannot confirm this PaymentIntent because it has already succeeded "
                "after being previously confirmed."
            )
        if intent.status not in _CONFIRMABLE:
            raise StripeError.unexpected_state(
                f"You cannot confirm this PaymentIntent because it has a status of "
                f"{intent.status}. Only a PaymentIntent with one of the following statuses may "
                f"be confirmed: {', '.join(_CONFIRMABLE)}."
            )
        chosen = token or intent.payment_method
        if chosen is None:
            raise StripeError.unexpected_state(
                "You cannot confirm this PaymentIntent because it's missing a payment method. "
                "You can either update the PaymentIntent with a payment method and then "
                "confirm it again, or confirm it again directly with a payment method."
            )
        card = card_for_token(chosen)
        intent.capture_method = capture_method or intent.capture_method
        confirm_with_card(call, intent, card, return_url, off_session=off_session)
        return intent

    return execute


def capture(params: Params) -> Execute:
    params.only(
        (
            "amount_to_capture",
            "metadata",
            "statement_descriptor",
            "statement_descriptor_suffix",
            "final_capture",
        )
    )
    intent_id = params.path_id()
    amount = params.integer("amount_to_capture", minimum=1)
    metadata = params.metadata()

    def execute(call: Call) -> PaymentIntent:
        intent = call.account.payment_intents.require(intent_id, "intent")
        if intent.status != "requires_capture":
            raise StripeError.unexpected_state(
                f"This PaymentIntent could not be captured because it has a status of "
                f"{intent.status}. Only a PaymentIntent with one of the following statuses may "
                "be captured: requires_capture."
            )
        to_capture = intent.amount_capturable if amount is None else amount
        if to_capture > intent.amount_capturable:
            raise StripeError.invalid_request(
                f"The amount to capture ({to_capture}) must be less than or equal to the "
                f"PaymentIntent's amount_capturable ({intent.amount_capturable}).",
                code="amount_too_large",
                param="amount_to_capture",
            )
        charge = call.account.charges.require(intent.latest_charge or "", "charge")
        intent.metadata = merge_metadata(intent.metadata, metadata)
        capture_charge(call, intent, charge, to_capture)
        return intent

    return execute


def cancel(params: Params) -> Execute:
    params.only(("cancellation_reason",))
    intent_id = params.path_id()
    reason = params.choice("cancellation_reason", _CANCELLATION_REASONS)

    def execute(call: Call) -> PaymentIntent:
        intent = call.account.payment_intents.require(intent_id, "intent")
        if intent.status not in _CANCELABLE:
            raise StripeError.unexpected_state(
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{intent.status}. Only a PaymentIntent with one of the following statuses may "
                f"be canceled: {', '.join(_CANCELABLE)}."
            )
        if intent.status == "requires_capture":
            # The authorisation is released: Stripe shows its charge as fully refunded.
            charge = call.account.charges.get(intent.latest_charge)
            if charge is not None:
                charge.amount_refunded = charge.amount
                charge.refunded = True
        intent.status = "canceled"
        intent.canceled_at = now()
        intent.cancellation_reason = reason
        intent.amount_capturable = 0
        intent.next_action = None
        call.emit("payment_intent.canceled", intent)
        return intent

    return execute
