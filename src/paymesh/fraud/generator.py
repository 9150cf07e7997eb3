"""A labelled synthetic transaction stream, deterministic by seed, for tests and benchmarks.

Legitimate customers have habits (home city, a device or two, one card, typical
amounts). Attacks and legitimate look-alikes are mixed in; every transaction
carries a label. Labels: legit, card_testing, card_enumeration, account_takeover,
leaked_card, lookalike_travel, lookalike_new_phone, lookalike_big_purchase,
lookalike_transit.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Any

from paymesh.fraud.features import haversine_km
from paymesh.fraud.transactions import Transaction

START = 1_700_000_000.0
DAY = 86_400.0
SPAN_DAYS = 30
CITIES = (
    ("GB", "London", 51.51, -0.13),
    ("FR", "Paris", 48.86, 2.35),
    ("DE", "Berlin", 52.52, 13.40),
    ("ES", "Madrid", 40.42, -3.70),
    ("IT", "Rome", 41.90, 12.50),
    ("NL", "Amsterdam", 52.37, 4.90),
    ("US", "New York", 40.71, -74.01),
    ("BR", "Sao Paulo", -23.55, -46.63),
    ("JP", "Tokyo", 35.68, 139.69),
    ("IN", "Mumbai", 19.08, 72.88),
)
City = tuple[str, str, float, float]
Labelled = tuple[Transaction, str]


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.out: list[Labelled] = []

    def emit(
        self,
        label: str,
        ts: float,
        customer: str,
        amount: float,
        card: str | None,
        device: str | None,
        ip: str | None,
        city: City,
        approved: bool = True,
        channel: str = "ecommerce",
    ) -> None:
        rng = self.rng
        txn = Transaction(
            transaction_id="",
            timestamp=round(ts, 3),
            customer_id=customer,
            amount=max(1, int(amount)),
            currency="EUR",
            card_fingerprint=card,
            device_id=device,
            ip_address=ip,
            country=city[0],
            city=city[1],
            lat=round(city[2] + rng.uniform(-0.05, 0.05), 4),
            lon=round(city[3] + rng.uniform(-0.05, 0.05), 4),
            merchant_id=f"m{rng.randrange(200)}",
            channel=channel,
            approved=approved,
        )
        self.out.append((txn, label))

    def customer(self, i: int) -> None:
        rng = self.rng
        cid, card = f"c{i}", f"card-c{i}"
        home = CITIES[rng.randrange(len(CITIES))]
        devices = [f"dev-c{i}-0"] + ([f"dev-c{i}-1"] if rng.random() < 0.3 else [])
        typical = rng.lognormvariate(3.5, 0.8) * 100  # minor units, ~33 EUR median
        times = sorted(START + rng.uniform(0, SPAN_DAYS * DAY) for _ in range(rng.randint(8, 40)))
        trip = self._trip(home) if rng.random() < 0.1 else None
        new_phone_at = START + rng.uniform(5, SPAN_DAYS) * DAY if rng.random() < 0.1 else None
        big_at = START + rng.uniform(5, SPAN_DAYS) * DAY if rng.random() < 0.15 else None
        for ts in times:
            city, label, ip = home, "legit", f"ip-c{i}"
            if new_phone_at is not None and ts >= new_phone_at:
                devices, new_phone_at, label = [f"dev-c{i}-new"], None, "lookalike_new_phone"
            device = devices[0] if rng.random() < 0.9 else devices[-1]
            amount = typical * rng.lognormvariate(0, 0.35)
            if big_at is not None and ts >= big_at:
                amount, label, big_at = typical * rng.uniform(4, 8), "lookalike_big_purchase", None
            if trip is not None:
                leave, arrive, back, dest = trip
                if leave <= ts < arrive or back <= ts < back + (arrive - leave):
                    continue  # in the air
                if arrive <= ts < back:
                    city, label, ip = dest, "lookalike_travel", f"ip-hotel-c{i}"
            self.emit(label, ts, cid, amount, card, device, ip, city)
        if rng.random() < 0.15:  # a burst of transit taps: small, approved, minutes apart
            ts = START + rng.uniform(1, SPAN_DAYS) * DAY
            for _ in range(rng.randint(4, 8)):
                ts += rng.uniform(180, 720)
                self.emit(
                    "lookalike_transit",
                    ts,
                    cid,
                    rng.randint(150, 350),
                    card,
                    devices[0],
                    f"ip-c{i}",
                    home,
                    channel="pos",
                )
        if rng.random() < 0.04:
            self.account_takeover(cid, home, typical, i)
        elif rng.random() < 0.04:
            self.leaked_card(cid, card, home, devices[0], typical, i)

    def _trip(self, home: City) -> tuple[float, float, float, City]:
        rng = self.rng
        dest = rng.choice([c for c in CITIES if c[0] != home[0]])
        flight = haversine_km(home[2], home[3], dest[2], dest[3]) / 700 * 3600 + 7200
        leave = START + rng.uniform(7, SPAN_DAYS - 6) * DAY
        return leave, leave + flight, leave + flight + rng.uniform(2, 5) * DAY, dest

    def account_takeover(self, cid: str, home: City, typical: float, i: int) -> None:
        rng = self.rng
        city = rng.choice([c for c in CITIES if c[0] != home[0]])
        ts = START + rng.uniform(10, SPAN_DAYS) * DAY
        for _ in range(rng.randint(2, 4)):
            self.emit(
                "account_takeover",
                ts,
                cid,
                typical * rng.uniform(4, 10),
                f"card-c{i}",
                f"ato-dev-{i}",
                f"ato-ip-{i}",
                city,
            )
            ts += rng.uniform(120, 900)

    def leaked_card(
        self, cid: str, card: str, home: City, device: str, typical: float, i: int
    ) -> None:
        """A cloned card used in person far away, an hour or two after a purchase at home."""
        rng = self.rng
        ts = START + rng.uniform(10, SPAN_DAYS) * DAY
        self.emit("legit", ts, cid, typical, card, device, f"ip-c{i}", home)
        city = rng.choice([c for c in CITIES if c[0] != home[0]])
        for _ in range(rng.randint(1, 3)):
            ts += rng.uniform(1200, 7200)
            self.emit(
                "leaked_card",
                ts,
                cid,
                typical * rng.uniform(2, 6),
                card,
                None,
                None,
                city,
                channel="pos",
            )

    def card_testing(self, k: int) -> None:
        rng = self.rng
        ts = START + rng.uniform(1, SPAN_DAYS) * DAY
        city = CITIES[rng.randrange(len(CITIES))]
        for _ in range(rng.randint(6, 15)):
            self.emit(
                "card_testing",
                ts,
                f"guest-ct{k}",
                rng.randint(50, 300),
                f"stolen-ct{k}",
                f"fraud-dev-ct{k}",
                f"fraud-ip-ct{k}",
                city,
                approved=rng.random() < 0.2,
            )
            ts += rng.uniform(10, 60)

    def card_enumeration(self, k: int) -> None:
        rng = self.rng
        ts = START + rng.uniform(1, SPAN_DAYS) * DAY
        city = CITIES[rng.randrange(len(CITIES))]
        for j in range(rng.randint(8, 25)):
            self.emit(
                "card_enumeration",
                ts,
                f"guest-ce{k}-{j}",
                rng.randint(100, 3000),
                f"enum-ce{k}-{j}",
                f"fraud-dev-ce{k}",
                f"fraud-ip-ce{k}",
                city,
                approved=rng.random() < 0.1,
            )
            ts += rng.uniform(5, 30)


def generate(n: int, seed: int = 0) -> list[Labelled]:
    """About `n` labelled transactions (exactly `n` when enough were made), in time order."""
    gen = _Gen(seed)
    i = 0
    while len(gen.out) < n:
        gen.customer(i)
        if i % 120 == 0:
            gen.card_testing(i)
        if i % 200 == 100:
            gen.card_enumeration(i)
        i += 1
    gen.out.sort(key=lambda pair: pair[0].timestamp)
    stream = gen.out[:n]
    for number, (txn, _) in enumerate(stream):
        txn.transaction_id = f"t{number:08d}"
    return stream


def to_record(txn: Transaction) -> dict[str, Any]:
    """The replay input form (DESIGN.md) of a generated transaction."""
    return asdict(txn)
