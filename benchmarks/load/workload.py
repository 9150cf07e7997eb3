"""What the generator sends: synthetic customers and the mix of payment flows.

The server scores every payment for fraud, so the customers must look like customers:

- many of them, each paying rarely. Each pool is walked in a shuffled order, one payment
  per customer per pass, so a customer pays at most once every `pool size / rate` seconds
  (the default population keeps that over 100 s: under the 5-in-5-minutes velocity rule);
- each with a stable device, IP address, country and city, and one card: a new device or
  country for a known customer is exactly what account-takeover rules look for;
- amounts near a habit of their own (x0.85-1.15 of 15-35 currency units). Test cards are
  shared tokens (`pm_card_visa` is one "card" for thousands of customers), so every
  customer's first payment is a new customer and a new device for that card: an amount
  over twice the card's running mean would look like a leaked card (review). The range
  keeps the largest amount under 1.8x the mean. Amounts stay over 5 units, as probes
  (card testing) are small.

A customer whose card declines (insufficient funds) or needs 3-D Secure keeps that card:
their own pools. The flows, and what each expects:

- success: POST /v1/payments -> 201 succeeded;
- decline: the same with a declining card -> 402 card_error;
- threeds: POST /v1/payments -> 201 requires_action, then the sandbox's 3-D Secure page with
  `outcome=succeed`; the PSP's webhook then makes the payment succeeded;
- manual: `capture_method: manual` -> 201 requires_capture, then POST .../capture -> 200;
- refund: a success, then POST .../refunds (all of it, or half) -> 201;
- replay: an earlier POST /v1/payments again, same key and body -> its status again, with
  `Idempotent-Replayed: true`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import uuid
from dataclasses import dataclass

from .clients import RequestSpec

FLOWS = ("success", "decline", "threeds", "manual", "refund", "replay")
MIXES: dict[str, dict[str, float]] = {
    "realistic": {
        "success": 70,
        "decline": 5,
        "threeds": 6,
        "manual": 10,
        "refund": 5,
        "replay": 4,
    },
    "success": {"success": 100},
}
#: Flows whose payment should end `succeeded`, so its confirmation is awaited.
CONFIRMED_FLOWS = frozenset({"success", "threeds", "manual", "refund"})

CARDS = (
    ("pm_card_visa", 40),
    ("pm_card_mastercard", 25),
    ("pm_card_visa_debit", 12),
    ("pm_card_amex", 10),
    ("pm_card_mastercard_debit", 8),
    ("pm_card_discover", 5),
)
DECLINE_CARD = "pm_card_chargeDeclinedInsufficientFunds"
THREEDS_CARD = "pm_card_threeDSecure2Required"
# (country, city, currency, weight)
PLACES = (
    ("US", "New York", "usd", 20),
    ("US", "Chicago", "usd", 10),
    ("US", "San Francisco", "usd", 8),
    ("GB", "London", "gbp", 12),
    ("GB", "Manchester", "gbp", 4),
    ("DE", "Berlin", "eur", 8),
    ("DE", "Munich", "eur", 4),
    ("FR", "Paris", "eur", 9),
    ("NL", "Amsterdam", "eur", 5),
    ("ES", "Madrid", "eur", 5),
    ("IT", "Rome", "eur", 5),
    ("IE", "Dublin", "eur", 3),
)
HABIT_RANGE = (1_500, 3_500)  # minor units, log-uniform
SPREAD = (0.85, 1.15)
#: Seconds between two payments of one customer that the default population allows.
CUSTOMER_SPACING_S = 100.0
MIN_CUSTOMERS = 20_000


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    card: str
    device_id: str
    ip_address: str
    country: str
    city: str
    currency: str
    habit: int


@dataclass(frozen=True, slots=True)
class Arrival:
    """One scheduled arrival: a flow and, unless it replays, the request that starts it."""

    flow: str
    order_id: str | None = None
    amount: int = 0
    create: RequestSpec | None = None


def parse_mix(text: str) -> dict[str, float]:
    """`realistic`, `success`, or weights such as `success=80,decline=10,manual=10`."""
    if text in MIXES:
        return dict(MIXES[text])
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in FLOWS:
            raise ValueError(f"unknown flow {name!r}; flows: {', '.join(FLOWS)}")
        weights[name] = float(value)
        if weights[name] < 0:
            raise ValueError(f"negative weight for {name}")
    if not any(w > 0 for name, w in weights.items() if name != "replay"):
        raise ValueError("the mix needs at least one flow that creates payments")
    return weights


def default_customers(max_rate: float) -> int:
    return max(MIN_CUSTOMERS, math.ceil(max_rate * CUSTOMER_SPACING_S))


def _pool_of(flow: str) -> str:
    return {"decline": "decline", "threeds": "threeds"}.get(flow, "card")


class Population:
    """Customers in three pools (by their card), each walked in a shuffled order."""

    def __init__(self, size: int, mix: dict[str, float], seed: int) -> None:
        paying = {f: w for f, w in mix.items() if f != "replay" and w > 0}
        total = sum(paying.values())
        shares = {"card": 0.0, "decline": 0.0, "threeds": 0.0}
        for flow, weight in paying.items():
            shares[_pool_of(flow)] += weight / total
        self._pools: dict[str, list[Customer]] = {}
        self._order: dict[str, list[int]] = {}
        self._next: dict[str, int] = {}
        self._rng = random.Random(seed)
        for pool, share in shares.items():
            if share > 0:
                count = max(50, round(size * share))
                self._pools[pool] = [self._customer(seed, pool, i) for i in range(count)]
                self._reshuffle(pool)

    @property
    def size(self) -> int:
        return sum(len(p) for p in self._pools.values())

    def next(self, flow: str) -> Customer:
        pool = _pool_of(flow)
        if self._next[pool] >= len(self._order[pool]):
            self._reshuffle(pool)
        index = self._order[pool][self._next[pool]]
        self._next[pool] += 1
        return self._pools[pool][index]

    def _reshuffle(self, pool: str) -> None:
        order = list(range(len(self._pools[pool])))
        self._rng.shuffle(order)
        self._order[pool], self._next[pool] = order, 0

    @staticmethod
    def _customer(seed: int, pool: str, i: int) -> Customer:
        # Derived from (seed, pool, i) alone: a rerun against the same server sees the same
        # customers with the same devices, as returning customers are.
        digest = hashlib.sha256(f"{seed}:{pool}:{i}".encode()).digest()
        rng = random.Random(digest)
        if pool == "decline":
            card = DECLINE_CARD
        elif pool == "threeds":
            card = THREEDS_CARD
        else:
            card = rng.choices([c for c, _ in CARDS], [w for _, w in CARDS])[0]
        country, city, currency, _ = rng.choices(PLACES, [p[3] for p in PLACES])[0]
        low, high = HABIT_RANGE
        habit = round(math.exp(rng.uniform(math.log(low), math.log(high))))
        ip = ".".join(str(b) for b in (rng.randint(11, 223), *digest[4:7]))
        return Customer(
            id=f"cus_b{seed}{pool[0]}{i}",
            card=card,
            device_id=f"dev_{digest[8:20].hex()}",
            ip_address=ip,
            country=country,
            city=city,
            currency=currency,
            habit=habit,
        )


class Workload:
    """Builds the arrivals of a phase: a flow drawn from the mix, a customer, a request."""

    def __init__(
        self, mix: dict[str, float], population: Population, api_key: str, run: str, seed: int
    ) -> None:
        self._flows = [f for f, w in mix.items() if w > 0]
        self._weights = [mix[f] for f in self._flows]
        self._population = population
        self._auth = f"Bearer {api_key}"
        self._run = run
        self._rng = random.Random(seed)
        self._count = 0

    def payments(self, count: int) -> list[Arrival]:
        flows = self._rng.choices(self._flows, self._weights, k=count)
        return [self._arrival(flow) for flow in flows]

    def _arrival(self, flow: str) -> Arrival:
        if flow == "replay":
            return Arrival("replay")
        customer = self._population.next(flow)
        self._count += 1
        order_id = f"{self._run}-{self._count}"
        amount = round(customer.habit * self._rng.uniform(*SPREAD))
        body: dict[str, object] = {
            "amount": amount,
            "currency": customer.currency,
            "customer_id": customer.id,
            "payment_method": customer.card,
            "device_id": customer.device_id,
            "ip_address": customer.ip_address,
            "country": customer.country,
            "city": customer.city,
            "metadata": {"order_id": order_id, "bench_run": self._run},
        }
        if flow == "manual":
            body["capture_method"] = "manual"
        spec = RequestSpec("POST", "/v1/payments", self.headers(), json.dumps(body).encode())
        return Arrival(flow, order_id, amount, spec)

    def headers(self, body: bool = True) -> dict[str, str]:
        """A write's headers, with a fresh Idempotency-Key, as a careful client sends."""
        headers = {"Authorization": self._auth, "Idempotency-Key": f"bench-{uuid.uuid4()}"}
        if body:
            headers["Content-Type"] = "application/json"
        return headers


def healthz_arrivals(count: int) -> list[Arrival]:
    arrival = Arrival("healthz", create=RequestSpec("GET", "/healthz", {}))
    return [arrival] * count
