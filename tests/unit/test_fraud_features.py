"""Features are computed from what came before a transaction, in bounded memory."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paymesh.fraud.features import FeatureStore, haversine_km
from paymesh.fraud.transactions import Transaction, TransactionError, parse_transaction
from paymesh.fraud.windows import AmountStats, DistinctRecent, EventWindow

T0 = 1_700_000_000.0


def txn(n: int, ts: float, amount: int = 1000, **kw: object) -> Transaction:
    base: dict[str, object] = {
        "customer_id": "c1",
        "card_fingerprint": "card1",
        "device_id": "d1",
        "ip_address": "ip1",
        "country": "GB",
    }
    base.update(kw)
    return Transaction(f"t{n}", ts, amount=amount, currency="EUR", **base)  # type: ignore[arg-type]


def test_velocity_counts_and_amount_stats_exclude_the_transaction_itself() -> None:
    store = FeatureStore()
    for i, amount in enumerate([1000, 2000, 3000]):
        store.observe(txn(i, T0 + i * 60, amount))
    f = store.features(txn(9, T0 + 200, 9000))
    assert f["cust_txn_5m"] == 3
    assert f["cust_history_30d"] == 3
    assert f["cust_avg_amount_30d"] == 2000
    assert f["cust_std_amount_30d"] == pytest.approx(816.4966, rel=1e-6)
    assert f["amount_ratio"] == 4.5
    assert f["device_new"] == 0 and f["country_new"] == 0
    later = store.features(txn(9, T0 + 3 * 3600, 9000))
    assert later["cust_txn_5m"] == 0 and later["cust_txn_24h"] == 3


def test_first_transaction_has_no_history_features() -> None:
    # Only what needs no history: the device and the IP never carried the card.
    assert FeatureStore().features(txn(1, T0)) == {
        "amount": 1000.0,
        "card_device_new": 1,
        "card_device_fresh_24h": 1,
        "card_ip_new": 1,
    }


def test_new_device_country_ip_and_distinct_counts() -> None:
    store = FeatureStore()
    store.observe(txn(1, T0))
    f = store.features(txn(2, T0 + 10, device_id="d2", country="FR", ip_address="ip2"))
    assert (f["device_new"], f["country_new"], f["ip_new"]) == (1.0, 1.0, 1.0)
    assert f["cust_devices_30d"] == 1 and f["cust_countries_30d"] == 1


def test_cards_per_device_and_ip() -> None:
    store = FeatureStore()
    for i in range(5):
        store.observe(txn(i, T0 + i, customer_id=f"g{i}", card_fingerprint=f"k{i}"))
    f = store.features(txn(9, T0 + 10, card_fingerprint="k9"))
    assert f["device_cards_1h"] == 5 and f["ip_cards_1h"] == 5 and f["device_cards_24h"] == 5
    assert store.features(txn(9, T0 + 7200))["device_cards_1h"] == 0


def test_declines_and_small_auths_per_card_including_outcome_feedback() -> None:
    store = FeatureStore()
    store.observe(txn(1, T0, 100, approved=False))
    store.observe(txn(2, T0 + 10, 200))  # outcome not known yet
    store.observe(txn(3, T0 + 20, 5000, approved=True))
    assert store.observe_outcome("t2", "declined", at=T0 + 30)
    assert store.observe_outcome("t2", "declined", at=T0 + 31)  # delivered twice: counted once
    assert store.observe_outcome("t3", "declined", at=T0 + 32)  # approved already: ignored
    assert not store.observe_outcome("t9", "declined", at=T0 + 33)  # never seen
    f = store.features(txn(4, T0 + 40, 100))
    assert f["card_declines_10m"] == 2 and f["card_declines_1h"] == 2
    assert f["cust_declines_1h"] == 2 and f["device_declines_1h"] == 2 and f["ip_declines_1h"] == 2
    assert f["card_small_auths_10m"] == 2
    with pytest.raises(ValueError, match="outcome"):
        store.observe_outcome("t3", "refunded", at=T0)


def test_travel_speed_from_last_known_location() -> None:
    store = FeatureStore()
    store.observe(txn(1, T0, lat=51.51, lon=-0.13))  # London
    f = store.features(txn(2, T0 + 3600, lat=40.71, lon=-74.01))  # New York, an hour later
    assert f["secs_since_last"] == 3600
    assert f["travel_km"] == pytest.approx(5570, rel=0.01)
    assert f["travel_kmh"] == pytest.approx(5570, rel=0.01)
    assert haversine_km(0, 0, 0, 0) == 0


def test_idle_entities_are_evicted_beyond_the_cap() -> None:
    store = FeatureStore(max_entities=2)
    for i in range(3):
        store.observe(txn(i, T0 + i, customer_id=f"c{i}"))
    assert list(store.kinds["customer"]) == ["c1", "c2"]


def test_snapshot_restore_round_trips_through_json() -> None:
    store = FeatureStore()
    for i in range(4):
        store.observe(txn(i, T0 + i * 60, 1000 + i, lat=51.5, lon=0.0))
    probe = txn(9, T0 + 400, 7000, device_id="d9")
    restored = FeatureStore.restore(json.loads(json.dumps(store.snapshot())))
    assert restored.features(probe) == store.features(probe)


def test_windows_stay_bounded() -> None:
    window = EventWindow(horizon=60, cap=3)
    for i in range(10):
        window.add(T0 + i)
    assert len(window.times) == 3 and window.count(T0) == 3
    stats = AmountStats(days=2)
    for day in range(5):
        stats.add(T0 + day * 86_400, 100)
    assert len(stats.buckets) == 2
    seen = DistinctRecent(cap=2)
    for key in "abc":
        seen.add(key, T0)
    assert list(seen.seen) == ["b", "c"]


def test_parse_transaction_accepts_iso_and_epoch_and_names_bad_fields() -> None:
    iso = parse_transaction(
        {
            "transaction_id": "t",
            "timestamp": "2023-11-14T22:13:20Z",
            "customer_id": "c",
            "amount": "1200",
            "currency": "EUR",
            "lat": "1.5",
            "approved": "false",
            "device_id": "",
        }
    )
    assert iso.timestamp == T0 and iso.amount == 1200 and iso.lat == 1.5
    assert iso.approved is False and iso.device_id is None
    assert (
        parse_transaction(
            {
                "transaction_id": "t",
                "timestamp": T0,
                "customer_id": "c",
                "amount": 1,
                "currency": "EUR",
            }
        ).timestamp
        == T0
    )
    good = {
        "transaction_id": "t",
        "timestamp": T0,
        "customer_id": "c",
        "amount": 1,
        "currency": "EUR",
    }
    for field, bad, message in [
        ("timestamp", "yesterday", "timestamp"),
        ("amount", 1.5, "amount"),
        ("amount", -1, "negative"),
        ("customer_id", None, "customer_id"),
        ("approved", "maybe", "approved"),
        ("lat", "north", "lat"),
    ]:
        with pytest.raises(TransactionError, match=message):
            parse_transaction({**good, field: bad})


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 90 * 86_400), st.integers(0, 10**6)), max_size=40),
    st.floats(0, 90 * 86_400),
)
def test_amount_stats_running_totals_match_a_plain_sum(
    adds: list[tuple[float, int]], probe: float
) -> None:
    # In and out of order: the totals kept as they go equal summing the days in the window.
    stats = AmountStats(days=30)
    for offset, amount in adds:
        stats.add(T0 + offset, amount)
    newest = max((T0 + offset for offset, _ in adds), default=T0)
    ts = max(newest, T0 + probe)
    first = ts // 86_400 - 30
    kept = [a for o, a in adds if first < (T0 + o) // 86_400 > (newest // 86_400) - 30]
    n, mean, std = stats.summary(ts)
    assert n == len(kept)
    if kept:
        assert mean == pytest.approx(sum(kept) / len(kept))
        expected = sum(a * a for a in kept) / len(kept) - (sum(kept) / len(kept)) ** 2
        assert std == pytest.approx(max(0.0, expected) ** 0.5, rel=1e-6, abs=1e-3)
    days = [b[0] for b in stats.buckets]
    assert days == sorted(days) and len(days) == len(set(days))
