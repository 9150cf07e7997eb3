"""The Adyen sandbox over real HTTP, mounted under /sandbox/adyen as `paymesh serve` mounts it,
its notifications received by a real endpoint and judged by the official `Adyen` package."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import msgspec
import pytest
from Adyen.util import is_valid_hmac_notification
from starlette.applications import Starlette
from starlette.routing import Mount

from paymesh.sandbox.adyen import AdyenSandbox, AdyenSandboxSettings
from paymesh.sandbox.limits import MemoryLimits
from tests.support.live_server import live_server
from tests.support.webhook_inbox import WebhookInbox, webhook_inbox

API_KEY = "AQE_integration_key"
HMAC_KEY = "B1C2D3E4F5061728394A5B6C7D8E9F00112233445566778899AABBCCDDEEFF01"
MERCHANT = "PaymeshIT"
SISTER = "PaymeshITSister"  # another merchant account of the same company
VISA = "4111111111111111"  # Adyen's test Visa; must never come back in any answer


def parent_app(sandbox: AdyenSandbox) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await sandbox.start()
        try:
            yield
        finally:
            await sandbox.stop()

    return Starlette(routes=[Mount("/sandbox/adyen", app=sandbox.app)], lifespan=lifespan)


@pytest.fixture(scope="module")
def inbox() -> Iterator[WebhookInbox]:
    with webhook_inbox() as box:
        yield box


@pytest.fixture
def sandbox(inbox: WebhookInbox) -> Iterator[tuple[AdyenSandbox, str]]:
    settings = AdyenSandboxSettings(
        webhook_url=inbox.url,
        hmac_key=HMAC_KEY,
        merchant_account=MERCHANT,
        other_merchant_accounts=(SISTER,),
        seed=7,
    )
    sandbox = AdyenSandbox(settings)
    with live_server(parent_app(sandbox)) as base:
        yield sandbox, f"{base}/sandbox/adyen"


@pytest.fixture
def api(sandbox: tuple[AdyenSandbox, str]) -> str:
    return sandbox[1]


@pytest.fixture
def client(api: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, headers={"X-API-Key": API_KEY}, timeout=10) as c:
        yield c


def payment_body(method: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": {"value": 2000, "currency": "USD"},
        "reference": "pay_it",
        "merchantAccount": MERCHANT,
        "paymentMethod": method or {"type": "scheme", "storedPaymentMethodId": "pm_card_visa"},
        "returnUrl": "https://shop.example/return",
    }
    body.update(overrides)
    return body


def raw_card(holder_name: str = "J. Smith", number: str = VISA) -> dict[str, Any]:
    return {
        "type": "scheme",
        "number": number,
        "expiryMonth": "03",
        "expiryYear": "2030",
        "cvc": "737",
        "holderName": holder_name,
    }


def vault(token: str) -> dict[str, Any]:
    return {"type": "scheme", "storedPaymentMethodId": token}


def pay(
    client: httpx.Client,
    method: dict[str, Any] | None = None,
    key: str | None = None,
    **overrides: Any,
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/v71/payments", json=payment_body(method, **overrides), headers=headers)


def notifications(
    inbox: WebhookInbox, psp_reference: str, count: int = 1, within: float = 10.0
) -> list[dict[str, Any]]:
    """The items of the notifications naming this pspReference, once `count` have arrived."""
    deadline = time.monotonic() + within
    needle = psp_reference.encode()
    while True:
        found = [
            msgspec.json.decode(body)["notificationItems"][0]["NotificationRequestItem"]
            for _headers, body in inbox.received
            if needle in body
        ]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} notifications about {psp_reference}, not {count}")
        time.sleep(0.02)


def settle(sandbox: AdyenSandbox, timeout: float = 5.0) -> None:
    """Until every notification the sandbox sent was delivered: any that should not come
    would have arrived by then."""
    deadline = time.monotonic() + timeout
    while not sandbox.webhooks.idle:
        assert time.monotonic() < deadline, "the sandbox's webhooks never finished"
        time.sleep(0.01)


def adyen_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert (body["status"], body["errorCode"]) == (status, code)
    assert set(body) == {"status", "errorCode", "message", "errorType"}
    return body


# --- authentication and the request as a whole ------------------------------------------


def test_the_hmac_key_must_be_hex() -> None:
    with pytest.raises(ValueError, match="hex"):
        AdyenSandboxSettings(hmac_key="not-hex")


def test_an_api_key_is_required(api: str) -> None:
    response = httpx.post(f"{api}/v71/payments", json=payment_body())
    assert response.status_code == 401
    assert response.json() == {
        "status": 401,
        "errorCode": "000",
        "message": "HTTP Status Response - Unauthorized",
        "errorType": "security",
    }


def test_a_merchant_account_of_another_company_is_forbidden(client: httpx.Client) -> None:
    body = adyen_error(pay(client, merchantAccount="SomeoneElse"), 403, "901")
    assert body["errorType"] == "security"


def test_a_body_that_is_not_json_is_refused(client: httpx.Client) -> None:
    response = client.post(
        "/v71/payments", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    adyen_error(response, 400, "702")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"amount": None}, "100"),
        ({"reference": None}, "130"),
        ({"amount": {"value": 0, "currency": "USD"}}, "137"),
        ({"amount": {"value": "20", "currency": "USD"}}, "137"),
        ({"amount": {"value": 20, "currency": "DOLLARS"}}, "137"),
        ({"merchantAccount": None}, "702"),
        ({"paymentMethod": None}, "702"),
        ({"paymentMethod": vault("pm_card_nonexistent")}, "800"),
        ({"paymentMethod": raw_card(number="4111111111111112")}, "101"),
    ],
)
def test_invalid_payments_are_refused_and_change_nothing(
    sandbox: tuple[AdyenSandbox, str], client: httpx.Client, overrides: dict[str, Any], code: str
) -> None:
    body = payment_body(**overrides)
    body = {k: v for k, v in body.items() if v is not None}
    response = client.post("/v71/payments", json=body, headers={"Idempotency-Key": "k-invalid"})
    adyen_error(response, 422, code)
    assert sandbox[0].ledger.payments == {}
    # The refusal was not saved under the key: the corrected request goes through.
    assert pay(client, key="k-invalid").json()["resultCode"] == "Authorised"


def test_an_unknown_route_is_adyens_404(client: httpx.Client) -> None:
    adyen_error(client.post("/v71/nothing-here", json={}), 404, "000")


# --- outcomes: Adyen's test holder names and the vault's tokens --------------------------


@pytest.mark.parametrize(
    ("holder_name", "result_code", "reason", "code"),
    [
        ("APPROVED", "Authorised", None, None),
        ("J. Smith", "Authorised", None, None),
        ("DECLINED", "Refused", "Refused", "2"),
        ("REFERRAL", "Refused", "Referral", "3"),
        ("ERROR", "Error", "Acquirer Error", "4"),
        ("BLOCK_CARD", "Refused", "Blocked Card", "5"),
        ("CARD_EXPIRED", "Refused", "Expired Card", "6"),
        ("NOT_ENOUGH_BALANCE", "Refused", "Not enough balance", "12"),
        ("UNKNOWN", "Error", "Unknown", "0"),
        ("PENDING", "Received", None, None),
    ],
)
def test_adyens_test_holder_names(
    client: httpx.Client, holder_name: str, result_code: str, reason: str | None, code: str | None
) -> None:
    response = pay(client, raw_card(holder_name))
    assert response.status_code == 200
    answer = response.json()
    assert answer["resultCode"] == result_code
    assert answer.get("refusalReason") == reason
    assert answer.get("refusalReasonCode") == code
    assert answer["paymentMethod"] == {"brand": "visa", "type": "scheme"}
    assert VISA not in response.text


def test_the_requested_acquirer_response_code_decides_too(client: httpx.Client) -> None:
    answer = pay(
        client, raw_card(), additionalData={"RequestedTestAcquirerResponseCode": "6"}
    ).json()
    assert (answer["resultCode"], answer["refusalReason"]) == ("Refused", "Expired Card")


@pytest.mark.parametrize(
    ("token", "result_code", "reason", "code", "raw"),
    [
        ("pm_card_visa", "Authorised", None, None, None),
        ("pm_card_chargeDeclined", "Refused", "Refused", "2", "05 : Do not honor"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "Refused",
            "Not enough balance",
            "12",
            "51 : Insufficient funds/over credit limit",
        ),
        ("pm_card_chargeDeclinedExpiredCard", "Refused", "Expired Card", "6", "54 : Expired card"),
        ("pm_card_chargeDeclinedLostCard", "Refused", "Blocked Card", "5", "41 : Lost card"),
        ("pm_card_chargeDeclinedStolenCard", "Refused", "Blocked Card", "5", "43 : Stolen card"),
        (
            "pm_card_chargeDeclinedFraudulent",
            "Refused",
            "Issuer Suspected Fraud",
            "31",
            "59 : Suspected fraud",
        ),
        (
            "pm_card_chargeDeclinedProcessingError",
            "Error",
            "Acquirer Error",
            "4",
            "96 : System malfunction",
        ),
    ],
)
def test_the_vaults_tokens(
    client: httpx.Client,
    token: str,
    result_code: str,
    reason: str | None,
    code: str | None,
    raw: str | None,
) -> None:
    answer = pay(client, vault(token)).json()
    assert answer["resultCode"] == result_code
    assert answer.get("refusalReason") == reason
    assert answer.get("refusalReasonCode") == code
    assert (answer.get("additionalData") or {}).get("refusalReasonRaw") == raw
    assert re.fullmatch(r"[A-Z0-9]{16}", answer["pspReference"])
    assert answer["merchantReference"] == "pay_it"
    assert answer["amount"] == {"value": 2000, "currency": "USD"}


def test_a_holder_name_beats_the_vault_token(client: httpx.Client) -> None:
    method = {**vault("pm_card_visa"), "holderName": "DECLINED"}
    assert pay(client, method).json()["resultCode"] == "Refused"


# --- idempotency -------------------------------------------------------------------------


def test_the_same_key_and_body_replays_the_answer(
    client: httpx.Client,
    inbox: WebhookInbox,
    sandbox: tuple[AdyenSandbox, str],
) -> None:
    first = pay(client, key="k-replay")
    second = pay(client, key="k-replay")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert second.headers["idempotency-key"] == "k-replay"
    ref = first.json()["pspReference"]
    notifications(inbox, ref)
    settle(sandbox[0])
    assert len(notifications(inbox, ref)) == 1  # one payment, one AUTHORISATION


def test_the_same_key_with_another_body_is_refused(client: httpx.Client) -> None:
    assert pay(client, key="k-other").status_code == 200
    response = pay(client, key="k-other", amount={"value": 2001, "currency": "USD"})
    body = adyen_error(response, 422, "704")
    assert body["message"] == "request already processed or in progress"
    assert response.headers["transient-error"] == "false"


def test_a_key_belongs_to_the_company_not_the_merchant_account(client: httpx.Client) -> None:
    assert pay(client, key="k-company").status_code == 200
    adyen_error(pay(client, key="k-company", merchantAccount=SISTER), 422, "704")
    assert pay(client, key="k-sister", merchantAccount=SISTER).json()["resultCode"] == "Authorised"


def test_a_key_longer_than_64_characters_is_refused(client: httpx.Client) -> None:
    adyen_error(pay(client, key="k" * 65), 422, "702")
    assert pay(client, key="k" * 64).status_code == 200


def test_a_key_still_in_flight_is_a_transient_704(api: str, client: httpx.Client) -> None:
    assert client.put("/_config", json={"latency_ms": 800}).status_code == 200

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=api, headers={"X-API-Key": API_KEY}, timeout=10) as c:
            return pay(c, key="k-concurrent")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(send, 0)
        time.sleep(0.1)
        second = pool.submit(send, 1)
        responses = sorted([first.result(), second.result()], key=lambda r: r.status_code)
    assert [r.status_code for r in responses] == [200, 409]
    adyen_error(responses[1], 409, "704")
    assert responses[1].headers["transient-error"] == "true"


def test_a_held_answer_is_done_notified_and_replayed(
    client: httpx.Client, inbox: WebhookInbox
) -> None:
    client.put("/_config", json={"timeout_rate": 1.0, "timeout_hold_ms": 30_000})
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/v71/payments",
            json=payment_body(reference="pay_held"),
            headers={"Idempotency-Key": "k-held"},
            timeout=0.5,
        )
    client.put("/_config", json={"timeout_rate": 0.0})
    replay = pay(client, key="k-held", reference="pay_held")
    assert replay.status_code == 200
    ref = replay.json()["pspReference"]
    [item] = notifications(inbox, ref)
    assert (item["eventCode"], item["merchantReference"]) == ("AUTHORISATION", "pay_held")


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        ({"error_rate": 1.0}, 500, "An internal error happened"),
        ({"rate_limit_rate": 1.0}, 429, "too many requests"),
    ],
)
def test_injected_errors_are_adyens_and_change_nothing(
    sandbox: tuple[AdyenSandbox, str],
    client: httpx.Client,
    fault: dict[str, float],
    status: int,
    message: str,
) -> None:
    client.put("/_config", json=fault)
    response = pay(client, key="k-fault")
    body = adyen_error(response, status, "000")
    assert (body["message"], body["errorType"]) == (message, "internal")
    assert sandbox[0].ledger.payments == {}
    client.put("/_config", json={"error_rate": 0.0, "rate_limit_rate": 0.0})
    assert pay(client, key="k-fault").status_code == 200


def test_the_fault_config_reads_back(client: httpx.Client) -> None:
    assert client.put("/_config", json={"webhook_delay_ms": 5}).json()["webhook_delay_ms"] == 5
    assert client.get("/_config").json()["webhook_delay_ms"] == 5


# --- 3-D Secure ----------------------------------------------------------------------------


def test_three_d_secure_redirect_then_details(
    api: str, client: httpx.Client, inbox: WebhookInbox
) -> None:
    # A shop on this machine: loopback is where the sandbox sends shoppers back by default.
    answer = pay(
        client, vault("pm_card_threeDSecure2Required"), returnUrl="http://127.0.0.1:8080/return"
    ).json()
    assert answer["resultCode"] == "RedirectShopper"
    ref = answer["pspReference"]
    action = answer["action"]
    assert action == {
        "paymentMethodType": "scheme",
        "type": "redirect",
        "method": "GET",
        "url": f"{api}/_3ds/{ref}",
    }
    page = httpx.get(action["url"])
    assert page.status_code == 200 and "3D Secure" in page.text
    assert client.get(f"/v71/payments/{ref}").json()["status"] == "RedirectShopper"

    done = httpx.post(action["url"], params={"outcome": "succeed"})
    assert done.status_code == 303
    location = httpx.URL(done.headers["location"])
    assert str(location).startswith("http://127.0.0.1:8080/return?redirectResult=")
    redirect_result = location.params["redirectResult"]

    details = client.post(
        "/v71/payments/details", json={"details": {"redirectResult": redirect_result}}
    )
    assert details.status_code == 200
    assert (details.json()["resultCode"], details.json()["pspReference"]) == ("Authorised", ref)
    [item] = notifications(inbox, ref)
    assert (item["eventCode"], item["success"]) == ("AUTHORISATION", "true")
    # A second visit changes nothing and hands back the same result.
    again = httpx.post(action["url"], params={"outcome": "fail"})
    assert again.headers["location"] == done.headers["location"]


def test_a_failed_challenge_is_refused(client: httpx.Client, inbox: WebhookInbox) -> None:
    answer = pay(client, vault("pm_card_threeDSecure2Required"), returnUrl=None).json()
    ref = answer["pspReference"]
    done = httpx.get(answer["action"]["url"], params={"outcome": "fail"})
    assert done.status_code == 200  # no returnUrl: the result is shown, not redirected
    assert done.json()["pspReference"] == ref
    details = client.post(
        "/v71/payments/details", json={"details": {"redirectResult": done.json()["redirectResult"]}}
    )
    assert (
        details.json()["resultCode"],
        details.json()["refusalReason"],
        details.json()["refusalReasonCode"],
    ) == ("Refused", "3D Not Authenticated", "11")
    [item] = notifications(inbox, ref)
    assert (item["eventCode"], item["success"], item["reason"]) == (
        "AUTHORISATION",
        "false",
        "3D Not Authenticated",
    )


def test_details_with_an_unknown_redirect_result_is_refused(client: httpx.Client) -> None:
    response = client.post("/v71/payments/details", json={"details": {"redirectResult": "x"}})
    adyen_error(response, 422, "702")


def test_a_payment_without_a_challenge_has_no_3ds_page(api: str, client: httpx.Client) -> None:
    ref = pay(client).json()["pspReference"]
    assert httpx.get(f"{api}/_3ds/{ref}", params={"outcome": "succeed"}).status_code == 404


def challenge(client: httpx.Client, return_url: str) -> httpx.Response:
    answer = pay(client, vault("pm_card_threeDSecure2Required"), returnUrl=return_url).json()
    return httpx.post(answer["action"]["url"], params={"outcome": "succeed"})


@pytest.mark.parametrize("return_url", [
    "https://shop.example/return",  # not on the allow list: by default loopback only
    "https://127.0.0.1@evil.example/",  # user info: the browser goes to evil.example
    "ftp://127.0.0.1/return",
    "my-app://adyen-return",  # an app's scheme: fine for Adyen, no page for a browser here
])  # fmt: skip
def test_three_d_secure_never_redirects_off_the_allowed_hosts(
    client: httpx.Client, return_url: str
) -> None:
    done = challenge(client, return_url)
    assert done.status_code == 200
    assert "location" not in done.headers
    body = done.json()
    assert body["returnUrlFollowed"] is False
    # The challenge itself completed: only the redirect was withheld.
    details = client.post(
        "/v71/payments/details", json={"details": {"redirectResult": body["redirectResult"]}}
    )
    assert (details.json()["resultCode"], details.json()["pspReference"]) == (
        "Authorised",
        body["pspReference"],
    )


def test_three_d_secure_follows_the_configured_hosts_only() -> None:
    sandbox = AdyenSandbox(
        AdyenSandboxSettings(
            hmac_key=HMAC_KEY, merchant_account=MERCHANT, return_url_hosts=("shop.example",)
        )
    )
    with (
        live_server(parent_app(sandbox)) as base,
        httpx.Client(base_url=f"{base}/sandbox/adyen", headers={"X-API-Key": API_KEY}) as client,
    ):
        allowed = challenge(client, "https://shop.example/return?cart=9")
        assert allowed.status_code == 303
        assert allowed.headers["location"].startswith(
            "https://shop.example/return?cart=9&redirectResult="
        )
        for elsewhere in ("http://127.0.0.1:8080/return", "https://shop.example.evil.example/"):
            refused = challenge(client, elsewhere)
            assert (refused.status_code, refused.json()["returnUrlFollowed"]) == (200, False)


@pytest.mark.parametrize("return_url", [
    "javascript:alert(document.cookie)", "data:text/html,<script>alert(1)</script>",
    "//evil.example/phish", "/return", "shop.example/return", "https:///no-host",
])  # fmt: skip
def test_a_return_url_no_browser_should_follow_is_refused_up_front(
    sandbox: tuple[AdyenSandbox, str], client: httpx.Client, return_url: str
) -> None:
    refused = pay(client, vault("pm_card_threeDSecure2Required"), returnUrl=return_url)
    body = adyen_error(refused, 422, "702")
    assert body["message"] == "'returnUrl' is not a valid URL"
    assert sandbox[0].ledger.payments == {}  # nothing was made


# --- memory bounds -------------------------------------------------------------------------


def test_payments_and_keys_are_bounded_oldest_forgotten_first() -> None:
    limits = MemoryLimits(objects=4, idempotency_keys=3)
    sandbox = AdyenSandbox(
        AdyenSandboxSettings(hmac_key=HMAC_KEY, merchant_account=MERCHANT, limits=limits)
    )
    with (
        live_server(parent_app(sandbox)) as base,
        httpx.Client(base_url=f"{base}/sandbox/adyen", headers={"X-API-Key": API_KEY}) as client,
    ):
        refs = []
        for i in range(7):
            answer = pay(
                client,
                vault("pm_card_threeDSecure2Required"),
                key=f"k{i}",
                reference=f"pay_{i}",
                returnUrl=None,
            ).json()
            done = httpx.post(answer["action"]["url"], params={"outcome": "succeed"}).json()
            refs.append((answer["pspReference"], done["redirectResult"]))
        ledger = sandbox.ledger
        assert list(ledger.payments) == [ref for ref, _ in refs[3:]]
        assert set(ledger.by_redirect_result.values()) == set(ledger.payments)
        assert len(ledger.idempotency) == 3
        # What is forgotten is unknown, in Adyen's words.
        old_ref, old_result = refs[0]
        adyen_error(
            client.post(
                f"/v71/payments/{old_ref}/captures",
                json={"merchantAccount": MERCHANT, "amount": {"value": 2000, "currency": "USD"}},
            ),
            422,
            "167",
        )
        adyen_error(
            client.post("/v71/payments/details", json={"details": {"redirectResult": old_result}}),
            422,
            "702",
        )
        # The newest keys replay; the oldest may be used afresh.
        replay = pay(
            client,
            vault("pm_card_threeDSecure2Required"),
            key="k6",
            reference="pay_6",
            returnUrl=None,
        )
        assert replay.json()["pspReference"] == refs[6][0]
        fresh = pay(client, key="k0", reference="pay_again", returnUrl=None)
        assert fresh.status_code == 200 and fresh.json()["resultCode"] == "Authorised"
        rows = httpx.get(f"{base}/sandbox/adyen/_ledger").json()["payments"]
        assert [row["reference"] for row in rows] == ["pay_4", "pay_5", "pay_6", "pay_again"]


# --- modifications -----------------------------------------------------------------------


def manual_payment(client: httpx.Client, value: int = 5000, token: str = "pm_card_visa") -> str:
    answer = pay(
        client,
        vault(token),
        amount={"value": value, "currency": "USD"},
        additionalData={"manualCapture": "true"},
    ).json()
    assert answer["resultCode"] == "Authorised"
    return str(answer["pspReference"])


def capture(client: httpx.Client, ref: str, value: int, **extra: Any) -> httpx.Response:
    return client.post(
        f"/v71/payments/{ref}/captures",
        json={"merchantAccount": MERCHANT, "amount": {"value": value, "currency": "USD"}, **extra},
    )


def refund(client: httpx.Client, ref: str, value: int, reference: str) -> httpx.Response:
    return client.post(
        f"/v71/payments/{ref}/refunds",
        json={
            "merchantAccount": MERCHANT,
            "amount": {"value": value, "currency": "USD"},
            "reference": reference,
        },
    )


def test_partial_captures_up_to_the_authorised_amount(
    client: httpx.Client, inbox: WebhookInbox
) -> None:
    ref = manual_payment(client)
    state = client.get(f"/v71/payments/{ref}").json()
    assert (state["status"], state["captureMode"], state["amountCaptured"]) == (
        "Authorised",
        "manual",
        0,
    )

    first = capture(client, ref, 3000, reference="cap-1")
    assert first.status_code == 201
    received = first.json()
    assert received["status"] == "received"
    assert received["paymentPspReference"] == ref
    assert received["pspReference"] != ref
    assert received["amount"] == {"value": 3000, "currency": "USD"}
    assert received["reference"] == "cap-1"
    state = client.get(f"/v71/payments/{ref}").json()
    assert (state["status"], state["amountCaptured"]) == ("Captured", 3000)

    adyen_error(capture(client, ref, 2001), 422, "137")
    assert capture(client, ref, 2000).status_code == 201
    adyen_error(capture(client, ref, 1), 422, "010")
    adyen_error(capture(client, ref, 10, amount={"value": 10, "currency": "EUR"}), 422, "137")

    found = notifications(inbox, ref, count=3)
    captures = sorted(
        (i["amount"]["value"], i["merchantReference"], i["originalReference"])
        for i in found
        if i["eventCode"] == "CAPTURE"
    )
    assert captures == [(2000, "pay_it", ref), (3000, "cap-1", ref)]


def test_cancel_an_authorisation(client: httpx.Client, inbox: WebhookInbox) -> None:
    ref = manual_payment(client, 1000)
    adyen_error(refund(client, ref, 100, "re_early"), 422, "010")  # nothing captured yet
    response = client.post(f"/v71/payments/{ref}/cancels", json={"merchantAccount": MERCHANT})
    assert response.status_code == 201
    assert set(response.json()) == {
        "merchantAccount",
        "paymentPspReference",
        "pspReference",
        "status",
    }
    assert client.get(f"/v71/payments/{ref}").json()["status"] == "Cancelled"
    adyen_error(capture(client, ref, 1000), 422, "010")
    again = client.post(f"/v71/payments/{ref}/cancels", json={"merchantAccount": MERCHANT})
    adyen_error(again, 422, "010")
    cancellation = [
        i for i in notifications(inbox, ref, count=2) if i["eventCode"] == "CANCELLATION"
    ]
    assert [(i["originalReference"], i["amount"]["value"], i["success"]) for i in cancellation] == [
        (ref, 1000, "true")
    ]


def test_a_captured_payment_cannot_be_cancelled(client: httpx.Client) -> None:
    ref = pay(client).json()["pspReference"]  # captured at once
    response = client.post(f"/v71/payments/{ref}/cancels", json={"merchantAccount": MERCHANT})
    adyen_error(response, 422, "010")


def test_partial_refunds_up_to_what_was_captured(client: httpx.Client, inbox: WebhookInbox) -> None:
    ref = pay(client, amount={"value": 3000, "currency": "USD"}).json()["pspReference"]
    first = refund(client, ref, 1000, "re_1")
    assert first.status_code == 201
    assert (first.json()["status"], first.json()["reference"]) == ("received", "re_1")
    adyen_error(refund(client, ref, 2001, "re_2"), 422, "137")
    assert refund(client, ref, 2000, "re_3").status_code == 201
    adyen_error(refund(client, ref, 1, "re_4"), 422, "137")
    assert client.get(f"/v71/payments/{ref}").json()["amountRefunded"] == 3000
    found = notifications(inbox, ref, count=3)
    refunds = sorted(
        (i["merchantReference"], i["amount"]["value"], i["success"])
        for i in found
        if i["eventCode"] == "REFUND"
    )
    assert refunds == [("re_1", 1000, "true"), ("re_3", 2000, "true")]
    assert all(i["originalReference"] == ref for i in found if i["eventCode"] == "REFUND")


def test_modifications_of_an_unknown_payment(client: httpx.Client) -> None:
    adyen_error(capture(client, "NOPE000000000000", 100), 422, "167")
    adyen_error(client.get("/v71/payments/NOPE000000000000"), 404, "000")


def test_a_payment_is_its_merchant_accounts(client: httpx.Client) -> None:
    ref = manual_payment(client)
    response = client.post(
        f"/v71/payments/{ref}/captures",
        json={"merchantAccount": SISTER, "amount": {"value": 100, "currency": "USD"}},
    )
    adyen_error(response, 422, "167")


# --- notifications -------------------------------------------------------------------------


def test_an_authorisation_is_notified_with_its_metadata(
    client: httpx.Client, inbox: WebhookInbox
) -> None:
    ref = pay(
        client,
        metadata={"order_id": "o-7"},
        amount={"value": 2345, "currency": "EUR"},
        reference="pay_meta",
    ).json()["pspReference"]
    [item] = notifications(inbox, ref)
    assert item["eventCode"] == "AUTHORISATION"
    assert (item["success"], item["merchantReference"], item["merchantAccountCode"]) == (
        "true",
        "pay_meta",
        MERCHANT,
    )
    assert item["amount"] == {"value": 2345, "currency": "EUR"}
    assert item["additionalData"]["metadata.order_id"] == "o-7"
    assert item["operations"] == ["CANCEL", "CAPTURE", "REFUND"]
    assert item["paymentMethod"] == "visa"


def test_a_refusal_is_notified_with_its_reason(client: httpx.Client, inbox: WebhookInbox) -> None:
    ref = pay(client, vault("pm_card_chargeDeclinedInsufficientFunds")).json()["pspReference"]
    [item] = notifications(inbox, ref)
    assert (item["eventCode"], item["success"], item["reason"]) == (
        "AUTHORISATION",
        "false",
        "Not enough balance",
    )
    assert item["additionalData"]["refusalReasonRaw"] == "51 : Insufficient funds/over credit limit"


def test_the_dispute_card_is_charged_back_once_captured(
    client: httpx.Client,
    inbox: WebhookInbox,
    sandbox: tuple[AdyenSandbox, str],
) -> None:
    ref = manual_payment(client, 4000, token="pm_card_createDispute")
    notifications(inbox, ref)
    settle(sandbox[0])
    assert [i["eventCode"] for i in notifications(inbox, ref)] == ["AUTHORISATION"]
    capture(client, ref, 4000)
    found = notifications(inbox, ref, count=3)
    [dispute] = [i for i in found if i["eventCode"] == "CHARGEBACK"]
    assert (dispute["originalReference"], dispute["amount"]["value"]) == (ref, 4000)
    assert dispute["pspReference"] != ref
    assert client.get(f"/v71/payments/{ref}").json()["chargeback"] is True
    adyen_error(refund(client, ref, 100, "re_x"), 422, "010")


def test_a_duplicated_notification_is_the_same_bytes(
    client: httpx.Client, inbox: WebhookInbox
) -> None:
    client.put("/_config", json={"webhook_duplicate_rate": 1.0})
    ref = pay(client).json()["pspReference"]
    first, second = notifications(inbox, ref, count=2)
    assert first == second


def test_every_notification_is_valid_for_the_official_package(
    client: httpx.Client, inbox: WebhookInbox
) -> None:
    """Each event type the sandbox sends, checked by `Adyen.util.is_valid_hmac_notification`."""
    refs = [
        pay(client, reference="pay_all_1").json()["pspReference"],
        pay(client, vault("pm_card_chargeDeclined")).json()["pspReference"],
        pay(client, vault("pm_card_createDispute")).json()["pspReference"],
    ]
    captured = manual_payment(client)
    capture(client, captured, 5000)
    refund(client, captured, 1200, "re_all")
    canceled = manual_payment(client)
    client.post(f"/v71/payments/{canceled}/cancels", json={"merchantAccount": MERCHANT})
    refs += [captured, canceled]
    counts = [1, 1, 2, 3, 2]
    bodies = [
        body for ref, count in zip(refs, counts, strict=True) for body in _bodies(inbox, ref, count)
    ]
    seen = set()
    for body in bodies:
        notification = msgspec.json.decode(body)
        assert notification["live"] == "false"
        assert len(notification["notificationItems"]) == 1
        assert is_valid_hmac_notification(notification, HMAC_KEY), body
        assert not is_valid_hmac_notification(notification, "00" * 32)
        seen.add(notification["notificationItems"][0]["NotificationRequestItem"]["eventCode"])
    assert seen == {"AUTHORISATION", "CAPTURE", "REFUND", "CANCELLATION", "CHARGEBACK"}


def _bodies(inbox: WebhookInbox, ref: str, count: int) -> list[bytes]:
    notifications(inbox, ref, count)
    return [body for _headers, body in inbox.received if ref.encode() in body]


def test_no_answer_or_notification_carries_the_card_number(
    client: httpx.Client, inbox: WebhookInbox
) -> None:
    response = pay(client, raw_card())
    ref = response.json()["pspReference"]
    notifications(inbox, ref)
    assert VISA not in response.text
    assert VISA not in client.get(f"/v71/payments/{ref}").text
    assert not [body for _h, body in inbox.received if VISA.encode() in body]
