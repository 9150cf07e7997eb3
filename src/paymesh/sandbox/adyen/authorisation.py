"""How an authorisation result plays out, wherever it is decided (`/payments`, the 3DS page).

    Authorised, automatic capture   captured at once; AUTHORISATION (no CAPTURE notification,
                                    as Adyen sends none for automatic captures by default)
    Authorised, manual capture      capturable; AUTHORISATION
    Received                        authorised behind the scenes; AUTHORISATION follows
    Refused, Error                  AUTHORISATION with success false and the refusal reason

The vault's dispute card (`pm_card_createDispute`) is charged back as soon as money is
captured: a CHARGEBACK follows the notification of that capture.
"""

from __future__ import annotations

from paymesh.sandbox.adyen import notifications
from paymesh.sandbox.adyen.ledger import SandboxPayment
from paymesh.sandbox.adyen.notifications import Item
from paymesh.sandbox.adyen.outcomes import Verdict

__all__ = ["conclude", "dispute_if_due"]


def conclude(payment: SandboxPayment, verdict: Verdict) -> list[Item]:
    payment.result_code = verdict.result_code
    payment.refusal = verdict.refusal
    items = [notifications.authorisation(payment)]
    if payment.authorised and not payment.manual_capture:
        payment.amount_captured = payment.value
        items.extend(dispute_if_due(payment))
    return items


def dispute_if_due(payment: SandboxPayment) -> list[Item]:
    if payment.card is None or not payment.card.disputed_after_capture or payment.chargeback:
        return []
    if payment.amount_captured == 0:
        return []
    payment.chargeback = True
    item = notifications.chargeback(payment)
    payment.chargeback_reference = item["pspReference"]
    return [item]
