"""Stripe's itemized balance change / payout reconciliation CSV, read into a `SettlementReport`.

Columns are found by name (Stripe lets the user choose and order them): needed are
`balance_transaction_id`, `created_utc`, `currency`, `gross`, `fee`, `net` and
`reporting_category`; `payment_intent_id` and `payment_metadata[paymesh_payment_id]` link a
row to its payment when present. Amounts are decimals in major units. Rows of categories
paymesh does not book (transfers, adjustments, ...) are left out.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from paymesh.connectors.settlement_csv import read_csv_report
from paymesh.domain.ledger import Move
from paymesh.domain.settlement import MalformedReport, SettlementLine, SettlementReport, minor_units

__all__ = ["parse_report"]

_KINDS = {
    "charge": Move.CAPTURE,
    "refund": Move.REFUND,
    "dispute": Move.DISPUTE,
    "dispute_reversal": Move.DISPUTE_WON,
    "payout": Move.PAYOUT,
}
_NEEDED = ("balance_transaction_id", "created_utc", "currency", "gross", "fee", "net")
_REFERENCE = "payment_metadata[paymesh_payment_id]"


def parse_report(text: str, day: date) -> SettlementReport:
    return read_csv_report(
        text,
        psp="stripe",
        day=day,
        needed=_NEEDED,
        kind_column="reporting_category",
        kinds=_KINDS,
        line=_line,
        what="a Stripe balance report",
    )


def _line(row: dict[str, str], kind: Move) -> SettlementLine:
    currency = row["currency"].strip().lower()
    gross = minor_units(row["gross"], currency)
    fee = minor_units(row["fee"], currency)
    net = minor_units(row["net"], currency)
    if gross - fee != net:
        raise MalformedReport(f"net {row['net']} is not gross {row['gross']} - fee {row['fee']}")
    created = datetime.strptime(row["created_utc"].strip(), "%Y-%m-%d %H:%M:%S")
    return SettlementLine(
        line_id=row["balance_transaction_id"],
        kind=kind,
        psp_reference=row.get("payment_intent_id") or "",
        merchant_reference=row.get(_REFERENCE) or "",
        currency=currency,
        gross=gross,
        fee=fee,
        net=net,
        created=created.replace(tzinfo=UTC),
    )
