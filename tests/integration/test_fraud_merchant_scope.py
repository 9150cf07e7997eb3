"""Over the API: one merchant's customer traffic never scores another merchant's customer.

Both merchants name a customer "cus_1"; they are two people (customer ids are each
merchant's own). A burst at the first is a velocity alert there, and nothing at the second.
The rules alone score here (no learned model): their features are the subject, and a
model's score of a first payment is small but rarely exactly 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from tests.integration.conftest import Server, start


def pay(client: httpx.Client, method: str, amount: int = 2_000) -> dict[str, Any]:
    body = {
        "amount": amount,
        "currency": "usd",
        "payment_method": method,
        "customer_id": "cus_1",
        "device_id": f"dev-{method}",
    }
    r = client.post("/v1/payments", json=body)
    assert r.status_code in (201, 402), r.text
    return cast(dict[str, Any], r.json())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from start(tmp_path, fraud_model="none")


def test_a_burst_at_one_merchant_does_not_score_the_others_customer(server: Server) -> None:
    with server.client() as shop, server.client(server.other_key) as other:
        for _ in range(6):
            pay(shop, "pm_card_visa")
        seventh = pay(shop, "pm_card_visa")
        assert "velocity_5m" in seventh["fraud"]["factors"]
        # The other shop's first payment for its own cus_1, with another card and device.
        first_at_other = pay(other, "pm_card_mastercard")
        assert first_at_other["fraud"] == {
            "score": 0,
            "factors": [],
            "decision": "allow",
            "model": None,  # the rules alone, as this server is configured
        }
