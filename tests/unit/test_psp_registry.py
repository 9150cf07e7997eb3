"""The PSP registry: one entry per PSP builds its connector and its sandbox from the process's
settings, as bootstrap builds them, and a sandbox and a connector built from one
data directory's secrets agree (the sandbox's signed webhooks verify), without a socket."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from paymesh.bootstrap import build_connectors
from paymesh.config import PSPS, Settings
from paymesh.connectors.adyen.webhook import sign as adyen_sign
from paymesh.connectors.mock_transport import HttpRequest, MockTransport, json_answer
from paymesh.connectors.psp_entry import Sandbox
from paymesh.connectors.registry import REGISTRY, ConnectorSetup
from paymesh.connectors.transport import HttpAnswer
from paymesh.ports.connector import AuthorizeRequest, Connector, PspError
from paymesh.sandbox.paypal import PayPalSandbox
from paymesh.sandbox.paypal.signing import signed_message
from paymesh.sandbox.stripe.events import stripe_signature

SANDBOX_URL = "http://127.0.0.1:9"  # never reached: every call here goes to a MockTransport
#: What `built` yields: the connectors, the sandboxes they share secrets with, the transport.
Built = tuple[dict[str, Connector], dict[str, Sandbox], MockTransport]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(data_dir=tmp_path, psp_timeout=4.5)


@pytest.fixture
async def built(settings: Settings) -> AsyncIterator[Built]:
    secrets = settings.sandbox_secrets
    boxes = {
        psp: entry.sandbox(secrets, f"http://127.0.0.1:9/webhooks/{psp}")
        for psp, entry in REGISTRY.items()
    }

    def answer(req: HttpRequest) -> HttpAnswer:
        return json_answer(503, {"error": {"message": "not here"}})

    transport = MockTransport(answer)
    connectors = {
        psp: entry.connector(
            ConnectorSetup(settings, f"{SANDBOX_URL}/sandbox/{psp}", transport, boxes[psp])
        )
        for psp, entry in REGISTRY.items()
    }
    yield connectors, boxes, transport
    for connector in connectors.values():
        await connector.aclose()


def test_the_registry_names_the_configured_psps_stripe_first() -> None:
    assert tuple(REGISTRY) == PSPS == ("stripe", "adyen", "paypal")
    assert all(entry.name == psp for psp, entry in REGISTRY.items())


async def test_bootstrap_builds_each_enabled_psp_from_the_registry(
    settings: Settings, built: Built
) -> None:
    """Bootstrap's connectors are the registry's: every enabled PSP in the registry's order,
    at the built-in sandbox, on the one transport, PayPal trusting its sandbox's certificate."""
    _, boxes, transport = built
    connectors = build_connectors(settings, SANDBOX_URL, boxes, transport)
    assert list(connectors) == list(REGISTRY)
    for psp, connector in connectors.items():
        assert connector.name == psp
        assert connector.settings.api_base == f"{SANDBOX_URL}/sandbox/{psp}"  # type: ignore[attr-defined]
    paypal_box = boxes["paypal"]
    assert isinstance(paypal_box, PayPalSandbox)
    assert connectors["paypal"].settings.trusted_cert_pem == paypal_box.certificate_pem  # type: ignore[attr-defined]


async def test_the_connectors_share_the_transport_they_are_given(built: Built) -> None:
    connectors, _, transport = built
    for connector in connectors.values():
        request = AuthorizeRequest(
            payment_id="pay_1",
            amount=100,
            currency="usd",
            payment_method="pm_card_visa",
            capture_method="automatic",
            customer_id="cus_1",
            idempotency_key=f"k-{uuid.uuid4()}",
        )
        with pytest.raises(PspError) as info:  # the 503 every call gets here
            await connector.authorize(request)
        assert (info.value.psp, info.value.http_status) == (connector.name, 503)
    assert [
        (r.url.split("/sandbox/")[1].split("/")[0], r.timeout_seconds) for r in transport.requests
    ] == [("stripe", 4.5), ("adyen", 4.5), ("paypal", 4.5)]
    assert not transport.closed


async def test_a_sandbox_and_a_connector_from_one_data_directory_agree(
    built: Built, settings: Settings
) -> None:
    connectors, boxes, _ = built
    now = datetime.now(UTC)
    intent = {
        "id": "pi_1",
        "object": "payment_intent",
        "status": "succeeded",
        "amount": 100,
        "currency": "usd",
        "metadata": {"paymesh_payment_id": "pay_1"},
    }
    body = json.dumps(
        {
            "id": "evt_1",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {"object": intent},
        }
    ).encode()
    secret = boxes["stripe"].settings.webhook_secret  # type: ignore[attr-defined]
    headers = {"stripe-signature": stripe_signature(secret, body, int(time.time()))}
    [event] = connectors["stripe"].parse_webhook(headers, body, now)
    assert event.payment_id == "pay_1"

    item = {
        "pspReference": "PSP0000000000001",
        "eventCode": "AUTHORISATION",
        "success": "true",
        "merchantAccountCode": settings.adyen_merchant_account,
        "merchantReference": "pay_1",
        "amount": {"value": 100, "currency": "USD"},
        "additionalData": {},
    }
    box_key = boxes["adyen"].settings.hmac_key  # type: ignore[attr-defined]
    item["additionalData"] = {"hmacSignature": adyen_sign(item, bytes.fromhex(box_key))}
    body = json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
    ).encode()
    [event] = connectors["adyen"].parse_webhook({}, body, now)
    assert event.payment_id == "pay_1"

    paypal_box = boxes["paypal"]
    assert isinstance(paypal_box, PayPalSandbox)
    capture = {
        "id": "C1",
        "status": "COMPLETED",
        "custom_id": "pay_1",
        "amount": {"currency_code": "USD", "value": "1.00"},
        "supplementary_data": {"related_ids": {"order_id": "O1"}},
    }
    body = json.dumps(
        {
            "id": "WH-1",
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "create_time": now.isoformat(),
            "resource": capture,
        }
    ).encode()
    tid, sent = str(uuid.uuid4()), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    message = signed_message(tid, sent, paypal_box.settings.webhook_id, body)
    headers = {
        "paypal-transmission-id": tid,
        "paypal-transmission-time": sent,
        "paypal-transmission-sig": paypal_box.signing.sign(message),
        "paypal-cert-url": "https://api.paypal.com/certs/1",
        "paypal-auth-algo": "SHA256withRSA",
    }
    [event] = connectors["paypal"].parse_webhook(headers, body, now)
    assert (event.payment_id, event.connector_payment_id) == ("pay_1", "O1")
