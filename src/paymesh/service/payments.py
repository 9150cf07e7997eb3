"""Payment use cases: create-and-confirm, capture, cancel, refund, and driving a payment to
its true state.

Every step that moves money is recorded before the PSP is asked (so a crash leaves a trace the
recovery job follows) and asks the PSP with a key derived from our ids (so asking again can
never charge twice). PSP answers and webhooks go through the same `apply_psp_outcome`, and a
write that loses a race with a webhook re-reads and re-applies: both orders end the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from paymesh.domain import failover, money
from paymesh.domain.errors import InvalidTransition
from paymesh.domain.payment import Failure, Payment, PspOutcome, RiskContext, Routing
from paymesh.domain.routing import PaymentFacts, method_type
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest, Connector, PspError
from paymesh.ports.risk import RiskInput, RiskScorer
from paymesh.ports.store import (
    Changeset,
    IdempotencyConflict,
    IdempotencyWrite,
    Store,
    VersionConflict,
)
from paymesh.service import ids
from paymesh.service.circuit import CircuitBreakers
from paymesh.service.errors import (
    BadRequest,
    IdempotencyInFlight,
    NotFound,
    PspUnavailable,
    StateConflict,
)
from paymesh.service.idempotency import Claim, IdempotencyGuard, derived_key, fingerprint
from paymesh.service.psp_routing import RoutingService
from paymesh.service.views import Reply, payment_reply, refund_view

log = logging.getLogger(__name__)
T = TypeVar("T")

S = PaymentStatus
_WRITE_RETRIES = 8
#: Retries of one PSP call with the same key, for answers that say nothing was done (429,
#: refused connection) or may have been done (timeout, 5xx): both are safe with the same key.
_PSP_RETRY_DELAYS = (0.05, 0.2)


@dataclass(frozen=True, slots=True)
class CreatePayment:
    amount: int
    currency: str
    customer_id: str
    payment_method: str
    capture_method: str = "automatic"
    connector: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    risk: RiskContext = field(default_factory=RiskContext)


def psp_key(resource_id: str, operation: str, attempt: int = 1) -> str:
    """The PSP idempotency key: the same for every retry of one operation, forever."""
    return f"paymesh:{resource_id}:{operation}:{attempt}"


class PaymentService:
    def __init__(self, store: Store, connectors: dict[str, Connector], scorer: RiskScorer,
                 clock: Callable[[], datetime], default_connector: str = "stripe",
                 on_commit: Callable[[], None] = lambda: None,
                 routing: RoutingService | None = None,
                 breakers: CircuitBreakers | None = None) -> None:
        self.store = store
        self.connectors = connectors
        self.breakers = breakers or CircuitBreakers()
        self.routing = routing
        self.scorer = scorer
        self.clock = clock
        self.default_connector = default_connector
        self.on_commit = on_commit
        self.guard = IdempotencyGuard(store, clock)

    # -- plumbing -------------------------------------------------------------------------

    async def commit(self, changes: Changeset) -> None:
        await self.store.commit(changes)
        changes.committed()
        if changes.events:
            self.on_commit()

    async def settle(self, payment: Payment, change: Callable[[Payment], object],
                      complete: Callable[[Payment], IdempotencyWrite | None] = lambda p: None,
                      ) -> Payment:
        """Apply `change` and commit; on a lost race re-read and apply again."""
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

    async def _call_psp(self, psp: str, call: Callable[[], Awaitable[T]]) -> T:
        unknown = False
        for delay in (*_PSP_RETRY_DELAYS, None):
            try:
                outcome = await call()
            except PspError as exc:
                if exc.retryable:  # the PSP not answering; a 4xx is our mistake, not its
                    self.breakers.failed(exc.psp)
                else:
                    self.breakers.succeeded(exc.psp)
                # Once any try may have reached the PSP, the whole call's outcome is unknown.
                unknown = unknown or exc.outcome_unknown
                exc.outcome_unknown = unknown
                if not exc.retryable or delay is None:
                    raise
                await asyncio.sleep(delay)
            else:
                self.breakers.succeeded(psp)
                return outcome
        raise AssertionError("unreachable")

    def connector_for(self, payment: Payment) -> Connector:
        return self.connectors[payment.connector]

    async def _guarded(self, merchant_id: str, key: str | None, fp: str,
                       new_resource_id: Callable[[], str],
                       run: Callable[[Claim | None], Awaitable[Reply]]) -> Reply:
        if key is None:
            return await run(None)
        for _ in range(2):
            begun = await self.guard.begin(merchant_id, key, fp, new_resource_id)
            if isinstance(begun, Reply):
                return begun
            try:
                return await run(begun)
            except IdempotencyConflict:
                continue  # another request claimed it first: look again (replay, 409 or 422)
            except Exception:
                # Nothing to replay: free the key at once so the client's retry runs (and
                # resumes the same resource) instead of waiting out the lease.
                await self._release(begun)
                raise
        raise IdempotencyInFlight("a request with this idempotency key is still being processed")

    async def _release(self, claim: Claim) -> None:
        now = self.clock()
        record = replace(claim.write.record, locked_until=now)
        # A conflict means the claim was never written, or is someone else's now.
        with contextlib.suppress(IdempotencyConflict):
            await self.store.commit(Changeset(idempotency=IdempotencyWrite(
                record, now, expected_token=claim.write.record.lease_token)))

    # -- create and confirm ---------------------------------------------------------------

    async def create(self, merchant_id: str, req: CreatePayment,
                     idempotency_key: str | None) -> Reply:
        if req.connector is not None and req.connector not in self.connectors:
            raise BadRequest(f"unknown connector {req.connector!r}; configured: "
                             f"{', '.join(sorted(self.connectors))}", param="connector")
        key = idempotency_key
        if key is None and "order_id" in req.metadata:
            key = derived_key(merchant_id, req.amount, req.currency, req.customer_id,
                              req.metadata["order_id"])
        fp = fingerprint("create_payment", req)
        return await self._guarded(merchant_id, key, fp, lambda: ids.new_id("pay"),
                                   lambda claim: self._create(merchant_id, req, claim))

    async def _plan(self, merchant_id: str, req: CreatePayment,
                    payment_id: str) -> tuple[str, Routing | None]:
        if self.routing is None:
            return req.connector or self.default_connector, None
        facts = PaymentFacts(amount=req.amount, currency=req.currency, country=req.risk.country,
                             payment_method_type=method_type(req.payment_method))
        return await self.routing.plan(merchant_id, facts, payment_id, req.connector)

    async def _create(self, merchant_id: str, req: CreatePayment,
                      claim: Claim | None) -> Reply:
        now = self.clock()
        if claim is not None and claim.resumed:
            existing = await self.store.get_payment(claim.resource_id)
            if existing is not None:
                await self.commit(Changeset(idempotency=claim.write))
                return await self._finish(existing, claim)
        payment_id = claim.resource_id if claim else ids.new_id("pay")
        assessment = await self.scorer.assess(RiskInput(
            payment_id=payment_id, merchant_id=merchant_id, customer_id=req.customer_id,
            amount=req.amount, currency=req.currency, payment_method=req.payment_method,
            context=req.risk))
        connector, routing = await self._plan(merchant_id, req, payment_id)
        payment = Payment.initiate(
            now=now, fraud=assessment,
            id=payment_id, merchant_id=merchant_id,
            amount=req.amount, currency=req.currency, customer_id=req.customer_id,
            payment_method=req.payment_method, capture_method=req.capture_method,
            connector=connector, description=req.description, metadata=dict(req.metadata),
            risk=req.risk, routing=routing)
        changes = Changeset(idempotency=claim.write if claim else None)
        if assessment.decision == "block":
            payment.block(now)
            reply = payment_reply(payment, created=True)
            if claim is not None:
                changes.idempotency = claim.complete(reply, now, first_write=True)
            changes.save(payment)
            await self.commit(changes)
            return reply
        # Durable before the PSP hears of it: a crash from here on leaves a pending payment
        # that recovery drives with the same PSP key.
        changes.save(payment)
        await self.commit(changes)
        return await self._finish(payment, claim, first_send=True)

    def _reply_for(self, payment: Payment) -> Reply:
        if payment.status == S.FAILED and payment.failure and \
                payment.failure.code == "psp_unavailable":
            return Reply.of(503, PspUnavailable(
                payment.failure.message, extra={"payment_id": payment.id}).body())
        return payment_reply(payment, created=True)

    async def _finish(self, payment: Payment, claim: Claim | None,
                      first_send: bool = False) -> Reply:
        """Drive a recorded payment as far as the PSP takes it now; reply and complete."""
        stored: list[Reply] = []

        def completion(p: Payment) -> IdempotencyWrite | None:
            stored[:] = [self._reply_for(p)]
            return claim.complete(stored[0], self.clock()) if claim else None

        if payment.status == S.PENDING:
            payment, completed = await self.drive(payment, first_send, completion)
            if completed:  # the reply was stored in the same commit as the PSP's answer
                return stored[0]
        reply = self._reply_for(payment)
        if claim is not None and payment.status == S.PENDING:
            # The PSP's answer was lost: keep no reply, so a retry with this key asks the
            # PSP again (same PSP key, so never a second charge) and stores the true one.
            await self._release(claim)
        elif claim is not None:
            await self.commit(Changeset(idempotency=claim.complete(reply, self.clock())))
        return reply

    async def drive(self, payment: Payment, first_send: bool = False,
                    completion: Callable[[Payment], IdempotencyWrite | None] = lambda p: None,
                    ) -> tuple[Payment, bool]:
        """Ask the PSP about an unsettled payment and record its answer, with `completion`'s
        idempotency write in the same commit. Returns (payment, whether it was committed).

        With no PSP reference yet (we crashed, or the PSP did not answer) the authorisation
        is sent again with the same key: a PSP that already has it answers with the original.
        Only on the `first_send` of an authorisation can a PSP error prove nothing was
        charged; a resend after a crash may follow a send that did reach the PSP.
        """
        while True:
            payment, committed, failed_over = await self._drive_once(payment, first_send,
                                                                     completion)
            if not failed_over:
                return payment, committed

    async def _drive_once(self, payment: Payment, first_send: bool,
                          completion: Callable[[Payment], IdempotencyWrite | None],
                          ) -> tuple[Payment, bool, bool]:
        """One PSP's turn; the last flag says the payment moved on to the next PSP."""
        connector = self.connector_for(payment)
        if failover.before_call(first_send=first_send, can_fail_over=payment.can_fail_over(),
                                circuit_open=not self.breakers.allows(connector.name)):
            return await self._fail_over(payment, f"{connector.name}: circuit open"), False, True
        known = payment.connector_payment_id is not None
        try:
            if payment.connector_payment_id is None:
                request = AuthorizeRequest(
                    payment_id=payment.id, amount=payment.amount, currency=payment.currency,
                    payment_method=payment.payment_method,
                    capture_method=payment.psp_capture_method,
                    customer_id=payment.customer_id, description=payment.description,
                    metadata=payment.metadata,
                    idempotency_key=psp_key(payment.id, "authorize", payment.attempt))
                outcome = await self._call_psp(connector.name,
                                               lambda: connector.authorize(request))
            else:
                ref = payment.connector_payment_id
                outcome = await self._call_psp(connector.name, lambda: connector.retrieve(ref))
        except PspError as exc:
            step = failover.after_call(failover.Attempt(
                answered=False, outcome_unknown=exc.outcome_unknown, retryable=exc.retryable,
                first_send=first_send, known_to_psp=known,
                can_fail_over=payment.can_fail_over()))
            if step == failover.Next.LEAVE:
                log.warning("payment %s: %s did not answer (%s); left %s for recovery",
                            payment.id, exc.psp, exc.code or exc.http_status, payment.status)
                return payment, False, False
            if step == failover.Next.FAIL_OVER:  # the PSP provably did not act
                reason = f"{exc.psp}: {exc.code or exc.http_status or 'unavailable'}"
                return await self._fail_over(payment, reason), False, True
            failure = Failure(code="psp_unavailable" if exc.retryable else
                              (exc.code or "psp_rejected"),
                              message=f"{exc.psp}: {exc.message}", retryable=exc.retryable)
            outcome = PspOutcome(status=S.FAILED, failure=failure)
        else:
            soft = outcome.failure
            step = failover.after_call(failover.Attempt(
                answered=True,
                soft_decline=outcome.status == S.FAILED and soft is not None and soft.retryable,
                first_send=first_send, known_to_psp=known,
                can_fail_over=payment.can_fail_over(),
                route_retries_soft_declines=bool(payment.routing
                                                 and payment.routing.retry_soft_declines)))
            if step == failover.Next.FAIL_OVER:
                # A soft decline the route lets another PSP try; the first charged nothing.
                assert soft is not None
                reason = f"{connector.name}: soft decline {soft.decline_code or soft.code}"
                return await self._fail_over(payment, reason, outcome.connector_payment_id), \
                    False, True
        now = self.clock()
        payment = await self.settle(payment, lambda p: p.apply_psp_outcome(outcome, now),
                                    completion)
        return payment, True, False

    async def _fail_over(self, payment: Payment, reason: str,
                         declined_ref: str | None = None) -> Payment:
        now = self.clock()

        def move(p: Payment) -> None:
            if declined_ref and not p.connector_payment_id:
                p.connector_payment_id = declined_ref  # retired by the move: late news ignored
            p.fail_over(reason, now)

        log.info("payment %s: failing over (%s)", payment.id, reason)
        return await self.settle(payment, move)

    async def retry(self, payment: Payment, max_attempts: int) -> Payment:
        """A new attempt after a retryable failure, sent at once (a new PSP key)."""
        now = self.clock()
        try:
            payment = await self.settle(payment, lambda p: p.retry(now, max_attempts))
        except InvalidTransition:
            return payment  # already retried, or no longer retryable: nothing to do
        payment, _ = await self.drive(payment, first_send=True)
        return payment

    # -- capture and cancel ---------------------------------------------------------------

    async def _load(self, merchant_id: str, payment_id: str) -> Payment:
        payment = await self.store.get_payment(payment_id, merchant_id)
        if payment is None:
            raise NotFound(f"no such payment: {payment_id!r}", param="id")
        return payment

    async def capture(self, merchant_id: str, payment_id: str, amount: int | None,
                      idempotency_key: str | None) -> Reply:
        if amount is not None:
            money.check_amount(amount)
        fp = fingerprint("capture", {"payment_id": payment_id, "amount": amount})

        async def run(claim: Claim | None) -> Reply:
            payment = await self._load(merchant_id, payment_id)
            if payment.status == S.SUCCEEDED and claim is not None and claim.resumed:
                # The taken-over claim was never written: store it with the reply, or every
                # retry would conflict with a lease token nobody stored.
                return await self._complete(payment, claim, first_write=True)
            to_capture = payment.ensure_capturable(amount)
            if claim is not None:
                await self.commit(Changeset(idempotency=claim.write))
            ref = payment.connector_payment_id
            assert ref is not None
            connector = self.connector_for(payment)
            outcome = await self.psp_or_503(connector.name, lambda: connector.capture(
                ref, to_capture, psp_key(payment.id, "capture"), currency=payment.currency))
            now = self.clock()
            payment = await self.settle(payment, lambda p: p.apply_psp_outcome(outcome, now))
            return await self._complete(payment, claim)

        return await self._guarded(merchant_id, idempotency_key, fp, lambda: payment_id, run)

    async def cancel(self, merchant_id: str, payment_id: str,
                     idempotency_key: str | None) -> Reply:
        fp = fingerprint("cancel", {"payment_id": payment_id})

        async def run(claim: Claim | None) -> Reply:
            payment = await self._load(merchant_id, payment_id)
            if payment.status == S.CANCELED:
                return await self._complete(payment, claim, first_write=True)
            payment.ensure_cancelable()
            if payment.connector_payment_id is None:
                raise StateConflict("the payment has not reached its PSP yet; retry shortly",
                                    code="payment_not_ready")
            if claim is not None:
                await self.commit(Changeset(idempotency=claim.write))
            ref = payment.connector_payment_id
            connector = self.connector_for(payment)
            outcome = await self.psp_or_503(
                connector.name, lambda: connector.cancel(ref, psp_key(payment.id, "cancel")))
            now = self.clock()
            payment = await self.settle(payment, lambda p: p.apply_psp_outcome(outcome, now))
            return await self._complete(payment, claim)

        return await self._guarded(merchant_id, idempotency_key, fp, lambda: payment_id, run)

    async def psp_or_503(self, psp: str,
                         call: Callable[[], Awaitable[PspOutcome]]) -> PspOutcome:
        try:
            return await self._call_psp(psp, call)
        except PspError as exc:
            if not exc.retryable:  # the PSP answered no: asking again will not change that
                raise StateConflict(f"{exc.psp} refused the request: {exc.message}",
                                    code="psp_refused") from exc
            raise PspUnavailable(f"{exc.psp} did not complete the request: {exc.message}; "
                                 "retrying with the same idempotency key is safe",
                                 code="psp_unavailable") from exc

    async def _complete(self, payment: Payment, claim: Claim | None,
                        first_write: bool = False) -> Reply:
        """Store the reply; `first_write` when the claim itself was not written yet."""
        reply = payment_reply(payment)
        if claim is not None:
            await self.commit(Changeset(idempotency=claim.complete(
                reply, self.clock(), first_write=first_write)))
        return reply

    # -- refunds --------------------------------------------------------------------------

    async def refund(self, merchant_id: str, payment_id: str, amount: int | None,
                     reason: str | None, idempotency_key: str | None) -> Reply:
        if amount is not None:
            money.check_amount(amount)
        fp = fingerprint("refund", {"payment_id": payment_id, "amount": amount,
                                    "reason": reason})

        async def run(claim: Claim | None) -> Reply:
            payment = await self._load(merchant_id, payment_id)
            refund_id = claim.resource_id if claim else ids.new_id("re")
            now = self.clock()

            def reserve(p: Payment) -> None:
                if not any(r.id == refund_id for r in p.refunds):  # not on a resumed claim
                    p.start_refund(refund_id, amount, reason, now)

            # The amount is reserved, durably, before the PSP is asked.
            payment = await self.settle(payment, reserve,
                                         lambda p: claim.write if claim else None)
            payment, answered = await self.drive_refund(payment, refund_id)
            reply = Reply.of(201, refund_view(payment.refund(refund_id)))
            if claim is not None and not answered:
                # As with a payment: no answer is kept, so a retry with this key asks the PSP
                # again (same PSP key: never a second refund). Recovery asks too.
                await self._release(claim)
            elif claim is not None:
                await self.commit(Changeset(idempotency=claim.complete(reply, self.clock())))
            return reply

        return await self._guarded(merchant_id, idempotency_key, fp, lambda: ids.new_id("re"),
                                   run)

    async def drive_refund(self, payment: Payment, refund_id: str) -> tuple[Payment, bool]:
        """Ask the PSP to refund (again: same PSP key, one refund) and record its answer.
        Returns the payment and whether the PSP answered at all."""
        refund = payment.refund(refund_id)
        if refund.status != "pending" or payment.connector_payment_id is None:
            return payment, True
        connector = self.connector_for(payment)
        ref = payment.connector_payment_id
        try:
            outcome = await self._call_psp(connector.name, lambda: connector.refund(
                ref, refund.amount, refund.id, refund.reason, psp_key(refund.id, "refund"),
                currency=payment.currency))
        except PspError as exc:
            log.warning("refund %s: %s did not answer (%s); left pending", refund_id, exc.psp,
                        exc.code or exc.http_status)
            return payment, False
        now = self.clock()
        if outcome.succeeded is None:  # accepted; the verdict comes by webhook
            if outcome.connector_refund_id and not refund.connector_refund_id:
                psp_ref = outcome.connector_refund_id
                payment = await self.settle(
                    payment, lambda p: p.note_refund_reference(refund_id, psp_ref, now))
            return payment, True
        verdict = outcome.succeeded
        return await self.settle(payment, lambda p: p.settle_refund(
            refund_id, verdict, now, outcome.connector_refund_id, outcome.failure_reason)), True
