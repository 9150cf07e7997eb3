"""The payment use cases on fakes: `PaymentService`, `WebhookService` and `Reconciler` over a
`MemoryStore` and two in-memory PSPs ("stripe" and "adyen", both `FakePsp`), with a fixed
clock. No socket, no file: every test here would fail if one were opened.

Each test ends with the audit that matters, read from the fake PSPs' own ledgers: how many
charges exist for the payment, where, and for how much.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from paymesh.adapters.memory import MemoryStore
from paymesh.connectors.fake import FakeCard, FakePsp
from paymesh.domain.errors import DomainError
from paymesh.domain.payment import FraudAssessment, Payment
from paymesh.domain.status import PaymentStatus
from paymesh.ports.bus import Delivery
from paymesh.ports.risk import RiskInput
from paymesh.service.bus import RetryLater
from paymesh.service.circuit import CircuitBreakers
from paymesh.service.errors import (
    ApiError,
    BadRequest,
    IdempotencyMismatch,
    StateConflict,
    from_domain,
)
from paymesh.service.handlers import inline_grace, process_payment
from paymesh.service.payments import CreatePayment, PaymentService
from paymesh.service.psp_routing import RoutingService
from paymesh.service.recovery import Reconciler
from paymesh.service.views import Reply
from paymesh.service.webhooks import WebhookService

S = PaymentStatus
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MERCHANT = "acct_use_cases"
VISA = "pm_card_visa"
SOFT_DECLINE = "pm_card_chargeDeclinedProcessingError"
#: Tries of one PSP call, all with the same key: the service's retry policy (a first try and
#: two retries). A PSP that fails every one of them leaves the call without an answer.
TRIES = 3


# -- the world the use cases run in -------------------------------------------------------


class Clock:
    """Fixed until a test moves it; the circuit breakers read the same time."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return (self.now - NOW).total_seconds()

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Scorer:
    """A risk scorer that answers one decision for every payment."""

    def __init__(self) -> None:
        self.decision = "allow"

    async def assess(self, subject: RiskInput) -> FraudAssessment:
        score = {"allow": 5, "review": 70, "block": 95}[self.decision]
        return FraudAssessment(score=score, factors=("test",), decision=self.decision)


@dataclass
class World:
    store: MemoryStore
    stripe: FakePsp
    adyen: FakePsp
    clock: Clock
    scorer: Scorer
    breakers: CircuitBreakers
    routing: RoutingService
    payments: PaymentService
    webhooks: WebhookService
    recovery: Reconciler
    waits: list[float]

    async def create(
        self,
        amount: int = 2000,
        method: str = VISA,
        capture: str = "automatic",
        key: str | None = None,
        **extra: Any,
    ) -> tuple[int, dict[str, Any]]:
        """Create a payment; the reply's status and the payment as the reply shows it."""
        reply = await self.payments.create(
            MERCHANT,
            CreatePayment(
                amount=amount,
                currency="usd",
                customer_id="cus_1",
                payment_method=method,
                capture_method=capture,
                **extra,
            ),
            key,
        )
        return reply.status, shown(reply)

    async def payment(self, payment_id: str) -> Payment:
        payment = await self.store.get_payment(payment_id, MERCHANT)
        assert payment is not None
        return payment

    def ledger(self, payment_id: str) -> list[tuple[str, PaymentStatus, int]]:
        """Every charge for the payment at either PSP: (psp, status, amount captured)."""
        return [
            (psp.name, c.status, c.amount_received)
            for psp in (self.stripe, self.adyen)
            for c in psp.charges_for(payment_id)
        ]

    async def deliver(self, psp: FakePsp, webhook: tuple[dict[str, str], bytes]) -> list[str]:
        headers, body = webhook
        return await self.webhooks.receive(psp.name, dict(headers), body)


def shown(reply: Reply) -> dict[str, Any]:
    """The payment (or refund) a reply shows, also inside a 402's error."""
    body: dict[str, Any] = json.loads(reply.body)
    return body["error"].get("payment", body["error"]) if "error" in body else body


def as_api_error(exc: Exception) -> ApiError:
    """What a client gets: the service's error, or the domain's as the API maps it."""
    return from_domain(exc) if isinstance(exc, DomainError) else exc  # type: ignore[return-value]


@contextlib.asynccontextmanager
async def open_world() -> AsyncIterator[World]:
    """A fresh world, in which opening a connection fails the test and the service's backoff
    between PSP retries is not waited out (the fakes answer at once: waiting proves nothing;
    the event loop still turns, and `World.waits` says how often it would have waited)."""
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, result: Any = None) -> Any:
        waits.append(delay)
        return await real_sleep(0, result)

    def refuse(*_args: object) -> None:
        raise AssertionError("a use-case test opened a connection")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(asyncio, "sleep", sleep)
        store = MemoryStore()
        await store.open()
        clock = Clock()
        stripe = FakePsp("stripe", webhook_secret="whsec_stripe_fake", clock=clock)
        adyen = FakePsp("adyen", webhook_secret="whsec_adyen_fake", clock=clock)
        connectors = {"stripe": stripe, "adyen": adyen}
        breakers = CircuitBreakers(clock=clock.seconds)
        routing = RoutingService(store, list(connectors), list(connectors), breakers, clock)
        scorer = Scorer()
        payments = PaymentService(
            store,
            dict(connectors),
            scorer,
            clock,
            default_connector="stripe",
            routing=routing,
            breakers=breakers,
        )
        webhooks = WebhookService(store, dict(connectors), clock, on_commit=lambda: None)
        try:
            yield World(
                store,
                stripe,
                adyen,
                clock,
                scorer,
                breakers,
                routing,
                payments,
                webhooks,
                Reconciler(payments, clock),
                waits,
            )
        finally:
            await store.close()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world() as w:
        yield w


# -- create ---------------------------------------------------------------------------------


async def test_an_approved_card_is_charged_once_at_the_first_psp(world: World) -> None:
    status, p = await world.create(2000)
    assert (status, p["status"], p["amount_captured"], p["connector"]) == (
        201,
        "succeeded",
        2000,
        "stripe",
    )
    [charge] = world.stripe.charges_for(p["id"])
    assert p["connector_payment_id"] == charge.id
    assert world.ledger(p["id"]) == [("stripe", S.SUCCEEDED, 2000)]
    assert sum(world.adyen.calls.values()) == 0


async def test_a_manual_capture_is_only_authorised(world: World) -> None:
    status, p = await world.create(5000, capture="manual")
    assert (status, p["status"], p["amount_captured"]) == (201, "requires_capture", 0)
    [charge] = world.stripe.charges_for(p["id"])
    assert (charge.capture_method, charge.amount_capturable, charge.amount_received) == (
        "manual",
        5000,
        0,
    )


async def test_a_hard_decline_fails_the_payment_with_a_402_and_no_failover(world: World) -> None:
    status, p = await world.create(method="pm_card_chargeDeclinedInsufficientFunds")
    assert (status, p["status"]) == (402, "failed")
    assert p["failure"] == {
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
        "retryable": False,
    }
    assert world.ledger(p["id"]) == [("stripe", S.FAILED, 0)]
    assert sum(world.adyen.calls.values()) == 0


async def test_three_d_secure_asks_the_customer_to_act(world: World) -> None:
    status, p = await world.create(method="pm_card_threeDSecure2Required")
    assert (status, p["status"], p["amount_captured"]) == (201, "requires_action", 0)
    assert p["next_action"]["redirect_url"].startswith("https://stripe.fake-psp.test/3ds/")


async def test_a_blocked_payment_never_reaches_a_psp(world: World) -> None:
    world.scorer.decision = "block"
    status, body = await world.create()
    assert (status, body["status"]) == (402, "blocked")
    assert (await world.payment(body["id"])).status == S.BLOCKED
    assert sum(world.stripe.calls.values()) + sum(world.adyen.calls.values()) == 0


async def test_a_payment_under_review_is_authorised_and_held_for_a_person(world: World) -> None:
    world.scorer.decision = "review"
    status, p = await world.create(3000)  # automatic, but held: authorise only
    assert (status, p["status"], p["review"]["status"]) == (201, "requires_capture", "open")
    [charge] = world.stripe.charges_for(p["id"])
    assert (charge.capture_method, charge.amount_received) == ("manual", 0)
    with pytest.raises(DomainError) as info:
        await world.payments.capture(MERCHANT, p["id"], None, None)
    assert isinstance(as_api_error(info.value), StateConflict)
    assert world.stripe.calls["capture"] == 0


async def test_a_replayed_key_gets_the_same_reply_and_makes_no_second_charge(world: World) -> None:
    status, first = await world.create(key="order-1")
    reply = await world.payments.create(
        MERCHANT,
        CreatePayment(amount=2000, currency="usd", customer_id="cus_1", payment_method=VISA),
        "order-1",
    )
    assert (status, reply.status, reply.replayed) == (201, 200, True)
    assert shown(reply) == first
    assert (world.stripe.authorizations, world.stripe.calls["authorize"]) == (1, 1)


async def test_a_key_reused_with_another_body_is_refused(world: World) -> None:
    await world.create(2000, key="order-2")
    with pytest.raises(IdempotencyMismatch):
        await world.create(2001, key="order-2")
    assert world.stripe.authorizations == 1


# -- a PSP that does not answer ---------------------------------------------------------------


async def test_a_lost_answer_leaves_the_payment_pending_and_drive_finds_the_one_charge(
    world: World,
) -> None:
    world.stripe.fail_next("authorize", "timeout", acted=True, times=TRIES)  # every try of the call
    status, p = await world.create(2500)
    assert (status, p["status"], p["connector_payment_id"]) == (201, "pending", None)
    assert world.ledger(p["id"]) == [("stripe", S.SUCCEEDED, 2500)]  # charged; we do not know
    assert sum(world.adyen.calls.values()) == 0  # ambiguous: never another PSP

    payment, committed = await world.payments.drive(await world.payment(p["id"]))
    assert committed and (payment.status, payment.amount_captured) == (S.SUCCEEDED, 2500)
    [charge] = world.stripe.charges_for(p["id"])
    assert payment.connector_payment_id == charge.id
    assert (world.stripe.authorizations, world.stripe.calls["authorize"]) == (1, TRIES + 1)


async def test_the_clients_retry_after_a_lost_answer_resumes_the_same_payment(world: World) -> None:
    world.stripe.fail_next("authorize", "timeout", acted=True, times=TRIES)
    _, first = await world.create(2500, key="order-3")
    status, again = await world.create(2500, key="order-3")
    assert (first["status"], status, again["status"]) == ("pending", 201, "succeeded")
    assert again["id"] == first["id"]
    assert world.ledger(first["id"]) == [("stripe", S.SUCCEEDED, 2500)]


async def test_an_answer_lost_once_is_found_by_the_retry_inside_the_call(world: World) -> None:
    world.stripe.fail_next("authorize", "timeout", acted=True)
    _, p = await world.create(1800)
    assert p["status"] == "succeeded"
    assert (world.stripe.authorizations, world.stripe.calls["authorize"]) == (1, 2)
    assert world.ledger(p["id"]) == [("stripe", S.SUCCEEDED, 1800)]


@pytest.mark.parametrize("fault", ["5xx", "429"])
async def test_a_5xx_or_429_on_the_first_send_is_retried_with_the_same_key(
    world: World, fault: str
) -> None:
    world.stripe.fail_next("authorize", fault)
    _, p = await world.create(1900)
    assert (p["status"], p["connector"]) == ("succeeded", "stripe")
    assert (world.stripe.authorizations, world.stripe.calls["authorize"]) == (1, 2)
    assert len(world.waits) == 1  # it waited once before asking again
    assert world.ledger(p["id"]) == [("stripe", S.SUCCEEDED, 1900)]


@pytest.mark.parametrize("acted", [False, True])
@pytest.mark.parametrize("fault", ["timeout", "5xx"])
async def test_an_ambiguous_failure_is_never_failed_over_nor_retried_as_new(
    world: World, fault: str, acted: bool
) -> None:
    world.stripe.fail_next("authorize", fault, acted=acted, times=TRIES)
    _, p = await world.create(2100)
    payment = await world.payment(p["id"])
    assert (payment.status, payment.connector, payment.attempt) == (S.PENDING, "stripe", 1)
    assert payment.routing is not None and payment.routing.attempts == []
    assert sum(world.adyen.calls.values()) == 0
    assert world.stripe.authorizations == (1 if acted else 0)


async def test_an_unreachable_psp_fails_over_and_only_the_second_psp_charges(world: World) -> None:
    world.stripe.unreachable = True
    status, p = await world.create(2200)
    assert (status, p["status"], p["connector"]) == (201, "succeeded", "adyen")
    [attempt] = p["routing"]["attempts"]
    assert (attempt["connector"], attempt["reason"]) == ("stripe", "stripe: connection_error")
    assert world.stripe.calls["authorize"] == TRIES  # asked, and refused, on every try
    assert world.ledger(p["id"]) == [("adyen", S.SUCCEEDED, 2200)]


async def test_a_failure_that_opens_the_circuit_fails_over_without_the_retries(
    world: World,
) -> None:
    for _ in range(world.breakers.threshold - 1):
        world.breakers.failed("stripe")
    world.stripe.unreachable = True
    _, p = await world.create(2250)
    assert (p["status"], p["connector"]) == ("succeeded", "adyen")
    assert world.breakers.state("stripe") == "open"
    assert world.stripe.calls["authorize"] == 1  # not TRIES: the PSP was known down
    assert world.waits == []
    assert world.ledger(p["id"]) == [("adyen", S.SUCCEEDED, 2250)]


async def test_an_unreachable_psp_with_none_left_fails_and_a_retry_charges_once(
    world: World,
) -> None:
    world.stripe.unreachable = True
    status, error = await world.create(2300, connector="stripe")  # named: no PSP to fail over to
    assert (status, error["code"]) == (503, "psp_unavailable")
    payment = await world.payment(error["payment_id"])
    assert payment.failure is not None
    assert (payment.status, payment.connector, payment.failure.retryable) == (
        S.FAILED,
        "stripe",
        True,
    )
    world.stripe.unreachable = False
    payment = await world.payments.retry(payment, max_attempts=3)
    assert (payment.status, payment.attempt, payment.amount_captured) == (S.SUCCEEDED, 2, 2300)
    assert world.ledger(payment.id) == [("stripe", S.SUCCEEDED, 2300)]


async def test_a_request_the_psp_rejects_fails_without_failover(world: World) -> None:
    world.stripe.fail_next("authorize", "rejected")
    status, p = await world.create(2400)
    assert (status, p["status"], p["failure"]["code"]) == (402, "failed", "invalid_request")
    assert (world.stripe.calls["authorize"], sum(world.adyen.calls.values())) == (1, 0)
    assert world.ledger(p["id"]) == []


async def test_a_soft_decline_goes_to_the_next_psp_when_the_route_says_so(world: World) -> None:
    await world.routing.put(
        MERCHANT,
        {
            "routes": [
                {"name": "soft", "connectors": ["stripe", "adyen"], "retry_soft_declines": True}
            ]
        },
    )
    world.adyen.cards[SOFT_DECLINE] = FakeCard()  # Adyen's processor is fine today
    status, p = await world.create(1700, method=SOFT_DECLINE)
    assert (status, p["status"], p["connector"]) == (201, "succeeded", "adyen")
    [attempt] = p["routing"]["attempts"]
    assert attempt["reason"] == "stripe: soft decline processing_error"
    assert world.ledger(p["id"]) == [("stripe", S.FAILED, 0), ("adyen", S.SUCCEEDED, 1700)]
    [declined] = world.stripe.charges_for(p["id"])
    assert (await world.payment(p["id"])).retired_refs == [declined.id]


async def test_a_soft_decline_stays_declined_on_a_route_that_does_not_retry(world: World) -> None:
    status, p = await world.create(1700, method=SOFT_DECLINE)
    assert (status, p["status"], p["failure"]["retryable"]) == (402, "failed", True)
    assert sum(world.adyen.calls.values()) == 0


async def test_a_hard_decline_is_not_retried_elsewhere_even_on_a_retrying_route(
    world: World,
) -> None:
    await world.routing.put(
        MERCHANT,
        {
            "routes": [
                {"name": "soft", "connectors": ["stripe", "adyen"], "retry_soft_declines": True}
            ]
        },
    )
    status, p = await world.create(1800, method="pm_card_chargeDeclinedInsufficientFunds")
    assert (status, p["connector"], p["routing"]["attempts"]) == (402, "stripe", [])
    assert sum(world.adyen.calls.values()) == 0


async def test_an_open_circuit_routes_around_the_psp_without_calling_it(world: World) -> None:
    for _ in range(world.breakers.threshold):
        world.breakers.failed("stripe")
    _, p = await world.create(2600)
    assert (p["status"], p["connector"], p["routing"]["attempts"]) == ("succeeded", "adyen", [])
    assert sum(world.stripe.calls.values()) == 0


async def test_a_busy_half_open_circuit_fails_over_before_calling(world: World) -> None:
    for _ in range(world.breakers.threshold):
        world.breakers.failed("stripe")
    world.clock.advance(seconds=world.breakers.cooldown + 1)
    assert world.breakers.allows("stripe")  # another request holds the one trial call
    _, p = await world.create(2700)
    assert (p["status"], p["connector"]) == ("succeeded", "adyen")
    assert [a["reason"] for a in p["routing"]["attempts"]] == ["stripe: circuit open"]
    assert sum(world.stripe.calls.values()) == 0
    assert world.ledger(p["id"]) == [("adyen", S.SUCCEEDED, 2700)]


# -- capture and cancel ---------------------------------------------------------------------


async def authorised(world: World, amount: int = 5000) -> str:
    _, p = await world.create(amount, capture="manual")
    assert p["status"] == "requires_capture"
    return str(p["id"])


@pytest.mark.parametrize(("amount", "captured"), [(None, 5000), (5000, 5000), (3000, 3000)])
async def test_a_capture_takes_the_amount_asked(
    world: World, amount: int | None, captured: int
) -> None:
    pid = await authorised(world)
    reply = await world.payments.capture(MERCHANT, pid, amount, None)
    p = shown(reply)
    assert (reply.status, p["status"], p["amount_captured"]) == (200, "succeeded", captured)
    [charge] = world.stripe.charges_for(pid)
    assert (charge.amount_received, charge.amount_capturable) == (captured, 0)


async def test_a_capture_beyond_the_authorisation_is_refused_before_the_psp(world: World) -> None:
    pid = await authorised(world)
    with pytest.raises(DomainError) as info:
        await world.payments.capture(MERCHANT, pid, 5001, None)
    error = as_api_error(info.value)
    assert isinstance(error, BadRequest) and error.param == "amount"
    assert world.stripe.calls["capture"] == 0
    assert (await world.payment(pid)).status == S.REQUIRES_CAPTURE


async def test_a_payment_that_is_not_authorised_cannot_be_captured(world: World) -> None:
    _, p = await world.create(2000)  # automatic: already captured
    with pytest.raises(DomainError) as info:
        await world.payments.capture(MERCHANT, p["id"], None, None)
    assert isinstance(as_api_error(info.value), StateConflict)
    assert world.stripe.calls["capture"] == 0


async def test_a_capture_replayed_by_key_captures_once(world: World) -> None:
    pid = await authorised(world)
    first = await world.payments.capture(MERCHANT, pid, 4000, "cap-1")
    again = await world.payments.capture(MERCHANT, pid, 4000, "cap-1")
    assert (again.replayed, shown(again)) == (True, shown(first))
    assert world.stripe.calls["capture"] == 1
    assert world.ledger(pid) == [("stripe", S.SUCCEEDED, 4000)]


async def test_an_authorisation_is_cancelled(world: World) -> None:
    pid = await authorised(world)
    reply = await world.payments.cancel(MERCHANT, pid, None)
    assert (reply.status, shown(reply)["status"]) == (200, "canceled")
    assert world.ledger(pid) == [("stripe", S.CANCELED, 0)]


async def test_a_succeeded_payment_cannot_be_cancelled(world: World) -> None:
    _, p = await world.create(2000)
    with pytest.raises(DomainError) as info:
        await world.payments.cancel(MERCHANT, p["id"], None)
    assert isinstance(as_api_error(info.value), StateConflict)
    assert world.stripe.calls["cancel"] == 0
    assert world.ledger(p["id"]) == [("stripe", S.SUCCEEDED, 2000)]


async def test_the_world_refuses_connections(world: World) -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match="opened a connection"):
        sock.connect(("127.0.0.1", 9))


async def test_process_payment_leaves_a_retried_attempt_to_the_retry_that_made_it(
    world: World,
) -> None:
    """The initiated event's `process_payment` comes due (10 s after the payment) while a
    retry's attempt is pending: it must not send that attempt itself. It could be reading
    an attempt that has already failed again, and send it beside the next one (another PSP
    key: a second charge)."""
    world.stripe.fail_next("authorize", "429", times=TRIES)
    status, error = await world.create(2400, connector="stripe")
    assert status == 503  # the PSP provably did nothing
    pid = error["payment_id"]
    failed = await world.payment(pid)
    assert (failed.status, failed.attempt) == (S.FAILED, 1)
    retried = await world.payments.settle(failed, lambda x: x.retry(world.clock(), 5))
    assert (retried.status, retried.attempt) == (S.PENDING, 2)
    world.clock.advance(seconds=60)  # well past the inline attempt's grace
    initiated = {"detail": {"payment_id": pid, "attempt": 1}}
    calls = world.stripe.calls["authorize"]
    await process_payment(world.payments, world.clock)(initiated, cast(Delivery, None))
    assert world.stripe.calls["authorize"] == calls  # nothing sent
    assert (await world.payment(pid)).attempt == 2 and world.ledger(pid) == []


async def test_process_payment_waits_out_the_longest_psp_call_since_the_payments_last_write(
    world: World,
) -> None:
    """The inline driver may wait on one PSP for three tries of its 10 s timeout. A worker
    resending the attempt meanwhile could overlap a failover to the next PSP (two PSPs
    charged): process_payment leaves the payment alone for that long after its last write."""
    assert inline_grace(10.0) == timedelta(seconds=35.25)  # 3 tries x 10 s, 0.25 s between, 5 s
    world.stripe.fail_next("authorize", "timeout", acted=True, times=TRIES)  # charged, unknown
    _, p = await world.create(2600)
    assert p["status"] == "pending"
    initiated = {"detail": {"payment_id": p["id"], "attempt": 1}}
    handle = process_payment(world.payments, world.clock, grace=inline_grace(10.0))
    calls = world.stripe.calls["authorize"]
    world.clock.advance(seconds=30)  # past the 10 s grace of before; within the longest call
    with pytest.raises(RetryLater) as later:
        await handle(initiated, cast(Delivery, None))
    assert later.value.seconds == pytest.approx(5.25)
    # A write (as a failover to the next PSP makes) starts the wait again.
    payment = await world.payment(p["id"])
    await world.payments.settle(payment, lambda x: setattr(x, "updated_at", world.clock()))
    world.clock.advance(seconds=30)
    with pytest.raises(RetryLater):
        await handle(initiated, cast(Delivery, None))
    assert world.stripe.calls["authorize"] == calls  # nothing sent while the driver may wait
    world.clock.advance(seconds=6)
    await handle(initiated, cast(Delivery, None))
    assert (await world.payment(p["id"])).status == S.SUCCEEDED  # the one charge, found
    assert world.ledger(p["id"]) == [("stripe", S.SUCCEEDED, 2600)]


async def test_a_driver_holding_an_old_read_of_the_payment_sends_nothing(world: World) -> None:
    """Recovery (or any reader) read the payment pending at attempt 1; since then that
    attempt failed and a retry began attempt 2. Driving what it read would send attempt 1's
    PSP key beside attempt 2's: the driver reads the payment again and leaves it."""
    world.stripe.fail_next("authorize", "429", times=TRIES)
    status, error = await world.create(2500, connector="stripe")
    assert status == 503
    failed = await world.payment(error["payment_id"])
    as_read_before = copy.deepcopy(failed)
    as_read_before.status, as_read_before.failure = S.PENDING, None
    await world.payments.settle(failed, lambda x: x.retry(world.clock(), 5))
    calls = world.stripe.calls["authorize"]
    payment, committed = await world.payments.drive(as_read_before)
    assert world.stripe.calls["authorize"] == calls  # nothing sent
    assert (payment.status, payment.attempt, committed) == (S.PENDING, 2, False)
    assert world.ledger(payment.id) == []
