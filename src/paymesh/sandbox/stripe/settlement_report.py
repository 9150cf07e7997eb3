"""The Stripe sandbox's settlement report: Stripe's itemized balance change CSV for a day.

Stripe's `balance_change_from_activity.itemized` report (Reporting API, also the Dashboard's
download), with the columns of its payout reconciliation: one row per balance transaction,
amounts in major units as decimals, UTC times, `reporting_category` charge, refund, dispute,
dispute_reversal or payout, and the PaymentIntent's metadata that paymesh sets
(`payment_metadata[paymesh_payment_id]`). The day's automatic payout is its last rows, one per
currency, and each other row names it in `automatic_payout_id`.

Movements, from the sandbox's records of every account:

    charge            a PaymentIntent's capture, when `payment_intent.succeeded` was emitted
    refund            a succeeded Refund, when created
    dispute           a Dispute, when opened: its amount out, the dispute fee as the row's fee
    dispute_reversal  a Dispute won: the balance transaction that gave the amount back (the
                      fee stays taken), when the bank decided
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import msgspec

from paymesh.domain.ledger import Move, schedule
from paymesh.sandbox.settlement import BalanceEntry, DayReport, entry_id, major, priced
from paymesh.sandbox.stripe.accounts import Account, Accounts, Ledger
from paymesh.sandbox.stripe.audit import REFERENCE_KEY
from paymesh.sandbox.stripe.objects import Dispute, Refund

__all__ = ["COLUMNS", "balance_entries", "write_report"]

COLUMNS = (
    "balance_transaction_id",
    "created_utc",
    "available_on_utc",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "description",
    "automatic_payout_id",
    "automatic_payout_effective_at_utc",
    "charge_id",
    "payment_intent_id",
    f"payment_metadata[{REFERENCE_KEY}]",
)

T = TypeVar("T")


class _Succeeded(msgspec.Struct):
    class _Data(msgspec.Struct):
        class _Intent(msgspec.Struct):
            id: str
            amount_received: int
            currency: str
            latest_charge: str | None = None
            metadata: dict[str, str] = {}

        object: _Intent

    created: int
    data: _Data


def balance_entries(accounts: Accounts) -> list[BalanceEntry]:
    return [entry for account in _every_account(accounts) for entry in _account_entries(account)]


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _account_entries(account: Account) -> Iterator[BalanceEntry]:
    references: dict[str, str] = {}
    for stored in _all(account.events):
        if stored.type != "payment_intent.succeeded":
            continue
        event = msgspec.json.decode(stored.body, type=_Succeeded)
        intent = event.data.object
        reference = intent.metadata.get(REFERENCE_KEY, "")
        references[intent.id] = reference
        charge = intent.latest_charge or intent.id
        gross, fee = priced("stripe", Move.CAPTURE, intent.amount_received)
        yield BalanceEntry(
            id=entry_id("txn_", charge, "charge"),
            kind=Move.CAPTURE,
            psp_reference=intent.id,
            source_id=charge,
            merchant_reference=reference,
            currency=intent.currency,
            gross=gross,
            fee=fee,
            created=_at(event.created),
        )
    for refund in _all(account.refunds):
        if refund.status == "succeeded":
            yield _entry_of(Move.REFUND, refund, references)
    for dispute in _all(account.disputes):
        opened = _entry_of(Move.DISPUTE, dispute, references)
        yield opened
        for reversal in dispute.balance_transactions:
            if reversal.get("reporting_category") != "dispute_reversal":
                continue
            # Stripe's own record of the reversal: its id, amount, fee and time as booked.
            yield BalanceEntry(
                id=reversal["id"],
                kind=Move.DISPUTE_WON,
                psp_reference=opened.psp_reference,
                source_id=dispute.id,
                merchant_reference=opened.merchant_reference,
                currency=reversal["currency"],
                gross=int(reversal["amount"]),
                fee=int(reversal["fee"]),
                created=_at(int(reversal["created"])),
            )


_CATEGORY = {
    Move.CAPTURE: "charge",
    Move.REFUND: "refund",
    Move.DISPUTE: "dispute",
    Move.DISPUTE_WON: "dispute_reversal",
    Move.PAYOUT: "payout",
}


def _entry_of(kind: Move, obj: Refund | Dispute, references: dict[str, str]) -> BalanceEntry:
    """The balance transaction of a refund or a dispute: its own id, against its intent."""
    intent_id = obj.payment_intent or ""
    gross, fee = priced("stripe", kind, obj.amount)
    return BalanceEntry(
        id=entry_id("txn_", obj.id),
        kind=kind,
        psp_reference=intent_id,
        source_id=obj.id,
        merchant_reference=references.get(intent_id, ""),
        currency=obj.currency,
        gross=gross,
        fee=fee,
        created=_at(obj.created),
    )


def write_report(report: DayReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    payout_of = {p.currency: p for p in report.payouts}
    settle = schedule("stripe").settle_days
    for entry in (*report.entries, *report.payouts):
        payout = payout_of.get(entry.currency)
        is_payout = entry.kind == Move.PAYOUT
        available = entry.created.date() if is_payout else _plus_days(entry, settle)
        writer.writerow(
            (
                entry.id,
                entry.created.strftime("%Y-%m-%d %H:%M:%S"),
                f"{available} 00:00:00",
                entry.currency,
                major(entry.gross, entry.currency),
                major(entry.fee, entry.currency),
                major(entry.net, entry.currency),
                _CATEGORY[entry.kind],
                entry.source_id,
                "STRIPE PAYOUT" if is_payout else "",
                "" if is_payout or payout is None else payout.source_id,
                "" if payout is None else payout.created.strftime("%Y-%m-%d %H:%M:%S"),
                "" if is_payout else _charge_of(entry),
                entry.psp_reference,
                entry.merchant_reference,
            )
        )
    return out.getvalue()


def _charge_of(entry: BalanceEntry) -> str:
    return entry.source_id if entry.kind == Move.CAPTURE else ""


def _plus_days(entry: BalanceEntry, days: int) -> date:
    return entry.created.date() + timedelta(days=days)


def _every_account(accounts: Accounts) -> Iterable[Account]:
    # Accounts are created on first use of an API key; there is no public list of them.
    return list(accounts._by_key.values())


def _all(ledger: Ledger[T]) -> list[T]:
    newest_first, _ = ledger.page(len(ledger))
    newest_first.reverse()
    return newest_first
