"""Customer confirmations reach the customer: a real SMTP server on loopback receives the mail,
the Twilio sandbox over real HTTP the SMS; once per outcome, whatever the retries.

The API process is built by bootstrap (in-memory store, fake PSP), so the bus and its
`send_confirmation` are the ones a server runs; the mail server and the SMS provider are
real servers on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from paymesh.adapters.memory import MemoryStore
from paymesh.bootstrap import ApiProcess, build_api, build_core
from paymesh.config import Settings
from paymesh.connectors.fake import FakePsp
from paymesh.entrypoints.http.asgi import build_app
from paymesh.ports.bus import Delivery
from paymesh.sandbox.twilio import TwilioSandbox, TwilioSandboxSettings
from paymesh.service.apikeys import create_key
from tests.support.live_server import live_server
from tests.support.smtp_inbox import Inbox, smtp_inbox

SID, TOKEN = "AC" + "0" * 32, "twilio-test-token"
EMAIL, PHONE = "jane.doe@shop.example", "+14155550123"


@dataclass
class Shop:
    process: ApiProcess
    http: httpx.AsyncClient
    store: MemoryStore
    inbox: Inbox
    sms: TwilioSandbox
    sms_base: str

    async def pay(self, **extra: Any) -> httpx.Response:
        body = {
            "amount": 2500,
            "currency": "usd",
            "customer_id": "cus_1",
            "payment_method": "pm_card_visa",
            "metadata": {"order_id": "o-17"},
            **extra,
        }
        return await self.http.post("/v1/payments", json=body)

    async def notifications(self, payment_id: str) -> list[dict[str, Any]]:
        r = await self.http.get(f"/v1/payments/{payment_id}/notifications")
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    async def dead_letters(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = (await self.http.get("/v1/dead-letters")).json()["data"]
        return data

    def confirmations(self) -> list[Delivery]:
        """The bus's deliveries to send_confirmation, as the store keeps them."""
        rows = self.store._tables.deliveries.values()  # the memory store's own table
        return [r.delivery for r in rows if r.delivery.target.name == "send_confirmation"]

    async def settled(self) -> None:
        """Until the bus has nothing left that could still send: every event routed, no
        confirmation pending. What did not happen by then will not happen."""

        async def idle() -> bool:
            return not await self.store.undelivered_events(1) and all(
                d.status != "pending" for d in self.confirmations()
            )

        await until(idle)


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def sms_sandbox() -> Iterator[tuple[TwilioSandbox, str]]:
    sandbox = TwilioSandbox(TwilioSandboxSettings(account_sid=SID, auth_token=TOKEN, seed=7))
    with live_server(sandbox.app) as base:
        yield sandbox, base


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_inbox() as box:
        yield box


@pytest.fixture
async def shop(
    tmp_path: Path, inbox: Inbox, sms_sandbox: tuple[TwilioSandbox, str]
) -> AsyncIterator[Shop]:
    sandbox, base = sms_sandbox
    settings = Settings.from_env(
        data_dir=tmp_path,
        rate_limit=0.0,
        bus_retry_base=0.02,
        smtp_host="127.0.0.1",
        smtp_port=inbox.port,
        smtp_security="none",
        mail_from="receipts@shop.example",
        twilio_api_base=base,
        twilio_account_sid=SID,
        twilio_auth_token=TOKEN,
        twilio_from="+15005550006",
        templates_dir=tmp_path / "templates",  # empty: the packaged ones, until a test writes
    )
    store = MemoryStore()
    process = build_api(
        settings, build_core(settings, store=store, connectors={"stripe": FakePsp("stripe")})
    )
    app = build_app(settings, process)
    async with process.running():
        key = await create_key(store, "shop", datetime.now(UTC))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://paymesh.test",
            headers={"Authorization": f"Bearer {key}"},
        ) as http:
            yield Shop(process, http, store, inbox, sandbox, base)


async def test_the_customer_gets_one_email_and_one_sms_for_a_successful_payment(shop: Shop) -> None:
    created = await shop.pay(receipt_email=EMAIL, receipt_phone=PHONE)
    assert created.status_code == 201, created.text
    payment = created.json()
    assert (payment["receipt_email"], payment["receipt_phone"]) == (EMAIL, PHONE)

    [mail] = await asyncio.to_thread(shop.inbox.wait_for, 1)
    await shop.settled()

    event = next(
        e
        for e in (await shop.http.get(f"/v1/payments/{payment['id']}/events")).json()["data"]
        if e["detail-type"] == "payment.succeeded"
    )
    assert mail["To"] == EMAIL
    assert mail["From"] == "receipts@shop.example"
    assert mail["Subject"] == "Payment of 25.00 USD received"
    assert mail["Message-ID"] == f"<{event['id']}@paymesh>"
    body = mail.get_content()
    assert "we received your payment of 25.00 USD for order o-17." in body
    assert payment["id"] in body
    assert shop.inbox.envelopes == [("receipts@shop.example", [EMAIL])]

    [sms] = shop.sms.messages.values()
    assert (sms["to"], sms["from"]) == (PHONE, "+15005550006")
    assert sms["body"].startswith("Payment of 25.00 USD received for order o-17.")

    sent = await shop.notifications(payment["id"])
    assert sorted((n["channel"], n["recipient"], n["template"]) for n in sent) == [
        ("email", EMAIL, "payment_succeeded"),
        ("sms", PHONE, "payment_succeeded"),
    ]
    # The address and number stay out of every event, and so out of merchants' webhooks.
    events = (await shop.http.get(f"/v1/payments/{payment['id']}/events")).text
    assert EMAIL not in events and PHONE not in events


async def test_a_redelivered_event_sends_nothing_twice(shop: Shop) -> None:
    payment = (await shop.pay(receipt_email=EMAIL, receipt_phone=PHONE)).json()
    await asyncio.to_thread(shop.inbox.wait_for, 1)
    await shop.settled()
    [delivery] = shop.confirmations()
    event = await shop.store.get_event(delivery.event_id)
    assert event is not None and event["detail"]["payment_id"] == payment["id"]
    handler = shop.process.core.bus.targets.builtins["send_confirmation"]

    await handler(event, delivery)  # the bus delivers at least once: here it is again
    await handler(event, delivery)

    assert len(shop.inbox.messages) == 1
    assert len(shop.sms.messages) == 1
    assert len(await shop.notifications(payment["id"])) == 2  # one email, one SMS


async def test_a_mail_server_that_defers_gets_the_mail_once_when_it_takes_it(shop: Shop) -> None:
    shop.inbox.defer_next(2)  # 451 twice, then accepted
    payment = (await shop.pay(receipt_email=EMAIL)).json()
    await asyncio.to_thread(shop.inbox.wait_for, 1)
    await shop.settled()
    [delivery] = shop.confirmations()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert [a.error for a in delivery.history] == ["recipient deferred (451)"] * 2
    assert len(shop.inbox.messages) == 1
    assert [n["channel"] for n in await shop.notifications(payment["id"])] == ["email"]


async def test_a_refused_address_is_dead_lettered_at_once_and_nothing_recorded(
    shop: Shop,
) -> None:
    shop.inbox.refuse_all()  # 550: no such mailbox
    payment = (await shop.pay(receipt_email=EMAIL)).json()
    await shop.settled()
    [letter] = await shop.dead_letters()
    assert letter["target"]["name"] == "send_confirmation"
    assert letter["attempts"] == 1  # permanent: no retry was spent on it
    assert "550" in letter["errors"][0]["error"]
    assert shop.inbox.messages == []
    assert await shop.notifications(payment["id"]) == []


async def test_an_sms_provider_that_throttles_sends_once_when_it_recovers(shop: Shop) -> None:
    async with httpx.AsyncClient(base_url=shop.sms_base) as sandbox:
        await sandbox.put("/_config", json={"rate_limit_rate": 1.0})
        payment = (await shop.pay(receipt_phone=PHONE)).json()

        async def retried() -> bool:
            return any(d.attempts >= 2 for d in shop.confirmations())

        await until(retried)
        assert shop.sms.messages == {}
        await sandbox.put("/_config", json={"rate_limit_rate": 0.0})
    await shop.settled()
    assert len(shop.sms.messages) == 1
    assert [n["channel"] for n in await shop.notifications(payment["id"])] == ["sms"]
    assert await shop.dead_letters() == []


async def test_a_number_twilio_refuses_is_dead_lettered(shop: Shop) -> None:
    payment = (await shop.pay(receipt_phone="+15005550001")).json()  # Twilio: invalid number
    await shop.settled()
    [letter] = await shop.dead_letters()
    assert letter["attempts"] == 1
    assert "21211" in letter["errors"][0]["error"]
    assert await shop.notifications(payment["id"]) == []


async def test_a_declined_payment_and_a_refund_are_confirmed_too(shop: Shop) -> None:
    declined = await shop.pay(
        receipt_email=EMAIL, payment_method="pm_card_chargeDeclinedInsufficientFunds"
    )
    assert declined.status_code == 402
    [failed_mail] = await asyncio.to_thread(shop.inbox.wait_for, 1)
    assert failed_mail["Subject"] == "Your payment of 25.00 USD did not go through"

    paid = (await shop.pay(receipt_email=EMAIL, amount=3000)).json()
    refunded = await shop.http.post(f"/v1/payments/{paid['id']}/refunds", json={"amount": 1250})
    assert refunded.status_code in (200, 201), refunded.text
    mails = await asyncio.to_thread(shop.inbox.wait_for, 3)
    await shop.settled()
    subjects = sorted(str(m["Subject"]) for m in mails)
    assert subjects == [
        "Payment of 30.00 USD received",
        "Refund of 12.50 USD issued",
        "Your payment of 25.00 USD did not go through",
    ]
    templates = sorted(n["template"] for n in await shop.notifications(paid["id"]))
    assert templates == ["payment_succeeded", "refund_succeeded"]


async def test_without_an_address_nothing_is_sent_and_that_is_recorded(shop: Shop) -> None:
    payment = (await shop.pay()).json()
    await shop.settled()
    assert shop.inbox.messages == [] and shop.sms.messages == {}
    [note] = await shop.notifications(payment["id"])
    assert (note["channel"], note["template"]) == ("none", "payment_succeeded")


async def test_a_confirmation_with_nothing_to_send_renders_no_template(
    shop: Shop, tmp_path: Path
) -> None:
    """The shop's own subject is broken: a payment with an address goes to the dead letters
    for it, one without is recorded as before, since no template is rendered for it."""
    own = tmp_path / "templates" / "shop"
    own.mkdir(parents=True)
    (own / "payment_succeeded.subject").write_text("{{ no_such_fact }}")

    silent = (await shop.pay()).json()
    mailed = (await shop.pay(receipt_email=EMAIL, metadata={"order_id": "o-18"})).json()
    await shop.settled()

    [note] = await shop.notifications(silent["id"])
    assert (note["channel"], note["template"]) == ("none", "payment_succeeded")
    assert await shop.notifications(mailed["id"]) == []
    [dead] = [d for d in shop.confirmations() if d.status == "dead"]
    assert dead.history[-1].error == "confirmation template broken"
    assert shop.inbox.messages == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("receipt_email", "not-an-address"),
        ("receipt_email", "jane@shop.example\r\nBcc: all@else.example"),
        ("receipt_email", "a" * 250 + "@b.example"),
        ("receipt_phone", "4155550123"),
        ("receipt_phone", "+1415"),
        ("receipt_phone", "+1415555012345678"),
    ],
)
async def test_a_bad_address_or_number_is_refused_with_400(
    shop: Shop, field: str, value: str
) -> None:
    r = await shop.pay(**{field: value})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == field
