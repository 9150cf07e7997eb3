"""A clean day's payout is booked per merchant, so that the merchants' payouts add up to the
PSP's: a merchant whose day nets negative (it refunded more than it charged) has the
difference taken from its bank, as Stripe and Adyen debit it."""

from __future__ import annotations

from datetime import UTC, datetime

from paymesh.domain.ledger import Account, LedgerTransaction, Move, Movement, balances, book
from paymesh.domain.reconciliation import reconcile
from paymesh.domain.settlement import SettlementLine, SettlementReport
from paymesh.service.reconciliation import payouts_to_book

AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CLOSE = datetime(2026, 3, 2, 23, 59, 59, tzinfo=UTC)
REFS = {"pay_a": "pi_a", "pay_b": "pi_b"}


def _line(line_id: str, kind: Move, ref: str, gross: int, fee: int) -> SettlementLine:
    return SettlementLine(line_id, kind, ref, "", "usd", gross, fee, gross - fee, AT)


def _day() -> tuple[SettlementReport, list[LedgerTransaction]]:
    charged = book(
        event_id="evt_a", merchant_id="shop_a", payment_id="pay_a", psp="stripe",
        currency="usd", at=AT, movements=(Movement(Move.CAPTURE, 10_000),), psp_reference="pi_a",
    )  # fmt: skip
    refunded = book(
        event_id="evt_b", merchant_id="shop_b", payment_id="pay_b", psp="stripe",
        currency="usd", at=AT, movements=(Movement(Move.REFUND, 5_000),), psp_reference="pi_b",
    )  # fmt: skip
    report = SettlementReport(
        "stripe",
        AT.date(),
        (
            _line("txn_1", Move.CAPTURE, "pi_a", 10_000, 320),  # 2.9% + 30
            _line("txn_2", Move.REFUND, "pi_b", -5_000, 0),
            _line("po_1", Move.PAYOUT, "", -4_680, 0),  # 96.80 in, 50.00 out
        ),
    )
    return report, [*charged, *refunded]


def test_a_merchant_netting_negative_is_debited_and_the_payouts_add_up_to_the_psps() -> None:
    report, today = _day()
    result = reconcile(report, today, REFS)
    assert result.exceptions == ()
    payouts = payouts_to_book(result, report, today)
    assert [(t.merchant_id, t.kind, -t.net) for t in payouts] == [
        ("shop_a", Move.PAYOUT, 9_680),
        ("shop_b", Move.PAYOUT, -5_000),
    ]
    # Reconciled again with the payouts in the books: they are the PSP's payout.
    assert reconcile(report, [*today, *payouts], REFS).exceptions == ()
    books = balances([*today, *payouts], CLOSE.date())
    assert books[(Account.BANK.value, "usd")] == (4_680, 0)
    assert sum(books[(Account.PSP_RECEIVABLE.value, "usd")]) == 0  # nothing owed either way


def test_booking_the_payouts_again_books_the_same_transactions() -> None:
    report, today = _day()
    result = reconcile(report, today, REFS)
    assert [t.id for t in payouts_to_book(result, report, today)] == [
        t.id for t in payouts_to_book(result, report, today)
    ]
