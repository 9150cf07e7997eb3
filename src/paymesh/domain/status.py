"""The payment state machine: statuses and the only moves between them.

Transitions are monotonic: a status never goes back, so a webhook that arrives late, twice
or out of order can only move a payment forward or be ignored.

Two moves step outside the table, each made by its own command on news that no payment
outcome carries: `Payment.retry` (after a retryable failure, back to pending) and
`Payment.close_dispute` when the merchant won (back to the captured status its refunds
leave it in, one of `DISPUTE_WON_RETURNS`). Neither is in `TRANSITIONS`, so no late
`succeeded` webhook can lift a dispute.
"""

from __future__ import annotations

from enum import StrEnum


class PaymentStatus(StrEnum):
    PENDING = "pending"  # recorded; the PSP has not answered yet
    REQUIRES_ACTION = "requires_action"  # 3-D Secure: the customer must authenticate
    PROCESSING = "processing"  # PSP accepted; outcome comes by webhook
    REQUIRES_CAPTURE = "requires_capture"  # authorised; manual capture or held for review
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    BLOCKED = "blocked"  # fraud: never sent to a PSP
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


S = PaymentStatus

TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.PENDING: frozenset(
        {
            S.REQUIRES_ACTION,
            S.PROCESSING,
            S.REQUIRES_CAPTURE,
            S.SUCCEEDED,
            S.FAILED,
            S.CANCELED,
            S.BLOCKED,
        }
    ),
    S.REQUIRES_ACTION: frozenset(
        {S.PROCESSING, S.REQUIRES_CAPTURE, S.SUCCEEDED, S.FAILED, S.CANCELED}
    ),
    S.PROCESSING: frozenset({S.REQUIRES_CAPTURE, S.SUCCEEDED, S.FAILED, S.CANCELED}),
    S.REQUIRES_CAPTURE: frozenset({S.SUCCEEDED, S.CANCELED, S.FAILED}),
    S.SUCCEEDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED}),
    S.PARTIALLY_REFUNDED: frozenset({S.REFUNDED, S.DISPUTED}),
    S.REFUNDED: frozenset({S.DISPUTED}),
    S.DISPUTED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
    S.BLOCKED: frozenset(),
}

#: Statuses in which the PSP may still change its mind: the sync job asks about these.
UNSETTLED = frozenset({S.PENDING, S.PROCESSING})
#: Money was taken: refunds and disputes apply.
CAPTURED = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED})
#: Where a won dispute returns a payment: the money is back, so it is captured again.
DISPUTE_WON_RETURNS = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED})


def can_move(current: PaymentStatus, target: PaymentStatus) -> bool:
    return target in TRANSITIONS[current]


def reachable(start: PaymentStatus) -> frozenset[PaymentStatus]:
    """Every status the table can lead to from `start` (not `start` itself: no cycles)."""
    seen: set[PaymentStatus] = set()
    todo = [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)
