"""A chargeback decided by the issuer, as Adyen notifies it (`sandbox.disputes` asks).

Adyen's dispute webhooks carry the chargeback's pspReference (the same at every stage), the
payment's as originalReference, and a `disputeStatus` in additionalData. Of the stages its
docs list, the sandbox sends the two that decide a defended chargeback:

    won    CHARGEBACK_REVERSED  disputeStatus Won    the defence stood; the funds come back
    lost   SECOND_CHARGEBACK    disputeStatus Lost   the issuer declined the defence and
                                                     charged back again: final

(A real issuer may send CHARGEBACK_REVERSED with disputeStatus Pending and a
SECOND_CHARGEBACK after it; the sandbox decides in one step.)
"""

from __future__ import annotations

from paymesh.sandbox.adyen import notifications
from paymesh.sandbox.adyen.ledger import Ledger
from paymesh.sandbox.adyen.notifications import Notifier
from paymesh.sandbox.disputes import DisputeAlreadyClosed

__all__ = ["close"]

_VERDICTS = {True: ("CHARGEBACK_REVERSED", "Won"), False: ("SECOND_CHARGEBACK", "Lost")}


def close(ledger: Ledger, notifier: Notifier, dispute_id: str, won: bool) -> None:
    """Raises KeyError for an unknown chargeback, DisputeAlreadyClosed for a decided one."""
    payment = next(
        (p for p in list(ledger.payments.values()) if p.chargeback_reference == dispute_id),
        None,
    )
    if payment is None:
        raise KeyError(dispute_id)
    if payment.chargeback_outcome is not None:
        raise DisputeAlreadyClosed(dispute_id)
    payment.chargeback_outcome = "won" if won else "lost"
    event_code, status = _VERDICTS[won]
    item = notifications.modification(
        event_code, payment, dispute_id, payment.amount_captured, payment.reference
    )
    item["additionalData"].update(
        {"chargebackSchemeCode": "visa", "disputeStatus": status, "defendable": "false"}
    )
    notifier.send([item])
