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
        T1107 a refund, T1201 a chargeback, T0106 its chargeback fee, T1202 a chargeback
        reversal, T0400 a withdrawal: the payout), dates, gross and fee with their DR/CR,
        Custom Field (paymesh's payment id)
    SF  section footer: gross and fee credit and debit totals, per currency
    SC  section record count (SB lines)
    RF  report footer: the same totals for the report, per currency
    RC  report record count
    FF  file footer: the file's record count

Movements, from the sandbox's records of every client: a capture that took money (COMPLETED,
PARTIALLY_REFUNDED, REFUNDED) when it was made, a COMPLETED refund when it was made, a
dispute when opened and, if the seller won it, its reversal when resolved.

A chargeback is written as PayPal writes it: a T1201 debit of the disputed amount with no fee
of its own, then a T0106 debit of the chargeback fee whose PayPal Reference ID is the T1201's
Transaction ID. A chargeback, its fee and its reversal name the capture (TXN) they follow.
The fee is not given back when the seller wins (T1202 moves the amount only).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from paymesh.domain.ledger import Move
from paymesh.sandbox.paypal.objects import Dispute
from paymesh.sandbox.paypal.state import Merchants
from paymesh.sandbox.settlement import BalanceEntry, DayReport, entry_id, priced

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
_CHARGEBACK_FEE = "T0106"
_TOOK_MONEY = frozenset({"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"})
_SELLER_WON = "RESOLVED_SELLER_FAVOUR"
_ACCOUNT_ID = "PAYMESHSANDBOX"


def balance_entries(merchants: Merchants) -> list[BalanceEntry]:
    return list(_entries(merchants))


def _entries(merchants: Merchants) -> Iterator[BalanceEntry]:
    disputes: dict[str, list[Dispute]] = defaultdict(list)
    for _, dispute, _ in list(merchants.disputes.values()):
        disputes[dispute.capture.id].append(dispute)
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
            for dispute in disputes.get(capture.id, ()):
                yield from _dispute_entries(dispute, capture.custom_id or reference)


def _transaction_id(*parts: str) -> str:
    """A stable 17-character id, shaped like PayPal's transaction ids."""
    return entry_id("", *parts)[:17].upper()


def _dispute_entries(dispute: Dispute, reference: str) -> Iterator[BalanceEntry]:
    kinds = [(Move.DISPUTE, "chargeback", dispute.created)]
    if dispute.outcome == _SELLER_WON and dispute.resolved is not None:
        kinds.append((Move.DISPUTE_WON, "reversal", dispute.resolved))
    for kind, name, at in kinds:
        gross, fee = priced("paypal", kind, dispute.amount.minor)
        transaction = _transaction_id(dispute.id, name)
        yield BalanceEntry(
            id=transaction,
            kind=kind,
            psp_reference=dispute.capture.id,
            source_id=transaction,
            merchant_reference=reference,
            currency=dispute.amount.currency.lower(),
            gross=gross,
            fee=fee,
            created=at,
        )


@dataclass(frozen=True, slots=True)
class _Record:
    """One SB record: amounts unsigned, their direction in `gross_side` and `fee_side`."""

    transaction_id: str
    merchant_reference: str
    reference: str
    reference_type: str
    code: str
    at: datetime
    gross_side: str
    gross: int
    fee_side: str
    fee: int
    currency: str
    bank_reference: str = ""

    def row(self) -> tuple[object, ...]:
        return (
            "SB",
            self.transaction_id,
            self.merchant_reference,
            self.reference,
            self.reference_type,
            self.code,
            _time(self.at),
            _time(self.at),
            self.gross_side,
            self.gross,
            self.currency,
            self.fee_side,
            self.fee,
            self.currency,
            self.merchant_reference,
            "",
            "",
            "",
            self.bank_reference,
            "",
            "",
            "",
        )


def _records(entry: BalanceEntry) -> Iterator[_Record]:
    """The SB records of a movement: one, or for a chargeback two (the T0106 fee apart)."""
    is_capture = entry.kind == Move.CAPTURE
    fee_apart = entry.kind == Move.DISPUTE and entry.fee != 0
    own_fee = 0 if fee_apart else entry.fee
    record = _Record(
        transaction_id=entry.source_id,
        merchant_reference=entry.merchant_reference,
        reference=entry.psp_reference,
        reference_type=("ODR" if is_capture else "TXN") if entry.psp_reference else "",
        code=_EVENT_CODE[entry.kind],
        at=entry.created,
        gross_side="CR" if entry.gross > 0 else "DR",
        gross=abs(entry.gross),
        # A fee is a debit; no fee (refunds, payouts) is written as a zero credit.
        fee_side="DR" if own_fee > 0 else "CR",
        fee=abs(own_fee),
        currency=entry.currency.upper(),
        bank_reference=entry.id if entry.kind == Move.PAYOUT else "",
    )
    yield record
    if fee_apart:
        yield replace(
            record,
            transaction_id=_transaction_id(entry.id, "fee"),
            reference=entry.source_id,
            reference_type="TXN",
            code=_CHARGEBACK_FEE,
            gross_side="DR" if entry.fee > 0 else "CR",
            gross=abs(entry.fee),
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
        for record in _records(entry):
            sums = totals[record.currency]
            sums[0 if record.gross_side == "CR" else 1] += record.gross
            sums[2 if record.fee_side == "CR" else 3] += record.fee
            rows.append(record.row())
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
