"""Fraud on the event stream: the `fraud_detection` consumer, the `fraud_review` target, and
the checkpoint that keeps learned features across restarts.

Inline scoring (the risk port) sees a payment before its PSP does; the stream then tells the
features how it ended: a decline or a dispute counts against the card, device, IP and
merchant it touched, so the next payment they carry scores higher. A payment scored at or
above the alert threshold raises a `fraud.alert` event that rules can route anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from paymesh.domain.events import DomainEvent
from paymesh.domain.status import PaymentStatus
from paymesh.fraud import FraudEngine, SnapshotError
from paymesh.ports.bus import Delivery
from paymesh.ports.fraud_feed import FraudFeed, NoFeed
from paymesh.ports.store import AlreadyProcessed, BlobPart, Changeset, Store
from paymesh.service.bus import Builtin
from paymesh.service.payments import PaymentService
from paymesh.tracing import traceparent

log = logging.getLogger(__name__)

CHECKPOINT = "fraud-features"
ALERT_THRESHOLD = 70
#: The event a payment records when its PSP opens a dispute (`Payment.open_dispute`).
DISPUTE_OPENED = "payment.dispute.created"
_OUTCOMES = {
    "payment.succeeded": "approved",
    "payment.requires_capture": "approved",
    "payment.failed": "declined",
    DISPUTE_OPENED: "disputed",
}


def _epoch(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


class FraudStream:
    """The `fraud_detection` built-in. Feedback is idempotent in the engine (a redelivered
    decline is not counted twice); an alert commits with a consumer mark, so it is raised
    once even across a restart. Each outcome is also announced on `feed`, for the engines
    of the processes that score payments (scaled out, not this one)."""

    def __init__(
        self,
        engine: FraudEngine,
        store: Store,
        clock: Callable[[], datetime],
        alert_threshold: int = ALERT_THRESHOLD,
        feed: FraudFeed | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.clock = clock
        self.alert_threshold = alert_threshold
        self.feed: FraudFeed = feed if feed is not None else NoFeed()

    async def __call__(self, event: dict[str, Any], delivery: Delivery) -> None:
        kind = event["detail-type"]
        detail = event["detail"]
        outcome = _OUTCOMES.get(kind)
        if outcome == "declined" and detail.get("failure_code") != "card_declined":
            outcome = None  # the PSP being down says nothing about the card
        if outcome is not None:
            at = _epoch(event)
            self.engine.feedback(detail["payment_id"], outcome, at)
            # Announced whatever `feedback` returned. True only means the payment is known
            # here, not that this is news (a redelivery is True again, and harmless: feedback
            # is idempotent everywhere). False means this engine never saw the payment (it
            # restarted since, or missed the feed's message), while the engine that scored
            # it still knows it: that one must hear of the decline all the same.
            self.feed.outcome(detail["payment_id"], outcome, at)
        score = detail.get("fraud_score")
        if kind == DISPUTE_OPENED or (
            kind == "payment.initiated" and isinstance(score, int) and score >= self.alert_threshold
        ):
            await self._alert(event)

    async def _alert(self, cause: dict[str, Any]) -> None:
        detail = cause["detail"]
        disputed = cause["detail-type"] == DISPUTE_OPENED
        alert = DomainEvent(
            type="fraud.alert",
            payment_id=detail["payment_id"],
            merchant_id=cause["account"],
            time=self.clock(),
            # Derived from its cause: the same event always raises the same alert.
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"paymesh:fraud.alert:{cause['id']}")),
            detail={
                "payment_id": detail["payment_id"],
                "customer_id": detail.get("customer_id"),
                "amount": detail.get("amount"),
                "currency": detail.get("currency"),
                "reason": "dispute" if disputed else "high_score",
                "fraud_score": detail.get("fraud_score"),
                "fraud_factors": detail.get("fraud_factors", []),
                "fraud_decision": detail.get("fraud_decision"),
                "cause_event_id": cause["id"],
            },
            # Raised inside its cause's delivery span: the alert continues that trace.
            traceparent=traceparent(),
        )
        with contextlib.suppress(AlreadyProcessed):
            await self.store.commit(
                Changeset(processed=[("fraud_detection", cause["id"])], events=[alert])
            )


def fraud_review(payments: PaymentService, clock: Callable[[], datetime]) -> Builtin:
    """Opens a manual review for the payment an event names, if it can still be held.

    A payment scored `review` inline is authorised with its capture held and opens its own
    review in the commit that records the authorisation; for it this target finds the review
    open and does nothing. A rule may also point other events here (a `fraud.alert` from the
    stream, say): then an authorised, uncaptured payment is held for a person to decide.
    """

    async def handle(event: dict[str, Any], delivery: Delivery) -> None:
        payment = await payments.store.get_payment(event["detail"]["payment_id"])
        if payment is None or payment.review is not None:
            return
        if payment.status != PaymentStatus.REQUIRES_CAPTURE:
            log.info(
                "fraud_review: payment %s is %s, nothing to hold", payment.id, payment.status.value
            )
            return
        now = clock()
        reason = f"rule {delivery.rule}: {event['detail-type']}"
        await payments.settle(payment, lambda p: p.open_review(now, reason))

    return handle


class FeatureCheckpoint:
    """Saves the fraud engine's learned state through the store port now and then, and at
    shutdown; loads it at start. A kill -9 loses at most one interval of learning, which
    only makes scores briefly less informed: no money depends on it. The interval is long
    because a snapshot is taken on the event loop (the engine is not thread-safe): about a
    second of CPU at 300,000 payments of state, taken in steps of a few milliseconds.

    A checkpoint written before customers were keyed per merchant still loads: the engine
    keeps its cards, devices, IPs and merchants and drops its customers, whose state mixed
    every merchant's customers of one id (`FeatureStore.restore`). Anything else it cannot
    read is logged and discarded: the engine starts with no learned features."""

    def __init__(
        self,
        engine: FraudEngine,
        store: Store,
        clock: Callable[[], datetime],
        every_seconds: float = 300.0,
        after_save: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.clock = clock
        self.every = every_seconds
        #: Called once a checkpoint is saved: the snapshot's memory is free again by then.
        self.after_save = after_save

    async def load(self) -> bool:
        data = await self.store.get_blob(CHECKPOINT)
        if data is None:
            return False
        try:
            self.engine.restore(data)
        except SnapshotError:
            log.exception("fraud checkpoint unreadable; starting with no learned features")
            return False
        return True

    async def save(self) -> None:
        # In steps, letting the loop serve requests between them: taken at once, the
        # snapshot stopped the server for about a second at 300,000 payments of state.
        # Each step's part goes to the store's spill as it is made: a store that can keeps
        # it in a file, so the snapshot is not held in memory while it is made and saved
        # (`benchmarks/checkpoint_memory.py`); one that cannot keeps the parts as they are.
        spill = self.store.spill()
        try:
            steps = self.engine.snapshot_parts_steps(spill.keep)
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    parts: list[BlobPart] = done.value
                    break
                await asyncio.sleep(0)
            await self.store.put_blob_parts(CHECKPOINT, parts, self.clock())
            # Dropped first: the trim can only give back what is already free.
            del parts, steps
        finally:
            spill.close()
        self.after_save()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.save()
            except Exception:
                log.exception("fraud checkpoint failed; will try again")
