"""Built-in event handlers. Each records the event id it applied in the same commit as its
effect, so a redelivered event has no second effect."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime

from paymesh.ports.store import AlreadyProcessed, Changeset, Notification, Store, StoredEvent
from paymesh.service import ids


def send_confirmation(store: Store, clock: Callable[[], datetime]) -> \
        Callable[[StoredEvent], Awaitable[None]]:
    """Records the customer's payment confirmation (email delivery comes behind a notifier)."""

    async def handle(event: StoredEvent) -> None:
        detail = event.envelope["detail"]
        notification = Notification(
            id=ids.new_id("ntf"), merchant_id=event.merchant_id, payment_id=event.payment_id,
            event_id=event.id, channel="email", recipient=str(detail.get("customer_id")),
            template=event.type.replace(".", "_"), created_at=clock())
        with contextlib.suppress(AlreadyProcessed):
            await store.commit(Changeset(processed=[("send_confirmation", event.id)],
                                         notifications=[notification]))

    return handle
