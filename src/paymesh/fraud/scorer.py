"""The fraud engine (features, then rules, then observe) and its `RiskScorer` adapter."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from paymesh.domain.payment import FraudAssessment
from paymesh.fraud.features import FeatureStore
from paymesh.fraud.rules import RuleSet
from paymesh.fraud.transactions import Transaction
from paymesh.ports.risk import RiskInput


class FraudEngine:
    def __init__(self, rules: RuleSet | None = None, store: FeatureStore | None = None) -> None:
        self.rules = rules if rules is not None else RuleSet.default()
        self.store = store if store is not None else FeatureStore()

    def score(self, txn: Transaction) -> FraudAssessment:
        """Score `txn` on what came before it, then remember it for those that follow."""
        features = self.store.features(txn)
        if self.rules.lists["block"] or self.rules.lists["allow"]:
            self.rules.list_hits(txn, features)
        assessment = self.rules.assess(features)
        self.store.observe(txn)
        return assessment


class FraudRiskScorer:
    """Implements `paymesh.ports.risk.RiskScorer` over a `FraudEngine`.

    The payment method stands in for the card fingerprint: the same saved method
    is the same card. The clock is injected so tests and replays are reproducible.
    """

    def __init__(self, engine: FraudEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._ids = itertools.count(1)

    async def assess(self, subject: RiskInput) -> FraudAssessment:
        ctx = subject.context
        txn = Transaction(
            transaction_id=f"risk-{next(self._ids)}",
            timestamp=self.clock(),
            customer_id=subject.customer_id,
            amount=subject.amount,
            currency=subject.currency,
            card_fingerprint=subject.payment_method or None,
            device_id=ctx.device_id,
            ip_address=ctx.ip_address,
            country=ctx.country,
            city=ctx.city,
            merchant_id=subject.merchant_id,
        )
        return self.engine.score(txn)
