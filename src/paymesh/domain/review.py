"""A manual fraud review: a payment authorised with its capture held until a person decides.

A review belongs to its payment's aggregate (one at most per payment), so opening or closing
it commits with the payment change it explains: an approved review and its capture, a
rejected one and its void, are one write each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ReviewStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(slots=True)
class Review:
    id: str
    status: ReviewStatus
    opened_at: datetime
    reason: str  # why it was opened: the fraud factors, or the rule that asked
    closed_at: datetime | None = None


def review_id_for(payment_id: str) -> str:
    """The review's id is derived from its payment's: at most one each, found without a lookup."""
    return "rev_" + payment_id.removeprefix("pay_")


def payment_id_for(review_id: str) -> str | None:
    if not review_id.startswith("rev_") or len(review_id) <= 4:
        return None
    return "pay_" + review_id.removeprefix("rev_")
