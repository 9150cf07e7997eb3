"""Training a fraud model from a labelled history, and backtesting a model or rule set on one.

A history is the replay input (`paymesh.fraud.replay`: transactions and feedback in time
order) whose transactions say what they turned out to be: `fraud` (true or false) and,
when known, `label` (the attack or look-alike kind) and `episode`. A transaction without
`fraud` counts as fraud when a `disputed` outcome for it is in the history.

Features come from replaying the history through the engine in time order, the same code
that scores payments inline, so a feature only ever sees the feedback that had arrived by
then: no label leaks from the future into training.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paymesh.domain.payment import FraudAssessment
from paymesh.fraud.evaluation import ALERT, average_precision, evaluate
from paymesh.fraud.features import FeatureStore
from paymesh.fraud.model import FraudModel
from paymesh.fraud.rules import RuleSet
from paymesh.fraud.scorer import FraudEngine
from paymesh.fraud.transactions import TransactionError, parse_outcome, parse_transaction

# Never a model input: an operator's lists act through their overriding rules.
_NOT_LEARNED = frozenset({"block_listed", "allow_listed"})
# The share of legitimate payments (in the validation part) a trained model may alert on,
# and block: the thresholds are set where the model spends these budgets. The block
# threshold is also at least half a nat (odds x1.65) above the alert one, so that a band of
# scores goes to a person before any is refused outright.
ALERT_BUDGET = 0.0005
BLOCK_BUDGET = 0.0005
_BLOCK_ABOVE_ALERT = 0.5
PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "lambda_l2": 1.0,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "metric": "binary_logloss",
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}


@dataclass
class Replayed:
    """Every transaction of a history, in order: its features, rules' assessment and truth."""

    ids: list[str] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    features: list[dict[str, float]] = field(default_factory=list)
    ruled: list[FraudAssessment] = field(default_factory=list)
    fraud: list[bool] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    episodes: list[str] = field(default_factory=list)


def replay_history(records: Iterable[dict[str, Any]], rules: RuleSet | None = None) -> Replayed:
    """Replay a history through a fresh engine (rules only), keeping what each payment showed."""
    engine = FraudEngine(rules, FeatureStore())
    out = Replayed()
    disputed: set[str] = set()
    declared: list[bool | None] = []
    for number, record in enumerate(records, 1):
        try:
            if record.get("outcome"):
                transaction_id, outcome, at = parse_outcome(record)
                engine.feedback(transaction_id, outcome, at)
                if outcome == "disputed":
                    disputed.add(transaction_id)
                continue
            txn = parse_transaction(record)
        except TransactionError as exc:
            raise TransactionError(f"record {number}: {exc}") from exc
        features, ruled = engine.evaluate(txn)
        out.ids.append(txn.transaction_id)
        out.timestamps.append(txn.timestamp)
        out.features.append(features)
        out.ruled.append(ruled)
        fraud = record.get("fraud")
        declared.append(None if fraud is None else bool(fraud))
        out.labels.append(str(record.get("label") or ""))
        out.episodes.append(str(record.get("episode") or ""))
    out.fraud = [
        d if d is not None else tid in disputed for d, tid in zip(declared, out.ids, strict=True)
    ]
    for i, label in enumerate(out.labels):
        if not label:
            out.labels[i] = "fraud" if out.fraud[i] else "legit"
    return out


def train(history: Replayed, seed: int = 0, valid_share: float = 0.3) -> FraudModel:
    """A model from the first part of `history` (in time), its thresholds set on the rest.

    The later `valid_share` of the history stops the boosting when it no longer helps, and
    places the thresholds where the model alerts on `ALERT_BUDGET` and blocks `BLOCK_BUDGET`
    of its legitimate payments: validated on payments after those it learned from, as it
    will be used.
    """
    import lightgbm

    n = len(history.ids)
    frauds = sum(history.fraud)
    if n < 100 or frauds < 10:
        raise ValueError(f"history: {n} payments, {frauds} fraud; need 100 and 10 at least")
    names = sorted({k for f in history.features for k in f} - _NOT_LEARNED)
    x = np.array([[f.get(k, math.nan) for k in names] for f in history.features])
    y = np.array(history.fraud, dtype=np.int8)
    cut = int(n * (1 - valid_share))
    params = {**PARAMS, "seed": seed}
    fit = lightgbm.Dataset(x[:cut], y[:cut], feature_name=names, free_raw_data=False)
    check = lightgbm.Dataset(x[cut:], y[cut:], reference=fit)
    booster = lightgbm.train(
        params,
        fit,
        num_boost_round=300,
        valid_sets=[check],
        callbacks=[lightgbm.early_stopping(60, verbose=False)],
    )
    margins = booster.predict(x[cut:], raw_score=True, num_iteration=booster.best_iteration)
    legit = np.sort(margins[y[cut:] == 0])
    alert = float(np.quantile(legit, 1 - ALERT_BUDGET)) if len(legit) else 0.0
    block = max(
        float(np.quantile(legit, 1 - BLOCK_BUDGET)) if len(legit) else 1.0,
        alert + _BLOCK_ABOVE_ALERT,
    )
    # Keep only the trees the early stopping chose: the file is the model that was validated.
    kept = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    return FraudModel(
        kept,
        tuple(names),
        alert,
        block,
        {
            "payments": n,
            "fraud": frauds,
            "trained_on": cut,
            "validated_on": n - cut,
            "trees": kept.num_trees(),
            "validation_pr_auc": average_precision(list(margins), [bool(v) for v in y[cut:]]),
            "alert_budget": ALERT_BUDGET,
            "block_budget": BLOCK_BUDGET,
            "seed": seed,
        },
    )


def assess_all(
    history: Replayed, rules: RuleSet | None = None, model: FraudModel | None = None
) -> list[FraudAssessment]:
    """What the engine (`history`'s rules, and `model` or none) would have said of each payment.

    `rules` must be those `history` was replayed with (their overriding rules apply here).

    The features are the replay's; the model scores them in batches (one call into LightGBM
    per thousand payments) and each is combined with the rules as `FraudEngine.score` does:
    the same decisions as scoring them one by one, faster.
    """
    if model is None:  # the rules alone: what the replay already assessed
        return list(history.ruled)
    engine = FraudEngine(rules, FeatureStore(), model)
    out: list[FraudAssessment] = []
    for start in range(0, len(history.features), 1000):
        chunk = history.features[start : start + 1000]
        ruled = history.ruled[start : start + 1000]
        verdicts = model.verdicts([model.vector(f) for f in chunk])
        out.extend(engine.combine(r, v) for r, v in zip(ruled, verdicts, strict=True))
    return out


def backtest(history: Replayed, assessments: Sequence[FraudAssessment]) -> dict[str, Any]:
    """Detection figures of `assessments` on `history`: overall, and per attack when labelled."""
    scores = [a.score for a in assessments]
    decisions = [a.decision for a in assessments]
    fraud = history.fraud
    legit = [not f for f in fraud]
    alerted = [s >= ALERT for s in scores]
    n_fraud, n_legit = sum(fraud), sum(legit)
    report = evaluate(
        history.labels, history.episodes, scores, decisions, timestamps=history.timestamps
    )
    report["overall"] = {
        "payments": len(scores),
        "fraud": n_fraud,
        "caught": _share(sum(a for a, f in zip(alerted, fraud, strict=True) if f), n_fraud),
        "false_positive_rate": _share(
            sum(a for a, g in zip(alerted, legit, strict=True) if g), n_legit
        ),
        "legit_blocked": _share(
            sum(d == "block" for d, g in zip(decisions, legit, strict=True) if g), n_legit
        ),
        "alerts_per_1000": _share(1000 * sum(alerted), len(scores)),
        "pr_auc": average_precision(scores, fraud),
    }
    return report


def _share(part: float, whole: int) -> float:
    return part / whole if whole else math.nan
