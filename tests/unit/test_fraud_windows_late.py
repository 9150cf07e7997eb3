"""Windows fed events out of time order end up as if fed the same events sorted by time.

Processes share observations over the fraud feed and outcomes come from several workers,
so an event can arrive milliseconds to minutes late. The reference everywhere is the same
window fed the same events sorted by time, stably (events at the same time in the order
they arrived), which is the in-order path: unchanged, and as cheap as before.
"""

from __future__ import annotations

import gc
import json
import sys
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from paymesh.fraud.features import FeatureStore
from paymesh.fraud.transactions import Transaction
from paymesh.fraud.windows import DAY, AmountStats, DistinctRecent, EventWindow

T0 = 1_700_000_000.0

# Small integer offsets: many equal times, and events on both sides of the horizon.
offsets = st.integers(0, 60)
values = st.sampled_from([1, 5, 10, 50])
Event = tuple[float, float]


def in_time_order(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda event: event[0])  # stable: ties in arrival order


def fed(window: EventWindow, events: list[Event]) -> EventWindow:
    for ts, value in events:
        window.add(ts, value)
    return window


def assert_same_answers(late: EventWindow, ordered: EventWindow, probes: list[float]) -> None:
    assert list(late.times) == list(ordered.times)
    assert list(late.values) == list(ordered.values)
    for since in probes:
        assert late.count(since) == ordered.count(since)
        for limit in (0, 5, 10, 100):
            assert late.count_at_most(since, limit) == ordered.count_at_most(since, limit)
            assert late.count_above(since, limit) == ordered.count_above(since, limit)
    for recent in probes:
        for older in probes:
            if older <= recent:
                middle = (recent + older) / 2
                assert late.count3(recent, middle, older) == ordered.count3(recent, middle, older)


def test_a_late_event_is_counted_in_its_place() -> None:
    window = EventWindow(horizon=1_000, cap=256)
    for ts in (100.0, 200.0, 300.0, 50.0):
        window.add(ts)
    assert window.count(150) == 2
    assert window.count(50) == 4
    assert window.count3(250, 150, 0) == (1, 2, 4)
    assert list(window.times) == [50, 100, 200, 300]


def test_a_late_event_past_the_horizon_is_forgotten_and_the_cap_keeps_the_newest() -> None:
    window = EventWindow(horizon=100, cap=3)
    for ts in (500.0, 600.0, 450.0):  # 450 is before 600 - 100
        window.add(ts)
    assert list(window.times) == [500, 600]
    window.add(550, 7)
    window.add(520, 9)  # the cap: 500 goes, the oldest
    assert list(window.times) == [520, 550, 600] and list(window.values) == [9, 7, 1.0]
    window.add(510)  # older than all three kept: goes at once
    assert list(window.times) == [520, 550, 600]


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(st.tuples(offsets, values), max_size=40),
    horizon=st.sampled_from([5.0, 20.0, 1_000.0]),
    cap=st.integers(1, 50),  # at and under the number of events: the cap is hit, and not
    data=st.data(),
)
def test_event_window_in_any_order_equals_time_order(
    events: list[tuple[int, int]], horizon: float, cap: int, data: st.DataObject
) -> None:
    arrivals: list[Event] = data.draw(
        st.permutations([(T0 + t, float(v)) for t, v in events]), label="arrival order"
    )
    late = fed(EventWindow(horizon, cap), arrivals)
    ordered = fed(EventWindow(horizon, cap), in_time_order(arrivals))
    probes = [T0 + t for t in range(-1, 63, 3)]
    assert_same_answers(late, ordered, probes)
    # The same, stated outright: the `cap` newest within `horizon` of the newest.
    expected = in_time_order(arrivals)
    if expected:
        expected = [e for e in expected if e[0] >= expected[-1][0] - horizon][-cap:]
    assert list(zip(late.times, late.values, strict=True)) == expected
    # A snapshot round trip changes nothing, through JSON and msgpack.
    for restored in (
        EventWindow.from_dict(json.loads(json.dumps(late.to_dict()))),
        EventWindow.from_dict(msgspec.msgpack.decode(msgspec.msgpack.encode(late.to_dict()))),
    ):
        assert restored.to_dict() == late.to_dict()


@settings(max_examples=100, deadline=None)
@given(events=st.lists(st.tuples(offsets, values), max_size=40), data=st.data())
def test_an_old_snapshot_with_late_events_at_the_end_is_put_in_order(
    events: list[tuple[int, int]], data: st.DataObject
) -> None:
    # What the windows held before: late events appended, pruned by their own time.
    arrivals: list[Event] = data.draw(
        st.permutations([(T0 + t, float(v)) for t, v in events]), label="arrival order"
    )
    horizon, cap = 20.0, 16
    old: dict[str, Any] = {"horizon": horizon, "cap": cap, "times": [], "values": []}
    for ts, value in arrivals:
        old["times"].append(ts)
        old["values"].append(value)
        while old["times"] and (old["times"][0] < ts - horizon or len(old["times"]) > cap):
            del old["times"][0], old["values"][0]
    restored = EventWindow.from_dict(old)
    # What it held, sorted (stably), then bounded as a window fed in time order bounds it.
    expected = in_time_order(list(zip(old["times"], old["values"], strict=True)))
    if expected:
        expected = [e for e in expected if e[0] >= expected[-1][0] - horizon][-cap:]
    assert list(zip(restored.times, restored.values, strict=True)) == expected
    # From then on it takes events like any other window, late ones included.
    restored.add(T0 + 30)
    restored.add(T0 + 25)
    assert list(restored.times) == sorted(restored.times)
    assert EventWindow.from_dict(restored.to_dict()).to_dict() == restored.to_dict()


# DistinctRecent: sightings (key, time).
keys = st.sampled_from("abcdefgh")
Sighting = tuple[str, float]


def seen_after(cap: int, sightings: list[Sighting]) -> DistinctRecent:
    distinct = DistinctRecent(cap)
    for key, ts in sightings:
        distinct.add(key, ts)
    return distinct


@settings(max_examples=300, deadline=None)
@given(sightings=st.lists(st.tuples(keys, offsets), max_size=40), data=st.data())
def test_distinct_recent_under_its_cap_in_any_order_equals_time_order(
    sightings: list[tuple[str, int]], data: st.DataObject
) -> None:
    arrivals: list[Sighting] = data.draw(
        st.permutations([(k, T0 + t) for k, t in sightings]), label="arrival order"
    )
    cap = 8  # every key fits: nothing is forgotten
    late = seen_after(cap, arrivals)
    ordered = seen_after(cap, sorted(arrivals, key=lambda s: s[1]))
    assert list(late.seen.items()) == list(ordered.seen.items())  # order included
    for key in "abcdefgh":
        times = [ts for k, ts in arrivals if k == key]
        expected = (min(times), max(times)) if times else None
        assert late.seen.get(key) == expected
        assert late.first_seen(key) == (None if expected is None else expected[0])
    for since in (T0 + t for t in range(-1, 63, 4)):
        assert late.count_since(since) == ordered.count_since(since)
        for older in (T0 + t for t in range(-1, 63, 8)):
            if older <= since:
                assert late.count_since2(since, older) == ordered.count_since2(since, older)


@settings(max_examples=300, deadline=None)
@given(
    sightings=st.lists(st.tuples(keys, offsets), max_size=40),
    cap=st.integers(1, 5),
    data=st.data(),
)
def test_distinct_recent_at_its_cap_keeps_the_keys_and_last_sightings_of_time_order(
    sightings: list[tuple[str, int]], cap: int, data: st.DataObject
) -> None:
    # Beyond the cap, the keys kept, their order and their last sightings (all the
    # distinct counts read) are those of time order; a first sighting is one of the key's
    # sightings, no later than its last (time order's can differ: see DistinctRecent).
    arrivals: list[Sighting] = data.draw(
        st.permutations([(k, T0 + t) for k, t in sightings]), label="arrival order"
    )
    late = seen_after(cap, arrivals)
    ordered = seen_after(cap, sorted(arrivals, key=lambda s: s[1]))
    assert [(k, last) for k, (_, last) in late.seen.items()] == [
        (k, last) for k, (_, last) in ordered.seen.items()
    ]
    for key, (first, last) in late.seen.items():
        times = [ts for k, ts in arrivals if k == key]
        assert first in times and first <= last == max(times)
    for since in (T0 + t for t in range(-1, 63, 4)):
        assert late.count_since(since) == ordered.count_since(since)
        assert late.count_since2(since, since - 10) == ordered.count_since2(since, since - 10)
    assert late.newest == max((ts for _, ts in arrivals), default=float("-inf"))
    restored = DistinctRecent.from_dict(json.loads(json.dumps(late.to_dict())))
    assert list(restored.seen.items()) == list(late.seen.items())
    assert restored.newest == (late.newest if late.seen else float("-inf"))


def test_distinct_recent_keeps_the_earliest_first_and_the_latest_last_sighting() -> None:
    distinct = DistinctRecent(cap=4)
    distinct.add("a", 300)
    distinct.add("b", 400)
    distinct.add("a", 100)  # late: a was first seen earlier, last seen still at 300
    assert distinct.seen == {"a": (100, 300), "b": (400, 400)}
    distinct.add("c", 350)  # late: between a and b
    distinct.add("a", 380)  # late, but after a's last: a moves up to its place
    assert list(distinct.seen.items()) == [("c", (350, 350)), ("a", (100, 380)), ("b", (400, 400))]
    assert distinct.count_since(360) == 2 and distinct.first_seen("a") == 100


def test_distinct_recent_at_its_cap_forgets_a_late_key_older_than_all() -> None:
    distinct = DistinctRecent(cap=2)
    distinct.add("a", 200)
    distinct.add("b", 300)
    distinct.add("c", 100)  # time order would have forgotten it when b came
    assert list(distinct.seen) == ["a", "b"]
    distinct.add("c", 250)  # newer than a: a goes
    assert list(distinct.seen.items()) == [("c", (250, 250)), ("b", (300, 300))]


def test_an_old_distinct_snapshot_with_late_sightings_is_put_in_order() -> None:
    # Before: a late sighting went to the end, and could set last before first.
    old = {"cap": 4, "seen": {"a": [100.0, 300.0], "b": [400.0, 400.0], "c": [350.0, 200.0]}}
    restored = DistinctRecent.from_dict(old)
    assert list(restored.seen.items()) == [
        ("a", (100, 300)),
        ("c", (200, 350)),
        ("b", (400, 400)),
    ]
    assert restored.newest == 400
    restored.add("d", 500)
    assert list(restored.seen)[-1] == "d" and restored.newest == 500
    # An ordered one, as this class writes it, comes back as it was.
    assert DistinctRecent.from_dict(restored.to_dict()).to_dict() == restored.to_dict()


@settings(max_examples=150, deadline=None)
@given(
    adds=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 10**6)), max_size=40),
    data=st.data(),
)
def test_amount_stats_in_any_order_equal_time_order(
    adds: list[tuple[int, int]], data: st.DataObject
) -> None:
    arrivals = data.draw(
        st.permutations([(T0 + d * DAY / 2, a) for d, a in adds]), label="arrival order"
    )
    late, ordered = AmountStats(days=7), AmountStats(days=7)
    for ts, amount in arrivals:
        late.add(ts, amount)
    for ts, amount in sorted(arrivals, key=lambda x: x[0]):
        ordered.add(ts, amount)
    assert late.to_dict() == ordered.to_dict()
    for d in range(0, 45, 3):
        assert late.summary(T0 + d * DAY / 2) == ordered.summary(T0 + d * DAY / 2)


# Order-dependent by design, not windows: the moving mean takes amounts in arrival order, and
# the time since the last payment (and travel from its place) reads the last one to arrive; a
# card's spending profile is a running mean and spread (summed in arrival order).
ARRIVAL_ORDER_FEATURES = {
    "card_amount_ratio",
    "card_amount_z",
    "card_home_km",
    "secs_since_last",
    "travel_km",
    "travel_kmh",
}


@settings(max_examples=60, deadline=None)
@given(
    payments=st.lists(
        st.tuples(
            st.integers(0, 7_200),
            st.sampled_from(["c1", "c2"]),
            st.sampled_from(["k1", "k2", "k3"]),
            st.sampled_from(["d1", "d2"]),
            st.sampled_from([100, 400, 2_000]),
            st.sampled_from([True, False, None]),
        ),
        max_size=25,
    ),
    data=st.data(),
)
def test_features_after_payments_in_any_order_equal_time_order(
    payments: list[tuple[int, str, str, str, int, bool | None]], data: st.DataObject
) -> None:
    txns = [
        Transaction(
            f"t{n}",
            T0 + t,
            c,
            amount,
            "EUR",
            card_fingerprint=k,
            device_id=d,
            ip_address=d,
            country="GB",
            merchant_id="m1",
            channel="pos",
            approved=approved,
        )
        for n, (t, c, k, d, amount, approved) in enumerate(payments)
    ]
    arrivals = data.draw(st.permutations(txns), label="arrival order")
    late, ordered = FeatureStore(), FeatureStore()
    for txn in arrivals:
        late.observe(txn)
    for txn in sorted(arrivals, key=lambda txn: txn.timestamp):
        ordered.observe(txn)
    for t in (0, 600, 3_600, 7_300):
        probe = Transaction(
            "p",
            T0 + t,
            "c1",
            5_000,
            "EUR",
            card_fingerprint="k1",
            device_id="d1",
            ip_address="d1",
            country="FR",
            merchant_id="m1",
        )
        got, want = late.features(probe), ordered.features(probe)
        assert got.keys() == want.keys()
        assert {k: v for k, v in got.items() if k not in ARRIVAL_ORDER_FEATURES} == {
            k: v for k, v in want.items() if k not in ARRIVAL_ORDER_FEATURES
        }


def test_a_month_of_amounts_is_two_objects_to_the_cycle_collector() -> None:
    """Every full pass of the collector walks each long-lived object the engine keeps: a
    customer's month of daily buckets is the window and its list, whatever the days."""
    stats = AmountStats(30)
    for day in range(20):
        stats.add(day * DAY + 60, 1_000 + day)
        stats.add(day * DAY + 120, 2_000)
    stats.add(5 * DAY, 700)  # a late one, into its day's bucket
    gc.collect()
    held = [stats, stats.buckets, *stats.buckets]
    assert sum(gc.is_tracked(o) for o in held) == 2
    assert stats.summary(19 * DAY + 200)[0] == 41.0


def test_a_customers_first_amount_costs_a_small_list_not_a_deque_block() -> None:
    """Every customer has an AmountStats: its container is paid once per customer, up to
    the engine's cap of 200,000 (a deque's first block alone was 760 bytes)."""
    stats = AmountStats(30)
    stats.add(60.0, 1_000)
    assert sys.getsizeof(stats.buckets) <= 120
    for day in range(40):  # past the window: the oldest days go
        stats.add(day * DAY + 60, 1_000)
    assert len(stats.buckets) == 30 and stats.buckets[0][0] == 10
