"""A capped map reaches its lasting size when it fills: memory stops growing there.

The sizes are CPython's own (`sys.getsizeof`): a table rebuilt after it was full shows
as a larger size, which is what stepped a server's RSS up 42 MiB long after warm-up.
"""

from __future__ import annotations

import sys
from collections import OrderedDict

from paymesh.fraud.capped import settle
from paymesh.fraud.features import FeatureStore
from paymesh.fraud.memory import FeedbackMemory
from paymesh.fraud.transactions import Transaction

CAP = 20_000
T0 = 1_700_000_000.0


def churn(table: dict[str, int], start: int, count: int, lru: bool) -> list[int]:
    """Add `count` keys to a full `table`, forgetting the oldest for each; its sizes."""
    sizes = []
    for i in range(start, start + count):
        table[f"k{i}"] = i
        if lru:
            table.popitem(last=False)  # type: ignore[call-arg]
        else:
            del table[next(iter(table))]
        sizes.append(sys.getsizeof(table))
    return sizes


def test_an_unsettled_full_map_grows_later_and_a_settled_one_never_does() -> None:
    for make in (dict, OrderedDict):
        lru = make is OrderedDict
        # Without it, the table is rebuilt larger after the map was full: the step to avoid.
        unsettled: dict[str, int] = make()
        for i in range(CAP):
            unsettled[f"k{i}"] = i
        at_cap = sys.getsizeof(unsettled)
        assert max(churn(unsettled, CAP, 5 * CAP, lru)) > at_cap

        settled: dict[str, int] = make()
        for i in range(CAP):
            settled[f"k{i}"] = i
        assert settle(settled) is True
        lasting = sys.getsizeof(settled)
        assert set(churn(settled, CAP, 10 * CAP, lru)) == {lasting}
        assert settle(settled) is False  # settled already: no rebuild changes its size


def test_settling_keeps_the_entries_and_their_order() -> None:
    table: OrderedDict[str, int] = OrderedDict((f"k{i}", i) for i in range(1_000))
    table.move_to_end("k3")
    before = list(table.items())
    table["\x00paymesh:settling"] = -1  # a caller's key that looks like the probe stays
    settle(table)
    assert list(table.items()) == [*before, ("\x00paymesh:settling", -1)]


def test_the_feature_store_and_the_feedback_memory_stop_growing_once_full() -> None:
    store = FeatureStore(max_entities=CAP, max_remembered=CAP)
    sizes: list[tuple[int, ...]] = []
    for n in range(6 * CAP):
        store.observe(
            Transaction(
                f"pay_{n}",
                T0 + n,
                customer_id=f"cus_{n}",
                amount=1_000,
                currency="EUR",
                device_id=f"dev_{n}",
                ip_address=f"ip_{n}",
            )
        )
        if n >= CAP:  # full from here on
            sizes.append(
                (
                    *(sys.getsizeof(store.kinds[k]) for k in ("customer", "device", "ip")),
                    sys.getsizeof(store.memory._positions),
                )
            )
    assert len(store.kinds["customer"]) == CAP and len(store.memory) == CAP
    assert len(set(sizes)) == 1, "a full map's table was rebuilt larger after it filled"


def test_a_restored_full_memory_settles_on_its_next_transaction() -> None:
    memory = FeedbackMemory(CAP)
    for n in range(CAP):
        memory.remember(f"pay_{n}", T0 + n, ("c", None, None, None, None), None, 0, 0)
    restored = FeedbackMemory.from_dict(memory.to_dict())
    sizes = []
    for n in range(CAP, 6 * CAP):
        restored.remember(f"pay_{n}", T0 + n, ("c", None, None, None, None), None, 0, 0)
        sizes.append(sys.getsizeof(restored._positions))
    assert len(set(sizes)) == 1


def test_a_restored_full_feature_store_is_settled_before_its_next_transaction() -> None:
    store = FeatureStore(max_entities=CAP)
    for n in range(CAP):
        store.observe(
            Transaction(f"pay_{n}", T0 + n, customer_id=f"cus_{n}", amount=1_000, currency="EUR")
        )
    restored = FeatureStore.restore(store.snapshot())
    at_restore = sys.getsizeof(restored.kinds["customer"])
    sizes = []
    for n in range(CAP, 4 * CAP):
        restored.observe(
            Transaction(f"pay_{n}", T0 + n, customer_id=f"cus_{n}", amount=1_000, currency="EUR")
        )
        sizes.append(sys.getsizeof(restored.kinds["customer"]))
    assert set(sizes) == {at_restore}
