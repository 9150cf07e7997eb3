"""Reconciliation of generated days: every injected discrepancy found and typed, clean days
clean, late lines resolved by the next day's report, in each PSP's own report format."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from paymesh.domain.ledger import LedgerTransaction, Move
from paymesh.domain.reconciliation import (
    FEE_TOLERANCE_BPS,
    Discrepancy,
    Reconciliation,
    ReconciliationException,
    reconcile,
)
from paymesh.sandbox.settlement import DayReport, ReportBook, day_report
from paymesh.sandbox.settlement_days import GeneratedDay, generate_days
from tests.support.settlement import EXPECTED, FORMATS

DAY = date(2026, 3, 1)


def _days(psp: str, n: int = 2, payments: int = 150) -> list[GeneratedDay]:
    return generate_days(psp, DAY, n, payments, seed=3)


def _run(
    psp: str, inject: tuple[str, ...], days: list[GeneratedDay]
) -> tuple[list[Reconciliation], list[DayReport]]:
    """Reconcile every day but the last (whose report is only the next day's)."""
    write, parse = FORMATS[psp]
    entries = [e for d in days for e in d.entries]
    refs = {k: v for d in days for k, v in d.references.items()}
    book = ReportBook()
    written = [
        day_report(psp, d.day, entries, inject if i == 0 else (), 1, book)
        for i, d in enumerate(days)
    ]
    reports = [parse(write(r), r.day) for r in written]
    results: list[Reconciliation] = []
    carried: tuple[LedgerTransaction, ...] = ()
    for i, d in enumerate(days[:-1]):
        result = reconcile(reports[i], d.ledger, refs, next_report=reports[i + 1], carried=carried)
        carried = result.unsettled
        results.append(result)
    return results, written


@pytest.mark.parametrize("psp", FORMATS)
def test_a_clean_day_has_no_exception_and_every_item_reconciles(psp: str) -> None:
    [result], _ = _run(psp, (), _days(psp))
    assert result.exceptions == ()
    assert result.rate == 1.0
    assert result.reconciled == result.transactions + len(
        {t.currency for t in _days(psp)[0].ledger}
    )


@pytest.mark.parametrize("psp", FORMATS)
@pytest.mark.parametrize("kind", EXPECTED)
def test_each_injected_discrepancy_is_found_on_its_payment_with_its_type(
    psp: str, kind: str
) -> None:
    [result], [written, _] = _run(psp, (kind,), _days(psp))
    [(_, ref)] = written.injected
    [found] = result.exceptions
    assert found.type == EXPECTED[kind]
    if kind == "payout_mismatch":
        assert found.currency == ref and found.expected != found.actual
    else:
        assert found.payment_id == ref
    # A line that settles the next day resolves itself; a fee a little off is the PSP's
    # price, booked; nothing else is settled without a human.
    assert found.resolved == (kind == "late" or (kind == "fee_mismatch" and _within(psp, found)))


def _within(psp: str, found: ReconciliationException) -> bool:
    [txn] = [t for d in _days(psp) for t in d.ledger if t.id == found.transaction_id]
    assert found.actual is not None and found.expected is not None
    return abs(found.actual - found.expected) * 10_000 <= abs(txn.amount) * FEE_TOLERANCE_BPS


@pytest.mark.parametrize(("beyond", "sign"), [(0, 1), (1, 1), (0, -1), (1, -1)])
def test_a_fee_within_tolerance_of_the_gross_is_resolved_and_beyond_it_stays_open(
    beyond: int, sign: int
) -> None:
    """2.5% of the gross is the PSP's surcharge for a card from abroad in another currency:
    a fee off by that much is its price, booked; by one minor unit more, someone looks."""
    days = _days("stripe")
    write, parse = FORMATS["stripe"]
    entries = [e for d in days for e in d.entries]
    report = parse(write(day_report("stripe", DAY, entries, (), 1)), DAY)
    charge = next(t for t in days[0].ledger if t.kind == Move.CAPTURE)
    off = sign * (charge.amount * FEE_TOLERANCE_BPS // 10_000 + beyond)
    ref = days[0].references[charge.payment_id]
    lines = tuple(
        replace(line, fee=line.fee + off, net=line.net - off)
        if (line.psp_reference, line.kind) == (ref, Move.CAPTURE)
        else line
        for line in report.lines
    )
    result = reconcile(replace(report, lines=lines), days[0].ledger, days[0].references)
    [fee] = [e for e in result.exceptions if e.type == Discrepancy.FEE_MISMATCH]
    assert (fee.payment_id, fee.expected, fee.actual) == (
        charge.payment_id,
        charge.fee,
        charge.fee + off,
    )
    assert fee.resolved == (beyond == 0)


@pytest.mark.parametrize("psp", FORMATS)
def test_all_eight_at_once_are_eight_exceptions(psp: str) -> None:
    [result], _ = _run(psp, tuple(EXPECTED), _days(psp))
    assert sorted(e.type for e in result.exceptions) == sorted(EXPECTED.values())


def test_a_late_line_settles_the_next_day_with_no_exception_there() -> None:
    [late_day, next_day], _ = _run("stripe", ("late",), _days("stripe", 3))
    [timing] = late_day.exceptions
    assert timing.type == Discrepancy.TIMING and timing.resolved
    assert next_day.exceptions == ()
    assert [t.payment_id for t in next_day.settled_late] == [timing.payment_id]


def test_a_line_missing_while_the_next_report_is_not_out_is_an_open_timing_difference() -> None:
    days = _days("adyen")
    write, parse = FORMATS["adyen"]
    entries = [e for d in days for e in d.entries]
    report = parse(write(day_report("adyen", DAY, entries, ("late",), 1)), DAY)
    result = reconcile(report, days[0].ledger, days[0].references)
    [timing] = result.exceptions
    assert (timing.type, timing.resolved) == (Discrepancy.TIMING, False)
    assert result.rate < 1.0


def test_a_line_in_neither_day_is_missing_with_the_ledger_amount() -> None:
    [result], _ = _run("paypal", ("missing",), _days("paypal"))
    [missing] = result.exceptions
    [txn] = [t for t in _days("paypal")[0].ledger if t.id == missing.transaction_id]
    assert (missing.expected, missing.actual) == (txn.amount, None)
