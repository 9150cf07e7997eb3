"""The fraud-feed port: what one process's fraud engine learns, told to every other's.

Scaled out, each `paymesh serve` process scores with its own engine and sees only its share
of the payments, and the outcomes are learned by whichever worker consumed them. Velocity
features (one device trying many cards) need all the payments, and a decline needs to reach
the engines that will score that card next: the feed carries both.

Both calls are fire-and-forget: they are made in the payment path, so they never block and
never raise. What is said reaches every other engine at least once, except what a process
that dies still held or a full send queue dropped (`paymesh.adapters.nats.fraud_feed`).
`NoFeed` is the embedded mode's: one process, one engine, nothing to share.

What a feed hears from the other processes it hands to a `FraudLearner`: this process's
fraud engine (`paymesh.fraud.FraudEngine` is one), so the feed's adapter moves messages and
knows nothing of how they are learned.
"""

from __future__ import annotations

from typing import Protocol

from paymesh.domain.fraud_transaction import Transaction


class FraudFeed(Protocol):
    def observed(self, txn: Transaction, score: int) -> None:
        """This process scored `txn` at `score`."""

    def outcome(self, transaction_id: str, outcome: str, at: float) -> None:
        """This process fed back `approved`, `declined` or `disputed` at `at`."""


class NoFeed:
    def observed(self, txn: Transaction, score: int) -> None:
        pass

    def outcome(self, transaction_id: str, outcome: str, at: float) -> None:
        pass


class FraudLearner(Protocol):
    """Learns what other processes scored and what became of it. Called on the event loop
    that scores, never concurrently with scoring."""

    def observe(self, txn: Transaction, score: int) -> None:
        """Another process scored `txn` at `score`."""

    def feedback(self, transaction_id: str, outcome: str, at: float) -> object:
        """Another process fed back `approved`, `declined` or `disputed` at `at`."""
