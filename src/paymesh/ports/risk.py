"""The risk port: a score for a payment before any PSP sees it.

`paymesh.fraud.FraudRiskScorer` is the real one; `AllowAll` scores every payment 0 (for
tests of other things, and the baseline of the scoring benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from paymesh.domain.payment import FraudAssessment, RiskContext


@dataclass(frozen=True, slots=True)
class RiskInput:
    payment_id: str  # feedback about the payment (declined, disputed) finds its score by it
    merchant_id: str
    customer_id: str
    amount: int
    currency: str
    payment_method: str
    context: RiskContext


class RiskScorer(Protocol):
    async def assess(self, subject: RiskInput) -> FraudAssessment: ...


class AllowAll:
    async def assess(self, subject: RiskInput) -> FraudAssessment:
        return FraudAssessment(score=0, factors=(), decision="allow")
