"""The unit of work every payment use case writes through.

A use case changes a payment in memory (the domain's transitions record their events) and
commits the change, its events and its idempotency record together, in one `Changeset`. A
commit that loses a race with another writer (a webhook, a concurrent request) re-reads the
payment and applies the same change again: both orders end the same. The events carry the
trace of the work that recorded them (`paymesh.tracing.stamp`), so their deliveries join it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from paymesh.domain.payment import Payment
from paymesh.ports.store import (
    Changeset,
    IdempotencyWrite,
    PaymentStore,
    UnitOfWork,
    VersionConflict,
)
from paymesh.service.errors import NotFound
from paymesh.tracing import stamp

#: Concurrent writers of one payment are a handful at most (the request, a webhook, the bus).
_WRITE_RETRIES = 8


class PaymentsAndCommit(UnitOfWork, PaymentStore, Protocol):
    """What the use cases need of the store: payments to read, and the one commit."""


class PaymentWrites:
    def __init__(
        self, store: PaymentsAndCommit, on_commit: Callable[[], None] = lambda: None
    ) -> None:
        self.store = store
        #: Wakes whatever publishes the outbox (the bus, the relay) once events are durable.
        self.on_commit = on_commit

    async def commit(self, changes: Changeset) -> None:
        stamp(changes.events)
        await self.store.commit(changes)
        changes.committed()
        if changes.events:
            self.on_commit()

    async def load(self, merchant_id: str, payment_id: str) -> Payment:
        payment = await self.store.get_payment(payment_id, merchant_id)
        if payment is None:
            raise NotFound(f"no such payment: {payment_id!r}", param="id")
        return payment

    async def settle(
        self,
        payment: Payment,
        change: Callable[[Payment], object],
        complete: Callable[[Payment], IdempotencyWrite | None] = lambda p: None,
    ) -> Payment:
        """Apply `change` and commit, with `complete`'s idempotency write; on a lost race
        re-read and apply again."""
        for _ in range(_WRITE_RETRIES):
            change(payment)
            changes = Changeset(idempotency=complete(payment))
            changes.save(payment)
            try:
                await self.commit(changes)
                return payment
            except VersionConflict:
                fresh = await self.store.get_payment(payment.id)
                assert fresh is not None
                payment = fresh
        raise RuntimeError(f"payment {payment.id}: too many concurrent writers")
