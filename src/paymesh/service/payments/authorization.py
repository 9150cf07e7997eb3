"""Driving a payment to its PSP's answer: the authorisation, sent (or sent again with the same
key), its answer recorded, and failover to the next PSP when the first provably did nothing.

Used by create-and-confirm (the first send), by the `process_payment` and `payment_retry`
targets of the bus, and by recovery (a payment left unsettled by a crash or a lost answer).
Whether to fail over is `paymesh.domain.failover`'s pure decision: never after an outcome that
may have charged, never two PSPs charged for one payment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from paymesh.domain import failover
from paymesh.domain.errors import InvalidTransition
from paymesh.domain.payment import Failure, Payment, PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest, PspError
from paymesh.ports.store import IdempotencyWrite
from paymesh.service.payments.answers import AnswersInFlight
from paymesh.service.payments.psp_caller import PspCaller, psp_key
from paymesh.service.payments.unit_of_work import PaymentWrites

log = logging.getLogger(__name__)

S = PaymentStatus
Completion = Callable[[Payment], IdempotencyWrite | None]


class AuthorizationDriver:
    def __init__(
        self,
        writes: PaymentWrites,
        psp: PspCaller,
        clock: Callable[[], datetime],
        answers: AnswersInFlight,
    ) -> None:
        self.writes = writes
        self.psp = psp
        self.clock = clock
        #: Where a webhook that overtakes the PSP's answer learns that it is on its way.
        self.answers = answers
        #: One driver of a payment at a time in this process, and how many wait for it.
        self._driving: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def _alone(self, payment_id: str) -> AsyncIterator[None]:
        lock, waiting = self._driving.get(payment_id) or (asyncio.Lock(), 0)
        self._driving[payment_id] = (lock, waiting + 1)
        try:
            async with lock:
                yield
        finally:
            lock, waiting = self._driving[payment_id]
            if waiting == 1:
                del self._driving[payment_id]
            else:
                self._driving[payment_id] = (lock, waiting - 1)

    async def drive(
        self, payment: Payment, first_send: bool = False, completion: Completion = lambda p: None
    ) -> tuple[Payment, bool]:
        """Ask the PSP about an unsettled payment and record its answer, with `completion`'s
        idempotency write in the same commit. Returns (payment, whether it was committed).

        With no PSP reference yet (we crashed, or the PSP did not answer) the authorisation
        is sent again with the same key: a PSP that already has it answers with the original.
        Only on the `first_send` of an authorisation can a PSP error prove nothing was
        charged; a resend after a crash may follow a send that did reach the PSP.

        Drives of one payment take turns, and all but a first send (whose caller has just
        written the payment) read it again first: `payment` may be what a bus target or
        recovery read before another driver settled that attempt or a retry began the next.
        Sent as read, that attempt's PSP key would charge beside the next attempt's.
        """
        async with self._alone(payment.id):
            if not first_send:
                fresh = await self.writes.store.get_payment(payment.id)
                if fresh is None:
                    return payment, False
                if (fresh.status, fresh.attempt) != (payment.status, payment.attempt):
                    return fresh, False  # moved on since: settled, or a later attempt begun
                payment = fresh
            return await self._drive(payment, first_send, completion)

    async def _drive(
        self, payment: Payment, first_send: bool, completion: Completion
    ) -> tuple[Payment, bool]:
        with self.answers.awaiting(payment.id):
            while True:
                payment, committed, failed_over = await self._one_psp(
                    payment, first_send, completion
                )
                if not failed_over:
                    return payment, committed

    async def retry(self, payment: Payment, max_attempts: int) -> Payment:
        """A new attempt after a retryable failure, sent at once (a new PSP key), while no
        other driver of this payment runs here."""
        now = self.clock()
        async with self._alone(payment.id):
            try:
                payment = await self.writes.settle(payment, lambda p: p.retry(now, max_attempts))
            except InvalidTransition:
                return payment  # already retried, or no longer retryable: nothing to do
            payment, _ = await self._drive(payment, first_send=True, completion=lambda p: None)
        return payment

    async def _one_psp(
        self, payment: Payment, first_send: bool, completion: Completion
    ) -> tuple[Payment, bool, bool]:
        """One PSP's turn; the last flag says the payment moved on to the next PSP."""
        connector = self.psp.connector_for(payment)
        if failover.before_call(
            first_send=first_send,
            can_fail_over=payment.can_fail_over(),
            circuit_open=not self.psp.allows(connector.name),
        ):
            return await self._fail_over(payment, f"{connector.name}: circuit open"), False, True
        known = payment.connector_payment_id is not None
        try:
            if payment.connector_payment_id is None:
                request = AuthorizeRequest(
                    payment_id=payment.id,
                    amount=payment.amount,
                    currency=payment.currency,
                    payment_method=payment.payment_method,
                    capture_method=payment.psp_capture_method,
                    customer_id=payment.customer_id,
                    description=payment.description,
                    metadata=payment.metadata,
                    idempotency_key=psp_key(payment.id, "authorize", payment.attempt),
                )
                outcome = await self.psp.call(connector.name, lambda: connector.authorize(request))
            else:
                ref = payment.connector_payment_id
                outcome = await self.psp.call(connector.name, lambda: connector.retrieve(ref))
        except PspError as exc:
            step = failover.after_call(
                failover.Attempt(
                    answered=False,
                    outcome_unknown=exc.outcome_unknown,
                    retryable=exc.retryable,
                    first_send=first_send,
                    known_to_psp=known,
                    can_fail_over=payment.can_fail_over(),
                )
            )
            if step == failover.Next.LEAVE:
                log.warning(
                    "payment %s: %s did not answer (%s); left %s for recovery",
                    payment.id,
                    exc.psp,
                    exc.code or exc.http_status,
                    payment.status,
                )
                return payment, False, False
            if step == failover.Next.FAIL_OVER:  # the PSP provably did not act
                reason = f"{exc.psp}: {exc.code or exc.http_status or 'unavailable'}"
                return await self._fail_over(payment, reason), False, True
            failure = Failure(
                code="psp_unavailable" if exc.retryable else (exc.code or "psp_rejected"),
                message=f"{exc.psp}: {exc.message}",
                retryable=exc.retryable,
            )
            outcome = PspOutcome(status=S.FAILED, failure=failure)
        else:
            soft = outcome.failure
            step = failover.after_call(
                failover.Attempt(
                    answered=True,
                    soft_decline=outcome.status == S.FAILED and soft is not None and soft.retryable,
                    first_send=first_send,
                    known_to_psp=known,
                    can_fail_over=payment.can_fail_over(),
                    route_retries_soft_declines=bool(
                        payment.routing and payment.routing.retry_soft_declines
                    ),
                )
            )
            if step == failover.Next.FAIL_OVER:
                # A soft decline the route lets another PSP try; the first charged nothing.
                assert soft is not None
                reason = f"{connector.name}: soft decline {soft.decline_code or soft.code}"
                return (
                    await self._fail_over(payment, reason, outcome.connector_payment_id),
                    False,
                    True,
                )
        now = self.clock()
        answer = outcome
        payment = await self.writes.settle(
            payment, lambda p: p.apply_psp_outcome(answer, now), completion
        )
        return payment, True, False

    async def _fail_over(
        self, payment: Payment, reason: str, declined_ref: str | None = None
    ) -> Payment:
        now = self.clock()

        def move(p: Payment) -> None:
            if declined_ref and not p.connector_payment_id:
                p.connector_payment_id = declined_ref  # retired by the move: late news ignored
            p.fail_over(reason, now)

        log.info("payment %s: failing over (%s)", payment.id, reason)
        return await self.writes.settle(payment, move)
