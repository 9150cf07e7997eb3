"""Per-entity state (customer, card, device, IP) and the features of a transaction.

`features(txn)` reads the state as it was before `txn`; `observe(txn)` then adds
it, so a transaction's features never depend on itself or on anything later.
Each entity kind lives in an LRU map with a cap: the least recently active
entity is forgotten first, which bounds memory on an unbounded stream.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from paymesh.fraud.transactions import Transaction
from paymesh.fraud.windows import DAY, AmountStats, DistinctRecent, EventWindow

HOUR = 3_600.0
SMALL_AMOUNT = 500  # minor units: the size of a card-testing probe
# Each kind keeps only the windows its features read; a device or IP costs one set.
_KIND_WINDOWS: dict[str, dict[str, Callable[[], Any]]] = {
    "customer": {
        "txns": lambda: EventWindow(DAY, 256),  # value: amount
        "amounts": lambda: AmountStats(30),
        "devices": lambda: DistinctRecent(16),
        "countries": lambda: DistinctRecent(16),
        "ips": lambda: DistinctRecent(32),
    },
    "card": {
        "txns": lambda: EventWindow(HOUR, 128),
        "declines": lambda: EventWindow(HOUR, 128),
        "customers": lambda: DistinctRecent(16),
    },
    "device": {"cards": lambda: DistinctRecent(64)},
    "ip": {"cards": lambda: DistinctRecent(64)},
}
_LOADERS: dict[str, Any] = {
    "txns": EventWindow,
    "declines": EventWindow,
    "amounts": AmountStats,
    "devices": DistinctRecent,
    "countries": DistinctRecent,
    "ips": DistinctRecent,
    "customers": DistinctRecent,
    "cards": DistinctRecent,
}


class EntityState:
    """The windows of one customer, card, device or IP (only those of its kind exist)."""

    __slots__ = (
        "amounts",
        "cards",
        "countries",
        "customers",
        "declines",
        "devices",
        "ips",
        "kind",
        "last",
        "txns",
    )
    txns: EventWindow
    declines: EventWindow
    amounts: AmountStats
    devices: DistinctRecent
    countries: DistinctRecent
    ips: DistinctRecent
    customers: DistinctRecent
    cards: DistinctRecent

    def __init__(self, kind: str) -> None:
        self.kind = kind
        for name, factory in _KIND_WINDOWS[kind].items():
            setattr(self, name, factory())
        self.last: list[float | None] = [None, None, None]  # time, lat, lon

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            name: getattr(self, name).to_dict() for name in _KIND_WINDOWS[self.kind]
        }
        data["last"] = list(self.last)
        return data

    @classmethod
    def from_dict(cls, kind: str, data: dict[str, Any]) -> EntityState:
        state = cls(kind)
        for name in _KIND_WINDOWS[kind]:
            setattr(state, name, _LOADERS[name].from_dict(data[name]))
        state.last = list(data["last"])
        return state


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12_742.0 * math.asin(math.sqrt(min(1.0, a)))


class FeatureStore:
    def __init__(self, max_entities: int = 200_000, max_pending_outcomes: int = 100_000) -> None:
        self.max_entities = max_entities
        self.max_pending = max_pending_outcomes
        self.kinds: dict[str, OrderedDict[str, EntityState]] = {
            k: OrderedDict() for k in ("customer", "card", "device", "ip")
        }
        self.pending: OrderedDict[str, str] = OrderedDict()  # txn id -> card, awaiting outcome

    def _peek(self, kind: str, key: str | None) -> EntityState | None:
        return None if key is None else self.kinds[kind].get(key)

    def _touch(self, kind: str, key: str) -> EntityState:
        entities = self.kinds[kind]
        state = entities.get(key)
        if state is None:
            state = entities[key] = EntityState(kind)
            if len(entities) > self.max_entities:
                entities.popitem(last=False)
        else:
            entities.move_to_end(key)
        return state

    def features(self, txn: Transaction) -> dict[str, float]:
        ts = txn.timestamp
        f: dict[str, float] = {"amount": float(txn.amount)}
        cust = self._peek("customer", txn.customer_id)
        if cust is not None:
            n30, mean, std = cust.amounts.summary(ts)
            f["cust_txn_5m"] = cust.txns.count(ts - 300)
            f["cust_txn_1h"] = cust.txns.count(ts - HOUR)
            f["cust_txn_24h"] = cust.txns.count(ts - DAY)
            f["cust_history_30d"] = n30
            f["cust_avg_amount_30d"] = mean
            f["cust_std_amount_30d"] = std
            f["amount_ratio"] = txn.amount / mean if mean > 0 else 1.0
            if mean and txn.amount > 3 * mean:
                # Scanning a day of payments is the costliest feature, and only a big
                # payment makes earlier big ones interesting: absent otherwise.
                f["cust_big_txn_24h"] = cust.txns.count_above(ts - DAY, 3 * mean)
            f["cust_devices_30d"] = cust.devices.count_since(ts - 30 * DAY)
            f["cust_countries_30d"] = cust.countries.count_since(ts - 30 * DAY)
            f["device_new"] = _is_new(cust.devices, txn.device_id)
            f["country_new"] = _is_new(cust.countries, txn.country)
            f["ip_new"] = _is_new(cust.ips, txn.ip_address)
            first = None if txn.device_id is None else cust.devices.first_seen(txn.device_id)
            fresh = txn.device_id is not None and (first is None or first >= ts - DAY)
            f["device_fresh_24h"] = 1.0 if fresh else 0.0
            last_ts, last_lat, last_lon = cust.last
            if last_ts is not None:
                gap = max(0.0, ts - last_ts)
                f["secs_since_last"] = gap
                if None not in (last_lat, last_lon, txn.lat, txn.lon):
                    km = haversine_km(last_lat, last_lon, txn.lat, txn.lon)  # type: ignore[arg-type]
                    f["travel_km"] = km
                    f["travel_kmh"] = km / max(gap, 60.0) * HOUR  # a minute's floor: clock skew
        card = self._peek("card", txn.card_fingerprint)
        if card is not None:
            f["card_declines_10m"] = card.declines.count(ts - 600)
            f["card_declines_1h"] = card.declines.count(ts - HOUR)
            f["card_small_auths_10m"] = card.txns.count_at_most(ts - 600, SMALL_AMOUNT)
            f["card_customers_24h"] = card.customers.count_since(ts - DAY)
        for kind, key in (("device", txn.device_id), ("ip", txn.ip_address)):
            state = self._peek(kind, key)
            if state is not None:
                hour, day = state.cards.count_since2(ts - HOUR, ts - DAY)
                f[f"{kind}_cards_1h"] = hour
                f[f"{kind}_cards_24h"] = day
        return f

    def observe(self, txn: Transaction) -> None:
        ts = txn.timestamp
        cust = self._touch("customer", txn.customer_id)
        cust.txns.add(ts, txn.amount)
        cust.amounts.add(ts, txn.amount)
        for window, key in (
            (cust.devices, txn.device_id),
            (cust.countries, txn.country),
            (cust.ips, txn.ip_address),
        ):
            if key is not None:
                window.add(key, ts)
        cust.last = [ts, txn.lat, txn.lon] if txn.lat is not None else [ts, *cust.last[1:]]
        card_key = txn.card_fingerprint
        if card_key is not None:
            card = self._touch("card", card_key)
            card.txns.add(ts, txn.amount)
            card.customers.add(txn.customer_id, ts)
            if txn.approved is False:
                card.declines.add(ts)
            elif txn.approved is None:
                self.pending[txn.transaction_id] = card_key
                if len(self.pending) > self.max_pending:
                    self.pending.popitem(last=False)
            for kind, key in (("device", txn.device_id), ("ip", txn.ip_address)):
                if key is not None:
                    self._touch(kind, key).cards.add(card_key, ts)

    def observe_outcome(self, transaction_id: str, outcome: str, at: float) -> bool:
        """Feed back `approved` / `declined` / `disputed`; False if the transaction is unknown."""
        if outcome not in ("approved", "declined", "disputed"):
            raise ValueError(f"outcome: expected approved, declined or disputed, got {outcome!r}")
        card_key = self.pending.pop(transaction_id, None)
        if card_key is None:
            return False
        if outcome != "approved":  # a dispute counts against the card like a decline
            self._touch("card", card_key).declines.add(at)
        return True

    def snapshot(self) -> dict[str, Any]:
        return {
            "max_entities": self.max_entities,
            "max_pending": self.max_pending,
            "pending": dict(self.pending),
            "kinds": {
                kind: {k: s.to_dict() for k, s in entities.items()}
                for kind, entities in self.kinds.items()
            },
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> FeatureStore:
        store = cls(int(data["max_entities"]), int(data["max_pending"]))
        store.pending = OrderedDict(data["pending"])
        for kind, entities in data["kinds"].items():
            store.kinds[kind] = OrderedDict(
                (k, EntityState.from_dict(kind, s)) for k, s in entities.items()
            )
        return store


def _is_new(seen: DistinctRecent, key: str | None) -> float:
    return 1.0 if key is not None and key not in seen.seen else 0.0
