from collections.abc import AsyncIterator, Iterator

import pytest

from paymesh.connectors.stripe import StripeConnector, StripeSettings
from paymesh.sandbox.stripe import StripeSandbox, StripeSandboxSettings
from tests.contract.connector_contract import ConnectorContract
from tests.support.live_server import free_port, live_server
from tests.support.webhook_inbox import WebhookInbox

KEY = "sk_test_contract"
SECRET = "whsec_contract"


@pytest.fixture(scope="module")
def sandbox_url(inbox: WebhookInbox) -> Iterator[str]:
    sandbox = StripeSandbox(StripeSandboxSettings(webhook_url=inbox.url, webhook_secret=SECRET))
    with live_server(sandbox.app) as base:
        yield base


@pytest.fixture
async def connector(sandbox_url: str) -> AsyncIterator[StripeConnector]:
    c = StripeConnector(
        StripeSettings(
            api_base=sandbox_url, secret_key=KEY, webhook_secret=SECRET, timeout_seconds=5
        )
    )
    yield c
    await c.aclose()


@pytest.fixture
async def unreachable() -> AsyncIterator[StripeConnector]:
    c = StripeConnector(
        StripeSettings(
            api_base=f"http://127.0.0.1:{free_port()}", secret_key=KEY, webhook_secret="whsec_x"
        )
    )
    yield c
    await c.aclose()


class TestStripeConnector(ConnectorContract):
    approved = "pm_card_visa"
    declined_insufficient_funds = "pm_card_chargeDeclinedInsufficientFunds"
    needs_authentication = "pm_card_threeDSecure2Required"
