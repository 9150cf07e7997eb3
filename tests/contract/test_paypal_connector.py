"""The PayPal connector against the PayPal sandbox, over real HTTP, through the shared
connector contract. Webhooks are verified offline against the sandbox's own certificate,
given to the connector as its trust root."""

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import msgspec
import pytest

from paymesh.connectors.paypal import PayPalConnector, PayPalSettings
from paymesh.domain.status import PaymentStatus
from paymesh.sandbox.paypal import PayPalSandbox, PayPalSandboxSettings, SigningIdentity
from paymesh.sandbox.paypal.signing import signed_message
from tests.contract.connector_contract import ConnectorContract, request
from tests.support.live_server import free_port, live_server
from tests.support.webhook_inbox import WebhookInbox

CLIENT_ID = "paymesh-contract"
CLIENT_SECRET = "contract-secret"  # a sandbox test secret
WEBHOOK_ID = "WH-CONTRACT"


@pytest.fixture(scope="module")
def signing() -> SigningIdentity:
    return SigningIdentity.generate()


@pytest.fixture(scope="module")
def sandbox_url(inbox: WebhookInbox, signing: SigningIdentity) -> Iterator[str]:
    sandbox = PayPalSandbox(
        PayPalSandboxSettings(
            webhook_url=inbox.url,
            webhook_id=WEBHOOK_ID,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            signing=signing,
        )
    )
    with live_server(sandbox.app) as base:
        yield base


def settings_for(api_base: str, signing: SigningIdentity) -> PayPalSettings:
    return PayPalSettings(
        api_base=api_base,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        webhook_id=WEBHOOK_ID,
        trusted_cert_pem=signing.cert_pem,
        timeout_seconds=5,
    )


@pytest.fixture
async def connector(sandbox_url: str, signing: SigningIdentity) -> AsyncIterator[PayPalConnector]:
    c = PayPalConnector(settings_for(sandbox_url, signing))
    yield c
    await c.aclose()


@pytest.fixture
async def unreachable(signing: SigningIdentity) -> AsyncIterator[PayPalConnector]:
    c = PayPalConnector(settings_for(f"http://127.0.0.1:{free_port()}", signing))
    yield c
    await c.aclose()


class TestPayPalConnector(ConnectorContract):
    approved = "pm_card_visa"
    declined_insufficient_funds = "pm_card_chargeDeclinedInsufficientFunds"
    needs_authentication = "pm_card_threeDSecure2Required"
    confirms_with_psp = True

    def tamper(self, body: bytes) -> bytes:
        # PayPal writes money as decimal strings: 2600 minor units is "26.00".
        return body.replace(b'"26.00"', b'"27.00"', 1)


async def test_a_body_claiming_a_capture_is_confirmed_as_what_paypal_says(
    connector: PayPalConnector, signing: SigningIdentity
) -> None:
    held = await connector.authorize(request("pm_card_visa", 3100, "manual"))
    order = str(held.connector_payment_id)
    claim = {
        "id": "FORGEDCAPTURE01",
        "status": "COMPLETED",
        "amount": {"currency_code": "USD", "value": "31.00"},
        "custom_id": "pay_someone",
        "supplementary_data": {"related_ids": {"order_id": order}},
    }
    body = msgspec.json.encode(
        {
            "id": "WH-CLAIM",
            "create_time": "2026-11-25T10:00:00Z",
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "resource": claim,
        }
    )
    tid, sent = str(uuid.uuid4()), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    headers = {
        "paypal-transmission-id": tid,
        "paypal-transmission-time": sent,
        "paypal-transmission-sig": signing.sign(signed_message(tid, sent, WEBHOOK_ID, body)),
        "paypal-cert-url": "https://api.paypal.com/certs/1",
        "paypal-auth-algo": "SHA256withRSA",
    }
    [event] = connector.parse_webhook(headers, body, datetime.now(UTC))
    assert event.outcome is not None and event.outcome.status == PaymentStatus.SUCCEEDED
    assert event.transmission_id == tid  # the delivery's id, for the service to mark
    confirmed = await connector.confirm(event)
    assert confirmed is not None and confirmed.outcome is not None
    # The order is only authorised, and it is its own payment's: PayPal's word wins.
    assert (confirmed.outcome.status, confirmed.outcome.amount_capturable) == (
        PaymentStatus.REQUIRES_CAPTURE,
        3100,
    )
    assert (
        confirmed.connector_payment_id,
        confirmed.amount,
        confirmed.currency,
        confirmed.transmission_id,
    ) == (order, 3100, "usd", tid)
    assert confirmed.payment_id != "pay_someone"
