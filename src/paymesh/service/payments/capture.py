"""Capture an authorised payment, in full or in part, once whatever the retries.

The PSP is asked with the payment's own capture key, so a retried or concurrent capture is
one capture at the PSP; the PSP's answer is recorded with the reply for the client's key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from paymesh.domain import money
from paymesh.domain.status import PaymentStatus
from paymesh.service.idempotency import Claim, fingerprint
from paymesh.service.payments.commands import CapturePayment
from paymesh.service.payments.idempotent import Idempotent
from paymesh.service.payments.psp_caller import PspCaller, psp_key
from paymesh.service.payments.unit_of_work import PaymentWrites
from paymesh.service.views import Reply


class CapturePaymentHandler:
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
        self, merchant_id: str, command: CapturePayment, idempotency_key: str | None
    ) -> Reply:
        if command.amount is not None:
            money.check_amount(command.amount)
        fp = fingerprint("capture", {"payment_id": command.payment_id, "amount": command.amount})
        return await self.idempotent.run(
            merchant_id,
            idempotency_key,
            fp,
            lambda: command.payment_id,
            lambda claim: self._capture(merchant_id, command, claim),
        )

    async def _capture(
        self, merchant_id: str, command: CapturePayment, claim: Claim | None
    ) -> Reply:
        payment = await self.writes.load(merchant_id, command.payment_id)
        if payment.status == PaymentStatus.SUCCEEDED and claim is not None and claim.resumed:
            # The taken-over claim was never written: store it with the reply, or every
            # retry would conflict with a lease token nobody stored.
            return await self.idempotent.complete(payment, claim, first_write=True)
        to_capture = payment.ensure_capturable(command.amount)
        await self.idempotent.store_claim(claim)
        ref = payment.connector_payment_id
        assert ref is not None
        connector = self.psp.connector_for(payment)
        outcome = await self.psp.answer_or_error(
            connector.name,
            lambda: connector.capture(
                ref, to_capture, psp_key(payment.id, "capture"), currency=payment.currency
            ),
        )
        now = self.clock()
        payment = await self.writes.settle(payment, lambda p: p.apply_psp_outcome(outcome, now))
        return await self.idempotent.complete(payment, claim)
