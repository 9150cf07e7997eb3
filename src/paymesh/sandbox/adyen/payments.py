"""`POST /v71/payments`, `POST /v71/payments/details`, and the sandbox's own status lookup.

A payment method is `{"type": "scheme", "storedPaymentMethodId": "pm_card_visa"}` (a token
from the shared vault) or raw test card fields (`number`, `expiryMonth`, `expiryYear`, `cvc`,
`holderName`; the number is checked and reduced to its brand, never kept). Adyen's test
holder names and `additionalData.RequestedTestAcquirerResponseCode` decide the outcome
whenever given, even with a vault token.

Capture is manual when `additionalData.manualCapture` is "true", or `captureDelayHours` > 0
(the sandbox keeps no clock, so a delayed capture waits for an explicit one), else automatic
when `captureDelayHours` is 0, else the merchant account's default (a sandbox setting).

A card that needs 3-D Secure answers `RedirectShopper` with an `action` pointing at the
sandbox's challenge page (`/_3ds/{pspReference}`). Completing the challenge authorises the
payment there and then, so its AUTHORISATION notification goes out even if the merchant never
calls `/payments/details`; that call, with the `redirectResult` the page handed back, reports
the outcome.
"""

from __future__ import annotations

from typing import Any

from paymesh.sandbox.adyen import fields, outcomes
from paymesh.sandbox.adyen.authorisation import conclude
from paymesh.sandbox.adyen.calls import Answer, Call
from paymesh.sandbox.adyen.errors import AdyenError
from paymesh.sandbox.adyen.fields import Body
from paymesh.sandbox.adyen.ledger import SandboxPayment, new_psp_reference
from paymesh.sandbox.adyen.outcomes import Verdict
from paymesh.sandbox.cards import TestCard, card_for

__all__ = ["create", "details", "payment_result", "retrieve"]


def create(call: Call) -> Answer:
    body = call.body
    merchant_account = fields.merchant_account(body, call.merchant_accounts)
    value, currency = fields.amount(body)
    reference = fields.string(body, "reference")
    if reference is None:
        raise AdyenError.reference_missing()
    method = fields.obj(body, "paymentMethod", required=True)
    additional = fields.obj(body, "additionalData")
    return_url = fields.url(body, "returnUrl")
    metadata = fields.string_map(body, "metadata")
    fields.string(body, "shopperReference")
    manual = _manual_capture(body, additional, call.manual_capture_default)
    card, brand, verdict = _payment_method(method, additional)
    payment = SandboxPayment(
        psp_reference=new_psp_reference(),
        merchant_account=merchant_account,
        reference=reference,
        value=value,
        currency=currency,
        manual_capture=manual,
        brand=brand,
        result_code=verdict.result_code,
        card=card,
        return_url=return_url,
        metadata=metadata,
    )
    call.ledger.add(payment)
    if verdict.requires_3ds:
        payment.result_code = "RedirectShopper"
        return Answer(200, payment_result(payment, call.sandbox_url))
    items = conclude(payment, verdict)
    return Answer(200, payment_result(payment, call.sandbox_url), items)


def details(call: Call) -> Answer:
    given = fields.obj(call.body, "details", required=True)
    token = fields.string(given, "redirectResult", required=True)
    psp_reference = call.ledger.by_redirect_result.get(token or "")
    payment = call.ledger.find(psp_reference or "")
    if payment is None:
        raise AdyenError.field("Invalid redirectResult")
    return Answer(200, payment_result(payment, call.sandbox_url))


def retrieve(call: Call) -> Answer:
    """Sandbox only: real Adyen has no endpoint that tells a payment's state.

    Against real Adyen a merchant learns the state from the `/payments` answer (replayed by
    sending the same Idempotency-Key again) and from notifications. Here the sync job may
    also ask directly, which is what this answers: `status` is one of Authorised, Captured,
    Cancelled, Refused, Error, RedirectShopper, Received.
    """
    psp_reference = call.path["pspReference"]
    payment = call.ledger.find(psp_reference)
    if payment is None:
        raise AdyenError.not_found(f"no payment with pspReference {psp_reference!r}")
    state = payment_result(payment, call.sandbox_url)
    state.update(
        {
            "merchantAccount": payment.merchant_account,
            "status": payment.status,
            "captureMode": "manual" if payment.manual_capture else "automatic",
            "amountCaptured": payment.amount_captured,
            "amountRefunded": payment.amount_refunded,
            "chargeback": payment.chargeback,
        }
    )
    return Answer(200, state)


def payment_result(payment: SandboxPayment, sandbox_url: str) -> dict[str, Any]:
    """The `/payments` answer for this payment as it stands."""
    result: dict[str, Any] = {
        "pspReference": payment.psp_reference,
        "resultCode": payment.result_code,
        "merchantReference": payment.reference,
        "amount": {"currency": payment.currency, "value": payment.value},
        "paymentMethod": {"brand": payment.brand, "type": "scheme"},
    }
    if payment.refusal is not None:
        result["refusalReason"] = payment.refusal.reason
        result["refusalReasonCode"] = payment.refusal.code
        if payment.refusal.raw:
            result["additionalData"] = {"refusalReasonRaw": payment.refusal.raw}
    if payment.result_code == "RedirectShopper":
        result["action"] = {
            "paymentMethodType": "scheme",
            "type": "redirect",
            "method": "GET",
            "url": f"{sandbox_url}/_3ds/{payment.psp_reference}",
        }
    return result


def _manual_capture(body: Body, additional: Body, default: bool) -> bool:
    if str(additional.get("manualCapture", "")).lower() == "true":
        return True
    delay = body.get("captureDelayHours")
    if delay is None:
        return default
    if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
        raise AdyenError.field("'captureDelayHours' must be a whole number of hours")
    return delay > 0


def _payment_method(method: Body, additional: Body) -> tuple[TestCard | None, str, Verdict]:
    kind = fields.string(method, "type") or "scheme"
    if kind != "scheme":
        raise AdyenError.field(f"paymentMethod type {kind!r} is not supported by the sandbox")
    card: TestCard | None = None
    stored = fields.string(method, "storedPaymentMethodId")
    if stored is not None:
        card = card_for(stored)
        if card is None:
            raise AdyenError.stored_method_unknown()
        brand = outcomes.ADYEN_BRANDS.get(card.brand, card.brand)
        verdict = outcomes.for_card(card)
    else:
        number = fields.string(method, "number") or fields.string(method, "encryptedCardNumber")
        if number is None:
            raise AdyenError.field("Required field 'paymentMethod.number' is not provided.")
        # Adyen's test encryption accepts "test_<number>" in place of an encrypted value.
        digits = number.removeprefix("test_").replace(" ", "")
        if not outcomes.luhn_valid(digits):
            raise AdyenError.invalid_card_number()
        brand = outcomes.brand_of_number(digits)
        verdict = Verdict(outcomes.AUTHORISED)
    test_value = outcomes.for_holder_name(fields.string(method, "holderName"))
    if test_value is None and "RequestedTestAcquirerResponseCode" in additional:
        test_value = outcomes.for_acquirer_code(additional["RequestedTestAcquirerResponseCode"])
    return card, brand, test_value or verdict
