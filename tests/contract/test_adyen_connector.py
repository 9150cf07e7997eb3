from collections.abc import AsyncIterator, Iterator

import pytest

from paymesh.connectors.adyen import AdyenConnector, AdyenSettings
from paymesh.sandbox.adyen import AdyenSandbox, AdyenSandboxSettings
from tests.contract.connector_contract import ConnectorContract
from tests.support.live_server import free_port, live_server
from tests.support.webhook_inbox import WebhookInbox

KEY = "AQE_contract_api_key"
HMAC_KEY = "3C71D7C620CA13837C8D1FA38910FC7F39C6955DFBB5478384F23F9619ED7480"
MERCHANT = "PaymeshContract"


@pytest.fixture(scope="module")
def sandbox_url(inbox: WebhookInbox) -> Iterator[str]:
    sandbox = AdyenSandbox(
        AdyenSandboxSettings(webhook_url=inbox.url, hmac_key=HMAC_KEY, merchant_account=MERCHANT)
    )
    with live_server(sandbox.app) as base:
        yield base


@pytest.fixture
async def connector(sandbox_url: str) -> AsyncIterator[AdyenConnector]:
    c = AdyenConnector(
        AdyenSettings(
            api_base=sandbox_url,
            api_key=KEY,
            merchant_account=MERCHANT,
            hmac_key=HMAC_KEY,
            timeout_seconds=5,
        )
    )
    yield c
    await c.aclose()


@pytest.fixture
async def unreachable() -> AsyncIterator[AdyenConnector]:
    c = AdyenConnector(
        AdyenSettings(
            api_base=f"http://127.0.0.1:{free_port()}",
            api_key=KEY,
            merchant_account=MERCHANT,
            hmac_key=HMAC_KEY,
        )
    )
    yield c
    await c.aclose()


class TestAdyenConnector(ConnectorContract):
    approved = "pm_card_visa"
    declined_insufficient_funds = "pm_card_chargeDeclinedInsufficientFunds"
    needs_authentication = "pm_card_threeDSecure2Required"
