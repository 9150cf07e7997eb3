"""Rules are data: the default set scores the reference's checks exactly; bad data is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from paymesh.domain.payment import FraudAssessment, RiskContext
from paymesh.fraud.rules import RuleError, RuleSet, compile_condition
from paymesh.fraud.scorer import FraudEngine, FraudRiskScorer
from paymesh.fraud.transactions import Transaction
from paymesh.ports.risk import RiskInput

T0 = 1_700_000_000.0
HABIT: dict[str, Any] = {
    "customer_id": "c1",
    "card_fingerprint": "card1",
    "device_id": "d1",
    "ip_address": "ip1",
    "country": "GB",
    "lat": 51.5,
    "lon": -0.1,
}


def txn(n: int, ts: float, amount: int = 1000, **kw: Any) -> Transaction:
    return Transaction(f"t{n}", ts, amount=amount, currency="EUR", **{**HABIT, **kw})


def engine_with_history(days: int = 3) -> FraudEngine:
    engine = FraudEngine()
    for day in range(days):
        engine.score(txn(day, T0 + day * 86_400))
    return engine


def test_habitual_payment_scores_zero() -> None:
    engine = engine_with_history()
    assert engine.score(txn(9, T0 + 4 * 86_400)) == FraudAssessment(0, (), "allow")


@pytest.mark.parametrize(
    ("changes", "score", "factors", "decision"),
    [
        ({"amount": 3500}, 25, ("amount_spike",), "allow"),
        ({"device_id": "d2"}, 15, ("unknown_device",), "allow"),
        ({"country": "FR"}, 20, ("location_anomaly",), "allow"),
        (
            {"amount": 5000, "device_id": "d2", "country": "FR"},
            85,
            ("amount_spike", "unknown_device", "location_anomaly", "account_takeover"),
            "block",
        ),
        ({"lat": 40.7, "lon": -74.0}, 50, ("impossible_travel",), "allow"),
        (
            {"lat": 40.7, "lon": -74.0, "country": "US"},
            70,
            ("location_anomaly", "impossible_travel"),
            "allow",
        ),
    ],
)
def test_reference_checks_score_exactly(
    changes: dict[str, Any], score: int, factors: tuple[str, ...], decision: str
) -> None:
    engine = engine_with_history()
    amount = changes.pop("amount", 1000)
    result = engine.score(txn(9, T0 + 2 * 86_400 + 1800, amount, **changes))
    assert result == FraudAssessment(score, factors, decision)


def test_more_than_five_payments_in_five_minutes() -> None:
    engine = engine_with_history()
    scores = [engine.score(txn(10 + i, T0 + 3 * 86_400 + i * 30)).score for i in range(7)]
    assert scores == [0, 0, 0, 0, 0, 30, 30]


def test_card_testing_alerts_on_the_third_declined_probe_and_blocks_the_fourth() -> None:
    engine = FraudEngine()
    results = [
        engine.score(txn(i, T0 + i * 20, 100, customer_id="guest", approved=False))
        for i in range(7)
    ]
    assert [r.score for r in results] == [0, 0, 70, 100, 100, 100, 100]
    assert results[2].factors == ("declined_probes",)
    # The reference's card-testing pattern (+40) holds from the fourth probe on.
    assert results[3].factors[0] == "card_testing" and results[3].decision == "block"
    assert results[5].factors[:3] == ("velocity_5m", "card_testing", "card_testing_burst")


def test_card_enumeration_from_one_device() -> None:
    engine = FraudEngine()
    scores = [
        engine.score(txn(i, T0 + i * 10, 900, customer_id=f"g{i}", card_fingerprint=f"k{i}")).score
        for i in range(6)
    ]
    assert scores == [0, 0, 0, 0, 85, 100]  # then the alerted device is back with a new card


def test_thresholds_are_configurable_and_exclusive() -> None:
    rules = RuleSet.from_data(
        {
            "review_threshold": 10,
            "block_threshold": 20,
            "rules": [
                {"name": "big", "when": ["amount", ">=", 100], "weight": 20, "factor": "big"},
                {"name": "huge", "when": ["amount", ">=", 1000], "weight": 5, "factor": "huge"},
            ],
        }
    )
    assert rules.assess({"amount": 100}) == FraudAssessment(20, ("big",), "review")
    assert rules.assess({"amount": 1000}).decision == "block"
    assert rules.assess({"amount": 10}) == FraudAssessment(0, (), "allow")


def test_block_and_allow_lists() -> None:
    data = {
        "rules": [
            {
                "name": "blocked",
                "when": ["block_listed", "==", 1],
                "weight": 100,
                "factor": "block_list",
            },
            {
                "name": "allowed",
                "when": ["allow_listed", "==", 1],
                "weight": -100,
                "factor": "allow_list",
            },
        ],
        "lists": {"block": {"country": ["KP"]}, "allow": {"customer_id": ["vip"]}},
    }
    engine = FraudEngine(RuleSet.from_data(data))
    assert engine.score(txn(1, T0, country="KP")) == FraudAssessment(100, ("block_list",), "block")
    both = engine.score(txn(2, T0, country="KP", customer_id="vip"))
    assert both == FraudAssessment(0, ("block_list", "allow_list"), "allow")


def test_condition_language_all_any_and_missing_features() -> None:
    cond = compile_condition({"all": [["a", ">", 1], {"any": [["b", "==", 2], ["c", "<", 0]]}]})
    assert cond({"a": 2, "b": 2}) and cond({"a": 2, "c": -1})
    assert not cond({"a": 2}) and not cond({"a": 1, "b": 2})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected an object"),
        ({"rules": [{"name": "x", "when": ["a", ">", 1], "weight": 1}]}, r"rules\[0\]"),
        ({"rules": [{"name": "x", "when": ["a", "~", 1], "weight": 1, "factor": "f"}]}, "op"),
        (
            {"rules": [{"name": "x", "when": ["a", ">", "1"], "weight": 1, "factor": "f"}]},
            "not a number",
        ),
        (
            {"rules": [{"name": "x", "when": {"all": []}, "weight": 1, "factor": "f"}]},
            r"rules\[0\]\.when",
        ),
        (
            {
                "rules": [
                    {
                        "name": "x",
                        "when": {"any": [["a", ">", 1], "__import__"]},
                        "weight": 1,
                        "factor": "f",
                    }
                ]
            },
            r"when\.any\[1\]",
        ),
        ({"rules": [{"name": "x", "when": ["a", ">", 1], "weight": 1.5, "factor": "f"}]}, "weight"),
        ({"rules": [], "review_threshold": 90, "block_threshold": 80}, "thresholds"),
        ({"rules": [], "lists": {"block": {"email": ["x"]}}}, r"lists\.block\.email"),
    ],
)
def test_invalid_rule_data_is_refused_clearly(data: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        RuleSet.from_data(data)
    with pytest.raises(RuleError, match="invalid JSON"):
        RuleSet.from_json("{rules")


def test_risk_scorer_adapter_uses_payment_method_as_card_and_injected_clock() -> None:
    now = [T0]
    scorer = FraudRiskScorer(FraudEngine(), clock=lambda: now[0])
    ctx = RiskContext(device_id="dev", ip_address="1.2.3.4", country="GB")

    def assess(method: str) -> FraudAssessment:
        now[0] += 5
        subject = RiskInput(f"pay_{method}", "m1", f"guest-{method}", 500, "EUR", method, ctx)
        return asyncio.run(scorer.assess(subject))

    scores = [assess(f"pm_{i}").score for i in range(6)]
    assert scores == [0, 0, 0, 0, 85, 100]  # then the alerted device is back with a new card
    assert (
        scorer.engine.store.features(Transaction("x", now[0], "c", 1, "EUR", device_id="dev"))[
            "device_cards_1h"
        ]
        == 6
    )
