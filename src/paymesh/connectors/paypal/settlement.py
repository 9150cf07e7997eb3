"""PayPal's Settlement Report (STL) CSV, read into a `SettlementReport`.

Records are told apart by their first field (RH, FH, SH, CH, SB, SF, SC, RF, RC, FF); the
`CH` record names the `SB` columns, so they are read by name. Amounts are unsigned integers in
the currency's smallest unit, with `Transaction Debit or Credit` and `Fee Debit or Credit`
giving their direction. The Transaction Event Code says what moved: T00nn a payment received,
T1107 a refund, T1201 a chargeback, T1202 its reversal, T0400 a withdrawal (the payout); other
codes are not movements paymesh books. The `SC` record count is checked against the `SB`
records: a truncated file is malformed, not a day with fewer payments.

`PayPal Reference ID` of type ODR is the order (paymesh's reference of a PayPal payment);
a refund's is the capture it refunds (TXN), so a refund finds its payment by `Custom Field`.
"""

from __future__ import annotations

import csv
from datetime import date, datetime

from paymesh.domain.ledger import Move
from paymesh.domain.settlement import MalformedReport, SettlementLine, SettlementReport

__all__ = ["parse_report"]

_CODES = {
    "T1107": Move.REFUND,
    "T1201": Move.DISPUTE,
    "T1202": Move.DISPUTE_WON,
    "T0400": Move.PAYOUT,
}


def _kind(code: str) -> Move | None:
    if code.startswith("T00"):  # T0000..T0099: payments received
        return Move.CAPTURE
    return _CODES.get(code)


def parse_report(text: str, day: date) -> SettlementReport:
    columns: list[str] | None = None
    lines: list[SettlementLine] = []
    body = 0
    counted: int | None = None
    for number, record in enumerate(csv.reader(text.lstrip("\ufeff").splitlines()), start=1):
        if not record:
            continue
        kind = record[0]
        if kind == "CH":
            columns = record[1:]
        elif kind == "SB":
            if columns is None:
                raise MalformedReport(f"line {number}: SB before its CH")
            body += 1
            row = dict(zip(columns, record[1:], strict=False))
            try:
                line = _line(row)
            except (KeyError, ValueError) as exc:
                raise MalformedReport(f"line {number}: {exc}") from exc
            if line is not None:
                lines.append(line)
        elif kind == "SC":
            counted = (counted or 0) + int(record[1])
    if columns is None:
        raise MalformedReport("not a PayPal settlement report: no CH record")
    if counted != body:
        raise MalformedReport(f"{body} SB records, the SC record says {counted}")
    return SettlementReport("paypal", day, tuple(lines))


def _signed(side: str, amount: str) -> int:
    value = int(amount or "0")
    if side not in ("CR", "DR"):
        raise MalformedReport(f"debit or credit is {side!r}")
    return value if side == "CR" else -value


def _line(row: dict[str, str]) -> SettlementLine | None:
    kind = _kind(row["Transaction Event Code"])
    if kind is None:
        return None
    currency = row["Gross Transaction Currency"].lower()
    if row["Fee Currency"] and row["Fee Currency"].lower() != currency:
        raise MalformedReport("fee and gross in different currencies")
    gross = _signed(row["Transaction Debit or Credit"], row["Gross Transaction Amount"])
    fee = -_signed(row["Fee Debit or Credit"], row["Fee Amount"])  # a fee debit is a fee
    created = datetime.strptime(row["Transaction Completion Date"], "%Y/%m/%d %H:%M:%S %z")
    is_order = row.get("PayPal Reference ID Type") == "ODR"
    return SettlementLine(
        line_id=row["Transaction ID"],
        kind=kind,
        psp_reference=row["PayPal Reference ID"] if is_order else "",
        merchant_reference=row.get("Custom Field") or row.get("Invoice ID") or "",
        currency=currency,
        gross=gross,
        fee=fee,
        net=gross - fee,
        created=created,
    )
