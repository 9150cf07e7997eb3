"""Sliding-window aggregates kept incrementally, each with a hard memory bound.

Short windows (minutes to a day) keep the recent events themselves, capped: the
rules only ask "more than N", so a saturated count loses nothing they need.
The 30-day amount statistics keep one bucket a day (count, sum, sum of squares),
so a customer costs at most 31 buckets whatever their volume.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

DAY = 86_400.0


class EventWindow:
    """The (time, value) events of the last `horizon` seconds, at most `cap` of them."""

    __slots__ = ("cap", "horizon", "times", "values")

    def __init__(self, horizon: float, cap: int = 64) -> None:
        self.horizon = horizon
        self.cap = cap
        self.times: deque[float] = deque()
        self.values: deque[float] = deque()

    def add(self, ts: float, value: float = 1.0) -> None:
        times, values = self.times, self.values
        times.append(ts)
        values.append(value)
        cutoff = ts - self.horizon
        while times and (times[0] < cutoff or len(times) > self.cap):
            times.popleft()
            values.popleft()

    def count(self, since: float) -> int:
        # Newest first: short windows stop after a few steps.
        n = 0
        for t in reversed(self.times):
            if t < since:
                break
            n += 1
        return n

    def count_at_most(self, since: float, limit: float) -> int:
        n = 0
        for t, v in zip(reversed(self.times), reversed(self.values), strict=True):
            if t < since:
                break
            if v <= limit:
                n += 1
        return n

    def count_above(self, since: float, limit: float) -> int:
        n = 0
        for t, v in zip(reversed(self.times), reversed(self.values), strict=True):
            if t < since:
                break
            if v > limit:
                n += 1
        return n

    def to_dict(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "cap": self.cap,
            "events": [[t, v] for t, v in zip(self.times, self.values, strict=True)],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventWindow:
        window = cls(float(data["horizon"]), int(data["cap"]))
        for t, v in data["events"]:
            window.times.append(float(t))
            window.values.append(float(v))
        return window


class AmountStats:
    """Count, mean and standard deviation of amounts over the last `days` days, daily buckets."""

    __slots__ = ("buckets", "days")

    def __init__(self, days: int = 30) -> None:
        self.days = days
        self.buckets: deque[list[float]] = deque()  # [day index, n, sum, sum of squares]

    def add(self, ts: float, amount: float) -> None:
        day = ts // DAY
        buckets = self.buckets
        if buckets and buckets[-1][0] == day:
            bucket = buckets[-1]
            bucket[1] += 1
            bucket[2] += amount
            bucket[3] += amount * amount
        else:
            buckets.append([day, 1.0, amount, amount * amount])
        while buckets[0][0] <= day - self.days:
            buckets.popleft()

    def summary(self, ts: float) -> tuple[float, float, float]:
        """(count, mean, standard deviation) of the window ending at `ts`."""
        first = ts // DAY - self.days
        n = s = ss = 0.0
        for bucket in self.buckets:
            if bucket[0] > first:
                n += bucket[1]
                s += bucket[2]
                ss += bucket[3]
        if n == 0:
            return 0.0, 0.0, 0.0
        mean = s / n
        return n, mean, math.sqrt(max(0.0, ss / n - mean * mean))

    def to_dict(self) -> dict[str, Any]:
        return {"days": self.days, "buckets": [list(b) for b in self.buckets]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AmountStats:
        stats = cls(int(data["days"]))
        stats.buckets.extend([float(x) for x in b] for b in data["buckets"])
        return stats


class DistinctRecent:
    """Distinct keys with their first and last sighting; the `cap` least recent are forgotten."""

    __slots__ = ("cap", "seen")

    def __init__(self, cap: int = 32) -> None:
        self.cap = cap
        # key -> (first seen, last seen), oldest first. Tuples of floats, not lists: the
        # cyclic GC stops tracking them, which matters with millions of entries.
        self.seen: dict[str, tuple[float, float]] = {}

    def add(self, key: str, ts: float) -> None:
        entry = self.seen.pop(key, None)
        self.seen[key] = (ts, ts) if entry is None else (entry[0], ts)
        if len(self.seen) > self.cap:
            del self.seen[next(iter(self.seen))]

    def count_since(self, since: float) -> int:
        return sum(1 for first_last in self.seen.values() if first_last[1] >= since)

    def count_since2(self, recent: float, older: float) -> tuple[int, int]:
        """Both counts in one pass: keys seen since `recent`, and since `older`."""
        n_recent = n_older = 0
        for _, last in self.seen.values():
            if last >= older:
                n_older += 1
                if last >= recent:
                    n_recent += 1
        return n_recent, n_older

    def first_seen(self, key: str) -> float | None:
        entry = self.seen.get(key)
        return None if entry is None else entry[0]

    def to_dict(self) -> dict[str, Any]:
        return {"cap": self.cap, "seen": {k: list(v) for k, v in self.seen.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistinctRecent:
        distinct = cls(int(data["cap"]))
        distinct.seen = {str(k): (float(v[0]), float(v[1])) for k, v in data["seen"].items()}
        return distinct
