"""What happens when a PaymentIntent is confirmed: the card's outcome, played out.

    3DS card, not yet authenticated  -> requires_action (redirect to the sandbox's 3DS page)
    declining card                   -> failed Charge, requires_payment_method, 402 card_error
    approving card, manual capture   -> uncaptured Charge, requires_capture
    approving card, otherwise        -> captured Charge, succeeded

Each transition emits the event Stripe emits for it. The dispute card
(`pm_card_createDispute`) is disputed as soon as its charge is captured.
"""

from __future__ import annotations

from paymesh.sandbox.cards import Decline, TestCard, card_for
from paymesh.sandbox.stripe.accounts import PendingAuthentication
from paymesh.sandbox.stripe.calls import Call, now
from paymesh.sandbox.stripe.errors import StripeError
from paymesh.sandbox.stripe.ids import new_id
from paymesh.sandbox.stripe.objects import (
    Charge,
    Dispute,
    LastPaymentError,
    PaymentIntent,
    card_details,
    card_payment_method,
    empty_billing_details,
)

__all__ = [
    "CAPTURE_METHODS",
    "capture_charge",
    "card_for_token",
    "confirm_with_card",
    "fail_authentication",
]

CAPTURE_METHODS = ("automatic", "automatic_async", "manual")

_DOCS = "https://stripe.com/docs/error-codes/"
_AUTHENTICATION_REQUIRED = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)
_APPROVED = {
    "network_status": "approved_by_network",
    "reason": None,
    "risk_level": "normal",
    "risk_score": 32,
    "seller_message": "Payment complete.",
    "type": "authorized",
}


def card_for_token(token: str) -> TestCard:
    """The test card behind a PaymentMethod id, or Stripe's 400 for an unknown one."""
    card = card_for(token)
    if card is None:
        raise StripeError.invalid_request(
            f"No such PaymentMethod: '{token}'", code="resource_missing", param="payment_method"
        )
    return card


def confirm_with_card(
    call: Call,
    intent: PaymentIntent,
    card: TestCard,
    return_url: str | None,
    *,
    authenticated: bool = False,
    off_session: bool = False,
) -> None:
    """Play out the card's outcome; raises the 402 for a decline (state already changed).

    `off_session`: no customer is present to authenticate, so a card that needs
    3-D Secure is declined with `authentication_required`, as at Stripe.
    """
    intent.payment_method = card.token
    intent.last_payment_error = None
    intent.next_action = None
    needs_authentication = card.requires_3ds and not authenticated
    if needs_authentication and not off_session:
        _require_authentication(call, intent, card, return_url)
        return
    charge = _new_charge(intent, card)
    call.account.charges.add(charge.id, charge)
    intent.latest_charge = charge.id
    decline = _AUTHENTICATION_REQUIRED if needs_authentication else card.decline
    if decline is not None:
        _decline(call, intent, charge, card, decline)
    if intent.capture_method == "manual":
        intent.status = "requires_capture"
        intent.amount_capturable = intent.amount
        call.emit("payment_intent.amount_capturable_updated", intent)
        return
    capture_charge(call, intent, charge, intent.amount)


def capture_charge(call: Call, intent: PaymentIntent, charge: Charge, amount: int) -> None:
    """Capture `amount`; an uncaptured remainder is released, counted as refunded as at Stripe."""
    charge.captured = True
    charge.amount_captured = amount
    charge.amount_refunded = charge.amount - amount
    charge.balance_transaction = new_id("txn")
    intent.amount_capturable = 0
    intent.amount_received = amount
    intent.status = "succeeded"
    call.emit("payment_intent.succeeded", intent)
    card = card_for(charge.payment_method)
    if card is not None and card.disputed_after_capture:
        _open_dispute(call, intent, charge)


def fail_authentication(call: Call, intent: PaymentIntent, card: TestCard) -> None:
    """The customer failed (or abandoned) 3-D Secure: back to requires_payment_method."""
    intent.status = "requires_payment_method"
    intent.next_action = None
    intent.payment_method = None
    intent.last_payment_error = LastPaymentError(
        type="invalid_request_error",
        code="payment_intent_authentication_failure",
        doc_url=_DOCS + "payment-intent-authentication-failure",
        message="The provided PaymentMethod has failed authentication. You can provide "
        "payment_method_data or a new PaymentMethod to attempt to fulfill this "
        "PaymentIntent again.",
        payment_method=card_payment_method(card, intent.created),
    )
    call.emit("payment_intent.payment_failed", intent)


def _require_authentication(
    call: Call, intent: PaymentIntent, card: TestCard, return_url: str | None
) -> None:
    intent.status = "requires_action"
    intent.next_action = {
        "type": "redirect_to_url",
        "redirect_to_url": {
            "url": f"{call.sandbox_url}/_3ds/{intent.id}",
            "return_url": return_url,
        },
    }
    call.account.authentications[intent.id] = PendingAuthentication(card, return_url)
    call.accounts.by_payment_intent[intent.id] = call.account
    call.emit("payment_intent.requires_action", intent)


def _decline(
    call: Call, intent: PaymentIntent, charge: Charge, card: TestCard, decline: Decline
) -> None:
    charge.status = "failed"
    charge.paid = False
    charge.failure_code = decline.code
    charge.failure_message = decline.message
    charge.outcome = {
        "network_status": "declined_by_network",
        "reason": decline.decline_code,
        "risk_level": "normal",
        "risk_score": 32,
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }
    intent.status = "requires_payment_method"
    intent.payment_method = None
    intent.last_payment_error = LastPaymentError(
        type="card_error",
        code=decline.code,
        decline_code=decline.decline_code,
        doc_url=_DOCS + decline.code.replace("_", "-"),
        message=decline.message,
        param=decline.param,
        charge=charge.id,
        payment_method=card_payment_method(card, intent.created),
    )
    call.emit("payment_intent.payment_failed", intent)
    raise StripeError.card_declined(intent.last_payment_error, intent)


def _new_charge(intent: PaymentIntent, card: TestCard) -> Charge:
    return Charge(
        id=new_id("ch"),
        amount=intent.amount,
        billing_details=empty_billing_details(),
        calculated_statement_descriptor="PAYMESH SANDBOX",
        created=now(),
        currency=intent.currency,
        customer=intent.customer,
        description=intent.description,
        fraud_details={},
        metadata=dict(intent.metadata),
        outcome=_APPROVED,
        paid=True,
        payment_intent=intent.id,
        payment_method=card.token,
        payment_method_details={"card": card_details(card), "type": "card"},
        status="succeeded",
    )


def _open_dispute(call: Call, intent: PaymentIntent, charge: Charge) -> None:
    created = now()
    dispute = Dispute(
        id=new_id("dp"),
        amount=charge.amount_captured,
        balance_transactions=[],
        charge=charge.id,
        created=created,
        currency=charge.currency,
        evidence_details={
            "due_by": created + 7 * 24 * 3600,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        metadata={},
        payment_intent=intent.id,
    )
    charge.disputed = True
    call.account.disputes.add(dispute.id, dispute)
    call.emit("charge.dispute.created", dispute)
