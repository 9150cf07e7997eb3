"""Each sandbox's settlement report, written in its PSP's format and read back by paymesh's
parser: every movement comes back with its kind, references and amounts (a dispute with its
fee, a won one's reversal without), and a damaged file is refused rather than read as a day
with fewer payments."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pytest

from paymesh.connectors.adyen.settlement import parse_report as parse_adyen
from paymesh.connectors.paypal.settlement import parse_report as parse_paypal
from paymesh.connectors.stripe.settlement import parse_report as parse_stripe
from paymesh.domain.ledger import LedgerTransaction, Move, schedule
from paymesh.domain.reconciliation import Discrepancy, reconcile
from paymesh.domain.settlement import MalformedReport, SettlementReport, minor_units
from paymesh.sandbox.adyen.settlement_report import write_report as write_adyen
from paymesh.sandbox.paypal.settlement_report import write_report as write_paypal
from paymesh.sandbox.settlement import BalanceEntry, DayReport, day_report
from paymesh.sandbox.settlement_days import generate_days
from paymesh.sandbox.stripe.settlement_report import write_report as write_stripe

Format = tuple[Callable[[DayReport], str], Callable[[str, date], SettlementReport]]
FORMATS: dict[str, Format] = {
    "stripe": (write_stripe, parse_stripe),
    "adyen": (write_adyen, parse_adyen),
    "paypal": (write_paypal, parse_paypal),
}
DAY = date(2026, 3, 1)


def _written(psp: str) -> DayReport:
    [day] = generate_days(psp, DAY, 1, 200, seed=5)
    return day_report(psp, DAY, day.entries)


@pytest.mark.parametrize("psp", FORMATS)
def test_every_movement_and_payout_comes_back(psp: str) -> None:
    write, parse = FORMATS[psp]
    written = _written(psp)
    report = parse(write(written), DAY)
    assert {m.kind for m in written.entries} >= {
        Move.CAPTURE,
        Move.REFUND,
        Move.DISPUTE,
        Move.DISPUTE_WON,
    }
    assert {e.currency for e in written.entries} >= {"usd", "jpy"}  # exponents 2 and 0
    expected = [
        (
            e.kind,
            e.merchant_reference,
            e.currency,
            e.gross,
            e.fee,
            e.net,
            int(e.created.timestamp()),
        )
        for e in (*written.entries, *written.payouts)
    ]
    got = [
        (
            line.kind,
            line.merchant_reference,
            line.currency,
            line.gross,
            line.fee,
            line.net,
            int(line.created.timestamp()),
        )
        for line in report.lines
    ]
    assert got == expected
    assert len({line.line_id for line in report.lines}) == len(report.lines)
    # The payout pays out the day's nets, per currency.
    for payout in report.payouts:
        nets = sum(x.net for x in report.activity if x.currency == payout.currency)
        assert payout.gross == -nets


@pytest.mark.parametrize("psp", ["stripe", "adyen"])
def test_a_capture_names_its_payment_by_the_psps_reference(psp: str) -> None:
    write, parse = FORMATS[psp]
    written = _written(psp)
    report = parse(write(written), DAY)
    assert [x.psp_reference for x in report.activity] == [e.psp_reference for e in written.entries]


def test_paypal_names_the_order_of_a_capture_and_leaves_refunds_to_the_custom_field() -> None:
    written = _written("paypal")
    report = parse_paypal(write_paypal(written), DAY)
    for entry, line in zip(written.entries, report.activity, strict=True):
        assert line.psp_reference == (entry.psp_reference if entry.kind == Move.CAPTURE else "")
        assert line.merchant_reference == entry.merchant_reference


def test_stripe_writes_major_units_and_its_reporting_categories() -> None:
    text = write_stripe(_written("stripe"))
    rows = list(csv.DictReader(text.splitlines()))
    jpy = next(r for r in rows if r["currency"] == "jpy")
    usd = next(r for r in rows if r["currency"] == "usd" and r["reporting_category"] == "charge")
    assert "." not in jpy["gross"] and len(usd["gross"].split(".")[1]) == 2
    assert {r["reporting_category"] for r in rows} == {
        "charge",
        "refund",
        "dispute",
        "dispute_reversal",
        "payout",
    }


def test_a_stripe_row_whose_net_is_not_gross_less_fee_is_refused() -> None:
    text = write_stripe(_written("stripe"))
    header, first, *rest = text.splitlines()
    row = next(csv.reader([first]))
    row[6] = "0.01"  # net
    damaged = "\n".join([header, ",".join(row), *rest])
    with pytest.raises(MalformedReport, match="line 2"):
        parse_stripe(damaged, DAY)


def test_a_truncated_paypal_file_is_refused() -> None:
    lines = write_paypal(_written("paypal")).splitlines()
    cut = [line for i, line in enumerate(lines) if not (line.startswith('"SB"') and i == 5)]
    with pytest.raises(MalformedReport, match="SC record says"):
        parse_paypal("\n".join(cut), DAY)


# --- disputes ---------------------------------------------------------------------------


@dataclass
class _Won:
    """A generated day's disputes that were won: the ledger's transactions, the PSP's
    entries of them (no captures), and the PSP's references of their payments."""

    ledger: list[LedgerTransaction]
    entries: list[BalanceEntry]
    references: dict[str, str]


def _won_disputes(psp: str) -> _Won:
    [day] = generate_days(psp, DAY, 1, 200, seed=5)
    won = {e.merchant_reference for e in day.entries if e.kind == Move.DISPUTE_WON}
    assert len(won) > 1
    return _Won(
        [t for t in day.ledger if t.payment_id in won and t.kind != Move.CAPTURE],
        [e for e in day.entries if e.merchant_reference in won and e.kind != Move.CAPTURE],
        {k: v for k, v in day.references.items() if k in won},
    )


@pytest.mark.parametrize("psp", FORMATS)
def test_a_dispute_and_its_reversal_come_back_as_the_ledger_books_them(psp: str) -> None:
    write, parse = FORMATS[psp]
    won = _won_disputes(psp)
    report = parse(write(day_report(psp, DAY, won.entries)), DAY)
    booked = {(t.payment_id, t.kind): t for t in won.ledger}
    assert len(report.activity) == len(won.entries) == len(booked)
    for line in report.activity:
        txn = booked[(line.merchant_reference, line.kind)]
        assert (line.currency, line.gross, line.fee, line.net) == (
            txn.currency,
            txn.amount,
            txn.fee,
            txn.net,
        )
        assert abs((line.created - txn.created_at).total_seconds()) < 2
    fee = schedule(psp).dispute_fee
    assert {(line.kind, line.fee) for line in report.activity} == {
        (Move.DISPUTE, fee),  # the amount out and the dispute fee
        (Move.DISPUTE_WON, 0),  # the amount back; the fee is not given back
    }
    for payout in report.payouts:  # the fee is paid for out of the payout
        assert payout.gross == -sum(x.net for x in report.activity if x.currency == payout.currency)


def test_stripe_reports_a_dispute_with_its_fee_and_a_won_one_as_a_dispute_reversal() -> None:
    disputes = _won_disputes("stripe").entries
    rows = list(csv.DictReader(write_stripe(day_report("stripe", DAY, disputes)).splitlines()))
    dispute = next(r for r in rows if r["reporting_category"] == "dispute")
    reversal = next(
        r
        for r in rows
        if r["reporting_category"] == "dispute_reversal"
        and r["payment_intent_id"] == dispute["payment_intent_id"]
    )
    assert dispute["fee"] == "15.00" and dispute["gross"].startswith("-")
    assert reversal["gross"] == dispute["gross"].removeprefix("-") == reversal["net"]
    assert reversal["fee"] == "0.00"


def _sb_records(text: str) -> list[dict[str, str]]:
    records = list(csv.reader(text.splitlines()))
    [columns] = [r[1:] for r in records if r[0] == "CH"]
    return [dict(zip(columns, r[1:], strict=False)) for r in records if r[0] == "SB"]


def test_paypal_writes_a_chargeback_its_fee_apart_and_the_reversal_with_their_t_codes() -> None:
    disputes = _won_disputes("paypal").entries
    first = disputes[0].merchant_reference
    mine = [e for e in disputes if e.merchant_reference == first]
    records = _sb_records(write_paypal(day_report("paypal", DAY, mine)))
    chargeback, fee, reversal = (r for r in records if r["Transaction Event Code"] != "T0400")
    amount = str(-mine[0].gross)
    assert (chargeback["Transaction Event Code"], chargeback["Transaction Debit or Credit"]) == (
        "T1201",
        "DR",
    )
    assert (chargeback["Gross Transaction Amount"], chargeback["Fee Amount"]) == (amount, "0")
    assert chargeback["PayPal Reference ID Type"] == "TXN"  # the capture it takes back
    # PayPal's chargeback fee: a debit of its own that names the chargeback.
    assert fee["Transaction Event Code"] == "T0106"
    assert (fee["Transaction Debit or Credit"], fee["Gross Transaction Amount"]) == ("DR", "2000")
    assert fee["PayPal Reference ID"] == chargeback["Transaction ID"]
    assert fee["Transaction ID"] != chargeback["Transaction ID"]
    assert (reversal["Transaction Event Code"], reversal["Transaction Debit or Credit"]) == (
        "T1202",
        "CR",
    )
    assert (reversal["Gross Transaction Amount"], reversal["Fee Amount"]) == (amount, "0")
    assert reversal["Custom Field"] == chargeback["Custom Field"] == first


def test_paypal_reads_each_chargeback_fee_into_the_chargeback_it_names() -> None:
    [chargeback, *_] = [e for e in _won_disputes("paypal").entries if e.kind == Move.DISPUTE]
    # Written twice (PayPal counted it twice): each copy has its own fee, not both on one.
    text = write_paypal(day_report("paypal", DAY, [chargeback], ("duplicate",)))
    report = parse_paypal(text, DAY)
    assert [(x.kind, x.gross, x.fee) for x in report.activity] == 2 * [
        (Move.DISPUTE, chargeback.gross, chargeback.fee)
    ]
    # A fee whose chargeback is in another file still counts, as a dispute of no amount.
    once = write_paypal(day_report("paypal", DAY, [chargeback]))
    alone = [line for line in once.splitlines() if '"T1201"' not in line]
    body = sum(line.startswith('"SB"') for line in alone)
    alone = [re.sub(r'^"(SC|RC)",\d+$', rf'"\1",{body}', line) for line in alone]
    [lone] = parse_paypal("\n".join(alone), DAY).activity
    assert (lone.kind, lone.gross, lone.fee, lone.net) == (Move.DISPUTE, 0, 2_000, -2_000)


@pytest.mark.parametrize("psp", FORMATS)
@pytest.mark.parametrize(
    ("inject", "found"),
    [
        ("amount_mismatch", Discrepancy.AMOUNT_MISMATCH),
        ("fee_mismatch", Discrepancy.FEE_MISMATCH),
        ("duplicate", Discrepancy.DUPLICATE),
        ("currency_mismatch", Discrepancy.CURRENCY_MISMATCH),
    ],
)
def test_a_discrepancy_injected_on_a_dispute_line_is_found_on_it(
    psp: str, inject: str, found: Discrepancy
) -> None:
    write, parse = FORMATS[psp]
    won = _won_disputes(psp)
    written = day_report(psp, DAY, won.entries, (inject,), seed=2)
    result = reconcile(parse(write(written), DAY), won.ledger, won.references)
    [(_, payment_id)] = written.injected
    [exception] = result.exceptions
    assert (exception.type, exception.payment_id) == (found, payment_id)
    assert exception.kind in (Move.DISPUTE, Move.DISPUTE_WON)


@pytest.mark.parametrize("psp", FORMATS)
@pytest.mark.parametrize("kind", [Move.DISPUTE, Move.DISPUTE_WON])
def test_a_dispute_settled_for_another_amount_keeps_its_own_fee(psp: str, kind: Move) -> None:
    [entry, *_] = [e for e in _won_disputes(psp).entries if e.kind == kind]
    [changed] = day_report(psp, DAY, [entry], ("amount_mismatch",)).entries
    # The dispute fee is flat; a reversal has none.
    assert changed.fee == (schedule(psp).dispute_fee if kind == Move.DISPUTE else 0)
    # Still money out for a dispute, back for its reversal: only the amount differs.
    assert changed.gross * entry.gross > 0 and abs(changed.gross) > abs(entry.gross)


def test_a_file_of_another_format_is_refused() -> None:
    with pytest.raises(MalformedReport, match="not an Adyen"):
        parse_adyen(write_stripe(_written("stripe")), DAY)


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [("12.34", "usd", 1234), ("-5", "eur", -500), ("1000", "jpy", 1000), ("1.234", "kwd", 1234)],
)
def test_major_units_become_minor_units_exactly(value: str, currency: str, minor: int) -> None:
    assert minor_units(value, currency) == minor


def test_an_amount_finer_than_the_currency_is_malformed() -> None:
    with pytest.raises(MalformedReport):
        minor_units("10.5", "jpy")
