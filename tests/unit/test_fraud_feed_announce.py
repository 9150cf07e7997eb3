"""What the fraud engine's users tell the fraud feed, and an engine learning what others scored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from paymesh.domain.payment import RiskContext
from paymesh.fraud.scorer import FraudEngine, FraudRiskScorer
from paymesh.fraud.transactions import Transaction
from paymesh.ports.bus import Delivery, Target
from paymesh.ports.fraud_feed import FraudFeed, NoFeed
from paymesh.ports.risk import RiskInput
from paymesh.ports.store import Changeset, Store
from paymesh.service.fraud_stream import FraudStream

T0 = 1_700_000_000.0
NOW = datetime.fromtimestamp(T0, UTC)


class RecordingFeed:
    def __init__(self) -> None:
        self.observations: list[tuple[Transaction, int]] = []
        self.outcomes: list[tuple[str, str, float]] = []

    def observed(self, txn: Transaction, score: int) -> None:
        self.observations.append((txn, score))

    def outcome(self, transaction_id: str, outcome: str, at: float) -> None:
        self.outcomes.append((transaction_id, outcome, at))


class AlertSink:
    def __init__(self) -> None:
        self.commits: list[Changeset] = []

    async def commit(self, changes: Changeset) -> None:
        self.commits.append(changes)


def risk_input(n: int, amount: int = 100, method: str = "pm_card_1") -> RiskInput:
    return RiskInput(
        payment_id=f"pay_{n}",
        merchant_id="shop",
        customer_id="carder",
        amount=amount,
        currency="usd",
        payment_method=method,
        context=RiskContext(device_id="rig", ip_address="203.0.113.9", country="GB"),
    )


def event(kind: str, payment_id: str, at: float, **detail: object) -> dict[str, object]:
    return {
        "id": f"evt-{kind}-{payment_id}",
        "detail-type": kind,
        "account": "shop",
        "time": datetime.fromtimestamp(at, UTC).isoformat(),
        "detail": {"payment_id": payment_id, **detail},
    }


DELIVERY = Delivery(
    "d",
    "e",
    "shop",
    "r",
    Target("t", "builtin", "fraud_detection"),
    event_time=NOW,
    created_at=NOW,
    next_attempt_at=NOW,
)


def test_no_feed_takes_everything_and_is_the_default() -> None:
    feed: FraudFeed = NoFeed()
    feed.observed(Transaction("t", T0, "c", 100, "usd"), 10)
    feed.outcome("t", "declined", T0)
    assert isinstance(FraudRiskScorer(FraudEngine()).feed, NoFeed)
    assert isinstance(
        FraudStream(FraudEngine(), cast(Store, AlertSink()), lambda: NOW).feed, NoFeed
    )


async def test_the_scorer_announces_each_transaction_with_the_score_it_gave() -> None:
    feed = RecordingFeed()
    scorer = FraudRiskScorer(FraudEngine(), clock=lambda: T0, feed=feed)
    scores = [(await scorer.assess(risk_input(n, method=f"pm_card_{n}"))).score for n in range(6)]
    assert [s for _, s in feed.observations] == scores
    assert max(scores) > 0  # card enumeration: the scores announced are not all the same
    txn, _ = feed.observations[0]
    assert (txn.transaction_id, txn.card_fingerprint, txn.timestamp) == ("pay_0", "pm_card_0", T0)
    assert (txn.customer_id, txn.device_id, txn.merchant_id) == ("carder", "rig", "shop")


def test_observing_what_another_engine_scored_learns_what_scoring_would() -> None:
    scoring, observing = FraudEngine(), FraudEngine()
    for n in range(8):  # a card-enumeration run: late ones score over the alert threshold
        txn = Transaction(
            f"t{n}",
            T0 + 30 * n,
            "carder",
            100,
            "usd",
            card_fingerprint=f"card{n}",
            device_id="rig",
            ip_address="ip",
            merchant_id="shop",
        )
        observing.observe(txn, scoring.score(txn).score)
    assert scoring.store.features(txn)["device_alerts_24h"] > 0
    assert observing.snapshot() == scoring.snapshot()


async def test_the_stream_announces_each_card_outcome_it_feeds_back() -> None:
    engine, feed, sink = FraudEngine(), RecordingFeed(), AlertSink()
    stream = FraudStream(engine, cast(Store, sink), lambda: NOW, feed=feed)
    scorer = FraudRiskScorer(engine, clock=lambda: T0)
    for n in range(3):
        await scorer.assess(risk_input(n))
    await stream(event("payment.initiated", "pay_0", T0, fraud_score=5), DELIVERY)
    await stream(event("payment.failed", "pay_0", T0 + 2, failure_code="psp_unavailable"), DELIVERY)
    assert feed.outcomes == []  # no outcome: the PSP being down says nothing about the card
    await stream(event("payment.failed", "pay_0", T0 + 3, failure_code="card_declined"), DELIVERY)
    await stream(event("payment.succeeded", "pay_1", T0 + 4), DELIVERY)
    await stream(event("payment.dispute.created", "pay_2", T0 + 9 * 86_400), DELIVERY)
    assert feed.outcomes == [
        ("pay_0", "declined", T0 + 3),
        ("pay_1", "approved", T0 + 4),
        ("pay_2", "disputed", T0 + 9 * 86_400),
    ]
    assert len(sink.commits) == 1  # the dispute's alert, as before


async def test_the_stream_announces_an_outcome_its_own_engine_never_saw() -> None:
    # A worker restarted since the payment was scored: the API process that scored it
    # still knows it, and must hear of the decline.
    engine, feed = FraudEngine(), RecordingFeed()
    stream = FraudStream(engine, cast(Store, AlertSink()), lambda: NOW, feed=feed)
    await stream(event("payment.failed", "pay_x", T0, failure_code="card_declined"), DELIVERY)
    assert engine.feedback("pay_x", "declined", T0) is False
    assert feed.outcomes == [("pay_x", "declined", T0)]


def test_a_message_handed_over_again_is_learned_once() -> None:
    # The feed delivers at least once: a batch a process did not acknowledge before it died
    # comes again, and the engine must count each payment and each decline once.
    once, twice = FraudEngine(), FraudEngine()
    txns = [
        Transaction(f"t{n}", T0 + 20 * n, "carder", 100, "usd", f"card{n}", "rig", "ip", "GB")
        for n in range(4)
    ]
    for txn in txns:
        once.observe(txn, 10)
        once.feedback(txn.transaction_id, "declined", txn.timestamp + 1)
    for _ in range(2):  # the whole batch, redelivered
        for txn in txns:
            twice.observe(txn, 10)
            twice.feedback(txn.transaction_id, "declined", txn.timestamp + 1)
    assert twice.snapshot() == once.snapshot()
    features = twice.store.features(
        Transaction("t9", T0 + 90, "carder", 100, "usd", "card9", "rig")
    )
    assert features == once.store.features(
        Transaction("t9", T0 + 90, "carder", 100, "usd", "card9", "rig")
    )
