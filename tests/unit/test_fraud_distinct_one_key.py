"""`DistinctRecent` keeps its one key in its own slots and makes a dict only for a second:
whatever the sightings, it must answer exactly as the dict it replaced.

The reference below is that dict form as it was (commit 7712816's `DistinctRecent`, its
in-order and late paths), kept here as the model: a difference in any answer, order
included, would change a fraud feature and so a decision.
"""

from __future__ import annotations

import math
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from paymesh.fraud import windows
from paymesh.fraud.windows import DistinctRecent

T0 = 1_700_000_000.0
#: Built to C by mypyc (`make test-fraud-compiled`): its objects carry a vtable pointer, and
#: its methods refuse an argument of the wrong type where Python lets it through.
COMPILED = str(windows.__file__).endswith(".so")


class DictForm:
    """The dict form: key -> (first seen, last seen), oldest last sighting first."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen: dict[str, tuple[float, float]] = {}
        self.newest = -math.inf

    def add(self, key: str, ts: float) -> None:
        if ts < self.newest:
            self._add_late(key, ts)
            return
        self.newest = ts
        entry = self.seen.pop(key, None)
        if entry is not None:
            self.seen[key] = (entry[0], ts)
        else:
            self.seen[key] = (ts, ts)
            if len(self.seen) > self.cap:
                del self.seen[next(iter(self.seen))]

    def _add_late(self, key: str, ts: float) -> None:
        seen = self.seen
        entry = seen.get(key)
        if entry is not None:
            first, last = entry
            if ts < last:
                if ts < first:
                    seen[key] = (ts, last)
            else:
                del seen[key]
                self._insert(key, (first, ts))
            return
        if len(seen) >= self.cap:
            if not seen or ts < next(iter(seen.values()))[1]:
                return
            self._insert(key, (ts, ts))
            del seen[next(iter(seen))]
        else:
            self._insert(key, (ts, ts))

    def _insert(self, key: str, entry: tuple[float, float]) -> None:
        seen = self.seen
        later = 0
        for _, seen_last in reversed(seen.values()):
            if seen_last <= entry[1]:
                break
            later += 1
        tail = [seen.popitem() for _ in range(later)]
        seen[key] = entry
        for k, v in reversed(tail):
            seen[k] = v


# Few keys, so a run often stays on one key and then meets a second; small time offsets,
# drawn in any order, so late sightings and ties come often.
sightings = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 30)), max_size=30)
probes = st.sampled_from(["a", "b", "c", "z"])


@settings(max_examples=500, deadline=None)
@given(sightings=sightings, cap=st.integers(0, 4), probe=probes, at=st.integers(0, 31))
def test_every_answer_is_the_dict_forms_in_any_order_of_sightings(
    sightings: list[tuple[str, int]], cap: int, probe: str, at: int
) -> None:
    slots, model = DistinctRecent(cap), DictForm(cap)
    for key, offset in sightings:
        slots.add(key, T0 + offset)
        model.add(key, T0 + offset)
        assert list(slots.seen.items()) == list(model.seen.items())  # order included
        assert slots.newest == model.newest
    since, older = T0 + at, T0 + at // 2
    expected_since = sum(1 for _, last in model.seen.values() if last >= since)
    expected_older = sum(1 for _, last in model.seen.values() if last >= older)
    assert slots.count_since(since) == expected_since
    assert slots.count_since2(since, older) == (expected_since, expected_older)
    assert (probe in slots) == (probe in model.seen)
    assert slots.get(probe) == model.seen.get(probe)
    assert slots.first_seen(probe) == (model.seen[probe][0] if probe in model.seen else None)
    assert len(slots) == len(model.seen)
    restored = DistinctRecent.from_dict(slots.to_dict())
    assert list(restored.seen.items()) == list(model.seen.items())
    assert restored.to_dict() == slots.to_dict()


def test_one_key_takes_no_dict_and_a_second_key_makes_one() -> None:
    distinct = DistinctRecent(16)
    distinct.add("dev_1", T0)
    distinct.add("dev_1", T0 + 60)
    assert distinct.get("dev_1") == (T0, T0 + 60)
    assert distinct._many is None
    one_key = sys.getsizeof(distinct)
    distinct.add("dev_2", T0 + 120)
    assert distinct._many == {"dev_1": (T0, T0 + 60), "dev_2": (T0 + 120, T0 + 120)}
    # The object and its dict, tuple and floats were about 320 bytes with one key.
    limit = 88 if COMPILED else 80
    assert one_key <= limit < one_key + sys.getsizeof(distinct._many)


def test_nothing_is_kept_as_none_and_none_is_never_seen() -> None:
    distinct = DistinctRecent(4)
    assert None not in distinct
    if not COMPILED:  # compiled, a key that is not a str is refused at the call
        assert distinct.get(None) is None  # type: ignore[arg-type]
    assert distinct.count_since(-math.inf) == 0 and len(distinct) == 0
    assert distinct.to_dict() == {"cap": 4, "seen": {}}
