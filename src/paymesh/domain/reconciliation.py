"""Reconciliation: a PSP's settlement report for a day against the ledger's transactions.

Every report line is matched to a ledger transaction of the same payment and kind (the
payment found by the PSP's reference, else by the merchant reference the PSP echoes), the
closest first: same currency, gross and fee, then same gross, then any. What does not match
becomes an exception, typed:

    missing            booked in the ledger, in neither this day's report nor the next's
    timing             booked, not in this day's report: resolved when the next day's report
                       has it, open while that report is not out yet
    unknown            a line for no ledger transaction the PSP could mean
    duplicate          a line the report already has (same line id, or the same payment,
                       kind and amounts as a line already matched)
    currency_mismatch  the line's currency is not the transaction's
    amount_mismatch    the line's gross is not the transaction's amount
    fee_mismatch       the gross agrees, the fee does not: resolved, the PSP's fee booked by
                       an adjustment, when the difference is within `fee_tolerance_bps` of
                       the gross (a card's cross-border or conversion surcharge), open above
    payout_mismatch    a payout is not the sum of the day's nets in its currency (or not
                       the payout the ledger booked)

A transaction booked on an earlier day and still unsettled (`carried`) that shows up today
settles then: a timing difference that resolved itself, not an exception of today.

Pure: no I/O. The caller reads the ledger and the reports (`paymesh.service.reconciliation`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from paymesh.domain.ledger import BALANCE_KINDS, LedgerTransaction, Move
from paymesh.domain.settlement import SettlementLine, SettlementReport

__all__ = ["Discrepancy", "Reconciliation", "ReconciliationException", "reconcile"]


class Discrepancy(StrEnum):
    MISSING = "missing"
    TIMING = "timing"
    UNKNOWN = "unknown"
    DUPLICATE = "duplicate"
    CURRENCY_MISMATCH = "currency_mismatch"
    AMOUNT_MISMATCH = "amount_mismatch"
    FEE_MISMATCH = "fee_mismatch"
    PAYOUT_MISMATCH = "payout_mismatch"


@dataclass(frozen=True, slots=True)
class ReconciliationException:
    type: Discrepancy
    kind: Move
    currency: str
    #: What the ledger (or, for a payout, the report's own lines) says, and what the line
    #: says: the gross, or the fee for a fee mismatch. None on the side that has nothing.
    expected: int | None
    actual: int | None
    payment_id: str = ""
    psp_reference: str = ""
    line_id: str = ""
    transaction_id: str = ""
    resolved: bool = False
    detail: str = ""


@dataclass(frozen=True)
class Reconciliation:
    psp: str
    day: date
    lines: int
    transactions: int
    #: Items reconciled with no open exception: ledger transactions settled, payouts that add
    #: up, and earlier transactions that settled today.
    reconciled: int
    exceptions: tuple[ReconciliationException, ...]
    #: Today's transactions not in today's report: the next day's `carried`.
    unsettled: tuple[LedgerTransaction, ...] = ()
    #: Earlier days' transactions that today's report settled.
    settled_late: tuple[LedgerTransaction, ...] = ()

    @property
    def items(self) -> int:
        """What was to reconcile: each ledger transaction, each payout, and each line that
        stands for no transaction (unknown, duplicate)."""
        return self.reconciled + len(self.open)

    @property
    def open(self) -> tuple[ReconciliationException, ...]:
        return tuple(e for e in self.exceptions if not e.resolved)

    @property
    def resolved(self) -> tuple[ReconciliationException, ...]:
        return tuple(e for e in self.exceptions if e.resolved)

    @property
    def rate(self) -> float:
        """The share of items reconciled with no one looking: 1.0 on a clean day."""
        return self.reconciled / self.items if self.items else 1.0

    def counts(self) -> dict[Discrepancy, int]:
        found = Counter(e.type for e in self.exceptions)
        return {kind: found[kind] for kind in Discrepancy if found[kind]}


_Key = tuple[str, Move]  # payment id, kind


@dataclass
class _Pool:
    """The ledger transactions still unmatched, by payment and kind, oldest first."""

    by_key: dict[_Key, list[LedgerTransaction]] = field(default_factory=lambda: defaultdict(list))
    matched: dict[_Key, list[tuple[LedgerTransaction, SettlementLine]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def add(self, txn: LedgerTransaction) -> None:
        self.by_key[(txn.payment_id, txn.kind)].append(txn)

    def take(self, key: _Key, line: SettlementLine) -> LedgerTransaction | None:
        candidates = self.by_key.get(key)
        if not candidates:
            return None
        best = min(range(len(candidates)), key=lambda i: _distance(candidates[i], line))
        txn = candidates.pop(best)
        self.matched[key].append((txn, line))
        return txn

    def remaining(self) -> Iterable[LedgerTransaction]:
        for txns in self.by_key.values():
            yield from txns


def _distance(txn: LedgerTransaction, line: SettlementLine) -> tuple[int, int, int, float]:
    return (
        txn.currency != line.currency,
        txn.amount != line.gross,
        txn.fee != line.fee,
        txn.created_at.timestamp(),
    )


#: Stripe's surcharges on a card from abroad (1.5%) paid in another currency (1%): a fee
#: that differs by no more is the PSP's price for the card, booked without asking anyone.
FEE_TOLERANCE_BPS = 250

#: What a settlement line settles: not payouts (checked apart) nor adjustments (booked by
#: reconciliation itself against a transaction that is matched).
MATCHED_KINDS = BALANCE_KINDS - {Move.PAYOUT, Move.ADJUSTMENT}


def reconcile(
    report: SettlementReport,
    ledger: Sequence[LedgerTransaction],
    references: Mapping[str, str],
    *,
    next_report: SettlementReport | None = None,
    carried: Sequence[LedgerTransaction] = (),
    fee_tolerance_bps: int = FEE_TOLERANCE_BPS,
) -> Reconciliation:
    """Match `report` (the PSP's day) to `ledger` (the day's transactions of that PSP).

    `references` maps a payment id to the PSP's reference of it. `next_report`, when out,
    tells a late line from a missing one; `carried` are earlier transactions still unsettled.
    """
    by_psp_ref = {ref: payment_id for payment_id, ref in references.items() if ref}
    today = [t for t in ledger if t.kind in MATCHED_KINDS]
    late = [t for t in carried if t.kind in MATCHED_KINDS]
    known = {t.payment_id for t in (*today, *late)} | set(references)
    pool = _Pool()
    for booked in sorted((*today, *late), key=lambda t: t.created_at):
        pool.add(booked)
    earlier = {t.id for t in late}

    exceptions: list[ReconciliationException] = []
    seen_lines: set[str] = set()
    settled_late: list[LedgerTransaction] = []
    reconciled = 0

    def payment_of(line: SettlementLine) -> str | None:
        if line.psp_reference in by_psp_ref:
            return by_psp_ref[line.psp_reference]
        if line.merchant_reference in known:
            return line.merchant_reference
        return None

    for line in report.activity:
        payment_id = payment_of(line)
        if line.line_id in seen_lines:
            exceptions.append(_about_line(Discrepancy.DUPLICATE, line, payment_id, "line repeated"))
            continue
        seen_lines.add(line.line_id)
        if payment_id is None:
            exceptions.append(_about_line(Discrepancy.UNKNOWN, line, None, "no such payment"))
            continue
        key = (payment_id, line.kind)
        txn = pool.take(key, line)
        if txn is None:
            twin = any(_same_money(done, line) for done, _ in pool.matched.get(key, ()))
            kind = Discrepancy.DUPLICATE if twin else Discrepancy.UNKNOWN
            detail = "settled twice" if twin else f"no {line.kind} booked for the payment"
            exceptions.append(_about_line(kind, line, payment_id, detail))
            continue
        problem = _compare(txn, line, fee_tolerance_bps)
        if problem is not None:
            exceptions.append(problem)
        else:
            reconciled += 1
        if txn.id in earlier:
            settled_late.append(txn)

    unsettled = [t for t in pool.remaining() if t.id not in earlier]
    exceptions.extend(_unsettled(unsettled, next_report, payment_of, references))
    payout_problems, payouts_ok = _payouts(report, [t for t in ledger if t.kind == Move.PAYOUT])
    exceptions.extend(payout_problems)
    reconciled += payouts_ok + sum(1 for e in exceptions if e.resolved)
    return Reconciliation(
        psp=report.psp,
        day=report.day,
        lines=len(report.lines),
        transactions=len(today),
        reconciled=reconciled,
        exceptions=tuple(exceptions),
        unsettled=tuple(unsettled),
        settled_late=tuple(settled_late),
    )


def _same_money(txn: LedgerTransaction, line: SettlementLine) -> bool:
    return (txn.currency, txn.amount, txn.fee) == (line.currency, line.gross, line.fee)


def _about_line(
    kind: Discrepancy, line: SettlementLine, payment_id: str | None, detail: str
) -> ReconciliationException:
    return ReconciliationException(
        type=kind,
        kind=line.kind,
        currency=line.currency,
        expected=None,
        actual=line.gross,
        payment_id=payment_id or line.merchant_reference,
        psp_reference=line.psp_reference,
        line_id=line.line_id,
        detail=detail,
    )


def _compare(
    txn: LedgerTransaction, line: SettlementLine, fee_tolerance_bps: int
) -> ReconciliationException | None:
    def problem(
        kind: Discrepancy, expected: int, actual: int, detail: str, resolved: bool = False
    ) -> ReconciliationException:
        return ReconciliationException(
            type=kind,
            kind=txn.kind,
            currency=line.currency,
            expected=expected,
            actual=actual,
            payment_id=txn.payment_id,
            psp_reference=line.psp_reference,
            line_id=line.line_id,
            transaction_id=txn.id,
            resolved=resolved,
            detail=detail,
        )

    if txn.currency != line.currency:
        return problem(
            Discrepancy.CURRENCY_MISMATCH,
            txn.amount,
            line.gross,
            f"booked in {txn.currency}, settled in {line.currency}",
        )
    if txn.amount != line.gross:
        return problem(Discrepancy.AMOUNT_MISMATCH, txn.amount, line.gross, "gross differs")
    if txn.fee != line.fee:
        if abs(line.fee - txn.fee) * 10_000 <= abs(line.gross) * fee_tolerance_bps:
            return problem(
                Discrepancy.FEE_MISMATCH, txn.fee, line.fee, "the PSP's fee booked", True
            )
        return problem(Discrepancy.FEE_MISMATCH, txn.fee, line.fee, "fee differs")
    return None


def _unsettled(
    txns: Sequence[LedgerTransaction],
    next_report: SettlementReport | None,
    payment_of: Callable[[SettlementLine], str | None],
    references: Mapping[str, str],
) -> list[ReconciliationException]:
    """Today's transactions the report left out: late if tomorrow's report has them."""
    tomorrow: Counter[_Key] = Counter()
    if next_report is not None:
        for line in next_report.activity:
            payment_id = payment_of(line)
            if payment_id is not None:
                tomorrow[(payment_id, line.kind)] += 1
    found = []
    for txn in txns:
        key = (txn.payment_id, txn.kind)
        if next_report is None:
            kind, resolved, detail = Discrepancy.TIMING, False, "not settled yet"
        elif tomorrow[key] > 0:
            tomorrow[key] -= 1
            kind, resolved, detail = Discrepancy.TIMING, True, "settled the next day"
        else:
            kind, resolved, detail = Discrepancy.MISSING, False, "in neither day's report"
        found.append(
            ReconciliationException(
                type=kind,
                kind=txn.kind,
                currency=txn.currency,
                expected=txn.amount,
                actual=None,
                payment_id=txn.payment_id,
                psp_reference=references.get(txn.payment_id, ""),
                transaction_id=txn.id,
                resolved=resolved,
                detail=detail,
            )
        )
    return found


def _payouts(
    report: SettlementReport, booked: Sequence[LedgerTransaction]
) -> tuple[list[ReconciliationException], int]:
    """Each payout must pay out the day's nets in its currency, and be what the ledger
    booked as paid out, when it booked payouts. Also: how many payout lines add up."""
    if not report.payouts:
        return [], 0
    nets: Counter[str] = Counter()
    for line in report.activity:
        nets[line.currency] += line.net
    paid: dict[str, list[SettlementLine]] = defaultdict(list)
    for line in report.payouts:
        paid[line.currency].append(line)
    ledger_paid: Counter[str] = Counter()
    for txn in booked:
        ledger_paid[txn.currency] += txn.amount
    found = []
    ok = 0
    for currency in sorted(set(nets) | set(paid)):
        lines = paid.get(currency, [])
        total = sum(line.gross for line in lines)
        expected = -nets[currency]
        if currency in ledger_paid and ledger_paid[currency] != total:
            expected, detail = ledger_paid[currency], "not the payout the ledger booked"
        elif total != expected:
            detail = "not the sum of the day's nets"
        else:
            ok += len(lines)
            continue
        found.append(
            ReconciliationException(
                type=Discrepancy.PAYOUT_MISMATCH,
                kind=Move.PAYOUT,
                currency=currency,
                expected=expected,
                actual=total,
                psp_reference=lines[0].psp_reference if lines else "",
                line_id=",".join(line.line_id for line in lines),
                detail=detail,
            )
        )
    return found, ok
