"""How event routing scales with the number of rules: ``RuleSet.matching`` throughput.

A fixed, seeded stream of payment events (EventBridge envelopes as in DESIGN.md)
is matched, on one core, against seeded rule sets of 10, 100, 1,000 and 10,000
rules. The rules are what a multi-merchant platform accumulates: the default
platform rules (DESIGN.md's table) plus per-merchant and per-customer rules,
mostly exact matches on detail-type / source / currency / customer, with some
prefix, numeric ranges on amount and fraud_score, anything-but, exists, cidr,
wildcard and $or.

Printed: events/s per size, matches per event, build time, and the ratio of the
per-event cost at 10,000 rules to that at 10 (targets: under 3, and over 50,000
events/s at 1,000 rules). Before timing, a sample of events is checked against
testing every rule one by one, which is also timed for comparison.

    .venv/bin/python benchmarks/rules_match.py            # ~20 s
    .venv/bin/python benchmarks/rules_match.py --events 5000 --seed 7
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from paymesh.rules import RuleSet, compile_pattern

DETAIL_TYPES = [
    "payment.initiated", "payment.processing", "payment.requires_action",
    "payment.succeeded", "payment.failed", "payment.canceled", "payment.blocked",
    "payment.captured", "refund.succeeded", "refund.failed", "dispute.created",
    "fraud.alert", "review.opened", "review.closed",
]  # fmt: skip
# How often each detail-type occurs: a payment is initiated, processed, mostly succeeds.
TYPE_WEIGHTS = [20, 18, 2, 16, 4, 2, 1, 12, 3, 1, 1, 1, 1, 1]
SOURCES = {"payment": "payment.service", "refund": "refund.service", "dispute": "dispute.service",
           "fraud": "fraud.service", "review": "review.service"}  # fmt: skip
CURRENCIES = ["usd", "eur", "gbp", "jpy", "cad", "aud", "chf", "sek"]
CURRENCY_WEIGHTS = [40, 25, 12, 6, 6, 5, 3, 3]
COUNTRIES = ["US", "GB", "DE", "FR", "NL", "ES", "IT", "CA", "AU", "JP", "BR", "IN"]
STATUSES = ["requires_payment_method", "processing", "requires_action", "succeeded",
            "failed", "canceled", "blocked", "captured"]  # fmt: skip
CHANNELS = ["web", "app", "pos", "moto"]
IP_BLOCKS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "203.0.113.0/24", "198.51.100.0/24"]
MERCHANTS = [f"acct_{n:05d}" for n in range(2_000)]
CUSTOMERS = [f"cus_{n:06d}" for n in range(20_000)]
SIZES = (10, 100, 1_000, 10_000)


def make_events(rng: random.Random, count: int) -> list[dict[str, Any]]:
    events = []
    for n in range(count):
        detail_type = rng.choices(DETAIL_TYPES, TYPE_WEIGHTS)[0]
        payment_id = f"pay_{rng.getrandbits(64):016x}"
        octets = [
            rng.randrange(1, 224),
            rng.randrange(256),
            rng.randrange(256),
            rng.randrange(1, 255),
        ]
        if rng.random() < 0.4:
            octets[0] = 10
        elif rng.random() < 0.2:
            octets[:3] = [203, 0, 113]
        ip = ".".join(map(str, octets))
        detail: dict[str, Any] = {
            "payment_id": payment_id,
            "amount": rng.choice([rng.randrange(100, 10_000), rng.randrange(100, 500_000)]),
            "currency": rng.choices(CURRENCIES, CURRENCY_WEIGHTS)[0],
            "customer_id": rng.choice(CUSTOMERS),
            "status": rng.choice(STATUSES),
            "fraud_score": round(rng.betavariate(2, 6) * 100, 2),
            "metadata": {"order_id": f"ord_{n}", "channel": rng.choice(CHANNELS)}
            if rng.random() < 0.8
            else {},
            "country": rng.choice(COUNTRIES),
            "ip_address": ip,
        }
        if detail_type == "payment.failed":
            detail["retryable"] = rng.random() < 0.5
        events.append({
            "version": "0",
            "id": f"{rng.getrandbits(128):032x}",
            "source": SOURCES[detail_type.split(".")[0]],
            "detail-type": detail_type,
            "account": rng.choice(MERCHANTS),
            "time": f"2026-11-23T19:{n // 60 % 60:02d}:{n % 60:02d}Z",
            "region": "local",
            "resources": [payment_id],
            "detail": detail,
        })  # fmt: skip
    return events


# The platform's own rules (DESIGN.md), present in every rule set.
DEFAULT_RULES: list[dict[str, Any]] = [
    {"detail-type": ["payment.initiated"]},
    {"detail-type": ["payment.succeeded"]},
    {"detail-type": ["payment.failed"], "detail": {"retryable": [True]}},
    {"detail-type": ["payment.initiated"], "detail": {"fraud_score": [{"numeric": [">", 70]}]}},
    {"detail-type": [{"prefix": "payment."}]},
]


def make_rule(rng: random.Random) -> dict[str, Any]:
    """One merchant's or customer's rule; thresholds are round numbers, as people write."""
    account = rng.choice(MERCHANTS)
    types = rng.sample(DETAIL_TYPES, rng.choice([1, 1, 1, 2, 3]))
    roll = rng.random()
    if roll < 0.40:
        rule: dict[str, Any] = {"account": [account], "detail-type": types}
        if rng.random() < 0.5:
            rule["detail"] = {"currency": rng.sample(CURRENCIES, rng.choice([1, 2]))}
        return rule
    if roll < 0.52:
        return {"detail-type": types, "detail": {"customer_id": [rng.choice(CUSTOMERS)]}}
    if roll < 0.56:
        return {"source": ["refund.service"], "detail": {"customer_id": [rng.choice(CUSTOMERS)]}}
    if roll < 0.64:
        amount = rng.choice([
            [">=", rng.choice([1_000, 5_000, 10_000, 50_000, 100_000])],
            ["<", rng.choice([500, 1_000, 2_000])],
            [">", rng.choice([0, 100, 1_000]), "<=", rng.choice([5_000, 20_000, 100_000])],
        ])  # fmt: skip
        return {"account": [account], "detail-type": types,
                "detail": {"amount": [{"numeric": amount}]}}  # fmt: skip
    if roll < 0.70:
        score = rng.choice([50, 60, 70, 80, 90, 95])
        return {"account": [account], "detail-type": ["payment.initiated"],
                "detail": {"fraud_score": [{"numeric": [">", score]}]}}  # fmt: skip
    if roll < 0.75:
        prefix = rng.choice(["payment.", "refund.", "review.", "dispute."])
        return {"account": [account], "detail-type": [{"prefix": prefix}]}
    if roll < 0.80:
        excluded = rng.sample(STATUSES, 2)
        return {"account": [account], "detail": {"status": [{"anything-but": excluded}]}}
    if roll < 0.85:
        return {"account": [account], "detail-type": types,
                "detail": {"metadata": {"order_id": [{"exists": rng.random() < 0.7}]}}}  # fmt: skip
    if roll < 0.90:
        return {"account": [account], "detail": {
            "ip_address": [{"cidr": rng.choice(IP_BLOCKS)}],
            "country": rng.sample(COUNTRIES, 3)}}  # fmt: skip
    if roll < 0.95:
        return {"account": [account], "$or": [
            {"detail": {"fraud_score": [{"numeric": [">", rng.choice([80, 90])]}]}},
            {"detail": {"amount": [{"numeric": [">", rng.choice([100_000, 250_000])]}]}},
        ]}  # fmt: skip
    if roll < 0.98:
        channel = rng.choice(CHANNELS).upper()
        return {"account": [account], "detail": {
            "customer_id": [{"wildcard": f"cus_{rng.randrange(100):02d}*"}],
            "metadata": {"channel": [{"equals-ignore-case": channel}]}}}  # fmt: skip
    outcome = rng.choice([".succeeded", ".failed"])
    return {"account": [account], "detail-type": [{"suffix": outcome}],
            "detail": {"currency": [{"anything-but": {"prefix": "us"}}]}}  # fmt: skip


def make_rules(rng: random.Random, count: int) -> list[dict[str, Any]]:
    return [*DEFAULT_RULES, *(make_rule(rng) for _ in range(count - len(DEFAULT_RULES)))]


def build(patterns: list[dict[str, Any]]) -> RuleSet[int]:
    rules: RuleSet[int] = RuleSet()
    for number, pattern in enumerate(patterns):
        rules.add(f"rule-{number}", pattern, number)
    return rules


def check(
    rules: RuleSet[int], patterns: list[dict[str, Any]], sample: list[dict[str, Any]]
) -> float:
    """Compare with testing each rule in turn; returns the one-by-one events/s."""
    compiled = [compile_pattern(pattern) for pattern in patterns]
    started = time.perf_counter()
    expected = [[n for n, c in enumerate(compiled) if c.matches(event)] for event in sample]
    elapsed = time.perf_counter() - started
    for event, want in zip(sample, expected, strict=True):
        got = rules.matching(event)
        assert got == want, f"rule set disagrees with one-by-one matching: {got} != {want}"
    return len(sample) / elapsed


def measure(rules: RuleSet[int], events: list[dict[str, Any]], rounds: int) -> tuple[float, int]:
    """Best of ``rounds`` passes over the stream: events/s, and total matches."""
    matching = rules.matching
    for event in events[:500]:  # warm caches (IP parsing, bytecode specialisation)
        matching(event)
    best = float("inf")
    matched = 0
    for _ in range(rounds):
        started = time.perf_counter()
        matched = sum(len(matching(event)) for event in events)
        best = min(best, time.perf_counter() - started)
    return len(events) / best, matched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in the stream")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes; the best counts")
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()

    console = Console()
    events = make_events(random.Random(args.seed), args.events)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    table = Table(title=f"RuleSet.matching, {args.events:,} events, one core ({python})")
    for column in ("rules", "build s", "events/s", "µs/event", "matches/event", "one-by-one ev/s"):
        table.add_column(column, justify="right")
    cost: dict[int, float] = {}
    for size in SIZES:
        patterns = make_rules(random.Random(args.seed + size), size)
        started = time.perf_counter()
        rules = build(patterns)
        built = time.perf_counter() - started
        sample = events[: max(50, min(2_000, 200_000 // size))]
        naive = check(rules, patterns, sample)
        rate, matched = measure(rules, events, args.rounds)
        cost[size] = 1 / rate
        table.add_row(f"{size:,}", f"{built:.2f}", f"{rate:,.0f}", f"{1e6 / rate:.1f}",
                      f"{matched / len(events):.2f}", f"{naive:,.0f}")  # fmt: skip
    console.print(table)
    ratio = cost[SIZES[-1]] / cost[SIZES[0]]
    at_1000 = 1 / cost[1_000]
    console.print(f"cost per event, {SIZES[-1]:,} rules / {SIZES[0]:,} rules: [bold]{ratio:.2f}[/] "
                  f"(target < 3: {'met' if ratio < 3 else 'MISSED'})")  # fmt: skip
    console.print(f"events/s at 1,000 rules: [bold]{at_1000:,.0f}[/] "
                  f"(target > 50,000: {'met' if at_1000 > 50_000 else 'MISSED'})")  # fmt: skip
    console.print("every size was checked against one-by-one matching on a sample: identical")


if __name__ == "__main__":
    main()
