"""End to end: payments through a real server (SQLite), its sandbox's settlement report over
HTTP, and `paymesh reconcile` against the server's ledger."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, date, datetime

import httpx
import pytest
from typer.testing import CliRunner

from paymesh.bootstrap import build_store
from paymesh.domain.reconciliation import Discrepancy, Reconciliation
from paymesh.domain.settlement import SettlementReport
from paymesh.entrypoints.cli import app
from paymesh.entrypoints.cli_reconcile import PARSERS
from paymesh.service.reconciliation import reconcile_day
from tests.integration.conftest import Server

PSPS = ("stripe", "adyen", "paypal")


def _pay(server: Server, psp: str, amount: int) -> dict[str, object]:
    with server.client() as client:
        answer = client.post(
            "/v1/payments",
            headers={"Idempotency-Key": uuid.uuid4().hex},
            json={
                "amount": amount,
                "currency": "usd",
                "customer_id": "cus_rec",
                "payment_method": "pm_card_visa",
                "connector": psp,
            },
        )
        assert answer.status_code in (200, 201), answer.text
        payment: dict[str, object] = answer.json()
        deadline = time.monotonic() + 15
        while payment["status"] != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.1)
            payment = client.get(f"/v1/payments/{payment['id']}").json()
        assert payment["status"] == "succeeded"
        return payment


def _booked(server: Server, payment_id: str, count: int) -> None:
    """Wait until the payment's balance transactions are in the ledger."""
    deadline = time.monotonic() + 15
    with server.client() as client:
        while time.monotonic() < deadline:
            page = client.get("/v1/balance_transactions", params={"payment_id": payment_id})
            if page.status_code == 200 and len(page.json()["data"]) >= count:
                return
            time.sleep(0.1)
    raise AssertionError(f"{payment_id} has not {count} balance transactions")


@pytest.mark.parametrize("psp", PSPS)
def test_a_day_of_real_payments_reconciles_with_no_exception(server: Server, psp: str) -> None:
    paid = [_pay(server, psp, amount) for amount in (1_000, 2_550, 9_999)]
    with server.client() as client:
        refund = client.post(
            f"/v1/payments/{paid[0]['id']}/refunds",
            headers={"Idempotency-Key": uuid.uuid4().hex},
            json={"amount": 400},
        )
        assert refund.status_code in (200, 201), refund.text
    _booked(server, str(paid[0]["id"]), 2)
    for payment in paid[1:]:
        _booked(server, str(payment["id"]), 1)
    today = datetime.now(UTC).date().isoformat()
    result = CliRunner().invoke(
        app,
        [
            "reconcile",
            "--psp",
            psp,
            "--date",
            today,
            "--sandbox",
            f"{server.sandbox_url}/sandbox/{psp}",
            "--data-dir",
            str(server.settings.data_dir),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["exceptions"] == []
    assert answer["lines"] == 5  # three captures, a refund, the payout
    assert answer["rate"] == 1.0


def test_a_fee_the_psp_changed_is_an_exception_on_the_real_payment(server: Server) -> None:
    payment = _pay(server, "stripe", 4_200)
    _booked(server, str(payment["id"]), 1)
    today = datetime.now(UTC).date()

    async def report(day: date) -> SettlementReport | None:
        if day != today:
            return None
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"{server.sandbox_url}/sandbox/stripe/_reports/settlement",
                params={"date": day.isoformat(), "inject": "fee_mismatch"},
            )
        return PARSERS["stripe"](answer.text, day)

    async def run() -> Reconciliation:
        store = build_store(server.settings)
        await store.open()
        try:
            return await reconcile_day(store, "stripe", today, report)
        finally:
            await store.close()

    result = asyncio.run(run())
    [fee] = result.exceptions
    assert (fee.type, fee.payment_id) == (Discrepancy.FEE_MISMATCH, payment["id"])
    assert fee.psp_reference == payment["connector_payment_id"]
