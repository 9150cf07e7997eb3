"""PayPal's objects to ours and ours to PayPal's: pure functions, tested as tables.

An order's own status says where the payer is; once it is COMPLETED, its
payments say what happened to the money, so a completed order is read through
its captures and authorizations:

    a capture COMPLETED (or since refunded)   SUCCEEDED, amount_received = the captures
    a capture PENDING                         PROCESSING (an eCheck; the verdict comes by webhook)
    a capture DECLINED / DENIED / FAILED      FAILED, with the processor's reason
    an authorization CREATED                  REQUIRES_CAPTURE
    an authorization VOIDED / EXPIRED         CANCELED
    an authorization DENIED                   FAILED
"""

from __future__ import annotations

from typing import Any

from paymesh.connectors.paypal.amounts import from_paypal, to_paypal
from paymesh.domain.payment import Failure, PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest

S = PaymentStatus

__all__ = [
    "AUTHORIZATION_STATUS",
    "CAPTURE_STATUS",
    "DECLINES",
    "ORDER_STATUS",
    "WALLET",
    "authentication_failure",
    "failure_from_issue",
    "failure_from_processor",
    "is_decline_issue",
    "order_request",
    "outcome_from_authorization",
    "outcome_from_capture",
    "outcome_from_order",
    "payment_source",
]

#: The payment method that means "pay with a PayPal account"; `paypal:<email>` prefills the
#: buyer's address on PayPal's login page. Anything else is a vaulted card token.
WALLET = "paypal"

ORDER_STATUS: dict[str, PaymentStatus] = {
    "CREATED": S.REQUIRES_ACTION,  # waiting for the payer at the `approve` link
    "SAVED": S.PENDING,
    "PAYER_ACTION_REQUIRED": S.REQUIRES_ACTION,  # PayPal login, or 3-D Secure
    "APPROVED": S.PROCESSING,  # the payer agreed; the merchant's capture/authorize moves money
    "VOIDED": S.CANCELED,
    "COMPLETED": S.SUCCEEDED,  # only a default: a completed order is read by its payments
}

CAPTURE_STATUS: dict[str, PaymentStatus] = {
    "COMPLETED": S.SUCCEEDED,
    "PARTIALLY_REFUNDED": S.SUCCEEDED,
    "REFUNDED": S.SUCCEEDED,
    "PENDING": S.PROCESSING,
    "DECLINED": S.FAILED,
    "DENIED": S.FAILED,
    "FAILED": S.FAILED,
}

AUTHORIZATION_STATUS: dict[str, PaymentStatus] = {
    "CREATED": S.REQUIRES_CAPTURE,
    "PENDING": S.PROCESSING,
    "CAPTURED": S.SUCCEEDED,
    "PARTIALLY_CAPTURED": S.SUCCEEDED,
    "DENIED": S.FAILED,
    "VOIDED": S.CANCELED,
    "EXPIRED": S.CANCELED,
}

#: PayPal's processor response codes as Stripe-like decline codes, and whether the same card
#: may pass on a later try (a soft decline). PayPal reports lost and stolen cards alike.
DECLINES: dict[str, tuple[str, str, bool]] = {
    "0500": ("do_not_honor", "DO_NOT_HONOR", False),
    "5100": ("generic_decline", "GENERIC_DECLINE", False),
    "5120": ("insufficient_funds", "INSUFFICIENT_FUNDS", False),
    "5400": ("expired_card", "EXPIRED_CARD", False),
    "5110": ("incorrect_cvc", "CVV2_FAILURE", False),
    "00N7": ("incorrect_cvc", "CVV2_FAILURE_POSSIBLE_RETRY_WITH_CVV", False),
    "9500": ("fraudulent", "SUSPECTED_FRAUD", False),
    "9520": ("lost_card", "LOST_OR_STOLEN", False),
    "5150": ("pickup_card", "PICKUP_CARD_SPECIAL_CONDITIONS", False),
    "5180": ("restricted_card", "INVALID_OR_RESTRICTED_CARD", False),
    "1330": ("invalid_account", "INVALID_ACCOUNT", False),
    "5140": ("invalid_account", "CARD_CLOSED", False),
    "5130": ("incorrect_pin", "INVALID_PIN", False),
    "5650": ("authentication_required", "DECLINED_SCA_REQUIRED", False),
    "5710": ("card_velocity_exceeded", "TX_ATTEMPTS_EXCEED_LIMIT", False),
    "9100": ("try_again_later", "DECLINED_PLEASE_RETRY", True),
    "5920": ("issuer_not_available", "ISSUER_NOT_AVAILABLE_RETRIABLE", True),
    "8000": ("processing_error", "PROCESSOR_SYSTEM_ERROR", True),
    "0960": ("processing_error", "SYSTEM_MALFUNCTION", True),
}

#: 422 issues that mean the buyer's funding was refused: a decline, not a broken request.
_DECLINE_ISSUES = frozenset(
    {
        "INSTRUMENT_DECLINED",
        "TRANSACTION_REFUSED",
        "PAYER_CANNOT_PAY",
        "PAYER_ACCOUNT_RESTRICTED",
        "PAYER_ACCOUNT_LOCKED_OR_CLOSED",
        "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING",
        "COMPLIANCE_VIOLATION",
        "TRANSACTION_BLOCKED_BY_PAYEE",
        "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
        "AUTHORIZATION_DENIED",
    }
)


def is_decline_issue(issue: str | None) -> bool:
    return issue in _DECLINE_ISSUES


# -- ours to PayPal's ---------------------------------------------------------------------


def order_request(req: AuthorizeRequest, return_url: str | None) -> dict[str, Any]:
    unit: dict[str, Any] = {
        # Our payment id rides along, so a webhook names the payment before we know the order.
        "reference_id": req.payment_id,
        "custom_id": req.payment_id,
        # Unique per attempt: PayPal can then refuse a duplicate payment for one attempt.
        "invoice_id": req.idempotency_key,
        "amount": to_paypal(req.amount, req.currency),
    }
    if req.description:
        unit["description"] = req.description[:127]
    return {
        "intent": "AUTHORIZE" if req.capture_method == "manual" else "CAPTURE",
        "purchase_units": [unit],
        "payment_source": payment_source(req.payment_method, return_url),
    }


def payment_source(method: str, return_url: str | None) -> dict[str, Any]:
    context = {"return_url": return_url, "cancel_url": return_url} if return_url else {}
    if method == WALLET or method.startswith(WALLET + ":"):
        wallet: dict[str, Any] = {
            "experience_context": {
                **context,
                "user_action": "PAY_NOW",
                "shipping_preference": "NO_SHIPPING",
            }
        }
        email = method.partition(":")[2]
        if email:
            wallet["email_address"] = email
        return {"paypal": wallet}
    card: dict[str, Any] = {
        "vault_id": method,
        "attributes": {"verification": {"method": "SCA_WHEN_REQUIRED"}},
    }
    if context:
        card["experience_context"] = context
    return {"card": card}


# -- PayPal's to ours ---------------------------------------------------------------------


def failure_from_processor(response: dict[str, Any] | None) -> Failure:
    code = (response or {}).get("response_code") or ""
    decline_code, name, retryable = DECLINES.get(
        code, ("generic_decline", code or "DECLINED", False)
    )
    return Failure(
        code="card_declined",
        decline_code=decline_code,
        retryable=retryable,
        message=f"the card was declined: {name} ({code or 'no code'})",
    )


def failure_from_issue(issue: str, description: str | None) -> Failure:
    return Failure(code=issue.lower(), message=description or issue, retryable=False)


def _failure_of(payment: dict[str, Any]) -> Failure:
    if payment.get("processor_response"):
        return failure_from_processor(payment["processor_response"])
    reason = (payment.get("status_details") or {}).get("reason")
    return Failure(
        code="payment_denied",
        retryable=False,
        message=f"PayPal {str(payment.get('status', 'denied')).lower()} the payment"
        + (f" ({reason})" if reason else ""),
    )


def _amount(payment: dict[str, Any]) -> int:
    return from_paypal(payment.get("amount"))[0]


def _link(obj: dict[str, Any], rel: str) -> str | None:
    for link in obj.get("links") or []:
        if link.get("rel") == rel and isinstance(link.get("href"), str):
            return str(link["href"])
    return None


def outcome_from_capture(capture: dict[str, Any], order_id: str | None) -> PspOutcome:
    status = CAPTURE_STATUS.get(capture.get("status", ""), S.PROCESSING)
    return PspOutcome(
        status=status,
        connector_payment_id=order_id,
        amount_received=_amount(capture) if status == S.SUCCEEDED else None,
        failure=_failure_of(capture) if status == S.FAILED else None,
    )


def outcome_from_authorization(authorization: dict[str, Any], order_id: str | None) -> PspOutcome:
    status = AUTHORIZATION_STATUS.get(authorization.get("status", ""), S.PROCESSING)
    return PspOutcome(
        status=status,
        connector_payment_id=order_id,
        amount_capturable=_amount(authorization) if status == S.REQUIRES_CAPTURE else None,
        failure=_failure_of(authorization) if status == S.FAILED else None,
    )


def outcome_from_order(order: dict[str, Any]) -> PspOutcome:
    order_id = order.get("id")
    status = str(order.get("status", ""))
    units = order.get("purchase_units") or [{}]
    payments = units[0].get("payments") or {}
    captures = payments.get("captures") or []
    authorizations = payments.get("authorizations") or []
    if captures or authorizations:
        return _from_payments(order_id, captures, authorizations)
    if status in ("CREATED", "PAYER_ACTION_REQUIRED"):
        link = _link(order, "payer-action") or _link(order, "approve")
        if link is None:
            return PspOutcome(status=S.PENDING, connector_payment_id=order_id)
        return PspOutcome(
            status=S.REQUIRES_ACTION,
            connector_payment_id=order_id,
            next_action={"type": "redirect_to_url", "redirect_url": link},
        )
    if status == "APPROVED":
        failure = authentication_failure(order)
        if failure is not None:
            return PspOutcome(status=S.FAILED, connector_payment_id=order_id, failure=failure)
    return PspOutcome(status=ORDER_STATUS.get(status, S.PENDING), connector_payment_id=order_id)


def _from_payments(
    order_id: str | None, captures: list[dict[str, Any]], authorizations: list[dict[str, Any]]
) -> PspOutcome:
    settled = [c for c in captures if CAPTURE_STATUS.get(c.get("status", "")) == S.SUCCEEDED]
    if settled:
        return PspOutcome(
            status=S.SUCCEEDED,
            connector_payment_id=order_id,
            amount_received=sum(_amount(c) for c in settled),
        )
    if captures:
        return outcome_from_capture(captures[-1], order_id)
    return outcome_from_authorization(authorizations[-1], order_id)


def authentication_failure(order: dict[str, Any]) -> Failure | None:
    """A card order whose 3-D Secure failed: PayPal leaves it APPROVED, and advises the
    merchant not to go on (no liability shift, authentication not successful)."""
    card = (order.get("payment_source") or {}).get("card") or {}
    result = card.get("authentication_result")
    if not result:
        return None
    secure = result.get("three_d_secure") or {}
    if result.get("liability_shift") in ("POSSIBLE", "YES") or secure.get(
        "authentication_status"
    ) in ("Y", "A"):
        return None
    return Failure(
        code="authentication_failed",
        retryable=False,
        message="3-D Secure authentication failed "
        f"(liability_shift {result.get('liability_shift')}, "
        f"authentication_status {secure.get('authentication_status')})",
    )
