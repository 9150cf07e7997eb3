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
- `compromised_terminal`: a shop's terminal in criminal hands (the fraud-detection
  handbook's scenario): every payment made there during one to two weeks is fraud,
  though each looks like its holder's habit. Nothing in a payment gives it away; only
  the disputes of the terminal's earlier payments do, days later (see `outcomes`), so
  it can be caught only after that feedback delay (`FEEDBACK_DELAY_DAYS`);
- `lookalike_travel`, `lookalike_new_phone`, `lookalike_big_purchase` (a big-ticket
  order, often at a new shop of a new kind, sometimes as a guest), `lookalike_transit`
  (bursts of small taps), `lookalike_spree` (a burst of online orders at several
  shops): legitimate, but look like the above;
- `legit`: everything else.

`outcomes(stream, seed)` is the feedback a live stream carries: disputes days
to weeks after a payment; with `live=True`, also each payment's approval or
decline a second or two after it. `replay_records` merges both in time order in
the replay input form. As an issuer does, a card disputed as fraud is blocked
when the dispute is filed: its holder pays with a new card from then on, and the
fraudster's later tries on it are declined.

As in the handbook's simulator, customers have spending profiles (a typical amount and
its spread, usual hours of the day in their own time zone, a few everyday shops) and
shops have a kind (`merchant_category`): groceries, fuel, restaurants and transit are
paid at a terminal (`channel` "pos", no device or IP), the others online.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import asdict
from typing import Any

from paymesh.fraud.features import haversine_km
from paymesh.fraud.transactions import Transaction

START = 1_700_000_000.0
DAY = 86_400.0
HOUR = 3_600.0
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
# Hours east of UTC, for customers' usual hours of the day.
TZ = {
    "London": 0.0,
    "Paris": 1.0,
    "Berlin": 1.0,
    "Madrid": 1.0,
    "Rome": 1.0,
    "Amsterdam": 1.0,
    "New York": -5.0,
    "Sao Paulo": -3.0,
    "Tokyo": 9.0,
    "Mumbai": 5.5,
}
# A shop's kind is fixed by its number: m<k> sells CATEGORIES[k % 8].
CATEGORIES = (
    "grocery",
    "fashion",
    "fuel",
    "electronics",
    "restaurant",
    "digital",
    "transit",
    "travel",
)
AT_TERMINAL = frozenset({"grocery", "fuel", "restaurant", "transit"})
BIG_TICKET = ("electronics", "travel")
# How long after a terminal is compromised its disputes say so: the evaluation counts a
# compromised terminal's payments as catchable from this long after its first one.
FEEDBACK_DELAY_DAYS = 7.0
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
    "lookalike_spree",
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


def category_of(merchant: str) -> str:
    """The kind of shop `m<k>` is (see `CATEGORIES`)."""
    return CATEGORIES[int(merchant[1:]) % len(CATEGORIES)]


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
        # Midnight UTC after START: customers' days start here.
        self.day0 = (START // DAY + 1) * DAY

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
        channel: str | None = None,
        episode: str = "",
        merchant: str | None = None,
    ) -> None:
        rng = self.rng
        lat = round(city[2] + rng.uniform(-0.05, 0.05), 4)
        lon = round(city[3] + rng.uniform(-0.05, 0.05), 4)
        anywhere = f"m{rng.randrange(self.merchants)}"  # drawn always: the stream stays put
        shop = merchant or anywhere
        kind = category_of(shop)
        if channel is None:
            channel = "pos" if kind in AT_TERMINAL else "ecommerce"
        if channel == "pos":  # a terminal: a card, no browser
            device = ip = None
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
            merchant_id=shop,
            channel=channel,
            approved=approved,
            merchant_category=kind,
        )
        self.out.append((txn, label))
        self.episode.append(episode)

    def _at_local_hour(self, day: int, tz: float, peak: float) -> float:
        """A time on `day` near the customer's usual hour `peak` (their local time)."""
        hour = min(23.9, max(6.0, self.rng.gauss(peak, 2.0)))
        return self.day0 + day * DAY + (hour - tz) * HOUR

    def customer(self, i: int) -> None:
        rng = self.rng
        cid, card = f"c{i}", f"card-c{i}"
        home = CITIES[rng.randrange(len(CITIES))]
        tz, peak = TZ[home[1]], rng.uniform(9, 21)
        devices = [f"dev-c{i}-0"] + ([f"dev-c{i}-1"] if rng.random() < 0.3 else [])
        typical = rng.lognormvariate(3.5, 0.8) * 100  # minor units, ~33 EUR median
        spread = rng.uniform(0.2, 0.5)  # of the log amount: some buy alike, some vary more
        self.holders[card] = (cid, home, typical)
        times = sorted(
            self._at_local_hour(rng.randrange(SPAN_DAYS - 1), tz, peak)
            for _ in range(rng.randint(8, 40))
        )
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
            amount = typical * rng.lognormvariate(0, spread)
            shop = shops[0] if self.shops_rng.random() < 0.7 else self.shops_rng.choice(shops)
            if big_at is not None and ts >= big_at:
                amount, label, big_at = typical * rng.uniform(4, 10), "lookalike_big_purchase", None
                if rng.random() < 0.6:  # a television, a flight: a shop of its own kind
                    shop = self._shop_of(BIG_TICKET)
                    if rng.random() < 0.5:
                        payer = f"guest-c{i}-{int(ts)}"
            if trip is not None:
                leave, arrive, back, dest = trip
                if leave <= ts < arrive or back <= ts < back + (arrive - leave):
                    continue  # in the air
                if arrive <= ts < back:
                    city, label, ip = dest, "lookalike_travel", f"ip-hotel-c{i}"
            if label == "legit" and rng.random() < guest_share:
                payer = f"guest-c{i}-{int(ts)}"  # checking out without logging in
            approved = rng.random() >= 0.02  # insufficient funds, expired card...
            self.emit(label, ts, payer, amount, card, device, ip, city, approved, merchant=shop)
        if rng.random() < 0.15:  # a burst of transit taps: small, approved, minutes apart
            ts = START + rng.uniform(1, SPAN_DAYS) * DAY
            operator = self._shop_of(("transit",))
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
                    merchant=operator,
                )
        if rng.random() < 0.05:  # a sale: several online orders at several shops, in an hour
            ts = self._at_local_hour(rng.randrange(SPAN_DAYS - 1), tz, peak)
            for _ in range(rng.randint(4, 8)):
                ts += rng.uniform(60, 900)
                self.emit(
                    "lookalike_spree",
                    ts,
                    cid,
                    typical * rng.lognormvariate(0, 0.5),
                    card,
                    devices[0],
                    f"ip-c{i}",
                    home,
                    merchant=self._shop_of(("fashion", "electronics", "digital")),
                )
        if rng.random() < 0.04:
            self.account_takeover(cid, home, typical, i, shops[0])
        elif rng.random() < 0.04:
            self.leaked_card(card, typical, i)

    def _shops(self) -> list[str]:
        """Where a customer has an account: one shop mostly, sometimes two or three.

        Shops differ in size as they do: four customers in five shop at the biggest fifth
        of them (~4 times the average), the rest anywhere, so most shops are small
        (~a fifth of the average) and a friendly dispute there is a large share.
        """
        rng = self.shops_rng
        big = max(1, self.merchants // 5)
        return [
            f"m{rng.randrange(big) if rng.random() < 0.8 else rng.randrange(self.merchants)}"
            for _ in range(rng.choice((1, 1, 2, 3)))
        ]

    def _shop_of(self, kinds: tuple[str, ...]) -> str:
        """A shop of one of `kinds`, drawn evenly among them."""
        rng = self.shops_rng
        index = CATEGORIES.index(rng.choice(kinds))
        slots = (self.merchants - 1 - index) // len(CATEGORIES) + 1
        return f"m{index + len(CATEGORIES) * rng.randrange(slots)}"

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
                channel="ecommerce",  # an account is used online, whatever the shop
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
                merchant=self._shop_of(("electronics", "digital", "fashion")),
            )
            ts += rng.uniform(300, 4 * 3600)

    def card_testing(self, k: int) -> None:
        rng = self.rng
        ts = START + rng.uniform(1, SPAN_DAYS) * DAY
        city = CITIES[rng.randrange(len(CITIES))]
        shop = self._shop_of(("digital",))  # a donation page, a game top-up
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
                merchant=shop,
            )
            ts += rng.uniform(10, 60)

    def card_enumeration(self, k: int) -> None:
        rng = self.rng
        ts = START + rng.uniform(1, SPAN_DAYS) * DAY
        city = CITIES[rng.randrange(len(CITIES))]
        shop = self._shop_of(("digital", "fashion", "electronics"))
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
                merchant=shop,
            )
            ts += rng.uniform(5, 30)

    def compromised_terminal(self, k: int) -> None:
        """A shop's terminal in criminal hands for 5-12 days: every payment there is fraud.

        As the fraud-detection handbook's simulator does it: the payments are the shop's
        usual customers' usual ones, only labelled fraud (and disputed, later, as fraud).
        """
        rng = self.rng
        # A shop paid at a terminal, of middling size (100 to 400 payments a month): big
        # enough to be worth it, small enough to go unnoticed.
        kinds = AT_TERMINAL - {"transit"}
        sizes = Counter(txn.merchant_id for txn, _ in self.out if txn.merchant_category in kinds)
        middling = sorted(m for m, n in sizes.items() if m is not None and 100 <= n <= 400)
        merchant = self.shops_rng.choice(middling or sorted(m for m in sizes if m is not None))
        start = START + rng.uniform(2, 12) * DAY
        end = start + rng.uniform(5, 12) * DAY
        for j, (txn, label) in enumerate(self.out):
            if (
                txn.merchant_id == merchant
                and start <= txn.timestamp < end
                and txn.card_fingerprint in self.holders
                and label not in ATTACKS
            ):
                self.out[j] = (txn, "compromised_terminal")
                self.episode[j] = f"tm{k}-{merchant}"


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
    for k in range(max(1, len(gen.out) // 30_000)):
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


#: What a payment through the API does not tell the scorer (`FraudRiskScorer` builds its
#: transaction from the payment and its risk context: customer, card, device, IP, country,
#: city, merchant, amount).
NOT_FROM_THE_API = ("lat", "lon", "merchant_category", "channel")


def history_records(
    stream: list[Labelled],
    episodes: dict[str, str],
    seed: int,
    as_api: bool = False,
) -> list[dict[str, Any]]:
    """A labelled history of `stream` (generated with `seed`): `replay_records`, each
    transaction with its truth.

    `fraud` (true for every attack) is the label `paymesh fraud train` learns from: in a
    live history it comes from fraud disputes, rejected reviews and issuers' fraud reports.
    `label` (the attack or look-alike) and `episode` let a backtest report per attack.

    `as_api`: the history as paymesh's own payments make it, scored inline through the API:
    without `NOT_FROM_THE_API`, and with each approval or decline arriving as feedback after
    the score (as the PSP answers after it). A model meant for `paymesh serve` is trained on
    this: one trained with fields inline scoring never has reads them as missing there.
    """
    truth = {
        txn.transaction_id: (label, episodes.get(txn.transaction_id, "")) for txn, label in stream
    }
    records = replay_records(stream, outcomes(stream, seed, live=as_api), live=as_api)
    for record in records:
        if "outcome" not in record:
            label, episode = truth[record["transaction_id"]]
            record["label"], record["fraud"], record["episode"] = label, label in ATTACKS, episode
            if as_api:
                for name in NOT_FROM_THE_API:
                    del record[name]
    return records
