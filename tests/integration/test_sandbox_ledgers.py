"""`GET /_ledger` of each sandbox, over real HTTP, with paymesh's own connectors as clients.

The same scenarios run against Stripe, Adyen and PayPal; only the PSPs' own status words
differ, and those are spelt out per PSP. Every row is compared whole.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest

from paymesh.connectors.adyen import AdyenConnector, AdyenSettings
from paymesh.connectors.paypal import PayPalConnector, PayPalSettings
from paymesh.connectors.stripe import StripeConnector, StripeSettings
from paymesh.ports.connector import AuthorizeRequest, Connector
from paymesh.sandbox.adyen import AdyenSandbox, AdyenSandboxSettings
from paymesh.sandbox.paypal import PayPalSandbox, PayPalSandboxSettings
from paymesh.sandbox.stripe import StripeSandbox, StripeSandboxSettings
from tests.support.live_server import live_server

ADYEN_HMAC = "3C71D7C620CA13837C8D1FA38910FC7F39C6955DFBB5478384F23F9619ED7480"
ADYEN_MERCHANTS = ("PaymeshLedger", "PaymeshLedgerTwo")


@dataclass(frozen=True)
class Psp:
    name: str
    url: str
    #: A connector for the n-th account (Stripe API key, Adyen merchant account, PayPal client).
    connector: Callable[[int], Any]
    #: The PSP's own status word for each scenario.
    words: dict[str, str]


def _stripe(url: str, account: int) -> StripeConnector:
    return StripeConnector(
        StripeSettings(
            api_base=url,
            secret_key=f"sk_test_ledger{account}",
            webhook_secret="whsec_ledger",
            timeout_seconds=5,
        )
    )


def _adyen(url: str, account: int) -> AdyenConnector:
    return AdyenConnector(
        AdyenSettings(
            api_base=url,
            api_key="AQE_ledger",
            merchant_account=ADYEN_MERCHANTS[account],
            hmac_key=ADYEN_HMAC,
            timeout_seconds=5,
        )
    )


def _paypal(url: str, account: int) -> PayPalConnector:
    return PayPalConnector(
        PayPalSettings(
            api_base=url,
            client_id=f"ledger-client-{account}",
            client_secret="ledger-secret",
            webhook_id="WH-LEDGER",
            trusted_cert_pem=None,
            timeout_seconds=5,
        )
    )


@pytest.fixture(scope="module", params=["stripe", "adyen", "paypal"])
def psp(request: pytest.FixtureRequest) -> Iterator[Psp]:
    make: Callable[[str, int], Connector]
    if request.param == "stripe":
        app = StripeSandbox(StripeSandboxSettings()).app
        words = {
            "paid": "succeeded",
            "declined": "requires_payment_method",
            "authenticating": "requires_action",
            "canceled": "canceled",
        }
        make = _stripe
    elif request.param == "adyen":
        app = AdyenSandbox(
            AdyenSandboxSettings(
                hmac_key=ADYEN_HMAC,
                merchant_account=ADYEN_MERCHANTS[0],
                other_merchant_accounts=ADYEN_MERCHANTS[1:],
            )
        ).app
        words = {
            "paid": "Captured",
            "declined": "Refused",
            "authenticating": "RedirectShopper",
            "canceled": "Cancelled",
        }
        make = _adyen
    else:
        app = PayPalSandbox(PayPalSandboxSettings()).app  # any client id may get a token
        # An order is COMPLETED once processed, whatever became of the money.
        words = {
            "paid": "COMPLETED",
            "declined": "COMPLETED",
            "authenticating": "PAYER_ACTION_REQUIRED",
            "canceled": "COMPLETED",
        }
        make = _paypal
    with live_server(app) as url:
        yield Psp(request.param, url, lambda account: make(url, account), words)


@pytest.fixture
async def connect(psp: Psp) -> AsyncIterator[Callable[..., Any]]:
    made: list[Any] = []

    def connector(account: int = 0) -> Any:
        made.append(psp.connector(account))
        return made[-1]

    yield connector
    for c in made:
        await c.aclose()


def payment(
    method: str = "pm_card_visa",
    amount: int = 2000,
    capture: str = "automatic",
    currency: str = "usd",
) -> AuthorizeRequest:
    pid = f"pay_{uuid.uuid4().hex[:12]}"
    return AuthorizeRequest(
        payment_id=pid,
        amount=amount,
        currency=currency,
        payment_method=method,
        capture_method=capture,
        customer_id="cus_ledger",
        idempotency_key=f"key-{pid}",
    )


async def ledger(psp: Psp, **query: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{psp.url}/_ledger", params=query)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["psp"] == psp.name
    return cast(list[dict[str, Any]], body["payments"])


async def only_row(psp: Psp, req: AuthorizeRequest, since: float) -> dict[str, Any]:
    """The one row for `req`, its `created` checked against the clock and then dropped."""
    rows = await ledger(psp, reference=req.payment_id)
    assert len(rows) == 1, rows
    row = rows[0]
    created = row.pop("created")
    assert int(since) - 1 <= created <= time.time(), (since, created)
    return row


def expected(
    psp: Psp,
    req: AuthorizeRequest,
    psp_reference: str | None,
    word: str,
    captured: int,
    refunded: int = 0,
) -> dict[str, Any]:
    return {
        "psp_reference": psp_reference,
        "reference": req.payment_id,
        "currency": "usd",
        "amount": req.amount,
        "amount_captured": captured,
        "amount_refunded": refunded,
        "status": psp.words[word],
        "charged": captured > 0,
        "idempotency_keys": [req.idempotency_key],
    }


async def test_an_approved_payment_is_one_charged_row(
    psp: Psp, connect: Callable[..., Any]
) -> None:
    since = time.time()
    req = payment()
    out = await connect().authorize(req)
    assert out.connector_payment_id
    assert await only_row(psp, req, since) == expected(
        psp, req, out.connector_payment_id, "paid", captured=2000
    )


async def test_a_declined_payment_is_a_row_that_charged_nothing(
    psp: Psp, connect: Callable[..., Any]
) -> None:
    since = time.time()
    req = payment("pm_card_chargeDeclinedInsufficientFunds", 1500)
    await connect().authorize(req)
    row = await only_row(psp, req, since)
    assert row == expected(psp, req, row["psp_reference"], "declined", captured=0)
    assert row["psp_reference"]


async def test_a_payment_waiting_for_3ds_has_charged_nothing(
    psp: Psp, connect: Callable[..., Any]
) -> None:
    since = time.time()
    req = payment("pm_card_threeDSecure2Required")
    out = await connect().authorize(req)
    assert await only_row(psp, req, since) == expected(
        psp, req, out.connector_payment_id, "authenticating", captured=0
    )


async def test_amounts_are_in_the_iso_minor_unit_whatever_the_psp_writes(
    psp: Psp, connect: Callable[..., Any]
) -> None:
    # PayPal writes HUF without decimals ("200"), ISO 4217 and paymesh count its cents.
    connector = connect()
    for currency, amount in (("huf", 20000), ("jpy", 500)):
        req = payment(amount=amount, currency=currency)
        await connector.authorize(req)
        [row] = await ledger(psp, reference=req.payment_id)
        assert (row["currency"], row["amount"], row["amount_captured"]) == (
            currency,
            amount,
            amount,
        )


async def test_the_same_idempotency_key_twice_is_still_one_row(
    psp: Psp, connect: Callable[..., Any]
) -> None:
    since = time.time()
    req = payment(amount=2100)
    connector = connect()
    first = await connector.authorize(req)
    second = await connector.authorize(req)
    assert first.connector_payment_id == second.connector_payment_id
    assert await only_row(psp, req, since) == expected(
        psp, req, first.connector_payment_id, "paid", captured=2100
    )


async def test_a_partial_capture_and_a_partial_refund(
    psp: Psp, connect: Callable[..., Any]
) -> None:
    since = time.time()
    req = payment(amount=5000, capture="manual")
    connector = connect()
    ref = (await connector.authorize(req)).connector_payment_id
    assert ref
    authorised = await only_row(psp, req, since)
    assert (authorised["amount"], authorised["amount_captured"], authorised["charged"]) == (
        5000,
        0,
        False,
    )
    await connector.capture(ref, 3000, f"cap-{ref}")
    refund = await connector.refund(ref, 1000, f"re-{ref}", None, f"re-{ref}")
    assert refund.succeeded in (True, None)
    # Captured 3000 of 5000, then 1000 of it given back; the 2000 never taken is no refund.
    assert await only_row(psp, req, since) == expected(
        psp, req, ref, "paid", captured=3000, refunded=1000
    )


async def test_a_released_authorisation_charged_nothing(
    psp: Psp, connect: Callable[..., Any]
) -> None:
    since = time.time()
    req = payment(amount=1200, capture="manual")
    connector = connect()
    ref = (await connector.authorize(req)).connector_payment_id
    assert ref
    await connector.cancel(ref, f"cancel-{ref}")
    assert await only_row(psp, req, since) == expected(psp, req, ref, "canceled", captured=0)


async def test_reference_filters_and_rows_come_oldest_first(
    psp: Psp, connect: Callable[..., Any]
) -> None:
    connector = connect()
    first, second = payment(amount=1100), payment(amount=1200)
    await connector.authorize(first)
    await connector.authorize(second)
    references = [row["reference"] for row in await ledger(psp)]
    assert references.index(first.payment_id) < references.index(second.payment_id)
    assert len(references) == len(set(references))  # every payment here has its own reference
    assert [r["amount"] for r in await ledger(psp, reference=first.payment_id)] == [1100]
    assert await ledger(psp, reference="pay_nobody") == []


async def test_every_account_is_in_the_one_ledger(psp: Psp, connect: Callable[..., Any]) -> None:
    mine, theirs = payment(amount=1300), payment(amount=1400)
    await connect(0).authorize(mine)
    await connect(1).authorize(theirs)
    rows = {row["reference"]: row for row in await ledger(psp)}
    assert (
        rows[mine.payment_id]["amount_captured"],
        rows[theirs.payment_id]["amount_captured"],
    ) == (1300, 1400)
    references = list(rows)
    assert references.index(mine.payment_id) < references.index(theirs.payment_id)


async def test_an_unknown_query_parameter_is_refused(psp: Psp) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{psp.url}/_ledger", params={"ref": "pay_x"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "Unknown query parameter(s): ref. Only 'reference' is taken."
    )


# -- what the keys column cannot know: requests sent without a key --------------------------


def test_stripe_never_takes_a_capture_or_cancel_key_for_the_create_key() -> None:
    with (
        live_server(StripeSandbox(StripeSandboxSettings()).app) as url,
        httpx.Client(base_url=url, headers={"Authorization": "Bearer sk_test_x"}) as c,
    ):

        def create(reference: str) -> str:
            r = c.post(
                "/v1/payment_intents",
                data={
                    "amount": 5000,
                    "currency": "usd",
                    "payment_method": "pm_card_visa",
                    "confirm": "true",
                    "capture_method": "manual",
                    "metadata[paymesh_payment_id]": reference,
                },
            )  # no Idempotency-Key
            assert r.status_code == 200, r.text
            return cast(str, r.json()["id"])

        captured, canceled = create("pay_captured"), create("pay_canceled")
        assert (
            c.post(
                f"/v1/payment_intents/{captured}/capture",
                data={"amount_to_capture": 3000},
                headers={"Idempotency-Key": "cap-1"},
            ).status_code
            == 200
        )
        assert (
            c.post(
                f"/v1/payment_intents/{canceled}/cancel", headers={"Idempotency-Key": "cancel-1"}
            ).status_code
            == 200
        )
        rows = {r["reference"]: r for r in c.get("/_ledger").json()["payments"]}
    assert [(r["status"], r["amount_captured"], r["idempotency_keys"]) for r in rows.values()] == [
        ("succeeded", 3000, []),
        ("canceled", 0, []),
    ]


def test_adyen_never_takes_a_details_key_for_the_payments_key() -> None:
    sandbox = AdyenSandbox(
        AdyenSandboxSettings(hmac_key=ADYEN_HMAC, merchant_account=ADYEN_MERCHANTS[0])
    )
    with (
        live_server(sandbox.app) as url,
        httpx.Client(base_url=url, headers={"X-API-Key": "AQE_ledger"}) as c,
    ):
        r = c.post(
            "/v71/payments",
            json={  # no Idempotency-Key
                "merchantAccount": ADYEN_MERCHANTS[0],
                "reference": "pay_3ds",
                "amount": {"currency": "USD", "value": 2000},
                "paymentMethod": {
                    "type": "scheme",
                    "storedPaymentMethodId": "pm_card_threeDSecure2Required",
                },
            },
        )
        assert r.json()["resultCode"] == "RedirectShopper"
        page = httpx.get(r.json()["action"]["url"], params={"outcome": "succeed"})
        details = c.post(
            "/v71/payments/details",
            headers={"Idempotency-Key": "details-1"},
            json={"details": {"redirectResult": page.json()["redirectResult"]}},
        )
        assert details.json()["resultCode"] == "Authorised"
        [row] = c.get("/_ledger").json()["payments"]
    assert (row["reference"], row["status"], row["amount_captured"]) == (
        "pay_3ds",
        "Captured",
        2000,
    )
    # Adyen's record keeps no time: without a keyed request to date it, created is unknown.
    assert (row["idempotency_keys"], row["created"]) == ([], None)
