"""A dispute resolved, as PayPal reports it (`sandbox.disputes` asks).

    won    status RESOLVED, dispute_outcome.outcome_code RESOLVED_SELLER_FAVOUR
    lost   status RESOLVED, dispute_outcome.outcome_code RESOLVED_BUYER_FAVOUR (with the
           amount refunded to the buyer)

either way announced by `CUSTOMER.DISPUTE.RESOLVED`, its resource the dispute as resolved.
"""

from __future__ import annotations

from datetime import UTC, datetime

from paymesh.sandbox.disputes import DisputeAlreadyClosed
from paymesh.sandbox.paypal.events import EventPublisher
from paymesh.sandbox.paypal.state import Merchants

__all__ = ["close"]


def close(merchants: Merchants, events: EventPublisher, dispute_id: str, won: bool) -> None:
    """Raises KeyError for an unknown dispute, DisputeAlreadyClosed for a resolved one."""
    client_id, dispute, urls = merchants.disputes[dispute_id]
    if dispute.outcome is not None:
        raise DisputeAlreadyClosed(dispute_id)
    dispute.outcome = "RESOLVED_SELLER_FAVOUR" if won else "RESOLVED_BUYER_FAVOUR"
    dispute.resolved = datetime.now(UTC)
    events.publish(
        client_id,
        "CUSTOMER.DISPUTE.RESOLVED",
        "dispute",
        dispute.wire(urls),
        f"A dispute was resolved with case # {dispute.id}",
        urls,
        resource_version="1.1",
    )
