"""What one more customer costs the fraud engine, in bytes, and where they go.

    python benchmarks/fraud_entity_bytes.py --customers 20000

The engine keeps state per customer, card, device and IP, each kind up to a cap (200,000 by
default: `FeatureStore.max_entities`), so a server's RSS grows with its population until the
caps fill, then stays. This script measures the step: it feeds one `FraudEngine` a warm-up
of `--customers` first payments (each a new customer with its own device and IP, as
`memory_soak.py`'s population has; the cards are shared test tokens), then as many again
under `tracemalloc`, and prints the bytes the second lot kept per payment, by the line that
allocated them. A returning customer's payment is measured the same way, over the same
customers again, as the baseline: what a payment costs once its entities exist.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.fraud_memory import T0, pay  # noqa: E402
from benchmarks.load.workload import Customer, Population, parse_mix  # noqa: E402
from paymesh.fraud.scorer import FraudEngine  # noqa: E402

RATE = 300.0  # payments a second of simulated time: all of a run stays within a day


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000, help="payments per lot")
    parser.add_argument("--top", type=int, default=12, help="allocating lines to list")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n = args.customers
    engine = FraudEngine()
    if 3 * n > engine.store.max_entities:
        parser.error(f"3 x --customers must stay under the cap ({engine.store.max_entities:,})")
    # Three lots of new customers, then the second lot again: a pool as big as the lots,
    # walked in order, so each payment of a lot is a customer's first.
    population = Population(3 * n, parse_mix("success"), args.seed)
    customers = [population.next("success") for _ in range(3 * n)]
    rng = random.Random(args.seed)
    count = 0

    def pay_all(lot: list[Customer]) -> None:
        nonlocal count
        for customer in lot:
            count += 1
            pay(engine, customer, count, T0 + count / RATE, rng)

    def measured(lot: list[Customer]) -> tuple[float, list[tracemalloc.StatisticDiff]]:
        gc.collect()
        tracemalloc.start(1)
        before = tracemalloc.take_snapshot()
        pay_all(lot)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        diffs = after.compare_to(before, "lineno")
        return sum(d.size_diff for d in diffs) / len(lot), diffs

    pay_all(
        customers[:n]
    )  # warm-up: the engine's maps and the feedback ring past their first sizes
    new, diffs = measured(customers[n : 2 * n])
    pay_all(customers[2 * n :])
    returning, _ = measured(customers[n : 2 * n])
    print(f"a new customer's first payment (own device and IP): {new:,.0f} bytes kept")
    print(f"a returning customer's payment (the baseline):      {returning:,.0f} bytes kept")
    print(f"ratio: {new / returning:.1f}x" if returning > 0 else "ratio: -")
    cap = engine.store.max_entities
    print(f"at the cap of {cap:,} customers: {new * cap / 2**20:,.0f} MiB")
    print("\nwhere a new customer's bytes go (bytes per payment, allocating line):")
    for diff in diffs[: args.top]:
        frame = diff.traceback[0]
        where = Path(frame.filename)
        name = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where.name
        print(f"{diff.size_diff / n:8,.0f}  {name}:{frame.lineno}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
