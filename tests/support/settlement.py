"""Each PSP's settlement report as its sandbox writes it and its connector reads it back, and
what each injectable discrepancy must be found as: shared by the reconciliation tests and
`benchmarks/reconciliation.py`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from paymesh.connectors.adyen.settlement import parse_report as parse_adyen
from paymesh.connectors.paypal.settlement import parse_report as parse_paypal
from paymesh.connectors.stripe.settlement import parse_report as parse_stripe
from paymesh.domain.reconciliation import Discrepancy
from paymesh.domain.settlement import SettlementReport
from paymesh.sandbox.adyen.settlement_report import write_report as write_adyen
from paymesh.sandbox.paypal.settlement_report import write_report as write_paypal
from paymesh.sandbox.settlement import DayReport
from paymesh.sandbox.stripe.settlement_report import write_report as write_stripe

Format = tuple[Callable[[DayReport], str], Callable[[str, date], SettlementReport]]
FORMATS: dict[str, Format] = {
    "stripe": (write_stripe, parse_stripe),
    "adyen": (write_adyen, parse_adyen),
    "paypal": (write_paypal, parse_paypal),
}
#: Each injection of the sandboxes, and the exception reconciliation must type it as.
EXPECTED = {
    "missing": Discrepancy.MISSING,
    "amount_mismatch": Discrepancy.AMOUNT_MISMATCH,
    "unknown": Discrepancy.UNKNOWN,
    "duplicate": Discrepancy.DUPLICATE,
    "fee_mismatch": Discrepancy.FEE_MISMATCH,
    "payout_mismatch": Discrepancy.PAYOUT_MISMATCH,
    "currency_mismatch": Discrepancy.CURRENCY_MISMATCH,
    "late": Discrepancy.TIMING,
}
