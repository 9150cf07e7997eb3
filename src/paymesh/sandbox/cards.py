"""The test payment methods every sandbox understands: token -> card -> outcome.

A stand-in for a card vault. In sandbox mode the platform may route the same
`pm_card_...` token to Stripe, Adyen or PayPal, so the outcome lives here as
data and each sandbox only renders it in its own wire format. Tokens and
outcomes follow Stripe's published test payment methods; only the last four
digits of each card are kept (never a full number, so no message can leak one).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["CARDS", "Decline", "TestCard", "card_for"]


@dataclass(frozen=True, slots=True)
class Decline:
    """How the issuer (or the network) refuses the charge, in Stripe's vocabulary."""

    code: str
    decline_code: str
    message: str
    param: str | None = None


@dataclass(frozen=True, slots=True)
class TestCard:
    token: str
    brand: str
    last4: str
    fingerprint: str
    funding: str = "credit"
    country: str = "US"
    exp_month: int = 12
    exp_year: int = 2034
    decline: Decline | None = None
    requires_3ds: bool = False
    disputed_after_capture: bool = False

    @property
    def approves(self) -> bool:
        return self.decline is None


_GENERIC = "Your card was declined."


def _declined(decline_code: str, message: str = _GENERIC) -> Decline:
    return Decline("card_declined", decline_code, message)


_DECLINES = {
    "chargeDeclined": ("0002", _declined("generic_decline")),
    "chargeDeclinedInsufficientFunds": (
        "9995",
        _declined("insufficient_funds", "Your card has insufficient funds."),
    ),
    "chargeDeclinedLostCard": ("9987", _declined("lost_card")),
    "chargeDeclinedStolenCard": ("9979", _declined("stolen_card")),
    "chargeDeclinedFraudulent": ("0019", _declined("fraudulent")),
    "chargeDeclinedExpiredCard": (
        "0069",
        Decline("expired_card", "expired_card", "Your card has expired.", "exp_month"),
    ),
    "chargeDeclinedIncorrectCvc": (
        "0127",
        Decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect.", "cvc"),
    ),
    "chargeDeclinedProcessingError": (
        "0119",
        Decline(
            "processing_error",
            "processing_error",
            "An error occurred while processing your card. Try again in a little bit.",
        ),
    ),
}


def _fingerprint(brand: str, last4: str) -> str:
    # Stable per card, as Stripe's is: alias tokens for one card share it.
    return hashlib.sha256(f"paymesh:{brand}:{last4}".encode()).hexdigest()[:16]


def _card(
    token: str,
    brand: str,
    last4: str,
    *,
    funding: str = "credit",
    decline: Decline | None = None,
    requires_3ds: bool = False,
    disputed_after_capture: bool = False,
) -> TestCard:
    return TestCard(
        token,
        brand,
        last4,
        _fingerprint(brand, last4),
        funding=funding,
        decline=decline,
        requires_3ds=requires_3ds,
        disputed_after_capture=disputed_after_capture,
    )


def _catalogue() -> dict[str, TestCard]:
    cards = [
        _card("pm_card_visa", "visa", "4242"),
        _card("pm_card_visa_debit", "visa", "5556", funding="debit"),
        _card("pm_card_mastercard", "mastercard", "4444"),
        _card("pm_card_mastercard_debit", "mastercard", "8210", funding="debit"),
        _card("pm_card_amex", "amex", "8431"),
        _card("pm_card_discover", "discover", "1117"),
        _card("pm_card_threeDSecure2Required", "visa", "3220", requires_3ds=True),
        _card("pm_card_authenticationRequired", "visa", "3184", requires_3ds=True),
        _card("pm_card_createDispute", "visa", "0259", disputed_after_capture=True),
    ]
    for name, (last4, decline) in _DECLINES.items():
        cards.append(_card(f"pm_card_{name}", "visa", last4, decline=decline))
        # Stripe documents both spellings: pm_card_chargeDeclined and pm_card_visa_chargeDeclined.
        cards.append(_card(f"pm_card_visa_{name}", "visa", last4, decline=decline))
    return {card.token: card for card in cards}


CARDS: dict[str, TestCard] = _catalogue()


def card_for(token: str) -> TestCard | None:
    """The test card behind a token, or None when the vault does not know it."""
    return CARDS.get(token)
