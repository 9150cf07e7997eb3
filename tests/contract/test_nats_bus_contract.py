"""The bus contract on NATS JetStream: PostgreSQL outbox, a real nats-server (both started
by the test run itself), the relay and a dispatcher each on their own connection, as in
separate processes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from nats.aio.client import Client

from paymesh.adapters.codec import encode_json
from paymesh.adapters.http_targets import AiohttpTargetSender
from paymesh.adapters.nats.bus import Dispatcher, Layout, OutboxRelay, connect, ensure_streams
from paymesh.adapters.postgres import PostgresStore
from paymesh.domain.events import DomainEvent
from paymesh.ports.bus import Rule
from paymesh.service.bus import Targets
from paymesh.service.event_router import Router
from tests.contract.bus_contract import (
    NAMES,
    BusContract,
    Harness,
    Recorder,
    cancelled,
    event,
    publish,
    rule,
    settled,
    until,
)
from tests.support.nats import NatsServer
from tests.support.postgres import PostgresServer

_names = itertools.count()


class NatsHarness:
    def __init__(
        self, store: PostgresStore, url: str, layout: Layout, on_routing: tuple[str, ...] = ()
    ) -> None:
        self.store = store
        self.on_routing = on_routing
        self.url = url
        self.layout = layout
        self.recorder = Recorder()
        self.sender = AiohttpTargetSender()
        self.relay_nc: Client | None = None
        self.relay: OutboxRelay | None = None
        self.worker_nc: Client | None = None
        self.dispatcher: Dispatcher | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.start_delays: dict[str, timedelta] = {}

    async def open(self) -> None:
        self.relay_nc = await connect(self.url, "test-relay")
        js = self.relay_nc.jetstream()
        await ensure_streams(js, self.layout)
        self.relay = OutboxRelay(self.store, js, self.layout, poll_seconds=0.05)
        self.tasks.append(asyncio.create_task(self.relay.run()))

    async def start(self, rules: list[Rule]) -> None:
        for r in rules:
            await self.store.put_rule(r)
        router = Router([])
        router.load(await self.store.rules())
        self.worker_nc = await connect(self.url, "test-worker")
        targets = Targets({name: self.recorder.builtin(name) for name in NAMES}, self.sender)
        self.dispatcher = Dispatcher(
            self.store,
            self.worker_nc.jetstream(),
            self.layout,
            router,
            targets,
            lambda: datetime.now(UTC),
            retry_base_seconds=0.01,
            on_routing=self.on_routing,
            start_delays=self.start_delays,
        )
        self.worker = asyncio.create_task(self.dispatcher.run())

    async def kill(self) -> None:
        assert self.dispatcher is not None and self.worker_nc is not None
        await cancelled(self.worker)
        await self.dispatcher.stop()
        await self.worker_nc.close()  # no ack, no more in-progress: JetStream times it out
        self.dispatcher = None

    async def route_again(self, event: DomainEvent) -> None:
        # A relay that published, then died before marking the event relayed, publishes
        # it again on its next pass.
        assert self.relay is not None
        await self.relay.js.publish(
            self.layout.events_subject,
            encode_json(event.envelope()),
            headers={"Nats-Msg-Id": event.id},
        )

    def notify(self) -> None:
        if self.relay is not None:
            self.relay.notify()

    async def idle(self) -> bool:
        # The outbox relayed, then both work-queue streams empty: a message leaves one only
        # when acked, which routing does after publishing its deliveries and delivery does
        # after the target took it or the letter was buried (a retry waits in the stream).
        if await self.store.undelivered_events(1):
            return False
        assert self.relay_nc is not None
        js = self.relay_nc.jetstream()
        for stream in (self.layout.events_stream, self.layout.deliveries_stream):
            if (await js.stream_info(stream)).state.messages:
                return False
        return True

    async def close(self) -> None:
        if self.dispatcher is not None:
            await self.kill()
        for task in self.tasks:
            await cancelled(task)
        if self.relay_nc is not None:
            await self.relay_nc.close()
        await self.sender.aclose()


#: The second run of the contract: every quick target tried as its event is routed (the
#: worker's default for the fraud stream and analytics), the slow one left to the deliverer.
TRIED_ON_ROUTING = ("a", "b", "flaky", "down")


@pytest.fixture(params=[(), TRIED_ON_ROUTING], ids=["published", "tried-on-routing"])
async def harness(
    postgres: PostgresServer, nats_server: NatsServer, request: pytest.FixtureRequest
) -> AsyncIterator[NatsHarness]:
    n = next(_names)
    store = PostgresStore(await postgres.create_database(f"natsbus{n}"), min_size=1)
    await store.open()
    # Streams of their own per test: nothing one test leaves is seen by the next.
    layout = Layout(prefix=f"t{n}", ack_wait_seconds=1.0)
    h = NatsHarness(store, nats_server.url, layout, on_routing=request.param)
    await h.open()
    yield h
    await h.close()
    await store.close()


class TestNatsBus(BusContract):
    pass


async def test_a_delivery_tried_on_routing_is_not_published(harness: NatsHarness) -> None:
    """What trying on routing is for: a delivered try costs the deliveries stream nothing."""
    h = cast(Harness, harness)  # its store is PostgreSQL's, a kind of the protocol's
    await harness.start([rule("paid", "a", "slow")])
    paid = event()
    await publish(h, paid)
    await until(lambda: bool(harness.recorder.received("a")))
    await until(lambda: bool(harness.recorder.received("slow")))
    await settled(h)
    assert harness.relay_nc is not None
    info = await harness.relay_nc.jetstream().stream_info(harness.layout.deliveries_stream)
    # Both published, or only the slow one (a work queue: the count is what it ever took).
    assert info.state.last_seq == (1 if harness.on_routing else 2)
    assert harness.recorder.received("a") == [paid.id] == harness.recorder.received("slow")


async def test_a_built_in_with_a_start_delay_is_first_tried_after_it(harness: NatsHarness) -> None:
    """As the embedded bus schedules it: `process_payment`'s event is routed while the
    inline attempt still runs, and trying it at once only read the payment to be told to
    come back. The delivery waits in the stream instead, the target untouched, then is
    tried once. (The event's time is whole seconds: its first try is 1-2 s from now.)"""
    h = cast(Harness, harness)
    harness.start_delays = {"slow": timedelta(seconds=2)}
    await harness.start([rule("paid", "slow", "a")])
    paid = event()
    await publish(h, paid)
    await until(lambda: bool(harness.recorder.received("a")))  # routed, and "a" tried at once
    await asyncio.sleep(0.8)
    assert harness.recorder.attempts["slow"] == 0
    await until(lambda: bool(harness.recorder.received("slow")), seconds=10.0)
    await settled(h)
    assert harness.recorder.attempts["slow"] == 1
    assert harness.recorder.received("slow") == [paid.id]
