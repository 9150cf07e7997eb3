"""Routing tables and circuit breakers: which PSP takes a payment, and when one is skipped."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymesh.domain.routing import (
    InvalidRoutingTable,
    PaymentFacts,
    method_type,
    parse_table,
)
from paymesh.service.circuit import CircuitBreakers

PSPS = ["stripe", "adyen", "paypal"]
EUR_CARD = PaymentFacts(amount=5000, currency="eur", country="DE", payment_method_type="card")

TABLE = {
    "routes": [
        {
            "name": "big-eur",
            "currency": ["EUR"],
            "amount_gte": 100_000,
            "connectors": ["adyen", "stripe"],
        },
        {"name": "wallet", "payment_method_type": ["paypal"], "connectors": ["paypal"]},
        {
            "name": "eu-cards",
            "currency": ["eur"],
            "country": ["de", "fr"],
            "connectors": ["stripe", "adyen"],
            "weights": {"stripe": 30, "adyen": 70},
            "retry_soft_declines": True,
        },
    ],
    "default": ["stripe", "adyen"],
}


def test_the_first_matching_route_decides() -> None:
    table = parse_table(TABLE, PSPS)
    big = PaymentFacts(amount=250_000, currency="eur", country="DE", payment_method_type="card")
    assert table.decide(big, "pay_1").connectors == ("adyen", "stripe")
    assert table.decide(big, "pay_1").route == "big-eur"
    wallet = PaymentFacts(amount=100, currency="usd", country="US", payment_method_type="paypal")
    assert table.decide(wallet, "pay_1").connectors == ("paypal",)
    usd = PaymentFacts(amount=100, currency="usd", country="US", payment_method_type="card")
    decision = table.decide(usd, "pay_1")
    assert (decision.route, decision.connectors) == ("default", ("stripe", "adyen"))


def test_amount_ranges_are_half_open() -> None:
    table = parse_table(
        {
            "routes": [{"name": "r", "amount_gte": 100, "amount_lt": 200, "connectors": ["adyen"]}],
            "default": ["stripe"],
        },
        PSPS,
    )
    pick = [
        table.decide(PaymentFacts(a, "usd", None, "card"), "p").route for a in (99, 100, 199, 200)
    ]
    assert pick == ["default", "r", "r", "default"]


def test_a_weighted_split_is_stable_per_payment_and_near_its_weights() -> None:
    table = parse_table(TABLE, PSPS)
    firsts = Counter(table.decide(EUR_CARD, f"pay_{i}").connectors[0] for i in range(4000))
    assert 0.65 < firsts["adyen"] / 4000 < 0.75
    for i in range(50):
        one = table.decide(EUR_CARD, f"pay_{i}").connectors
        assert one == table.decide(EUR_CARD, f"pay_{i}").connectors
        assert sorted(one) == ["adyen", "stripe"]  # the other stays as the fallback


@given(
    st.dictionaries(st.sampled_from(PSPS), st.integers(0, 50), min_size=1),
    st.text(min_size=1, max_size=20),
)
def test_the_pick_is_always_a_connector_with_weight(
    weights: dict[str, int], payment_id: str
) -> None:
    if sum(weights.values()) == 0:
        return
    table = parse_table(
        {"routes": [{"name": "w", "connectors": list(weights), "weights": weights}]}, PSPS
    )
    first = table.decide(EUR_CARD, payment_id).connectors[0]
    assert weights[first] > 0


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ([], "an object"),
        ({"routes": [{"connectors": ["worldpay"]}]}, "unknown connector(s) worldpay"),
        ({"routes": [{"connectors": []}]}, "a list of distinct connector names"),
        ({"routes": [{"connectors": ["stripe"], "colour": "red"}]}, "unknown field(s) colour"),
        (
            {"routes": [{"connectors": ["stripe"], "amount_gte": 5, "amount_lt": 5}]},
            "amount_gte must be below amount_lt",
        ),
        ({"routes": [{"connectors": ["stripe"], "weights": {"adyen": 1}}]}, "weights"),
        ({"routes": [{"connectors": ["stripe"], "weights": {"stripe": 0}}]}, "weights"),
        ({"routes": [{"connectors": ["stripe"], "currency": "eur"}]}, "currency"),
        (
            {
                "routes": [
                    {"name": "a", "connectors": ["stripe"]},
                    {"name": "a", "connectors": ["adyen"]},
                ]
            },
            "unique",
        ),
    ],
)
def test_a_bad_table_is_refused_with_the_reason(doc: object, says: str) -> None:
    with pytest.raises(InvalidRoutingTable) as info:
        parse_table(doc, PSPS)
    assert says in str(info.value)


def test_wallet_tokens_route_as_paypal() -> None:
    assert method_type("paypal_wallet") == "paypal"
    assert method_type("pm_card_visa") == "card"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_circuit_opens_after_consecutive_failures_and_probes_once_after_cooldown() -> None:
    clock = Clock()
    breakers = CircuitBreakers(failure_threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        breakers.failed("stripe")
    assert breakers.state("stripe") == "closed"
    breakers.succeeded("stripe")  # a success in between resets the count
    for _ in range(3):
        breakers.failed("stripe")
    assert breakers.state("stripe") == "open" and not breakers.allows("stripe")
    assert breakers.allows("adyen")
    clock.now += 10
    assert breakers.state("stripe") == "half_open"
    assert breakers.allows("stripe")  # the one trial
    assert not breakers.allows("stripe")  # nobody else while it runs
    breakers.failed("stripe")
    assert breakers.state("stripe") == "open"
    clock.now += 10
    assert breakers.allows("stripe")
    breakers.succeeded("stripe")
    assert breakers.state("stripe") == "closed" and breakers.allows("stripe")


def test_fail_over_moves_a_pending_payment_to_the_next_psp_and_records_why() -> None:
    from datetime import UTC, datetime

    from paymesh.domain.payment import FraudAssessment, Payment, PspOutcome, Routing
    from paymesh.domain.status import PaymentStatus as S

    now = datetime(2026, 11, 25, tzinfo=UTC)
    p = Payment.initiate(
        now=now,
        fraud=FraudAssessment(0, (), "allow"),
        id="pay_f",
        merchant_id="m",
        amount=900,
        currency="eur",
        customer_id="c",
        payment_method="pm_card_visa",
        capture_method="automatic",
        connector="stripe",
        routing=Routing("eu", ["adyen", "paypal"]),
    )
    assert p.events[0].detail["route"] == "eu"
    assert p.fail_over("stripe: connection_error", now)
    assert p.routing is not None
    assert (p.connector, p.routing.fallbacks) == ("adyen", ["paypal"])
    p.connector_payment_id = "ADYEN_REF"  # a soft decline at adyen
    assert p.fail_over("adyen: soft decline", now)
    assert p.connector == "paypal" and p.connector_payment_id is None
    assert p.retired_refs == ["ADYEN_REF"]
    assert [a.connector for a in p.routing.attempts] == ["stripe", "adyen"]
    assert not p.fail_over("paypal: down", now)  # none left
    # A late answer about the retired attempt changes nothing.
    assert not p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "ADYEN_REF"), now)
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "PAYPAL_1", amount_received=900), now)
    assert not p.fail_over("too late", now)
    types = [e.type for e in p.events]
    assert types.count("payment.failover") == 2 and types[-1] == "payment.succeeded"
