"""A manual fraud review: a payment authorised with its capture held until a person decides.

A review belongs to its payment's aggregate (one at most per payment), so opening or closing
it commits with the payment change it explains: an approved review and its capture, a
rejected one and its void, are one write each.

A person approves or rejects. When the PSP settles the payment first (a capture made at the
PSP, an authorisation that failed there), no one decided: the review is `closed`, with the
reason in `closed_reason` and in its `review.closed` event, so the fraud team sees money that
moved past the hold; there is nothing left to approve or reject.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ReviewStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    CLOSED = "closed"  # settled at the PSP before anyone decided: see `closed_reason`


@dataclass(slots=True)
class Review:
    id: str
    status: ReviewStatus
    opened_at: datetime
    reason: str  # why it was opened: the fraud factors, or the rule that asked
    closed_at: datetime | None = None
    #: Why a review closed without a decision (status `closed`): CAPTURED_AT_PSP or
    #: FAILED_AT_PSP.
    closed_reason: str | None = None
    #: What the reviewer wrote when approving or rejecting: the audit trail of a decision.
    note: str | None = None


#: A `closed` review's reasons.
CAPTURED_AT_PSP = "captured_at_psp"
FAILED_AT_PSP = "failed_at_psp"


def review_id_for(payment_id: str) -> str:
    """The review's id is derived from its payment's: at most one each, found without a lookup."""
    return "rev_" + payment_id.removeprefix("pay_")


def payment_id_for(review_id: str) -> str | None:
    if not review_id.startswith("rev_") or len(review_id) <= 4:
        return None
    return "pay_" + review_id.removeprefix("rev_")
