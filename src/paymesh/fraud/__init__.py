"""Real-time fraud scoring: incremental features per entity, rules as data, pure and fast.

Nothing here does I/O except `run_replay`, which reads the file it is given.
"""

from paymesh.fraud.features import FeatureStore
from paymesh.fraud.replay import replay, run_replay
from paymesh.fraud.rules import Rule, RuleError, RuleSet, compile_condition
from paymesh.fraud.scorer import FraudEngine, FraudRiskScorer, SnapshotError
from paymesh.fraud.transactions import Transaction, TransactionError, parse_transaction

__all__ = [
    "FeatureStore",
    "FraudEngine",
    "FraudRiskScorer",
    "Rule",
    "RuleError",
    "RuleSet",
    "SnapshotError",
    "Transaction",
    "TransactionError",
    "compile_condition",
    "parse_transaction",
    "replay",
    "run_replay",
]
