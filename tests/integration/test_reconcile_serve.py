"""End to end: payments through a real server (SQLite), its sandbox's settlement report over
HTTP, and `paymesh reconcile` against the server's ledger: captures, refunds, and disputes
opened and won at the PSP."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from typer.testing import CliRunner

from paymesh.bootstrap import build_store, report_sources
from paymesh.connectors import settlement_reports
from paymesh.connectors.settlement_reports import PARSERS, sandbox_source
from paymesh.domain.settlement import SettlementReport
from paymesh.entrypoints.cli import app
from paymesh.service.reconciliation import (
    ReconciliationJob,
    kept_results,
    reconcile_and_keep,
)
from tests.integration.conftest import Server

PSPS = ("stripe", "adyen", "paypal")
T = TypeVar("T")


def _create(client: httpx.Client, psp: str, amount: int, method: str) -> dict[str, object]:
    answer = client.post(
        "/v1/payments",
        headers={"Idempotency-Key": uuid.uuid4().hex},
        json={
            "amount": amount,
            "currency": "usd",
            "customer_id": "cus_rec",
            "payment_method": method,
            "connector": psp,
        },
    )
    assert answer.status_code in (200, 201), answer.text
    created: dict[str, object] = answer.json()
    return created


def _pay(server: Server, psp: str, amount: int) -> dict[str, object]:
    with server.client() as client:
        payment = _create(client, psp, amount, "pm_card_visa")
        deadline = time.monotonic() + 15
        while payment["status"] != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.1)
            payment = client.get(f"/v1/payments/{payment['id']}").json()
        assert payment["status"] == "succeeded"
        return payment


def _reconcile_today(server: Server, psp: str) -> dict[str, Any]:
    """`paymesh reconcile --json` of today, from the server's sandbox and ledger; it must exit
    0 (no exception left open)."""
    result = CliRunner().invoke(
        app,
        [
            *("reconcile", "--psp", psp, "--date", datetime.now(UTC).date().isoformat()),
            *("--sandbox", f"{server.sandbox_url}/sandbox/{psp}"),
            *("--data-dir", str(server.settings.data_dir), "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.output)
    return answer


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
    answer = _reconcile_today(server, psp)
    assert answer["exceptions"] == []
    assert answer["lines"] == 5  # three captures, a refund, the payout
    assert answer["rate"] == 1.0


def test_a_fee_the_psp_changed_within_tolerance_is_booked_as_its_fee(server: Server) -> None:
    """The PSP's report is the truth of what it charged: a fee a few cents off the schedule
    (within 2.5% of the gross) is booked as an adjustment on the payment, the exception is
    resolved, and the day's payout, now agreeing with the books, is booked too. Again: the
    same, once."""
    payment = _pay(server, "stripe", 4_200)
    _booked(server, str(payment["id"]), 1)
    today = datetime.now(UTC).date()
    seen: list[SettlementReport] = []

    async def report(day: date) -> SettlementReport | None:
        if day != today:
            return None
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"{server.sandbox_url}/sandbox/stripe/_reports/settlement",
                params={"date": day.isoformat(), "inject": "fee_mismatch"},
            )
        seen.append(PARSERS["stripe"](answer.text, day))
        return seen[-1]

    async def run() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        store = build_store(server.settings)
        await store.open()
        try:
            first = await reconcile_and_keep(store, "stripe", today, report, datetime.now(UTC))
            again = await reconcile_and_keep(store, "stripe", today, report, datetime.now(UTC))
            txns, _ = await store.balance_transactions("shop", 100)
            return (
                first,
                again,
                [
                    {"kind": str(t.kind), "fee": t.fee, "net": t.net, "payment": t.payment_id}
                    for t in txns
                ],
            )
        finally:
            await store.close()

    first, again, txns = asyncio.run(run())
    [fee] = first["exceptions"]
    assert (fee["type"], fee["payment_id"], fee["resolved"]) == (
        "fee_mismatch",
        payment["id"],
        True,
    )
    assert fee["psp_reference"] == payment["connector_payment_id"]
    assert fee["expected"] == 152  # 2.9% of 42.00 + 0.30, the schedule
    charged = fee["actual"]
    assert 152 < charged <= 152 + 50
    assert first["fees_adjusted"] == charged - 152
    adjustments = [t for t in txns if t["kind"] == "adjustment"]
    assert adjustments == [
        {"kind": "adjustment", "fee": charged - 152, "net": 152 - charged, "payment": payment["id"]}
    ]
    # The payout booked is the PSP's: every line of the day, at the fees it charged.
    paid = -sum(line.gross for line in seen[0].payouts)
    assert first["payouts_booked"] == paid == again["payouts_booked"]
    assert (
        again["exceptions"] == first["exceptions"]
        and again["fees_adjusted"] == first["fees_adjusted"]
    )


def test_the_daily_job_reconciles_the_day_before_yesterday_once_and_keeps_it(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job, two days from now, finds today's payments settled: it reconciles today from
    each sandbox's report, keeps the result (which the dashboard and a rerun read), and on
    its next pass leaves the kept day alone. Beside the payments it holds the event loop
    little: one TLS context for all its fetches, and each report parsed in a worker thread."""
    payment = _pay(server, "adyen", 3_300)
    _booked(server, str(payment["id"]), 1)
    today = datetime.now(UTC).date()
    two_days_on = datetime.now(UTC) + timedelta(days=2)
    sources = {psp: sandbox_source(f"{server.sandbox_url}/sandbox/{psp}", psp) for psp in PSPS}
    contexts = []
    parsed_in: list[int] = []

    def counted_context() -> ssl.SSLContext:
        contexts.append(made := ssl.create_default_context())
        return made

    def parse_noting_thread(psp: str) -> Callable[[str, date], SettlementReport]:
        def parse(text: str, day: date) -> SettlementReport:
            parsed_in.append(threading.get_ident())
            return PARSERS[psp](text, day)

        return parse

    monkeypatch.setattr(settlement_reports, "_tls", None)
    monkeypatch.setattr(httpx, "create_ssl_context", counted_context)
    monkeypatch.setattr(
        settlement_reports, "PARSERS", {psp: parse_noting_thread(psp) for psp in PSPS}
    )

    async def run() -> tuple[list[dict[str, object]], list[dict[str, object]], list[object]]:
        store = build_store(server.settings)
        await store.open()
        try:
            job = ReconciliationJob(store, sources, clock=lambda: two_days_on)
            first = await job.run_once()
            again = await job.run_once()
            # The clean day's payout moved the payment's net from the receivable to the bank
            # (Adyen: 33.00 less 1.2% + 0.12 = 32.48); reconciling the day again books nothing
            # more and agrees with the payout now in the ledger.
            books = await store.ledger_balances("shop", two_days_on.date())
            assert (books["bank", "usd"], books["psp_receivable", "usd"]) == ((3_248, 0), (0, 0))
            rerun = await reconcile_and_keep(
                store, "adyen", today, sources["adyen"], datetime.now(UTC)
            )
            assert (rerun["exceptions"], rerun["payouts_booked"]) == ([], 3_248)
            assert await store.ledger_balances("shop", two_days_on.date()) == books
            kept = await kept_results(store, list(PSPS), [today])
            return first, again, kept
        finally:
            await store.close()

    first, again, kept = asyncio.run(run())
    # Today's and yesterday's report of each PSP (tomorrow's is not out), then Adyen's again.
    assert len(parsed_in) == 3 * 2 + 2
    assert threading.get_ident() not in parsed_in and len(contexts) == 1
    assert sorted(str(v["psp"]) for v in first) == sorted(PSPS)
    assert again == []
    adyen = next(v for v in kept if isinstance(v, dict) and v["psp"] == "adyen")
    assert (adyen["date"], adyen["exceptions"]) == (today.isoformat(), [])
    assert adyen["reconciled"] == adyen["items"] >= 1


def test_reports_are_read_beside_each_sandbox_psps_api_and_never_from_a_live_one(
    server: Server,
) -> None:
    from dataclasses import replace

    beside = replace(server.settings, stripe_api_base="http://127.0.0.1:9/sandbox/stripe")
    assert sorted(report_sources(beside, None)) == ["stripe"]  # the others are built in
    assert report_sources(replace(beside, mode="live", sandbox_psps=()), None) == {}


# --- disputes ---------------------------------------------------------------------------


def _poll(probe: Callable[[], T], done: Callable[[T], bool], seconds: float = 15) -> T:
    deadline = time.monotonic() + seconds
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = probe()
    return value


def _disputed_and_won(server: Server, psp: str, amount: int) -> str:
    """A payment captured with the dispute card, its dispute won at the PSP (the sandbox
    playing the bank) and applied by paymesh from the PSP's webhooks: its id."""
    with server.client() as client:
        payment_id = str(_create(client, psp, amount, "pm_card_createDispute")["id"])
        dispute = f"/v1/disputes/dsp_{payment_id.removeprefix('pay_')}"
        opened = _poll(lambda: client.get(dispute), lambda r: r.status_code == 200)
        assert opened.status_code == 200, f"{psp}: the dispute never opened: {opened.text}"
        closed = httpx.post(
            f"{server.sandbox_url}/sandbox/{psp}/_disputes/"
            f"{opened.json()['connector_dispute_id']}/close",
            json={"outcome": "won"},
        )
        assert closed.status_code == 200, closed.text
        won = _poll(lambda: client.get(dispute).json(), lambda d: d["status"] == "won")
        assert won["status"] == "won", f"{psp}: the verdict never applied: {won}"
    return payment_id


@pytest.mark.parametrize(
    "psp",
    [
        "stripe",
        # Adyen names a chargeback and its reversal by the same Modification Reference:
        # its report's reader tells the lines apart by their type.
        "adyen",
        "paypal",
    ],
)
def test_a_dispute_won_at_the_psp_reconciles_with_no_exception(server: Server, psp: str) -> None:
    payment_id = _disputed_and_won(server, psp, 3_100)
    _booked(server, payment_id, 3)  # the charge, the dispute with its fee, the reversal
    answer = _reconcile_today(server, psp)
    # Were the dispute or its reversal left out of the report, or settled at other amounts,
    # fees or days than the ledger booked, each would be an exception here.
    assert answer["exceptions"] == []
    assert answer["lines"] == 4  # the capture, the dispute, its reversal, the payout
    assert (answer["transactions"], answer["rate"]) == (3, 1.0)
