"""Each connector over a `MockTransport`: what it sends and how it reads each kind of answer,
without a socket. An approval, a decline, a 5xx (the outcome unknown), a PSP too slow to
answer (unknown too), a PSP that cannot be reached (nothing done), and one transport shared
by the three, each call with its own PSP's timeout.

The contract suite (tests/contract) proves the same connectors against the sandboxes over
real HTTP; these pin down the wire and the error mapping one answer at a time.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import pytest

from paymesh.connectors.adyen import AdyenConnector, AdyenSettings
from paymesh.connectors.mock_transport import HttpRequest, MockTransport, json_answer
from paymesh.connectors.paypal import PayPalConnector, PayPalSettings
from paymesh.connectors.stripe import StripeConnector, StripeSettings
from paymesh.connectors.transport import HttpAnswer, HttpTransport, NotSent
from paymesh.domain.payment import PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest, Connector, PspError

S = PaymentStatus
HMAC_KEY = "3C71D7C620CA13837C8D1FA38910FC7F39C6955DFBB5478384F23F9619ED7480"
Handler = Callable[[HttpRequest], Any]


def stripe(transport: HttpTransport, timeout: float = 0.2) -> StripeConnector:
    return StripeConnector(
        StripeSettings(
            api_base="https://stripe.test/",
            secret_key="sk_test_1",
            webhook_secret="whsec_1",
            timeout_seconds=timeout,
        ),
        transport=transport,
    )


def adyen(transport: HttpTransport, timeout: float = 0.2) -> AdyenConnector:
    return AdyenConnector(
        AdyenSettings(
            api_base="https://adyen.test",
            api_key="AQE_key",
            merchant_account="Shop",
            hmac_key=HMAC_KEY,
            timeout_seconds=timeout,
        ),
        transport=transport,
    )


def paypal(transport: HttpTransport, timeout: float = 0.2) -> PayPalConnector:
    return PayPalConnector(
        PayPalSettings(
            api_base="https://paypal.test",
            client_id="client",
            client_secret="secret",
            webhook_id="WH-1",
            trusted_cert_pem=None,
            timeout_seconds=timeout,
        ),
        transport=transport,
    )


def request(capture: str = "automatic") -> AuthorizeRequest:
    return AuthorizeRequest(
        payment_id="pay_1",
        amount=2000,
        currency="usd",
        payment_method="pm_card_visa",
        capture_method=capture,
        customer_id="cus_1",
        idempotency_key="pay_1:authorize:1",
    )


def paypal_token_then(answer: Handler) -> Handler:
    """PayPal's token endpoint, then `answer` for every other call."""

    def handle(req: HttpRequest) -> Any:
        if req.url.endswith("/v1/oauth2/token"):
            return json_answer(
                200, {"access_token": "A21AA-token", "token_type": "Bearer", "expires_in": 32400}
            )
        return answer(req)

    return handle


def _money(value: str) -> dict[str, str]:
    return {"currency_code": "USD", "value": value}


def _order(capture: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "5O190127TN364715T",
        "status": "COMPLETED",
        "intent": "CAPTURE",
        "purchase_units": [
            {"custom_id": "pay_1", "amount": _money("20.00"), "payments": {"captures": [capture]}}
        ],
    }


#: Per PSP: how it is built, and the PSP's answer to an authorisation that is approved, that
#: is declined for insufficient funds, and that fails with a 5xx.
PSPS: dict[str, tuple[Callable[..., Connector], dict[str, Handler]]] = {
    "stripe": (
        stripe,
        {
            "approved": lambda req: json_answer(
                200,
                {
                    "id": "pi_1",
                    "object": "payment_intent",
                    "status": "succeeded",
                    "amount": 2000,
                    "amount_received": 2000,
                    "currency": "usd",
                },
            ),
            "declined": lambda req: json_answer(
                402,
                {
                    "error": {
                        "type": "card_error",
                        "code": "card_declined",
                        "decline_code": "insufficient_funds",
                        "message": "Your card has insufficient funds.",
                        "payment_intent": {
                            "id": "pi_2",
                            "status": "requires_payment_method",
                            "last_payment_error": {
                                "type": "card_error",
                                "code": "card_declined",
                                "decline_code": "insufficient_funds",
                            },
                        },
                    }
                },
            ),
            "5xx": lambda req: json_answer(
                500, {"error": {"type": "api_error", "message": "Something went wrong"}}
            ),
        },
    ),
    "adyen": (
        adyen,
        {
            "approved": lambda req: json_answer(
                200,
                {
                    "resultCode": "Authorised",
                    "pspReference": "PSP0000000000001",
                    "amount": {"value": 2000, "currency": "USD"},
                    "merchantReference": "pay_1",
                },
            ),
            "declined": lambda req: json_answer(
                200,
                {
                    "resultCode": "Refused",
                    "pspReference": "PSP0000000000002",
                    "refusalReason": "Not enough balance",
                    "refusalReasonCode": "12",
                },
            ),
            "5xx": lambda req: json_answer(
                500,
                {
                    "status": 500,
                    "errorCode": "905",
                    "message": "Payment details are not supported",
                    "errorType": "configuration",
                },
            ),
        },
    ),
    "paypal": (
        paypal,
        {
            "approved": paypal_token_then(
                lambda req: json_answer(
                    201, _order({"id": "CAP1", "status": "COMPLETED", "amount": _money("20.00")})
                )
            ),
            "declined": paypal_token_then(
                lambda req: json_answer(
                    201,
                    _order(
                        {
                            "id": "CAP2",
                            "status": "DECLINED",
                            "amount": _money("20.00"),
                            "processor_response": {"response_code": "5120"},
                        }
                    ),
                )
            ),
            "5xx": paypal_token_then(
                lambda req: json_answer(
                    500,
                    {
                        "name": "INTERNAL_SERVER_ERROR",
                        "message": "An internal server error occurred.",
                        "debug_id": "90957fca61718",
                    },
                )
            ),
        },
    ),
}


async def authorize_with(psp: str, handler: Handler) -> tuple[PspOutcome, MockTransport]:
    build, _ = PSPS[psp]
    transport = MockTransport(handler)
    connector = build(transport)
    try:
        return await connector.authorize(request()), transport
    finally:
        await connector.aclose()


@pytest.mark.parametrize("psp", list(PSPS))
async def test_an_approval(psp: str) -> None:
    out, transport = await authorize_with(psp, PSPS[psp][1]["approved"])
    assert (out.status, out.amount_received) == (S.SUCCEEDED, 2000)
    assert out.connector_payment_id
    last = transport.requests[-1]
    # Our idempotency key rides on the money call, as each PSP names it.
    key = {"stripe": "idempotency-key", "adyen": "idempotency-key", "paypal": "paypal-request-id"}[
        psp
    ]
    assert (last.method, last.headers[key], last.timeout_seconds) == (
        "POST",
        "pay_1:authorize:1",
        0.2,
    )


@pytest.mark.parametrize("psp", list(PSPS))
async def test_a_decline_is_an_answer(psp: str) -> None:
    out, _ = await authorize_with(psp, PSPS[psp][1]["declined"])
    assert out.status == S.FAILED and out.failure is not None
    assert (out.failure.decline_code, out.failure.retryable) == ("insufficient_funds", False)


@pytest.mark.parametrize("psp", list(PSPS))
async def test_a_5xx_leaves_the_outcome_unknown(psp: str) -> None:
    with pytest.raises(PspError) as info:
        await authorize_with(psp, PSPS[psp][1]["5xx"])
    assert (info.value.psp, info.value.http_status) == (psp, 500)
    assert info.value.retryable and info.value.outcome_unknown


@pytest.mark.parametrize("psp", list(PSPS))
async def test_a_psp_too_slow_to_answer_may_have_acted(psp: str) -> None:
    async def slow(req: HttpRequest) -> HttpAnswer:
        await asyncio.sleep(5)  # past the connector's 0.2 s
        raise AssertionError("the call was not cut at its timeout")

    handler = paypal_token_then(slow) if psp == "paypal" else slow
    with pytest.raises(PspError) as info:
        await authorize_with(psp, handler)
    assert (info.value.code, info.value.retryable, info.value.outcome_unknown) == (
        "timeout",
        True,
        True,
    )


@pytest.mark.parametrize("psp", list(PSPS))
async def test_a_psp_that_cannot_be_reached_did_nothing(psp: str) -> None:
    def refused(req: HttpRequest) -> HttpAnswer:
        raise NotSent("ClientConnectorError")

    with pytest.raises(PspError) as info:
        await authorize_with(psp, refused)
    assert (info.value.code, info.value.retryable, info.value.outcome_unknown) == (
        "connection_error",
        True,
        False,
    )
    assert "ClientConnectorError" in info.value.message


async def test_a_paypal_token_that_does_not_come_moved_no_money() -> None:
    async def slow_token(req: HttpRequest) -> HttpAnswer:
        await asyncio.sleep(5)
        raise AssertionError("the call was not cut at its timeout")

    with pytest.raises(PspError) as info:
        await authorize_with("paypal", slow_token)
    # Only the token was asked for: nothing that moves money was sent.
    assert (info.value.code, info.value.outcome_unknown) == ("timeout", False)


async def test_the_wire_each_psp_is_sent() -> None:
    stripe_seen, adyen_seen, paypal_seen = (
        MockTransport(PSPS[p][1]["approved"]) for p in ("stripe", "adyen", "paypal")
    )
    for build, transport in ((stripe, stripe_seen), (adyen, adyen_seen), (paypal, paypal_seen)):
        await build(transport).authorize(request("manual"))
    [sent] = stripe_seen.requests
    assert (sent.url, sent.headers["authorization"], sent.headers["stripe-version"]) == (
        "https://stripe.test/v1/payment_intents",
        "Bearer sk_test_1",
        "2024-06-20",
    )
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"capture_method=manual" in (sent.body or b"")
    [sent] = adyen_seen.requests
    assert (sent.url, sent.headers["x-api-key"]) == ("https://adyen.test/v71/payments", "AQE_key")
    assert sent.json()["additionalData"] == {"manualCapture": "true"}
    token, order = paypal_seen.requests
    assert (token.url, token.headers["authorization"]) == (
        "https://paypal.test/v1/oauth2/token",
        "Basic " + base64.b64encode(b"client:secret").decode(),
    )
    assert (order.url, order.headers["authorization"]) == (
        "https://paypal.test/v2/checkout/orders",
        "Bearer A21AA-token",
    )
    assert order.json()["intent"] == "AUTHORIZE"


async def test_one_transport_serves_every_psp_each_with_its_own_timeout() -> None:
    answers = {
        "stripe.test": PSPS["stripe"][1]["approved"],
        "adyen.test": PSPS["adyen"][1]["approved"],
        "paypal.test": PSPS["paypal"][1]["approved"],
    }

    def route(req: HttpRequest) -> Any:
        return answers[req.url.split("/")[2]](req)

    shared = MockTransport(route)
    connectors: list[Connector] = [stripe(shared, 1.5), adyen(shared, 2.5), paypal(shared, 3.5)]
    for connector in connectors:
        assert (await connector.authorize(request())).status == S.SUCCEEDED
    assert [(r.url.split("/")[2], r.timeout_seconds) for r in shared.requests] == [
        ("stripe.test", 1.5),
        ("adyen.test", 2.5),
        ("paypal.test", 3.5),
        ("paypal.test", 3.5),
    ]
    for connector in connectors:
        await connector.aclose()
    # Whoever made a shared transport closes it: a connector closing does not.
    assert not shared.closed
