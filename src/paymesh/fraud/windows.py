"""Sliding-window aggregates kept incrementally, each with a hard memory bound.

Short windows (minutes to a day) keep the recent events themselves, capped: the
rules only ask "more than N", so a saturated count loses nothing they need.
The 30-day amount statistics keep one bucket a day (count, sum, sum of squares),
so a customer costs at most 31 buckets whatever their volume.

Events may arrive out of time order: processes share what they observe over the fraud
feed, and outcomes come from several workers, so one can be milliseconds to minutes late.
Every window ends up as if its events had arrived sorted by time (ties in arrival order):
an in-order event is appended in O(1), as before; a late one is put in its place, and one
the window has already moved past is forgotten at once. Only `DistinctRecent`'s first-seen
times can differ from the sorted order's, and only once it forgets keys (see there).
`MovingMean` is no window: it takes amounts in the order they arrive.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right
from itertools import pairwise
from typing import Any

DAY = 86_400.0
# Values above this (2**53) are kept as it: every integer up to it is exact in a double, and a
# bigger amount is an outlier whatever its size (nor does it overflow a double).
EXACT_LIMIT = float(2**53)


class EventWindow:
    """The (time, value) events of the last `horizon` seconds, at most `cap` of them.

    Kept in time order (ties in arrival order) whatever order they arrive in: the events
    kept are the `cap` newest of those no older than the newest minus `horizon`.

    Times and values are two arrays of doubles, not deques of floats: 16 bytes an event
    where a deque holds a pointer to a 24-byte float (and a 64-slot block however few it
    holds), and sorted, so a count is a binary search. A day of a busy customer is up to
    `cap` events, kept for every customer: this is most of the fraud engine's memory.
    """

    __slots__ = ("cap", "horizon", "times", "values")

    def __init__(self, horizon: float, cap: int = 64) -> None:
        self.horizon = horizon
        self.cap = cap
        self.times = array("d")
        self.values = array("d")

    def add(self, ts: float, value: float = 1.0) -> None:
        times = self.times
        if times and ts < times[-1]:
            self._add_late(ts, value)
            return
        times.append(ts)
        self.values.append(min(value, EXACT_LIMIT))
        if times[0] < ts - self.horizon or len(times) > self.cap:
            self._trim()

    def _trim(self) -> None:
        """Drop what fell out: older than the newest minus the horizon, or beyond the cap."""
        times = self.times
        drop = max(bisect_left(times, times[-1] - self.horizon), len(times) - self.cap)
        if drop > 0:
            del times[:drop]
            del self.values[:drop]

    def _add_late(self, ts: float, value: float) -> None:
        """An event older than the newest: into its place, so the times stay in order (the
        window's end does not move, so nothing else expires). Dropped if already expired."""
        times = self.times
        if ts < times[-1] - self.horizon:
            return
        # After any equal times: as if it had come after them in time order.
        i = bisect_right(times, ts)
        times.insert(i, ts)
        self.values.insert(i, min(value, EXACT_LIMIT))
        if len(times) > self.cap:  # the oldest goes, which may be this one
            del times[0]
            del self.values[0]

    def count(self, since: float) -> int:
        times = self.times
        if not times or times[-1] < since:
            return 0
        return len(times) - bisect_left(times, since)

    def count3(self, recent: float, middle: float, older: float) -> tuple[int, int, int]:
        """Events since each of three times (recent >= middle >= older)."""
        times = self.times
        if not times or times[-1] < older:
            return 0, 0, 0
        n = len(times)
        return (
            n - bisect_left(times, recent),
            n - bisect_left(times, middle),
            n - bisect_left(times, older),
        )

    def count_at_most(self, since: float, limit: float) -> int:
        times = self.times
        if not times or times[-1] < since:
            return 0
        return sum(1 for v in self.values[bisect_left(times, since) :] if v <= limit)

    def count_above(self, since: float, limit: float) -> int:
        times = self.times
        if not times or times[-1] < since:
            return 0
        return sum(1 for v in self.values[bisect_left(times, since) :] if v > limit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "cap": self.cap,
            "times": self.times.tolist(),
            "values": self.values.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventWindow:
        window = cls(float(data["horizon"]), int(data["cap"]))
        times, values = data["times"], data["values"]
        if len(times) != len(values):
            raise ValueError("snapshot: a window with more times than values, or fewer")
        window.times.extend(float(t) for t in times)
        window.values.extend(min(float(v), EXACT_LIMIT) for v in values)
        window._normalize()
        return window

    def _normalize(self) -> None:
        """Into time order and within the bounds: a snapshot taken before late events were
        put in their place can hold them out of order, or kept past the horizon. A no-op
        (one pass) for anything this class made."""
        times, values = self.times, self.values
        if any(later < earlier for earlier, later in pairwise(times)):
            # Stable: equal times keep their order, as if they had arrived so.
            events = sorted(zip(times, values, strict=True), key=lambda event: event[0])
            self.times = array("d", (t for t, _ in events))
            self.values = array("d", (v for _, v in events))
        if self.times:
            self._trim()


AMOUNT_CAP = 2**31 - 1  # minor units


class AmountStats:
    """Count, mean and standard deviation of amounts over the last `days` days, daily buckets.

    Running totals are kept beside the buckets, so a summary subtracts the few buckets that
    fell out of the window instead of adding up all of them. Amounts are integer minor
    units: the totals are exact integers, so subtracting never drifts, and a restored
    window (totals summed again from its buckets) gives the very same figures.

    A bucket is a tuple, replaced when it changes, not a list changed in place: a tuple of
    numbers drops out of the cycle collector's view at its first pass, a list stays in it.
    With a bucket a day for a month, per customer, that was most of the objects every full
    pass walks (`benchmarks/gc_passes.py`).

    The buckets are a list, not a deque: a deque takes a block of 64 slots at once, 760
    bytes for a customer's first bucket against a list's 64, a sixth of what a new customer
    cost the engine. Dropping the oldest of at most 31 is a short move.
    """

    __slots__ = ("buckets", "days", "n", "s", "ss")

    def __init__(self, days: int = 30) -> None:
        self.days = days
        #: (day index, n, sum, sum of squares), oldest day first. Integers, and typed so:
        #: compiled (mypyc), a `float` attribute is a C double, and a sum of squares of
        #: amounts up to AMOUNT_CAP passes 2**53, where doubles stop being exact.
        self.buckets: list[tuple[float, int, int, int]] = []
        self.n: int = 0
        self.s: int = 0
        self.ss: int = 0

    def add(self, ts: float, amount: int) -> None:
        # Squares of bigger amounts pass 2**64 (msgpack's limit) in a snapshot; an amount that
        # large is an outlier whatever its exact size.
        amount = min(amount, AMOUNT_CAP)
        day = ts // DAY
        buckets = self.buckets
        if buckets and buckets[-1][0] == day:
            _, n, total, squares = buckets[-1]
            buckets[-1] = (day, n + 1, total + amount, squares + amount * amount)
        elif not buckets or buckets[-1][0] < day:
            buckets.append((day, 1, amount, amount * amount))
        elif not self._add_late(day, amount):
            return
        self.n += 1
        self.s += amount
        self.ss += amount * amount
        while buckets[0][0] <= day - self.days:
            self._drop()

    def _add_late(self, day: float, amount: int) -> bool:
        """An amount of an earlier day than the newest (clock skew): into its place, so the
        buckets stay in day order; False (and nothing kept) if its day is out of the window."""
        buckets = self.buckets
        if day <= buckets[-1][0] - self.days:
            return False
        for i, (bucket_day, n, total, squares) in enumerate(buckets):
            if bucket_day == day:
                buckets[i] = (day, n + 1, total + amount, squares + amount * amount)
                return True
            if bucket_day > day:
                buckets.insert(i, (day, 1, amount, amount * amount))
                return True
        raise AssertionError("unreachable: the newest bucket is later than `day`")

    def _drop(self) -> None:
        _, n, s, ss = self.buckets.pop(0)
        self.n -= n
        self.s -= s
        self.ss -= ss

    def summary(self, ts: float) -> tuple[float, float, float]:
        """(count, mean, standard deviation) of the window ending at `ts`."""
        first = ts // DAY - self.days
        n, s, ss = self.n, self.s, self.ss
        for bucket in self.buckets:  # oldest first: only the expired ones are visited
            if bucket[0] > first:
                break
            n -= bucket[1]
            s -= bucket[2]
            ss -= bucket[3]
        if n == 0:
            return 0.0, 0.0, 0.0
        mean = s / n
        return float(n), mean, math.sqrt(max(0.0, ss / n - mean * mean))

    def to_dict(self) -> dict[str, Any]:
        return {"days": self.days, "buckets": [list(b) for b in self.buckets]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AmountStats:
        stats = cls(int(data["days"]))
        for day, n, s, ss in data["buckets"]:
            bucket = (float(day), int(n), int(s), int(ss))
            stats.buckets.append(bucket)
            stats.n += bucket[1]
            stats.s += bucket[2]
            stats.ss += bucket[3]
        return stats


class MovingMean:
    """The mean of the amounts so far, then (after 1/`alpha` of them) an exponential moving mean.

    Two numbers whatever the volume: what "usual" means for a card.
    """

    __slots__ = ("alpha", "mean", "n")

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha = alpha
        self.n = 0
        self.mean = 0.0

    def add(self, amount: float) -> None:
        self.n += 1
        self.mean += (amount - self.mean) * max(self.alpha, 1 / self.n)

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "n": self.n, "mean": self.mean}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MovingMean:
        moving = cls(float(data["alpha"]))
        moving.n, moving.mean = int(data["n"]), float(data["mean"])
        return moving


class DistinctRecent:
    """Distinct keys with their first and last sighting; beyond `cap` keys, the one last
    seen longest ago is forgotten.

    In any arrival order, a key's last sighting is its latest, and the keys kept (in the
    order of their last sightings, ties in arrival order) are those the same sightings
    sorted by time would leave. A key's first sighting is the earliest that arrived while
    it was kept: its earliest of all, as in time order, as long as no key was forgotten.
    After that the two can differ, both ways: time order starts a key afresh when it comes
    back after being forgotten in between, and a sighting that arrives while its key is
    forgotten is not kept.

    Almost every one holds a single key: a customer's one device, IP, country and channel,
    a device's or IP's one card (5 of them a new customer, 99.9 % with one key in the soak's
    population). That key is kept in the object's own slots, and a dict is made only when a
    second key comes: 104 bytes where the dict, its (first, last) tuple and the object took
    320, about 1 KB of a new customer's 3.5 (`benchmarks/fraud_entity_bytes.py`). A late
    sighting also moves it to the dict (rare, and the dict's code puts it in its place).
    """

    __slots__ = ("_first", "_key", "_last", "_many", "cap", "newest")

    def __init__(self, cap: int = 32) -> None:
        self.cap = cap
        # key -> (first seen, last seen), in order of last seen, oldest first; None while at
        # most one key is kept (in `_key`, `_first`, `_last`; `_key` None: no key). Tuples of
        # floats, not lists: the cyclic GC stops tracking them, which matters with millions
        # of entries.
        self._many: dict[str, tuple[float, float]] | None = None
        self._key: str | None = None
        self._first = self._last = -math.inf
        # The latest last-seen time (of the last entry): one comparison tells a late sighting.
        self.newest = -math.inf

    @property
    def seen(self) -> dict[str, tuple[float, float]]:
        """key -> (first seen, last seen), oldest last sighting first. Read it, do not change
        it: with one key it is made for the caller."""
        if self._many is not None:
            return self._many
        return {} if self._key is None else {self._key: (self._first, self._last)}

    def __contains__(self, key: object) -> bool:
        many = self._many
        if many is None:
            return self._key is not None and key == self._key
        return key in many

    def get(self, key: str) -> tuple[float, float] | None:
        """`key`'s (first seen, last seen), or None if it is not kept."""
        many = self._many
        if many is None:
            held = self._key
            return (self._first, self._last) if held is not None and key == held else None
        return many.get(key)

    def __len__(self) -> int:
        many = self._many
        if many is None:
            return 0 if self._key is None else 1
        return len(many)

    def _spill(self) -> dict[str, tuple[float, float]]:
        """The dict form, from here on."""
        many = self._many
        if many is None:
            many = self._many = self.seen
            self._key = None
        return many

    def add(self, key: str, ts: float) -> None:
        if ts < self.newest:
            self._add_late(key, ts)
            return
        self.newest = ts
        seen = self._many
        if seen is None:
            held = self._key
            if held is not None and held == key:
                self._last = ts  # first <= last <= newest <= ts
                return
            if held is None or self.cap < 2:  # the first key, or the one kept replaced
                if self.cap >= 1:
                    self._key, self._first, self._last = key, ts, ts
                return
            seen = self._spill()
        entry = seen.pop(key, None)
        if entry is not None:
            seen[key] = (entry[0], ts)  # first <= last <= newest <= ts
        else:
            seen[key] = (ts, ts)
            if len(seen) > self.cap:
                del seen[next(iter(seen))]

    def _add_late(self, key: str, ts: float) -> None:
        """A sighting older than the newest (which it leaves as it is)."""
        seen = self._spill()
        entry = seen.get(key)
        if entry is not None:
            first, last = entry
            if ts < last:
                if ts < first:
                    seen[key] = (ts, last)  # an existing key keeps its place
            else:  # at or after the key's last sighting: up to its place by the new one
                del seen[key]
                self._insert(key, (first, ts))
            return
        if len(seen) >= self.cap:
            # Full: a key last seen before all the others is forgotten at once (the one
            # the newer sighting would have pushed out); otherwise the oldest goes.
            if not seen or ts < next(iter(seen.values()))[1]:
                return
            self._insert(key, (ts, ts))
            del seen[next(iter(seen))]
        else:
            self._insert(key, (ts, ts))

    def _insert(self, key: str, entry: tuple[float, float]) -> None:
        """`key` (absent) after every key last seen at or before `entry`'s last sighting, which
        is before the newest: the later keys come off the end and go back after it."""
        seen = self._spill()
        last = entry[1]
        later = 0
        for _, seen_last in reversed(seen.values()):
            if seen_last <= last:
                break
            later += 1
        tail = [seen.popitem() for _ in range(later)]
        seen[key] = entry
        for k, v in reversed(tail):
            seen[k] = v

    def count_since(self, since: float) -> int:
        many = self._many
        if many is None:
            return 1 if self._key is not None and self._last >= since else 0
        n = 0
        for _, last in many.values():
            if last >= since:
                n += 1
        return n

    def count_since2(self, recent: float, older: float) -> tuple[int, int]:
        """Both counts in one pass: keys seen since `recent`, and since `older`."""
        many = self._many
        if many is None:
            if self._key is None or self._last < older:
                return 0, 0
            return (1 if self._last >= recent else 0), 1
        n_recent = n_older = 0
        for _, last in many.values():
            if last >= older:
                n_older += 1
                if last >= recent:
                    n_recent += 1
        return n_recent, n_older

    def first_seen(self, key: str) -> float | None:
        entry = self.get(key)
        return None if entry is None else entry[0]

    def to_dict(self) -> dict[str, Any]:
        # The (first, last) tuples are immutable: shared, not copied.
        return {"cap": self.cap, "seen": dict(self.seen)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistinctRecent:
        distinct = cls(int(data["cap"]))
        seen = {str(k): (float(v[0]), float(v[1])) for k, v in data["seen"].items()}
        newest = -math.inf
        for first, last in seen.values():
            if first > last or last < newest:
                # Taken before late sightings were put in their place: sorted here.
                seen = dict(
                    sorted(
                        ((k, (min(v), max(v))) for k, v in seen.items()),
                        key=lambda item: item[1][1],
                    )
                )
                break
            newest = last
        while len(seen) > distinct.cap:
            del seen[next(iter(seen))]
        if len(seen) > 1:
            distinct._many = seen
        elif seen:
            ((distinct._key, (distinct._first, distinct._last)),) = seen.items()
        if seen:
            distinct.newest = next(reversed(seen.values()))[1]
        return distinct
