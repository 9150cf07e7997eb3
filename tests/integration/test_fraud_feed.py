"""The shared fraud feed on a real nats-server: engines in separate "processes" (each with its
own connection and feed) score as one engine that saw every payment would.

Each test has its own subject, so nothing else on the session's server reaches its feeds.
`Cluster.settle` waits (polling, bounded) until every feed has applied all the others said.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import nats
import pytest
from nats.aio.client import Client

from paymesh.adapters.nats.fraud_feed import NatsFraudFeed
from paymesh.domain.payment import RiskContext
from paymesh.fraud.scorer import FraudEngine, FraudRiskScorer
from paymesh.ports.bus import Delivery, Target
from paymesh.ports.risk import RiskInput
from paymesh.ports.store import Changeset, Store
from paymesh.service.fraud_stream import FraudStream
from tests.support.nats import NatsServer

T0 = 1_700_000_000.0
DAY = 86_400.0
NOW = datetime.fromtimestamp(T0, UTC)
DELIVERY = Delivery(
    "d",
    "e",
    "shop",
    "r",
    Target("t", "builtin", "fraud_detection"),
    event_time=NOW,
    created_at=NOW,
    next_attempt_at=NOW,
)


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Process:
    nc: Client
    engine: FraudEngine
    feed: NatsFraudFeed
    scorer: FraudRiskScorer
    baseline: int  # messages the others had published when it subscribed: it missed those


class AlertSink:
    async def commit(self, changes: Changeset) -> None:
        pass


@dataclass
class Cluster:
    url: str
    clock: Clock = field(default_factory=Clock)
    subject: str = field(default_factory=lambda: f"test.fraud.{uuid.uuid4().hex[:8]}")
    processes: list[Process] = field(default_factory=list)

    async def join(self) -> Process:
        await self.settle()
        nc = await nats.connect(self.url)
        engine = FraudEngine()
        feed = NatsFraudFeed(nc, engine, self.subject)
        await feed.start()  # returns once the server has its subscription
        process = Process(
            nc, engine, feed, FraudRiskScorer(engine, self.clock, feed), baseline=self.published()
        )
        self.processes.append(process)
        return process

    def published(self) -> int:
        return sum(p.feed.published for p in self.processes)

    def behind(self) -> dict[str, tuple[int, int]]:
        """(applied, expected) of each feed that has not applied exactly what others said."""
        total = self.published()
        expected = {p.feed.origin: total - p.feed.published - p.baseline for p in self.processes}
        return {
            p.feed.origin: (p.feed.applied, expected[p.feed.origin])
            for p in self.processes
            if p.feed.applied != expected[p.feed.origin]
        }

    async def settle(self, within: float = 5.0) -> None:
        for p in self.processes:
            await p.feed.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while behind := self.behind():
            assert all(applied < want for applied, want in behind.values()), behind
            assert loop.time() < deadline, f"feeds behind after {within}s: {behind}"
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        for p in self.processes:
            await p.feed.close()
            await p.nc.close()


@pytest.fixture
async def cluster(nats_server: NatsServer) -> AsyncIterator[Cluster]:
    c = Cluster(nats_server.url)
    try:
        yield c
    finally:
        await c.close()


def probe(
    n: int, card: str, customer: str = "carder", device: str = "rig", amount: int = 100
) -> RiskInput:
    return RiskInput(
        payment_id=f"pay_{n}",
        merchant_id="shop",
        customer_id=customer,
        amount=amount,
        currency="usd",
        payment_method=card,
        context=RiskContext(device_id=device, ip_address=f"ip-{device}", country="GB"),
    )


def event(kind: str, payment_id: str, at: float, **detail: object) -> dict[str, object]:
    return {
        "id": f"evt-{kind}-{payment_id}",
        "detail-type": kind,
        "account": "shop",
        "time": datetime.fromtimestamp(at, UTC).isoformat(),
        "detail": {"payment_id": payment_id, **detail},
    }


def worker_stream(worker: Process) -> FraudStream:
    return FraudStream(worker.engine, cast(Store, AlertSink()), lambda: NOW, feed=worker.feed)


async def test_card_testing_spread_over_two_processes_scores_as_on_one(cluster: Cluster) -> None:
    a, b = await cluster.join(), await cluster.join()
    whole = FraudRiskScorer(FraudEngine(), cluster.clock)  # one engine seeing every probe
    alone = FraudRiskScorer(FraudEngine(), cluster.clock)  # A's share only, as without a feed
    for n in range(6):  # one device trying a new card every 20 s, alternately on A and B
        cluster.clock.now = T0 + 20 * n
        here = a if n % 2 == 0 else b
        subject = probe(n, f"pm_card_{n}")
        assert await here.scorer.assess(subject) == await whole.assess(subject)
        if here is a:
            await alone.assess(subject)
        await cluster.settle()
    cluster.clock.now = T0 + 120
    subject = probe(6, "pm_card_6")
    on_a, on_one, without_feed = [await s.assess(subject) for s in (a.scorer, whole, alone)]
    assert on_a == on_one
    assert on_a.score > without_feed.score
    assert "card_enumeration" in on_a.factors and "card_enumeration" not in without_feed.factors
    await cluster.settle()
    assert a.engine.snapshot() == b.engine.snapshot() == whole.engine.snapshot()


async def test_outcomes_learned_by_the_worker_reach_every_scoring_process(cluster: Cluster) -> None:
    a, b, worker = await cluster.join(), await cluster.join(), await cluster.join()
    stream = worker_stream(worker)
    reference = FraudEngine()  # a single process: scores, and is told every outcome
    whole = FraudRiskScorer(reference, cluster.clock)
    unaware = FraudRiskScorer(FraudEngine(), cluster.clock)  # scores, never told outcomes

    async def pay(n: int, here: Process, subject: RiskInput) -> None:
        cluster.clock.now = T0 + 30 * n
        assert await here.scorer.assess(subject) == await whole.assess(subject)
        await unaware.assess(subject)
        await cluster.settle()

    async def outcome(kind: str, n: int, at: float, **detail: object) -> None:
        await stream(event(kind, f"pay_{n}", at, **detail), DELIVERY)
        reference.feedback(
            f"pay_{n}",
            {"payment.failed": "declined", "payment.dispute.created": "disputed"}[kind],
            at,
        )
        await cluster.settle()

    # Two small probes on one card, one through each API process, each declined at the PSP.
    for n, here in enumerate((a, b)):
        await pay(n, here, probe(n, "pm_card_x"))
        await outcome("payment.failed", n, T0 + 30 * n + 2, failure_code="card_declined")
    for n, here in ((2, a), (3, b)):  # the next probes, on either process
        cluster.clock.now = T0 + 30 * n
        subject = probe(n, "pm_card_x")
        got, want, before = [await s.assess(subject) for s in (here.scorer, whole, unaware)]
        assert got == want and "declined_probes" in got.factors
        assert got.score > before.score
        await cluster.settle()

    # A card used by its holder on A, disputed ten days later: B hears of it from the worker.
    await pay(10, a, probe(10, "pm_card_y", customer="holder", device="phone", amount=5000))
    await outcome("payment.dispute.created", 10, T0 + 10 * DAY)
    cluster.clock.now = T0 + 11 * DAY
    subject = probe(11, "pm_card_y", customer="stranger", device="other", amount=5000)
    got, want, before = [await s.assess(subject) for s in (b.scorer, whole, unaware)]
    assert got == want and "card_disputed" in got.factors
    assert got.score > before.score
    await cluster.settle()
    assert a.engine.snapshot() == b.engine.snapshot() == reference.snapshot()


async def test_a_worker_that_never_saw_the_payment_still_tells_the_one_that_scored_it(
    cluster: Cluster,
) -> None:
    a = await cluster.join()
    reference = FraudEngine()
    whole = FraudRiskScorer(reference, cluster.clock)
    for n in range(2):
        cluster.clock.now = T0 + 30 * n
        subject = probe(n, "pm_card_x")
        assert await a.scorer.assess(subject) == await whole.assess(subject)
    worker = await cluster.join()  # started (or restarted) after those were scored
    stream = worker_stream(worker)
    for n in range(2):
        at = T0 + 30 * n + 2
        await stream(
            event("payment.failed", f"pay_{n}", at, failure_code="card_declined"), DELIVERY
        )
        assert worker.engine.feedback(f"pay_{n}", "declined", at) is False
        reference.feedback(f"pay_{n}", "declined", at)
    await cluster.settle()
    cluster.clock.now = T0 + 60
    subject = probe(2, "pm_card_x")
    got = await a.scorer.assess(subject)
    assert got == await whole.assess(subject) and "declined_probes" in got.factors


async def test_a_process_does_not_apply_its_own_messages_again(cluster: Cluster) -> None:
    a, b = await cluster.join(), await cluster.join()
    whole = FraudRiskScorer(FraudEngine(), cluster.clock)
    for n in range(3):  # were A to count its own again, 6 payments in 5 minutes: velocity
        cluster.clock.now = T0 + 20 * n
        subject = probe(n, f"pm_card_{n}", device=f"phone-{n}")
        assert await a.scorer.assess(subject) == await whole.assess(subject)
    await cluster.settle()
    # B speaks after A's messages reached the server, so A has handled (skipped) its own
    # echoes before it applies this one: one subscription, in order.
    cluster.clock.now = T0 + 60
    subject = probe(3, "pm_card_3", device="phone-3")
    assert await b.scorer.assess(subject) == await whole.assess(subject)
    await cluster.settle()
    assert (a.feed.applied, b.feed.applied) == (1, 3)
    cluster.clock.now = T0 + 80
    subject = probe(4, "pm_card_4", device="phone-4")
    got, want = await a.scorer.assess(subject), await whole.assess(subject)
    assert got == want and "velocity_5m" not in got.factors
    await cluster.settle()
    assert a.engine.snapshot() == whole.engine.snapshot()


async def test_unreadable_messages_are_skipped_and_the_feed_goes_on(cluster: Cluster) -> None:
    a, b = await cluster.join(), await cluster.join()
    await b.nc.publish(cluster.subject, b"not msgpack \xc1")
    await b.nc.publish(cluster.subject, b"\x92\xa1zz")  # a kind this version does not know
    await b.nc.flush()
    await b.scorer.assess(probe(0, "pm_card_0"))
    await cluster.settle()
    assert a.feed.applied == 1 and a.engine.store.memory.get("pay_0") is not None


async def test_a_lost_connection_never_reaches_the_payment_path(cluster: Cluster) -> None:
    a, b = await cluster.join(), await cluster.join()
    await a.nc.close()
    assessment = await a.scorer.assess(probe(0, "pm_card_0"))  # scored all the same
    assert assessment.decision == "allow"
    a.feed.outcome("pay_0", "declined", T0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while a.feed.dropped < 2:
        assert loop.time() < deadline, "the feed neither published nor dropped"
        await asyncio.sleep(0.005)
    assert a.feed.published == 0
    await b.scorer.assess(probe(1, "pm_card_1"))  # the others carry on
    await b.feed.flush()
    assert b.feed.published == 1


async def applied(feed: NatsFraudFeed, count: int, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while feed.applied < count:
        assert loop.time() < deadline, f"applied {feed.applied} of {count} after {within}s"
        await asyncio.sleep(0.005)


async def test_a_process_away_learns_on_its_return_what_was_said_meanwhile(
    cluster: Cluster,
) -> None:
    # The scoring process restarts (or loses its connection): the others' payments made
    # while it was away reach it when it is back, under the same consumer name.
    a = await cluster.join()
    nc = await nats.connect(cluster.url)
    engine = FraudEngine()
    away = NatsFraudFeed(nc, engine, cluster.subject, consumer="api-2")
    await away.start()
    await away.close()
    await nc.close()
    whole = FraudRiskScorer(FraudEngine(), cluster.clock)
    for n in range(3):
        cluster.clock.now = T0 + 20 * n
        subject = probe(n, f"pm_card_{n}")
        assert await a.scorer.assess(subject) == await whole.assess(subject)
    await a.feed.flush()
    nc = await nats.connect(cluster.url)
    back = NatsFraudFeed(nc, engine, cluster.subject, consumer="api-2")
    await back.start()
    try:
        await applied(back, 3)
        assert engine.snapshot() == whole.engine.snapshot()
    finally:
        await back.close()
        await nc.close()


async def test_a_message_published_twice_is_learned_once(cluster: Cluster) -> None:
    a, b = await cluster.join(), await cluster.join()
    whole = FraudRiskScorer(FraudEngine(), cluster.clock)
    await b.scorer.assess(probe(0, "pm_card_0"))
    await whole.assess(probe(0, "pm_card_0"))
    await cluster.settle()
    # The same bytes again, under another message id, so the stream keeps both (as after a
    # sender's retry outlasting the duplicate window): A is handed it a second time.
    js = b.nc.jetstream()
    again = (await js.get_last_msg(b.feed.stream, cluster.subject)).data
    assert again is not None
    await js.publish(cluster.subject, again, headers={"Nats-Msg-Id": "again"})
    await applied(a.feed, 2)
    assert a.engine.snapshot() == whole.engine.snapshot()


async def test_closing_ends_a_reader_whose_cancel_was_lost(cluster: Cluster) -> None:
    """nats-py's fetch can drop a cancel that lands as messages arrive (Python 3.11's
    `wait_for`); `close` must not then wait for a connection only its caller closes."""
    process = await cluster.join()
    sub = process.feed._sub
    real_fetch = sub.fetch
    lost = 0

    async def fetch_that_loses_a_cancel(*args: object, **kwargs: object) -> list[object]:
        nonlocal lost
        try:
            return cast(list[object], await real_fetch(*args, **kwargs))
        except asyncio.CancelledError:
            if lost:  # only the first: a reader still running after 5 s then ends the test
                raise
            lost += 1
            return []

    sub.fetch = fetch_that_loses_a_cancel
    await asyncio.sleep(0.2)  # the reader parked in a (wrapped) fetch
    await asyncio.wait_for(process.feed.close(), 5)  # the connection is still open
    assert lost == 1, "the cancel never reached the fetch: nothing was tested"
    cluster.processes.remove(process)
    await process.nc.close()
