"""The PayPal sandbox's settlement report: PayPal's Settlement Report (STL) CSV for a day.

PayPal's STL file, version 9: records told apart by their first field, every text field
quoted, money as unsigned integers in the currency's smallest unit with a DR/CR column for
its direction:

    RH  report header: generation time, reporting window, account id, report version
    FH  file header: the file's sequence number
    SH  section header: the period (the UTC day) and the account id
    CH  the section body's column names
    SB  one transaction: Transaction ID, Invoice ID, PayPal Reference ID (and its type: ODR
        an order, TXN a transaction), Transaction Event Code (T0006 a checkout payment,
        T1107 a refund, T1201 a chargeback, T1202 its reversal, T0400 a withdrawal: the
        payout), dates, gross and fee with their DR/CR, Custom Field (paymesh's payment id)
    SF  section footer: gross and fee credit and debit totals, per currency
    SC  section record count (SB lines)
    RF  report footer: the same totals for the report, per currency
    RC  report record count
    FF  file footer: the file's record count

Movements, from the sandbox's records of every client: a capture that took money (COMPLETED,
PARTIALLY_REFUNDED, REFUNDED) when it was made, a COMPLETED refund when it was made.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

from paymesh.domain.ledger import Move
from paymesh.sandbox.paypal.state import Merchants
from paymesh.sandbox.settlement import BalanceEntry, DayReport, priced

__all__ = ["BODY_COLUMNS", "balance_entries", "write_report"]

BODY_COLUMNS = (
    "Transaction ID",
    "Invoice ID",
    "PayPal Reference ID",
    "PayPal Reference ID Type",
    "Transaction Event Code",
    "Transaction Initiation Date",
    "Transaction Completion Date",
    "Transaction Debit or Credit",
    "Gross Transaction Amount",
    "Gross Transaction Currency",
    "Fee Debit or Credit",
    "Fee Amount",
    "Fee Currency",
    "Custom Field",
    "Consumer ID",
    "Payment Tracking ID",
    "Store ID",
    "Bank Reference ID",
    "Credit Transactional Fee",
    "Credit Promotional Fee",
    "Credit Term",
)
_EVENT_CODE = {
    Move.CAPTURE: "T0006",
    Move.REFUND: "T1107",
    Move.DISPUTE: "T1201",
    Move.DISPUTE_WON: "T1202",
    Move.PAYOUT: "T0400",
}
_TOOK_MONEY = frozenset({"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"})
_ACCOUNT_ID = "PAYMESHSANDBOX"


def balance_entries(merchants: Merchants) -> list[BalanceEntry]:
    return list(_entries(merchants))


def _entries(merchants: Merchants) -> Iterator[BalanceEntry]:
    for order_id, merchant in list(merchants.by_order.items()):
        order = merchant.orders.get(order_id)
        if order is None:
            continue
        default = order.reference_id if order.reference_id != "default" else None
        reference = order.custom_id or default or ""
        for capture in order.captures:
            if capture.status not in _TOOK_MONEY:
                continue
            gross, fee = priced("paypal", Move.CAPTURE, capture.amount.minor)
            yield BalanceEntry(
                id=capture.id,
                kind=Move.CAPTURE,
                psp_reference=order.id,
                source_id=capture.id,
                merchant_reference=capture.custom_id or reference,
                currency=capture.amount.currency.lower(),
                gross=gross,
                fee=fee,
                created=capture.created,
            )
            for refund in capture.refunds:
                if refund.status != "COMPLETED":
                    continue
                gross, fee = priced("paypal", Move.REFUND, refund.amount.minor)
                yield BalanceEntry(
                    id=refund.id,
                    kind=Move.REFUND,
                    psp_reference=capture.id,
                    source_id=refund.id,
                    merchant_reference=capture.custom_id or reference,
                    currency=refund.amount.currency.lower(),
                    gross=gross,
                    fee=fee,
                    created=refund.created,
                )


def _time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y/%m/%d %H:%M:%S %z")


def write_report(report: DayReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    start = datetime(report.day.year, report.day.month, report.day.day, tzinfo=UTC)
    end = start.replace(hour=23, minute=59, second=59)
    rows: list[tuple[object, ...]] = [
        ("RH", _time(end), "X", _ACCOUNT_ID, 9),
        ("FH", 1),
        ("SH", _time(start), _time(end), _ACCOUNT_ID),
        ("CH", *BODY_COLUMNS),
    ]
    # currency -> [gross CR, gross DR, fee CR, fee DR]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    body = 0
    for entry in (*report.entries, *report.payouts):
        currency = entry.currency.upper()
        gross_side = "CR" if entry.gross > 0 else "DR"
        # A fee is a debit; a zero fee (refunds, payouts) is written as a zero credit.
        fee_side = "DR" if entry.fee > 0 else "CR"
        sums = totals[currency]
        sums[0 if gross_side == "CR" else 1] += abs(entry.gross)
        sums[2 if fee_side == "CR" else 3] += abs(entry.fee)
        is_capture = entry.kind == Move.CAPTURE
        rows.append(
            (
                "SB",
                entry.source_id,
                entry.merchant_reference,
                entry.psp_reference,
                ("ODR" if is_capture else "TXN") if entry.psp_reference else "",
                _EVENT_CODE[entry.kind],
                _time(entry.created),
                _time(entry.created),
                gross_side,
                abs(entry.gross),
                currency,
                fee_side,
                abs(entry.fee),
                currency,
                entry.merchant_reference,
                "",
                "",
                "",
                entry.id if entry.kind == Move.PAYOUT else "",
                "",
                "",
                "",
            )
        )
        body += 1
    for currency, (gcr, gdr, fcr, fdr) in sorted(totals.items()):
        rows.append(("SF", currency, gcr, gdr, fcr, fdr))
    rows.append(("SC", body))
    for currency, (gcr, gdr, fcr, fdr) in sorted(totals.items()):
        rows.append(("RF", currency, gcr, gdr, fcr, fdr))
    rows.append(("RC", body))
    rows.append(("FF", len(rows) + 1))
    writer.writerows(rows)
    return out.getvalue()
