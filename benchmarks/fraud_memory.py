"""The fraud engine's memory over simulated days: does it level off once a day has passed?

    python benchmarks/fraud_memory.py --transactions 3000000 --rate 167 --customers 30000

A memory soak of the server (`memory_soak.py`) runs for under two hours, so every payment of
it is still inside its customer's one-day window (`EventWindow(DAY, 256)` in
`fraud/features.py`): those windows grow for the whole soak, and no soak on this machine
reaches the steady state a server has after its first day. This script feeds one
`FraudEngine` (no server, no HTTP) the soak's traffic with the clock it would have at
`--rate` payments a second, far faster than real time, and samples the process's RSS and
CPython's allocated blocks every `--every` transactions. The customers, devices, IPs and
cards are `memory_soak.py`'s (`benchmarks.load.workload.Population`, the success mix); each
transaction is observed with a score, as the inline scorer does, and approved a second
later, as its webhook tells.

The verdict is issue 18's, on the engine alone: the highest RSS after the warm-up (by
default one simulated day, or the feedback memory's fill if later) against +10 %.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.load.workload import Customer, Population, parse_mix  # noqa: E402
from paymesh.fraud.scorer import FraudEngine  # noqa: E402
from paymesh.fraud.transactions import Transaction  # noqa: E402

DAY = 86_400.0
T0 = 1_790_000_000.0  # any fixed start: the figures do not depend on it


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def pay(engine: FraudEngine, customer: Customer, n: int, ts: float, rng: random.Random) -> None:
    """Payment `n` of `customer` at `ts`: observed with a score, as the inline scorer does,
    and approved a second later, as its webhook tells."""
    txn = Transaction(
        transaction_id=f"pay_{n:012d}",
        timestamp=ts,
        customer_id=customer.id,
        amount=round(customer.habit * rng.uniform(0.5, 1.5)),
        currency=customer.currency,
        card_fingerprint=customer.card,
        device_id=customer.device_id,
        ip_address=customer.ip_address,
        country=customer.country,
        city=customer.city,
        merchant_id="bench",
        channel="web",
    )
    engine.observe(txn, rng.randrange(30))
    engine.feedback(txn.transaction_id, "approved", ts + 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=3_000_000)
    parser.add_argument("--rate", type=float, default=167.0, help="simulated payments/s")
    parser.add_argument("--customers", type=int, default=30_000)
    parser.add_argument("--every", type=int, default=100_000, help="sample every N")
    parser.add_argument("--warmup", type=int, help="transactions before the baseline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    per_day = round(args.rate * DAY)
    engine = FraudEngine()
    warmup = args.warmup
    if warmup is None:
        warmup = max(per_day, engine.store.memory.cap)
    if not 0 < warmup < args.transactions:
        parser.error(f"the warm-up ({warmup:,}) must be under --transactions")
    population = Population(args.customers, parse_mix("success"), args.seed)
    rng = random.Random(args.seed)
    gc.collect()
    samples: list[dict[str, float]] = []
    print(f"{'transactions':>13} {'sim. days':>9} {'RSS MiB':>8} {'blocks':>10} {'txn/s':>8}")
    started = last = time.perf_counter()
    for n in range(1, args.transactions + 1):
        pay(engine, population.next("success"), n, T0 + n / args.rate, rng)
        if n % args.every == 0:
            now = time.perf_counter()
            sample = {
                "transactions": n,
                "days": n / per_day,
                "rss_mib": rss_mib(),
                "blocks": sys.getallocatedblocks(),
            }
            samples.append(sample)
            print(
                f"{n:>13,} {sample['days']:>9.2f} {sample['rss_mib']:>8.1f} "
                f"{sample['blocks']:>10,} {args.every / (now - last):>8,.0f}",
                flush=True,
            )
            last = now
    after = [s for s in samples if s["transactions"] >= warmup]
    if not after:
        parser.error("no sample after the warm-up: lower --every")
    base, peak, end = after[0], max(s["rss_mib"] for s in after), after[-1]
    growth = peak / base["rss_mib"] - 1
    print(
        f"warm-up {warmup:,} transactions ({warmup / per_day:.2f} simulated days): "
        f"RSS {base['rss_mib']:.1f} MiB; highest after it {peak:.1f} MiB ({growth:+.1%}), "
        f"at the end {end['rss_mib']:.1f} MiB ({end['rss_mib'] / base['rss_mib'] - 1:+.1%}); "
        f"issue 18's bound +10 %: {'met' if growth <= 0.10 else 'NOT met'} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"settings": vars(args) | {"json": None}, "samples": samples}, indent=2, default=str
            )
        )
    return 0 if growth <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
