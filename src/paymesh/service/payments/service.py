"""`PaymentService`: the payment use cases wired together, as the HTTP API, the bus's
targets, the review queue and recovery call them. It holds no logic of its own; each method
hands a command to its use case's handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from paymesh.domain.payment import Payment, PspOutcome
from paymesh.ports.connector import Connector
from paymesh.ports.risk import RiskScorer
from paymesh.ports.store import Changeset, IdempotencyStore, IdempotencyWrite
from paymesh.service.circuit import CircuitBreakers
from paymesh.service.payments.answers import AnswersInFlight
from paymesh.service.payments.authorization import AuthorizationDriver
from paymesh.service.payments.cancel import CancelPaymentHandler
from paymesh.service.payments.capture import CapturePaymentHandler
from paymesh.service.payments.commands import (
    CancelPayment,
    CapturePayment,
    CreatePayment,
    RefundPayment,
)
from paymesh.service.payments.create import CreatePaymentHandler
from paymesh.service.payments.idempotent import Idempotent
from paymesh.service.payments.psp_caller import PspCaller
from paymesh.service.payments.refund import RefundDriver, RefundPaymentHandler
from paymesh.service.payments.unit_of_work import PaymentsAndCommit, PaymentWrites
from paymesh.service.psp_routing import RoutingService
from paymesh.service.views import Reply


class PaymentStoreWithKeys(PaymentsAndCommit, IdempotencyStore, Protocol):
    """What the payment use cases need of the store, all told."""


class PaymentService:
    def __init__(
        self,
        store: PaymentStoreWithKeys,
        connectors: dict[str, Connector],
        scorer: RiskScorer,
        clock: Callable[[], datetime],
        default_connector: str = "stripe",
        on_commit: Callable[[], None] = lambda: None,
        routing: RoutingService | None = None,
        breakers: CircuitBreakers | None = None,
    ) -> None:
        self.store = store
        self.connectors = connectors
        self.clock = clock
        self.writes = PaymentWrites(store, on_commit)
        self.psp = PspCaller(connectors, breakers or CircuitBreakers())
        idempotent = Idempotent(store, self.writes, clock)
        self.answers = AnswersInFlight()
        self.authorization = AuthorizationDriver(self.writes, self.psp, clock, self.answers)
        self.refunds = RefundDriver(self.writes, self.psp, clock)
        self.creating = CreatePaymentHandler(
            self.writes,
            idempotent,
            self.authorization,
            scorer,
            list(connectors),
            default_connector,
            routing,
            clock,
        )
        self.capturing = CapturePaymentHandler(self.writes, idempotent, self.psp, clock)
        self.canceling = CancelPaymentHandler(self.writes, idempotent, self.psp, clock)
        self.refunding = RefundPaymentHandler(self.writes, idempotent, self.refunds, clock)

    # -- the client's requests ------------------------------------------------------------

    async def create(
        self, merchant_id: str, req: CreatePayment, idempotency_key: str | None
    ) -> Reply:
        return await self.creating.handle(merchant_id, req, idempotency_key)

    async def capture(
        self, merchant_id: str, payment_id: str, amount: int | None, idempotency_key: str | None
    ) -> Reply:
        return await self.capturing.handle(
            merchant_id, CapturePayment(payment_id, amount), idempotency_key
        )

    async def cancel(self, merchant_id: str, payment_id: str, idempotency_key: str | None) -> Reply:
        return await self.canceling.handle(merchant_id, CancelPayment(payment_id), idempotency_key)

    async def refund(
        self,
        merchant_id: str,
        payment_id: str,
        amount: int | None,
        reason: str | None,
        idempotency_key: str | None,
    ) -> Reply:
        return await self.refunding.handle(
            merchant_id, RefundPayment(payment_id, amount, reason), idempotency_key
        )

    # -- for the bus's targets, recovery and the review queue -----------------------------

    async def drive(
        self,
        payment: Payment,
        first_send: bool = False,
        completion: Callable[[Payment], IdempotencyWrite | None] = lambda p: None,
    ) -> tuple[Payment, bool]:
        return await self.authorization.drive(payment, first_send, completion)

    async def retry(self, payment: Payment, max_attempts: int) -> Payment:
        return await self.authorization.retry(payment, max_attempts)

    async def drive_refund(self, payment: Payment, refund_id: str) -> tuple[Payment, bool]:
        return await self.refunds.drive(payment, refund_id)

    async def settle(self, payment: Payment, change: Callable[[Payment], object]) -> Payment:
        return await self.writes.settle(payment, change)

    async def commit(self, changes: Changeset) -> None:
        await self.writes.commit(changes)

    def connector_for(self, payment: Payment) -> Connector:
        return self.psp.connector_for(payment)

    async def psp_or_503(self, psp: str, call: Callable[[], Awaitable[PspOutcome]]) -> PspOutcome:
        return await self.psp.answer_or_error(psp, call)
