"""The event bus: outbox -> rules -> one delivery per target -> retries -> dead letters.

Two loops share one task:
- routing reads committed events from the outbox, matches them against every rule at once
  and commits, in one write, the event's leaving the outbox with its deliveries;
- delivering claims due deliveries (a lease, so no other worker runs them) and runs each as
  its own task, at most `per_target` at a time per target, so a slow or failing target never
  holds up another, nor the API.
Everything is in the store: a restart delivers what was pending. Delivery is at-least-once;
built-in handlers are idempotent by event id, HTTP targets get the event id to do the same.
Every HTTP delivery is signed (`Paymesh-Signature`, as Stripe signs its webhooks): with its
rule's secret, or the deployment's for the default rules; secrets stay in the rules.
Traces: routing an event and each delivery attempt are spans of the trace the event was
recorded in (its envelope's `traceparent`, `paymesh.tracing`), whichever bus carried it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, StatusCode

from paymesh.domain.target_policy import TargetPolicy
from paymesh.ports.bus import DEFAULT, Delivery, Target, target_label
from paymesh.ports.bus_backend import BusBackend
from paymesh.ports.store import Changeset
from paymesh.ports.targets import TargetSender, TargetUnreachable
from paymesh.service import compact_json, ids
from paymesh.service.event_router import Router
from paymesh.service.retry import after_failure, after_success
from paymesh.signing import signature_header
from paymesh.tracing import KEY, context_of, event_span, traced, traceparent

log = logging.getLogger(__name__)

Builtin = Callable[[dict[str, Any], Delivery], Awaitable[None]]


class RetryLater(Exception):
    """A handler's 'not yet': the delivery is tried again after `seconds`."""

    def __init__(self, seconds: float, reason: str = "not yet") -> None:
        super().__init__(reason)
        self.seconds = seconds


class TargetFailed(Exception):
    """The target did not take the event. `permanent`: trying again cannot help (a customer's
    address refused, say), so the delivery goes to the dead letters at once instead of
    spending its retry policy."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class SigningSecrets:
    """The secret that signs an HTTP delivery, looked up when it is sent, never copied into
    the delivery (whose rows and bus messages outlive a rule and are read by more than the
    bus): the merchant's own rule's, or for a default rule (merchant "*": the inventory
    target) the deployment's `default_secret`. No secret, no delivery: nothing goes out
    unsigned."""

    def __init__(self, router: Router, default_secret: str | None) -> None:
        self.router = router
        self.default_secret = default_secret

    def for_delivery(self, delivery: Delivery) -> str:
        if delivery.default_rule:
            if not self.default_secret:
                log.error(
                    "default rule %r has an HTTP target but the deployment has no "
                    "signing secret for it; not sending",
                    delivery.rule,
                )
                raise TargetFailed("no signing secret for this target")
            return self.default_secret
        rule = self.router.own(delivery.merchant_id, delivery.rule)
        if rule is None:
            raise TargetFailed("rule no longer exists")
        if not rule.signing_secret:
            raise TargetFailed("no signing secret for this target")
        return rule.signing_secret


class EventBus:
    def __init__(
        self,
        store: BusBackend,
        router: Router,
        builtins: dict[str, Builtin],
        sender: TargetSender,
        clock: Callable[[], datetime],
        rand: Callable[[], float] = random.random,
        lease_seconds: float = 60.0,
        per_target: int = 8,
        poll_seconds: float = 0.5,
        batch: int = 500,
        retry_base_seconds: float = 1.0,
        default_signing_secret: str | None = None,
        target_policy: TargetPolicy | None = None,
        start_delays: Mapping[str, float] | None = None,
        on_routing: Collection[str] = (),
    ) -> None:
        """`default_signing_secret` signs the default rules' HTTP deliveries (without one
        they are not sent). `target_policy` is what rules may name as HTTP targets, checked
        when a rule is stored; the sender enforces its own at delivery. `start_delays`:
        seconds after the event a built-in target is first tried (process_payment: the
        inline attempt is still running when its event is routed, so trying at once would
        only be told to come back). `on_routing`: built-in targets quick, in memory and
        idempotent enough to be tried as their event is routed (see `route_pending`)."""
        self.store = store
        self.router = router
        self.clock = clock
        self.rand = rand
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.retry_base = retry_base_seconds
        self.target_policy = target_policy or TargetPolicy()
        self.start_delays = {name: timedelta(seconds=s) for name, s in (start_delays or {}).items()}
        self.on_routing = frozenset(on_routing) - set(self.start_delays)
        self.targets = Targets(
            builtins, sender, per_target, secrets=SigningSecrets(router, default_signing_secret)
        )
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        # Envelopes of recently routed events: their deliveries mostly run moments later,
        # so they need not be read and decoded again. Bounded; a miss reads the store.
        self._envelopes: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._envelope_cap = 10_000
        #: Told after a routing commit that left deliveries to claim (a deliverer process).
        self.routed: list[Callable[[], None]] = []

    def notify(self) -> None:
        self._wake.set()

    async def run(
        self,
        *,
        route: bool = True,
        deliver: bool = True,
        before_starting: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Route and deliver until cancelled, woken by `notify` or every `poll_seconds`. An
        embedded server with a deliverer process routes here and delivers there
        (`route=False` in the deliverer, `deliver=False` in the server); `before_starting`
        runs between claiming deliveries and starting them (see `deliver_due`)."""
        while True:
            try:
                if route:
                    await self.route_pending()
                if deliver:
                    await self.deliver_due(before_starting)
            except Exception:
                log.exception("event bus pass failed; retrying")
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands
            # as the wake fires, and the loop would outlive stop().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()

    async def stop(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _first_try(self, target: Target, event_time: datetime, now: datetime) -> datetime:
        delay = self.start_delays.get(target.name or "") if target.type == "builtin" else None
        return max(now, event_time + delay) if delay else now

    async def route_pending(self) -> int:
        """Route what the outbox holds; returns how many events left it.

        A delivery to an `on_routing` built-in is tried before the routing commit and
        recorded with its outcome in it: delivered, or rescheduled like any failed attempt.
        That spares it a claim and a save, most of what a delivery costs (for the default
        rules, more than half of a payment's deliveries). It stays at-least-once: a crash
        before the commit leaves the event in the outbox, routed and tried again. The price
        is that routing waits for these handlers, so only quick in-memory ones qualify."""
        routed = 0
        while True:
            events = await self.store.undelivered_events(self.batch)
            if not events:
                return routed
            now = self.clock()
            # The outbox's step of each traced event, in its own trace: routing and the commit.
            spans = [event_span(e.envelope, "route", SpanKind.PRODUCER) for e in events]
            try:
                routes = [(e, route) for e in events for route in self.router.routes(e.envelope)]
                deliveries = [
                    Delivery(
                        id=ids.new_id("dlv"),
                        event_id=e.id,
                        merchant_id=e.merchant_id,
                        rule=route.rule.name,
                        target=route.target,
                        event_time=e.time,
                        created_at=now,
                        next_attempt_at=self._first_try(route.target, e.time, now),
                        default_rule=route.rule.merchant_id == DEFAULT,
                    )
                    for e, route in routes
                ]
                for (e, route), delivery in zip(routes, deliveries, strict=True):
                    if route.target.type == "builtin" and route.target.name in self.on_routing:
                        await self.targets.attempt(
                            delivery, e.envelope, self.clock, self.rand, self.retry_base
                        )
                await self.store.commit(
                    Changeset(routed=[e.id for e in events], deliveries=deliveries)
                )
            finally:
                for span in spans:
                    span.end()
            if any(d.status == "pending" for d in deliveries):
                for hook in self.routed:
                    hook()
            for e in events:
                self._envelopes[e.id] = e.envelope
            while len(self._envelopes) > self._envelope_cap:
                self._envelopes.popitem(last=False)
            routed += len(events)
            if len(events) < self.batch:
                return routed

    def deliveries_due(self) -> None:
        """Deliveries became due without being routed (a redrive): claim them now, here or
        in a deliverer process."""
        self.notify()
        for hook in self.routed:
            hook()

    async def deliver_due(
        self, before_starting: Callable[[], Awaitable[None]] | None = None
    ) -> int:
        """Start every due delivery not already running here; returns how many started.
        `before_starting` runs once they are claimed: a deliverer process catches up with
        its server there (a rule changed before these deliveries were routed)."""
        claimed = await self.store.claim_deliveries(self.clock(), self.lease_seconds, 200)
        if claimed and before_starting is not None:
            await before_starting()
        started = 0
        for delivery in claimed:
            if delivery.id in self._running:
                continue
            task = asyncio.create_task(self._attempt(delivery))
            self._running[delivery.id] = task
            task.add_done_callback(self._finished(delivery.id))
            started += 1
        return started

    def _finished(self, delivery_id: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._running.pop(delivery_id, None)

        return forget

    async def _attempt(self, delivery: Delivery) -> None:
        event = self._envelopes.get(delivery.event_id) or await self.store.get_event(
            delivery.event_id
        )
        await self.targets.attempt(delivery, event, self.clock, self.rand, self.retry_base)
        await self.store.save_delivery(delivery)


class Targets:
    """Runs one delivery against its target, whichever bus carried it: a built-in handler or
    a signed HTTP POST, at most `per_target` at a time per (merchant, rule, target).
    Implements `paymesh.ports.bus.Deliverer`."""

    def __init__(
        self,
        builtins: dict[str, Builtin],
        sender: TargetSender,
        per_target: int = 8,
        *,
        secrets: SigningSecrets | None = None,
    ) -> None:
        self.builtins = builtins
        self.sender = sender
        self.secrets = secrets
        self.per_target = per_target
        self._slots: dict[tuple[str, str, str], asyncio.Semaphore] = {}
        #: Told of every attempt's result (delivered, rescheduled or dead): the metrics.
        self.observers: list[Callable[[Delivery], None]] = []

    async def attempt(
        self,
        delivery: Delivery,
        event: dict[str, Any] | None,
        clock: Callable[[], datetime],
        rand: Callable[[], float],
        retry_base: float,
    ) -> None:
        """One attempt; `delivery` comes back delivered, rescheduled or dead.

        It runs in a consumer span whose parent is the context the event was recorded in (its
        envelope's `traceparent`, whichever bus carried it), so the handler's work and the
        events it records continue the event's trace; an untraced event starts a new one."""
        key = (delivery.merchant_id, delivery.rule, delivery.target.id)
        slots = self._slots.get(key)
        if slots is None:  # not setdefault: that would build a semaphore every attempt
            slots = self._slots[key] = asyncio.Semaphore(self.per_target)
        label = target_label(delivery.target, delivery.default_rule)
        with traced(
            f"deliver {label}",
            context=(context_of(event) if event else None) or Context(),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.operation.type": "process",
                "messaging.message.id": delivery.event_id,
                "messaging.destination.name": delivery.rule,
                "paymesh.delivery.id": delivery.id,
                "paymesh.delivery.attempt": delivery.attempts + 1,
                "paymesh.target": label,
            },
        ) as span:
            async with slots:
                try:
                    if event is None:
                        raise TargetFailed(f"event {delivery.event_id} no longer exists")
                    await self.send(delivery, event)
                    after_success(delivery, clock())
                except RetryLater as exc:
                    after_failure(
                        delivery, clock(), f"retry later: {exc}", rand, exc.seconds, retry_base
                    )
                except TargetFailed as exc:
                    after_failure(delivery, clock(), str(exc), rand, exc.retry_after, retry_base)
                    if exc.permanent:
                        delivery.status = "dead"
                        delivery.next_attempt_at = delivery.history[-1].at
                except Exception as exc:
                    after_failure(
                        delivery, clock(), f"{type(exc).__name__}: {exc}", rand, None, retry_base
                    )
            span.set_attribute("paymesh.delivery.status", delivery.status)
            if delivery.status != "delivered" and delivery.history:
                span.set_attribute("paymesh.delivery.error", delivery.history[-1].error)
            if delivery.status == "dead":
                span.set_status(StatusCode.ERROR, "dead letter")
        for observe in self.observers:
            observe(delivery)
        if delivery.status == "dead":
            log.warning(
                "delivery %s of event %s to %s/%s is dead after %d attempts",
                delivery.id,
                delivery.event_id,
                delivery.rule,
                delivery.target.id,
                delivery.attempts,
            )

    async def send(self, delivery: Delivery, event: dict[str, Any]) -> None:
        target = delivery.target
        if target.type == "builtin":
            handler = self.builtins.get(target.name or "")
            if handler is None:
                raise TargetFailed(f"no built-in handler named {target.name!r}")
            with traced(f"handle {target.name}"):
                await handler(event, delivery)
            return
        assert target.url is not None
        if self.secrets is None:
            raise TargetFailed("no signing secret for this target")
        secret = self.secrets.for_delivery(delivery)
        body = compact_json.encode(event)
        headers = {
            "Content-Type": "application/json",
            "Paymesh-Event-Id": delivery.event_id,
            "Paymesh-Signature": signature_header(body, secret, int(time.time())),
        }
        parent = traceparent()  # the delivery's span: the target's own trace can join it
        if parent:
            headers[KEY] = parent
        try:
            status, retry_after = await self.sender.post(target.url, body, headers)
        except TargetUnreachable as exc:
            raise TargetFailed(str(exc)) from exc  # the sender's fixed phrases only
        except Exception as exc:
            # What a merchant reads in its dead letters must not map the network: no OS error.
            log.warning("delivery %s: the sender failed: %r", delivery.id, exc)
            raise TargetFailed("target unreachable") from exc
        if 300 <= status < 400:
            raise TargetFailed("redirect not followed")
        if not 200 <= status < 300:
            raise TargetFailed(f"HTTP {status}", retry_after)
