"""Create and confirm a payment: score it, choose its PSP, record it, then authorise it.

The payment is durable before the PSP hears of it: a crash from then on leaves a pending
payment that recovery drives with the same PSP key. A fraud block is recorded and answered
without any PSP call. Under an idempotency key (or one derived from the order id) the claim
is written with the payment, and the reply with the PSP's answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from paymesh.domain.payment import Payment, RiskContext, Routing
from paymesh.domain.routing import PaymentFacts, method_type
from paymesh.domain.status import PaymentStatus
from paymesh.ports.risk import RiskInput, RiskScorer
from paymesh.ports.store import Changeset, IdempotencyWrite
from paymesh.service import ids
from paymesh.service.errors import BadRequest, PspUnavailable
from paymesh.service.idempotency import Claim, derived_key, fingerprint
from paymesh.service.payments.authorization import AuthorizationDriver
from paymesh.service.payments.commands import CreatePayment
from paymesh.service.payments.idempotent import Idempotent
from paymesh.service.payments.unit_of_work import PaymentWrites
from paymesh.service.psp_routing import RoutingService
from paymesh.service.views import Reply, payment_reply

S = PaymentStatus


def request_fingerprint(command: CreatePayment) -> str:
    """The idempotency fingerprint of a create request. Receipt fields not given are left
    out, so a request without them hashes as it did before they existed: a key used just
    before an upgrade still replays just after it, instead of being refused as reused with
    another body."""
    # The fields one level deep by hand: `dataclasses.asdict` deep-copies every value on
    # the way, a tenth of a millisecond a payment for a dict that is only hashed. Same dict.
    request = {name: getattr(command, name) for name in _CREATE_FIELDS}
    request["risk"] = {name: getattr(command.risk, name) for name in _RISK_FIELDS}
    for name in ("receipt_email", "receipt_phone"):
        if request[name] is None:
            del request[name]
    return fingerprint("create_payment", request)


_CREATE_FIELDS = tuple(f.name for f in dataclasses.fields(CreatePayment))
_RISK_FIELDS = tuple(f.name for f in dataclasses.fields(RiskContext))


class CreatePaymentHandler:
    def __init__(
        self,
        writes: PaymentWrites,
        idempotent: Idempotent,
        driver: AuthorizationDriver,
        scorer: RiskScorer,
        psps: list[str],
        default_psp: str,
        routing: RoutingService | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.writes = writes
        self.idempotent = idempotent
        self.driver = driver
        self.scorer = scorer
        self.psps = psps
        self.default_psp = default_psp
        self.routing = routing
        self.clock = clock

    async def handle(
        self, merchant_id: str, command: CreatePayment, idempotency_key: str | None
    ) -> Reply:
        if command.connector is not None and command.connector not in self.psps:
            raise BadRequest(
                f"unknown connector {command.connector!r}; configured: "
                f"{', '.join(sorted(self.psps))}",
                param="connector",
            )
        key = idempotency_key
        if key is None and "order_id" in command.metadata:
            key = derived_key(
                merchant_id,
                command.amount,
                command.currency,
                command.customer_id,
                command.metadata["order_id"],
            )
        fp = request_fingerprint(command)
        return await self.idempotent.run(
            merchant_id,
            key,
            fp,
            lambda: ids.new_id("pay"),
            lambda claim: self._create(merchant_id, command, claim),
        )

    async def _plan(
        self, merchant_id: str, command: CreatePayment, payment_id: str
    ) -> tuple[str, Routing | None]:
        if self.routing is None:
            return command.connector or self.default_psp, None
        facts = PaymentFacts(
            amount=command.amount,
            currency=command.currency,
            country=command.risk.country,
            payment_method_type=method_type(command.payment_method),
        )
        return await self.routing.plan(merchant_id, facts, payment_id, command.connector)

    async def _create(self, merchant_id: str, command: CreatePayment, claim: Claim | None) -> Reply:
        now = self.clock()
        if claim is not None and claim.resumed:
            existing = await self.writes.store.get_payment(claim.resource_id)
            if existing is not None:
                await self.writes.commit(Changeset(idempotency=claim.write))
                return await self._finish(existing, claim)
        payment_id = claim.resource_id if claim else ids.new_id("pay")
        ids.working_on.set(payment_id)
        assessment = await self.scorer.assess(
            RiskInput(
                payment_id=payment_id,
                merchant_id=merchant_id,
                customer_id=command.customer_id,
                amount=command.amount,
                currency=command.currency,
                payment_method=command.payment_method,
                context=command.risk,
            )
        )
        connector, routing = await self._plan(merchant_id, command, payment_id)
        payment = Payment.initiate(
            now=now,
            fraud=assessment,
            id=payment_id,
            merchant_id=merchant_id,
            amount=command.amount,
            currency=command.currency,
            customer_id=command.customer_id,
            payment_method=command.payment_method,
            capture_method=command.capture_method,
            connector=connector,
            description=command.description,
            metadata=dict(command.metadata),
            risk=command.risk,
            routing=routing,
            receipt_email=command.receipt_email,
            receipt_phone=command.receipt_phone,
        )
        changes = Changeset(idempotency=claim.write if claim else None)
        if assessment.decision == "block":
            payment.block(now)
            reply = payment_reply(payment, created=True)
            if claim is not None:
                changes.idempotency = claim.complete(reply, now, first_write=True)
            changes.save(payment)
            await self.writes.commit(changes)
            return reply
        changes.save(payment)
        await self.writes.commit(changes)
        return await self._finish(payment, claim, first_send=True)

    @staticmethod
    def _reply_for(payment: Payment) -> Reply:
        if (
            payment.status == S.FAILED
            and payment.failure
            and payment.failure.code == "psp_unavailable"
        ):
            return Reply.of(
                503,
                PspUnavailable(payment.failure.message, extra={"payment_id": payment.id}).body(),
            )
        return payment_reply(payment, created=True)

    async def _finish(
        self, payment: Payment, claim: Claim | None, first_send: bool = False
    ) -> Reply:
        """Drive a recorded payment as far as the PSP takes it now; reply and complete."""
        stored: list[Reply] = []

        def completion(p: Payment) -> IdempotencyWrite | None:
            stored[:] = [self._reply_for(p)]
            return claim.complete(stored[0], self.clock()) if claim else None

        if payment.status == S.PENDING:
            payment, completed = await self.driver.drive(payment, first_send, completion)
            if completed:  # the reply was stored in the same commit as the PSP's answer
                return stored[0]
        reply = self._reply_for(payment)
        if claim is not None and payment.status == S.PENDING:
            # The PSP's answer was lost: keep no reply, so a retry with this key asks the
            # PSP again (same PSP key, so never a second charge) and stores the true one.
            await self.idempotent.release(claim)
            return reply
        return await self.idempotent.store_reply(claim, reply)
