"""Our requests in Checkout's format, Checkout's answers as ours: pure functions, table-tested.

`Authorised` means SUCCEEDED when Adyen captures at once and REQUIRES_CAPTURE when the
capture is ours to make. The connector always says which when it authorises
(`captureDelayHours: 0`, or `additionalData.manualCapture`), so no merchant-account default
can surprise it. An AUTHORISATION notification signs neither, so there the payment's own
capture mode decides (see `webhook`).
"""

from __future__ import annotations

from typing import Any

from paymesh.connectors.adyen.refusals import failure_for
from paymesh.domain.payment import PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest

S = PaymentStatus

__all__ = [
    "RESULT_CODES",
    "STATES",
    "authorised",
    "cancel_request",
    "capture_request",
    "outcome_from_capture",
    "outcome_from_payment",
    "outcome_from_state",
    "payment_request",
    "refund_request",
]

#: Every Checkout `resultCode`, mapped once. `Authorised` depends on the capture mode
#: (`authorised`); an unknown code is PROCESSING, so the sync job asks again later.
RESULT_CODES: dict[str, PaymentStatus] = {
    "Authorised": S.SUCCEEDED,
    "Refused": S.FAILED,
    "Error": S.FAILED,
    "Cancelled": S.FAILED,
    "RedirectShopper": S.REQUIRES_ACTION,
    "IdentifyShopper": S.REQUIRES_ACTION,
    "ChallengeShopper": S.REQUIRES_ACTION,
    "PresentToShopper": S.REQUIRES_ACTION,
    "Pending": S.PROCESSING,
    "Received": S.PROCESSING,
}

#: The sandbox's status lookup (`GET /v71/payments/{pspReference}`, which real Adyen lacks).
STATES: dict[str, PaymentStatus] = {
    "Captured": S.SUCCEEDED,
    "Authorised": S.REQUIRES_CAPTURE,
    "Cancelled": S.CANCELED,
    "Refused": S.FAILED,
    "Error": S.FAILED,
    "RedirectShopper": S.REQUIRES_ACTION,
    "Received": S.PROCESSING,
}

_REFUND_REASONS = {
    "duplicate": "DUPLICATE",
    "fraudulent": "FRAUD",
    "requested_by_customer": "CUSTOMER REQUEST",
}


def _amount(value: int, currency: str) -> dict[str, Any]:
    return {"value": value, "currency": currency.upper()}


def payment_request(
    req: AuthorizeRequest, merchant_account: str, return_url: str | None
) -> dict[str, Any]:
    manual = req.capture_method == "manual"
    metadata = dict(req.metadata or {})
    body: dict[str, Any] = {
        "amount": _amount(req.amount, req.currency),
        "reference": req.payment_id,  # echoed as merchantReference in every notification
        "merchantAccount": merchant_account,
        # paymesh holds PSP tokens only: a stored card, the shopper at the checkout.
        "paymentMethod": {"type": "scheme", "storedPaymentMethodId": req.payment_method},
        "shopperReference": req.customer_id,
        "shopperInteraction": "ContAuth",
        "recurringProcessingModel": "CardOnFile",
        "metadata": metadata,
    }
    if manual:
        body["additionalData"] = {"manualCapture": "true"}
    else:
        body["captureDelayHours"] = 0
    if return_url:
        body["returnUrl"] = return_url
    return body


def capture_request(merchant_account: str, amount: int, currency: str) -> dict[str, Any]:
    # No `reference`: the CAPTURE notification then carries the payment's, our payment id.
    return {"merchantAccount": merchant_account, "amount": _amount(amount, currency)}


def cancel_request(merchant_account: str) -> dict[str, Any]:
    return {"merchantAccount": merchant_account}


def refund_request(
    merchant_account: str, amount: int, currency: str, refund_id: str, reason: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "merchantAccount": merchant_account,
        "amount": _amount(amount, currency),
        "reference": refund_id,
    }  # comes back as the REFUND's merchantReference
    if reason is not None:
        body["merchantRefundReason"] = _REFUND_REASONS.get(reason, "OTHER")
    return body


def authorised(ref: str | None, amount: int | None, manual: bool) -> PspOutcome:
    """An authorisation: captured at once, or held for our capture."""
    if manual:
        return PspOutcome(
            status=S.REQUIRES_CAPTURE, connector_payment_id=ref, amount_capturable=amount
        )
    return PspOutcome(status=S.SUCCEEDED, connector_payment_id=ref, amount_received=amount)


def outcome_from_payment(answer: dict[str, Any], manual: bool) -> PspOutcome:
    """A `/payments` (or `/payments/details`) answer."""
    code = answer.get("resultCode") or ""
    ref = answer.get("pspReference")
    value = (answer.get("amount") or {}).get("value")
    if code == "Authorised":
        return authorised(ref, value, manual)
    status = RESULT_CODES.get(code, S.PROCESSING)
    if status == S.FAILED:
        raw = (answer.get("additionalData") or {}).get("refusalReasonRaw")
        failure = failure_for(
            code, answer.get("refusalReason"), answer.get("refusalReasonCode"), raw
        )
        return PspOutcome(status=status, connector_payment_id=ref, failure=failure)
    if status == S.REQUIRES_ACTION:
        return PspOutcome(
            status=status,
            connector_payment_id=ref,
            next_action=_next_action(answer.get("action") or {}),
        )
    return PspOutcome(status=status, connector_payment_id=ref)


def outcome_from_state(state: dict[str, Any]) -> PspOutcome:
    """The sandbox's status lookup: what the sync job learns about a payment."""
    status = STATES.get(state.get("status") or "", S.PROCESSING)
    ref = state.get("pspReference")
    value = int((state.get("amount") or {}).get("value") or 0)
    captured = int(state.get("amountCaptured") or 0)
    if status == S.SUCCEEDED:
        return PspOutcome(status=status, connector_payment_id=ref, amount_received=captured)
    if status == S.REQUIRES_CAPTURE:
        return PspOutcome(
            status=status, connector_payment_id=ref, amount_capturable=value - captured
        )
    if status in (S.FAILED, S.REQUIRES_ACTION):
        return outcome_from_payment(state, manual=state.get("captureMode") == "manual")
    return PspOutcome(status=status, connector_payment_id=ref)


def outcome_from_capture(answer: dict[str, Any], ref: str) -> PspOutcome:
    """A capture Adyen has "received": as good as done, its CAPTURE notification confirms."""
    value = (answer.get("amount") or {}).get("value")
    return PspOutcome(
        status=S.SUCCEEDED,
        connector_payment_id=answer.get("paymentPspReference") or ref,
        amount_received=value,
    )


def _next_action(action: dict[str, Any]) -> dict[str, Any]:
    url = action.get("url")
    if url:
        return {"type": "redirect_to_url", "redirect_url": url}
    # Native 3DS2 (an SDK action without a URL): the action itself is what the client needs.
    return {"type": action.get("type") or "unknown", "adyen_action": action}
