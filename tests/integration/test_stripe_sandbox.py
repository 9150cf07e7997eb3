"""The Stripe sandbox, judged by the official `stripe` package over real HTTP.

The sandbox is mounted under /sandbox/stripe in a small parent app whose
lifespan calls start/stop, exactly as `paymesh serve` mounts it. The stripe
library keeps the path of `base_addresses["api"]`: it builds each URL as
base address + "/v1/...", so the prefix works with no special handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from paymesh.sandbox.limits import MemoryLimits
from paymesh.sandbox.stripe import StripeSandbox, StripeSandboxSettings
from tests.support.live_server import live_server

KEY = "sk_test_paymesh_integration"
AUTH = {"Authorization": f"Bearer {KEY}"}
SECRET = "whsec_test_integration"


def parent_app(sandbox: StripeSandbox) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await sandbox.start()
        try:
            yield
        finally:
            await sandbox.stop()

    return Starlette(routes=[Mount("/sandbox/stripe", app=sandbox.app)], lifespan=lifespan)


@contextlib.contextmanager
def running_sandbox(
    settings: StripeSandboxSettings | None = None,
) -> Iterator[tuple[StripeSandbox, str]]:
    sandbox = StripeSandbox(settings or StripeSandboxSettings(seed=7))
    with live_server(parent_app(sandbox)) as base:
        yield sandbox, f"{base}/sandbox/stripe"


@pytest.fixture
def sandbox() -> Iterator[tuple[StripeSandbox, str]]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
def api(sandbox: tuple[StripeSandbox, str]) -> str:
    return sandbox[1]


def client_for(api_base: str, key: str = KEY) -> stripe.StripeClient:
    # Retries off: each test decides itself what a retry is.
    return stripe.StripeClient(key, base_addresses={"api": api_base}, max_network_retries=0)


@pytest.fixture
def client(api: str) -> stripe.StripeClient:
    return client_for(api)


def create_intent(client: stripe.StripeClient, **params: Any) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", **params}  # type: ignore[typeddict-item]
    )


def redirect_of(intent: stripe.PaymentIntent) -> tuple[str, str | None]:
    """The 3DS page URL and return URL of a PaymentIntent that requires action."""
    assert intent.next_action is not None
    assert intent.next_action.type == "redirect_to_url"
    redirect = intent.next_action.redirect_to_url
    assert redirect is not None
    return str(redirect.url), redirect.return_url


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


# --- the stripe package drives the sandbox ----------------------------------------------


def test_create_and_confirm_in_one_call_succeeds(client: stripe.StripeClient) -> None:
    intent = create_intent(
        client,
        currency="USD",
        payment_method="pm_card_visa",
        confirm=True,
        metadata={"order_id": "o-1"},
        description="order o-1",
    )
    assert intent.id.startswith("pi_")
    assert intent.status == "succeeded"
    assert intent.amount == 2000
    assert intent.amount_received == 2000
    assert intent.amount_capturable == 0
    assert intent.currency == "usd"
    assert intent.metadata.to_dict() == {"order_id": "o-1"}
    assert intent.description == "order o-1"
    assert intent.livemode is False
    assert str(intent.client_secret).startswith(f"{intent.id}_secret_")
    assert intent.latest_charge is not None
    assert str(intent.latest_charge).startswith("ch_")
    assert intent.payment_method == "pm_card_visa"
    assert intent.last_payment_error is None


def test_confirm_as_a_separate_step(client: stripe.StripeClient) -> None:
    bare = create_intent(client)
    assert bare.status == "requires_payment_method"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.confirm(bare.id)
    assert missing.value.code == "payment_intent_unexpected_state"

    confirmed = client.v1.payment_intents.confirm(
        bare.id, params={"payment_method": "pm_card_mastercard"}
    )
    assert confirmed.status == "succeeded"
    assert confirmed.amount_received == 2000

    with_method = create_intent(client, payment_method="pm_card_amex")
    assert with_method.status == "requires_confirmation"
    assert client.v1.payment_intents.confirm(with_method.id).status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.payment_intents.confirm(with_method.id)
    assert again.value.code == "payment_intent_unexpected_state"
    assert "already succeeded" in str(again.value.user_message)


def test_manual_capture_in_full(client: stripe.StripeClient) -> None:
    intent = create_intent(
        client, amount=5000, payment_method="pm_card_visa", confirm=True, capture_method="manual"
    )
    assert intent.status == "requires_capture"
    assert intent.amount_capturable == 5000
    assert intent.amount_received == 0
    captured = client.v1.payment_intents.capture(intent.id)
    assert captured.status == "succeeded"
    assert captured.amount_received == 5000
    assert captured.amount_capturable == 0
    with pytest.raises(stripe.InvalidRequestError) as twice:
        client.v1.payment_intents.capture(intent.id)
    assert twice.value.code == "payment_intent_unexpected_state"


def test_partial_capture_releases_the_rest(client: stripe.StripeClient) -> None:
    intent = create_intent(
        client, amount=5000, payment_method="pm_card_visa", confirm=True, capture_method="manual"
    )
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 5001})
    assert too_much.value.code == "amount_too_large"

    captured = client.v1.payment_intents.capture(intent.id, params={"amount_to_capture": 3000})
    assert captured.status == "succeeded"
    assert captured.amount_received == 3000
    assert captured.amount_capturable == 0
    charge = client.v1.charges.retrieve(str(captured.latest_charge))
    assert (charge.amount, charge.amount_captured, charge.amount_refunded) == (5000, 3000, 2000)
    assert charge.captured is True
    assert charge.refunded is False

    # Only what was captured can be refunded.
    with pytest.raises(stripe.InvalidRequestError) as over:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 3001})
    assert over.value.code == "amount_too_large"
    refund = client.v1.refunds.create(params={"payment_intent": intent.id})
    assert refund.amount == 3000
    assert client.v1.charges.retrieve(charge.id).refunded is True


def test_cancel(client: stripe.StripeClient) -> None:
    intent = create_intent(
        client, payment_method="pm_card_visa", confirm=True, capture_method="manual"
    )
    canceled = client.v1.payment_intents.cancel(
        intent.id, params={"cancellation_reason": "requested_by_customer"}
    )
    assert canceled.status == "canceled"
    assert canceled.cancellation_reason == "requested_by_customer"
    assert canceled.canceled_at is not None
    assert canceled.amount_capturable == 0
    for action in (client.v1.payment_intents.cancel, client.v1.payment_intents.capture):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            action(intent.id)
        assert refused.value.code == "payment_intent_unexpected_state"
        assert refused.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as bad_reason:
        client.v1.payment_intents.cancel(
            create_intent(client).id,
            params={"cancellation_reason": "bored"},  # type: ignore[typeddict-item, unused-ignore]
        )
    assert bad_reason.value.param == "cancellation_reason"


def test_refund_in_parts_never_beyond_the_capture(client: stripe.StripeClient) -> None:
    intent = create_intent(client, amount=5000, payment_method="pm_card_visa", confirm=True)
    first = client.v1.refunds.create(
        params={"payment_intent": intent.id, "amount": 1500, "reason": "requested_by_customer"}
    )
    assert first.id.startswith("re_")
    assert (first.amount, first.status, first.currency) == (1500, "succeeded", "usd")
    assert first.payment_intent == intent.id
    assert first.charge == intent.latest_charge
    assert first.reason == "requested_by_customer"

    with pytest.raises(stripe.InvalidRequestError) as over:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 4000})
    assert over.value.http_status == 400
    assert over.value.code == "amount_too_large"
    assert over.value.user_message == (
        "Refund amount ($40.00) is greater than unrefunded amount on charge ($35.00)"
    )

    rest = client.v1.refunds.create(params={"charge": str(intent.latest_charge)})
    assert rest.amount == 3500
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert (charge.amount_refunded, charge.refunded) == (5000, True)

    with pytest.raises(stripe.InvalidRequestError) as done:
        client.v1.refunds.create(params={"payment_intent": intent.id})
    assert done.value.code == "charge_already_refunded"

    listed = client.v1.refunds.list(params={"payment_intent": intent.id})
    assert [r.id for r in listed.data] == [rest.id, first.id]
    assert client.v1.refunds.retrieve(first.id).amount == 1500

    unpaid = create_intent(client)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"payment_intent": unpaid.id})


DECLINES = [
    ("pm_card_chargeDeclined", "card_declined", "generic_decline", "Your card was declined."),
    (
        "pm_card_chargeDeclinedInsufficientFunds",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    ("pm_card_chargeDeclinedFraudulent", "card_declined", "fraudulent", "Your card was declined."),
    ("pm_card_chargeDeclinedLostCard", "card_declined", "lost_card", "Your card was declined."),
    ("pm_card_chargeDeclinedStolenCard", "card_declined", "stolen_card", "Your card was declined."),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card", "Your card has expired."),
    (
        "pm_card_chargeDeclinedIncorrectCvc",
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    (
        "pm_card_chargeDeclinedProcessingError",
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
]


@pytest.mark.parametrize(("token", "code", "decline_code", "message"), DECLINES)
def test_declines_raise_card_errors(
    client: stripe.StripeClient, token: str, code: str, decline_code: str, message: str
) -> None:
    with pytest.raises(stripe.CardError) as declined:
        create_intent(client, payment_method=token, confirm=True)
    error = declined.value
    assert error.http_status == 402
    assert error.code == code
    assert error.user_message == message
    assert error.error is not None
    assert error.error.type == "card_error"
    assert error.error.decline_code == decline_code
    assert error.error.charge is not None and error.error.charge.startswith("ch_")
    embedded = error.error.payment_intent
    assert embedded is not None
    assert embedded.status == "requires_payment_method"
    assert error.request_id is not None and error.request_id.startswith("req_")

    stored = client.v1.payment_intents.retrieve(embedded.id)
    assert stored.status == "requires_payment_method"
    assert stored.last_payment_error is not None
    assert stored.last_payment_error.code == code
    assert stored.last_payment_error.decline_code == decline_code
    charge = client.v1.charges.retrieve(str(stored.latest_charge))
    assert (charge.status, charge.paid, charge.failure_code) == ("failed", False, code)
    # The customer may try again with another card.
    retried = client.v1.payment_intents.confirm(
        embedded.id, params={"payment_method": "pm_card_visa"}
    )
    assert retried.status == "succeeded"
    assert retried.last_payment_error is None


@pytest.mark.parametrize(("capture_method", "final_status"), [
    ("automatic", "succeeded"),
    ("manual", "requires_capture"),
])  # fmt: skip
def test_three_d_secure_redirect_completes(
    client: stripe.StripeClient, api: str, capture_method: str, final_status: str
) -> None:
    intent = create_intent(
        client,
        payment_method="pm_card_threeDSecure2Required",
        confirm=True,
        capture_method=capture_method,
    )
    assert intent.status == "requires_action"
    url, _ = redirect_of(intent)
    assert url == f"{api}/_3ds/{intent.id}"
    assert intent.latest_charge is None

    page = httpx.get(url)
    assert page.status_code == 200
    assert "outcome=succeed" in page.text

    done = httpx.get(url, params={"outcome": "succeed"})
    assert done.status_code == 200
    assert done.headers["request-id"].startswith("req_")
    assert done.json()["status"] == final_status
    after = client.v1.payment_intents.retrieve(intent.id)
    assert after.status == final_status
    assert after.next_action is None
    assert after.latest_charge is not None


def test_three_d_secure_failure_and_return_url(client: stripe.StripeClient) -> None:
    # A shop on this machine: loopback is where the sandbox sends customers back by default.
    intent = create_intent(
        client,
        payment_method="pm_card_threeDSecure2Required",
        confirm=True,
        return_url="http://127.0.0.1:8080/return?cart=9",
    )
    url, return_url = redirect_of(intent)
    assert return_url == "http://127.0.0.1:8080/return?cart=9"
    answer = httpx.post(url, params={"outcome": "fail"})
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("http://127.0.0.1:8080/return?cart=9&payment_intent=")
    assert "redirect_status=failed" in location

    failed = client.v1.payment_intents.retrieve(intent.id)
    assert failed.status == "requires_payment_method"
    assert failed.last_payment_error is not None
    assert failed.last_payment_error.code == "payment_intent_authentication_failure"
    # Visiting the page again changes nothing.
    httpx.post(url, params={"outcome": "succeed"})
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"


def three_d_secure_answer(client: stripe.StripeClient, return_url: str) -> httpx.Response:
    intent = create_intent(
        client,
        payment_method="pm_card_threeDSecure2Required",
        confirm=True,
        return_url=return_url,
    )
    url, _ = redirect_of(intent)
    return httpx.post(url, params={"outcome": "succeed"})


@pytest.mark.parametrize("return_url", [
    "https://evil.example/phish",
    "https://127.0.0.1@evil.example/",  # user info: the browser goes to evil.example
    "ftp://127.0.0.1/return",
    "myapp://payment-done",  # an app's scheme: valid for Stripe, no page for a browser here
])  # fmt: skip
def test_three_d_secure_never_redirects_off_the_allowed_hosts(
    client: stripe.StripeClient, return_url: str
) -> None:
    answer = three_d_secure_answer(client, return_url)
    assert answer.status_code == 200
    assert "location" not in answer.headers
    body = answer.json()
    assert (body["status"], body["redirect_status"]) == ("succeeded", "succeeded")
    assert body["return_url_followed"] is False
    # The payment itself completed: only the redirect was withheld.
    assert client.v1.payment_intents.retrieve(body["payment_intent"]).status == "succeeded"


@pytest.mark.parametrize("return_url", [
    "http://localhost:3000/done", "http://127.0.0.1/done", "http://[::1]:8000/done",
])  # fmt: skip
def test_three_d_secure_redirects_to_a_loopback_shop(
    client: stripe.StripeClient, return_url: str
) -> None:
    answer = three_d_secure_answer(client, return_url)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(f"{return_url}?payment_intent=pi_")


def test_three_d_secure_follows_the_configured_hosts_only() -> None:
    settings = StripeSandboxSettings(return_url_hosts=("shop.example",))
    with running_sandbox(settings) as (_, api):
        client = client_for(api)
        allowed = three_d_secure_answer(client, "https://shop.example/return?cart=9#top")
        assert allowed.status_code == 303
        location = allowed.headers["location"]
        assert location.startswith("https://shop.example/return?cart=9&payment_intent=")
        assert location.endswith("&redirect_status=succeeded#top")
        # Configured hosts replace the defaults: loopback is not followed now.
        for elsewhere in ("http://127.0.0.1:8080/return", "https://shop.example.evil.example/"):
            answer = three_d_secure_answer(client, elsewhere)
            assert (answer.status_code, answer.json()["return_url_followed"]) == (200, False)


@pytest.mark.parametrize("return_url", [
    "javascript:alert(document.cookie)", "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "//evil.example/phish", "/return",
    "shop.example/return", "https:///no-host", "http://exa mple.com/",
    "http://localhost:8080\\@evil.example/",  # a backslash, which browsers read as a slash
])  # fmt: skip
def test_a_return_url_stripe_would_not_take_is_refused_up_front(
    client: stripe.StripeClient, api: str, return_url: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        create_intent(
            client,
            payment_method="pm_card_threeDSecure2Required",
            confirm=True,
            return_url=return_url,
        )
    assert refused.value.http_status == 400
    assert refused.value.error is not None
    assert (refused.value.error.type, refused.value.error.code, refused.value.error.param) == (
        "invalid_request_error",
        "url_invalid",
        "return_url",
    )
    assert refused.value.error.message == "Not a valid URL"
    assert client.v1.payment_intents.list().data == []  # nothing was made
    # Confirming checks it the same way.
    intent = create_intent(client, payment_method="pm_card_threeDSecure2Required")
    answer = post(api, f"/v1/payment_intents/{intent.id}/confirm", {"return_url": return_url})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "url_invalid"
    assert client.v1.payment_intents.retrieve(intent.id).status == "requires_confirmation"


def test_off_session_payment_cannot_wait_for_authentication(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as declined:
        create_intent(
            client, payment_method="pm_card_authenticationRequired", confirm=True, off_session=True
        )
    assert declined.value.code == "authentication_required"
    assert declined.value.error is not None
    assert declined.value.error.payment_intent is not None
    assert declined.value.error.payment_intent.status == "requires_payment_method"


def test_list_pages_newest_first(client: stripe.StripeClient) -> None:
    ids = [create_intent(client, amount=1000 + i).id for i in range(5)]
    newest_first = ids[::-1]
    first = client.v1.payment_intents.list(params={"limit": 2})
    assert [pi.id for pi in first.data] == newest_first[:2]
    assert first.has_more is True
    assert first.url == "/v1/payment_intents"
    second = client.v1.payment_intents.list(params={"limit": 2, "starting_after": ids[3]})
    assert [pi.id for pi in second.data] == newest_first[2:4]
    last = client.v1.payment_intents.list(params={"limit": 2, "starting_after": ids[1]})
    assert [pi.id for pi in last.data] == [ids[0]]
    assert last.has_more is False
    before = client.v1.payment_intents.list(params={"limit": 2, "ending_before": ids[0]})
    assert [pi.id for pi in before.data] == [ids[2], ids[1]]
    assert before.has_more is True
    everything = client.v1.payment_intents.list(params={"limit": 2}).auto_paging_iter()
    assert [pi.id for pi in everything] == newest_first


def test_retrieve_and_update(client: stripe.StripeClient) -> None:
    intent = create_intent(client, metadata={"order_id": "o-1", "drop": "me"})
    updated = client.v1.payment_intents.update(
        intent.id,
        params={"metadata": {"drop": "", "note": "gift"}, "description": "updated"},
    )
    assert updated.metadata.to_dict() == {"order_id": "o-1", "note": "gift"}
    assert updated.description == "updated"
    fetched = client.v1.payment_intents.retrieve(intent.id)
    assert fetched.metadata.to_dict() == {"order_id": "o-1", "note": "gift"}
    assert fetched.amount == 2000


def test_request_errors_have_stripes_shape(client: stripe.StripeClient, api: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        create_intent(client, colour="blue")
    assert unknown.value.user_message == "Received unknown parameter: colour"
    assert unknown.value.param == "colour"

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.create(params={"currency": "usd"})  # type: ignore[typeddict-item]
    assert (missing.value.code, missing.value.param) == ("parameter_missing", "amount")

    with pytest.raises(stripe.InvalidRequestError) as small:
        create_intent(client, amount=10)
    assert small.value.code == "amount_too_small"

    with pytest.raises(stripe.InvalidRequestError) as large:
        create_intent(client, amount=100_000_000)
    assert large.value.code == "amount_too_large"

    with pytest.raises(stripe.InvalidRequestError) as absent:
        client.v1.payment_intents.retrieve("pi_missing")
    assert absent.value.http_status == 404
    assert absent.value.code == "resource_missing"
    assert absent.value.user_message == "No such payment_intent: 'pi_missing'"

    with pytest.raises(stripe.InvalidRequestError) as no_card:
        create_intent(client, payment_method="pm_card_nonsense", confirm=True)
    assert no_card.value.http_status == 400
    assert no_card.value.code == "resource_missing"
    assert no_card.value.user_message == "No such PaymentMethod: 'pm_card_nonsense'"

    answer = httpx.post(f"{api}/v1/payment_intents", headers=AUTH, data={"amount": "12x"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "parameter_invalid_integer"

    nowhere = httpx.get(f"{api}/v1/nowhere", headers=AUTH)
    assert nowhere.status_code == 404
    assert nowhere.json()["error"]["message"].startswith(
        "Unrecognized request URL (GET: /v1/nowhere)"
    )
    assert nowhere.headers["request-id"].startswith("req_")


def test_authentication_and_per_key_accounts(client: stripe.StripeClient, api: str) -> None:
    with pytest.raises(stripe.AuthenticationError) as live:
        client_for(api, "sk_live_0123456789abcdef").v1.payment_intents.list()
    assert live.value.http_status == 401
    assert "0123456789abcdef" not in str(live.value.user_message)

    anonymous = httpx.get(f"{api}/v1/payment_intents")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "invalid_request_error"
    assert anonymous.headers["request-id"].startswith("req_")

    mine = create_intent(client)
    basic = httpx.get(f"{api}/v1/payment_intents/{mine.id}", auth=(KEY, ""))
    assert basic.status_code == 200
    assert basic.json()["id"] == mine.id
    assert basic.headers["request-id"].startswith("req_")

    # Another key is another account: it cannot see this one's objects.
    other = client_for(api, "sk_test_someone_else")
    with pytest.raises(stripe.InvalidRequestError) as hidden:
        other.v1.payment_intents.retrieve(mine.id)
    assert hidden.value.http_status == 404
    assert other.v1.payment_intents.list().data == []


# --- idempotency -------------------------------------------------------------------------


def post(api: str, path: str, data: dict[str, str], key: str | None = None) -> httpx.Response:
    headers = dict(AUTH)
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(f"{api}{path}", headers=headers, data=data)


def test_idempotent_replay_and_mismatch(api: str, client: stripe.StripeClient) -> None:
    params = {"amount": "2000", "currency": "usd", "payment_method": "pm_card_visa",
              "confirm": "true", "metadata[order_id]": "o-1"}  # fmt: skip
    first = post(api, "/v1/payment_intents", params, key="order-o-1")
    again = post(api, "/v1/payment_intents", params, key="order-o-1")
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["original-request"] == first.headers["request-id"]
    assert again.headers["request-id"] != first.headers["request-id"]
    assert again.json() == first.json()
    assert len(client.v1.payment_intents.list().data) == 1

    changed = post(api, "/v1/payment_intents", {**params, "amount": "2001"}, key="order-o-1")
    assert changed.status_code == 400
    assert changed.json()["error"]["type"] == "idempotency_error"

    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_intents.create(
            params={"amount": 999, "currency": "usd"},
            options={"idempotency_key": "order-o-1"},
        )
    # Same key, other account: unrelated.
    elsewhere = httpx.post(
        f"{api}/v1/payment_intents",
        headers={"Authorization": "Bearer sk_test_other", "Idempotency-Key": "order-o-1"},
        data=params,
    )
    assert elsewhere.status_code == 200
    assert elsewhere.json()["id"] != first.json()["id"]


def test_declines_are_replayed_validation_errors_are_not(
    api: str, client: stripe.StripeClient
) -> None:
    declined = {"amount": "2000", "currency": "usd", "confirm": "true",
                "payment_method": "pm_card_chargeDeclinedInsufficientFunds"}  # fmt: skip
    first = post(api, "/v1/payment_intents", declined, key="k-decline")
    again = post(api, "/v1/payment_intents", declined, key="k-decline")
    assert first.status_code == again.status_code == 402
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(client.v1.payment_intents.list().data) == 1

    invalid = post(api, "/v1/payment_intents", {"amount": "2000"}, key="k-invalid")
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "parameter_missing"
    valid = post(api, "/v1/payment_intents", {"amount": "2000", "currency": "usd"}, "k-invalid")
    assert valid.status_code == 200
    assert "idempotent-replayed" not in valid.headers


async def test_concurrent_creates_with_one_key_make_one_payment(
    sandbox: tuple[StripeSandbox, str],
) -> None:
    running, api = sandbox
    # Latency keeps the first request in flight long enough for others to collide.
    running.faults.update({"latency_ms": 50})
    headers = {**AUTH, "Idempotency-Key": "one-key-many-tries"}
    data = {"amount": "2000", "currency": "usd", "payment_method": "pm_card_visa",
            "confirm": "true"}  # fmt: skip
    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        answers = await asyncio.gather(
            *(http.post("/v1/payment_intents", headers=headers, data=data) for _ in range(50))
        )
        listed = (await http.get("/v1/payment_intents", headers=AUTH)).json()
    assert len(listed["data"]) == 1
    only = listed["data"][0]["id"]
    statuses = sorted({a.status_code for a in answers})
    assert set(statuses) <= {200, 409}
    assert 409 in statuses
    winners = [a for a in answers if a.status_code == 200]
    assert all(a.json()["id"] == only for a in winners)
    assert len([a for a in winners if "idempotent-replayed" not in a.headers]) == 1
    for conflict in (a for a in answers if a.status_code == 409):
        assert conflict.json()["error"]["code"] == "idempotency_key_in_use"


# --- webhooks ----------------------------------------------------------------------------


@dataclass
class Receiver:
    """A merchant endpoint that records what it is sent."""

    deliveries: list[tuple[bytes, dict[str, str], float]] = field(default_factory=list)
    fail_next: int = 0

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            if self.fail_next > 0:
                self.fail_next -= 1
                return Response(status_code=503)
            self.deliveries.append((body, dict(request.headers), time.monotonic()))
            return Response(status_code=200)

        return Starlette(routes=[Route("/webhooks/stripe", receive, methods=["POST"])])

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body, _, _ in self.deliveries]

    def types(self) -> list[str]:
        return [event["type"] for event in self.events()]


@pytest.fixture
def webhooks() -> Iterator[tuple[Receiver, StripeSandbox, str]]:
    receiver = Receiver()
    with live_server(receiver.app()) as receiver_base:
        settings = StripeSandboxSettings(
            webhook_url=f"{receiver_base}/webhooks/stripe", webhook_secret=SECRET, seed=3
        )
        with running_sandbox(settings) as (running, api):
            yield receiver, running, api


def test_webhooks_are_signed_stripe_events(
    webhooks: tuple[Receiver, StripeSandbox, str],
) -> None:
    receiver, running, api = webhooks
    client = client_for(api)
    paid = create_intent(client, amount=5000, payment_method="pm_card_visa", confirm=True)
    with pytest.raises(stripe.CardError):
        create_intent(client, payment_method="pm_card_chargeDeclined", confirm=True)
    client.v1.refunds.create(params={"payment_intent": paid.id, "amount": 1200})
    disputed = create_intent(client, payment_method="pm_card_createDispute", confirm=True)
    secure = create_intent(client, payment_method="pm_card_threeDSecure2Required", confirm=True)
    httpx.get(redirect_of(secure)[0], params={"outcome": "succeed"})
    held = create_intent(
        client, payment_method="pm_card_visa", confirm=True, capture_method="manual"
    )
    client.v1.payment_intents.cancel(held.id)

    expected = sorted([
        "payment_intent.succeeded",  # paid
        "payment_intent.payment_failed",  # declined
        "charge.refunded",
        "payment_intent.succeeded", "charge.dispute.created",  # disputed
        "payment_intent.requires_action", "payment_intent.succeeded",  # 3DS
        "payment_intent.amount_capturable_updated", "payment_intent.canceled",  # held
    ])  # fmt: skip
    wait_until(lambda: len(receiver.deliveries) >= len(expected))
    wait_until(lambda: running.webhooks.idle)  # nothing more will arrive
    assert sorted(receiver.types()) == expected

    for body, headers, _ in receiver.deliveries:
        event = stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], SECRET)
        assert event.id.startswith("evt_")
        assert event.object == "event"
        assert event.api_version == "2024-06-20"
        assert event.livemode is False
        assert event.pending_webhooks == 1
        assert headers["content-type"].startswith("application/json")
        # The event log serves the very same bytes.
        stored = httpx.get(f"{api}/v1/events/{event.id}", headers=AUTH)
        assert stored.content == body

    by_type = {e["type"]: e for e in receiver.events()}
    refunded = by_type["charge.refunded"]["data"]["object"]
    assert refunded["object"] == "charge"
    assert (refunded["amount_refunded"], refunded["refunded"]) == (1200, False)
    assert refunded["payment_intent"] == paid.id
    dispute = by_type["charge.dispute.created"]["data"]["object"]
    assert dispute["id"].startswith("dp_")
    assert dispute["payment_intent"] == disputed.id
    assert dispute["charge"] == disputed.latest_charge
    assert (dispute["amount"], dispute["status"]) == (2000, "needs_response")
    failed = by_type["payment_intent.payment_failed"]["data"]["object"]
    assert failed["last_payment_error"]["decline_code"] == "generic_decline"
    canceled = by_type["payment_intent.canceled"]
    assert canceled["request"]["id"].startswith("req_")
    assert canceled["request"]["idempotency_key"]  # the stripe package always sends one

    listed = client.v1.events.list(params={"type": "payment_intent.succeeded"})
    assert len(listed.data) == 3

    body, headers, _ = receiver.deliveries[0]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            body.decode().replace('"livemode":false', '"livemode":true', 1),
            headers["stripe-signature"],
            SECRET,
        )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.decode(), headers["stripe-signature"], "whsec_wrong")


def test_webhook_faults_delay_duplicate_and_retry(
    webhooks: tuple[Receiver, StripeSandbox, str],
) -> None:
    receiver, running, api = webhooks
    client = client_for(api)

    running.faults.update({"webhook_delay_ms": 300})
    started = time.monotonic()
    create_intent(client, payment_method="pm_card_visa", confirm=True)
    assert time.monotonic() - started < 0.25  # the API answer does not wait for the webhook
    wait_until(lambda: len(receiver.deliveries) == 1)
    assert receiver.deliveries[0][2] - started >= 0.3

    running.faults.update({"webhook_delay_ms": 0, "webhook_duplicate_rate": 1.0})
    create_intent(client, payment_method="pm_card_visa", confirm=True)
    wait_until(lambda: len(receiver.deliveries) == 3)
    wait_until(lambda: running.webhooks.idle)  # nothing more will arrive
    assert len(receiver.deliveries) == 3
    first, second = receiver.events()[1:]
    assert first["id"] == second["id"]

    running.faults.update({"webhook_duplicate_rate": 0.0})
    receiver.fail_next = 1
    create_intent(client, payment_method="pm_card_visa", confirm=True)
    wait_until(lambda: len(receiver.deliveries) == 4)
    assert running.webhooks.stats.retried == 1


def test_standalone_app_runs_its_own_lifespan() -> None:
    receiver = Receiver()
    with live_server(receiver.app()) as receiver_base:
        sandbox = StripeSandbox(
            StripeSandboxSettings(webhook_url=f"{receiver_base}/webhooks/stripe")
        )
        with live_server(sandbox.app) as api:
            assert sandbox.webhooks.running
            create_intent(client_for(api), payment_method="pm_card_visa", confirm=True)
            wait_until(lambda: len(receiver.deliveries) == 1)
        assert not sandbox.webhooks.running
    body, headers, _ = receiver.deliveries[0]
    event = stripe.Webhook.construct_event(
        body.decode(), headers["stripe-signature"], "whsec_paymesh_sandbox"
    )
    assert event.type == "payment_intent.succeeded"


def test_webhook_reorder_delivers_every_event(
    webhooks: tuple[Receiver, StripeSandbox, str],
) -> None:
    receiver, running, api = webhooks
    running.faults.update({"webhook_reorder": True})
    client = client_for(api)
    ids = [create_intent(client, payment_method="pm_card_visa", confirm=True).id for _ in range(6)]
    wait_until(lambda: len(receiver.deliveries) == 6)
    delivered = [e["data"]["object"]["id"] for e in receiver.events()]
    assert sorted(delivered) == sorted(ids)


# --- fault injection ---------------------------------------------------------------------


def configure(api: str, **changes: Any) -> httpx.Response:
    return httpx.put(f"{api}/_config", json=changes)


def test_injected_server_errors_and_rate_limits_change_nothing(
    api: str, client: stripe.StripeClient
) -> None:
    assert configure(api, error_rate=1.0).status_code == 200
    failed = post(api, "/v1/payment_intents", {"amount": "2000", "currency": "usd"}, key="k-1")
    assert failed.status_code == 500
    assert failed.json()["error"]["type"] == "api_error"
    assert failed.headers["request-id"].startswith("req_")
    with pytest.raises(stripe.APIError):
        create_intent(client)

    configure(api, error_rate=0.0, rate_limit_rate=1.0)
    limited = post(api, "/v1/payment_intents", {"amount": "2000", "currency": "usd"}, key="k-1")
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limit"
    with pytest.raises(stripe.RateLimitError):
        create_intent(client)

    configure(api, rate_limit_rate=0.0)
    assert client.v1.payment_intents.list().data == []
    # The failed attempts saved nothing under their key: a retry executes.
    retried = post(api, "/v1/payment_intents", {"amount": "2000", "currency": "usd"}, key="k-1")
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers


def test_timeout_fault_processes_but_loses_the_answer(
    api: str, client: stripe.StripeClient
) -> None:
    # A long hold: the sandbox stops holding once the client hangs up, so the
    # server still shuts down at once after this test.
    configure(api, timeout_rate=1.0, timeout_hold_ms=20_000)
    data = {"amount": "2000", "currency": "usd", "payment_method": "pm_card_visa",
            "confirm": "true"}  # fmt: skip
    headers = {**AUTH, "Idempotency-Key": "lost-answer"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{api}/v1/payment_intents", headers=headers, data=data, timeout=0.2)

    configure(api, timeout_rate=0.0)
    [created] = client.v1.payment_intents.list().data
    assert created.status == "succeeded"
    retry = httpx.post(f"{api}/v1/payment_intents", headers=headers, data=data)
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == created.id


def test_latency_delays_answers(api: str) -> None:
    configure(api, latency_ms=150)
    started = time.monotonic()
    answer = httpx.get(f"{api}/v1/payment_intents", headers=AUTH)
    assert answer.status_code == 200
    assert time.monotonic() - started >= 0.15


def test_config_reads_back_and_rejects_bad_values(api: str) -> None:
    changed = configure(api, latency_ms=5, webhook_reorder=True)
    assert changed.status_code == 200
    assert changed.headers["request-id"].startswith("req_")
    current = httpx.get(f"{api}/_config").json()
    assert current == {
        "latency_ms": 5,
        "error_rate": 0.0,
        "rate_limit_rate": 0.0,
        "timeout_rate": 0.0,
        "timeout_hold_ms": 30000,
        "webhook_delay_ms": 0,
        "webhook_duplicate_rate": 0.0,
        "webhook_reorder": True,
    }
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"latency": 5}, "latency"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_rate": -0.1}, "error_rate"),
        ({"latency_ms": "fast"}, "latency_ms"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"webhook_reorder": 1}, "webhook_reorder"),
        ({"latency_ms": 10, "timeout_rate": True}, "timeout_rate"),
    ]
    for bad, mentions in refusals:
        refused = configure(api, **bad)
        assert refused.status_code == 400, bad
        assert mentions in refused.json()["error"]["message"]
    not_an_object = httpx.put(f"{api}/_config", content=b"[1, 2]")
    assert not_an_object.status_code == 400
    # A refused change changes nothing, not even its valid part.
    assert httpx.get(f"{api}/_config").json() == current


def test_seeded_faults_repeat_exactly() -> None:
    def statuses() -> list[int]:
        with running_sandbox(StripeSandboxSettings(seed=42)) as (_, api):
            configure(api, error_rate=0.5)
            return [
                httpx.get(f"{api}/v1/payment_intents", headers=AUTH).status_code for _ in range(16)
            ]

    first = statuses()
    assert set(first) == {200, 500}
    assert statuses() == first


def test_idempotency_keys_are_forgotten_after_their_lifetime() -> None:
    from paymesh.sandbox.stripe.idempotency import IdempotencyStore, request_fingerprint

    store = IdempotencyStore(ttl_seconds=0.05)
    same = request_fingerprint("POST", "/v1/refunds", {"amount": "100"})
    assert store.claim("k", same) is None
    store.save("k", 200, b"{}", "req_1")
    saved = store.claim("k", same)
    assert saved is not None and saved.status == 200
    time.sleep(0.06)
    assert store.claim("k", request_fingerprint("POST", "/v1/refunds", {"amount": "5"})) is None
    assert len(store) == 1


# --- memory bounds -----------------------------------------------------------------------


def test_each_keys_objects_are_bounded_oldest_forgotten_first() -> None:
    limits = MemoryLimits(accounts=10, objects=5, idempotency_keys=4)
    with running_sandbox(StripeSandboxSettings(limits=limits)) as (sandbox, api):
        client = client_for(api)
        made = [
            post(api, "/v1/payment_intents", {"amount": str(1000 + i), "currency": "usd",
                                              "payment_method": "pm_card_visa",
                                              "confirm": "true"}, key=f"order-{i}").json()["id"]
            for i in range(8)
        ]  # fmt: skip
        account = next(iter(sandbox.accounts._by_key.values()))
        assert len(account.payment_intents) == len(account.charges) == 5
        assert len(account.events) == 5 and len(account.idempotency) == 4
        assert [pi.id for pi in client.v1.payment_intents.list(params={"limit": 100})] == (
            made[::-1][:5]
        )
        # A forgotten PaymentIntent is gone as Stripe says it: 404 resource_missing.
        gone = httpx.get(f"{api}/v1/payment_intents/{made[0]}", headers=AUTH)
        assert gone.status_code == 404
        assert gone.json()["error"] == {
            "type": "invalid_request_error", "code": "resource_missing", "param": "intent",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
            "message": f"No such payment_intent: '{made[0]}'"}  # fmt: skip
        # A cursor on it is refused as an unknown object, not mis-paged.
        cursor = httpx.get(
            f"{api}/v1/payment_intents", headers=AUTH, params={"starting_after": made[0]}
        )
        assert (cursor.status_code, cursor.json()["error"]["param"]) == (400, "starting_after")
        # The newest idempotency keys still replay; the oldest were forgotten.
        replay = post(
            api,
            "/v1/payment_intents",
            {
                "amount": "1007",
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": "true",
            },
            key="order-7",
        )
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json()["id"] == made[7]
        reused = post(
            api, "/v1/payment_intents", {"amount": "500", "currency": "eur"}, key="order-0"
        )
        assert reused.status_code == 200 and "idempotent-replayed" not in reused.headers
        # The audit ledger shows what is kept, no more.
        ledger = httpx.get(f"{api}/_ledger").json()["payments"]
        assert len(ledger) == 5
        assert [row["psp_reference"] for row in ledger][-1] == reused.json()["id"]


def test_forgotten_three_d_secure_payments_leave_no_index_behind() -> None:
    limits = MemoryLimits(accounts=10, objects=3)
    with running_sandbox(StripeSandboxSettings(limits=limits)) as (sandbox, api):
        client = client_for(api)
        pages = [
            redirect_of(create_intent(client, payment_method="pm_card_threeDSecure2Required",
                                      confirm=True))[0]
            for _ in range(6)
        ]  # fmt: skip
        account = next(iter(sandbox.accounts._by_key.values()))
        assert len(sandbox.accounts.by_payment_intent) == len(account.authentications) == 3
        stale = httpx.post(pages[0], params={"outcome": "succeed"})
        assert stale.status_code == 404
        assert stale.json()["error"]["code"] == "resource_missing"
        assert httpx.post(pages[-1], params={"outcome": "succeed"}).status_code == 200


def test_accounts_beyond_the_cap_forget_the_least_recently_used() -> None:
    limits = MemoryLimits(accounts=3)
    with running_sandbox(StripeSandboxSettings(limits=limits)) as (sandbox, api):
        keys = [f"sk_test_rotated_{i}" for i in range(6)]
        developer = client_for(api, keys[0])
        first = create_intent(
            developer, payment_method="pm_card_threeDSecure2Required", confirm=True
        )
        for key in keys[1:]:  # an attacker rotating keys, while the developer works on
            create_intent(client_for(api, key))
            developer.v1.payment_intents.list()
        assert len(sandbox.accounts) == 3
        # The idle accounts were forgotten, oldest first; never the one in use.
        assert list(sandbox.accounts._by_key) == [keys[4], keys[5], keys[0]]
        assert developer.v1.payment_intents.retrieve(first.id).id == first.id
        # A forgotten key is welcome again, as a new empty account (not a 401).
        assert client_for(api, keys[1]).v1.payment_intents.list().data == []
        assert len(sandbox.accounts) == 3
        assert first.id in sandbox.accounts.by_payment_intent  # key 0 kept its 3DS page
