"""The sandbox's memory: every payment by pspReference, and the company's idempotency keys.

One sandbox is one Adyen company account holding one or more merchant accounts. Payments are
found by pspReference (globally unique at Adyen) and belong to the merchant account that made
them; a modification naming another merchant account does not find them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from paymesh.sandbox.adyen.idempotency import IdempotencyStore
from paymesh.sandbox.adyen.outcomes import Refusal
from paymesh.sandbox.cards import TestCard
from paymesh.sandbox.limits import MemoryLimits

__all__ = ["Ledger", "SandboxPayment", "new_psp_reference", "new_token"]

_REFERENCE_ALPHABET = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_TO_ALPHABET = bytes(_REFERENCE_ALPHABET[b % len(_REFERENCE_ALPHABET)] for b in range(256))


def new_psp_reference() -> str:
    """Sixteen upper-case letters and digits, like Adyen's (e.g. `QFQTPCQ8HXSKGK82`)."""
    return os.urandom(16).translate(_TO_ALPHABET).decode("ascii")


def new_token(length: int = 40) -> str:
    return os.urandom(length).translate(_TO_ALPHABET).decode("ascii")


@dataclass
class SandboxPayment:
    psp_reference: str
    merchant_account: str
    reference: str  # the merchant's (paymesh: our payment id)
    value: int
    currency: str
    manual_capture: bool
    brand: str  # Adyen's variant: visa, mc, amex, ...
    result_code: str  # Authorised | Refused | Error | RedirectShopper | Received
    refusal: Refusal | None = None
    card: TestCard | None = None
    return_url: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    amount_captured: int = 0
    amount_refunded: int = 0
    cancelled: bool = False
    chargeback: bool = False
    #: The chargeback's own pspReference (every stage of it carries the same), and how the
    #: issuer decided it: None while open, then "won" or "lost".
    chargeback_reference: str | None = None
    chargeback_outcome: str | None = None
    redirect_result: str | None = None  # handed to the shopper once 3DS is completed

    @property
    def authorised(self) -> bool:
        return self.result_code in ("Authorised", "Received")

    @property
    def capturable(self) -> int:
        if not self.authorised or self.cancelled:
            return 0
        return self.value - self.amount_captured

    @property
    def refundable(self) -> int:
        return self.amount_captured - self.amount_refunded

    @property
    def status(self) -> str:
        """One word for the payment's state, for the sandbox's own GET."""
        if self.cancelled:
            return "Cancelled"
        if self.authorised:
            return "Captured" if self.amount_captured else "Authorised"
        return self.result_code


@dataclass
class Ledger:
    """At most `limits.objects` payments (the oldest forgotten first, with its 3DS result)
    and `limits.idempotency_keys` keys: see `paymesh.sandbox.limits`. One company account,
    whatever the API key, so there are no per-key accounts to bound here."""

    limits: MemoryLimits = field(default_factory=MemoryLimits)
    payments: dict[str, SandboxPayment] = field(default_factory=dict)
    by_redirect_result: dict[str, str] = field(default_factory=dict)
    idempotency: IdempotencyStore = field(init=False)

    def __post_init__(self) -> None:
        self.idempotency = IdempotencyStore(max_entries=self.limits.idempotency_keys)

    def add(self, payment: SandboxPayment) -> None:
        self.payments[payment.psp_reference] = payment
        while len(self.payments) > self.limits.objects:
            forgotten = self.payments.pop(next(iter(self.payments)))
            if forgotten.redirect_result is not None:
                self.by_redirect_result.pop(forgotten.redirect_result, None)

    def find(
        self,
        psp_reference: str,
        merchant_account: str | None = None,
    ) -> SandboxPayment | None:
        payment = self.payments.get(psp_reference)
        if payment is None or merchant_account not in (None, payment.merchant_account):
            return None
        return payment
