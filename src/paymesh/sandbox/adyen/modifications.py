"""Modifications: `POST /v71/payments/{paymentPspReference}/captures | cancels | refunds`.

Adyen accepts a modification with 201 `"status": "received"` and its own pspReference; the
outcome follows as a notification (CAPTURE, CANCELLATION, REFUND). Captures may be partial
and repeated up to the authorised amount; refunds may be partial and repeated up to what was
captured; a cancel releases an authorisation nothing was captured from. A request that breaks
those rules is refused with a 422 and changes nothing. `reference` is the merchant's own
reference for the modification (paymesh sends its refund id on refunds); without one, the
notification carries the payment's reference.
"""

from __future__ import annotations

from typing import Any

from paymesh.sandbox.adyen import fields, notifications
from paymesh.sandbox.adyen.authorisation import dispute_if_due
from paymesh.sandbox.adyen.calls import Answer, Call
from paymesh.sandbox.adyen.errors import AdyenError
from paymesh.sandbox.adyen.ledger import SandboxPayment, new_psp_reference

__all__ = ["cancel", "capture", "refund"]

_REFUND_REASONS = frozenset({"FRAUD", "CUSTOMER REQUEST", "RETURN", "DUPLICATE", "OTHER"})


def capture(call: Call) -> Answer:
    payment = _authorised_payment(call)
    value = _amount(call, payment)
    reference = fields.string(call.body, "reference")
    if payment.capturable == 0:
        raise AdyenError.not_allowed("the payment has been captured in full")
    if value > payment.capturable:
        raise AdyenError.invalid_amount(
            f"{value} is more than the {payment.capturable} left to capture"
        )
    payment.amount_captured += value
    psp_reference = new_psp_reference()
    items = [notifications.modification("CAPTURE", payment, psp_reference, value, reference)]
    items.extend(dispute_if_due(payment))
    return Answer(201, _received(payment, psp_reference, reference, value), items)


def cancel(call: Call) -> Answer:
    payment = _payment(call)
    # A 3-D Secure challenge the merchant abandons may be cancelled too: nothing is held, and
    # a shopper who completes it afterwards is refused (see three_d_secure).
    if payment.result_code != "RedirectShopper" or payment.cancelled:
        payment = _authorised_payment(call)
    reference = fields.string(call.body, "reference")
    if payment.amount_captured:
        raise AdyenError.not_allowed("the payment has been captured; refund it instead")
    payment.cancelled = True
    psp_reference = new_psp_reference()
    item = notifications.modification(
        "CANCELLATION", payment, psp_reference, payment.value, reference
    )
    return Answer(201, _received(payment, psp_reference, reference, None), [item])


def refund(call: Call) -> Answer:
    payment = _payment(call)
    value = _amount(call, payment)
    reference = fields.string(call.body, "reference")
    reason = fields.string(call.body, "merchantRefundReason")
    if reason is not None and reason not in _REFUND_REASONS:
        raise AdyenError.field(f"merchantRefundReason must be one of {sorted(_REFUND_REASONS)}")
    if payment.chargeback:
        raise AdyenError.not_allowed("the payment has been charged back")
    if payment.amount_captured == 0:
        raise AdyenError.not_allowed("nothing was captured; cancel the payment instead")
    if value > payment.refundable:
        raise AdyenError.invalid_amount(
            f"{value} is more than the {payment.refundable} left to refund"
        )
    payment.amount_refunded += value
    psp_reference = new_psp_reference()
    item = notifications.modification("REFUND", payment, psp_reference, value, reference)
    answer = _received(payment, psp_reference, reference, value)
    if reason is not None:
        answer["merchantRefundReason"] = reason
    return Answer(201, answer, [item])


def _payment(call: Call) -> SandboxPayment:
    merchant_account = fields.merchant_account(call.body, call.merchant_accounts)
    payment = call.ledger.find(call.path["pspReference"], merchant_account)
    if payment is None:
        raise AdyenError.unknown_payment()
    return payment


def _authorised_payment(call: Call) -> SandboxPayment:
    payment = _payment(call)
    if payment.cancelled:
        raise AdyenError.not_allowed("the payment has been cancelled")
    if not payment.authorised:
        raise AdyenError.not_allowed(f"the payment is {payment.result_code}, not authorised")
    return payment


def _amount(call: Call, payment: SandboxPayment) -> int:
    value, currency = fields.amount(call.body)
    if currency != payment.currency:
        raise AdyenError.invalid_amount(
            f"currency {currency} is not the payment's currency {payment.currency}"
        )
    return value


def _received(
    payment: SandboxPayment, psp_reference: str, reference: str | None, value: int | None
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "merchantAccount": payment.merchant_account,
        "paymentPspReference": payment.psp_reference,
        "pspReference": psp_reference,
        "status": "received",
    }
    if reference is not None:
        answer["reference"] = reference
    if value is not None:
        answer["amount"] = {"currency": payment.currency, "value": value}
    return answer
