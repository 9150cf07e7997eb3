"""Every HTTP delivery is signed, and no signing secret is copied into a delivery (issue 12,
item 10): the bus over a real SQLite store posts to a real loopback endpoint; the secret is
the merchant's rule's, looked up when sent, or the deployment's for the default rules (the
inventory target)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paymesh.adapters.http_targets import AiohttpTargetSender
from paymesh.adapters.sqlite import SqliteStore
from paymesh.domain.events import DomainEvent
from paymesh.ports.bus import DEFAULT, Delivery, RetryPolicy, Rule, Target
from paymesh.ports.store import Changeset
from paymesh.service.bus import EventBus
from paymesh.service.event_router import Router
from tests.support.live_server import live_server

MERCHANT_SECRET = "whsec_merchant_rule_secret_0123456789"
DEPLOYMENT_SECRET = "whsec_deployment_inventory_secret_0123"


@dataclass
class Inbox:
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        self.got.append((dict(request.headers), await request.body()))
        return Response(b"ok")

    async def arrived(self) -> bool:
        return bool(self.got)


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, str]]:
    box = Inbox()
    with live_server(Starlette(routes=[Route("/hook", box.hook, methods=["POST"])])) as base:
        yield box, base + "/hook"


def http_rule(merchant: str, name: str, url: str, secret: str | None) -> Rule:
    return Rule(
        merchant,
        name,
        {"detail-type": ["payment.succeeded"]},
        (
            Target(
                id="hook", type="http", url=url, retry_policy=RetryPolicy(maximum_retry_attempts=0)
            ),
        ),
        signing_secret=secret,
    )


@dataclass
class Bus:
    store: SqliteStore
    bus: EventBus
    db: Path

    async def publish(self, merchant: str = "m1") -> DomainEvent:
        event = DomainEvent(
            "payment.succeeded", "pay_1", merchant, datetime.now(UTC), {"amount": 2500}
        )
        await self.store.commit(Changeset(events=[event]))
        self.bus.notify()
        return event

    async def dead(self, merchant: str = "m1") -> list[Delivery]:
        return (await self.store.dead_letters(merchant, 10, None))[0]

    async def any_dead(self) -> bool:
        return bool(await self.dead())

    def delivery_docs(self) -> list[bytes]:
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            return [bytes(row[0]) for row in conn.execute("SELECT doc FROM deliveries")]


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, defaults: list[Rule], own: list[Rule], default_secret: str | None
) -> AsyncIterator[Bus]:
    store = SqliteStore(tmp_path / "bus.db")
    await store.open()
    for rule in own:
        await store.put_rule(rule)
    router = Router(defaults)
    router.load(await store.rules())
    sender = AiohttpTargetSender(allow=["127.0.0.1"])
    bus = EventBus(
        store,
        router,
        {},
        sender,
        lambda: datetime.now(UTC),
        poll_seconds=0.05,
        retry_base_seconds=0.01,
        default_signing_secret=default_secret,
    )
    task = asyncio.create_task(bus.run())
    try:
        yield Bus(store, bus, tmp_path / "bus.db")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.stop()
        await sender.aclose()
        await store.close()


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def verified(headers: dict[str, str], body: bytes, secret: str) -> dict[str, object]:
    event: dict[str, object] = stripe.Webhook.construct_event(
        body.decode(), headers["paymesh-signature"], secret
    )
    return event


async def test_a_merchants_delivery_is_signed_with_its_rule_secret_kept_in_no_row(
    tmp_path: Path, inbox: tuple[Inbox, str]
) -> None:
    box, url = inbox
    async with running(tmp_path, [], [http_rule("m1", "to-shop", url, MERCHANT_SECRET)], None) as b:
        event = await b.publish()
        await until(box.arrived)
        docs = b.delivery_docs()
    [(headers, body)] = box.got
    assert verified(headers, body, MERCHANT_SECRET)["id"] == event.id
    assert len(docs) == 1
    assert MERCHANT_SECRET.encode() not in docs[0]
    assert msgspec.json.decode(docs[0])["signing_secret"] is None


async def test_the_default_rules_http_target_is_signed_with_the_deployments_secret(
    tmp_path: Path, inbox: tuple[Inbox, str]
) -> None:
    box, url = inbox
    inventory = http_rule(DEFAULT, "payment-succeeded", url, None)
    async with running(tmp_path, [inventory], [], DEPLOYMENT_SECRET) as b:
        event = await b.publish()
        await until(box.arrived)
    [(headers, body)] = box.got
    assert verified(headers, body, DEPLOYMENT_SECRET)["id"] == event.id
    assert headers["paymesh-event-id"] == event.id


async def test_without_a_deployment_secret_a_default_rules_delivery_is_not_sent(
    tmp_path: Path, inbox: tuple[Inbox, str]
) -> None:
    box, url = inbox
    inventory = http_rule(DEFAULT, "payment-succeeded", url, None)
    async with running(tmp_path, [inventory], [], None) as b:
        await b.publish()
        await until(b.any_dead)
        [letter] = await b.dead()
    assert [a.error for a in letter.history] == ["no signing secret for this target"]
    assert box.got == []


async def test_a_default_rules_delivery_is_never_signed_with_a_merchants_secret(
    tmp_path: Path, inbox: tuple[Inbox, str]
) -> None:
    """The merchant overrides the default rule after the event was routed by it: the
    delivery still goes out under the deployment's secret, the merchant's stays its own."""
    box, url = inbox
    inventory = http_rule(DEFAULT, "payment-succeeded", url, None)
    async with running(tmp_path, [inventory], [], DEPLOYMENT_SECRET) as b:
        b.bus.router.put(http_rule("m1", "payment-succeeded", url, MERCHANT_SECRET))
        now = datetime.now(UTC)
        event = DomainEvent("payment.succeeded", "pay_1", "m1", now, {"amount": 1})
        routed = Delivery(
            id="dlv_default",
            event_id=event.id,
            merchant_id="m1",
            rule="payment-succeeded",
            target=inventory.targets[0],
            event_time=now,
            created_at=now,
            next_attempt_at=now,
            default_rule=True,
        )
        # One commit: committed alone, the event could be routed by the bus meanwhile, and
        # the merchant's rule's delivery would race this one to the inbox.
        await b.store.commit(Changeset(events=[event], routed=[event.id], deliveries=[routed]))
        b.bus.notify()
        await until(box.arrived)
    [(headers, body)] = box.got
    assert verified(headers, body, DEPLOYMENT_SECRET)["id"] == event.id
    with pytest.raises(stripe.SignatureVerificationError):
        verified(headers, body, MERCHANT_SECRET)


async def test_a_rule_deleted_before_its_delivery_sends_nothing(
    tmp_path: Path, inbox: tuple[Inbox, str]
) -> None:
    box, url = inbox
    # A default rule of the same name must not lend its (deployment) secret either.
    inventory = http_rule(DEFAULT, "payment-succeeded", url, None)
    own = http_rule("m1", "payment-succeeded", url, MERCHANT_SECRET)
    async with running(tmp_path, [inventory], [own], DEPLOYMENT_SECRET) as b:
        b.bus.router.delete("m1", "payment-succeeded")
        now = datetime.now(UTC)
        event = DomainEvent("payment.succeeded", "pay_1", "m1", now, {"amount": 1})
        routed = Delivery(
            id="dlv_own",
            event_id=event.id,
            merchant_id="m1",
            rule="payment-succeeded",
            target=own.targets[0],
            event_time=now,
            created_at=now,
            next_attempt_at=now,
        )
        # One commit: committed alone, the event could be routed by the bus meanwhile, and
        # the merchant's rule's delivery would race this one to the inbox.
        await b.store.commit(Changeset(events=[event], routed=[event.id], deliveries=[routed]))
        b.bus.notify()
        await until(b.any_dead)
        [letter] = await b.dead()
    assert [a.error for a in letter.history] == ["rule no longer exists"]
    assert box.got == []
