"""The Adyen sandbox's settlement report: Adyen's Settlement details report CSV for a day.

One header line, then a line per journal entry in Adyen's standard columns: `Type` Settled
(a capture), Refunded, Chargeback, ChargebackReversed, and MerchantPayout closing the batch.
`Psp Reference` is the payment's, `Modification Reference` the movement's own pspReference,
`Merchant Reference` the payment's reference (paymesh's payment id); amounts are decimals in
major units, unsigned, in the Gross Debit/Credit (GC) and Net Debit/Credit (NC) columns; the
fee is in `Commission (NC)` (blended pricing: no Interchange++ split). Times are UTC.

Adyen's payment record keeps no times, so the sandbox keeps a journal as it notifies: each
money movement is booked when its notification is made (an automatic capture with its
AUTHORISATION, a manual one with its CAPTURE, a REFUND, a CHARGEBACK, a CHARGEBACK_REVERSED),
whether or not a webhook URL is set.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from paymesh.domain.ledger import Move
from paymesh.sandbox.adyen.ledger import Ledger
from paymesh.sandbox.adyen.notifications import Destination, Item, Notifier, Sender
from paymesh.sandbox.settlement import BalanceEntry, DayReport, entry_id, major, priced

__all__ = ["COLUMNS", "JournalingNotifier", "SettlementJournal", "write_report"]

COLUMNS = (
    "Company Account",
    "Merchant Account",
    "Psp Reference",
    "Merchant Reference",
    "Payment Method",
    "Creation Date",
    "TimeZone",
    "Type",
    "Modification Reference",
    "Gross Currency",
    "Gross Debit (GC)",
    "Gross Credit (GC)",
    "Exchange Rate",
    "Net Currency",
    "Net Debit (NC)",
    "Net Credit (NC)",
    "Commission (NC)",
    "Markup (NC)",
    "Scheme Fees (NC)",
    "Interchange (NC)",
    "Payment Method Variant",
    "Modification Merchant Reference",
    "Batch Number",
)

_TYPE = {
    Move.CAPTURE: "Settled",
    Move.REFUND: "Refunded",
    Move.DISPUTE: "Chargeback",
    Move.DISPUTE_WON: "ChargebackReversed",
    Move.PAYOUT: "MerchantPayout",
}
_EVENTS = {
    "CAPTURE": Move.CAPTURE,
    "REFUND": Move.REFUND,
    "CHARGEBACK": Move.DISPUTE,
    "CHARGEBACK_REVERSED": Move.DISPUTE_WON,
}
_COMPANY = "PaymeshSandboxCompany"


@dataclass
class SettlementJournal:
    """Every money movement, oldest first (bounded like the sandbox's payments)."""

    limit: int = 100_000
    entries: deque[BalanceEntry] = field(default_factory=deque)

    def book(self, entry: BalanceEntry) -> None:
        self.entries.append(entry)
        if len(self.entries) > self.limit:
            self.entries.popleft()


class JournalingNotifier(Notifier):
    """The sandbox's notifier, booking each money movement in the journal as it notifies."""

    def __init__(
        self, destination: Destination, sender: Sender, ledger: Ledger, journal: SettlementJournal
    ) -> None:
        super().__init__(destination, sender)
        self._ledger = ledger
        self._journal = journal

    def send(self, items: list[Item]) -> None:
        for item in items:
            self._book(item)
        super().send(items)

    def _book(self, item: Item) -> None:
        code = item["eventCode"]
        if item.get("success") != "true":
            return
        if code == "AUTHORISATION":
            payment = self._ledger.payments.get(item["pspReference"])
            if payment is None or payment.manual_capture or not payment.amount_captured:
                return
            kind, payment_ref = Move.CAPTURE, payment.psp_reference
        elif code in _EVENTS:
            kind, payment_ref = _EVENTS[code], item.get("originalReference", "")
            payment = self._ledger.payments.get(payment_ref)
        else:
            return
        value = int(item["amount"]["value"])
        gross, fee = priced("adyen", kind, value)
        reference = payment.reference if payment is not None else item["merchantReference"]
        self._journal.book(
            BalanceEntry(
                id=entry_id("", item["pspReference"], code)[:16].upper(),
                kind=kind,
                psp_reference=payment_ref,
                source_id=item["pspReference"],
                merchant_reference=reference,
                currency=str(item["amount"]["currency"]).lower(),
                gross=gross,
                fee=fee,
                created=datetime.fromisoformat(item["eventDate"]),
                payment_method=item.get("paymentMethod") or "visa",
                modification_reference=item["merchantReference"],
            )
        )


def write_report(report: DayReport, merchant_account: str = "PaymeshSandbox") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    batch = str(report.day.toordinal() - 738_000)  # one batch a day, numbered upwards
    for entry in (*report.entries, *report.payouts):
        currency = entry.currency.upper()
        is_payout = entry.kind == Move.PAYOUT
        gross = "" if is_payout else major(abs(entry.gross), currency)
        net = major(abs(entry.net), currency)
        credit = entry.gross > 0
        writer.writerow(
            (
                _COMPANY,
                merchant_account,
                entry.psp_reference,
                entry.merchant_reference,
                entry.payment_method,
                entry.created.strftime("%Y-%m-%d %H:%M:%S"),
                "UTC",
                _TYPE[entry.kind],
                entry.source_id if not is_payout else entry.id,
                "" if is_payout else currency,
                "" if credit else gross,
                gross if credit else "",
                "" if is_payout else "1",
                currency,
                "" if entry.net > 0 else net,
                net if entry.net > 0 else "",
                major(entry.fee, currency) if entry.fee else "",
                "",
                "",
                "",
                "" if is_payout else f"{entry.payment_method}classic",
                ""
                if entry.modification_reference == entry.merchant_reference
                else entry.modification_reference,
                batch,
            )
        )
    return out.getvalue()
