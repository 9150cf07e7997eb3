"""Money moving: an order completed, an authorization captured or voided, a capture refunded.

Each change happens to the sandbox's objects and is announced with the
webhook PayPal sends for it:

    card approves, intent CAPTURE     capture COMPLETED            PAYMENT.CAPTURE.COMPLETED
    card declines, intent CAPTURE     capture DECLINED             PAYMENT.CAPTURE.DECLINED
    card approves, intent AUTHORIZE   authorization CREATED        PAYMENT.AUTHORIZATION.CREATED
    card declines, intent AUTHORIZE   authorization DENIED         (none)
    wallet, eCheck funding            capture PENDING              PAYMENT.CAPTURE.PENDING
      ... the bank refuses            capture DENIED               PAYMENT.CAPTURE.DENIED
      ... the eCheck clears           capture COMPLETED            PAYMENT.CAPTURE.COMPLETED
    authorization captured            capture COMPLETED            PAYMENT.CAPTURE.COMPLETED
    authorization voided              authorization VOIDED         PAYMENT.AUTHORIZATION.VOIDED
    capture refunded                  refund COMPLETED             PAYMENT.CAPTURE.REFUNDED
    dispute card captured             dispute OPEN                 CUSTOMER.DISPUTE.CREATED
      ... the issuer decides          dispute RESOLVED             CUSTOMER.DISPUTE.RESOLVED
                                      (see `disputes`)

A declined card is an answer, not an error: PayPal creates the order, marks it
COMPLETED and the capture DECLINED, with the issuer's reason in
`processor_response.response_code` (the codes PayPal's card testing documents).
"""

from __future__ import annotations

from datetime import UTC, datetime

from paymesh.sandbox.cards import Decline, TestCard
from paymesh.sandbox.paypal.amounts import Money
from paymesh.sandbox.paypal.calls import Call
from paymesh.sandbox.paypal.ids import dispute_id, resource_id
from paymesh.sandbox.paypal.objects import Authorization, Capture, Dispute, Order, Refund
from paymesh.sandbox.paypal.wallets import Funding, funding_of

__all__ = [
    "APPROVED",
    "RESPONSE_CODES",
    "capture_authorization",
    "complete_order",
    "refund_capture",
    "void_authorization",
]

#: Decline codes (the vault's, in Stripe's words) as PayPal's processor reports them.
RESPONSE_CODES = {
    "generic_decline": "5100",  # GENERIC_DECLINE
    "do_not_honor": "0500",  # DO_NOT_HONOR
    "insufficient_funds": "5120",  # INSUFFICIENT_FUNDS
    "lost_card": "9520",  # LOST_OR_STOLEN
    "stolen_card": "9520",  # LOST_OR_STOLEN: PayPal does not tell the two apart
    "fraudulent": "9500",  # SUSPECTED_FRAUD
    "expired_card": "5400",  # EXPIRED_CARD
    "incorrect_cvc": "00N7",  # CVV2_FAILURE_POSSIBLE_RETRY_WITH_CVV
    "processing_error": "8000",  # PROCESSOR_SYSTEM_ERROR
}
APPROVED = {"avs_code": "A", "cvv_code": "M", "response_code": "0000"}


def _processor_response(decline: Decline | None) -> dict[str, str]:
    if decline is None:
        return dict(APPROVED)
    # PayPal's card testing: every rejection reports AVS "globally unavailable" (G) and
    # CVV "not processed" (P).
    return {
        "avs_code": "G",
        "cvv_code": "P",
        "response_code": RESPONSE_CODES.get(decline.decline_code, "5100"),
    }


def complete_order(call: Call, order: Order) -> None:
    """Capture or authorize an order its payer has approved (or a card needing no payer)."""
    if order.intent == "CAPTURE":
        _capture_order(call, order)
    else:
        _authorize_order(call, order)
    order.status = "COMPLETED"
    order.touch()


def _capture_order(call: Call, order: Order) -> None:
    decline = order.card.decline if order.card is not None else None
    funding = funding_of(order.wallet) if order.wallet is not None else Funding.INSTANT
    status = "DECLINED" if decline else "PENDING" if funding != Funding.INSTANT else "COMPLETED"
    capture = Capture(
        id=resource_id(),
        order_id=order.id,
        authorization_id=None,
        amount=order.amount,
        status=status,
        final_capture=True,
        invoice_id=order.invoice_id,
        custom_id=order.custom_id,
        processor_response=_processor_response(decline) if order.card else None,
        created=datetime.now(UTC),
        status_reason="ECHECK" if status == "PENDING" else None,
    )
    order.captures.append(capture)
    call.merchant.captures[capture.id] = capture
    if status == "DECLINED":
        call.emit(
            "PAYMENT.CAPTURE.DECLINED",
            "capture",
            capture.wire(call.urls),
            f"Payment declined for {capture.amount}",
        )
    elif status == "PENDING":
        call.emit(
            "PAYMENT.CAPTURE.PENDING",
            "capture",
            capture.wire(call.urls),
            f"Payment pending for {capture.amount}",
        )
        call.later.run(call.echeck_delay_s, lambda: _settle_echeck(call, capture, funding))
    else:
        _captured(call, capture, order.card)


def _settle_echeck(call: Call, capture: Capture, funding: Funding) -> None:
    if capture.status != "PENDING":
        return
    capture.updated = datetime.now(UTC)
    capture.status_reason = None
    if funding == Funding.ECHECK_DENIED:
        capture.status = "DENIED"
        call.emit(
            "PAYMENT.CAPTURE.DENIED",
            "capture",
            capture.wire(call.urls),
            f"Payment denied for {capture.amount}",
        )
        return
    capture.status = "COMPLETED"
    _captured(call, capture, None)


def _captured(call: Call, capture: Capture, card: TestCard | None) -> None:
    call.emit(
        "PAYMENT.CAPTURE.COMPLETED",
        "capture",
        capture.wire(call.urls),
        f"Payment completed for {capture.amount}",
    )
    if card is not None and card.disputed_after_capture:
        dispute = Dispute(
            id=dispute_id(),
            capture=capture,
            amount=capture.amount,
            reason="UNAUTHORISED",
            created=datetime.now(UTC),
        )
        call.merchants.add_dispute(call.merchant.client_id, dispute, call.urls)
        call.emit(
            "CUSTOMER.DISPUTE.CREATED",
            "dispute",
            dispute.wire(call.urls),
            f"A new dispute opened with Case # {dispute.id}",
            resource_version="1.1",
        )


def _authorize_order(call: Call, order: Order) -> None:
    decline = order.card.decline if order.card is not None else None
    authorization = Authorization(
        id=resource_id(),
        order_id=order.id,
        amount=order.amount,
        status="DENIED" if decline else "CREATED",
        invoice_id=order.invoice_id,
        custom_id=order.custom_id,
        processor_response=_processor_response(decline) if order.card else None,
        created=datetime.now(UTC),
    )
    order.authorizations.append(authorization)
    call.merchant.authorizations[authorization.id] = authorization
    if decline is None:
        call.emit(
            "PAYMENT.AUTHORIZATION.CREATED",
            "authorization",
            authorization.wire(call.urls),
            f"Payment authorization is created for {authorization.amount}",
        )


def capture_authorization(
    call: Call,
    authorization: Authorization,
    amount: Money,
    final_capture: bool,
    invoice_id: str | None,
) -> Capture:
    order = call.merchant.order(authorization.order_id)
    now = datetime.now(UTC)
    capture = Capture(
        id=resource_id(),
        order_id=order.id,
        authorization_id=authorization.id,
        amount=amount,
        status="COMPLETED",
        final_capture=final_capture,
        invoice_id=invoice_id or authorization.invoice_id,
        custom_id=authorization.custom_id,
        processor_response=dict(APPROVED) if order.card else None,
        created=now,
    )
    authorization.captures.append(capture)
    order.captures.append(capture)
    call.merchant.captures[capture.id] = capture
    done = final_capture or authorization.captured >= authorization.amount.minor
    authorization.status = "CAPTURED" if done else "PARTIALLY_CAPTURED"
    authorization.updated = now
    order.touch()
    _captured(call, capture, order.card)
    return capture


def void_authorization(call: Call, authorization: Authorization) -> None:
    authorization.status = "VOIDED"
    authorization.updated = datetime.now(UTC)
    call.merchant.order(authorization.order_id).touch()
    call.emit(
        "PAYMENT.AUTHORIZATION.VOIDED",
        "authorization",
        authorization.wire(call.urls),
        "A payment authorization was voided",
    )


def refund_capture(
    call: Call,
    capture: Capture,
    amount: Money,
    invoice_id: str | None,
    custom_id: str | None,
    note: str | None,
) -> Refund:
    now = datetime.now(UTC)
    refund = Refund(
        id=resource_id(),
        capture_id=capture.id,
        order_id=capture.order_id,
        amount=amount,
        status="COMPLETED",
        invoice_id=invoice_id,
        custom_id=custom_id,
        note_to_payer=note,
        created=now,
    )
    capture.refunds.append(refund)
    capture.status = (
        "REFUNDED" if capture.refunded >= capture.amount.minor else "PARTIALLY_REFUNDED"
    )
    capture.updated = now
    call.merchant.refunds[refund.id] = refund
    call.emit(
        "PAYMENT.CAPTURE.REFUNDED",
        "refund",
        refund.wire(call.urls),
        f"A {amount} capture payment was refunded",
    )
    return refund
