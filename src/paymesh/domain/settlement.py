"""A PSP's settlement report for one day, in one shape whatever the PSP wrote.

Each connector's `settlement` module parses its PSP's documented format (Stripe's itemized
balance change CSV, Adyen's Settlement details report, PayPal's STL file) into a
`SettlementReport`; the reconciliation engine reads nothing else.

Signs follow Stripe's balance transactions, from the merchant's balance: money in is positive
(a charge's gross), money out negative (a refund, a dispute, a payout); `fee` is what the PSP
kept, positive; `net` = `gross` - `fee`. Amounts are integers in the currency's minor unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from paymesh.domain.currencies import EXPONENTS
from paymesh.domain.ledger import Move

__all__ = ["SETTLED_KINDS", "MalformedReport", "SettlementLine", "SettlementReport", "minor_units"]


class MalformedReport(ValueError):
    """A report that is not in its PSP's documented format; says where."""


def minor_units(value: str, currency: str) -> int:
    """A decimal in major units (`12.34`, `-5`) as an integer of the minor unit, exactly:
    a value finer than the currency's minor unit is malformed, never rounded."""
    exponent = EXPONENTS.get(currency.upper())
    if exponent is None:
        raise MalformedReport(f"unknown currency {currency!r}")
    try:
        scaled = Decimal(value.strip()).scaleb(exponent)
    except InvalidOperation:
        raise MalformedReport(f"not an amount: {value!r}") from None
    if scaled != scaled.to_integral_value():
        raise MalformedReport(f"{value} has more decimals than {currency.upper()} has")
    return int(scaled)


#: What a settlement line can be: the ledger's balance kinds.
SETTLED_KINDS = frozenset({Move.CAPTURE, Move.REFUND, Move.DISPUTE, Move.DISPUTE_WON, Move.PAYOUT})


@dataclass(frozen=True, slots=True)
class SettlementLine:
    #: The report's own id of the line (Stripe's balance transaction, Adyen's modification
    #: reference, PayPal's transaction id): a line seen twice is one the PSP counted twice.
    line_id: str
    kind: Move
    #: The PSP's id of the payment the line belongs to, "" when the report does not say.
    psp_reference: str
    #: The merchant's reference as the PSP echoes it: paymesh's payment id, when sent.
    merchant_reference: str
    currency: str  # ISO 4217, lower case
    gross: int
    fee: int
    net: int
    created: datetime  # timezone-aware


@dataclass(frozen=True, slots=True)
class SettlementReport:
    psp: str
    day: date
    lines: tuple[SettlementLine, ...]

    @property
    def activity(self) -> tuple[SettlementLine, ...]:
        """Every line but the payouts."""
        return tuple(line for line in self.lines if line.kind != Move.PAYOUT)

    @property
    def payouts(self) -> tuple[SettlementLine, ...]:
        return tuple(line for line in self.lines if line.kind == Move.PAYOUT)
