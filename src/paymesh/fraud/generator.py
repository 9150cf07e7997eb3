"""A labelled synthetic payment stream, deterministic by seed, for tests and benchmarks.

Legitimate customers have habits (home city, a device or two, one card, typical
amounts, one to three shops), decline now and then (~2 %), and some check out as
guests (the same card under another customer id). A customer id is a shop's account
for its customer, as customer ids are each merchant's own: a customer's payments under
their id go to their shops, and the fraud engine sees one customer per shop. Attacks and
legitimate look-alikes are mixed in; every transaction carries a label:

- `card_testing`: one stolen card probed with small amounts, mostly declined;
- `card_enumeration`: one device and IP trying many cards;
- `account_takeover`: big payments on a customer's account from a new device abroad;
- `leaked_card`: the card's details leaked and used card-not-present, as a guest,
  from a fraud ring's device and IP, with amounts well over the card's habit;
- `compromised_terminal`: every card used at one busy merchant during a few days was
  skimmed; days later the clones are used in shops near the holder's home, for
  somewhat more than usual. Nothing in the payments gives it away; only the
  disputes that follow do (see `outcomes`);
- `lookalike_travel`, `lookalike_new_phone`, `lookalike_big_purchase`,
  `lookalike_transit` (bursts of small taps): legitimate, but look like the above;
- `legit`: everything else.

`outcomes(stream, seed)` is the feedback a live stream carries: disputes days
to weeks after a payment; with `live=True`, also each payment's approval or
decline a second or two after it. `replay_records` merges both in time order in
the replay input form. As an issuer does, a card disputed as fraud is blocked
when the dispute is filed: its holder pays with a new card from then on, and the
fraudster's later tries on it are declined.
"""

from __future__ import annotations

import heapq
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
ATTACKS = (
    "card_testing",
    "card_enumeration",
    "account_takeover",
    "leaked_card",
    "compromised_terminal",
)
LOOKALIKES = (
    "lookalike_travel",
    "lookalike_new_phone",
    "lookalike_big_purchase",
    "lookalike_transit",
)
# Share of approved payments disputed, by label; legitimate ones: friendly fraud.
DISPUTE_RATES = {
    "card_testing": 0.5,  # small probes: not every holder notices
    "card_enumeration": 0.5,
    "account_takeover": 0.9,
    "leaked_card": 0.9,
    "compromised_terminal": 0.9,
}
FRIENDLY_DISPUTE_RATE = 0.001
DISPUTE_DELAY_DAYS = (2.0, 20.0)
City = tuple[str, str, float, float]
Labelled = tuple[Transaction, str]


class _Gen:
    def __init__(self, n: int, seed: int) -> None:
        self.rng = random.Random(seed)
        # Apart from `rng`, so that choosing shops leaves every other draw as it was.
        self.shops_rng = random.Random(f"shops-{seed}")
        self.out: list[Labelled] = []
        self.episode: list[str] = []  # parallel to `out`: the attack episode, "" if none
        self.merchants = max(50, n // 250)  # ~250 payments a merchant a month
        self.rings = max(3, n // 15_000)  # leaked-card fraud rings
        self.holders: dict[str, tuple[str, City, float]] = {}  # card -> customer, home, typical

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
        episode: str = "",
        merchant: str | None = None,
    ) -> None:
        rng = self.rng
        lat = round(city[2] + rng.uniform(-0.05, 0.05), 4)
        lon = round(city[3] + rng.uniform(-0.05, 0.05), 4)
        anywhere = f"m{rng.randrange(self.merchants)}"  # drawn always: the stream stays put
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
            lat=lat,
            lon=lon,
            merchant_id=merchant or anywhere,
            channel=channel,
            approved=approved,
        )
        self.out.append((txn, label))
        self.episode.append(episode)

    def customer(self, i: int) -> None:
        rng = self.rng
        cid, card = f"c{i}", f"card-c{i}"
        home = CITIES[rng.randrange(len(CITIES))]
        devices = [f"dev-c{i}-0"] + ([f"dev-c{i}-1"] if rng.random() < 0.3 else [])
        typical = rng.lognormvariate(3.5, 0.8) * 100  # minor units, ~33 EUR median
        self.holders[card] = (cid, home, typical)
        times = sorted(START + rng.uniform(0, SPAN_DAYS * DAY) for _ in range(rng.randint(8, 40)))
        trip = self._trip(home) if rng.random() < 0.1 else None
        new_phone_at = START + rng.uniform(5, SPAN_DAYS) * DAY if rng.random() < 0.1 else None
        big_at = START + rng.uniform(5, SPAN_DAYS) * DAY if rng.random() < 0.15 else None
        guest_share = 0.15 if rng.random() < 0.1 else 0.0
        shops = self._shops()
        for ts in times:
            city, label, ip, payer = home, "legit", f"ip-c{i}", cid
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
            if label == "legit" and rng.random() < guest_share:
                payer = f"guest-c{i}-{int(ts)}"  # checking out without logging in
            approved = rng.random() >= 0.02  # insufficient funds, expired card...
            shop = shops[0] if self.shops_rng.random() < 0.7 else self.shops_rng.choice(shops)
            self.emit(label, ts, payer, amount, card, device, ip, city, approved, merchant=shop)
        if rng.random() < 0.15:  # a burst of transit taps: small, approved, minutes apart
            ts = START + rng.uniform(1, SPAN_DAYS) * DAY
            operator = f"m{self.shops_rng.randrange(self.merchants)}"
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
                    merchant=operator,
                )
        if rng.random() < 0.04:
            self.account_takeover(cid, home, typical, i, shops[0])
        elif rng.random() < 0.04:
            self.leaked_card(card, typical, i)

    def _shops(self) -> list[str]:
        """Where a customer has an account: one shop mostly, sometimes two or three."""
        rng = self.shops_rng
        return [f"m{rng.randrange(self.merchants)}" for _ in range(rng.choice((1, 1, 2, 3)))]

    def _trip(self, home: City) -> tuple[float, float, float, City]:
        rng = self.rng
        dest = rng.choice([c for c in CITIES if c[0] != home[0]])
        flight = haversine_km(home[2], home[3], dest[2], dest[3]) / 700 * 3600 + 7200
        leave = START + rng.uniform(7, SPAN_DAYS - 6) * DAY
        return leave, leave + flight, leave + flight + rng.uniform(2, 5) * DAY, dest

    def account_takeover(self, cid: str, home: City, typical: float, i: int, shop: str) -> None:
        """The customer's account at their main shop, used from a new device abroad."""
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
                episode=f"ato-c{i}",
                merchant=shop,
            )
            ts += rng.uniform(120, 900)

    def leaked_card(self, card: str, typical: float, i: int) -> None:
        """Leaked card details, used online as a guest from a fraud ring's device and IP."""
        rng = self.rng
        ring = rng.randrange(self.rings)
        city = CITIES[ring % len(CITIES)]
        device, ip = f"ring-dev-{ring}-{rng.randrange(3)}", f"ring-ip-{ring}"
        ts = START + rng.uniform(5, SPAN_DAYS) * DAY
        for _ in range(rng.randint(1, 3)):
            amount = typical * rng.uniform(1.5, 8)
            self.emit(
                "leaked_card",
                ts,
                f"guest-lk{i}",
                amount,
                card,
                device,
                ip,
                city,
                episode=f"lk-c{i}",
            )
            ts += rng.uniform(300, 4 * 3600)

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
                episode=f"ct{k}",
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
                episode=f"ce{k}",
            )
            ts += rng.uniform(5, 30)

    def compromised_terminal(self, k: int) -> None:
        """Skim every card used at one busy merchant for 1-3 days; use ~70 % of them later.

        The clones are sold on and used over the following weeks (a week after the
        skimming on average), each a few times, until the month ends.
        """
        rng = self.rng
        drawn = f"m{rng.randrange(self.merchants)}"
        start = START + rng.uniform(1, 8) * DAY
        end = start + rng.uniform(1, 3) * DAY
        cards_at: dict[str, dict[str | None, None]] = {}
        for txn, _ in self.out:
            if (
                start <= txn.timestamp < end
                and txn.approved
                and txn.card_fingerprint in self.holders
                and txn.merchant_id is not None
            ):
                cards_at.setdefault(txn.merchant_id, {})[txn.card_fingerprint] = None
        # A skimmer is planted where many cards pass: the busiest of a few shops (customers
        # keep to their shops, so shops differ in size).
        shops = [drawn, *(f"m{self.shops_rng.randrange(self.merchants)}" for _ in range(7))]
        merchant = max(shops, key=lambda shop: len(cards_at.get(shop, ())))
        skimmed = cards_at.get(merchant, {})
        for card in skimmed:
            if card is None or rng.random() >= 0.7:
                continue
            cid, home, typical = self.holders[card]
            ts = end + (0.5 + rng.expovariate(1 / 7)) * DAY
            for _ in range(rng.randint(1, 3)):
                if ts >= START + SPAN_DAYS * DAY:
                    break
                amount = typical * rng.uniform(1.5, 4)
                self.emit(
                    "compromised_terminal",
                    ts,
                    cid,
                    amount,
                    card,
                    None,
                    None,
                    home,
                    channel="pos",
                    episode=f"tm{k}-{merchant}",
                )
                ts += rng.uniform(0.1, 2) * DAY


def generate_episodes(n: int, seed: int = 0) -> tuple[list[Labelled], dict[str, str]]:
    """`generate`, plus the attack episode of each attack transaction, by transaction id.

    An episode is one attacker run: a stolen card probed (card testing), a device
    enumerating (card enumeration), an account taken over, a leaked card, a terminal.
    """
    gen = _Gen(n, seed)
    i = 0
    while len(gen.out) < n:
        gen.customer(i)
        if i % 120 == 0:
            gen.card_testing(i)
        if i % 200 == 100:
            gen.card_enumeration(i)
        i += 1
    for k in range(max(1, i // 500)):
        gen.compromised_terminal(k)
    order = sorted(range(len(gen.out)), key=lambda j: gen.out[j][0].timestamp)[:n]
    stream = [gen.out[j] for j in order]
    episodes = {}
    for number, (j, (txn, _)) in enumerate(zip(order, stream, strict=True)):
        txn.transaction_id = f"t{number:08d}"
        if gen.episode[j]:
            episodes[txn.transaction_id] = gen.episode[j]
    _reissue(stream, _disputes(stream, seed), set(gen.holders))
    return stream, episodes


def _disputes(stream: list[Labelled], seed: int) -> list[tuple[float, str, str]]:
    # One draw per transaction whatever its fate, so that blocking a card (which turns
    # later approvals into declines) leaves every other transaction's draw unchanged.
    rng = random.Random(f"disputes-{seed}")
    events = []
    for txn, label in stream:
        draw, delay = rng.random(), rng.uniform(*DISPUTE_DELAY_DAYS) * DAY
        if txn.approved and draw < DISPUTE_RATES.get(label, FRIENDLY_DISPUTE_RATE):
            events.append((round(txn.timestamp + delay, 3), txn.transaction_id, "disputed"))
    events.sort()
    return events


def _reissue(
    stream: list[Labelled], disputes: list[tuple[float, str, str]], holders: set[str]
) -> None:
    """Block each holder's card at its first fraud dispute: a new card for the holder."""
    by_id = {txn.transaction_id: (txn, label) for txn, label in stream}
    blocked: dict[str, float] = {}
    for at, transaction_id, _ in disputes:
        txn, label = by_id[transaction_id]
        card = txn.card_fingerprint
        if label in ATTACKS and card in holders and card not in blocked:
            blocked[card] = at
    for txn, label in stream:
        card = txn.card_fingerprint
        if card in blocked and txn.timestamp > blocked[card]:
            if label in ATTACKS:
                txn.approved = False
            else:
                txn.card_fingerprint = f"{card}-reissued"


def generate(n: int, seed: int = 0) -> list[Labelled]:
    """About `n` labelled transactions (exactly `n` when enough were made), in time order."""
    return generate_episodes(n, seed)[0]


def outcomes(
    stream: list[Labelled], seed: int = 0, live: bool = False
) -> list[tuple[float, str, str]]:
    """(time, transaction id, outcome) feedback for `stream`, in time order.

    Disputes: approved attack payments, at the rates of `DISPUTE_RATES`, and
    legitimate ones at `FRIENDLY_DISPUTE_RATE`, 2 to 20 days later. With `live`,
    also `approved` / `declined` 0.3 to 2 s after each payment. `seed` must be the
    one `stream` was generated with.
    """
    events = _disputes(stream, seed)
    if live:
        rng = random.Random(f"outcomes-{seed}")
        for txn, _ in stream:
            outcome = "approved" if txn.approved else "declined"
            at = round(txn.timestamp + rng.uniform(0.3, 2.0), 3)
            events.append((at, txn.transaction_id, outcome))
        events.sort()
    return events


def to_record(txn: Transaction) -> dict[str, Any]:
    """The replay input form (DESIGN.md) of a generated transaction."""
    return asdict(txn)


def replay_records(
    stream: list[Labelled], feedback: list[tuple[float, str, str]], live: bool = False
) -> list[dict[str, Any]]:
    """Transactions and feedback merged in time order, as replay input records.

    With `live`, transactions carry no `approved`: it arrives as feedback, as on the
    live stream where the score comes before the PSP's answer.
    """
    txns = []
    for txn, _ in stream:
        record = to_record(txn)
        if live:
            record["approved"] = None
        txns.append(record)
    notes = [{"transaction_id": t, "timestamp": at, "outcome": o} for at, t, o in feedback]
    return list(heapq.merge(txns, notes, key=lambda record: record["timestamp"]))
