"""Relays sharing one PostgreSQL outbox, on a real nats-server: each event is published once
in total, not once per relay, and a relay that died holding events leaves them to another.

Every publish is counted as it crosses the server: a plain subscriber on the events subject
sees each message a relay sends, before JetStream's de-duplication keeps one of them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext

from paymesh.adapters.nats.bus import Layout, OutboxRelay, connect, ensure_streams
from paymesh.adapters.postgres import PostgresStore
from paymesh.domain.events import DomainEvent
from paymesh.ports.store import Changeset, StoredEvent
from tests.support.nats import NatsServer
from tests.support.postgres import PostgresServer

_names = itertools.count()


@dataclass
class Deployment:
    """Two API processes' relays (each its own pool and connection) over one database."""

    url: str
    dsn: str
    layout: Layout
    stores: list[PostgresStore] = field(default_factory=list)
    connections: list[Client] = field(default_factory=list)
    published: Counter[str] = field(default_factory=Counter)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def relay(self, lease_seconds: float = 30.0, poll_seconds: float = 0.5) -> OutboxRelay:
        store = PostgresStore(self.dsn, min_size=1)
        await store.open()
        self.stores.append(store)
        nc = await connect(self.url, f"relay-{len(self.stores)}")
        self.connections.append(nc)
        js = nc.jetstream()
        await ensure_streams(js, self.layout)
        return OutboxRelay(
            store, js, self.layout, 50, poll_seconds=poll_seconds, lease_seconds=lease_seconds
        )

    async def count_publishes(self) -> None:
        async def seen(msg: Msg) -> None:
            self.published[(msg.headers or {})["Nats-Msg-Id"]] += 1
            self.arrived.set()

        nc = await connect(self.url, "publish-counter")
        self.connections.append(nc)
        await nc.subscribe(self.layout.events_subject, cb=seen)
        # Twice: nats-py's flush() writes its PING before the queued SUB, so one PONG does not
        # say the server has the subscription (see NatsCircuitFeed.start).
        await nc.flush()
        await nc.flush()

    async def commit_events(self, ids: list[str]) -> None:
        now = datetime.now(UTC)
        await self.stores[0].commit(
            Changeset(
                events=[DomainEvent("payment.succeeded", "pay_1", "m1", now, {}, id=i) for i in ids]
            )
        )

    async def stream_messages(self) -> int:
        info = await self.connections[0].jetstream().stream_info(self.layout.events_stream)
        return int(info.state.messages)

    async def close(self) -> None:
        for nc in self.connections:
            await nc.close()
        for store in self.stores:
            await store.close()


@pytest.fixture
async def deployment(
    postgres: PostgresServer, nats_server: NatsServer
) -> AsyncIterator[Deployment]:
    n = next(_names)
    d = Deployment(
        nats_server.url,
        await postgres.create_database(f"relays{n}"),
        Layout(prefix=f"relays{n}"),  # streams of its own
    )
    yield d
    await d.close()


async def _published(d: Deployment, expected: int, within: float = 10.0) -> None:
    """Until `expected` publishes were seen; then a moment more for a duplicate to show."""
    async with asyncio.timeout(within):
        while sum(d.published.values()) < expected:
            d.arrived.clear()
            await d.arrived.wait()
    await asyncio.sleep(0.2)


async def test_two_relays_publish_each_event_once_in_total(deployment: Deployment) -> None:
    d = deployment
    first, second = await d.relay(), await d.relay()
    await d.count_publishes()
    ids = [f"evt_{i:03d}" for i in range(400)]
    await d.commit_events(ids)
    # Both start on the same backlog at once, as two API processes' sweeps do.
    shares = await asyncio.gather(first.relay_pending(), second.relay_pending())
    await _published(d, len(ids))
    assert await d.stores[0].undelivered_events(1) == []
    assert d.published == Counter({i: 1 for i in ids})
    assert sum(shares) == len(ids) and all(shares)  # both took a part, neither the other's
    assert await d.stream_messages() == len(ids)


async def test_events_a_dead_relay_held_are_published_by_another_after_its_lease(
    deployment: Deployment,
) -> None:
    d = deployment
    survivor = await d.relay(lease_seconds=2.0, poll_seconds=0.05)
    await d.count_publishes()
    ids = [f"held_{i}" for i in range(5)] + [f"free_{i}" for i in range(5)]
    await d.commit_events(ids)
    # A relay claims the oldest five, then its process dies before publishing them.
    held = await d.stores[0].claim_outbox(datetime.now(UTC), 2.0, 5)
    assert [e.id for e in held] == ids[:5]
    task = asyncio.create_task(survivor.run())
    try:
        await _published(d, 5)
        assert d.published == Counter({i: 1 for i in ids[5:]})  # the lease still holds
        await _published(d, 10)
        assert d.published == Counter({i: 1 for i in ids})
        assert await d.stores[0].undelivered_events(10) == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class FailingOnce:
    """A JetStream context whose first publish fails, as one does while NATS is away."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self.failed = False

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> object:
        if not self.failed:
            self.failed = True
            raise NatsTimeout
        return await self.js.publish(subject, payload, headers=headers)


async def test_a_batch_that_failed_is_retried_by_its_relay_at_once_not_after_the_lease(
    deployment: Deployment,
) -> None:
    d = deployment
    relay = await d.relay(lease_seconds=600.0)
    other = await d.relay()
    await d.count_publishes()
    relay.js = cast(JetStreamContext, FailingOnce(relay.js))
    await d.commit_events(["e1", "e2", "e3"])
    with pytest.raises(NatsTimeout):
        await relay.relay_pending()
    assert await other.relay_pending() == 0  # the batch is still this relay's
    assert await relay.relay_pending() == 3  # its next pass, well inside the lease
    await _published(d, 3)
    assert set(d.published) == {"e1", "e2", "e3"}
    assert await d.stores[0].undelivered_events(10) == []


class MarkFailingOnce:
    """A store whose first commit fails, as one does while the database is away."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.failed = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def commit(self, changes: Changeset) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the database is away")
        await self.store.commit(changes)


async def test_a_batch_published_but_not_marked_is_only_marked_at_the_next_pass(
    deployment: Deployment,
) -> None:
    d = deployment
    relay = await d.relay()
    await d.count_publishes()
    relay.store = cast(PostgresStore, MarkFailingOnce(cast(PostgresStore, relay.store)))
    await d.commit_events(["e1", "e2", "e3"])
    with pytest.raises(ConnectionError):
        await relay.relay_pending()
    await _published(d, 3)
    assert await relay.relay_pending() == 3
    await asyncio.sleep(0.2)
    assert d.published == Counter({"e1": 1, "e2": 1, "e3": 1})  # not published again
    assert await d.stores[0].undelivered_events(10) == []


async def test_a_relay_forgets_a_failed_batch_once_its_lease_is_over(
    deployment: Deployment,
) -> None:
    d = deployment
    relay, other = await d.relay(lease_seconds=30.0), await d.relay()
    await d.count_publishes()
    relay.js = cast(JetStreamContext, FailingOnce(relay.js))
    await d.commit_events(["e1", "e2", "e3"])
    with pytest.raises(NatsTimeout):
        await relay.relay_pending()
    # The lease ends: the batch is another relay's to take, and it takes it.
    later = datetime.now(UTC) + timedelta(seconds=31)
    relay.clock = other.clock = lambda: later
    assert await other.relay_pending() == 3
    await asyncio.sleep(0.2)
    seen = Counter(d.published)
    assert await relay.relay_pending() == 0  # nothing held from memory, nothing to claim
    await asyncio.sleep(0.2)
    assert d.published == seen


async def test_a_relay_handed_its_processs_commits_publishes_them_without_a_claim(
    deployment: Deployment,
) -> None:
    """The events a process commits are written leased to its own relay and handed to it:
    published and marked with no claim (a claim is a round trip and a read of every
    envelope), and passed over by another process's relay meanwhile."""
    d = deployment
    own, other = await d.relay(), await d.relay()
    claims = 0
    claim = d.stores[0].claim_outbox

    async def counted_claim(now: datetime, lease_seconds: float, limit: int) -> list[StoredEvent]:
        nonlocal claims
        claims += 1
        return await claim(now, lease_seconds, limit)

    d.stores[0].claim_outbox = counted_claim  # type: ignore[method-assign]
    d.stores[0].hand_outbox_to(own.take, 10.0)
    await d.count_publishes()
    await d.commit_events(["h1", "h2"])
    await d.commit_events(["h3"])
    assert await other.relay_pending() == 0  # leased to the committing process's relay
    assert await own.relay_handed() == 3
    await _published(d, 3)
    assert d.published == Counter({"h1": 1, "h2": 1, "h3": 1})
    assert claims == 0
    assert await d.stores[0].undelivered_events(10) == []


async def test_events_handed_to_a_relay_that_died_are_published_by_another_after_the_lease(
    deployment: Deployment,
) -> None:
    d = deployment
    survivor = await d.relay(poll_seconds=0.05)
    await d.count_publishes()
    handed: list[list[StoredEvent]] = []
    d.stores[0].hand_outbox_to(lambda events, _ends: handed.append(events), 1.0)
    await d.commit_events(["lost_1", "lost_2"])  # its process dies before publishing them
    assert [e.id for e in handed[0]] == ["lost_1", "lost_2"]
    task = asyncio.create_task(survivor.run())
    try:
        await asyncio.sleep(0.5)
        assert sum(d.published.values()) == 0  # the lease still holds
        await _published(d, 2, within=5.0)
        assert d.published == Counter({"lost_1": 1, "lost_2": 1})
        assert await d.stores[0].undelivered_events(10) == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_running_relay_marks_what_it_was_handed_together_after_a_linger(
    deployment: Deployment,
) -> None:
    """Published at once, marked together: one mark for the events of three commits."""
    d = deployment
    own = await d.relay()
    own.mark_linger = 0.3
    await d.count_publishes()
    d.stores[0].hand_outbox_to(own.take, 10.0)
    marks: list[list[str]] = []
    commit = d.stores[0].commit

    async def counted(changes: Changeset) -> None:
        if changes.routed:
            marks.append(list(changes.routed))
        await commit(changes)

    d.stores[0].commit = counted  # type: ignore[method-assign]
    task = asyncio.create_task(own.run())
    try:
        for ids in (["m1"], ["m2", "m3"], ["m4"]):  # each published before the next commit
            await d.commit_events(ids)
            await asyncio.sleep(0.05)
        await _published(d, 4)
        await asyncio.sleep(0.5)
        assert marks == [["m1", "m2", "m3", "m4"]]
        assert await d.stores[0].undelivered_events(10) == []
        assert d.published == Counter({"m1": 1, "m2": 1, "m3": 1, "m4": 1})
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_marks_that_failed_wait_for_the_next_pass_and_none_is_lost(
    deployment: Deployment,
) -> None:
    d = deployment
    own = await d.relay()
    await d.count_publishes()
    d.stores[0].hand_outbox_to(own.take, 10.0)
    await d.commit_events(["f1", "f2"])
    assert await own.relay_handed(linger=True) == 2
    own.store = cast(PostgresStore, MarkFailingOnce(d.stores[0]))
    with pytest.raises(ConnectionError):
        await own.mark_published()
    await d.commit_events(["f3"])
    assert await own.relay_handed(linger=True) == 1
    assert await own.mark_published() == 3  # the failed ones too, in one mark
    assert await d.stores[0].undelivered_events(10) == []
    await _published(d, 3)
    assert d.published == Counter({"f1": 1, "f2": 1, "f3": 1})
