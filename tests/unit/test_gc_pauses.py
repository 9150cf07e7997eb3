"""The cycle collector: startup objects frozen out of its passes, and every pass timed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from paymesh.adapters.collector import GcPauses, freeze_startup


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test process collects as before


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_what_lived_at_start_is_walked_no_more_and_later_cycles_are_still_collected(
    unfrozen: None,
) -> None:
    kept = [Node() for _ in range(1000)]
    assert freeze_startup() >= len(kept)
    walked = {id(o) for o in gc.get_objects()}  # every generation a pass can walk
    assert not any(id(n) in walked for n in kept)
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle made after the freeze
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None


def test_every_pass_is_counted_by_generation_with_its_time() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses()
    registry.register(pauses)
    with pauses:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    gc.collect(2)  # uninstalled: not counted
    text = generate_latest(registry).decode()
    assert 'paymesh_gc_pause_seconds_count{generation="2"} 2.0' in text
    assert 'paymesh_gc_pause_seconds_count{generation="0"} 1.0' in text
    assert 'paymesh_gc_pause_seconds_bucket{generation="2",le="+Inf"} 2.0' in text
    total = float(text.split('paymesh_gc_pause_seconds_sum{generation="2"} ')[1].split()[0])
    assert 0 < total < 5
