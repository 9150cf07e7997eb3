"""A card's spending profile and a terminal's fraud record: constant memory, updated per payment.

`SpendingProfile` is what "like its holder" means for a card: the spread of its amounts
(on a log scale: amounts are roughly log-normal, and an order twice the usual is as odd at
10 EUR as at 1,000), the hours of the day it pays at, and where it is used. A card is the
holder's one name across shops (customer ids are each merchant's own), so the profile lives
on the card. The mean and spread are Welford's running ones with the count capped at
`memory`: the first payments weigh equally, then the profile drifts with the holder.

`TerminalRisk` is a shop's (a terminal's) share of confirmed fraud over past days, from
delayed feedback: payments are counted by the day they were made, and a dispute, when it
arrives days later, is credited to its payment's day. A window that ends `delay_days` ago
reads only days whose labels have mostly arrived: the same window over the last few days
would read a fresh compromise as clean, as its disputes are not in yet.
"""

from __future__ import annotations

import math
from typing import Any

from paymesh.fraud.windows import DAY

HOUR = 3_600.0


class SpendingProfile:
    __slots__ = ("hours", "lat", "lon", "m2", "mean", "memory", "n", "placed")

    def __init__(self, memory: int = 50) -> None:
        self.memory = memory
        self.n = 0
        self.mean = 0.0  # of log(amount)
        self.m2 = 0.0  # sum of squared deviations, Welford's
        self.hours = [0] * 24  # payments per hour of the day (UTC), halved when large
        self.placed = 0  # payments with a place, for the centroid
        self.lat = self.lon = 0.0

    def add(self, amount: int, ts: float, lat: float | None, lon: float | None) -> None:
        x = math.log1p(amount)
        n = self.n = min(self.n + 1, self.memory)
        delta = x - self.mean
        self.mean += delta / n
        self.m2 += delta * (x - self.mean)
        if self.n == self.memory:  # keep the variance's weight in step with the capped count
            self.m2 *= (n - 1) / n
        hours = self.hours
        hours[int(ts % DAY // HOUR)] += 1
        if sum(hours) > 4 * self.memory:
            self.hours = [h // 2 for h in hours]
        if lat is not None and lon is not None:
            self.placed = p = min(self.placed + 1, self.memory)
            self.lat += (lat - self.lat) / p
            self.lon += (lon - self.lon) / p

    def amount_z(self, amount: int) -> float | None:
        """How many spreads above (or below) the card's usual the log amount is; None if new."""
        if self.n < 3:
            return None
        spread = math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0
        # A floor: a card that always paid the same amount is not infinitely surprised.
        return (math.log1p(amount) - self.mean) / max(spread, 0.1)

    def hour_share(self, ts: float) -> float | None:
        """The share of the card's payments within an hour of this time of day."""
        total = sum(self.hours)
        if total < 5:
            return None
        h = int(ts % DAY // HOUR)
        near = self.hours[h - 1] + self.hours[h] + self.hours[(h + 1) % 24]
        return near / total

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory": self.memory,
            "n": self.n,
            "mean": self.mean,
            "m2": self.m2,
            "hours": self.hours,
            "placed": self.placed,
            "lat": self.lat,
            "lon": self.lon,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpendingProfile:
        profile = cls(int(data["memory"]))
        profile.n, profile.mean, profile.m2 = int(data["n"]), float(data["mean"]), float(data["m2"])
        profile.hours = [int(h) for h in data["hours"]]
        if len(profile.hours) != 24:
            raise ValueError("snapshot: a spending profile needs 24 hours")
        profile.placed = int(data["placed"])
        profile.lat, profile.lon = float(data["lat"]), float(data["lon"])
        return profile


class TerminalRisk:
    """Payments and confirmed frauds per day (by the payment's day), for `keep_days` days.

    A merchant's windows are read at every one of its payments, and their days before today
    change only when a late payment or a fraud lands on one of them: their sums are kept from
    one read to the next (`_past`), and only today's counts are added to them afresh.
    """

    __slots__ = ("_past", "days", "keep_days")

    def __init__(self, keep_days: int = 40) -> None:
        self.keep_days = keep_days
        self.days: dict[int, list[int]] = {}  # day number -> [payments, frauds]
        # (today, spans, [(payments, frauds, counts today) per span]) of the last read: the
        # sums over the span's days before `today`.
        self._past: tuple[int, tuple[tuple[int, int], ...], list[tuple[int, int, bool]]] | None
        self._past = None

    def _changed(self, day: int) -> None:
        if self._past is not None and day < self._past[0]:
            self._past = None

    def add_payment(self, ts: float) -> None:
        day = int(ts // DAY)
        counts = self.days.get(day)
        if counts is None:
            counts = self.days[day] = [0, 0]
            if len(self.days) > self.keep_days:
                for old in [d for d in self.days if d <= day - self.keep_days]:
                    del self.days[old]
                    self._changed(old)
        counts[0] += 1
        self._changed(day)

    def add_fraud(self, paid_at: float) -> None:
        day = int(paid_at // DAY)
        counts = self.days.get(day)
        if counts is not None:  # a payment older than what is kept: its day is gone
            counts[1] += 1
            self._changed(day)

    def windows(self, ts: float, spans: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
        """(payments, frauds) per (delay_days, window_days) span: made in the `window_days`
        days that ended `delay_days` days before today (a delay of 0 counts today too)."""
        today = int(ts // DAY)
        past = self._past
        if past is None or past[0] != today or past[1] is not spans:
            sums = []
            for delay, length in spans:
                end = today - delay + (1 if delay == 0 else 0)
                start, before_today = end - length, min(end, today)
                payments = frauds = 0
                for day, (n, f) in self.days.items():
                    if start <= day < before_today:
                        payments += n
                        frauds += f
                sums.append((payments, frauds, start <= today < end))
            past = self._past = (today, spans, sums)
        counts = self.days.get(today)
        if counts is None:
            return [(payments, frauds) for payments, frauds, _ in past[2]]
        n, f = counts
        return [
            (payments + n, frauds + f) if with_today else (payments, frauds)
            for payments, frauds, with_today in past[2]
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"keep_days": self.keep_days, "days": [[d, *c] for d, c in self.days.items()]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TerminalRisk:
        risk = cls(int(data["keep_days"]))
        risk.days = {int(d): [int(n), int(f)] for d, n, f in data["days"]}
        return risk
