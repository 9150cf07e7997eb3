"""Built-in targets. Each is idempotent by event id: it records the event ids it applied in
the same commit as its effect, or its effect is itself idempotent (driving a payment)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from paymesh.domain.status import PaymentStatus
from paymesh.ports.bus import Delivery
from paymesh.ports.notifier import EmailSender, SmsSender, Templates
from paymesh.ports.store import Store
from paymesh.service.bus import Builtin, RetryLater
from paymesh.service.confirmations import Confirmations
from paymesh.service.payments import PaymentService
from paymesh.service.payments.psp_caller import longest_call

log = logging.getLogger(__name__)


def send_confirmation(
    store: Store,
    clock: Callable[[], datetime],
    templates: Templates,
    email: EmailSender | None = None,
    sms: SmsSender | None = None,
    after_send: Callable[[], None] | None = None,
) -> Builtin:
    """Sends the customer one message per payment outcome, by email and/or SMS, and records
    it; never twice for one outcome (`paymesh.service.confirmations`)."""
    return Confirmations(store, clock, templates, email, sms, after_send)


def inline_grace(psp_timeout_seconds: float) -> timedelta:
    """How long process_payment leaves a pending payment to the driver that last wrote it:
    the longest one PSP's turn of the inline send can take, and 5 s more.

    Shorter, a worker could resend the attempt (same key, to the same PSP) while the inline
    driver still waits on that PSP; if the driver then sees it refuse every try and fails
    over, the next PSP charges while the worker's request may still run at the first: two
    PSPs charged. In one process the driver's turns already keep them apart; a scale-out
    worker or the deliverer process has no such turn. Counted from the payment's last write,
    as each failover writes it and starts the next PSP's turn.
    """
    return timedelta(seconds=max(10.0, longest_call(psp_timeout_seconds) + 5.0))


#: With the default PSP timeout (10 s): 35.25 s. Its deliveries are first tried this long
#: after the event (`EventBus(start_delays=...)`), so the usual payment, settled inline by
#: then, costs one look and no "come back later".
PROCESS_PAYMENT_GRACE = inline_grace(10.0)


def process_payment(
    payments: PaymentService,
    clock: Callable[[], datetime],
    grace: timedelta = PROCESS_PAYMENT_GRACE,
) -> Builtin:
    """Drives a payment to its PSP if the inline attempt did not finish.

    The inline request normally settles the payment first; while it may still be working
    (within `grace`) this waits, so the two never race for the PSP.
    """

    async def handle(event: dict[str, Any], delivery: Delivery) -> None:
        payment = await payments.store.get_payment(event["detail"]["payment_id"])
        if payment is None or payment.status != PaymentStatus.PENDING:
            return
        if payment.attempt != event["detail"].get("attempt", 1):
            # A later attempt (a retry after a failure the PSP provably ignored) is driven by
            # `payment_retry`, which made it, and by recovery after a crash. In one process
            # the driver's turns already keep a stale read from being sent; this also holds
            # when the retry runs in another process (a scale-out worker), where they do not.
            return
        age = clock() - payment.updated_at
        if age < grace:
            raise RetryLater((grace - age).total_seconds(), "inline attempt may be running")
        payment, _ = await payments.drive(payment)
        if payment.status == PaymentStatus.PENDING:
            raise RetryLater(grace.total_seconds(), "the PSP has not answered yet")

    return handle


def payment_retry(
    payments: PaymentService,
    clock: Callable[[], datetime],
    max_attempts: int = 5,
    base: timedelta = timedelta(seconds=2),
) -> Builtin:
    """Retries a retryable failure with the same payment method, backing off between
    attempts (base, 2x base, ...), at most `max_attempts` in all. Each attempt has its own
    PSP key and the failed one charged nothing, so a retry can never charge twice."""

    async def handle(event: dict[str, Any], delivery: Delivery) -> None:
        payment = await payments.store.get_payment(event["detail"]["payment_id"])
        if (
            payment is None
            or payment.status != PaymentStatus.FAILED
            or payment.failure is None
            or not payment.failure.retryable
            or payment.attempt >= max_attempts
            or event["detail"].get("attempt") != payment.attempt
        ):
            return  # settled, exhausted, or this event is about an earlier attempt
        wait = base * 2 ** (payment.attempt - 1) - (clock() - payment.updated_at)
        if wait > timedelta(0):
            raise RetryLater(wait.total_seconds(), "backing off before the next attempt")
        await payments.retry(payment, max_attempts)

    return handle


class Analytics:
    """Counts events per merchant and type (read by /metrics later); idempotence is not
    needed for estimates, and a redelivery after a crash may count an event twice."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    async def __call__(self, event: dict[str, Any], delivery: Delivery) -> None:
        self.counts[(event["account"], event["detail-type"])] += 1


def placeholder(name: str, arrives_with: str) -> Builtin:
    """A default rule's target that a later issue builds; accepts the event, does nothing."""

    async def handle(event: dict[str, Any], delivery: Delivery) -> None:
        log.debug(
            "%s: event %s accepted; the handler arrives with %s", name, event["id"], arrives_with
        )

    return handle
