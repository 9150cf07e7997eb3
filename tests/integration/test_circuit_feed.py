"""PSP circuits shared over a real nats-server: processes (each with its own connection, feed
and breakers) open together and close together."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial

import nats
import pytest

from paymesh.adapters.nats.circuit_feed import NatsCircuitFeed
from paymesh.service.circuit import CircuitBreakers
from tests.support.nats import NatsServer


async def until(check: Callable[[], bool], within: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "not within the time"
        await asyncio.sleep(0.005)


@pytest.fixture
async def processes(
    nats_server: NatsServer,
) -> AsyncIterator[list[tuple[CircuitBreakers, NatsCircuitFeed]]]:
    subject = f"test.circuit.{uuid.uuid4().hex[:8]}"  # nothing else on the server reaches it
    made = []
    for _ in range(3):
        nc = await nats.connect(nats_server.url)
        breakers = CircuitBreakers(failure_threshold=2, cooldown=30)
        feed = NatsCircuitFeed(nc, breakers, subject)
        breakers.feed = feed
        await feed.start()
        made.append((breakers, feed, nc))
    try:
        yield [(b, f) for b, f, _ in made]
    finally:
        for _, feed, nc in made:
            await feed.close()
            await nc.close()


async def test_a_circuit_one_process_opens_is_open_in_the_others_and_closes_with_a_trial(
    processes: list[tuple[CircuitBreakers, NatsCircuitFeed]],
) -> None:
    (a, feed_a), (b, feed_b), (c, feed_c) = processes
    a.failed("stripe")
    a.failed("stripe")  # opens: told once
    await until(lambda: b.state("stripe") == "open" and c.state("stripe") == "open")
    assert a.allows("adyen") and b.allows("adyen")  # only Stripe's
    assert not b.allows("stripe") and not c.allows("stripe")
    assert (feed_a.published, feed_b.published, feed_c.published) == (1, 0, 0)
    assert feed_a.applied == 0  # its own message, heard and skipped
    # c's trial (its cooldown ended early here: the clock is not the point) succeeds.
    c.succeeded("stripe")
    await until(lambda: a.state("stripe") == "closed" and b.state("stripe") == "closed")
    assert a.allows("stripe") and b.allows("stripe")
    # Each heard the others' messages only: a the closing, b both, c the opening.
    assert (feed_a.applied, feed_b.applied, feed_c.applied) == (1, 2, 1)


async def test_an_unreadable_message_is_skipped_and_the_feed_goes_on(
    processes: list[tuple[CircuitBreakers, NatsCircuitFeed]],
) -> None:
    (a, feed_a), (b, _feed_b), _ = processes
    await feed_a.nc.publish(feed_a.subject, b"\xc1 not msgpack")
    a.failed("paypal")
    a.failed("paypal")
    await until(lambda: b.state("paypal") == "open")


def _is_open(breakers: CircuitBreakers) -> bool:
    return breakers.state("stripe") == "open"


async def test_a_feed_hears_what_is_published_the_moment_it_has_started(
    nats_server: NatsServer,
) -> None:
    """`start` returns once the server has the subscription: a message published right after
    reaches the feed. nats-py's flush() can overtake the SUB it follows: flushed once, one
    start in 50 to 300 missed its first message here, so this starts 300 feeds and
    publishes to each at once (the test below shows the order on the wire every time)."""
    listener_nc = await nats.connect(nats_server.url)
    opener_nc = await nats.connect(nats_server.url)
    try:
        missed = 0
        for _ in range(300):
            subject = f"test.circuit.{uuid.uuid4().hex[:8]}"
            breakers = CircuitBreakers(failure_threshold=1, cooldown=30)
            feed = NatsCircuitFeed(listener_nc, breakers, subject)
            await feed.start()
            opener = NatsCircuitFeed(opener_nc, CircuitBreakers(), subject)
            opener.opened("stripe", 30)
            try:
                await until(partial(_is_open, breakers), within=1.0)
            except AssertionError:
                missed += 1
            await opener.close()
            await feed.close()
        assert missed == 0
    finally:
        await opener_nc.close()
        await listener_nc.close()


async def test_a_feed_starts_with_a_ping_behind_its_sub(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the test above can pass: the PONG that `start` waits for answers a PING written
    after the SUB, so the server has read the SUB. nats-py's flush() writes its PING at
    once while the SUB waits for the flusher task, so one flush always puts the PING first.
    The connection's writes are recorded (nats-py's transport, a private attribute)."""
    nc = await nats.connect(nats_server.url)
    wire: list[bytes] = []
    transport = nc._transport
    assert transport is not None
    write, writelines = transport.write, transport.writelines

    def recorded_write(data: bytes) -> None:
        wire.append(bytes(data))
        write(data)

    def recorded_writelines(lines: list[bytes]) -> None:
        wire.extend(bytes(line) for line in lines)
        writelines(lines)

    monkeypatch.setattr(transport, "write", recorded_write)
    monkeypatch.setattr(transport, "writelines", recorded_writelines)
    try:
        feed = NatsCircuitFeed(nc, CircuitBreakers(), "test.circuit.wire")
        await feed.start()
        sent = b"".join(wire)
        assert b"SUB test.circuit.wire" in sent
        assert b"PING" in sent.split(b"SUB test.circuit.wire", 1)[1]
        await feed.close()
    finally:
        await nc.close()
