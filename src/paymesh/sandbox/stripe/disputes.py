"""A dispute closed by the card issuer, as Stripe reports it (`sandbox.disputes` asks).

    won    status won, the funds back in a `dispute_reversal` balance transaction (the
           dispute fee stays taken); `charge.dispute.funds_reinstated`, then
           `charge.dispute.closed`
    lost   status lost; `charge.dispute.closed`

Both are the bank's doing, not an API request's: the events' `request` is null.
"""

from __future__ import annotations

from paymesh.sandbox.disputes import DisputeAlreadyClosed
from paymesh.sandbox.stripe.accounts import Accounts
from paymesh.sandbox.stripe.calls import now
from paymesh.sandbox.stripe.events import EventPublisher
from paymesh.sandbox.stripe.ids import new_id
from paymesh.sandbox.stripe.objects import EventRequest

__all__ = ["close"]

_BY_THE_BANK = EventRequest(id=None, idempotency_key=None)


def close(accounts: Accounts, events: EventPublisher, dispute_id: str, won: bool) -> None:
    """Raises KeyError for a dispute no account holds, DisputeAlreadyClosed for a decided one."""
    for account in accounts:
        dispute = account.disputes.get(dispute_id)
        if dispute is not None:
            break
    else:
        raise KeyError(dispute_id)
    if dispute.status in ("won", "lost"):
        raise DisputeAlreadyClosed(dispute_id)
    dispute.status = "won" if won else "lost"
    if won:
        dispute.balance_transactions.append(
            {
                "id": new_id("txn"),
                "object": "balance_transaction",
                "amount": dispute.amount,
                "created": now(),
                "currency": dispute.currency,
                "fee": 0,
                "net": dispute.amount,
                "reporting_category": "dispute_reversal",
                "type": "adjustment",
            }
        )
        events.publish(account, "charge.dispute.funds_reinstated", dispute, _BY_THE_BANK)
    events.publish(account, "charge.dispute.closed", dispute, _BY_THE_BANK)
