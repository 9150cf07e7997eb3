"""The sandboxes' memory bounds: exact caps, oldest forgotten first, pages still right."""

from __future__ import annotations

import asyncio

import pytest

from paymesh.sandbox.adyen.idempotency import IdempotencyStore as AdyenKeys
from paymesh.sandbox.faults import FaultInjector
from paymesh.sandbox.limits import MemoryLimits, forget_oldest
from paymesh.sandbox.paypal.idempotency import RequestIds
from paymesh.sandbox.stripe.accounts import Ledger
from paymesh.sandbox.stripe.errors import StripeError
from paymesh.sandbox.stripe.idempotency import IdempotencyStore as StripeKeys
from paymesh.sandbox.webhooks import WebhookSender
from tests.support.live_server import free_port


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="objects"):
        MemoryLimits(objects=0)


def test_a_ledger_keeps_exactly_its_capacity_and_pages_what_it_keeps() -> None:
    forgotten: list[str] = []
    ledger: Ledger[int] = Ledger("thing", capacity=10, on_forget=forgotten.append)
    for i in range(100):  # several compactions of the order list
        ledger.add(f"id{i}", i)
        assert len(ledger) == min(i + 1, 10)
    assert forgotten == [f"id{i}" for i in range(90)]
    assert ledger.get("id89") is None and ledger.get("id90") == 90
    newest, more = ledger.page(4)
    assert (newest, more) == ([99, 98, 97, 96], True)
    rest, more = ledger.page(10, starting_after="id96")
    assert (rest, more) == ([95, 94, 93, 92, 91, 90], False)
    newer, more = ledger.page(3, ending_before="id90")
    assert (newer, more) == ([93, 92, 91], True)
    assert ledger.page(100, where=lambda n: n % 3 == 0) == ([99, 96, 93, 90], False)
    with pytest.raises(StripeError) as gone:
        ledger.page(5, starting_after="id3")
    assert (gone.value.status, gone.value.error["param"]) == (400, "starting_after")


def test_forget_oldest_never_drops_an_entry_in_flight() -> None:
    entries = {"a": None, "b": 1, "c": None, "d": 2, "e": 3}
    forget_oldest(entries, 3, keep=lambda value: value is None)
    assert entries == {"a": None, "c": None, "e": 3}
    forget_oldest(entries, 1, keep=lambda value: value is None)
    assert entries == {"a": None, "c": None}  # over the cap only by those in flight


@pytest.mark.parametrize("cap", [1, 3])
def test_idempotency_stores_hold_their_cap(cap: int) -> None:
    stripe, adyen = StripeKeys(max_entries=cap), AdyenKeys(max_entries=cap)
    paypal: RequestIds[str] = RequestIds(max_entries=cap)
    for i in range(20):
        key = f"k{i}"
        assert stripe.claim(key, b"f") is None and adyen.claim(key, b"f") is None
        assert paypal.claim("orders.create", key) is None
        stripe.save(key, 200, b"{}", "req")
        adyen.save(key, 200, b"{}")
        paypal.save("orders.create", key, "order")
        assert len(stripe) == len(adyen) == len(paypal) == min(i + 1, cap)
    saved = stripe.claim("k19", b"f")
    assert saved is not None and saved.status == 200  # the newest still replays
    assert stripe.claim("k0", b"other") is None  # the oldest was forgotten: free again


def test_webhooks_waiting_for_a_dead_receiver_are_bounded() -> None:
    async def run() -> tuple[int, int, int]:
        sender = WebhookSender(FaultInjector(1), backoff_s=60.0, max_pending=3)
        await sender.start()
        try:
            url = f"http://127.0.0.1:{free_port()}/webhooks"  # nothing listens there
            for i in range(10):
                sender.send(url, b"{}", {"n": str(i)})
                await asyncio.sleep(0)
            for _ in range(100):  # until the three taken have failed once (and wait to retry)
                if sender.stats.sent >= 3:
                    break
                await asyncio.sleep(0.01)
            pending = sender._queue.qsize() + len(sender._tasks)
            return pending, sender.stats.dropped, sender.stats.sent
        finally:
            await sender.stop()

    assert asyncio.run(run()) == (3, 7, 3)


def test_a_reordering_sender_stops_when_its_cancel_meets_a_webhook() -> None:
    """With reordering on, the sender waits for more webhooks to shuffle; a cancel landing in
    the turn a webhook arrives must still stop it (Python 3.11's `wait_for` returned the
    webhook and dropped the cancel there, and `stop` then waited for ever)."""

    async def run() -> None:
        faults = FaultInjector(1)
        faults.update({"webhook_reorder": True})
        sender = WebhookSender(faults, backoff_s=60.0)
        await sender.start()
        url = f"http://127.0.0.1:{free_port()}/webhooks"  # nothing listens there
        sender.send(url, b"{}", {"n": "1"})
        await asyncio.sleep(0.01)  # the worker took it and waits for a batch to shuffle
        worker = sender._worker
        assert worker is not None
        sender.send(url, b"{}", {"n": "2"})  # wakes the wait...
        worker.cancel()  # ...and the cancel lands in the same turn
        await asyncio.wait({worker}, timeout=2)
        assert worker.done(), "the sender's worker ran on after its cancel"
        await sender.stop()

    asyncio.run(run())
