"""The fake PSP's test payment methods: token -> what the issuer does with it.

The tokens and decline codes are Stripe's published test payment methods, so a test reads
the same on the fake as on the sandboxes. (The sandboxes' vault, `paymesh.sandbox.cards`, is
in a layer connectors may not import; these few are all a fake needs.) Soft and hard declines
differ as the Stripe translator tells them apart: a retryable decline may pass on a later try,
or at another PSP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from paymesh.domain.payment import Failure

__all__ = ["TEST_CARDS", "FakeCard"]


@dataclass(frozen=True, slots=True)
class FakeCard:
    decline: Failure | None = None  # None: the issuer approves
    requires_3ds: bool = False


def _hard(decline_code: str, message: str = "Your card was declined.") -> FakeCard:
    return FakeCard(
        Failure(code="card_declined", message=message, retryable=False, decline_code=decline_code)
    )


_APPROVES = FakeCard()

TEST_CARDS: Mapping[str, FakeCard] = MappingProxyType(
    {
        "pm_card_visa": _APPROVES,
        "pm_card_mastercard": _APPROVES,
        "pm_card_amex": _APPROVES,
        "pm_card_threeDSecure2Required": FakeCard(requires_3ds=True),
        "pm_card_chargeDeclined": _hard("generic_decline"),
        "pm_card_chargeDeclinedInsufficientFunds": _hard(
            "insufficient_funds", "Your card has insufficient funds."
        ),
        "pm_card_chargeDeclinedLostCard": _hard("lost_card"),
        # A processor hiccup, not the cardholder's answer: retryable, as Stripe's translator marks
        # processing_error, so a route that retries soft declines may send it to the next PSP.
        "pm_card_chargeDeclinedProcessingError": FakeCard(
            Failure(
                code="processing_error",
                decline_code="processing_error",
                retryable=True,
                message="An error occurred while processing your card. Try again in a little bit.",
            )
        ),
    }
)
