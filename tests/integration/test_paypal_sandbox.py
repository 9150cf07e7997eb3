"""The PayPal sandbox over real HTTP, mounted under /sandbox/paypal as `paymesh serve` mounts
it, and the PayPal connector's view of what it does.

Webhooks go to a real receiver (the inbox) and are checked three ways: by the connector
offline, against the sandbox's certificate; by the sandbox's verify-webhook-signature
endpoint; and, for a signature made with another key, by both refusing it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from paymesh.connectors.paypal import PayPalConnector, PayPalSettings
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest, PspError, WebhookEvent, WebhookRejected
from paymesh.sandbox.limits import MemoryLimits
from paymesh.sandbox.paypal import (
    ECHECK_DENIED,
    PayPalSandbox,
    PayPalSandboxSettings,
    SigningIdentity,
)
from paymesh.sandbox.paypal.signing import signed_message
from tests.support.live_server import live_server
from tests.support.webhook_inbox import WebhookInbox, webhook_inbox

S = PaymentStatus
CLIENT_ID = "paymesh-integration"
SECRET = "integration-secret"  # a sandbox test secret
WEBHOOK_ID = "WH-INTEGRATION"
# A shop on this machine: loopback is where the sandbox sends payers back by default.
RETURN_URL = "http://127.0.0.1:8080/paypal/return"


@dataclass
class Running:
    sandbox: PayPalSandbox
    base: str  # the sandbox's API base, mount prefix included


def parent_app(sandbox: PayPalSandbox) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await sandbox.start()
        try:
            yield
        finally:
            await sandbox.stop()

    return Starlette(routes=[Mount("/sandbox/paypal", app=sandbox.app)], lifespan=lifespan)


@pytest.fixture(scope="module")
def inbox() -> Iterator[WebhookInbox]:
    with webhook_inbox() as box:
        yield box


@pytest.fixture(scope="module")
def running(inbox: WebhookInbox) -> Iterator[Running]:
    sandbox = PayPalSandbox(
        PayPalSandboxSettings(
            webhook_url=inbox.url,
            webhook_id=WEBHOOK_ID,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            seed=11,
            echeck_delay_ms=50,
        )
    )
    with live_server(parent_app(sandbox)) as base:
        yield Running(sandbox, f"{base}/sandbox/paypal")


def get_token(base: str, client_id: str = CLIENT_ID, secret: str = SECRET) -> str:
    response = httpx.post(
        f"{base}/v1/oauth2/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def api(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=running.base,
        timeout=10,
        headers={"Authorization": f"Bearer {get_token(running.base)}"},
    ) as client:
        yield client


#: Sets the sandbox's injected faults for one test; the fixture clears them after it.
Faults = Callable[[dict[str, Any]], None]


@pytest.fixture
def set_faults(running: Running) -> Iterator[Faults]:
    def apply(config: dict[str, Any]) -> None:
        assert httpx.put(f"{running.base}/_config", json=config).status_code == 200

    yield apply
    apply(
        {
            "error_rate": 0.0,
            "rate_limit_rate": 0.0,
            "timeout_rate": 0.0,
            "latency_ms": 0,
            "timeout_hold_ms": 30_000,
            "webhook_duplicate_rate": 0.0,
        }
    )


def connector_for(running: Running, **overrides: Any) -> PayPalConnector:
    settings: dict[str, Any] = {
        "api_base": running.base,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "webhook_id": WEBHOOK_ID,
        "trusted_cert_pem": running.sandbox.certificate_pem,
        "timeout_seconds": 5,
        "return_url": RETURN_URL,
        **overrides,
    }
    return PayPalConnector(PayPalSettings(**settings))


@pytest.fixture
async def connector(running: Running) -> AsyncIterator[PayPalConnector]:
    c = connector_for(running)
    yield c
    await c.aclose()


_counter = iter(range(1, 1_000_000))


def authorize_request(
    method: str, amount: int = 2000, capture: str = "automatic", currency: str = "usd"
) -> AuthorizeRequest:
    pid = f"pay_it{next(_counter)}"
    return AuthorizeRequest(
        payment_id=pid,
        amount=amount,
        currency=currency,
        payment_method=method,
        capture_method=capture,
        customer_id="cus_it",
        idempotency_key=f"paymesh:{pid}:authorize:1",
    )


def order_body(
    amount: str = "20.00",
    currency: str = "USD",
    intent: str = "CAPTURE",
    source: dict[str, Any] | None = None,
    custom_id: str = "pay_x",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "intent": intent,
        "purchase_units": [
            {"custom_id": custom_id, "amount": {"currency_code": currency, "value": amount}}
        ],
    }
    if source is not None:
        body["payment_source"] = source
    return body


def card(token: str = "pm_card_visa") -> dict[str, Any]:
    return {"card": {"vault_id": token}}


_request_ids = iter(range(1, 1_000_000))


def post(
    api: httpx.Client,
    path: str,
    body: dict[str, Any] | None = None,
    request_id: str | None = "auto",
    representation: bool = True,
) -> httpx.Response:
    headers = {"Prefer": "return=representation"} if representation else {}
    if request_id == "auto":
        request_id = f"it-{next(_request_ids)}"
    if request_id is not None:
        headers["PayPal-Request-Id"] = request_id
    return api.post(path, json=body or {}, headers=headers)


def unit_payments(order: dict[str, Any]) -> dict[str, Any]:
    return dict(order["purchase_units"][0].get("payments") or {})


def link(obj: dict[str, Any], rel: str) -> str:
    [href] = [x["href"] for x in obj["links"] if x["rel"] == rel]
    return str(href)


async def webhook_of(
    inbox: WebhookInbox, event_type: str, resource_id: str
) -> tuple[dict[str, str], bytes, dict[str, Any]]:
    """The first delivery of `event_type` whose body names `resource_id`."""
    needle = resource_id.encode()

    def match(_headers: dict[str, str], body: bytes) -> bool:
        return needle in body and msgspec.json.decode(body)["event_type"] == event_type

    headers, body = await inbox.wait_for(match)
    return headers, body, msgspec.json.decode(body)


async def visit(url: str) -> httpx.Response:
    """What the payer's browser does with a redirect_url: one GET, redirects not followed."""
    async with httpx.AsyncClient(timeout=10) as browser:
        return await browser.get(url)


def parse(connector: PayPalConnector, headers: dict[str, str], body: bytes) -> WebhookEvent:
    [event] = connector.parse_webhook(headers, body, datetime.now(UTC))
    return event


# -- OAuth --------------------------------------------------------------------------------


def test_every_call_needs_a_token_from_the_client_credentials(running: Running) -> None:
    base = running.base
    response = httpx.post(
        f"{base}/v1/oauth2/token",
        auth=(CLIENT_ID, SECRET),
        data={"grant_type": "client_credentials"},
    )
    assert response.status_code == 200
    issued = response.json()
    assert (issued["token_type"], issued["expires_in"]) == ("Bearer", 32400)
    assert issued["access_token"].startswith("A21AA")

    wrong = httpx.post(
        f"{base}/v1/oauth2/token",
        auth=(CLIENT_ID, "nope"),
        data={"grant_type": "client_credentials"},
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    grant = httpx.post(
        f"{base}/v1/oauth2/token", auth=(CLIENT_ID, SECRET), data={"grant_type": "password"}
    )
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")

    anonymous = httpx.get(f"{base}/v2/checkout/orders/X")
    assert (anonymous.status_code, anonymous.json()["name"]) == (401, "AUTHENTICATION_FAILURE")
    forged = httpx.get(
        f"{base}/v2/checkout/orders/X", headers={"Authorization": "Bearer A21AAforged"}
    )
    assert (forged.status_code, forged.json()["error"]) == (401, "invalid_token")
    known = httpx.get(
        f"{base}/v2/checkout/orders/X",
        headers={"Authorization": f"Bearer {issued['access_token']}"},
    )
    assert (known.status_code, known.json()["name"]) == (404, "RESOURCE_NOT_FOUND")
    assert known.json()["debug_id"] == known.headers["paypal-debug-id"]


async def test_the_connector_replaces_a_token_paypal_dropped(
    running: Running, connector: PayPalConnector
) -> None:
    first = await connector.authorize(authorize_request("pm_card_visa"))
    running.sandbox.tokens.expire_all()  # PayPal forgets every token: the next call gets 401
    second = await connector.authorize(authorize_request("pm_card_visa", 3100))
    assert (first.status, second.status, second.amount_received) == (S.SUCCEEDED, S.SUCCEEDED, 3100)
    assert await connector.retrieve(str(first.connector_payment_id)) == first


async def test_wrong_credentials_are_a_permanent_error(running: Running) -> None:
    c = connector_for(running, client_secret="wrong")
    try:
        with pytest.raises(PspError) as info:
            await c.authorize(authorize_request("pm_card_visa"))
        assert (
            info.value.http_status,
            info.value.code,
            info.value.retryable,
            info.value.outcome_unknown,
        ) == (401, "invalid_client", False, False)
    finally:
        await c.aclose()


async def test_each_client_id_is_its_own_merchant(inbox: WebhookInbox) -> None:
    open_sandbox = PayPalSandbox(PayPalSandboxSettings(webhook_url=inbox.url))
    with live_server(open_sandbox.app) as base:
        first, second = get_token(base, "app-one", "s1"), get_token(base, "app-two", "s2")
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:

            async def as_app(
                token: str, method: str, url: str, request_id: str | None = None
            ) -> httpx.Response:
                headers = {"Authorization": f"Bearer {token}"}
                if request_id:
                    headers["PayPal-Request-Id"] = request_id
                body = order_body(source=card()) if method == "POST" else None
                return await client.request(method, url, json=body, headers=headers)

            created = await as_app(first, "POST", "/v2/checkout/orders", "shared-id")
            assert created.status_code == 201
            order_id = created.json()["id"]
            seen = [
                (await as_app(t, "GET", f"/v2/checkout/orders/{order_id}")).status_code
                for t in (first, second)
            ]
            assert seen == [200, 404]
            _, _, event = await webhook_of(inbox, "PAYMENT.CAPTURE.COMPLETED", order_id)
            events = [
                (await as_app(t, "GET", link(event, "self"))).status_code for t in (first, second)
            ]
            assert events == [200, 404]
            # Request ids are the merchant's own: for another app the same id is a new request.
            other = await as_app(second, "POST", "/v2/checkout/orders", "shared-id")
            assert other.status_code == 201 and other.json()["id"] != order_id


# -- cards ----------------------------------------------------------------------------------


def test_a_vaulted_card_is_charged_in_the_create_call(api: httpx.Client) -> None:
    created = post(
        api, "/v2/checkout/orders", order_body("20.00", custom_id="pay_c1", source=card())
    )
    assert created.status_code == 201
    order = created.json()
    assert (order["status"], order["intent"]) == ("COMPLETED", "CAPTURE")
    assert order["payment_source"]["card"] == {
        "last_digits": "4242",
        "expiry": "2034-12",
        "brand": "VISA",
        "type": "CREDIT",
    }
    [capture] = unit_payments(order)["captures"]
    assert (
        capture["status"],
        capture["amount"],
        capture["custom_id"],
        capture["processor_response"]["response_code"],
    ) == ("COMPLETED", {"currency_code": "USD", "value": "20.00"}, "pay_c1", "0000")
    assert link(order, "self") == f"{api.base_url}v2/checkout/orders/{order['id']}"
    shown = api.get(f"/v2/payments/captures/{capture['id']}").json()
    assert shown["supplementary_data"]["related_ids"] == {"order_id": order["id"]}
    assert api.get(f"/v2/checkout/orders/{order['id']}").json() == order


def test_without_prefer_the_create_answer_is_minimal(api: httpx.Client) -> None:
    created = post(api, "/v2/checkout/orders", order_body(source=card()), representation=False)
    assert created.status_code == 201
    assert set(created.json()) == {"id", "status", "links"}


def test_a_declined_card_is_a_declined_capture_not_an_error(api: httpx.Client) -> None:
    created = post(
        api, "/v2/checkout/orders", order_body(source=card("pm_card_chargeDeclinedExpiredCard"))
    )
    assert created.status_code == 201
    order = created.json()
    [capture] = unit_payments(order)["captures"]
    assert (order["status"], capture["status"], capture["processor_response"]) == (
        "COMPLETED",
        "DECLINED",
        {"avs_code": "G", "cvv_code": "P", "response_code": "5400"},
    )


def test_create_refusals_look_like_paypals(api: httpx.Client) -> None:
    cases: list[tuple[dict[str, Any], str | None, int, str]] = [
        (order_body(source=card()), None, 400, "PAYPAL_REQUEST_ID_REQUIRED"),
        (order_body(source=card("pm_card_nope")), "auto", 422, "TOKEN_ID_NOT_FOUND"),
        (order_body("20.001"), "auto", 422, "DECIMAL_PRECISION"),
        (order_body("100.5", "JPY"), "auto", 422, "DECIMALS_NOT_SUPPORTED"),
        (order_body("1.234", "KWD"), "auto", 422, "CURRENCY_NOT_SUPPORTED"),
        (order_body("twenty"), "auto", 400, "INVALID_PARAMETER_SYNTAX"),
        ({"purchase_units": []}, "auto", 400, "MISSING_REQUIRED_PARAMETER"),
        (order_body(intent="SALE"), "auto", 400, "INVALID_PARAMETER_VALUE"),
    ]
    for body, request_id, status, issue in cases:
        response = post(api, "/v2/checkout/orders", body, request_id)
        assert (response.status_code, response.json()["details"][0]["issue"]) == (status, issue), (
            body
        )
    broken = api.post(
        "/v2/checkout/orders", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (broken.status_code, broken.json()["details"][0]["issue"]) == (
        400,
        "MALFORMED_REQUEST_JSON",
    )


# -- PayPal-Request-Id ---------------------------------------------------------------------


def test_a_request_id_replays_the_order_in_its_latest_state(api: httpx.Client) -> None:
    wallet = {"paypal": {"experience_context": {"return_url": RETURN_URL}}}
    first = post(api, "/v2/checkout/orders", order_body("12.00", source=wallet), "replay-1")
    assert (first.status_code, first.json()["status"]) == (201, "PAYER_ACTION_REQUIRED")
    order_id = first.json()["id"]
    assert httpx.get(link(first.json(), "payer-action")).status_code == 302  # buyer approves

    # Same id, other amount: PayPal does not read the body, it answers with the first order.
    again = post(api, "/v2/checkout/orders", order_body("99.00", source=wallet), "replay-1")
    assert again.status_code == 200
    assert (
        again.json()["id"],
        again.json()["status"],
        again.json()["purchase_units"][0]["amount"]["value"],
    ) == (order_id, "APPROVED", "12.00")
    other = post(api, "/v2/checkout/orders", order_body("12.00", source=wallet), "replay-2")
    assert other.status_code == 201 and other.json()["id"] != order_id

    # The same id on another call type is another request.
    captured = post(api, f"/v2/checkout/orders/{order_id}/capture", None, "replay-1")
    assert (captured.status_code, captured.json()["status"]) == (201, "COMPLETED")
    replayed = post(api, f"/v2/checkout/orders/{order_id}/capture", None, "replay-1")
    assert replayed.status_code == 200
    assert unit_payments(replayed.json())["captures"] == unit_payments(captured.json())["captures"]


def test_a_failed_request_leaves_its_id_free(api: httpx.Client) -> None:
    refused = post(api, "/v2/checkout/orders", order_body("1.00", "KWD", source=card()), "free-1")
    assert refused.status_code == 422
    accepted = post(api, "/v2/checkout/orders", order_body("1.00", source=card()), "free-1")
    assert accepted.status_code == 201


async def test_a_duplicate_in_flight_gets_409(running: Running, set_faults: Faults) -> None:
    set_faults({"latency_ms": 300})
    headers = {
        "Authorization": f"Bearer {get_token(running.base)}",
        "PayPal-Request-Id": "in-flight-1",
    }
    body = order_body(source=card())
    async with httpx.AsyncClient(base_url=running.base, headers=headers, timeout=10) as client:
        racing = await asyncio.gather(
            client.post("/v2/checkout/orders", json=body),
            client.post("/v2/checkout/orders", json=body),
        )
        assert sorted(r.status_code for r in racing) == [201, 409]
        conflict = next(r for r in racing if r.status_code == 409).json()
        assert (conflict["name"], conflict["details"][0]["issue"]) == (
            "RESOURCE_CONFLICT",
            "PREVIOUS_REQUEST_IN_PROGRESS",
        )
        done = await client.post("/v2/checkout/orders", json=body)
    created = next(r for r in racing if r.status_code == 201).json()
    assert (done.status_code, done.json()["id"]) == (200, created["id"])


async def test_after_a_timeout_the_same_key_finds_the_one_order(
    running: Running, set_faults: Faults
) -> None:
    set_faults({"timeout_rate": 1.0, "timeout_hold_ms": 3000})
    req = authorize_request("pm_card_visa", 4400)
    slow = connector_for(running, timeout_seconds=0.5)
    try:
        with pytest.raises(PspError) as info:
            await slow.authorize(req)
        assert (info.value.retryable, info.value.outcome_unknown) == (True, True)
        set_faults({"timeout_rate": 0.0})
        out = await slow.authorize(req)
    finally:
        await slow.aclose()
    assert (out.status, out.amount_received) == (S.SUCCEEDED, 4400)
    merchant = running.sandbox.merchants.get(CLIENT_ID)
    assert [o.id for o in merchant.orders.values() if o.custom_id == req.payment_id] == [
        out.connector_payment_id
    ]


def test_injected_faults_answer_with_paypals_bodies(api: httpx.Client, set_faults: Faults) -> None:
    set_faults({"error_rate": 1.0})
    failed = post(api, "/v2/checkout/orders", order_body(source=card()), "fault-1")
    assert (failed.status_code, failed.json()["name"]) == (500, "INTERNAL_SERVER_ERROR")
    set_faults({"error_rate": 0.0, "rate_limit_rate": 1.0})
    limited = post(api, "/v2/checkout/orders", order_body(source=card()), "fault-1")
    assert (limited.status_code, limited.json()["name"]) == (429, "RATE_LIMIT_REACHED")
    set_faults({"rate_limit_rate": 0.0})
    # Neither touched the request id: it is still free.
    assert post(api, "/v2/checkout/orders", order_body(source=card()), "fault-1").status_code == 201
    assert api.get("/_config").json()["rate_limit_rate"] == 0.0


# -- the payer: PayPal approval and 3-D Secure ---------------------------------------------


def test_the_buyer_approves_at_the_link_and_the_merchant_captures(api: httpx.Client) -> None:
    wallet = {
        "paypal": {
            "experience_context": {"return_url": RETURN_URL, "cancel_url": RETURN_URL + "?cancel=1"}
        }
    }
    order = post(api, "/v2/checkout/orders", order_body("35.50", source=wallet)).json()
    assert order["status"] == "PAYER_ACTION_REQUIRED"
    early = post(api, f"/v2/checkout/orders/{order['id']}/capture")
    assert (early.status_code, early.json()["details"][0]["issue"]) == (422, "ORDER_NOT_APPROVED")

    approve = link(order, "payer-action")
    assert approve.startswith(f"{api.base_url}checkoutnow?token=")
    canceled = httpx.get(approve + "&outcome=cancel")
    assert canceled.status_code == 302
    assert canceled.headers["location"] == f"{RETURN_URL}?cancel=1&token={order['id']}"
    assert api.get(f"/v2/checkout/orders/{order['id']}").json()["status"] == "PAYER_ACTION_REQUIRED"

    approved = httpx.get(approve)
    assert approved.status_code == 302
    back = urlsplit(approved.headers["location"])
    query = parse_qs(back.query)
    assert (f"{back.scheme}://{back.netloc}{back.path}", query["token"]) == (
        RETURN_URL,
        [order["id"]],
    )
    shown = api.get(f"/v2/checkout/orders/{order['id']}").json()
    assert shown["status"] == "APPROVED"
    assert shown["payer"]["payer_id"] == query["PayerID"][0]

    captured = post(api, f"/v2/checkout/orders/{order['id']}/capture")
    assert captured.status_code == 201
    [capture] = unit_payments(captured.json())["captures"]
    assert (captured.json()["status"], capture["status"], capture["amount"]["value"]) == (
        "COMPLETED",
        "COMPLETED",
        "35.50",
    )
    twice = post(api, f"/v2/checkout/orders/{order['id']}/capture")
    assert (twice.status_code, twice.json()["details"][0]["issue"]) == (
        422,
        "ORDER_ALREADY_CAPTURED",
    )


def test_an_order_without_a_payment_source_waits_at_its_approve_link(api: httpx.Client) -> None:
    order = post(api, "/v2/checkout/orders", order_body("5.00", intent="AUTHORIZE"), None).json()
    assert order["status"] == "CREATED"
    assert httpx.get(link(order, "approve")).json() == {"id": order["id"], "status": "APPROVED"}
    wrong = post(api, f"/v2/checkout/orders/{order['id']}/capture")
    assert (wrong.status_code, wrong.json()["details"][0]["issue"]) == (
        422,
        "ACTION_DOES_NOT_MATCH_INTENT",
    )
    authorized = post(api, f"/v2/checkout/orders/{order['id']}/authorize").json()
    [auth] = unit_payments(authorized)["authorizations"]
    assert (authorized["status"], auth["status"], auth["amount"]["value"]) == (
        "COMPLETED",
        "CREATED",
        "5.00",
    )


def wallet_order(
    api: httpx.Client,
    return_url: str,
    cancel_url: str | None = None,
) -> dict[str, Any]:
    context = {"return_url": return_url, **({"cancel_url": cancel_url} if cancel_url else {})}
    order = post(
        api, "/v2/checkout/orders", order_body(source={"paypal": {"experience_context": context}})
    )
    assert order.status_code == 201, order.text
    return dict(order.json())


@pytest.mark.parametrize("return_url", [
    "https://evil.example/phish",
    "https://127.0.0.1@evil.example/",  # user info: the browser goes to evil.example
    "ftp://127.0.0.1/return",
])  # fmt: skip
def test_the_payer_pages_never_redirect_off_the_allowed_hosts(
    api: httpx.Client, return_url: str
) -> None:
    order = wallet_order(api, return_url, cancel_url=return_url)
    canceled = httpx.get(link(order, "payer-action") + "&outcome=cancel")
    assert (canceled.status_code, "location" in canceled.headers) == (200, False)
    assert canceled.json() == {
        "id": order["id"],
        "status": "PAYER_ACTION_REQUIRED",
        "return_url_followed": False,
    }
    approved = httpx.get(link(order, "payer-action"))
    assert (approved.status_code, "location" in approved.headers) == (200, False)
    assert approved.json() == {
        "id": order["id"],
        "status": "APPROVED",
        "return_url_followed": False,
    }
    # The card's 3-D Secure page follows the same rule.
    body = order_body(
        source={
            "card": {
                "vault_id": "pm_card_threeDSecure2Required",
                "experience_context": {"return_url": return_url},
            }
        }
    )
    carded = post(api, "/v2/checkout/orders", body).json()
    verified = httpx.get(link(carded, "payer-action"))
    assert (verified.status_code, verified.json()["return_url_followed"]) == (200, False)


def test_the_payer_pages_follow_the_configured_hosts_only() -> None:
    sandbox = PayPalSandbox(PayPalSandboxSettings(return_url_hosts=("shop.example",)))
    with (
        live_server(sandbox.app) as base,
        httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {get_token(base, 'app', 's')}"}
        ) as api,
    ):
        order = wallet_order(api, "https://shop.example/return?cart=9")
        approved = httpx.get(link(order, "payer-action"))
        assert approved.status_code == 302
        assert approved.headers["location"].startswith(
            f"https://shop.example/return?cart=9&token={order['id']}&PayerID="
        )
        for elsewhere in (RETURN_URL, "https://shop.example.evil.example/"):
            refused = httpx.get(link(wallet_order(api, elsewhere), "payer-action"))
            assert (refused.status_code, refused.json()["return_url_followed"]) == (200, False)


@pytest.mark.parametrize("bad", [
    "javascript:alert(document.cookie)", "data:text/html,<script>alert(1)</script>",
    "//evil.example/phish", "/return", "shop.example/return", "https:///no-host",
])  # fmt: skip
def test_a_return_url_paypal_would_not_take_is_refused_up_front(
    api: httpx.Client, bad: str
) -> None:
    for name in ("return_url", "cancel_url"):
        context = {"return_url": RETURN_URL, "cancel_url": RETURN_URL, name: bad}
        refused = post(
            api,
            "/v2/checkout/orders",
            order_body(source={"paypal": {"experience_context": context}}),
        )
        assert refused.status_code == 400
        assert refused.json()["name"] == "INVALID_REQUEST"
        assert refused.json()["details"] == [
            {
                "field": f"/payment_source/paypal/experience_context/{name}",
                "value": bad,
                "location": "body",
                "issue": "INVALID_PARAMETER_SYNTAX",
                "description": "The value of a field does not conform to the expected format.",
            }
        ]


async def test_a_wallet_payment_through_the_connector(
    connector: PayPalConnector, inbox: WebhookInbox, running: Running
) -> None:
    out = await connector.authorize(authorize_request("paypal", 6400))
    assert out.status == S.REQUIRES_ACTION and out.next_action is not None
    order_id = str(out.connector_payment_id)
    assert (await visit(out.next_action["redirect_url"])).status_code == 302

    headers, body, _ = await webhook_of(inbox, "CHECKOUT.ORDER.APPROVED", order_id)
    approved = parse(connector, headers, body)
    assert approved.outcome is not None
    assert (approved.connector_payment_id, approved.outcome.status) == (order_id, S.PROCESSING)

    # The sync job's question completes the approved order, once, however often it is asked.
    done = await connector.retrieve(order_id)
    assert (done.status, done.amount_received) == (S.SUCCEEDED, 6400)
    assert await connector.retrieve(order_id) == done
    order = running.sandbox.merchants.get(CLIENT_ID).order(order_id)
    assert len(order.captures) == 1


async def test_three_d_secure_then_the_sync_captures(connector: PayPalConnector) -> None:
    out = await connector.authorize(authorize_request("pm_card_threeDSecure2Required", 2700))
    assert out.status == S.REQUIRES_ACTION and out.next_action is not None
    page = out.next_action["redirect_url"]
    assert "/sandbox/paypal/webapps/helios?action=verify&flow=3ds&cart_id=" in page
    assert await connector.retrieve(str(out.connector_payment_id)) == out  # not yet
    back = await visit(page)
    assert back.status_code == 302
    assert parse_qs(urlsplit(back.headers["location"]).query)["liability_shift"] == ["POSSIBLE"]
    done = await connector.retrieve(str(out.connector_payment_id))
    assert (done.status, done.amount_received) == (S.SUCCEEDED, 2700)


async def test_a_failed_three_d_secure_is_never_captured(
    connector: PayPalConnector, running: Running
) -> None:
    out = await connector.authorize(authorize_request("pm_card_threeDSecure2Required", 2800))
    assert out.next_action is not None
    assert (await visit(out.next_action["redirect_url"] + "&outcome=fail")).status_code == 302
    failed = await connector.retrieve(str(out.connector_payment_id))
    assert failed.status == S.FAILED
    assert failed.failure is not None and failed.failure.code == "authentication_failed"
    order = running.sandbox.merchants.get(CLIENT_ID).order(str(out.connector_payment_id))
    assert (order.status, order.captures) == ("APPROVED", [])


# -- authorizations and captures -------------------------------------------------------------


def _authorized(api: httpx.Client, value: str = "50.00") -> tuple[str, str]:
    order = post(
        api, "/v2/checkout/orders", order_body(value, intent="AUTHORIZE", source=card())
    ).json()
    [auth] = unit_payments(order)["authorizations"]
    assert (order["status"], auth["status"]) == ("COMPLETED", "CREATED")
    return order["id"], auth["id"]


def test_partial_captures_up_to_the_authorization(api: httpx.Client) -> None:
    order_id, auth_id = _authorized(api)
    path = f"/v2/payments/authorizations/{auth_id}/capture"
    usd = {"currency_code": "USD", "value": "30.00"}
    first = post(api, path, {"amount": usd})
    assert first.status_code == 201
    assert (first.json()["status"], first.json()["amount"], first.json()["final_capture"]) == (
        "COMPLETED",
        usd,
        False,
    )
    assert first.json()["supplementary_data"]["related_ids"] == {
        "order_id": order_id,
        "authorization_id": auth_id,
    }
    assert (
        api.get(f"/v2/payments/authorizations/{auth_id}").json()["status"] == "PARTIALLY_CAPTURED"
    )

    refusals = [
        ({"amount": {"currency_code": "USD", "value": "20.01"}}, "MAX_CAPTURE_AMOUNT_EXCEEDED"),
        ({"amount": {"currency_code": "EUR", "value": "1.00"}}, "AUTH_CAPTURE_CURRENCY_MISMATCH"),
    ]
    for body, issue in refusals:
        refused = post(api, path, body)
        assert (refused.status_code, refused.json()["details"][0]["issue"]) == (422, issue)

    rest = post(api, path, {"final_capture": True})  # no amount: what is left
    assert (rest.status_code, rest.json()["amount"]["value"]) == (201, "20.00")
    assert api.get(f"/v2/payments/authorizations/{auth_id}").json()["status"] == "CAPTURED"
    for path_, issue in [
        (path, "AUTHORIZATION_ALREADY_CAPTURED"),
        (f"/v2/payments/authorizations/{auth_id}/void", "PREVIOUSLY_CAPTURED"),
    ]:
        refused = post(api, path_, {})
        assert (refused.status_code, refused.json()["details"][0]["issue"]) == (422, issue)
    captures = unit_payments(api.get(f"/v2/checkout/orders/{order_id}").json())["captures"]
    assert [c["amount"]["value"] for c in captures] == ["30.00", "20.00"]


def test_a_void_releases_the_authorization(api: httpx.Client) -> None:
    _, auth_id = _authorized(api, "9.00")
    voided = post(api, f"/v2/payments/authorizations/{auth_id}/void", representation=False)
    assert (voided.status_code, voided.content) == (204, b"")
    assert api.get(f"/v2/payments/authorizations/{auth_id}").json()["status"] == "VOIDED"
    for action, issue in [("void", "PREVIOUSLY_VOIDED"), ("capture", "AUTHORIZATION_VOIDED")]:
        refused = post(api, f"/v2/payments/authorizations/{auth_id}/{action}")
        assert (refused.status_code, refused.json()["details"][0]["issue"]) == (422, issue)


def test_refunds_add_up_to_at_most_the_capture(api: httpx.Client) -> None:
    order = post(api, "/v2/checkout/orders", order_body("30.00", source=card())).json()
    capture_id = unit_payments(order)["captures"][0]["id"]
    path = f"/v2/payments/captures/{capture_id}/refund"
    first = post(
        api,
        path,
        {
            "amount": {"currency_code": "USD", "value": "10.00"},
            "custom_id": "re_1",
            "invoice_id": "re_1",
        },
    )
    assert first.status_code == 201
    refund = first.json()
    assert (refund["status"], refund["amount"]["value"], refund["custom_id"]) == (
        "COMPLETED",
        "10.00",
        "re_1",
    )
    assert link(refund, "up").endswith(f"/v2/payments/captures/{capture_id}")
    assert api.get(f"/v2/payments/refunds/{refund['id']}").json()["id"] == refund["id"]
    assert api.get(f"/v2/payments/captures/{capture_id}").json()["status"] == "PARTIALLY_REFUNDED"

    for body, issue in [
        ({"amount": {"currency_code": "USD", "value": "20.01"}}, "REFUND_AMOUNT_EXCEEDED"),
        ({"amount": {"currency_code": "EUR", "value": "1.00"}}, "REFUND_CAPTURE_CURRENCY_MISMATCH"),
    ]:
        refused = post(api, path, body)
        assert (refused.status_code, refused.json()["details"][0]["issue"]) == (422, issue)
    rest = post(api, path, {})
    assert (rest.status_code, rest.json()["amount"]["value"]) == (201, "20.00")
    assert api.get(f"/v2/payments/captures/{capture_id}").json()["status"] == "REFUNDED"
    done = post(api, path, {})
    assert (done.status_code, done.json()["details"][0]["issue"]) == (422, "CAPTURE_FULLY_REFUNDED")
    declined = post(
        api, "/v2/checkout/orders", order_body(source=card("pm_card_chargeDeclined"))
    ).json()
    not_captured = post(
        api, f"/v2/payments/captures/{unit_payments(declined)['captures'][0]['id']}/refund"
    )
    assert not_captured.json()["details"][0]["issue"] == "REFUND_NOT_ALLOWED"


async def test_manual_capture_void_and_refund_through_the_connector(
    connector: PayPalConnector,
) -> None:
    auth = await connector.authorize(authorize_request("pm_card_visa", 8000, "manual"))
    assert (auth.status, auth.amount_capturable) == (S.REQUIRES_CAPTURE, 8000)
    ref = str(auth.connector_payment_id)
    captured = await connector.capture(ref, 5000, f"paymesh:{ref}:capture")
    assert (captured.status, captured.amount_received) == (S.SUCCEEDED, 5000)
    # A capture asked again with another key finds the authorization already captured.
    again = await connector.capture(ref, 5000, "another-key")
    assert (again.status, again.amount_received) == (S.SUCCEEDED, 5000)
    assert (await connector.cancel(ref, "cancel-late")).status == S.SUCCEEDED

    refunded = await connector.refund(ref, 5000, "re_all", "requested_by_customer", "re-all")
    assert (refunded.succeeded, bool(refunded.connector_refund_id)) == (True, True)
    nothing_left = await connector.refund(ref, 1, "re_more", None, "re-more")
    assert (nothing_left.succeeded, nothing_left.failure_reason) == (
        False,
        "CAPTURE_FULLY_REFUNDED",
    )

    other = await connector.authorize(authorize_request("pm_card_visa", 1200, "manual"))
    canceled = await connector.cancel(str(other.connector_payment_id), "cancel-1")
    assert canceled.status == S.CANCELED
    assert (
        await connector.cancel(str(other.connector_payment_id), "cancel-2")
    ).status == S.CANCELED
    assert (await connector.retrieve(str(other.connector_payment_id))).status == S.CANCELED


async def test_amounts_in_other_currencies(connector: PayPalConnector) -> None:
    yen = await connector.authorize(authorize_request("pm_card_visa", 1500, currency="jpy"))
    assert (yen.status, yen.amount_received) == (S.SUCCEEDED, 1500)
    with pytest.raises(PspError) as info:
        await connector.authorize(authorize_request("pm_card_visa", 1234, currency="kwd"))
    assert (info.value.http_status, info.value.code, info.value.retryable) == (
        422,
        "CURRENCY_NOT_SUPPORTED",
        False,
    )
    with pytest.raises(PspError) as info:
        await connector.authorize(authorize_request("pm_card_visa", 150050, currency="huf"))
    assert (info.value.code, info.value.retryable) == ("amount_not_representable", False)


# -- webhooks -------------------------------------------------------------------------------


async def test_each_webhook_type_is_signed_and_translated(
    connector: PayPalConnector, inbox: WebhookInbox, running: Running
) -> None:
    paid = await connector.authorize(authorize_request("pm_card_createDispute", 2300))
    order_id = str(paid.connector_payment_id)
    pay_id = running.sandbox.merchants.get(CLIENT_ID).order(order_id).custom_id

    headers, body, event = await webhook_of(inbox, "PAYMENT.CAPTURE.COMPLETED", order_id)
    assert event["id"].startswith("WH-")
    assert (event["event_version"], event["resource_type"], event["summary"]) == (
        "1.0",
        "capture",
        "Payment completed for 23.00 USD",
    )
    assert event["resource"]["supplementary_data"]["related_ids"]["order_id"] == order_id
    assert event["resource"]["custom_id"] == pay_id
    assert headers["paypal-auth-algo"] == "SHA256withRSA"
    assert headers["paypal-cert-url"] == f"{running.base}{running.sandbox.cert_path}"
    assert (await visit(headers["paypal-cert-url"])).content == running.sandbox.certificate_pem
    async with httpx.AsyncClient(timeout=10) as client:
        mine = await client.get(
            link(event, "self"), headers={"Authorization": f"Bearer {get_token(running.base)}"}
        )
    assert (mine.status_code, mine.content) == (200, body)  # the event, byte for byte
    completed = parse(connector, headers, body)
    assert completed.outcome is not None
    assert (
        completed.psp_event_id,
        completed.payment_id,
        completed.connector_payment_id,
        completed.outcome.status,
        completed.outcome.amount_received,
    ) == (event["id"], pay_id, order_id, S.SUCCEEDED, 2300)

    capture_id = event["resource"]["id"]
    headers, body, event = await webhook_of(inbox, "CUSTOMER.DISPUTE.CREATED", capture_id)
    dispute = parse(connector, headers, body)
    assert (dispute.payment_id, dispute.dispute) == (
        pay_id,
        (event["resource"]["dispute_id"], 2300, "fraudulent"),
    )

    refund = await connector.refund(order_id, 800, "re_hook", None, "re-hook")
    headers, body, _ = await webhook_of(
        inbox, "PAYMENT.CAPTURE.REFUNDED", str(refund.connector_refund_id)
    )
    refunded = parse(connector, headers, body)
    assert refunded.refund is not None
    assert (
        refunded.connector_payment_id,
        refunded.refund.refund_id,
        refunded.refund.amount,
        refunded.refund.succeeded,
    ) == (order_id, "re_hook", 800, True)

    declined = await connector.authorize(authorize_request("pm_card_chargeDeclinedFraudulent"))
    headers, body, _ = await webhook_of(
        inbox, "PAYMENT.CAPTURE.DECLINED", str(declined.connector_payment_id)
    )
    denial = parse(connector, headers, body)
    assert denial.outcome is not None and denial.outcome.failure is not None
    assert (denial.outcome.status, denial.outcome.failure.decline_code) == (S.FAILED, "fraudulent")

    manual = await connector.authorize(authorize_request("pm_card_visa", 4100, "manual"))
    manual_id = str(manual.connector_payment_id)
    headers, body, _ = await webhook_of(inbox, "PAYMENT.AUTHORIZATION.CREATED", manual_id)
    created = parse(connector, headers, body)
    assert created.outcome is not None
    assert (created.outcome.status, created.outcome.amount_capturable) == (S.REQUIRES_CAPTURE, 4100)
    await connector.cancel(manual_id, "void-hook")
    headers, body, _ = await webhook_of(inbox, "PAYMENT.AUTHORIZATION.VOIDED", manual_id)
    voided = parse(connector, headers, body)
    assert voided.outcome is not None and voided.outcome.status == S.CANCELED


async def test_an_echeck_is_pending_then_denied(
    connector: PayPalConnector, inbox: WebhookInbox
) -> None:
    out = await connector.authorize(authorize_request(f"paypal:{ECHECK_DENIED}", 9900))
    assert out.next_action is not None
    order_id = str(out.connector_payment_id)
    assert (await visit(out.next_action["redirect_url"])).status_code == 302
    pending = await connector.retrieve(order_id)  # completes: the capture is PENDING
    assert pending.status == S.PROCESSING
    headers, body, _ = await webhook_of(inbox, "PAYMENT.CAPTURE.PENDING", order_id)
    held = parse(connector, headers, body).outcome
    assert held is not None and held.status == S.PROCESSING
    headers, body, _ = await webhook_of(inbox, "PAYMENT.CAPTURE.DENIED", order_id)
    denied = parse(connector, headers, body)
    assert denied.outcome is not None and denied.outcome.failure is not None
    assert (denied.outcome.status, denied.outcome.failure.code) == (S.FAILED, "payment_denied")
    assert (await connector.retrieve(order_id)).status == S.FAILED


async def test_a_duplicate_delivery_is_the_same_event_in_a_new_transmission(
    connector: PayPalConnector, inbox: WebhookInbox, set_faults: Faults
) -> None:
    set_faults({"webhook_duplicate_rate": 1.0})
    paid = await connector.authorize(authorize_request("pm_card_visa", 2900))
    needle = str(paid.connector_payment_id).encode()
    await inbox.wait_for(lambda _h, b: needle in b and b'"PAYMENT.CAPTURE.COMPLETED"' in b)
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        copies = [(h, b) for h, b in inbox.received if needle in b]
        if len(copies) >= 2 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.02)
    (h1, b1), (h2, b2) = copies[:2]
    assert b1 == b2
    assert h1["paypal-transmission-id"] != h2["paypal-transmission-id"]
    assert parse(connector, h1, b1).psp_event_id == parse(connector, h2, b2).psp_event_id


def _verify_request(headers: dict[str, str], body: bytes, webhook_id: str = WEBHOOK_ID) -> bytes:
    # The event goes in byte for byte: PayPal's CRC32 is over the JSON as it was sent.
    fields = {
        "auth_algo": headers["paypal-auth-algo"],
        "cert_url": headers["paypal-cert-url"],
        "transmission_id": headers["paypal-transmission-id"],
        "transmission_sig": headers["paypal-transmission-sig"],
        "transmission_time": headers["paypal-transmission-time"],
        "webhook_id": webhook_id,
    }
    return msgspec.json.encode({**fields, "webhook_event": msgspec.Raw(body)})


def _offline(connector: PayPalConnector, headers: dict[str, str], body: bytes) -> str:
    try:
        connector.parse_webhook(headers, body, datetime.now(UTC))
    except WebhookRejected:
        return "FAILURE"
    return "SUCCESS"


async def test_the_verify_endpoint_agrees_with_the_offline_check(
    connector: PayPalConnector, inbox: WebhookInbox, running: Running
) -> None:
    paid = await connector.authorize(authorize_request("pm_card_visa", 3300))
    headers, body, _ = await webhook_of(
        inbox, "PAYMENT.CAPTURE.COMPLETED", str(paid.connector_payment_id)
    )
    sent = datetime.strptime(headers["paypal-transmission-time"], "%Y-%m-%dT%H:%M:%SZ")
    moved = (sent + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    forged_sig = SigningIdentity.generate().sign(
        signed_message(
            headers["paypal-transmission-id"], headers["paypal-transmission-time"], WEBHOOK_ID, body
        )
    )
    tampered = body.replace(b'"33.00"', b'"3.30"')
    assert tampered != body
    cases = [
        ("as sent", headers, body, "SUCCESS"),
        ("tampered body", headers, tampered, "FAILURE"),
        ("another key", {**headers, "paypal-transmission-sig": forged_sig}, body, "FAILURE"),
        (
            "another transmission time",
            {**headers, "paypal-transmission-time": moved},
            body,
            "FAILURE",
        ),
    ]
    path = "/v1/notifications/verify-webhook-signature"
    async with httpx.AsyncClient(
        base_url=running.base,
        timeout=10,
        headers={
            "Authorization": f"Bearer {get_token(running.base)}",
            "Content-Type": "application/json",
        },
    ) as paypal:

        async def status_of(request_body: bytes) -> str:
            answer = await paypal.post(path, content=request_body)
            assert answer.status_code == 200, answer.text
            return str(answer.json()["verification_status"])

        for name, h, b, expected in cases:
            assert (name, await status_of(_verify_request(h, b))) == (name, expected)
            assert (name, _offline(connector, h, b)) == (name, expected)

        # Sent to another webhook: the webhook id is in the signed message.
        assert await status_of(_verify_request(headers, body, "WH-ELSEWHERE")) == "FAILURE"
        other_endpoint = connector_for(running, webhook_id="WH-ELSEWHERE")
        assert _offline(other_endpoint, headers, body) == "FAILURE"
        # PayPal's CRC is over the bytes as sent: the event re-serialized no longer matches.
        spaced = msgspec.json.encode(
            {
                **msgspec.json.decode(_verify_request(headers, body)),
                "webhook_event": msgspec.Raw(msgspec.json.format(body, indent=2)),
            }
        )
        assert await status_of(spaced) == "FAILURE"
        # A certificate URL that is not this sandbox's is not trusted.
        assert (
            await status_of(
                _verify_request(
                    {
                        **headers,
                        "paypal-cert-url": "https://evil.example/v1/notifications/certs/C-1",
                    },
                    body,
                )
            )
            == "FAILURE"
        )
        # It is an API call like the others: it needs a token.
        anonymous = await paypal.post(
            path, content=_verify_request(headers, body), headers={"Authorization": ""}
        )
        assert anonymous.status_code == 401


async def test_webhooks_from_another_sandbox_key_are_rejected(
    running: Running, inbox: WebhookInbox
) -> None:
    """A second PayPal sandbox signs with its own key: a connector trusting the first
    sandbox's certificate refuses its webhooks, whatever cert URL they name."""
    impostor = PayPalSandbox(PayPalSandboxSettings(webhook_url=inbox.url, webhook_id=WEBHOOK_ID))
    trusting = connector_for(running)
    with live_server(impostor.app) as base:
        c = PayPalConnector(
            PayPalSettings(
                api_base=base,
                client_id="x",
                client_secret="y",
                webhook_id=WEBHOOK_ID,
                trusted_cert_pem=impostor.certificate_pem,
            )
        )
        try:
            paid = await c.authorize(authorize_request("pm_card_visa", 2200))
            headers, body, _ = await webhook_of(
                inbox, "PAYMENT.CAPTURE.COMPLETED", str(paid.connector_payment_id)
            )
            assert _offline(c, headers, body) == "SUCCESS"  # its own trust root accepts it
            assert _offline(trusting, headers, body) == "FAILURE"
            pointed = {**headers, "paypal-cert-url": f"{running.base}{running.sandbox.cert_path}"}
            assert _offline(trusting, pointed, body) == "FAILURE"
        finally:
            await c.aclose()
            await trusting.aclose()


async def test_a_stale_transmission_is_a_replay(
    connector: PayPalConnector, inbox: WebhookInbox
) -> None:
    paid = await connector.authorize(authorize_request("pm_card_visa", 3400))
    headers, body, _ = await webhook_of(
        inbox, "PAYMENT.CAPTURE.COMPLETED", str(paid.connector_payment_id)
    )
    later = datetime.now(UTC) + timedelta(minutes=10)
    with pytest.raises(WebhookRejected, match="tolerance"):
        connector.parse_webhook(headers, body, later)


# -- memory bounds --------------------------------------------------------------------------


def test_each_merchants_objects_and_request_ids_are_bounded() -> None:
    limits = MemoryLimits(objects=4, idempotency_keys=3)
    sandbox = PayPalSandbox(PayPalSandboxSettings(limits=limits))
    with (
        live_server(sandbox.app) as base,
        httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {get_token(base, 'app', 's')}"}
        ) as api,
    ):
        made = []
        for i in range(4):  # each a card order, captured at once: an order and a capture
            order = post(
                api, "/v2/checkout/orders", order_body(source=card(), custom_id=f"pay_{i}"), f"r{i}"
            )
            made.append(order.json())
        [merchant] = sandbox.merchants._by_client.values()
        assert merchant.objects() == 4 and list(merchant.orders) == [o["id"] for o in made[2:]]
        assert len(merchant.request_ids) == 3
        assert list(sandbox.merchants.by_order) == [o["id"] for o in made[2:]]
        # The forgotten order and its capture are unknown, in PayPal's words.
        gone = api.get(f"/v2/checkout/orders/{made[0]['id']}")
        assert (gone.status_code, gone.json()["name"]) == (404, "RESOURCE_NOT_FOUND")
        capture_id = unit_payments(made[0])["captures"][0]["id"]
        assert api.get(f"/v2/payments/captures/{capture_id}").status_code == 404
        rows = httpx.get(f"{base}/_ledger").json()["payments"]
        assert [row["reference"] for row in rows] == ["pay_2", "pay_3"]
        # The newest request ids replay; the oldest is free again.
        replayed = post(api, "/v2/checkout/orders", order_body(source=card()), "r3")
        assert (replayed.status_code, replayed.json()["id"]) == (200, made[3]["id"])
        fresh = post(api, "/v2/checkout/orders", order_body(source=card()), "r0")
        assert fresh.status_code == 201 and fresh.json()["id"] != made[0]["id"]


def test_client_ids_and_tokens_are_bounded() -> None:
    sandbox = PayPalSandbox(PayPalSandboxSettings(limits=MemoryLimits(accounts=2, access_tokens=3)))
    with live_server(sandbox.app) as base:
        tokens = [get_token(base, f"app-{i}", "s") for i in range(4)]
        assert len(sandbox.tokens) == 3
        revoked = httpx.get(
            f"{base}/v2/checkout/orders/x", headers={"Authorization": f"Bearer {tokens[0]}"}
        )
        assert (revoked.status_code, revoked.json()) == (
            401,
            {"error": "invalid_token", "error_description": "Access Token not found in cache"},
        )
        orders = {}
        for i in (1, 2, 3):  # three client ids, at most two merchants kept
            answer = httpx.post(
                f"{base}/v2/checkout/orders",
                json=order_body(source=card()),
                headers={"Authorization": f"Bearer {tokens[i]}", "PayPal-Request-Id": f"app-{i}"},
            )
            assert answer.status_code == 201
            orders[i] = answer.json()["id"]
        assert len(sandbox.merchants) == 2
        assert list(sandbox.merchants._by_client) == ["app-2", "app-3"]
        assert set(sandbox.merchants.by_order) == {orders[2], orders[3]}
        # A forgotten client starts afresh: a new, empty merchant (not a 401).
        again = httpx.get(
            f"{base}/v2/checkout/orders/{orders[1]}",
            headers={"Authorization": f"Bearer {tokens[1]}"},
        )
        assert again.status_code == 404
        assert list(sandbox.merchants._by_client) == ["app-3", "app-1"]
