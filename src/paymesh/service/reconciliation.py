"""Reconcile a PSP's day: read the ledger from the store, the reports from a source, match.

The matching itself is `paymesh.domain.reconciliation.reconcile`; this reads what it needs:

- the day's ledger transactions of the PSP (all merchants) and the day before's, whose
  transactions the day's report may settle late;
- the PSP's reference of every payment they belong to (`connector_payment_id`);
- the reports of the day, of the day before (to know which of its transactions were still
  unsettled) and of the next day (to tell a late line from a missing one), from a
  `ReportSource`: the running sandbox, a downloaded file, a PSP's reporting API. A source
  answers None for a report that is not out (yet).

`ReconciliationJob` is the scheduled job: once a day it reconciles each PSP's day before
yesterday, the last day whose next day's report is out, and keeps the result for the
dashboard and `paymesh reconcile`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from paymesh.domain.ledger import (
    LedgerTransaction,
    fee_adjustment,
    payout,
)
from paymesh.domain.payment import Payment
from paymesh.domain.reconciliation import (
    MATCHED_KINDS,
    Discrepancy,
    Reconciliation,
    reconcile,
)
from paymesh.domain.settlement import SettlementReport
from paymesh.ports.store import Changeset
from paymesh.service import compact_json

log = logging.getLogger(__name__)

__all__ = [
    "LedgerReader",
    "MissingReport",
    "ReconciliationJob",
    "ReportSource",
    "kept_results",
    "ledger_day",
    "reconcile_and_keep",
    "reconcile_day",
    "reconciliation_view",
]

ReportSource = Callable[[date], Awaitable[SettlementReport | None]]


class LedgerReader(Protocol):
    """What reconciliation reads of the store (`LedgerStore` and `PaymentStore`)."""

    async def ledger_transactions(
        self, psp: str, created_gte: datetime, created_lt: datetime
    ) -> list[LedgerTransaction]: ...

    async def get_payment(
        self, payment_id: str, merchant_id: str | None = None
    ) -> Payment | None: ...


class MissingReport(LookupError):
    def __init__(self, psp: str, day: date) -> None:
        super().__init__(f"no {psp} settlement report for {day}")
        self.psp = psp
        self.day = day


async def ledger_day(
    store: LedgerReader, psp: str, day: date, references: dict[str, str] | None = None
) -> tuple[list[LedgerTransaction], dict[str, str]]:
    """The PSP's transactions booked on `day` (UTC), and payment id -> PSP reference for
    their payments (added to `references`, when given). The reference is booked with each
    transaction; a payment is read only for one booked without it (before the PSP answered,
    or before transactions carried it)."""
    start = datetime.combine(day, time(), UTC)
    txns = await store.ledger_transactions(psp, start, start + timedelta(days=1))
    refs = references if references is not None else {}
    for t in txns:
        if t.psp_reference and t.payment_id:
            refs.setdefault(t.payment_id, t.psp_reference)
    for payment_id in {t.payment_id for t in txns if t.payment_id} - set(refs):
        payment = await store.get_payment(payment_id)
        if payment is not None and payment.connector_payment_id:
            refs[payment_id] = payment.connector_payment_id
    return txns, refs


async def reconcile_day(
    store: LedgerReader, psp: str, day: date, reports: ReportSource
) -> Reconciliation:
    result, _, _ = await _reconcile(store, psp, day, reports)
    return result


async def _reconcile(
    store: LedgerReader, psp: str, day: date, reports: ReportSource
) -> tuple[Reconciliation, SettlementReport, list[LedgerTransaction]]:
    """The day's reconciliation, with the report and the day's ledger it was made from."""
    report = await reports(day)
    if report is None:
        raise MissingReport(psp, day)
    refs: dict[str, str] = {}
    today, _ = await ledger_day(store, psp, day, refs)
    before, _ = await ledger_day(store, psp, day - timedelta(days=1), refs)
    previous_report = await reports(day - timedelta(days=1))
    # Without the day before's report, any of its transactions may still be unsettled.
    # The matching runs in a worker thread: a day of a busy merchant is many thousand lines,
    # and on the event loop they would hold up every payment the server is answering.
    carried = (
        (await asyncio.to_thread(reconcile, previous_report, before, refs)).unsettled
        if previous_report is not None
        else tuple(before)
    )
    next_report = await reports(day + timedelta(days=1))
    result = await asyncio.to_thread(
        reconcile, report, today, refs, next_report=next_report, carried=carried
    )
    return result, report, today


def fee_adjustments(
    result: Reconciliation, today: list[LedgerTransaction], at: datetime
) -> list[LedgerTransaction]:
    """The PSP's fee booked for each fee mismatch the reconciliation resolved (one within
    tolerance): an adjustment against the transaction the fee was charged on."""
    booked = {t.id: t for t in (*today, *result.settled_late)}
    return [
        fee_adjustment(booked[e.transaction_id], e.actual, at)
        for e in result.resolved
        if e.type == Discrepancy.FEE_MISMATCH and e.actual is not None
    ]


def payouts_to_book(
    result: Reconciliation,
    report: SettlementReport,
    today: list[LedgerTransaction],
    adjustments: Sequence[LedgerTransaction] = (),
) -> list[LedgerTransaction]:
    """The payouts of a day that reconciled with nothing open, booked per merchant: each gets
    the nets of its transactions the report settled, with their fee `adjustments` (so the
    merchants' payouts add up to the PSP's), moved from `psp_receivable` to `bank` on the
    payout's day; a merchant whose share is negative (more refunded and disputed than
    charged) has it taken from its bank, as the PSP does. A day with anything open books
    none until a later run finds it clean: money is not moved in the books on a report that
    does not agree with them. Ids derive from the payout line: booking twice is booking
    once."""
    if result.open or not report.payouts:
        return []
    pending = {t.id for t in result.unsettled}
    settled = [
        t for t in (*today, *result.settled_late) if t.kind in MATCHED_KINDS and t.id not in pending
    ]
    settled.extend(adjustments)
    booked = []
    for line in report.payouts:
        shares: dict[str, int] = defaultdict(int)
        for t in settled:
            if t.currency == line.currency:
                shares[t.merchant_id] += t.net
        booked += [
            payout(
                event_id=f"payout_{report.psp}_{line.line_id}_{merchant}",
                merchant_id=merchant,
                psp=report.psp,
                currency=line.currency,
                at=line.created,
                amount=amount,
            )
            for merchant, amount in sorted(shares.items())
            if amount  # a merchant whose day nets to nothing moves nothing
        ]
    return booked


# -- the results, kept and shown ------------------------------------------------------------


def reconciliation_view(result: Reconciliation) -> dict[str, Any]:
    """A reconciliation as JSON: what `paymesh reconcile --json` prints, the job keeps and the
    dashboard shows."""
    return {
        "psp": result.psp,
        "date": result.day.isoformat(),
        "lines": result.lines,
        "transactions": result.transactions,
        "items": result.items,
        "reconciled": result.reconciled,
        "rate": round(result.rate, 6),
        "counts": {str(k): v for k, v in result.counts().items()},
        "exceptions": [
            {**asdict(e), "type": str(e.type), "kind": str(e.kind)} for e in result.exceptions
        ],
    }


def result_blob(psp: str, day: date) -> str:
    return f"reconciliation:{psp}:{day.isoformat()}"


class ResultStore(LedgerReader, Protocol):
    """What the job reads, books payouts in and keeps its results in (a `Store`)."""

    async def commit(self, changes: Changeset) -> None: ...

    async def put_blob(self, name: str, data: bytes, at: datetime) -> None: ...

    async def get_blob(self, name: str) -> bytes | None: ...


async def reconcile_and_keep(
    store: ResultStore, psp: str, day: date, reports: ReportSource, now: datetime
) -> dict[str, Any]:
    """Reconcile a day, book its payouts if it is clean (`payouts_to_book`), and keep the
    result (again: a later run replaces it)."""
    result, report, today = await _reconcile(store, psp, day, reports)
    closing = datetime.combine(day, time(23, 59, 59), UTC)
    adjustments = fee_adjustments(result, today, closing)
    payouts = payouts_to_book(result, report, today, adjustments)
    if adjustments or payouts:
        await store.commit(Changeset(ledger=[*adjustments, *payouts]))
    view = reconciliation_view(result)
    view["payouts_booked"] = -sum(t.net for t in payouts)  # paid out: a positive amount
    view["fees_adjusted"] = sum(t.fee for t in adjustments)
    await store.put_blob(result_blob(psp, day), compact_json.encode(view), now)
    return view


async def kept_results(store: ResultStore, psps: list[str], days: list[date]) -> list[Any]:
    """The kept results of these PSPs and days, newest day first; days never run are left out."""
    found = []
    for day in sorted(days, reverse=True):
        for psp in psps:
            raw = await store.get_blob(result_blob(psp, day))
            if raw is not None:
                found.append(compact_json.decode(raw))
    return found


class ReconciliationJob:
    """Once a day per PSP: reconcile the day before yesterday (the last day whose next day's
    report is out, so a late line is told from a missing one), keep the result, and log a
    warning while exceptions are open. It checks every `interval` seconds whether a day is due,
    so a process that was down catches up when it starts."""

    def __init__(
        self,
        store: ResultStore,
        sources: Mapping[str, ReportSource],
        clock: Callable[[], datetime],
        interval: float = 3600.0,
        first_after: float = 60.0,
    ) -> None:
        self.store = store
        self.sources = sources
        self.clock = clock
        self.interval = interval
        #: The first pass waits this long: never in the way of a process's start.
        self.first_after = first_after

    async def run_once(self) -> list[dict[str, Any]]:
        now = self.clock()
        day = now.date() - timedelta(days=2)
        done = []
        for psp, source in self.sources.items():
            if await self.store.get_blob(result_blob(psp, day)) is not None:
                continue
            view = await reconcile_and_keep(self.store, psp, day, source, now)
            opened = sum(1 for e in view["exceptions"] if not e["resolved"])
            (log.warning if opened else log.info)(
                "reconciliation %s %s: %d items, rate %.4f, %d exceptions open",
                psp,
                view["date"],
                view["items"],
                view["rate"],
                opened,
            )
            done.append(view)
        return done

    async def run_forever(self) -> None:
        if not self.sources:
            return  # nothing to read reports from (live mode): see `paymesh reconcile`
        await asyncio.sleep(self.first_after)
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("reconciliation pass failed; the next one will retry")
            await asyncio.sleep(self.interval)
