"""The double-entry ledger: every money movement of a payment as a balanced transaction.

A payment records what moved (`Movement`: a hold, a capture, a refund, a dispute...) with the
event that announces it; `journal` turns each movement into a `LedgerTransaction` whose
postings balance (debits equal credits, one currency, integer minor units), and the store
writes them in the same commit as the payment change and its event. Balances are never a
stored number: they are sums of postings.

Signs: a debit is positive, a credit negative, so every transaction sums to zero, and so do
each merchant's accounts in each currency. The accounts, from the merchant's books:

- `authorized_funds` / `authorizations`: memo pair for holds on customers' cards, open from
  the authorisation until the capture or the void releases them;
- `psp_receivable`: captured money the PSP owes (less its fees, refunds and disputes) until
  it pays out; `bank`: what it paid out;
- `sales` (credit), `refunds`, `disputes` (debits against sales), `psp_fees` and
  `dispute_fees` (expenses).

PSP fees are booked at capture from the PSP's fee schedule (`FEES`: the sandboxes charge
exactly this); a real PSP's settlement report says what it actually charged, and
reconciliation reports any difference as an exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum


class Account(StrEnum):
    AUTHORIZED_FUNDS = "authorized_funds"
    AUTHORIZATIONS = "authorizations"
    PSP_RECEIVABLE = "psp_receivable"
    SALES = "sales"
    REFUNDS = "refunds"
    PSP_FEES = "psp_fees"
    DISPUTES = "disputes"
    DISPUTE_FEES = "dispute_fees"
    BANK = "bank"


class Move(StrEnum):
    """What moved; also the kind of the transaction it is booked as."""

    HOLD = "authorization"
    RELEASE = "authorization_release"
    CAPTURE = "charge"
    REFUND = "refund"
    DISPUTE = "dispute"
    DISPUTE_WON = "dispute_reversal"
    PAYOUT = "payout"
    #: The PSP charged another fee than its schedule: its report is the truth, booked by
    #: reconciliation against the transaction it was charged on (`fee_adjustment`).
    ADJUSTMENT = "adjustment"


#: Kinds that change what the PSP owes the merchant: Stripe's balance transactions.
BALANCE_KINDS = frozenset(
    {Move.CAPTURE, Move.REFUND, Move.DISPUTE, Move.DISPUTE_WON, Move.PAYOUT, Move.ADJUSTMENT}
)


@dataclass(frozen=True, slots=True)
class Movement:
    kind: Move
    amount: int  # minor units, > 0


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """A PSP's price: `percent_bps` of the amount (basis points) plus `fixed` minor units,
    rounded half up; `dispute_fee` per dispute; funds available `settle_days` after."""

    percent_bps: int
    fixed: int
    dispute_fee: int
    settle_days: int

    def fee(self, amount: int) -> int:
        return (amount * self.percent_bps + 5_000) // 10_000 + self.fixed


#: The sandboxes' prices, shaped like each PSP's published standard pricing for cards.
FEES = {
    "stripe": FeeSchedule(percent_bps=290, fixed=30, dispute_fee=1_500, settle_days=2),
    "adyen": FeeSchedule(percent_bps=120, fixed=12, dispute_fee=1_000, settle_days=1),
    "paypal": FeeSchedule(percent_bps=349, fixed=49, dispute_fee=2_000, settle_days=0),
}
#: A PSP without a schedule here (a test's fake) charges nothing and settles at once.
FREE = FeeSchedule(percent_bps=0, fixed=0, dispute_fee=0, settle_days=0)


def schedule(psp: str) -> FeeSchedule:
    return FEES.get(psp, FREE)


@dataclass(frozen=True, slots=True)
class Posting:
    account: Account
    amount: int  # debit > 0, credit < 0


@dataclass(frozen=True, slots=True)
class LedgerTransaction:
    """One balanced entry. `id` is derived from the event that booked it, so booking the
    same event twice is the same transaction (stores keep it once)."""

    id: str
    merchant_id: str
    payment_id: str
    psp: str
    currency: str
    kind: Move
    created_at: datetime
    available_on: date
    postings: tuple[Posting, ...]
    #: The event whose commit booked it.
    event_id: str = ""
    #: The PSP's id of the payment when it was booked ("" before the PSP answered, and for a
    #: payout): what reconciliation matches a report line by, with no lookup per payment.
    psp_reference: str = ""

    def balance_of(self, account: Account) -> int:
        return sum(p.amount for p in self.postings if p.account == account)

    @property
    def net(self) -> int:
        """What it changes in what the PSP owes the merchant (and, for a payout, moves to
        the bank): Stripe's `net`."""
        if self.kind == Move.PAYOUT:
            return -self.balance_of(Account.BANK)
        return self.balance_of(Account.PSP_RECEIVABLE)

    @property
    def fee(self) -> int:
        return self.balance_of(Account.PSP_FEES) + self.balance_of(Account.DISPUTE_FEES)

    @property
    def amount(self) -> int:
        """Stripe's `amount`: the movement before fees (`net` = `amount` - `fee`)."""
        return self.net + self.fee


def _pair(debit: Account, credit: Account, amount: int) -> tuple[Posting, Posting]:
    return Posting(debit, amount), Posting(credit, -amount)


def postings_for(psp: str, movement: Movement) -> tuple[Posting, ...]:
    a = movement.amount
    fees = schedule(psp)
    match movement.kind:
        case Move.HOLD:
            return _pair(Account.AUTHORIZED_FUNDS, Account.AUTHORIZATIONS, a)
        case Move.RELEASE:
            return _pair(Account.AUTHORIZATIONS, Account.AUTHORIZED_FUNDS, a)
        case Move.CAPTURE:
            fee = fees.fee(a)
            return (
                *_pair(Account.PSP_RECEIVABLE, Account.SALES, a),
                *(_pair(Account.PSP_FEES, Account.PSP_RECEIVABLE, fee) if fee else ()),
            )
        case Move.REFUND:
            return _pair(Account.REFUNDS, Account.PSP_RECEIVABLE, a)
        case Move.DISPUTE:
            fee = fees.dispute_fee
            return (
                *_pair(Account.DISPUTES, Account.PSP_RECEIVABLE, a),
                *(_pair(Account.DISPUTE_FEES, Account.PSP_RECEIVABLE, fee) if fee else ()),
            )
        case Move.DISPUTE_WON:  # the funds come back; the dispute fee does not
            return _pair(Account.PSP_RECEIVABLE, Account.DISPUTES, a)
        case Move.PAYOUT:  # signed, and no payment's: built by `payout`, never from a movement
            raise ValueError("a payout is booked by payout")
        case Move.ADJUSTMENT:  # signed: built by `fee_adjustment`, never from a movement
            raise ValueError("an adjustment is booked by fee_adjustment")


def book(
    *,
    event_id: str,
    merchant_id: str,
    payment_id: str,
    psp: str,
    currency: str,
    at: datetime,
    movements: tuple[Movement, ...],
    psp_reference: str = "",
) -> list[LedgerTransaction]:
    """The transactions an event's movements are booked as."""
    settle = timedelta(days=schedule(psp).settle_days)
    return [
        LedgerTransaction(
            id=f"txn_{event_id}_{i}",
            merchant_id=merchant_id,
            payment_id=payment_id,
            psp=psp,
            currency=currency,
            kind=m.kind,
            created_at=at,
            available_on=(at + settle).date(),
            postings=postings_for(psp, m),
            event_id=event_id,
            psp_reference=psp_reference,
        )
        for i, m in enumerate(movements)
        if m.amount > 0
    ]


def payout(
    *, event_id: str, merchant_id: str, psp: str, currency: str, at: datetime, amount: int
) -> LedgerTransaction:
    """What the PSP paid out to the merchant's bank (`amount` > 0), or took from it (< 0: a
    day whose refunds and disputes outweighed its charges, which Stripe and Adyen debit)."""
    return LedgerTransaction(
        id=f"txn_{event_id}_0",
        merchant_id=merchant_id,
        payment_id="",
        psp=psp,
        currency=currency,
        kind=Move.PAYOUT,
        created_at=at,
        available_on=at.date(),  # the payout is the settlement itself: it leaves on its day
        postings=_pair(Account.BANK, Account.PSP_RECEIVABLE, amount),
        event_id=event_id,
    )


def fee_adjustment(txn: LedgerTransaction, charged: int, at: datetime) -> LedgerTransaction:
    """What books the fee the PSP `charged` on `txn` where the ledger booked `txn.fee`: the
    difference, from (or back to) what the PSP owes, into the fee account of the kind. Its
    id derives from `txn`'s: booking it twice is booking it once."""
    account = Account.DISPUTE_FEES if txn.kind == Move.DISPUTE else Account.PSP_FEES
    return LedgerTransaction(
        id=f"{txn.id}_fee_adjustment",
        merchant_id=txn.merchant_id,
        payment_id=txn.payment_id,
        psp=txn.psp,
        currency=txn.currency,
        kind=Move.ADJUSTMENT,
        created_at=at,
        available_on=txn.available_on,
        postings=_pair(account, Account.PSP_RECEIVABLE, charged - txn.fee),
        event_id=txn.event_id,
        psp_reference=txn.psp_reference,
    )


def balances(
    transactions: Iterable[LedgerTransaction], today: date
) -> dict[tuple[str, str], tuple[int, int]]:
    """(account, currency) -> (sum available on or before `today`, sum available later): the
    sums every store derives its balances from (SQL stores in SQL, the same way)."""
    sums: dict[tuple[str, str], tuple[int, int]] = {}
    for t in transactions:
        later = t.available_on > today
        for p in t.postings:
            now_part, later_part = sums.get((p.account.value, t.currency), (0, 0))
            if later:
                later_part += p.amount
            else:
                now_part += p.amount
            sums[p.account.value, t.currency] = (now_part, later_part)
    return sums
