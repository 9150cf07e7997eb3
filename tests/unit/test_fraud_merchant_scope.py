"""Customers are each merchant's own; cards, devices and IPs are the network's.

"cus_1" at shop A and "cus_1" at shop B are two people: A's traffic must not move B's
customer features. A card, device or IP is the same thing wherever it appears, so what
it did at A still counts at B.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import msgspec

from paymesh.domain.payment import FraudAssessment, RiskContext
from paymesh.fraud.features import FeatureStore, customer_key
from paymesh.fraud.replay import replay
from paymesh.fraud.scorer import FraudEngine, FraudRiskScorer
from paymesh.fraud.transactions import Transaction
from paymesh.ports.risk import RiskInput
from paymesh.ports.store import KeptAsTheyAre
from paymesh.service.fraud_stream import CHECKPOINT, FeatureCheckpoint

T0 = 1_700_000_000.0
DAY = 86_400.0


def txn(n: int, ts: float, merchant: str | None, amount: int = 2000, **kw: Any) -> Transaction:
    fields: dict[str, Any] = {
        "customer_id": "cus_1",
        "card_fingerprint": "card-a",
        "device_id": "dev-a",
        "ip_address": "ip-a",
        "country": "GB",
        "merchant_id": merchant,
        "approved": True,
        **kw,
    }
    return Transaction(f"t{n}", ts, amount=amount, currency="EUR", **fields)


def burst_at_a(engine: FraudEngine) -> None:
    """Merchant A's "cus_1": a velocity burst of big payments from a new device abroad."""
    for i in range(6):
        engine.score(txn(i, T0 + i * 20, "shop-a", amount=500 + i))
    for i in range(6, 9):
        engine.score(
            txn(i, T0 + 150 + i, "shop-a", amount=90_000, device_id=f"dev-x{i}", country="BR")
        )


# B's first payment for its own "cus_1": another card, device and IP than A's.
B_FIRST = txn(
    100,
    T0 + 200,
    "shop-b",
    card_fingerprint="card-b",
    device_id="dev-b",
    ip_address="ip-b",
    country="FR",
)


def test_one_merchants_burst_does_not_move_another_merchants_customer() -> None:
    engine = FraudEngine()
    burst_at_a(engine)
    # The burst is real where it happened: A's next payment for cus_1 is a velocity alert.
    at_a = engine.score(
        txn(
            50,
            T0 + 190,
            "shop-a",
            card_fingerprint="card-c",
            device_id="dev-c",
            ip_address="ip-c",
            country="FR",
        )
    )
    assert "velocity_5m" in at_a.factors

    fresh = FraudEngine()
    assert engine.store.features(B_FIRST) == fresh.store.features(B_FIRST)
    seen, first = engine.score(B_FIRST), fresh.score(B_FIRST)
    assert (seen.score, seen.factors, seen.decision) == (first.score, first.factors, first.decision)
    assert "velocity_5m" not in seen.factors


def test_a_dispute_at_one_merchant_stays_with_that_merchants_customer() -> None:
    engine = FraudEngine()
    engine.score(txn(1, T0, "shop-a"))
    assert engine.feedback("t1", "disputed", T0 + DAY)
    at_a = engine.store.features(txn(2, T0 + 2 * DAY, "shop-a", card_fingerprint="card-z"))
    assert at_a["cust_disputes_30d"] == 1
    # At B, with the same card: the card's dispute counts, A's customer's does not.
    at_b = engine.store.features(txn(3, T0 + 2 * DAY, "shop-b"))
    assert "cust_disputes_30d" not in at_b  # B has never seen its cus_1
    assert at_b["card_disputes_30d"] == 1 and at_b["device_disputes_30d"] == 1


def test_a_card_and_a_device_seen_at_one_merchant_still_count_at_another() -> None:
    engine = FraudEngine()
    # At A: the card is probed with small amounts and declined; the device carries 4 cards.
    for i in range(3):
        engine.score(txn(i, T0 + i * 30, "shop-a", amount=100, approved=False))
    for i in range(3, 6):
        engine.score(
            txn(i, T0 + i * 30, "shop-a", customer_id=f"g{i}", card_fingerprint=f"other-card-{i}")
        )
    # At B, under B's own cus_1 (never seen there), with the same card and device.
    probe = txn(10, T0 + 200, "shop-b", amount=100)
    f = engine.store.features(probe)
    assert "cust_txn_5m" not in f  # the customer is new at B...
    assert f["card_declines_10m"] == 3 and f["card_small_auths_10m"] == 3  # ...the card is not
    assert f["device_cards_1h"] == 4 and f["ip_cards_1h"] == 4
    assert f["card_customer_new"] == 1  # B's cus_1 is another customer of this card
    factors = engine.score(probe).factors
    assert {"declined_probes", "card_testing", "card_enumeration"} <= set(factors)


def test_a_customer_key_is_unambiguous_and_unscoped_without_a_merchant() -> None:
    assert customer_key(txn(1, T0, None)) == "cus_1"
    keys = {
        customer_key(txn(1, T0, "a:b", customer_id="c")),
        customer_key(txn(1, T0, "a", customer_id="b:c")),
        customer_key(txn(1, T0, "a", customer_id="b")),
        customer_key(txn(1, T0, "b", customer_id="b")),
    }
    assert len(keys) == 4


def test_risk_scorer_keys_customers_by_the_payments_merchant() -> None:
    clock = iter(T0 + i for i in range(100))
    scorer = FraudRiskScorer(FraudEngine(), clock=lambda: next(clock))

    def subject(n: int, merchant: str, method: str) -> RiskInput:
        return RiskInput(
            payment_id=f"pay_{n}",
            merchant_id=merchant,
            customer_id="cus_1",
            amount=2000,
            currency="eur",
            payment_method=method,
            context=RiskContext(device_id=f"dev-{merchant}"),
        )

    async def run() -> tuple[FraudAssessment, FraudAssessment, FraudAssessment]:
        for n in range(6):
            await scorer.assess(subject(n, "shop-a", "pm_a"))
        again_a = await scorer.assess(subject(6, "shop-a", "pm_a"))
        first_b = await scorer.assess(subject(7, "shop-b", "pm_b"))
        fresh = FraudRiskScorer(FraudEngine(), clock=lambda: T0 + 7)
        return again_a, first_b, await fresh.assess(subject(7, "shop-b", "pm_b"))

    again_a, first_b, fresh_b = asyncio.run(run())
    assert "velocity_5m" in again_a.factors
    assert first_b == fresh_b


def test_replay_scopes_customers_by_merchant_id_when_present() -> None:
    def record(n: int, merchant: str | None) -> str:
        fields = {
            "transaction_id": f"t{n}",
            "timestamp": T0 + n,
            "customer_id": "cus_1",
            "amount": 1000,
            "currency": "EUR",
            "card_fingerprint": f"card-{n}",
        }
        if merchant is not None:
            fields["merchant_id"] = merchant
        return json.dumps(fields)

    scoped = [record(n, "shop-a") for n in range(6)] + [record(6, "shop-b")]
    last = list(replay(scoped))[-1]
    assert "velocity_5m" not in last["risk_factors"]
    unscoped = [record(n, None) for n in range(7)]
    assert "velocity_5m" in list(replay(unscoped))[-1]["risk_factors"]


# --- a checkpoint written before customers were scoped ----------------------------------


def old_checkpoint() -> tuple[bytes, FeatureStore]:
    """The bytes an older paymesh wrote: format 1, customers keyed by their id alone
    (made here by observing without a merchant, which keys them the way it did)."""
    store = FeatureStore()
    for i in range(3):
        store.observe(txn(i, T0 + i * 60, None))
    assert store.observe_outcome("t0", "disputed", T0 + DAY)
    data = {"format": "paymesh.fraud.snapshot/1", "store": store.snapshot()}
    return msgspec.msgpack.encode(data), store


class _BlobStore:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    async def get_blob(self, name: str) -> bytes | None:
        return self.blobs.get(name)

    async def put_blob(self, name: str, data: bytes, at: datetime) -> None:
        self.blobs[name] = data

    async def put_blob_parts(self, name: str, parts: list[memoryview], at: datetime) -> None:
        self.blobs[name] = b"".join(parts)

    def spill(self) -> KeptAsTheyAre:
        return KeptAsTheyAre()


def test_an_old_checkpoint_loads_without_its_unscoped_customers() -> None:
    blob, old = old_checkpoint()
    engine = FraudEngine()
    checkpoint = FeatureCheckpoint(
        engine,
        _BlobStore({CHECKPOINT: blob}),  # type: ignore[arg-type]
        lambda: datetime.now(UTC),
    )
    assert asyncio.run(checkpoint.load()) is True
    store = engine.store
    assert len(store.kinds["customer"]) == 0  # mixed every merchant's cus_1: dropped
    card = store.kinds["card"]["card-a"]
    assert card.customers.seen == {}  # the old customer keys are gone from the card too
    assert card.disputes is not None and card.disputes.count(T0) == 1  # the card's past stays
    assert list(store.kinds["device"]) == list(old.kinds["device"])
    remembered = store.memory.get("t2")
    assert remembered is not None and remembered.entities[0] is None
    assert remembered.entities[1:] == ("card-a", "dev-a", "ip-a", None)
    # An outcome of an old payment still reaches what it can: the card, not a customer.
    assert engine.feedback("t2", "declined", T0 + 2 * DAY)
    assert len(store.kinds["customer"]) == 0
    # What it writes next is the current format, and reads back the same.
    asyncio.run(checkpoint.save())
    again = FraudEngine()
    again.restore(checkpoint.store.blobs[CHECKPOINT])  # type: ignore[attr-defined]
    assert again.snapshot() == engine.snapshot()
