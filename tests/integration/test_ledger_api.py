"""The ledger through the API (issue 17, item 1): every money movement of real payments on
the Stripe sandbox is booked, balanced, and read back in Stripe's shapes.

The worked example of the README's "Money" section is this test's first one."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server, start


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start(tmp_path_factory.mktemp("ledger"))


def pay(c: httpx.Client, amount: int, method: str = "pm_card_visa") -> dict[str, Any]:
    r = c.post(
        "/v1/payments",
        json={
            "amount": amount,
            "currency": "usd",
            "customer_id": "cus_l",
            "payment_method": method,
        },
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def balance(c: httpx.Client) -> dict[str, Any]:
    b: dict[str, Any] = c.get("/v1/balance").json()
    return b


def accounts(b: dict[str, Any]) -> dict[str, int]:
    return {a["account"]: a["balance"] for a in b["accounts"] if a["currency"] == "usd"}


def test_a_payment_a_partial_refund_a_fee_and_a_lost_dispute(shop: Server) -> None:
    with shop.client() as c:
        first = pay(c, 10_000)
        after_capture = balance(c)
        # 100.00 captured, Stripe's fee 2.9% + 0.30 = 3.20: 96.80 owed, settled in two days.
        assert after_capture["pending"] == [{"amount": 9_680, "currency": "usd"}]
        assert after_capture["available"] == [{"amount": 0, "currency": "usd"}]
        assert accounts(after_capture) == {  # captured at once: no hold was open
            "psp_receivable": 9_680,
            "psp_fees": 320,
            "sales": -10_000,
        }

        r = c.post(f"/v1/payments/{first['id']}/refunds", json={"amount": 2_500})
        assert r.status_code == 201, r.text
        after_refund = balance(c)
        assert after_refund["pending"] == [{"amount": 7_180, "currency": "usd"}]
        assert accounts(after_refund)["refunds"] == 2_500

        disputed = pay(c, 5_000, "pm_card_createDispute")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if accounts(balance(c)).get("disputes"):
                break
            time.sleep(0.1)
        after_dispute = balance(c)
        # 50.00 captured (fee 1.75), then withdrawn by the dispute with Stripe's 15.00 fee.
        assert accounts(after_dispute) == {
            "psp_receivable": 7_180 + 4_825 - 5_000 - 1_500,
            "psp_fees": 320 + 175,
            "dispute_fees": 1_500,
            "disputes": 5_000,
            "refunds": 2_500,
            "sales": -15_000,
        }
        assert sum(accounts(after_dispute).values()) == 0

        moves = c.get("/v1/balance_transactions", params={"limit": 10}).json()["data"]
        assert [(m["type"], m["amount"], m["fee"], m["net"], m["source"]) for m in moves] == [
            ("dispute", -5_000, 1_500, -6_500, disputed["id"]),
            ("charge", 5_000, 175, 4_825, disputed["id"]),
            ("refund", -2_500, 0, -2_500, first["id"]),
            ("charge", 10_000, 320, 9_680, first["id"]),
        ]
        assert {m["status"] for m in moves} == {"pending"}
        one = c.get("/v1/balance_transactions", params={"payment_id": first["id"]}).json()
        assert [m["type"] for m in one["data"]] == ["refund", "charge"]
        paged = c.get("/v1/balance_transactions", params={"limit": 1}).json()
        assert paged["has_more"] and paged["data"][0]["type"] == "dispute"
        rest = c.get(
            "/v1/balance_transactions", params={"starting_after": paged["data"][0]["id"]}
        ).json()
        assert [m["type"] for m in rest["data"]] == ["charge", "refund", "charge"]

    with shop.client(shop.other_key) as other:
        assert balance(other)["pending"] == []  # another merchant sees none of it


def test_a_manual_capture_holds_then_releases_and_a_void_releases(shop: Server) -> None:
    with shop.client(shop.other_key) as c:
        held = c.post(
            "/v1/payments",
            json={
                "amount": 3_000,
                "currency": "usd",
                "customer_id": "cus_h",
                "payment_method": "pm_card_visa",
                "capture_method": "manual",
            },
        ).json()
        assert accounts(balance(c))["authorized_funds"] == 3_000
        voided = c.post(
            "/v1/payments",
            json={
                "amount": 700,
                "currency": "usd",
                "customer_id": "cus_h",
                "payment_method": "pm_card_visa",
                "capture_method": "manual",
            },
        ).json()
        assert accounts(balance(c))["authorized_funds"] == 3_700
        assert c.post(f"/v1/payments/{voided['id']}/cancel").status_code == 200
        assert (
            c.post(f"/v1/payments/{held['id']}/capture", json={"amount": 2_000}).status_code == 200
        )
        sums = accounts(balance(c))
        assert (sums["authorized_funds"], sums["authorizations"]) == (0, 0)
        assert (sums["sales"], sums["psp_fees"]) == (-2_000, 88)


def test_the_balance_needs_a_key(shop: Server, tmp_path: Path) -> None:
    r = httpx.get(shop.base + "/v1/balance")
    assert r.status_code == 401 and r.json()["error"]["code"] == "api_key_missing"
    with shop.client() as c:
        bad = c.get("/v1/balance_transactions", params={"limit": 0})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
        by_currency: dict[str, int] = defaultdict(int)
        for a in balance(c)["accounts"]:
            by_currency[a["currency"]] += a["balance"]
        assert all(v == 0 for v in by_currency.values())
