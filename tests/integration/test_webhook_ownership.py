"""A webhook changes only the payment whose own PSP object it describes; capture state comes
from signed fields only; PayPal's webhooks are confirmed with PayPal and de-duplicated by
transmission; a capture at the PSP closes an open review (issue 12, items 2 and 8).

The real connectors verify the sandboxes' real signatures, the sandboxes run on loopback ports
as the PSPs would, and the WebhookService writes to a real SQLite store. The last tests run
the whole server over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest

from paymesh.adapters.sqlite import SqliteStore
from paymesh.connectors.adyen import AdyenConnector, AdyenSettings
from paymesh.connectors.adyen.webhook import sign as adyen_sign
from paymesh.connectors.aiohttp_transport import AiohttpTransport
from paymesh.connectors.paypal import PayPalConnector, PayPalSettings
from paymesh.connectors.stripe import StripeConnector, StripeSettings
from paymesh.connectors.stripe.webhook import sign as stripe_sign
from paymesh.connectors.transport import HttpTransport
from paymesh.domain.payment import FraudAssessment, Payment, PspOutcome
from paymesh.domain.review import ReviewStatus
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest, Connector
from paymesh.sandbox.adyen import AdyenSandbox, AdyenSandboxSettings
from paymesh.sandbox.paypal import PayPalSandbox, PayPalSandboxSettings, SigningIdentity
from paymesh.sandbox.paypal.signing import signed_message
from paymesh.sandbox.stripe import StripeSandbox, StripeSandboxSettings
from paymesh.service.errors import PspUnavailable, StateConflict
from paymesh.service.payments.answers import AnswersInFlight
from paymesh.service.reviews import ReviewService
from paymesh.service.webhooks import WebhookService
from tests.contract.store_contract import save
from tests.integration.conftest import Server, start
from tests.support.live_server import free_port, live_server
from tests.support.webhook_inbox import WebhookInbox, webhook_inbox

S = PaymentStatus
T = TypeVar("T")
STRIPE_KEY = "sk_test_ownership"
STRIPE_SECRET = "whsec_ownership"  # a test secret for this module's own sandbox
ADYEN_KEY = "AQE_ownership_api_key"
ADYEN_HMAC = "5A1F0C7E9B2D4A6C8E0F1A3B5C7D9E1F2A4B6C8D0E2F4A6B8C0D2E4F6A8B0C2D"
ADYEN_MERCHANT = "PaymeshOwnership"
PAYPAL_ID, PAYPAL_SECRET, PAYPAL_WEBHOOK = "paymesh-ownership", "ownership-secret", "WH-OWN"
ALLOW = FraudAssessment(score=5, factors=(), decision="allow")
REVIEW = FraudAssessment(score=75, factors=("velocity_5m",), decision="review")


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def inbox() -> Iterator[WebhookInbox]:
    with webhook_inbox() as box:
        yield box


@pytest.fixture(scope="module")
def signing() -> SigningIdentity:
    return SigningIdentity.generate()


@pytest.fixture(scope="module")
def sandboxes(inbox: WebhookInbox, signing: SigningIdentity) -> Iterator[dict[str, str]]:
    stripe = StripeSandbox(
        StripeSandboxSettings(webhook_url=inbox.url, webhook_secret=STRIPE_SECRET)
    )
    adyen = AdyenSandbox(
        AdyenSandboxSettings(
            webhook_url=inbox.url, hmac_key=ADYEN_HMAC, merchant_account=ADYEN_MERCHANT
        )
    )
    paypal = PayPalSandbox(
        PayPalSandboxSettings(
            webhook_url=inbox.url,
            webhook_id=PAYPAL_WEBHOOK,
            client_id=PAYPAL_ID,
            client_secret=PAYPAL_SECRET,
            signing=signing,
        )
    )
    with ExitStack() as stack:
        yield {
            "stripe": stack.enter_context(live_server(stripe.app)),
            "adyen": stack.enter_context(live_server(adyen.app)),
            "paypal": stack.enter_context(live_server(paypal.app)),
        }


def paypal_connector(
    api_base: str, signing: SigningIdentity, transport: HttpTransport | None = None
) -> PayPalConnector:
    return PayPalConnector(
        PayPalSettings(
            api_base=api_base,
            client_id=PAYPAL_ID,
            client_secret=PAYPAL_SECRET,
            webhook_id=PAYPAL_WEBHOOK,
            trusted_cert_pem=signing.cert_pem,
            timeout_seconds=5,
        ),
        transport=transport,
    )


@pytest.fixture
async def connectors(
    sandboxes: dict[str, str], signing: SigningIdentity
) -> AsyncIterator[dict[str, Connector]]:
    # One transport for the three, as a process has.
    shared = AiohttpTransport()
    built: dict[str, Connector] = {
        "stripe": StripeConnector(
            StripeSettings(
                api_base=sandboxes["stripe"],
                secret_key=STRIPE_KEY,
                webhook_secret=STRIPE_SECRET,
                timeout_seconds=5,
            ),
            transport=shared,
        ),
        "adyen": AdyenConnector(
            AdyenSettings(
                api_base=sandboxes["adyen"],
                api_key=ADYEN_KEY,
                merchant_account=ADYEN_MERCHANT,
                hmac_key=ADYEN_HMAC,
                timeout_seconds=5,
            ),
            transport=shared,
        ),
        "paypal": paypal_connector(sandboxes["paypal"], signing, shared),
    }
    yield built
    for connector in built.values():
        await connector.aclose()
    await shared.aclose()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "paymesh.db")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def service(store: SqliteStore, connectors: dict[str, Connector]) -> WebhookService:
    return WebhookService(store, connectors, now, on_commit=lambda: None)


def new_payment(
    connector: str,
    *,
    merchant: str = "m-shop",
    amount: int = 2000,
    capture: str = "automatic",
    fraud: FraudAssessment = ALLOW,
) -> Payment:
    return Payment.initiate(
        now=now(),
        fraud=fraud,
        id=f"pay_{uuid.uuid4().hex[:16]}",
        merchant_id=merchant,
        amount=amount,
        currency="usd",
        customer_id="cus_1",
        payment_method="pm_card_visa",
        capture_method=capture,
        connector=connector,
    )


def request_for(
    p: Payment, key: str | None = None, method: str = "pm_card_visa"
) -> AuthorizeRequest:
    return AuthorizeRequest(
        payment_id=p.id,
        amount=p.amount,
        currency=p.currency,
        payment_method=method,
        capture_method=p.psp_capture_method,
        customer_id=p.customer_id,
        idempotency_key=key or f"{p.id}:authorize:1",
    )


async def authorised(store: SqliteStore, connector: Connector, **kw: Any) -> Payment:
    """A payment as the payment service records it: stored, sent with its key, answered."""
    p = new_payment(connector.name, **kw)
    p.apply_psp_outcome(await connector.authorize(request_for(p)), now())
    await save(store, p)
    return p


async def stored(store: SqliteStore, p: Payment) -> Payment:
    got = await store.get_payment(p.id)
    assert got is not None
    return got


def stripe_event(event_type: str, intent: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    body = msgspec.json.encode(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": intent},
        }
    )
    return {"stripe-signature": stripe_sign(body, STRIPE_SECRET, int(time.time()))}, body


def paypal_headers(
    signing: SigningIdentity, body: bytes, transmission: str | None = None
) -> dict[str, str]:
    tid = transmission or str(uuid.uuid4())
    sent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "paypal-transmission-id": tid,
        "paypal-transmission-time": sent,
        "paypal-transmission-sig": signing.sign(signed_message(tid, sent, PAYPAL_WEBHOOK, body)),
        "paypal-cert-url": "https://api.paypal.com/v1/notifications/certs/CERT-1",
        "paypal-auth-algo": "SHA256withRSA",
    }


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "paymesh.service.webhooks" and r.levelno == logging.WARNING
    ]


# -- ownership: the PSP object must be the payment's own ---------------------------------------


async def test_a_psp_object_whose_metadata_names_another_merchants_payment_changes_nothing(
    service: WebhookService,
    store: SqliteStore,
    connectors: dict[str, Connector],
    inbox: WebhookInbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stripe = connectors["stripe"]
    victim = await authorised(store, stripe, merchant="m-victim", capture="manual")
    assert victim.status == S.REQUIRES_CAPTURE
    # Anyone able to make a PaymentIntent on the account chooses its metadata: this one
    # names the victim's payment, with its amount and currency, and a card that declines.
    stranger = await stripe.authorize(
        request_for(
            victim, key=f"attacker-{uuid.uuid4()}", method="pm_card_chargeDeclinedInsufficientFunds"
        )
    )
    ref = str(stranger.connector_payment_id)
    assert stranger.status == S.FAILED and ref != victim.connector_payment_id
    headers, body = await inbox.wait_for(
        lambda _h, b: ref.encode() in b and b'"payment_intent.payment_failed"' in b
    )

    caplog.set_level(logging.INFO, "paymesh.service.webhooks")
    assert await service.receive("stripe", headers, body) == ["mismatch"]

    after = await stored(store, victim)
    assert (after.status, after.failure, after.connector_payment_id, after.version) == (
        S.REQUIRES_CAPTURE,
        None,
        victim.connector_payment_id,
        victim.version,
    )
    [warning] = warnings_of(caplog)
    assert victim.id in warning and ref in warning
    assert "cus_" not in warning and "pm_card" not in warning  # ids and amounts, no body data


@pytest.mark.parametrize(
    ("change", "word", "status"),
    [
        ({"amount": 2001}, "mismatch", S.REQUIRES_CAPTURE),
        ({"currency": "eur"}, "mismatch", S.REQUIRES_CAPTURE),
        ({"currency": None}, "mismatch", S.REQUIRES_CAPTURE),
        ({"status": "succeeded", "amount_received": 5000}, "mismatch", S.REQUIRES_CAPTURE),
        ({"currency": "USD"}, "applied", S.CANCELED),  # currency codes are case-blind
        ({}, "applied", S.CANCELED),
    ],
)
async def test_a_webhook_whose_money_is_not_the_payments_changes_nothing(
    service: WebhookService,
    store: SqliteStore,
    connectors: dict[str, Connector],
    change: dict[str, Any],
    word: str,
    status: PaymentStatus,
) -> None:
    p = await authorised(store, connectors["stripe"], capture="manual")
    intent = {
        "id": p.connector_payment_id,
        "object": "payment_intent",
        "status": "canceled",
        "amount": 2000,
        "currency": "usd",
        "amount_received": 0,
        "metadata": {"paymesh_payment_id": p.id},
        **change,
    }
    headers, body = stripe_event(f"payment_intent.{intent['status']}", intent)
    assert await service.receive("stripe", headers, body) == [word]
    assert (await stored(store, p)).status == status


async def test_a_webhook_about_one_payment_that_names_another_changes_neither(
    service: WebhookService, store: SqliteStore, connectors: dict[str, Connector]
) -> None:
    a = await authorised(store, connectors["stripe"], capture="manual")
    b = await authorised(store, connectors["stripe"], capture="manual")
    intent = {
        "id": b.connector_payment_id,
        "object": "payment_intent",
        "status": "canceled",
        "amount": 2000,
        "currency": "usd",
        "metadata": {"paymesh_payment_id": a.id},
    }
    headers, body = stripe_event("payment_intent.canceled", intent)
    assert await service.receive("stripe", headers, body) == ["mismatch"]
    assert [(await stored(store, p)).status for p in (a, b)] == [S.REQUIRES_CAPTURE] * 2


async def test_a_payment_without_a_psp_reference_is_bound_by_no_webhook(
    service: WebhookService,
    store: SqliteStore,
    connectors: dict[str, Connector],
    inbox: WebhookInbox,
) -> None:
    stripe = connectors["stripe"]
    # Stored, then cut off before the PSP's answer was recorded (a crash).
    p = new_payment("stripe")
    await save(store, p)
    # A stranger's PaymentIntent naming it, with the same amount and currency, succeeds.
    stranger = await stripe.authorize(request_for(p, key=f"attacker-{uuid.uuid4()}"))
    ref = str(stranger.connector_payment_id)
    headers, body = await inbox.wait_for(
        lambda _h, b: ref.encode() in b and b'"payment_intent.succeeded"' in b
    )
    # Refused for now (a 409), so Stripe delivers it again once the payment is bound.
    with pytest.raises(StateConflict) as refused:
        await service.receive("stripe", headers, body)
    assert refused.value.code == "payment_not_ready"
    left = await stored(store, p)
    assert (left.status, left.connector_payment_id) == (S.PENDING, None)
    # Only the PSP's answer to our own request (the sync resends it with the same key) binds.
    own = await stripe.authorize(request_for(p))
    assert own.connector_payment_id != ref
    left.apply_psp_outcome(own, now())
    await save(store, left)
    assert (await stored(store, p)).connector_payment_id == own.connector_payment_id
    # ... and the stranger's object still moves nothing.
    assert await service.receive("stripe", headers, body) == ["mismatch"]


async def test_news_of_an_abandoned_attempt_is_stale(
    service: WebhookService, store: SqliteStore, connectors: dict[str, Connector]
) -> None:
    p = new_payment("stripe")
    p.apply_psp_outcome(PspOutcome(S.PENDING, "pi_first_attempt"), now())
    p.retired_refs.append("pi_first_attempt")
    p.connector_payment_id = None
    await save(store, p)
    intent = {
        "id": "pi_first_attempt",
        "status": "succeeded",
        "amount": 2000,
        "currency": "usd",
        "amount_received": 2000,
        "metadata": {"paymesh_payment_id": p.id},
    }
    headers, body = stripe_event("payment_intent.succeeded", intent)
    assert await service.receive("stripe", headers, body) == ["stale"]
    assert (await stored(store, p)).status == S.PENDING


# -- Adyen: capture state from signed fields only ------------------------------------------------


def adyen_body(item: dict[str, Any]) -> bytes:
    item["additionalData"]["hmacSignature"] = adyen_sign(item, bytes.fromhex(ADYEN_HMAC))
    return msgspec.json.encode(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
    )


async def test_unsigned_additional_data_cannot_turn_a_held_authorisation_into_a_capture(
    service: WebhookService, store: SqliteStore, connectors: dict[str, Connector]
) -> None:
    held = await authorised(store, connectors["adyen"], fraud=REVIEW)
    assert held.status == S.REQUIRES_CAPTURE and held.review is not None
    # Every signed field is the genuine AUTHORISATION's; only additionalData (unsigned) lies.
    item = {
        "pspReference": held.connector_payment_id,
        "merchantAccountCode": ADYEN_MERCHANT,
        "merchantReference": held.id,
        "eventCode": "AUTHORISATION",
        "success": "true",
        "amount": {"value": 2000, "currency": "USD"},
        "additionalData": {"metadata.paymesh_capture": "automatic", "manualCapture": "false"},
    }
    assert await service.receive("adyen", {}, adyen_body(item)) == ["applied"]
    after = await stored(store, held)
    assert (after.status, after.amount_captured) == (S.REQUIRES_CAPTURE, 0)
    assert after.review is not None and after.review.status == ReviewStatus.OPEN


@pytest.mark.parametrize(
    ("capture", "status", "captured"),
    [("automatic", S.SUCCEEDED, 2000), ("manual", S.REQUIRES_CAPTURE, 0)],
)
async def test_a_genuine_authorisation_follows_the_payments_own_capture_mode(
    service: WebhookService,
    store: SqliteStore,
    connectors: dict[str, Connector],
    inbox: WebhookInbox,
    capture: str,
    status: PaymentStatus,
    captured: int,
) -> None:
    adyen = connectors["adyen"]
    p = new_payment("adyen", capture=capture)
    answer = await adyen.authorize(request_for(p))
    # Recorded as Adyen's "Received": the notification brings the verdict.
    p.apply_psp_outcome(PspOutcome(S.PROCESSING, answer.connector_payment_id), now())
    await save(store, p)
    ref = str(answer.connector_payment_id)
    headers, body = await inbox.wait_for(
        lambda _h, b: ref.encode() in b and b'"AUTHORISATION"' in b
    )
    assert await service.receive("adyen", headers, body) == ["applied"]
    after = await stored(store, p)
    assert (after.status, after.amount_captured) == (status, captured)


# -- PayPal: confirmed with PayPal, de-duplicated by transmission --------------------------------


async def test_a_replayed_paypal_transmission_is_a_duplicate(
    service: WebhookService,
    store: SqliteStore,
    connectors: dict[str, Connector],
    inbox: WebhookInbox,
    signing: SigningIdentity,
) -> None:
    paypal = connectors["paypal"]
    p = new_payment("paypal")
    order = str((await paypal.authorize(request_for(p))).connector_payment_id)
    headers, body = await inbox.wait_for(
        lambda _h, b: order.encode() in b and b'"PAYMENT.CAPTURE.COMPLETED"' in b
    )
    # Not stored yet: the first delivery moves nothing and marks nothing, so the same
    # transmission delivered again (PayPal retrying it) still counts once the payment exists.
    assert await service.receive("paypal", headers, body) == ["unknown"]
    p.apply_psp_outcome(PspOutcome(S.PROCESSING, order), now())
    await save(store, p)
    assert await service.receive("paypal", headers, body) == ["applied"]
    after = await stored(store, p)
    assert (after.status, after.connector_payment_id, after.amount_captured) == (
        S.SUCCEEDED,
        order,
        2000,
    )
    # Applied, its transmission id is marked with the change: a replay of it is a duplicate,
    # and so is the same event under a new transmission id.
    assert await service.receive("paypal", headers, body) == ["duplicate"]
    assert await service.receive("paypal", paypal_headers(signing, body), body) == ["duplicate"]
    assert (await stored(store, p)).amount_captured == 2000


async def test_a_paypal_body_claiming_a_capture_paypal_has_not_made_moves_nothing(
    service: WebhookService,
    store: SqliteStore,
    connectors: dict[str, Connector],
    signing: SigningIdentity,
) -> None:
    held = await authorised(store, connectors["paypal"], capture="manual")
    assert held.status == S.REQUIRES_CAPTURE
    capture = {
        "id": "3C679366HH908993F",
        "status": "COMPLETED",
        "amount": {"currency_code": "USD", "value": "20.00"},
        "final_capture": True,
        "custom_id": held.id,
        "supplementary_data": {"related_ids": {"order_id": held.connector_payment_id}},
    }
    body = msgspec.json.encode(
        {
            "id": f"WH-{uuid.uuid4().hex}",
            "event_version": "1.0",
            "create_time": now().isoformat(),
            "resource_type": "capture",
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "summary": "Payment completed",
            "resource": capture,
        }
    )
    # Signed as PayPal signs; the order at PayPal is still only authorised.
    assert await service.receive("paypal", paypal_headers(signing, body), body) == ["applied"]
    after = await stored(store, held)
    assert (after.status, after.amount_captured) == (S.REQUIRES_CAPTURE, 0)


async def test_a_paypal_webhook_about_an_order_paypal_does_not_know_is_unconfirmed(
    service: WebhookService,
    store: SqliteStore,
    signing: SigningIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = new_payment("paypal")
    p.apply_psp_outcome(PspOutcome(S.PROCESSING, "ORDER-OF-NOBODY"), now())
    await save(store, p)
    resource = {
        "id": "CAP-1",
        "status": "COMPLETED",
        "custom_id": p.id,
        "amount": {"currency_code": "USD", "value": "20.00"},
        "supplementary_data": {"related_ids": {"order_id": "ORDER-OF-NOBODY"}},
    }
    body = msgspec.json.encode(
        {
            "id": "WH-NOBODY",
            "create_time": now().isoformat(),
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "resource": resource,
        }
    )
    caplog.set_level(logging.INFO, "paymesh.service.webhooks")
    assert await service.receive("paypal", paypal_headers(signing, body), body) == ["unconfirmed"]
    assert (await stored(store, p)).status == S.PROCESSING
    assert any("WH-NOBODY" in w for w in warnings_of(caplog))


async def test_a_paypal_webhook_paypal_cannot_confirm_now_is_refused_for_a_later_retry(
    store: SqliteStore,
    signing: SigningIdentity,
    inbox: WebhookInbox,
    connectors: dict[str, Connector],
) -> None:
    dead = paypal_connector(f"http://127.0.0.1:{free_port()}", signing)
    try:
        service = WebhookService(store, {"paypal": dead}, now, on_commit=lambda: None)
        p = await authorised(store, connectors["paypal"])
        order = str(p.connector_payment_id)
        _, body = await inbox.wait_for(
            lambda _h, b: order.encode() in b and b'"PAYMENT.CAPTURE.COMPLETED"' in b
        )
        with pytest.raises(PspUnavailable):
            await service.receive("paypal", paypal_headers(signing, body), body)
    finally:
        await dead.aclose()


async def _disputed_before_our_answer(
    store: SqliteStore, connectors: dict[str, Connector], inbox: WebhookInbox
) -> tuple[Payment, PspOutcome, tuple[dict[str, str], bytes]]:
    """A payment with the dispute card, stored; Stripe's answer to it, not recorded yet; and
    Stripe's `charge.dispute.created` webhook about it."""
    p = new_payment("stripe")
    p.payment_method = "pm_card_createDispute"
    await save(store, p)
    answer = await connectors["stripe"].authorize(request_for(p, method=p.payment_method))
    ref = str(answer.connector_payment_id)
    webhook = await inbox.wait_for(
        lambda _h, b: ref.encode() in b and b'"charge.dispute.created"' in b
    )
    return p, answer, webhook


async def test_a_stripe_dispute_racing_our_own_answer_is_refused_then_applied(
    service: WebhookService,
    store: SqliteStore,
    connectors: dict[str, Connector],
    inbox: WebhookInbox,
) -> None:
    # The dispute card is disputed at capture: Stripe's webhook can beat our own answer to the
    # store. It names only the PaymentIntent, so it must not be taken for nobody's payment.
    p, answer, (headers, body) = await _disputed_before_our_answer(store, connectors, inbox)
    with pytest.raises(StateConflict) as refused:  # our answer is not stored yet
        await service.receive("stripe", headers, body)
    assert refused.value.code == "payment_not_ready"
    assert (await stored(store, p)).status == S.PENDING
    recorded = await stored(store, p)
    recorded.apply_psp_outcome(answer, now())
    await save(store, recorded)
    assert await service.receive("stripe", headers, body) == ["applied"]  # Stripe's redelivery
    after = await stored(store, p)
    assert after.status == S.DISPUTED and after.dispute is not None


async def test_a_webhook_overtaking_an_answer_awaited_here_waits_for_it_and_applies(
    store: SqliteStore, connectors: dict[str, Connector], inbox: WebhookInbox
) -> None:
    """The same race, with the answer on its way in this process: the webhook waits for it
    instead of a 409 and a second delivery, then is applied under the same rules."""
    answers = AnswersInFlight()
    service = WebhookService(store, connectors, now, on_commit=lambda: None, answers=answers)
    p, answer, (headers, body) = await _disputed_before_our_answer(store, connectors, inbox)
    ref = str(answer.connector_payment_id)

    async def record_the_answer() -> None:
        with answers.awaiting(p.id):
            await asyncio.sleep(0.05)  # the webhook arrives meanwhile
            recorded = await stored(store, p)
            recorded.apply_psp_outcome(answer, now())
            await save(store, recorded)

    recording = asyncio.create_task(record_the_answer())
    await asyncio.sleep(0)  # the answer is awaited from here on
    assert await service.receive("stripe", headers, body) == ["applied"]
    await recording
    after = await stored(store, p)
    assert after.status == S.DISPUTED and after.connector_payment_id == ref


async def test_an_answer_recorded_between_the_webhooks_read_and_its_wait_is_not_refused(
    store: SqliteStore, connectors: dict[str, Connector], inbox: WebhookInbox
) -> None:
    """The narrowest form of the race: the webhook reads the payment unbound, and our answer
    commits and leaves the registry before the webhook asks to wait. It was refused (409)."""
    answers = AnswersInFlight()
    service = WebhookService(
        store, connectors, now, on_commit=lambda: None, answers=answers, answer_wait=2.0
    )
    p, answer, (headers, body) = await _disputed_before_our_answer(store, connectors, inbox)
    holding = answers.awaiting(p.id)
    holding.__enter__()
    first_read = store.get_payment
    reads: list[Payment | None] = []

    async def read_then_our_answer_lands(
        payment_id: str, merchant_id: str | None = None
    ) -> Payment | None:
        found = await first_read(payment_id, merchant_id)
        reads.append(found)
        if len(reads) == 1:
            recorded = await first_read(p.id)
            assert recorded is not None
            recorded.apply_psp_outcome(answer, now())
            await save(store, recorded)
            holding.__exit__(None, None, None)
        return found

    store.get_payment = read_then_our_answer_lands  # type: ignore[method-assign]
    try:
        started = asyncio.get_running_loop().time()
        assert await service.receive("stripe", headers, body) == ["applied"]
        waited = asyncio.get_running_loop().time() - started
    finally:
        del store.get_payment  # the class's own again
    assert reads[0] is not None and reads[0].connector_payment_id is None
    assert waited < 1.0  # not the whole `answer_wait`: the answer was already in
    assert (await stored(store, p)).status == S.DISPUTED


async def test_the_usual_webhook_reads_its_payment_once_and_an_overtaking_one_twice(
    store: SqliteStore, connectors: dict[str, Connector], inbox: WebhookInbox
) -> None:
    """A webhook that names our payment, about the PSP object bound to it, is one read of
    the store; one that overtook our answer, awaited here, is two (one before the wait, one
    after); one whose answer is awaited elsewhere, two before its 409. Each read is a
    database round trip on every webhook of every payment."""
    answers = AnswersInFlight()
    service = WebhookService(store, connectors, now, on_commit=lambda: None, answers=answers)
    p, answer, (headers, body) = await _disputed_before_our_answer(store, connectors, inbox)
    reads: list[str] = []
    by_id, by_ref = store.get_payment, store.find_payment_by_connector_ref

    async def get_payment(payment_id: str, merchant_id: str | None = None) -> Payment | None:
        reads.append("id")
        return await by_id(payment_id, merchant_id)

    async def find_by_ref(connector: str, connector_payment_id: str) -> Payment | None:
        reads.append("ref")
        return await by_ref(connector, connector_payment_id)

    async def record_the_answer() -> None:
        with answers.awaiting(p.id):
            await asyncio.sleep(0.05)  # the webhook arrives meanwhile
            recorded = await by_id(p.id)
            assert recorded is not None
            recorded.apply_psp_outcome(answer, now())
            await save(store, recorded)

    store.get_payment = get_payment  # type: ignore[method-assign]
    store.find_payment_by_connector_ref = find_by_ref  # type: ignore[method-assign]
    try:
        recording = asyncio.create_task(record_the_answer())
        await asyncio.sleep(0)  # the answer is awaited from here on
        assert await service.receive("stripe", headers, body) == ["applied"]
        await recording
        assert reads == ["id", "id"]
        reads.clear()
        # Stripe delivers it again (say our 200 was lost): now bound, one read, a duplicate.
        assert await service.receive("stripe", headers, body) == ["duplicate"]
        assert reads == ["id"]
        # One that overtook an answer another process awaits: by id, then by reference (is
        # the PSP object another payment's?), and refused.
        q, _answer, (headers, body) = await _disputed_before_our_answer(store, connectors, inbox)
        reads.clear()
        with pytest.raises(StateConflict):
            await service.receive("stripe", headers, body)
        assert reads == ["id", "ref"]
        assert (await by_id(q.id)).status == S.PENDING  # type: ignore[union-attr]
    finally:
        del store.get_payment, store.find_payment_by_connector_ref
    after = await stored(store, p)
    assert after.status == S.DISPUTED and after.connector_payment_id == str(
        answer.connector_payment_id
    )


async def test_an_awaited_answer_that_does_not_come_in_time_leaves_the_webhook_refused(
    store: SqliteStore, connectors: dict[str, Connector], inbox: WebhookInbox
) -> None:
    answers = AnswersInFlight()
    service = WebhookService(
        store, connectors, now, on_commit=lambda: None, answers=answers, answer_wait=0.05
    )
    p = new_payment("stripe")
    await save(store, p)
    answer = await connectors["stripe"].authorize(request_for(p))
    ref = str(answer.connector_payment_id)
    headers, body = await inbox.wait_for(
        lambda _h, b: ref.encode() in b and b'"payment_intent.succeeded"' in b
    )
    # The PSP call is still running here, and stays so.
    with answers.awaiting(p.id), pytest.raises(StateConflict) as refused:
        await service.receive("stripe", headers, body)
    assert refused.value.code == "payment_not_ready"
    assert (await stored(store, p)).status == S.PENDING


async def test_a_paypal_dispute_is_tied_to_its_payment_by_paypals_capture(
    service: WebhookService,
    store: SqliteStore,
    connectors: dict[str, Connector],
    inbox: WebhookInbox,
) -> None:
    p = new_payment("paypal")
    p.payment_method = "pm_card_createDispute"
    answer = await connectors["paypal"].authorize(request_for(p, method=p.payment_method))
    p.apply_psp_outcome(answer, now())
    await save(store, p)
    headers, body = await inbox.wait_for(
        lambda _h, b: p.id.encode() in b and b'"CUSTOMER.DISPUTE.CREATED"' in b
    )
    assert await service.receive("paypal", headers, body) == ["applied"]
    after = await stored(store, p)
    assert after.status == S.DISPUTED and after.dispute is not None


# -- a capture at the PSP while a review is open --------------------------------------------------


async def test_a_capture_at_the_psp_closes_the_open_review_and_a_decision_is_a_409(
    service: WebhookService,
    store: SqliteStore,
    connectors: dict[str, Connector],
    inbox: WebhookInbox,
) -> None:
    stripe = connectors["stripe"]
    held = await authorised(store, stripe, fraud=REVIEW)
    assert held.review is not None and held.review.status == ReviewStatus.OPEN
    ref = str(held.connector_payment_id)
    # Captured at the PSP (its dashboard, another integration): not through the review.
    await stripe.capture(ref, 2000, f"dashboard-{uuid.uuid4()}")
    headers, body = await inbox.wait_for(
        lambda _h, b: ref.encode() in b and b'"payment_intent.succeeded"' in b
    )
    assert await service.receive("stripe", headers, body) == ["applied"]

    after = await stored(store, held)
    assert after.status == S.SUCCEEDED and after.review is not None
    assert after.review.status == ReviewStatus.CLOSED
    events = await store.events_for_payment(held.merchant_id, held.id)
    [closed] = [e for e in events if e.type == "review.closed"]
    assert (closed.envelope["detail"]["reason"], closed.envelope["detail"]["amount_captured"]) == (
        "captured_at_psp",
        2000,
    )
    assert "review.approved" not in [e.type for e in events]

    # Approve and reject answer 409 before asking the PSP anything (no PSP, no writes).
    reviews = ReviewService(store, psp=None, writes=None, clock=now)  # type: ignore[arg-type]
    for decide in (reviews.approve, reviews.reject):
        with pytest.raises(StateConflict) as info:
            await decide(held.merchant_id, held.review.id)
        assert info.value.code == "review_closed"
        assert "captured at the PSP" in info.value.message


# -- the whole server, over HTTP ------------------------------------------------------------------

SERVER_SECRET = "whsec_ownership_server"
REVIEW_AMOUNT = 77_700


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    rules = json.loads(
        resources.files("paymesh.fraud").joinpath("default_fraud_rules.json").read_text()
    )
    rules["rules"].append(
        {
            "name": "test: review this amount",
            "factor": "test_review",
            "weight": 75,
            "override": True,  # at least a review, whatever the learned model scores
            "when": ["amount", "==", REVIEW_AMOUNT],
        }
    )
    path = tmp_path / "fraud-rules.json"
    path.write_text(json.dumps(rules))
    yield from start(tmp_path / "data", fraud_rules=path, stripe_webhook_secret=SERVER_SECRET)


def wait_for(fetch: Callable[[], T], ready: Callable[[T], object], within: float = 10.0) -> T:
    deadline = time.monotonic() + within
    while True:
        value = fetch()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def pay(client: httpx.Client, amount: int, **extra: Any) -> dict[str, Any]:
    r = client.post(
        "/v1/payments",
        json={
            "amount": amount,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "customer_id": f"cus_{uuid.uuid4().hex[:8]}",
            "connector": "stripe",
            **extra,
        },
    )
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def test_over_http_a_stranger_intent_naming_another_merchants_payment_is_a_mismatch(
    server: Server,
) -> None:
    with server.client(server.other_key) as victim_api, server.sandbox() as psp:
        victim = pay(victim_api, 2000, capture_method="manual")
        assert victim["status"] == "requires_capture"
        # Made straight at the PSP, naming the victim's payment, with a card that declines.
        made = psp.post(
            "/v1/payment_intents",
            data={
                "amount": 2000,
                "currency": "usd",
                "confirm": "true",
                "payment_method": "pm_card_chargeDeclinedInsufficientFunds",
                "metadata[paymesh_payment_id]": victim["id"],
            },
        )
        pi = made.json()["error"]["payment_intent"] if made.status_code == 402 else made.json()
        events = wait_for(
            lambda: psp.get("/v1/events", params={"limit": 100}).json()["data"],
            lambda data: any(
                e["data"]["object"].get("id") == pi["id"]
                and e["type"] == "payment_intent.payment_failed"
                for e in data
            ),
        )
        [failed] = [
            e
            for e in events
            if e["data"]["object"].get("id") == pi["id"]
            and e["type"] == "payment_intent.payment_failed"
        ]
        # The sandbox has delivered it to the server by now, or will: it changes nothing.
        body = json.dumps(failed).encode()
        signature = stripe_sign(body, SERVER_SECRET, int(time.time()))
        r = httpx.post(
            f"{server.base}/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )
        assert (r.status_code, r.json()["results"]) == (200, ["mismatch"])
        time.sleep(0.3)  # room for the sandbox's own delivery of the same event
        after = victim_api.get(f"/v1/payments/{victim['id']}").json()
        assert (after["status"], after["failure"]) == ("requires_capture", None)


def test_over_http_a_capture_at_the_psp_closes_the_review_and_approval_is_a_409(
    server: Server,
) -> None:
    with server.client() as api, server.sandbox() as psp:
        held = pay(api, REVIEW_AMOUNT)
        assert held["status"] == "requires_capture" and held["review"]["status"] == "open"
        review_id = held["review"]["id"]
        captured = psp.post(f"/v1/payment_intents/{held['connector_payment_id']}/capture")
        assert captured.status_code == 200, captured.text
        review = wait_for(
            lambda: api.get(f"/v1/reviews/{review_id}").json(), lambda r: r["status"] != "open"
        )
        assert (review["status"], review["payment_status"]) == ("closed", "succeeded")
        for decision in ("approve", "reject"):
            r = api.post(f"/v1/reviews/{review_id}/{decision}")
            assert r.status_code == 409, r.text
            assert r.json()["error"]["code"] == "review_closed"
            assert "captured at the PSP" in r.json()["error"]["message"]
        types = [
            e["detail-type"] for e in api.get(f"/v1/payments/{held['id']}/events").json()["data"]
        ]
        assert types.count("review.closed") == 1 and "review.approved" not in types
        [closed] = [
            e
            for e in api.get("/v1/events", params={"type": "review.closed"}).json()["data"]
            if e["resources"] == [held["id"]]
        ]
        assert closed["detail"]["reason"] == "captured_at_psp"
        # One capture at the PSP, of the amount: no decision captured again.
        intent = psp.get(f"/v1/payment_intents/{held['connector_payment_id']}").json()
        assert (intent["status"], intent["amount_received"]) == ("succeeded", REVIEW_AMOUNT)


# -- signed but malformed: a 400 that changes nothing -----------------------------------------


def _signed_malformed(
    server: Server, psp: str, payment: dict[str, Any]
) -> tuple[dict[str, str], bytes]:
    """A webhook about `payment`, signed with the server's own secrets as its PSP signs, with
    one field of a type the PSP never sends."""
    settings, ref = server.settings, payment["connector_payment_id"]
    if psp == "stripe":
        intent = {
            "id": ref,
            "object": "payment_intent",
            "status": "canceled",
            "amount": 2000,
            "currency": "usd",
            "metadata": "paymesh_payment_id",
        }  # not an object
        body = msgspec.json.encode(
            {
                "id": f"evt_{uuid.uuid4().hex}",
                "object": "event",
                "type": "payment_intent.canceled",
                "created": int(time.time()),
                "data": {"object": intent},
            }
        )
        assert settings.stripe_webhook_secret is not None
        return {
            "Stripe-Signature": stripe_sign(body, settings.stripe_webhook_secret, int(time.time()))
        }, body
    if psp == "adyen":
        item = {
            "pspReference": ref,
            "merchantAccountCode": settings.adyen_merchant_account,
            "merchantReference": 2000,  # not a string
            "eventCode": "CANCELLATION",
            "success": "true",
            "amount": {"value": 2000, "currency": "USD"},
            "additionalData": {},
        }
        assert settings.adyen_hmac_key is not None
        item["additionalData"] = {
            "hmacSignature": adyen_sign(item, bytes.fromhex(settings.adyen_hmac_key))
        }
        return {}, msgspec.json.encode(
            {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
        )
    # The fuzzer's find (make fuzz): PayPal's supplementary_data as a string, once a 500.
    capture = {
        "id": "3C679366HH908993F",
        "status": "COMPLETED",
        "custom_id": payment["id"],
        "amount": {"currency_code": "USD", "value": "20.00"},
        "supplementary_data": f"related_ids: order_id {ref}",
    }
    body = msgspec.json.encode(
        {
            "id": f"WH-{uuid.uuid4().hex}",
            "event_version": "1.0",
            "create_time": now().isoformat(),
            "resource_type": "capture",
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "resource": capture,
        }
    )
    identity = SigningIdentity.load_or_create(settings.sandbox_dir)
    tid, sent = str(uuid.uuid4()), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert settings.paypal_webhook_id is not None
    return {
        "paypal-transmission-id": tid,
        "paypal-transmission-time": sent,
        "paypal-transmission-sig": identity.sign(
            signed_message(tid, sent, settings.paypal_webhook_id, body)
        ),
        "paypal-cert-url": "https://api.paypal.com/v1/notifications/certs/CERT-1",
        "paypal-auth-algo": "SHA256withRSA",
    }, body


@pytest.mark.parametrize("psp", ["stripe", "adyen", "paypal"])
def test_over_http_a_signed_but_malformed_webhook_is_a_400_that_changes_nothing(
    server: Server, psp: str
) -> None:
    with server.client() as api:
        payment = pay(api, 2000, connector=psp, capture_method="manual")
        assert payment["status"] in ("requires_capture", "processing"), payment
        # The PSP's own webhooks about it (the authorisation) come and go first.
        before = wait_for(
            lambda: api.get(f"/v1/payments/{payment['id']}").json(),
            lambda p: p["status"] == "requires_capture",
        )
        events = api.get(f"/v1/payments/{payment['id']}/events").json()["data"]
        headers, body = _signed_malformed(server, psp, before)
        r = httpx.post(
            f"{server.base}/webhooks/{psp}",
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "webhook_signature_invalid"
        assert "webhook" in error["message"] and "20.00" not in error["message"]
        assert api.get(f"/v1/payments/{payment['id']}").json() == before
        assert api.get(f"/v1/payments/{payment['id']}/events").json()["data"] == events
