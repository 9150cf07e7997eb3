"""Per-entity state (customer, card, device, IP, merchant) and the features of a transaction.

`features(txn)` reads the state as it was before `txn`; `observe(txn)` then adds
it, so a transaction's features never depend on itself or on anything later.
Each entity kind lives in an LRU map with a cap: the least recently active
entity is forgotten first, which bounds memory on an unbounded stream.

Outcomes arrive later than the score: a decline seconds later, a dispute days or
weeks later. So every observed transaction is remembered (`FeedbackMemory`, the
oldest forgotten first) with the entities it touched, and `observe_outcome`
charges a decline or a dispute to all of them. A dispute also feeds the
common-point-of-purchase search (`CompromiseTracker`): a merchant where several
cards were used shortly before each was disputed, on payments we had scored as
clean, is taken for compromised, and every card used there in that window is
exposed (`card_cpp_disputes`) wherever it is used next.

Windows for rare events (declines, disputes, alerts) are made on the first such
event: an entity that never had one costs nothing for them, and its count reads 0.

Scope. A customer id is the merchant's own name for its customer: "cus_1" at shop A and
"cus_1" at shop B are two people. So a customer's state is keyed by (merchant, customer id)
(`customer_key`), and one merchant's traffic never moves another merchant's customer
features. Cards, devices and IPs stay network-wide on purpose: they name the same thing
wherever they appear, and that is a network's value (a card seen failing at A is risky at
B; a device enumerating cards at A is the same device at B). A transaction with no
merchant (a replay file without `merchant_id`) keys its customer by the id alone.
"""

from __future__ import annotations

import math
import sys
from collections import OrderedDict
from collections.abc import Callable, Generator
from typing import Any, Protocol

from paymesh.fraud.capped import settle
from paymesh.fraud.compromise import CompromiseTracker
from paymesh.fraud.memory import (
    APPROVED,
    DECLINED,
    DISPUTED,
    PENDING,
    FeedbackMemory,
    Remembered,
    flattened,
    run_through,
)
from paymesh.fraud.profiles import SpendingProfile, TerminalRisk
from paymesh.fraud.transactions import OUTCOMES, Transaction
from paymesh.fraud.windows import DAY, AmountStats, DistinctRecent, EventWindow, MovingMean

HOUR = 3_600.0
WEEK = 7 * DAY
MONTH = 30 * DAY
SMALL_AMOUNT = 500  # minor units: the size of a card-testing probe
KINDS = ("customer", "card", "device", "ip", "merchant")
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
        "customers": lambda: DistinctRecent(16),
        "usual": lambda: MovingMean(0.1),
        "channels": lambda: DistinctRecent(4),
        "merchants": lambda: DistinctRecent(24),  # where it was used: the compromise search
        "profile": SpendingProfile,  # the holder's amounts, hours and places
        "categories": lambda: DistinctRecent(8),  # the kinds of shop it pays at
        "countries": lambda: DistinctRecent(8),
    },
    "device": {"cards": lambda: DistinctRecent(64)},
    "ip": {"cards": lambda: DistinctRecent(64)},
    "merchant": {"risk": TerminalRisk},  # confirmed fraud by payment day
}
# Made on the first event (see the module docstring).
_RARE_WINDOWS: dict[str, dict[str, Callable[[], Any]]] = {
    "customer": {
        "declines": lambda: EventWindow(HOUR, 64),
        "disputes": lambda: EventWindow(MONTH, 16),
    },
    "card": {
        "declines": lambda: EventWindow(HOUR, 128),
        "disputes": lambda: EventWindow(MONTH, 16),
        "alerts": lambda: EventWindow(DAY, 16),
    },
    "device": {
        "declines": lambda: EventWindow(HOUR, 128),
        "disputes": lambda: EventWindow(MONTH, 32),
        "alerts": lambda: EventWindow(DAY, 16),
    },
    "ip": {
        "declines": lambda: EventWindow(HOUR, 128),
        "disputes": lambda: EventWindow(MONTH, 32),
    },
    "merchant": {
        "declines": lambda: EventWindow(HOUR, 256),
        "disputes": lambda: EventWindow(WEEK, 64),
    },
}
_LOADERS: dict[str, Any] = {
    "txns": EventWindow,
    "alerts": EventWindow,
    "declines": EventWindow,
    "disputes": EventWindow,
    "amounts": AmountStats,
    "usual": MovingMean,
    "devices": DistinctRecent,
    "countries": DistinctRecent,
    "ips": DistinctRecent,
    "customers": DistinctRecent,
    "cards": DistinctRecent,
    "channels": DistinctRecent,
    "merchants": DistinctRecent,
    "categories": DistinctRecent,
    "profile": SpendingProfile,
    "risk": TerminalRisk,
}
# The terminal-risk windows read: (days back the window ends, its length in days). A
# dispute arrives days after its payment, so a window ending `TERMINAL_DELAY_DAYS` ago reads
# days whose labels are mostly in; the one ending today sees a fresh compromise first.
TERMINAL_DELAY_DAYS = 3
_TERMINAL_WINDOWS = (
    ("merchant_fraud_share_7d", TERMINAL_DELAY_DAYS, 7),
    ("merchant_fraud_share_28d", TERMINAL_DELAY_DAYS, 28),
    ("merchant_fraud_share_recent", 0, 7),
)
PRIOR_PAYMENTS = 100
PRIOR_FRAUD_RATE = 0.001
_TERMINAL_SPANS = tuple((delay, days) for _, delay, days in _TERMINAL_WINDOWS)
# Entities a snapshot step takes (see `FeatureStore.snapshot_steps`): a few ms of the loop.
SNAPSHOT_STEP = 1_000


class EntityState:
    """The windows of one entity (only those of its kind exist; rare ones once needed)."""

    __slots__ = (
        "alerts",
        "amounts",
        "cards",
        "categories",
        "channels",
        "countries",
        "customers",
        "declines",
        "devices",
        "disputes",
        "ips",
        "key",
        "kind",
        "last",
        "merchants",
        "profile",
        "risk",
        "txns",
        "usual",
    )
    txns: EventWindow
    amounts: AmountStats
    usual: MovingMean
    devices: DistinctRecent
    countries: DistinctRecent
    ips: DistinctRecent
    customers: DistinctRecent
    cards: DistinctRecent
    channels: DistinctRecent
    merchants: DistinctRecent
    categories: DistinctRecent
    profile: SpendingProfile
    risk: TerminalRisk
    declines: EventWindow | None
    disputes: EventWindow | None
    alerts: EventWindow | None

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        # The key it is kept under: the one copy of that string the windows and the
        # feedback memory hold (each transaction decodes its own; see `FeatureStore.observe`).
        self.key = key
        for name, factory in _KIND_WINDOWS[kind].items():
            setattr(self, name, factory())
        self.declines = self.disputes = self.alerts = None
        self.last: tuple[float | None, float | None, float | None] = (None, None, None)
        # (time, lat, lon) of the last payment; a tuple, which the cyclic GC stops tracking

    def rare(self, name: str) -> EventWindow:
        """The `declines`, `disputes` or `alerts` window, made now if this is its first event."""
        window: EventWindow | None = getattr(self, name)
        if window is None:
            window = _RARE_WINDOWS[self.kind][name]()
            setattr(self, name, window)
        return window

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            name: getattr(self, name).to_dict() for name in _KIND_WINDOWS[self.kind]
        }
        for name in _RARE_WINDOWS[self.kind]:
            window = getattr(self, name)
            if window is not None:
                data[name] = window.to_dict()
        data["last"] = list(self.last)
        return data

    @classmethod
    def from_dict(cls, kind: str, key: str, data: dict[str, Any]) -> EntityState:
        state = cls(kind, key)
        for name in (*_KIND_WINDOWS[kind], *_RARE_WINDOWS[kind]):
            if name in data:
                setattr(state, name, _LOADERS[name].from_dict(data[name]))
        ts, lat, lon = data["last"]
        state.last = (ts, lat, lon)
        return state


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 12_742.0 * math.asin(math.sqrt(min(1.0, a)))


def customer_key(txn: Transaction) -> str:
    """The customer as its merchant knows it: `<len>:<merchant>:<customer id>`.

    Customer ids are each merchant's own (see the module docstring), so the merchant is
    part of the key; its length first keeps the key unambiguous whatever characters
    either id holds. Without a merchant the customer id alone is the key.
    """
    merchant = txn.merchant_id
    if merchant is None:
        return txn.customer_id
    return f"{len(merchant)}:{merchant}:{txn.customer_id}"


def _rare_count(state: EntityState, name: str, since: float) -> float:
    window: EventWindow | None = getattr(state, name)
    return 0.0 if window is None else float(window.count(since))


class SnapshotParts(Protocol):
    """What a stepped snapshot keeps of each step, and how the steps' parts become each
    kind's map of entities and the feedback records' list (`FeatureStore.snapshot_steps`)."""

    def entities(self, step: list[tuple[str, EntityState]]) -> Any: ...

    def entity_map(self, parts: list[Any], count: int) -> Any: ...

    def records(self, step: list[tuple[Any, ...]]) -> Any: ...

    def record_list(self, parts: list[Any], count: int) -> Any: ...


class PlainParts:
    """Plain data: each kind a dict of entity dicts, the records a list of tuples."""

    def entities(self, step: list[tuple[str, EntityState]]) -> dict[str, Any]:
        return {key: state.to_dict() for key, state in step}

    def entity_map(self, parts: list[Any], count: int) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for part in parts:
            merged.update(part)
        return merged

    def records(self, step: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return step

    def record_list(self, parts: list[Any], count: int) -> list[tuple[Any, ...]]:
        return flattened(parts)


class FeatureStore:
    """Entity state, the feedback memory and the compromise tracker: all that is learned.

    `max_entities` caps each kind; `max_remembered` caps the transactions an outcome
    or dispute can still find, so it sets how late a dispute may arrive: at R
    payments a day it reaches back `max_remembered / R` days (~250 bytes each).
    A transaction scored `alert_score` or more is counted against its card and
    device (`card_alerts_24h`, `device_alerts_24h`): a fraudster rarely stops at one try.
    """

    def __init__(
        self,
        max_entities: int = 200_000,
        max_remembered: int = 200_000,
        compromise: CompromiseTracker | None = None,
        alert_score: int = 70,
    ) -> None:
        self.max_entities = max_entities
        self.alert_score = alert_score
        self.kinds: dict[str, OrderedDict[str, EntityState]] = {k: OrderedDict() for k in KINDS}
        self._settled: set[str] = set()  # kinds whose map was full, and settled (`settle`)
        self.memory = FeedbackMemory(max_remembered)
        self.compromise = compromise if compromise is not None else CompromiseTracker()

    def _peek(self, kind: str, key: str | None) -> EntityState | None:
        return None if key is None else self.kinds[kind].get(key)

    def _key(self, kind: str, key: str | None) -> str | None:
        """`key` as the state of its entity keeps it (see `observe`); as given if it has none."""
        if key is None:
            return None
        state = self.kinds[kind].get(key)
        return key if state is None else state.key

    def _settle(self, kind: str) -> None:
        """Rebuild the full map of `kind` at its lasting size (`capped.settle`), once."""
        if kind not in self._settled:
            self._settled.add(kind)
            settle(self.kinds[kind])

    def _touch(self, kind: str, key: str) -> EntityState:
        entities = self.kinds[kind]
        state = entities.get(key)
        if state is None:
            state = entities[key] = EntityState(kind, key)
            if len(entities) > self.max_entities:
                entities.popitem(last=False)
            if len(entities) == self.max_entities:
                self._settle(kind)
        else:
            entities.move_to_end(key)
        return state

    def features(self, txn: Transaction) -> dict[str, float]:
        ts = txn.timestamp
        f: dict[str, float] = {"amount": float(txn.amount)}
        # Scoped to the merchant; card, device and IP below are network-wide (module doc).
        cust_key = customer_key(txn)
        cust = self._peek("customer", cust_key)
        if cust is not None:
            n30, mean, std = cust.amounts.summary(ts)
            f["cust_txn_5m"], f["cust_txn_1h"], f["cust_txn_24h"] = cust.txns.count3(
                ts - 300, ts - HOUR, ts - DAY
            )
            f["cust_history_30d"] = n30
            f["cust_avg_amount_30d"] = mean
            f["cust_std_amount_30d"] = std
            f["amount_ratio"] = txn.amount / mean if mean > 0 else 1.0
            if mean and txn.amount > 3 * mean:
                # Scanning a day of payments is the costliest feature, and only a big
                # payment makes earlier big ones interesting: absent otherwise.
                f["cust_big_txn_24h"] = cust.txns.count_above(ts - DAY, 3 * mean)
            f["cust_devices_30d"] = cust.devices.count_since(ts - MONTH)
            f["cust_countries_30d"] = cust.countries.count_since(ts - MONTH)
            w = cust.declines
            f["cust_declines_1h"] = 0 if w is None else w.count(ts - HOUR)
            w = cust.disputes
            f["cust_disputes_30d"] = 0 if w is None else w.count(ts - MONTH)
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
        card_key = txn.card_fingerprint
        card = self._peek("card", card_key)
        if card is not None:
            w = card.declines
            if w is None:
                f["card_declines_10m"] = f["card_declines_1h"] = 0
            else:
                f["card_declines_10m"] = w.count(ts - 600)
                f["card_declines_1h"] = w.count(ts - HOUR)
            w = card.disputes
            f["card_disputes_30d"] = 0 if w is None else w.count(ts - MONTH)
            w = card.alerts
            f["card_alerts_24h"] = 0 if w is None else w.count(ts - DAY)
            f["card_small_auths_10m"] = card.txns.count_at_most(ts - 600, SMALL_AMOUNT)
            f["card_customers_24h"] = card.customers.count_since(ts - DAY)
            f["card_customer_new"] = _is_new(card.customers, cust_key)
            f["card_channel_new"] = _is_new(card.channels, txn.channel)
            usual = card.usual
            f["card_payments"] = usual.n
            if usual.mean > 0:
                f["card_amount_ratio"] = txn.amount / usual.mean
            if self.compromise.merchants:
                f["card_cpp_disputes"] = self.compromise.exposure_of(card.merchants.seen, ts)
            profile = card.profile
            z = profile.amount_z(txn.amount)
            if z is not None:
                f["card_amount_z"] = z
            share = profile.hour_share(ts)
            if share is not None:
                f["card_hour_share"] = share
            if profile.placed and txn.lat is not None and txn.lon is not None:
                f["card_home_km"] = haversine_km(profile.lat, profile.lon, txn.lat, txn.lon)
            if txn.merchant_category is not None:
                f["card_category_new"] = _is_new(card.categories, txn.merchant_category)
            f["card_country_new"] = _is_new(card.countries, txn.country)
        for kind, key, names in (
            ("device", txn.device_id, _DEVICE_FEATURES),
            ("ip", txn.ip_address, _IP_FEATURES),
        ):
            if key is None:
                continue
            state = self.kinds[kind].get(key)
            cards_1h, cards_24h, declines_1h, disputes_30d, card_new = names
            if state is not None:
                f[cards_1h], f[cards_24h] = state.cards.count_since2(ts - HOUR, ts - DAY)
                w = state.declines
                f[declines_1h] = 0 if w is None else w.count(ts - HOUR)
                w = state.disputes
                f[disputes_30d] = 0 if w is None else w.count(ts - MONTH)
                if kind == "device":
                    w = state.alerts
                    f["device_alerts_24h"] = 0 if w is None else w.count(ts - DAY)
            if card_key is not None:
                # A device (an IP) that never carried this card, or is unknown altogether;
                # for a device, also whether it first carried the card less than a day ago.
                pair = None if state is None else state.cards.get(card_key)
                f[card_new] = 1 if pair is None else 0
                if kind == "device":
                    f["card_device_fresh_24h"] = 1 if pair is None or pair[0] >= ts - DAY else 0
        merchant = self._peek("merchant", txn.merchant_id)
        if merchant is not None:
            w = merchant.declines
            f["merchant_declines_1h"] = 0 if w is None else w.count(ts - HOUR)
            w = merchant.disputes
            f["merchant_disputes_7d"] = 0 if w is None else w.count(ts - WEEK)
            counts = merchant.risk.windows(ts, _TERMINAL_SPANS)
            # Shares only, not the counts: a shop's volume says nothing of fraud, and a
            # model given it learns the sizes of the few shops compromised in its history.
            for (share_name, _, _), (payments, frauds) in zip(
                _TERMINAL_WINDOWS, counts, strict=True
            ):
                # Shrunk toward a usual rate by a prior of PRIOR_PAYMENTS payments: one
                # friendly dispute among a small shop's first ten payments is not a
                # compromised terminal (10 %), but one among a hundred and ten (1 %).
                f[share_name] = (frauds + PRIOR_PAYMENTS * PRIOR_FRAUD_RATE) / (
                    payments + PRIOR_PAYMENTS
                )
        if txn.merchant_id is not None and self.compromise.merchants:
            f["merchant_cpp_disputes"] = self.compromise.flagged(txn.merchant_id, ts)
        return f

    def observe(self, txn: Transaction, score: int = 0) -> None:
        """Add `txn` to its entities' windows and remember it (with its `score`) for feedback."""
        ts = txn.timestamp
        # One copy of each entity's key: the one its state is kept under (`EntityState.key`).
        # The feedback memory keeps the keys of each of its (200,000) records, and the
        # windows keep them as members. Each request decodes its own copies; one shared
        # string per entity instead of one per transaction is about 250 bytes a record.
        # Not `sys.intern`: the interpreter's table of interned strings then held every live
        # key, and was rebuilt larger (60 MiB at once) long after the maps were full.
        cust = self._touch("customer", customer_key(txn))  # per merchant; the rest network-wide
        cust_key = cust.key
        device_id, ip_address = self._key("device", txn.device_id), self._key("ip", txn.ip_address)
        merchant_id = None
        if txn.merchant_id is not None:
            merchant = self._touch("merchant", txn.merchant_id)
            merchant.risk.add_payment(ts)
            merchant_id = merchant.key
        # A handful of values (`pos`, `ecommerce`, ...): interned, the table stays small.
        channel = None if txn.channel is None else sys.intern(txn.channel)
        cust.txns.add(ts, txn.amount)
        cust.amounts.add(ts, txn.amount)
        for window, key in (
            (cust.devices, device_id),
            (cust.countries, txn.country),
            (cust.ips, ip_address),
        ):
            if key is not None:
                window.add(key, ts)
        last_ts = cust.last[0]
        if last_ts is None or ts >= last_ts:  # a late one (another process's) is not the last
            cust.last = (ts, txn.lat, txn.lon) if txn.lat is not None else (ts, *cust.last[1:])
        card_key = None
        if txn.card_fingerprint is not None:
            card = self._touch("card", txn.card_fingerprint)
            card_key = card.key
            card.txns.add(ts, txn.amount)
            card.usual.add(txn.amount)
            card.customers.add(cust_key, ts)
            if channel is not None:
                card.channels.add(channel, ts)
            if merchant_id is not None:
                card.merchants.add(merchant_id, ts)
            card.profile.add(txn.amount, ts, txn.lat, txn.lon)
            if txn.merchant_category is not None:
                card.categories.add(txn.merchant_category, ts)
            if txn.country is not None:
                card.countries.add(txn.country, ts)
            for kind, key in (("device", device_id), ("ip", ip_address)):
                if key is not None:
                    self._touch(kind, key).cards.add(card_key, ts)
        entities = (cust_key, card_key, device_id, ip_address, merchant_id)
        status = PENDING if txn.approved is None else APPROVED if txn.approved else DECLINED
        if status == DECLINED:
            self._charge(entities, "declines", ts)
        if score >= self.alert_score:
            if card_key is not None:
                self._touch("card", card_key).rare("alerts").add(ts)
            if device_id is not None:
                self._touch("device", device_id).rare("alerts").add(ts)
        self.memory.remember(txn.transaction_id, ts, entities, channel, score, status)

    def observe_outcome(self, transaction_id: str, outcome: str, at: float) -> bool:
        """Feed back `approved` / `declined` / `disputed` at time `at`.

        False if the transaction is unknown (never observed, or forgotten). Idempotent,
        as an event stream delivers at least once: a repeated outcome changes nothing,
        and a decline counts only for a transaction whose outcome was still unknown.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome: expected approved, declined or disputed, got {outcome!r}")
        record = self.memory.get(transaction_id)
        if record is None:
            return False
        entities, status = record.entities, record.status
        if outcome == "approved":
            if status == PENDING:
                self.memory.set_status(transaction_id, APPROVED)
        elif outcome == "declined":
            if status == PENDING:
                self._charge(entities, "declines", at)
                self.memory.set_status(transaction_id, DECLINED)
        elif status != DISPUTED:
            self._dispute(record, at)
            self.memory.set_status(transaction_id, DISPUTED)
        return True

    def _charge(self, entities: tuple[str | None, ...], window: str, at: float) -> None:
        for kind, key in zip(KINDS, entities, strict=True):
            if key is not None:
                self._touch(kind, key).rare(window).add(at)

    def _dispute(self, record: Remembered, at: float) -> None:
        card_key = record.entities[1]
        card = self._peek("card", card_key)
        # "Otherwise clean": no earlier dispute on the card, and a payment we let through.
        clean = card is not None and _rare_count(card, "disputes", at - MONTH) == 0
        self._charge(record.entities, "disputes", at)
        merchant = record.entities[4]
        if merchant is not None:
            self._touch("merchant", merchant).risk.add_fraud(record.timestamp)
        if clean and card is not None and card_key is not None:
            self.compromise.dispute(card_key, card.merchants.seen, record, at)

    def snapshot(self) -> dict[str, Any]:
        """All that was learned, as plain JSON-compatible data (see `restore`)."""
        return run_through(self.snapshot_steps())

    def snapshot_steps(
        self, parts: SnapshotParts | None = None, per_step: int = SNAPSHOT_STEP
    ) -> Generator[None, None, dict[str, Any]]:
        """`snapshot()` a few entities at a time: it yields after each `per_step` of them,
        then of five times as many feedback records, and returns the snapshot. `parts` says
        what is kept of each step and how the parts make each kind's map and the records'
        list (by default, plain data: `PlainParts`).

        So a server can take its checkpoint between requests rather than stop for it (a
        second at a few hundred thousand payments of state). The store may change between
        steps: the entities are those of the first step, in its order, each as it is when
        its turn comes; one added since waits for the next checkpoint. Each entity is whole,
        and an outcome that finds one missing or older on restore only counts for less.
        """
        parts = parts or PlainParts()
        kinds: dict[str, Any] = {}
        for kind, entities in self.kinds.items():
            kept = list(entities.items())
            taken = []
            for start in range(0, len(kept), per_step):
                taken.append(parts.entities(kept[start : start + per_step]))
                yield
            kinds[kind] = parts.entity_map(taken, len(kept))
            del kept, taken
        memory = yield from self.memory.to_dict_steps(
            parts.records, parts.record_list, 5 * per_step
        )
        return {
            "max_entities": self.max_entities,
            "alert_score": self.alert_score,
            "kinds": kinds,
            "memory": memory,
            "compromise": self.compromise.to_dict(),
        }

    @classmethod
    def restore(cls, data: dict[str, Any], customers_scoped: bool = True) -> FeatureStore:
        """The store a `snapshot()` describes.

        `customers_scoped=False` reads a snapshot from before customers were keyed per
        merchant: its customer state mixed every merchant's "cus_1" into one and cannot
        be split again, so it is dropped, with every trace of those keys (the customers
        each card was seen with, and the customer of each remembered transaction).
        Cards, devices, IPs, merchants and the compromise search are kept as they are.
        """
        memory = FeedbackMemory.from_dict(data["memory"])
        store = cls(
            int(data["max_entities"]),
            memory.cap,
            CompromiseTracker.from_dict(data["compromise"]),
            int(data["alert_score"]),
        )
        store.memory = memory
        for kind, entities in data["kinds"].items():
            if kind not in store.kinds:
                raise ValueError(f"snapshot: unknown entity kind {kind!r}")
            if not customers_scoped and kind == "customer":
                continue
            states = OrderedDict(
                (k, EntityState.from_dict(kind, k, s)) for k, s in entities.items()
            )
            if not customers_scoped and kind == "card":
                for state in states.values():
                    state.customers = _KIND_WINDOWS["card"]["customers"]()
            store.kinds[kind] = states
            if len(states) == store.max_entities:
                store._settle(kind)  # now, not on the first payment after a restart
        if not customers_scoped:
            memory.forget_customers()
        return store


_DEVICE_FEATURES = (
    "device_cards_1h",
    "device_cards_24h",
    "device_declines_1h",
    "device_disputes_30d",
    "card_device_new",
)
_IP_FEATURES = ("ip_cards_1h", "ip_cards_24h", "ip_declines_1h", "ip_disputes_30d", "card_ip_new")


def _is_new(seen: DistinctRecent, key: str | None) -> float:
    return 1.0 if key is not None and key not in seen else 0.0
