"""Payments v2: authorizations (show, capture, void), captures (show, refund), refunds (show).

capture an authorization   partial `amount` (default: what is left), `final_capture`
                           (default false: more captures may follow); never more than
                           was authorized (422 MAX_CAPTURE_AMOUNT_EXCEEDED)
void an authorization      not once captured (PREVIOUSLY_CAPTURED) or voided
                           (PREVIOUSLY_VOIDED); 204 unless `Prefer: return=representation`
refund a capture           partial `amount` (default: what is left); refunds add up to at
                           most the capture (422 REFUND_AMOUNT_EXCEEDED); `invoice_id` and
                           `custom_id` carry the merchant's own refund reference
"""

from __future__ import annotations

from paymesh.sandbox.paypal.amounts import Money, parse_money
from paymesh.sandbox.paypal.calls import Call
from paymesh.sandbox.paypal.charging import (
    capture_authorization,
    refund_capture,
    void_authorization,
)
from paymesh.sandbox.paypal.errors import PayPalError
from paymesh.sandbox.paypal.fields import flag, text
from paymesh.sandbox.paypal.state import Answer, Brief

__all__ = [
    "capture_authorized",
    "refund_captured",
    "show_authorization",
    "show_capture",
    "show_refund",
    "void_authorized",
]

_API = "payments/v2"


def show_authorization(call: Call) -> Answer:
    return Answer(200, call.merchant.authorization(call.path["id"]))


def show_capture(call: Call) -> Answer:
    return Answer(200, call.merchant.capture(call.path["id"]))


def show_refund(call: Call) -> Answer:
    return Answer(200, call.merchant.refund(call.path["id"]))


def _unprocessable(issue: str, description: str) -> PayPalError:
    return PayPalError.unprocessable(issue, description, api=_API)


def capture_authorized(call: Call) -> Answer:
    authorization = call.merchant.authorization(call.path["id"])
    body = call.body
    final_capture = flag(body, "final_capture", "/final_capture", default=False)
    invoice_id = text(body, "invoice_id", "/invoice_id", 127, api=_API)
    if authorization.status == "VOIDED":
        raise _unprocessable(
            "AUTHORIZATION_VOIDED", "A voided authorization cannot be captured or reauthorized."
        )
    if authorization.status == "DENIED":
        raise _unprocessable("AUTHORIZATION_DENIED", "A denied authorization cannot be captured.")
    if authorization.status == "CAPTURED":
        raise _unprocessable(
            "AUTHORIZATION_ALREADY_CAPTURED",
            "Authorization has already been captured. If 'final_capture' is "
            "set to true, additional captures are not possible against the "
            "authorization.",
        )
    left = authorization.amount.minor - authorization.captured
    amount = (
        Money(authorization.amount.currency, left)
        if body.get("amount") is None
        else parse_money(body["amount"], "/amount", _API)
    )
    if amount.currency != authorization.amount.currency:
        raise _unprocessable(
            "AUTH_CAPTURE_CURRENCY_MISMATCH",
            "Currency of capture must be the same as currency of authorization.",
        )
    if amount.minor > left:
        raise _unprocessable(
            "MAX_CAPTURE_AMOUNT_EXCEEDED",
            "Capture amount exceeds allowable limit. The sandbox allows no "
            "over-capture: at most the authorized amount not yet captured.",
        )
    capture = capture_authorization(call, authorization, amount, final_capture, invoice_id)
    return Answer(201, capture)


def void_authorized(call: Call) -> Answer:
    authorization = call.merchant.authorization(call.path["id"])
    if authorization.status in ("CAPTURED", "PARTIALLY_CAPTURED"):
        raise _unprocessable(
            "PREVIOUSLY_CAPTURED",
            "Authorization has been previously captured and hence cannot be voided.",
        )
    if authorization.status == "VOIDED":
        raise _unprocessable(
            "PREVIOUSLY_VOIDED",
            "Authorization has been previously voided and hence cannot be voided again.",
        )
    if authorization.status == "DENIED":
        raise _unprocessable("AUTHORIZATION_DENIED", "A denied authorization cannot be voided.")
    void_authorization(call, authorization)
    return Answer(200, authorization, Brief.NO_CONTENT)


def refund_captured(call: Call) -> Answer:
    capture = call.merchant.capture(call.path["id"])
    body = call.body
    invoice_id = text(body, "invoice_id", "/invoice_id", 127, api=_API)
    custom_id = text(body, "custom_id", "/custom_id", 127, api=_API)
    note = text(body, "note_to_payer", "/note_to_payer", 255, api=_API)
    if capture.status == "REFUNDED":
        raise _unprocessable(
            "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded"
        )
    if capture.status == "PENDING":
        raise _unprocessable(
            "PENDING_CAPTURE",
            "Cannot initiate a refund as the capture is pending. Capture is "
            "typically pending when the payer has funded the transaction "
            "using e-check/bank funded.",
        )
    if capture.status not in ("COMPLETED", "PARTIALLY_REFUNDED"):
        raise _unprocessable("REFUND_NOT_ALLOWED", "Capture cannot be refunded.")
    left = capture.amount.minor - capture.refunded
    amount = (
        Money(capture.amount.currency, left)
        if body.get("amount") is None
        else parse_money(body["amount"], "/amount", _API)
    )
    if amount.currency != capture.amount.currency:
        raise _unprocessable(
            "REFUND_CAPTURE_CURRENCY_MISMATCH", "Refund must be in the same currency as the capture"
        )
    if amount.minor > left:
        raise _unprocessable(
            "REFUND_AMOUNT_EXCEEDED",
            "The refund amount must be less than or equal to the capture "
            "amount that has not yet been refunded.",
        )
    refund = refund_capture(call, capture, amount, invoice_id, custom_id, note)
    return Answer(201, refund)
