"""Cancel (void) an authorisation that was not captured.

A payment whose PSP answer is not recorded yet cannot be cancelled (409 `payment_not_ready`):
there is nothing at the PSP to name. A cancelled payment answers its cancellation again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from paymesh.domain.status import PaymentStatus
from paymesh.service.errors import StateConflict
from paymesh.service.idempotency import Claim, fingerprint
from paymesh.service.payments.commands import CancelPayment
from paymesh.service.payments.idempotent import Idempotent
from paymesh.service.payments.psp_caller import PspCaller, psp_key
from paymesh.service.payments.unit_of_work import PaymentWrites
from paymesh.service.views import Reply


class CancelPaymentHandler:
    def __init__(
        self,
        writes: PaymentWrites,
        idempotent: Idempotent,
        psp: PspCaller,
        clock: Callable[[], datetime],
    ) -> None:
        self.writes = writes
        self.idempotent = idempotent
        self.psp = psp
        self.clock = clock

    async def handle(
        self, merchant_id: str, command: CancelPayment, idempotency_key: str | None
    ) -> Reply:
        fp = fingerprint("cancel", {"payment_id": command.payment_id})
        return await self.idempotent.run(
            merchant_id,
            idempotency_key,
            fp,
            lambda: command.payment_id,
            lambda claim: self._cancel(merchant_id, command, claim),
        )

    async def _cancel(self, merchant_id: str, command: CancelPayment, claim: Claim | None) -> Reply:
        payment = await self.writes.load(merchant_id, command.payment_id)
        if payment.status == PaymentStatus.CANCELED:
            return await self.idempotent.complete(payment, claim, first_write=True)
        payment.ensure_cancelable()
        if payment.connector_payment_id is None:
            raise StateConflict(
                "the payment has not reached its PSP yet; retry shortly", code="payment_not_ready"
            )
        await self.idempotent.store_claim(claim)
        ref = payment.connector_payment_id
        connector = self.psp.connector_for(payment)
        outcome = await self.psp.answer_or_error(
            connector.name, lambda: connector.cancel(ref, psp_key(payment.id, "cancel"))
        )
        now = self.clock()
        payment = await self.writes.settle(payment, lambda p: p.apply_psp_outcome(outcome, now))
        return await self.idempotent.complete(payment, claim)
