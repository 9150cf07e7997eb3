"""Each sandbox's settlement report, written in its PSP's format and read back by paymesh's
parser: every movement comes back with its kind, references and amounts, and a damaged file
is refused rather than read as a day with fewer payments."""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import date

import pytest

from paymesh.connectors.adyen.settlement import parse_report as parse_adyen
from paymesh.connectors.paypal.settlement import parse_report as parse_paypal
from paymesh.connectors.stripe.settlement import parse_report as parse_stripe
from paymesh.domain.ledger import Move
from paymesh.domain.settlement import MalformedReport, SettlementReport, minor_units
from paymesh.sandbox.adyen.settlement_report import write_report as write_adyen
from paymesh.sandbox.paypal.settlement_report import write_report as write_paypal
from paymesh.sandbox.settlement import DayReport, day_report
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
    assert {m.kind for m in written.entries} >= {Move.CAPTURE, Move.REFUND, Move.DISPUTE}
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
    assert {r["reporting_category"] for r in rows} == {"charge", "refund", "dispute", "payout"}


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
