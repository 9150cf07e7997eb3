"""The event bus's contract, whichever bus carries the events.

Each module provides a `harness` fixture: a bus (the in-process one over its store, or
NATS JetStream with its relay and dispatcher) with a recording built-in target. The tests
commit events to the store's outbox, exactly as the payment service does, and assert what
each target received: once per matching (rule, target), retried with backoff, dead-lettered
when its policy is spent and delivered once more by a redrive, and still delivered once
when the process running it dies mid-delivery.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from paymesh.domain.events import DomainEvent
from paymesh.ports.bus import Delivery, RetryPolicy, Rule, Target
from paymesh.ports.bus_backend import BusBackend
from paymesh.ports.store import Changeset
from paymesh.service.bus import TargetFailed


@dataclass
class Recorder:
    """Built-in targets that record what reached them. `fail[target]` failures first (or
    forever with -1), `block[target]` holds calls until released."""

    calls: list[tuple[str, str]] = field(default_factory=list)  # (target, event id)
    fail: dict[str, int] = field(default_factory=dict)
    attempts: Counter[str] = field(default_factory=Counter)
    block: dict[str, asyncio.Event] = field(default_factory=dict)
    entered: Counter[str] = field(default_factory=Counter)

    def builtin(self, name: str) -> Callable[[dict[str, Any], Delivery], Awaitable[None]]:
        async def handle(event: dict[str, Any], delivery: Delivery) -> None:
            self.attempts[name] += 1
            self.entered[name] += 1
            if name in self.block:
                await self.block[name].wait()
            left = self.fail.get(name, 0)
            if left:
                self.fail[name] = left - 1 if left > 0 else left
                raise TargetFailed(f"{name} is down")
            self.calls.append((name, event["id"]))

        return handle

    def received(self, name: str) -> list[str]:
        return [event for target, event in self.calls if target == name]


NAMES = ("a", "b", "slow", "flaky", "down")


class Harness(Protocol):
    store: BusBackend
    recorder: Recorder

    async def start(self, rules: list[Rule]) -> None:
        """Start the bus (its dispatching process) with these rules stored."""
        ...

    async def kill(self) -> None:
        """The dispatching process dies: in-flight work is neither finished nor acknowledged."""
        ...

    async def route_again(self, event: DomainEvent) -> None:
        """What a relay or router that died before recording its work does on its retry:
        carry an already carried event once more."""
        ...

    def notify(self) -> None: ...

    async def idle(self) -> bool:
        """Whether the bus has finished everything it was given: every committed event
        carried and routed, every delivery ended (delivered or dead), none in flight or
        waiting for a retry. Only new events or a redrive give it work again."""
        ...


async def cancelled(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended, cancelling again while it runs on.

    Once should do. But on Python 3.11 `asyncio.wait_for` drops a cancel that arrives just as
    what it waits for completes, and the bus loops wait for their wake-up that way: stopped
    right after a notify, they run on (tests/integration/test_bus_shutdown.py shows it)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if not task.cancelled():
        task.exception()  # retrieved: a loop that failed has been reported by its own test


def rule(
    name: str,
    *targets: str,
    pattern: dict[str, Any] | None = None,
    retries: int = 3,
    max_age: int = 3600,
    merchant: str = "m1",
) -> Rule:
    policy = RetryPolicy(maximum_retry_attempts=retries, maximum_event_age_seconds=max_age)
    return Rule(
        merchant,
        name,
        pattern or {"detail-type": ["payment.succeeded"]},
        tuple(Target(id=t, type="builtin", name=t, retry_policy=policy) for t in targets),
    )


def event(kind: str = "payment.succeeded", merchant: str = "m1", **detail: Any) -> DomainEvent:
    return DomainEvent(
        kind, f"pay_{uuid.uuid4().hex[:8]}", merchant, datetime.now(UTC), {"amount": 2500, **detail}
    )


async def publish(h: Harness, *events: DomainEvent) -> None:
    await h.store.commit(Changeset(events=list(events)))
    h.notify()


async def until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def settled(h: Harness, seconds: float = 15.0) -> None:
    """Wait until the bus is idle: past that point a wrong second delivery cannot be still to
    come, so asserting what arrived asserts what ever will."""
    deadline = time.monotonic() + seconds
    while not await h.idle():
        if time.monotonic() > deadline:
            raise AssertionError("the bus still had work after the deadline")
        await asyncio.sleep(0.02)


class BusContract:
    async def test_each_matching_target_gets_the_event_once(self, harness: Harness) -> None:
        await harness.start(
            [
                rule("paid", "a", "b"),
                rule("refunds", "b", pattern={"detail-type": ["refund.succeeded"]}),
            ]
        )
        paid, other = event(), event("payment.failed")
        await publish(harness, paid, other)
        await until(lambda: len(harness.recorder.calls) >= 2)
        await settled(harness)
        assert sorted(harness.recorder.calls) == [("a", paid.id), ("b", paid.id)]

    async def test_a_merchants_rule_sees_only_its_events(self, harness: Harness) -> None:
        await harness.start([rule("mine", "a", merchant="m1")])
        mine, theirs = event(merchant="m1"), event(merchant="m2")
        await publish(harness, theirs, mine)
        await until(lambda: len(harness.recorder.calls) >= 1)
        await settled(harness)
        assert harness.recorder.calls == [("a", mine.id)]

    async def test_a_failing_target_is_retried_and_delivered_once(self, harness: Harness) -> None:
        harness.recorder.fail["flaky"] = 2
        await harness.start([rule("paid", "flaky", "a")])
        paid = event()
        await publish(harness, paid)
        await until(lambda: bool(harness.recorder.received("flaky")))
        await settled(harness)
        assert harness.recorder.received("flaky") == [paid.id]
        assert harness.recorder.attempts["flaky"] == 3
        assert harness.recorder.received("a") == [paid.id]  # its neighbour is not held up
        assert harness.recorder.attempts["a"] == 1

    async def test_a_spent_policy_dead_letters_and_a_redrive_delivers_once(
        self, harness: Harness
    ) -> None:
        harness.recorder.fail["down"] = -1
        await harness.start([rule("paid", "down", retries=2)])
        paid = event()
        await publish(harness, paid)

        async def dead() -> list[Delivery]:
            return (await harness.store.dead_letters("m1", 10, None))[0]

        deadline = time.monotonic() + 15
        while not await dead():
            assert time.monotonic() < deadline, "no dead letter in time"
            await asyncio.sleep(0.05)
        [letter] = await dead()
        assert (letter.event_id, letter.rule, letter.target.id) == (paid.id, "paid", "down")
        assert harness.recorder.attempts["down"] == 3  # the first try and 2 retries
        assert len(letter.history) >= 1 and "down is down" in letter.history[-1].error

        harness.recorder.fail["down"] = 0  # the merchant fixed the endpoint
        assert await harness.store.redrive("m1", letter.id, datetime.now(UTC))
        assert not await harness.store.redrive("m1", letter.id, datetime.now(UTC))  # once
        harness.notify()
        await until(lambda: bool(harness.recorder.received("down")))
        await settled(harness)
        assert harness.recorder.received("down") == [paid.id]
        assert await dead() == []

    async def test_an_old_event_is_not_retried_past_its_age(self, harness: Harness) -> None:
        harness.recorder.fail["down"] = -1
        await harness.start([rule("paid", "down", retries=100, max_age=1)])
        await publish(harness, event())

        async def dead() -> bool:
            return bool((await harness.store.dead_letters("m1", 10, None))[0])

        deadline = time.monotonic() + 15
        while not await dead():
            assert time.monotonic() < deadline, "no dead letter in time"
            await asyncio.sleep(0.05)
        assert harness.recorder.attempts["down"] < 100

    async def test_an_event_carried_twice_is_delivered_once(self, harness: Harness) -> None:
        await harness.start([rule("paid", "a")])
        paid = event()
        await publish(harness, paid)
        await until(lambda: bool(harness.recorder.received("a")))
        await harness.route_again(paid)
        await settled(harness)
        assert harness.recorder.received("a") == [paid.id]

    async def test_a_slow_target_does_not_hold_up_another(self, harness: Harness) -> None:
        harness.recorder.block["slow"] = asyncio.Event()
        await harness.start(
            [rule("paid", "slow", "a"), rule("probe", "a", pattern={"detail-type": ["probe.sent"]})]
        )
        events = [event() for _ in range(20)]
        await publish(harness, *events)
        await until(lambda: len(harness.recorder.received("a")) == 20)
        assert harness.recorder.received("slow") == []
        await until(lambda: harness.recorder.entered["slow"] > 0)
        # Held well past the harness's lease / ack wait (1 s): what is under test is that
        # time running out hands nothing over again, so the time must pass.
        await asyncio.sleep(2.5)
        # The bus was at work after the lease ran out (a later event got through), so a
        # delivery it wrongly took back has been started again by now; the end shows none.
        probe = event("probe.sent")
        await publish(harness, probe)
        await until(lambda: probe.id in harness.recorder.received("a"))
        harness.recorder.block["slow"].set()
        await until(lambda: len(harness.recorder.received("slow")) == 20)
        await settled(harness)
        assert sorted(harness.recorder.received("slow")) == sorted(e.id for e in events)

    async def test_a_delivery_cut_by_a_dying_process_is_delivered_by_the_next(
        self, harness: Harness
    ) -> None:
        harness.recorder.block["slow"] = asyncio.Event()
        await harness.start([rule("paid", "slow")])
        paid = event()
        await publish(harness, paid)
        await until(lambda: harness.recorder.entered["slow"] == 1)
        await harness.kill()  # mid-delivery: the target never answered
        harness.recorder.block["slow"].set()
        await harness.start([])
        await until(lambda: bool(harness.recorder.received("slow")), seconds=20)
        await settled(harness)
        assert harness.recorder.received("slow") == [paid.id]
