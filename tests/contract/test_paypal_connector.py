"""The PayPal connector against the PayPal sandbox, over real HTTP, through the shared
connector contract. Webhooks are verified offline against the sandbox's own certificate,
given to the connector as its trust root."""

from collections.abc import AsyncIterator, Iterator

import pytest

from paymesh.connectors.paypal import PayPalConnector, PayPalSettings
from paymesh.sandbox.paypal import PayPalSandbox, PayPalSandboxSettings, SigningIdentity
from tests.contract.connector_contract import ConnectorContract
from tests.support.live_server import free_port, live_server

CLIENT_ID = "paymesh-contract"
CLIENT_SECRET = "contract-secret"  # a sandbox test secret
WEBHOOK_ID = "WH-CONTRACT"


@pytest.fixture(scope="module")
def signing() -> SigningIdentity:
    return SigningIdentity.generate()


@pytest.fixture(scope="module")
def sandbox_url(inbox, signing) -> Iterator[str]:
    sandbox = PayPalSandbox(PayPalSandboxSettings(
        webhook_url=inbox.url, webhook_id=WEBHOOK_ID, client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET, signing=signing))
    with live_server(sandbox.app) as base:
        yield base


def settings_for(api_base: str, signing: SigningIdentity) -> PayPalSettings:
    return PayPalSettings(api_base=api_base, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                          webhook_id=WEBHOOK_ID, trusted_cert_pem=signing.cert_pem,
                          timeout_seconds=5)


@pytest.fixture
async def connector(sandbox_url, signing) -> AsyncIterator[PayPalConnector]:
    c = PayPalConnector(settings_for(sandbox_url, signing))
    yield c
    await c.aclose()


@pytest.fixture
async def unreachable(signing) -> AsyncIterator[PayPalConnector]:
    c = PayPalConnector(settings_for(f"http://127.0.0.1:{free_port()}", signing))
    yield c
    await c.aclose()


class TestPayPalConnector(ConnectorContract):
    approved = "pm_card_visa"
    declined_insufficient_funds = "pm_card_chargeDeclinedInsufficientFunds"
    needs_authentication = "pm_card_threeDSecure2Required"

    def tamper(self, body: bytes) -> bytes:
        # PayPal writes money as decimal strings: 2600 minor units is "26.00".
        return body.replace(b'"26.00"', b'"27.00"', 1)
