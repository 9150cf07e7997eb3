"""The sandbox's PayPal buyers: who approves an order, and how their payment is funded.

A PayPal wallet has no token the merchant chooses; the buyer logs in at PayPal.
The sandbox therefore lets the order's `payment_source.paypal.email_address`
(PayPal's prefill field) pick a test buyer. Any other address, or none, is a
buyer paying from a balance: the capture completes at once.

    echeck-denied@buyer.paymesh.test   an eCheck: capture PENDING (reason ECHECK),
                                       then DENIED once the bank refuses it
    echeck@buyer.paymesh.test          an eCheck that clears: PENDING, then COMPLETED
"""

from __future__ import annotations

import enum
import hashlib

from paymesh.sandbox.paypal.objects import Wallet

__all__ = ["DEFAULT_BUYER", "ECHECK_CLEARS", "ECHECK_DENIED", "Funding", "funding_of", "wallet_for"]

DEFAULT_BUYER = "sb-buyer@personal.paymesh.test"
ECHECK_DENIED = "echeck-denied@buyer.paymesh.test"
ECHECK_CLEARS = "echeck@buyer.paymesh.test"


class Funding(enum.Enum):
    INSTANT = "instant"
    ECHECK_CLEARS = "echeck_clears"
    ECHECK_DENIED = "echeck_denied"


def wallet_for(email: str | None) -> Wallet:
    email = email or DEFAULT_BUYER
    # A stable payer account id per address, as PayPal's is per account.
    account = hashlib.sha256(email.encode()).hexdigest()[:13].upper()
    return Wallet(email=email, account_id=account)


def funding_of(wallet: Wallet) -> Funding:
    if wallet.email == ECHECK_DENIED:
        return Funding.ECHECK_DENIED
    if wallet.email == ECHECK_CLEARS:
        return Funding.ECHECK_CLEARS
    return Funding.INSTANT
