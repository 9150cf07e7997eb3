"""Refund a captured payment, in full or in part.

The amount is reserved, durably, before the PSP is asked, so two refunds can never together
exceed what was captured. The PSP is asked with the refund's own key: asking again (a retry
with the client's key, or recovery) is one refund. A PSP that accepts without a verdict
(Adyen) settles it later by webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from paymesh.domain import money
from paymesh.domain.payment import Payment
from paymesh.ports.connector import PspError
from paymesh.service import ids
from paymesh.service.idempotency import Claim, fingerprint
from paymesh.service.payments.commands import RefundPayment
from paymesh.service.payments.idempotent import Idempotent
from paymesh.service.payments.psp_caller import PspCaller, psp_key
from paymesh.service.payments.unit_of_work import PaymentWrites
from paymesh.service.views import Reply, refund_view

log = logging.getLogger(__name__)


class RefundDriver:
    """Asks the PSP for a reserved refund and records its answer (also used by recovery)."""

    def __init__(
        self, writes: PaymentWrites, psp: PspCaller, clock: Callable[[], datetime]
    ) -> None:
        self.writes = writes
        self.psp = psp
        self.clock = clock

    async def drive(self, payment: Payment, refund_id: str) -> tuple[Payment, bool]:
        """Ask the PSP to refund (again: same PSP key, one refund) and record its answer.
        Returns the payment and whether the PSP answered at all."""
        refund = payment.refund(refund_id)
        if refund.status != "pending" or payment.connector_payment_id is None:
            return payment, True
        connector = self.psp.connector_for(payment)
        ref = payment.connector_payment_id
        try:
            outcome = await self.psp.call(
                connector.name,
                lambda: connector.refund(
                    ref,
                    refund.amount,
                    refund.id,
                    refund.reason,
                    psp_key(refund.id, "refund"),
                    currency=payment.currency,
                ),
            )
        except PspError as exc:
            log.warning(
                "refund %s: %s did not answer (%s); left pending",
                refund_id,
                exc.psp,
                exc.code or exc.http_status,
            )
            return payment, False
        now = self.clock()
        if outcome.succeeded is None:  # accepted; the verdict comes by webhook
            if outcome.connector_refund_id and not refund.connector_refund_id:
                psp_ref = outcome.connector_refund_id
                payment = await self.writes.settle(
                    payment, lambda p: p.note_refund_reference(refund_id, psp_ref, now)
                )
            return payment, True
        verdict = outcome.succeeded
        return await self.writes.settle(
            payment,
            lambda p: p.settle_refund(
                refund_id, verdict, now, outcome.connector_refund_id, outcome.failure_reason
            ),
        ), True


class RefundPaymentHandler:
    def __init__(
        self,
        writes: PaymentWrites,
        idempotent: Idempotent,
        driver: RefundDriver,
        clock: Callable[[], datetime],
    ) -> None:
        self.writes = writes
        self.idempotent = idempotent
        self.driver = driver
        self.clock = clock

    async def handle(
        self, merchant_id: str, command: RefundPayment, idempotency_key: str | None
    ) -> Reply:
        if command.amount is not None:
            money.check_amount(command.amount)
        fp = fingerprint(
            "refund",
            {"payment_id": command.payment_id, "amount": command.amount, "reason": command.reason},
        )
        return await self.idempotent.run(
            merchant_id,
            idempotency_key,
            fp,
            lambda: ids.new_id("re"),
            lambda claim: self._refund(merchant_id, command, claim),
        )

    async def _refund(self, merchant_id: str, command: RefundPayment, claim: Claim | None) -> Reply:
        payment = await self.writes.load(merchant_id, command.payment_id)
        refund_id = claim.resource_id if claim else ids.new_id("re")
        now = self.clock()

        def reserve(p: Payment) -> None:
            if not any(r.id == refund_id for r in p.refunds):  # not on a resumed claim
                p.start_refund(refund_id, command.amount, command.reason, now)

        payment = await self.writes.settle(
            payment, reserve, lambda p: claim.write if claim else None
        )
        payment, answered = await self.driver.drive(payment, refund_id)
        reply = Reply.of(201, refund_view(payment.refund(refund_id)))
        if claim is not None and not answered:
            # As with a payment: no answer is kept, so a retry with this key asks the PSP
            # again (same PSP key: never a second refund). Recovery asks too.
            await self.idempotent.release(claim)
            return reply
        return await self.idempotent.store_reply(claim, reply)
