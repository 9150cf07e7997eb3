"""Recovery: drive payments left unsettled (a crash, a lost PSP answer) to their true state.

Runs once at start and then periodically. `grace` keeps it off payments a live request is
still working on; at the start of an embedded server nothing is live, so it is zero there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from paymesh.domain.status import UNSETTLED
from paymesh.service.payments import PaymentService

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self,
        payments: PaymentService,
        clock: Callable[[], datetime],
        grace: timedelta = timedelta(seconds=90),
        interval: float = 30.0,
    ) -> None:
        self.payments = payments
        self.clock = clock
        self.grace = grace
        self.interval = interval

    async def run_once(self, grace: timedelta | None = None, batch: int = 200) -> int:
        before = self.clock() - (self.grace if grace is None else grace)
        stale = await self.payments.store.payments_to_sync(UNSETTLED, before, batch)
        for payment in stale:
            try:
                await self.payments.drive(payment)
            except Exception:
                log.exception("recovery of payment %s failed; will retry", payment.id)
        refunding = await self.payments.store.payments_with_pending_refunds(before, batch)
        for payment in refunding:
            for refund in payment.refunds:
                if refund.status != "pending" or refund.created_at >= before:
                    continue
                try:  # the same PSP key: a refund the PSP already made is answered, not redone
                    payment, _ = await self.payments.drive_refund(payment, refund.id)
                except Exception:
                    log.exception("recovery of refund %s failed; will retry", refund.id)
        return len(stale) + len(refunding)

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except Exception:
                log.exception("recovery pass failed")
