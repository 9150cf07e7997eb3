"""Common point of purchase: finding a compromised merchant terminal from disputes alone.

A skimmer on a terminal takes every card used there for a few days; the cards
are cloned and used elsewhere later, and their holders dispute those payments
weeks later. Nothing marks the skimmed payments themselves. What gives the
terminal away is that cards disputed on payments we had scored as clean had all
been used, shortly before, at the same merchant.

So each clean dispute credits every merchant the card was used at in the
`lookback` before the disputed payment. When `min_cards` disputed cards had
visited one merchant within `window` of this card's visit, the merchant is
flagged with that span of visits and that count. From then on, any card used
there during the span (give or take `margin`) is exposed: its next payments,
anywhere, carry the feature `card_cpp_disputes` (the count), for `exposure`
seconds after the span; payments at the merchant carry `merchant_cpp_disputes`.

Only "otherwise clean" disputes count: the card's first in 30 days (so a card
counts once), on a payment we had scored under `clean_below` (a dispute of one
we had alerted on is explained by what we saw), made on one of `channels`
(card present, `pos`, by default: a clone is used in shops; card-not-present
fraud points at data breaches, which this does not search; None for any).
Memory: at most `max_merchants` merchants, `max_cards` disputed cards each.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Any

from paymesh.fraud.memory import Remembered

DAY = 86_400.0
Visits = Mapping[str, tuple[float, float]]  # merchant -> (first use, last use) of one card
_PARAMS = (
    "min_cards",
    "window",
    "margin",
    "lookback",
    "exposure",
    "clean_below",
    "channels",
    "max_merchants",
    "max_cards",
)


class CompromiseTracker:
    def __init__(
        self,
        min_cards: int = 3,
        window: float = 1.5 * DAY,
        margin: float = DAY / 2,
        lookback: float = 30 * DAY,
        exposure: float = 120 * DAY,
        clean_below: int = 70,
        channels: Collection[str] | None = ("pos",),
        max_merchants: int = 20_000,
        max_cards: int = 256,
    ) -> None:
        if min_cards < 2:
            raise ValueError("min_cards: one dispute is no common point; need at least 2")
        self.min_cards = min_cards
        self.window = window
        self.margin = margin
        self.lookback = lookback
        self.exposure = exposure
        self.clean_below = clean_below
        self.channels = None if channels is None else tuple(channels)
        self.max_merchants = max_merchants
        self.max_cards = max_cards
        # merchant -> disputed card -> (its use at the merchant, when it was disputed)
        self.visits: OrderedDict[str, dict[str, tuple[float, float]]] = OrderedDict()
        # flagged merchant -> (first use, last use of the cluster, disputed cards in it)
        self.merchants: OrderedDict[str, tuple[float, float, int]] = OrderedDict()

    def dispute(
        self,
        card: str,
        used_at: Visits,
        payment: Remembered,
        at: float,
    ) -> None:
        """Credit the merchants where `card` was used before its `payment` was disputed."""
        if payment.score >= self.clean_below or (
            self.channels is not None and payment.channel not in self.channels
        ):
            return
        ts = payment.timestamp
        for merchant, (first, last) in list(used_at.items()):
            visit = last if last < ts else first
            if not ts - self.lookback <= visit < ts:
                continue
            cards = self.visits.get(merchant)
            if cards is None:
                cards = self.visits[merchant] = {}
                if len(self.visits) > self.max_merchants:
                    self.visits.popitem(last=False)
            else:
                self.visits.move_to_end(merchant)
            cards.pop(card, None)
            cards[card] = (visit, at)
            if len(cards) > self.max_cards:
                del cards[next(iter(cards))]
            since = at - self.lookback
            cluster = [
                v
                for v, disputed in cards.values()
                if abs(v - visit) <= self.window and disputed >= since
            ]
            if len(cluster) >= self.min_cards:
                self._flag(merchant, min(cluster), max(cluster), len(cluster))

    def _flag(self, merchant: str, start: float, end: float, count: int) -> None:
        old = self.merchants.pop(merchant, None)
        if old is not None:
            start, end, count = min(start, old[0]), max(end, old[1]), max(count, old[2])
        self.merchants[merchant] = (start, end, count)
        if len(self.merchants) > self.max_merchants:
            self.merchants.popitem(last=False)

    def exposure_of(self, used_at: Visits, ts: float) -> float:
        """The largest count among flagged merchants this card was used at during their span."""
        flagged = self.merchants
        best = 0
        # Set intersection runs in C: most cards visited no flagged merchant.
        for merchant in used_at.keys() & flagged.keys():
            start, end, count = flagged[merchant]
            first, last = used_at[merchant]
            if (
                count > best
                and first <= end + self.margin
                and last >= start - self.margin
                and ts - end <= self.exposure
            ):
                best = count
        return float(best)

    def flagged(self, merchant: str, ts: float) -> float:
        """The merchant's count if it is flagged (and the flag is recent), else 0."""
        flag = self.merchants.get(merchant)
        return 0.0 if flag is None or ts - flag[1] > self.exposure else float(flag[2])

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(self, name) for name in _PARAMS}
        data["visits"] = [
            [merchant, [[card, v, d] for card, (v, d) in cards.items()]]
            for merchant, cards in self.visits.items()
        ]
        data["merchants"] = [[m, *flag] for m, flag in self.merchants.items()]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompromiseTracker:
        tracker = cls(**{name: data[name] for name in _PARAMS})
        for merchant, cards in data["visits"]:
            tracker.visits[str(merchant)] = {
                str(card): (float(v), float(d)) for card, v, d in cards
            }
        for merchant, start, end, count in data["merchants"]:
            tracker.merchants[str(merchant)] = (float(start), float(end), int(count))
        return tracker
