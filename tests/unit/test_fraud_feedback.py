"""Feedback reaches what a payment touched; the learned state survives a restart."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paymesh.domain.payment import RiskContext
from paymesh.fraud.compromise import CompromiseTracker
from paymesh.fraud.features import FeatureStore
from paymesh.fraud.generator import generate, outcomes
from paymesh.fraud.memory import PENDING, FeedbackMemory
from paymesh.fraud.scorer import FraudEngine, FraudRiskScorer, SnapshotError
from paymesh.fraud.transactions import Transaction
from paymesh.ports.risk import RiskInput

T0 = 1_700_000_000.0
DAY = 86_400.0
HABIT: dict[str, Any] = {
    "customer_id": "c1",
    "card_fingerprint": "card1",
    "device_id": "d1",
    "ip_address": "ip1",
    "country": "GB",
    "merchant_id": "shop",
    "approved": True,
}


def txn(n: int | str, ts: float, amount: int = 1000, **kw: Any) -> Transaction:
    return Transaction(f"t{n}", ts, amount=amount, currency="EUR", **{**HABIT, **kw})


def test_feedback_on_an_unknown_payment_is_false_and_a_bad_outcome_is_refused() -> None:
    engine = FraudEngine()
    assert engine.feedback("nope", "disputed", T0) is False
    engine.score(txn(1, T0))
    with pytest.raises(ValueError, match="outcome"):
        engine.feedback("t1", "refunded", T0)


def test_a_dispute_raises_the_risk_of_all_the_payment_touched_for_30_days() -> None:
    engine = FraudEngine()
    engine.score(txn(1, T0))
    assert engine.feedback("t1", "disputed", T0 + 10 * DAY)
    assert engine.feedback("t1", "disputed", T0 + 10 * DAY + 5)  # delivered twice: once
    f = engine.store.features(txn(2, T0 + 11 * DAY))
    assert f["card_disputes_30d"] == 1 and f["cust_disputes_30d"] == 1
    assert f["device_disputes_30d"] == 1 and f["ip_disputes_30d"] == 1
    assert f["merchant_disputes_7d"] == 1
    later = engine.store.features(txn(3, T0 + 41 * DAY))
    assert later["card_disputes_30d"] == 0 and later["device_disputes_30d"] == 0
    assert engine.store.features(txn(4, T0 + 18 * DAY))["merchant_disputes_7d"] == 0


def test_a_device_that_carried_a_disputed_card_makes_a_new_card_on_it_risky() -> None:
    engine = FraudEngine()
    engine.score(txn(1, T0, customer_id="fraudster", card_fingerprint="stolen-1", device_id="rig"))
    before = engine.score(
        txn(2, T0 + 5 * DAY, customer_id="g2", card_fingerprint="stolen-2", device_id="rig")
    )
    engine.feedback("t1", "disputed", T0 + 8 * DAY)
    after = engine.score(
        txn(3, T0 + 9 * DAY, customer_id="g3", card_fingerprint="stolen-3", device_id="rig")
    )
    assert "device_disputed" not in before.factors
    assert "device_disputed" in after.factors and after.score >= 60
    # The disputed card's own holder, on their own device, is not caught by it.
    engine.score(txn(4, T0, customer_id="h", card_fingerprint="own", device_id="phone"))
    engine.feedback("t4", "disputed", T0 + 8 * DAY)
    own = engine.score(
        txn(5, T0 + 9 * DAY, customer_id="h", card_fingerprint="own", device_id="phone")
    )
    assert "device_disputed" not in own.factors and own.score < 70


def test_a_decline_fed_back_counts_like_one_known_at_scoring() -> None:
    known, fed_back = FraudEngine(), FraudEngine()
    for i in range(3):
        ts = T0 + i * 20
        known.score(txn(i, ts, 100, customer_id="guest", approved=False))
        fed_back.score(txn(i, ts, 100, customer_id="guest", approved=None))
        assert fed_back.feedback(f"t{i}", "declined", ts)
    probe = txn(9, T0 + 70, 100, customer_id="guest", approved=None)
    assert known.store.features(probe) == fed_back.store.features(probe)


def _visit(store: FeatureStore, n: int, card: str, ts: float, merchant: str, **kw: Any) -> None:
    store.observe(
        txn(n, ts, customer_id=f"holder-{card}", card_fingerprint=card, merchant_id=merchant, **kw)
    )


def test_clean_disputes_of_cards_used_at_one_merchant_expose_its_other_cards() -> None:
    store = FeatureStore(compromise=CompromiseTracker(min_cards=3))
    for k in range(6):  # six cards at the skimmed terminal, within a day
        _visit(store, k, f"k{k}", T0 + k * 3600, "skimmed")
    _visit(store, 50, "early", T0 - 20 * DAY, "skimmed")  # long before the skimming
    _visit(store, 51, "elsewhere", T0, "honest")
    for k in range(3):  # clones of three of them used in a shop, disputed later
        _visit(store, 100 + k, f"k{k}", T0 + 5 * DAY, f"shop{k}", channel="pos")
    probe = txn(9, T0 + 30 * DAY, card_fingerprint="k5", merchant_id="far")
    assert "card_cpp_disputes" not in store.features(probe)
    for k in range(3):
        assert store.observe_outcome(f"t{100 + k}", "disputed", T0 + (12 + k) * DAY)
    assert set(store.compromise.merchants) == {"skimmed"}
    assert store.features(probe)["card_cpp_disputes"] == 3
    assert store.features(probe)["merchant_cpp_disputes"] == 0
    for card in ("early", "elsewhere"):
        f = store.features(txn(9, T0 + 30 * DAY, card_fingerprint=card, merchant_id="skimmed"))
        assert f["card_cpp_disputes"] == 0 and f["merchant_cpp_disputes"] == 3


def test_disputes_already_explained_or_card_not_present_point_at_no_merchant() -> None:
    store = FeatureStore(compromise=CompromiseTracker(min_cards=2))
    for k in range(4):
        _visit(store, k, f"k{k}", T0 + k * 3600, "terminal")
    # A payment we scored as an alert, and an online one: neither is a cloned card.
    store.observe(
        txn(100, T0 + 3 * DAY, customer_id="holder-k0", card_fingerprint="k0", channel="pos"),
        score=90,
    )
    store.observe(
        txn(101, T0 + 3 * DAY, customer_id="holder-k1", card_fingerprint="k1", channel="web")
    )
    store.observe_outcome("t100", "disputed", T0 + 9 * DAY)
    store.observe_outcome("t101", "disputed", T0 + 9 * DAY)
    assert not store.compromise.merchants and not store.compromise.visits


@settings(max_examples=40, deadline=None)
@given(
    cap=st.integers(1, 20),
    ids=st.lists(st.integers(0, 40), max_size=80),
)
def test_the_feedback_memory_keeps_only_the_most_recent_payments(cap: int, ids: list[int]) -> None:
    store = FeatureStore(max_remembered=cap)
    for i, n in enumerate(ids):
        store.observe(txn(n, T0 + i))
    assert len(store.memory) <= cap
    by_last_sighting = list(dict.fromkeys(reversed(ids)))  # most recent first
    kept = set(by_last_sighting[:cap])
    for n in set(ids):
        assert store.observe_outcome(f"t{n}", "approved", T0 + 100) == (n in kept)


def test_memory_and_tracker_caps_hold() -> None:
    with pytest.raises(ValueError, match="max_remembered"):
        FeedbackMemory(0)
    tracker = CompromiseTracker(min_cards=2, max_merchants=3, max_cards=2)
    store = FeatureStore(compromise=tracker)
    for k in range(10):
        store.observe(txn(k, T0 + k, card_fingerprint=f"k{k}", merchant_id=f"m{k % 5}"))
        store.observe(txn(100 + k, T0 + DAY, card_fingerprint=f"k{k}", channel="pos"))
        store.observe_outcome(f"t{100 + k}", "disputed", T0 + 2 * DAY)
    assert len(tracker.visits) <= 3 and all(len(c) <= 2 for c in tracker.visits.values())
    assert len(tracker.merchants) <= 3


def _feed(engine: FraudEngine, stream: list[Any]) -> list[Any]:
    results: list[Any] = []
    for item in stream:
        if isinstance(item, Transaction):
            results.append(engine.score(item))
        else:
            results.append(engine.feedback(*item))
    return results


def _interleaved(n: int, seed: int) -> list[Any]:
    labelled = generate(n, seed)
    events: list[tuple[float, Any]] = [(t.timestamp, t) for t, _ in labelled]
    events += [(at, (tid, outcome, at)) for at, tid, outcome in outcomes(labelled, seed)]
    events.sort(key=lambda pair: pair[0])
    return [item for _, item in events]


def test_snapshot_restore_keeps_scores_identical_on_what_follows() -> None:
    stream = _interleaved(6000, seed=4)
    cut = len(stream) // 2
    engine = FraudEngine()
    _feed(engine, stream[:cut])
    blob = engine.snapshot()
    restarted = FraudEngine()
    restarted.restore(blob)
    assert restarted.snapshot() == blob
    assert _feed(restarted, stream[cut:]) == _feed(engine, stream[cut:])


_items = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "customer_id": st.sampled_from(["a", "b", "c"]),
                "card_fingerprint": st.sampled_from(["k1", "k2", "k3", None]),
                "device_id": st.sampled_from(["d1", "d2", None]),
                "ip_address": st.sampled_from(["i1", "i2"]),
                "merchant_id": st.sampled_from(["m1", "m2", None]),
                "channel": st.sampled_from(["pos", "web"]),
                "amount": st.integers(1, 100_000),
                "approved": st.sampled_from([True, False, None]),
                "gap": st.floats(0, 3 * DAY),
            }
        ),
        st.tuples(st.integers(0, 60), st.sampled_from(["approved", "declined", "disputed"])),
    ),
    max_size=60,
)


def _engine_stream(items: list[Any]) -> list[Any]:
    ts, out = T0, list[Any]()
    for i, item in enumerate(items):
        if isinstance(item, dict):
            ts += item["gap"]
            fields = {k: v for k, v in item.items() if k != "gap"}
            out.append(Transaction(f"t{i}", ts, currency="EUR", **fields))
        else:
            out.append((f"t{item[0]}", item[1], ts))
    return out


@settings(max_examples=40, deadline=None)
@given(_items, _items)
def test_any_state_survives_a_restart(head: list[Any], tail: list[Any]) -> None:
    tracker = CompromiseTracker(min_cards=2)
    engine = FraudEngine(store=FeatureStore(compromise=tracker))
    stream = _engine_stream(head + tail)
    _feed(engine, stream[: len(head)])
    restarted = FraudEngine()
    restarted.restore(engine.snapshot())
    assert _feed(restarted, stream[len(head) :]) == _feed(engine, stream[len(head) :])
    assert restarted.snapshot() == engine.snapshot()


def test_restore_refuses_what_is_not_a_snapshot_and_changes_nothing() -> None:
    engine = FraudEngine()
    engine.score(txn(1, T0))
    before = engine.snapshot()
    for bad in (b"", b"\x93\x01\x02\x03", FraudEngine().snapshot()[:-3]):
        with pytest.raises(SnapshotError):
            engine.restore(bad)
    assert engine.snapshot() == before


def test_the_risk_scorer_scores_under_the_payment_id_so_feedback_finds_it() -> None:
    engine = FraudEngine()
    scorer = FraudRiskScorer(engine, clock=lambda: T0)
    ctx = RiskContext(device_id="dev", ip_address="1.2.3.4", country="GB")
    subject = RiskInput("pay_123", "m1", "cus_1", 500, "EUR", "pm_card", ctx)
    asyncio.run(scorer.assess(subject))
    assert engine.feedback("pay_123", "disputed", T0 + 3 * DAY)
    probe = Transaction("x", T0 + 4 * DAY, "cus_1", 500, "EUR", card_fingerprint="pm_card")
    assert engine.store.features(probe)["card_disputes_30d"] == 1


@settings(max_examples=200, deadline=None)
@given(cap=st.integers(1, 8), ids=st.lists(st.integers(0, 12), max_size=200))
def test_the_feedback_memory_matches_a_least_recently_scored_cache(
    cap: int, ids: list[int]
) -> None:
    """Against the plainest model of it: an ordered dict, moved to the end when scored
    again, its oldest dropped past the cap. Retries of a few ids, many times over, are what
    leave holes in the memory's columns; they stay bounded."""
    memory = FeedbackMemory(cap)
    model: OrderedDict[str, tuple[float, int]] = OrderedDict()
    for step, n in enumerate(ids):
        key = f"t{n}"
        memory.remember(key, float(step), ("c", "k", "d", "i", "m"), "web", step, PENDING)
        model[key] = (float(step), step)
        model.move_to_end(key)
        if len(model) > cap:
            model.popitem(last=False)
        assert len(memory) == len(model)
        assert all(len(column) == memory.slots for column in memory._columns())
    for n in range(13):
        got = memory.get(f"t{n}")
        expected = model.get(f"t{n}")
        assert (got.timestamp, got.score) == expected if got else expected is None
    assert list(memory.to_dict()["ids"]) == list(model)


def test_the_feedback_memory_is_allocated_once_at_its_full_size() -> None:
    """Its columns never grow nor move, retries and forgetting included: a server's memory
    does not step up when the memory fills, long after the warm-up (issue 18's soak)."""
    memory = FeedbackMemory(cap=1_000)
    arrays = (memory._ts, memory._score, memory._status)
    addresses = [column.buffer_info()[0] for column in arrays]
    lists = [id(column) for column in memory._columns()]
    for n in range(5_000):
        memory.remember(f"t{n}", T0 + n, ("c", "k", "d", "i", "m"), "web", n, PENDING)
        if n % 7 == 0:  # a retry of a recent one: a hole
            memory.remember(f"t{n - 3}", T0 + n, ("c", "k", "d", "i", "m"), "web", n, PENDING)
    assert len(memory) == 1_000 and memory.get("t4999") is not None
    assert memory.get("t3900") is None  # forgotten: more than 1,000 newer
    assert [column.buffer_info()[0] for column in arrays] == addresses
    assert [id(column) for column in memory._columns()] == lists
    assert all(len(column) == 1_125 for column in memory._columns())
