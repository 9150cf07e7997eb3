"""PayPal's Settlement Report (STL) CSV, read into a `SettlementReport`.

Records are told apart by their first field (RH, FH, SH, CH, SB, SF, SC, RF, RC, FF); the
`CH` record names the `SB` columns, so they are read by name. Amounts are unsigned integers in
the currency's smallest unit, with `Transaction Debit or Credit` and `Fee Debit or Credit`
giving their direction (a record with no amount may leave its direction blank). The
Transaction Event Code says what moved: T00nn a payment received, T1107 a refund, T1201 a
chargeback, T1202 its reversal, T0400 a withdrawal (the payout); other codes are not movements
paymesh books. The `SC` record count is checked against the `SB` records: a truncated file is
malformed, not a day with fewer payments.

PayPal charges a chargeback's fee in a record of its own, T0106, whose `PayPal Reference ID` is
the chargeback's Transaction ID: it is read as that chargeback's fee, as the ledger books it
(one dispute: its amount and its fee). A T0106 whose chargeback is not in the file stays a
line of its own (a dispute of no amount), so its money still counts towards the payout.

`PayPal Reference ID` of type ODR is the order (paymesh's reference of a PayPal payment);
a refund's, chargeback's or reversal's is the capture it follows (TXN), so those find their
payment by `Custom Field`.
"""

from __future__ import annotations

import csv
from dataclasses import replace
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
_CHARGEBACK_FEE = "T0106"


def _kind(code: str) -> Move | None:
    if code.startswith("T00"):  # T0000..T0099: payments received
        return Move.CAPTURE
    return _CODES.get(code)


def parse_report(text: str, day: date) -> SettlementReport:
    columns: list[str] | None = None
    lines: list[SettlementLine] = []
    charged: set[int] = set()  # chargebacks whose T0106 fee is read already
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
                if row["Transaction Event Code"] == _CHARGEBACK_FEE:
                    _charge_fee(lines, charged, row)
                    continue
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
    if value == 0 and not side:
        return 0
    if side not in ("CR", "DR"):
        raise MalformedReport(f"debit or credit is {side!r}")
    return value if side == "CR" else -value


def _charge_fee(lines: list[SettlementLine], charged: set[int], row: dict[str, str]) -> None:
    """Adds a T0106 record's fee to the latest chargeback it names not charged already (a
    chargeback written twice has its fee twice), else keeps it as a line of its own."""
    fee = -_signed(row["Transaction Debit or Credit"], row["Gross Transaction Amount"])
    chargeback = row["PayPal Reference ID"]
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if line.line_id == chargeback and line.kind == Move.DISPUTE and i not in charged:
            if row["Gross Transaction Currency"].lower() != line.currency:
                raise MalformedReport("chargeback fee and chargeback in different currencies")
            lines[i] = replace(line, fee=line.fee + fee, net=line.net - fee)
            charged.add(i)
            return
    lines.append(
        SettlementLine(
            line_id=row["Transaction ID"],
            kind=Move.DISPUTE,
            psp_reference="",
            merchant_reference=_merchant_reference(row),
            currency=row["Gross Transaction Currency"].lower(),
            gross=0,
            fee=fee,
            net=-fee,
            created=_completed(row),
        )
    )


def _merchant_reference(row: dict[str, str]) -> str:
    return row.get("Custom Field") or row.get("Invoice ID") or ""


def _completed(row: dict[str, str]) -> datetime:
    return datetime.strptime(row["Transaction Completion Date"], "%Y/%m/%d %H:%M:%S %z")


def _line(row: dict[str, str]) -> SettlementLine | None:
    kind = _kind(row["Transaction Event Code"])
    if kind is None:
        return None
    currency = row["Gross Transaction Currency"].lower()
    if row["Fee Currency"] and row["Fee Currency"].lower() != currency:
        raise MalformedReport("fee and gross in different currencies")
    gross = _signed(row["Transaction Debit or Credit"], row["Gross Transaction Amount"])
    fee = -_signed(row["Fee Debit or Credit"], row["Fee Amount"])  # a fee debit is a fee
    is_order = row.get("PayPal Reference ID Type") == "ODR"
    return SettlementLine(
        line_id=row["Transaction ID"],
        kind=kind,
        psp_reference=row["PayPal Reference ID"] if is_order else "",
        merchant_reference=_merchant_reference(row),
        currency=currency,
        gross=gross,
        fee=fee,
        net=gross - fee,
        created=_completed(row),
    )
