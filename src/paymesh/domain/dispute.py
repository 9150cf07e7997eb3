"""A dispute (a chargeback) belongs to its payment's aggregate: one per payment.

The PSP opens it when the customer's bank claws the money back, and closes it when the bank
decides: `won` (the merchant's evidence stood: the funds come back, the dispute fee does not)
or `lost` (the customer keeps the money). A card charge is disputed once (Stripe: one dispute
per charge; Adyen: every stage of a chargeback carries the same pspReference), so the
payment holds at most one, and its id is derived from the payment's, like a review's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class DisputeStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


@dataclass(slots=True)
class Dispute:
    id: str  # ours: `dispute_id_for(payment id)`
    connector_dispute_id: str  # the PSP's (Stripe `dp_...`, Adyen's pspReference, `PP-D-...`)
    amount: int
    reason: str | None
    status: DisputeStatus
    opened_at: datetime
    closed_at: datetime | None = None


def dispute_id_for(payment_id: str) -> str:
    """Derived from the payment's id: at most one each, and found without a lookup."""
    return "dsp_" + payment_id.removeprefix("pay_")


def payment_id_for(dispute_id: str) -> str | None:
    if not dispute_id.startswith("dsp_") or len(dispute_id) <= 4:
        return None
    return "pay_" + dispute_id.removeprefix("dsp_")
