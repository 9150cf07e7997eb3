"""The event bus on NATS JetStream, for many API processes and workers.

Three hops, each a durable, acknowledged step, so a delivery survives the death of any
process:

1. `OutboxRelay` (in every API process, and in workers as a sweeper) claims committed
   outbox events with a lease (`claim_outbox`: relays take disjoint rows), publishes them to
   the EVENTS stream, each with `Nats-Msg-Id` = its event id, then marks them relayed. A
   relay that dies between the two leaves its rows to another after the lease, which
   publishes them again: JetStream keeps the first within its duplicate window. The events
   its own process commits it is handed instead, written already leased to it
   (`OutboxRelay.take`): no claim for them.
2. `Dispatcher` routing (in workers): one durable pull consumer over EVENTS, shared by all
   workers. Each event is matched against every rule at once and one message per
   (rule, target) goes to the DELIVERIES stream, its message id derived from the event,
   rule and target; then the event is acked. A worker killed before its ack leaves the
   event to be redelivered to another, whose fan-out is de-duplicated the same way.
3. `Dispatcher` delivery: one durable pull consumer over DELIVERIES. A delivery is acked
   once its target took it; a failure is a `nak` with the retry policy's backoff as delay;
   attempts are counted from the message (`num_delivered`). When the policy is spent the
   delivery is written to the store as a dead letter (the same table and API as embedded
   mode) and acked. A redrive marks it pending in the store; workers publish such rows back
   to DELIVERIES and mark them `redriven`.

Delivery is at-least-once, as in the embedded bus: built-in handlers are idempotent by
event id, and HTTP targets get the event id to do the same.

Traces cross with the events: an envelope's `traceparent` rides inside the message (the
delivery message holds the envelope), so the publish, the routing and each delivery's span
(the service's `Targets`) join the trace the event was recorded in, in whichever process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy, RetentionPolicy, StreamConfig
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind

from paymesh.adapters.codec import (
    decode_json,
    delivery_from_message,
    delivery_to_message,
    encode_json,
    to_micros,
)
from paymesh.ports.bus import DEFAULT, Deliverer, Delivery, EventRouter
from paymesh.ports.bus_backend import BusBackend
from paymesh.ports.store import Changeset, StoredEvent
from paymesh.tracing import event_span

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Layout:
    """Names and limits of the two streams. `prefix` lets several deployments share a
    server (and each test its own streams)."""

    prefix: str = "paymesh"
    #: How long JetStream remembers a message id. A relay that died between publishing and
    #: marking is retried within seconds; two minutes covers that with room to spare.
    duplicate_window_seconds: float = 120.0
    #: Work-queue streams drop a message once acked; this bounds what an absent consumer
    #: leaves behind.
    max_age_seconds: float = 7 * 24 * 3600.0
    #: How long a worker may hold a message before JetStream gives it to another worker.
    #: Longer than any target call (HTTP targets time out well before).
    ack_wait_seconds: float = 60.0

    @property
    def events_stream(self) -> str:
        return f"{self.prefix.upper()}_EVENTS"

    @property
    def deliveries_stream(self) -> str:
        return f"{self.prefix.upper()}_DELIVERIES"

    @property
    def events_subject(self) -> str:
        return f"{self.prefix}.events"

    @property
    def deliveries_subject(self) -> str:
        return f"{self.prefix}.deliveries"


async def connect(url: str, name: str, client: Client | None = None) -> Client:
    """A connection that keeps reconnecting: a restarted nats-server is waited for, not fatal.
    `client`: one made earlier (unconnected) and already handed to those who publish on it."""
    nc = client or Client()
    await nc.connect(
        servers=[url],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=5,
    )
    return nc


async def ensure_streams(js: JetStreamContext, layout: Layout) -> None:
    """Create the two streams if absent (every process may race to; the loser finds them)."""
    for name, subject in (
        (layout.events_stream, layout.events_subject),
        (layout.deliveries_stream, layout.deliveries_subject),
    ):
        config = StreamConfig(
            name=name,
            subjects=[subject],
            retention=RetentionPolicy.WORK_QUEUE,
            discard=DiscardPolicy.OLD,
            max_age=layout.max_age_seconds,
            duplicate_window=layout.duplicate_window_seconds,
        )
        await ensure_stream(js, config)


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream `config` describes if absent (every process may race to; the loser
    finds it); raises if it is still not there."""
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        with contextlib.suppress(Exception):  # another process created it first
            await js.add_stream(config)
        await js.stream_info(config.name)


def delivery_id(event_id: str, merchant_id: str, rule: str, target_id: str) -> str:
    """The same event, rule and target always make the same delivery (and message id)."""
    digest = hashlib.sha256(f"{event_id}\x00{merchant_id}\x00{rule}\x00{target_id}".encode())
    return "dlv_" + digest.hexdigest()[:26]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxRelay:
    """Moves committed outbox events onto the EVENTS stream, one relay of any number.

    Each pass claims a batch for `lease_seconds`; other relays' claims pass over it
    meanwhile. A batch whose publish or mark failed is tried again by this relay at its next
    pass, before it claims more, so an outage of NATS or the database costs one poll, not a
    lease: only the step that failed (a batch published but not marked is only marked), and
    only while the lease lasts. Once it has ended the batch may be another relay's: this one
    forgets it and claims afresh. The lease is well inside JetStream's duplicate window: a
    batch another relay takes over when it ends is still de-duplicated.

    A store that hands its commits' events over (`PostgresStore.hand_outbox_to`, wired by
    the entrypoint to `take`) writes them already leased to this relay, which publishes
    them as they come, with no claim: it then claims only every `poll_seconds` (or when
    `notify`d), for what another process left behind. Their marks wait up to
    `mark_linger_seconds` to go in one statement with those published after them: a mark
    only keeps a later claim from publishing them again, and their lease does that
    meanwhile."""

    def __init__(
        self,
        store: BusBackend,
        js: JetStreamContext,
        layout: Layout,
        batch: int = 500,
        poll_seconds: float = 0.5,
        lease_seconds: float = 30.0,
        clock: Callable[[], datetime] = _utcnow,
        mark_linger_seconds: float = 0.05,
    ) -> None:
        self.store = store
        self.js = js
        self.layout = layout
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._wake = asyncio.Event()
        # The batch claimed and not yet marked routed, whether it was published, and when
        # the claim ends.
        self._unfinished: list[StoredEvent] = []
        self._published = False
        self._lease_ends = datetime.min.replace(tzinfo=UTC)
        # Events handed over by this process's commits, each batch with its lease's end.
        self._handed: list[tuple[list[StoredEvent], datetime]] = []
        self._claim_now = True
        # Handed-over events published and not marked yet, and when their mark is due.
        self.mark_linger = mark_linger_seconds
        self._to_mark: list[str] = []
        self._marks_due = math.inf

    def notify(self) -> None:
        """Events were committed that only a claim finds: claim at once."""
        self._claim_now = True
        self._wake.set()

    def take(self, events: list[StoredEvent], lease_ends: datetime) -> None:
        """Events this process just committed, leased to this relay until `lease_ends`."""
        self._handed.append((events, lease_ends))
        self._wake.set()

    async def run(self) -> None:
        next_claim = time.monotonic()
        try:
            while True:
                try:
                    await self.relay_handed(linger=True)
                    await self.mark_published(force=False)
                    if self._claim_now or time.monotonic() >= next_claim:
                        self._claim_now = False
                        next_claim = time.monotonic() + self.poll_seconds
                        await self.relay_pending()
                except Exception:
                    log.exception("outbox relay pass failed; retrying")
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # lands as the wake fires, and the loop would outlive stop().
                wake_at = min(next_claim, self._marks_due)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, wake_at - time.monotonic())):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            # Stopping: the marks still waiting, if the database answers at once. Unmarked,
            # they are published again once their lease is over (JetStream drops the copy).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self.mark_published()

    async def mark_published(self, force: bool = True) -> int:
        """Mark the handed-over events published so far, when their mark is due (or at once
        with `force`); returns how many. On a failure they stay, for the next pass."""
        if not self._to_mark or not (
            force or time.monotonic() >= self._marks_due or len(self._to_mark) >= self.batch
        ):
            return 0
        ids, self._to_mark, due = self._to_mark, [], self._marks_due
        self._marks_due = math.inf
        try:
            await self.store.commit(Changeset(routed=ids))
        except BaseException:
            self._to_mark[:0] = ids  # before any published meanwhile, due as they were
            self._marks_due = due
            raise
        return len(ids)

    async def relay_handed(self, linger: bool = False) -> int:
        """Publish and mark what was handed over; returns how many events. With `linger`
        their marks wait for `mark_published`. A batch whose lease is over is dropped: it is
        any relay's claim now (this one's too). On a failure the batches go back, to be
        tried again at the next pass (a publish repeated after a failed mark is
        de-duplicated by JetStream)."""
        relayed = 0
        while self._handed:
            batches, self._handed = self._handed, []
            now = self.clock()
            events = [e for held, ends in batches if now < ends for e in held]
            if not events:
                continue
            try:
                await self._publish(events)
                if not linger:
                    await self.store.commit(Changeset(routed=[e.id for e in events]))
            except BaseException:
                self._handed[:0] = batches
                raise
            if linger:
                if not self._to_mark:
                    self._marks_due = time.monotonic() + self.mark_linger
                self._to_mark += [e.id for e in events]
            relayed += len(events)
        return relayed

    async def relay_pending(self) -> int:
        relayed = 0
        while True:
            now = self.clock()
            if not self._unfinished or now >= self._lease_ends:
                self._unfinished = await self.store.claim_outbox(
                    now, self.lease_seconds, self.batch
                )
                self._published = False
                self._lease_ends = now + timedelta(seconds=self.lease_seconds)
            events = self._unfinished
            if not events:
                return relayed
            if not self._published:
                await self._publish(events)
                self._published = True
            await self.store.commit(Changeset(routed=[e.id for e in events]))
            self._unfinished = []
            relayed += len(events)
            if len(events) < self.batch:
                return relayed

    async def _publish(self, events: list[StoredEvent]) -> None:
        # Published concurrently; the events' order is not a promise of the bus (as on
        # EventBridge): a payment's timeline is ordered by the store, not by delivery.
        # The envelope carries its traceparent across: each traced event's publish is a
        # span of its trace.
        spans = [event_span(e.envelope, "publish", SpanKind.PRODUCER) for e in events]
        try:
            await asyncio.gather(
                *(
                    self.js.publish(
                        self.layout.events_subject,
                        encode_json(e.envelope),
                        headers={"Nats-Msg-Id": e.id},
                    )
                    for e in events
                )
            )
        finally:
            for span in spans:
                span.end()


class Dispatcher:
    """Routes events to deliveries and runs deliveries, as one of any number of workers.

    Where an event goes is the `router`'s to say and what a delivery attempt does is the
    `targets`' (both the service's, through `paymesh.ports.bus`); this moves the messages,
    acks them and holds their leases."""

    def __init__(
        self,
        store: BusBackend,
        js: JetStreamContext,
        layout: Layout,
        router: EventRouter,
        targets: Deliverer,
        clock: Callable[[], datetime],
        rand: Callable[[], float] = random.random,
        retry_base_seconds: float = 1.0,
        max_in_flight: int = 512,
        fetch_batch: int = 128,
        on_routing: Collection[str] = (),
        start_delays: Mapping[str, timedelta] | None = None,
    ) -> None:
        """`on_routing`: built-in targets quick, in memory and idempotent enough to be tried
        as their event is routed (see `route`). `start_delays`: how long after its event a
        built-in target is first tried, as the embedded bus has it (`EventBus.start_delays`):
        `process_payment`, whose event is routed while the inline attempt is still running."""
        self.store = store
        self.js = js
        self.layout = layout
        self.router = router
        self.targets = targets
        self.clock = clock
        self.rand = rand
        self.retry_base = retry_base_seconds
        self.max_in_flight = max_in_flight
        self.fetch_batch = fetch_batch
        self.start_delays = dict(start_delays or {})
        self.on_routing = frozenset(on_routing) - set(self.start_delays)
        self._running: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()  # set when an attempt ends: room to take more
        #: Messages being worked on (by id: a Msg is not hashable), with when their ack wait
        #: last restarted.
        self._held: dict[int, tuple[Msg, float]] = {}
        self.stopping = False
        self._subs: list[Any] = []

    async def run(self) -> None:
        """The four loops, until cancelled; then it ends only once every loop has.

        A cancel can be lost on the way into a loop (nats-py's fetch waits in
        `asyncio.wait_for`, which on Python 3.11 drops a cancel that lands as a message
        arrives), and `gather` ends at the first loop cancelled, not the last. A loop that
        missed it would outlive the worker: fetching on, then, once the connection closed,
        failing every second for ever (and a cancel that came then would be turned by nats-py
        into `ConnectionClosedError` and swallowed too). So on the way out this also closes
        (each loop ends at its next turn) and waits for them all."""
        loops = [
            asyncio.create_task(loop)
            for loop in (
                self._route_loop(),
                self._deliver_loop(),
                self._redrive_loop(),
                self._keep_alive(),
            )
        ]
        try:
            await asyncio.gather(*loops)
        finally:
            self.closing()
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    def closing(self) -> None:
        """Take no more messages: the fetch loops end at their next turn (within the 1 s
        fetch timeout). Cancelling them is not enough on its own: nats-py's fetch waits in
        `asyncio.wait_for`, which on Python 3.11 can swallow a cancel, and a loop that
        missed it would keep fetching while the worker shuts down."""
        self.stopping = True
        self._freed.set()

    async def stop(self) -> None:
        """Cancel attempts in flight: their messages are not acked, so JetStream hands them
        to another worker after the ack wait."""
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Messages a last fetch brought but no loop took wait in the subscriptions' queues,
        # and the connection's drain would wait for them (30 s): let go of them instead;
        # unacked, JetStream hands them out again.
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()

    def _consumer(self, durable: str) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.layout.ack_wait_seconds,
            max_deliver=-1,
            max_ack_pending=20_000,
        )

    async def _subscribe(self, subject: str, stream: str, durable: str) -> Any:
        sub = await self.js.pull_subscribe(
            subject, durable=durable, stream=stream, config=self._consumer(durable)
        )
        self._subs.append(sub)
        return sub

    async def _fetch(self, sub: Any, batch: int) -> list[Msg]:
        try:
            msgs: list[Msg] = await sub.fetch(batch, timeout=1.0)
            return msgs
        except (NatsTimeout, TimeoutError):
            return []

    # --- routing: events -> deliveries ------------------------------------------------

    async def _route_loop(self) -> None:
        sub = await self._subscribe(
            self.layout.events_subject, self.layout.events_stream, f"{self.layout.prefix}-router"
        )
        while not self.stopping:
            try:
                msgs = await self._fetch(sub, 256)
                if self.stopping:  # handed back now, not after the ack wait
                    await asyncio.gather(*(msg.nak() for msg in msgs), return_exceptions=True)
                elif msgs:
                    await self.route(msgs)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.stopping:
                    break  # the connection closing under a stopping worker: not a failure
                log.exception("routing pass failed; the events come back after the ack wait")
                await asyncio.sleep(1.0)

    async def route(self, msgs: list[Msg]) -> None:
        """Publish each event's deliveries, then ack the events.

        A delivery to an `on_routing` built-in is tried here first, and published only if
        that try did not deliver it: most of a payment's deliveries under the default rules
        (the fraud stream, analytics) then cost no publish, fetch and ack. It stays at least
        once: a crash before the ack routes the event again, and these handlers are
        idempotent (the fraud stream skips what it has seen). A try that failed is
        published with its attempt counted, and a worker makes the next one at once (not
        after the first backoff), then goes on with the rule's policy."""
        now = self.clock()
        publishes = []
        buried: list[Delivery] = []
        spans = []
        try:
            for msg in msgs:
                envelope: dict[str, Any] = decode_json(msg.data)
                spans.append(event_span(envelope, "route", SpanKind.CONSUMER))
                event_time = datetime.fromisoformat(envelope["time"])
                for route in self.router.routes(envelope):
                    target = route.target
                    did = delivery_id(
                        envelope["id"], envelope["account"], route.rule.name, target.id
                    )
                    delay = self.start_delays.get(target.name or "")
                    delivery = Delivery(
                        id=did,
                        event_id=envelope["id"],
                        merchant_id=envelope["account"],
                        rule=route.rule.name,
                        target=target,
                        event_time=event_time,
                        created_at=now,
                        next_attempt_at=(
                            max(now, event_time + delay)
                            if delay and target.type == "builtin"
                            else now
                        ),
                        default_rule=route.rule.merchant_id == DEFAULT,
                    )
                    if target.type == "builtin" and target.name in self.on_routing:
                        await self.targets.attempt(
                            delivery, envelope, self.clock, self.rand, self.retry_base
                        )
                        if delivery.status == "delivered":
                            continue
                        if delivery.status == "dead":  # a policy with no retries
                            buried.append(delivery)
                            continue
                    publishes.append(
                        self.js.publish(
                            self.layout.deliveries_subject,
                            delivery_to_message(delivery, envelope),
                            headers={"Nats-Msg-Id": did},
                        )
                    )
            await asyncio.gather(*publishes)
            for delivery in buried:
                await self.bury(delivery)
            # Acked only once every delivery is in the stream: a crash before this routes the
            # events again, and the deliveries' message ids keep one of each.
            await asyncio.gather(*(msg.ack() for msg in msgs))
        finally:
            for span in spans:
                span.end()

    # --- delivery: deliveries -> targets ----------------------------------------------

    async def _deliver_loop(self) -> None:
        sub = await self._subscribe(
            self.layout.deliveries_subject,
            self.layout.deliveries_stream,
            f"{self.layout.prefix}-deliverer",
        )
        while not self.stopping:
            try:
                room = min(self.fetch_batch, self.max_in_flight - len(self._running))
                if room <= 0:  # take no more than can run: the rest stay for other workers
                    self._freed.clear()
                    await self._freed.wait()
                    continue
                msgs = await self._fetch(sub, room)
                if self.stopping:  # handed back now, not after the ack wait
                    await asyncio.gather(*(msg.nak() for msg in msgs), return_exceptions=True)
                    break
                for msg in msgs:
                    task = asyncio.create_task(self._attempt(msg))
                    self._running.add(task)
                    task.add_done_callback(self._finished)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.stopping:
                    break
                log.exception("delivery fetch failed; retrying")
                await asyncio.sleep(1.0)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._freed.set()

    async def _attempt(self, msg: Msg) -> None:
        try:
            delivery, event = delivery_from_message(msg.data)
        except Exception:
            log.exception("dropping an undecodable delivery message")
            await msg.term()
            return
        due_in = (delivery.next_attempt_at - self.clock()).total_seconds()
        if delivery.attempts == 0 and due_in > 0:
            # First tried later (`start_delays`): back to the stream until then, the target
            # untouched. Its try then counts this delivery among its attempts, as it counted
            # the "retry later" the target answered when it was tried at once. (A delivery
            # published after a failed try on routing is due later too, but is tried at
            # once: see `route`.)
            await msg.nak(delay=due_in)
            return
        # Attempts before this one: those the message was published with (a redrive starts
        # again from 0) plus its earlier deliveries here.
        delivery.attempts += msg.metadata.num_delivered - 1
        self._held[id(msg)] = (msg, time.monotonic())
        try:
            await self.targets.attempt(delivery, event, self.clock, self.rand, self.retry_base)
        finally:
            del self._held[id(msg)]
        if delivery.status == "delivered":
            await msg.ack()
        elif delivery.status == "dead":
            await self.bury(delivery)
            await msg.ack()
        else:
            delay = (delivery.next_attempt_at - self.clock()).total_seconds()
            await msg.nak(delay=max(0.0, delay))

    async def _keep_alive(self) -> None:
        """A target slower than the ack wait (or a long wait for its slot) must not make
        JetStream hand the same delivery to a second worker meanwhile. One loop for all held
        messages: most attempts end long before their first renewal is due."""
        every = self.layout.ack_wait_seconds / 3
        while not self.stopping:
            await asyncio.sleep(every)
            now = time.monotonic()
            for key, (msg, since) in list(self._held.items()):
                if now - since >= every and key in self._held:
                    self._held[key] = (msg, now)
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    async def bury(self, delivery: Delivery) -> None:
        """The dead letter goes to the store, where the DLQ API lists and redrives it. Insert
        (first death) then update (a redriven delivery dying again): both idempotent."""
        await self.store.commit(Changeset(deliveries=[delivery]))
        await self.store.save_delivery(delivery)

    # --- redrive: store -> deliveries -------------------------------------------------

    async def _redrive_loop(self, poll_seconds: float = 1.0) -> None:
        while not self.stopping:
            try:
                await self.redrive_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redrive pass failed; retrying")
            await asyncio.sleep(poll_seconds)

    async def redrive_pending(self) -> int:
        """Dead letters a merchant redrove are pending rows in the store: publish each back
        to DELIVERIES once (the lease keeps other workers off it meanwhile)."""
        now = self.clock()
        claimed = await self.store.claim_deliveries(now, 60.0, 100)
        for delivery in claimed:
            event = await self.store.get_event(delivery.event_id)
            if event is None:
                delivery.status = "dead"
                await self.store.save_delivery(delivery)
                continue
            # The redrive stamped the row's due time: one message id per redrive, so a
            # worker that dies before marking it is de-duplicated, a later redrive is not.
            redriven_at = to_micros(delivery.next_attempt_at)
            fresh = replace(delivery, attempts=0, history=[], status="pending", next_attempt_at=now)
            await self.js.publish(
                self.layout.deliveries_subject,
                delivery_to_message(fresh, event),
                headers={"Nats-Msg-Id": f"{delivery.id}:redrive:{redriven_at}"},
            )
            delivery.status = "redriven"
            await self.store.save_delivery(delivery)
        return len(claimed)
