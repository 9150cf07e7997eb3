"""Adyen's Settlement details report CSV, read into a `SettlementReport`.

Columns are found by name (Adyen adds columns over time and per account). A line's `Type`
says what it is: Settled (a capture), Refunded, Chargeback, ChargebackReversed,
MerchantPayout; other types (Fee, DepositCorrection, Balancetransfer, ...) are not movements
paymesh books and are left out. Money is unsigned decimals in major units: the gross in
Gross Debit/Credit (GC), what reaches the merchant in Net Debit/Credit (NC), and the fee is
Commission + Markup + Scheme Fees + Interchange (NC). Times are in the report's `TimeZone`.
Gross and net currencies must be the same: paymesh settles without conversion.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from paymesh.connectors.settlement_csv import read_csv_report
from paymesh.domain.ledger import Move
from paymesh.domain.settlement import MalformedReport, SettlementLine, SettlementReport, minor_units

__all__ = ["parse_report"]

_KINDS = {
    "Settled": Move.CAPTURE,
    "Refunded": Move.REFUND,
    "Chargeback": Move.DISPUTE,
    "ChargebackReversed": Move.DISPUTE_WON,
    "MerchantPayout": Move.PAYOUT,
}
_FEES = ("Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)")
_NEEDED = (
    "Psp Reference",
    "Merchant Reference",
    "Creation Date",
    "TimeZone",
    "Type",
    "Modification Reference",
    "Net Currency",
    "Net Debit (NC)",
    "Net Credit (NC)",
    "Gross Currency",
    "Gross Debit (GC)",
    "Gross Credit (GC)",
)
#: Time zones Adyen writes by abbreviation, as UTC offsets in hours.
_ZONES = {"UTC": 0, "GMT": 0, "WET": 0, "BST": 1, "CET": 1, "WEST": 1, "CEST": 2, "EET": 2}


def parse_report(text: str, day: date) -> SettlementReport:
    return read_csv_report(
        text,
        psp="adyen",
        day=day,
        needed=_NEEDED,
        kind_column="Type",
        kinds=_KINDS,
        line=_line,
        what="an Adyen settlement details report",
    )


def _signed(row: dict[str, str], debit: str, credit: str, currency: str) -> int:
    if row[debit] and row[credit]:
        raise MalformedReport(f"both {debit} and {credit}")
    if row[credit]:
        return minor_units(row[credit], currency)
    return -minor_units(row[debit], currency) if row[debit] else 0


def _line(row: dict[str, str], kind: Move) -> SettlementLine:
    currency = row["Net Currency"].strip()
    net = _signed(row, "Net Debit (NC)", "Net Credit (NC)", currency)
    fee = sum(minor_units(row[c], currency) for c in _FEES if row.get(c))
    if kind == Move.PAYOUT:
        gross = net
    else:
        gross_currency = row["Gross Currency"].strip()
        gross = _signed(row, "Gross Debit (GC)", "Gross Credit (GC)", gross_currency)
        if gross_currency.lower() != currency.lower():
            raise MalformedReport(f"gross in {gross_currency}, net in {currency}")
        if gross - fee != net:
            raise MalformedReport(f"net {net} is not gross {gross} - fees {fee}")
    zone = _ZONES.get(row["TimeZone"].strip())
    if zone is None:
        raise MalformedReport(f"unknown TimeZone {row['TimeZone']!r}")
    created = datetime.strptime(row["Creation Date"].strip(), "%Y-%m-%d %H:%M:%S")
    return SettlementLine(
        # A chargeback and its reversal share their Modification Reference (as Adyen's do):
        # the type tells the lines apart.
        line_id=f"{row['Modification Reference']}:{row['Type']}",
        kind=kind,
        psp_reference=row["Psp Reference"],
        merchant_reference=row["Merchant Reference"],
        currency=currency.lower(),
        gross=gross,
        fee=fee,
        net=net,
        created=created.replace(tzinfo=timezone(timedelta(hours=zone))),
    )
