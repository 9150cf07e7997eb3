"""Inline fraud scoring latency: one `await FraudRiskScorer.assess(...)` per payment.

A `FraudEngine` is first warmed with `--warm` generated transactions (100,000 by
default) and the disputes that fell due meanwhile: the learned state of a
service that has been running for a while. Then each of the next `--n`
payments (20,000) becomes a `RiskInput` and is timed on its own with
`time.perf_counter_ns` around `await scorer.assess(subject)`, on one core.
Between payments, untimed, the engine gets what the event stream would bring:
the payment's approval or decline, and any dispute now due. The baseline,
timed in the same run and interleaved payment by payment, is the same await on
`paymesh.ports.risk.AllowAll`. The cyclic GC runs as in a service; how many
full collections fell in the timed loop is printed.

Printed: p50 / p99 / p99.9 / max in microseconds for both, their ratio, and
the target: p99 under 2 ms. The engine scores with the packaged learned model
(`--model none`: the rules alone).

    .venv/bin/python benchmarks/fraud_inline.py
    .venv/bin/python benchmarks/fraud_inline.py --warm 200000 --n 50000 --json inline.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from pathlib import Path
from typing import Any

from paymesh.domain.payment import RiskContext
from paymesh.fraud.generator import generate_episodes, outcomes
from paymesh.fraud.scorer import FraudEngine, FraudRiskScorer, load_model
from paymesh.fraud.transactions import Transaction
from paymesh.ports.risk import AllowAll, RiskInput

TARGET_P99_US = 2_000


def subject_of(txn: Transaction) -> RiskInput:
    return RiskInput(
        payment_id=txn.transaction_id,
        merchant_id=txn.merchant_id or "",
        customer_id=txn.customer_id,
        amount=txn.amount,
        currency=txn.currency,
        payment_method=txn.card_fingerprint or "",
        context=RiskContext(txn.device_id, txn.ip_address, txn.country, txn.city),
    )


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    return {
        "p50": at(0.50),
        "p99": at(0.99),
        "p99.9": at(0.999),
        "max": ordered[-1] / 1000,
        "mean": statistics.fmean(ordered) / 1000,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stream, _ = generate_episodes(args.warm + args.n, args.seed)
    events = outcomes(stream, args.seed)  # disputes, in time order
    warm, timed = stream[: args.warm], stream[args.warm :]
    engine = FraudEngine(model=load_model(args.model))
    due = 0
    started = time.perf_counter()
    for txn, _ in warm:
        while due < len(events) and events[due][0] <= txn.timestamp:
            engine.feedback(events[due][1], events[due][2], events[due][0])
            due += 1
        engine.score(txn)
    warm_seconds = time.perf_counter() - started

    now = [0.0]
    scorer = FraudRiskScorer(engine, clock=lambda: now[0])
    baseline = AllowAll()
    subjects = [(subject_of(txn), txn) for txn, _ in timed]
    gc.freeze()  # the generated input only: the engine's own state is collected as usual
    full_before = gc.get_stats()[2]["collections"]
    fraud_ns: list[int] = []
    allow_ns: list[int] = []
    clock = time.perf_counter_ns
    for subject, txn in subjects:
        while due < len(events) and events[due][0] <= txn.timestamp:
            engine.feedback(events[due][1], events[due][2], events[due][0])
            due += 1
        now[0] = txn.timestamp
        t0 = clock()
        await baseline.assess(subject)
        t1 = clock()
        await scorer.assess(subject)
        t2 = clock()
        allow_ns.append(t1 - t0)
        fraud_ns.append(t2 - t1)
        engine.feedback(txn.transaction_id, "approved" if txn.approved else "declined", now[0] + 1)
    full_collections = gc.get_stats()[2]["collections"] - full_before
    store = engine.store
    return {
        "warm": len(warm),
        "n": len(fraud_ns),
        "seed": args.seed,
        "model": args.model,
        "warm_seconds": warm_seconds,
        "entities": {kind: len(entities) for kind, entities in store.kinds.items()},
        "remembered": len(store.memory),
        "full_gc_collections": full_collections,
        "fraud_us": percentiles(fraud_ns),
        "allow_all_us": percentiles(allow_ns),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warm", type=int, default=100_000, help="history (default 100,000)")
    parser.add_argument("--n", type=int, default=20_000, help="timed payments (default 20,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--model", default="packaged", help='the learned model: "packaged", "none" or a file'
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write all figures as JSON")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    fraud, allow = figures["fraud_us"], figures["allow_all_us"]
    print(
        f"warmed on {figures['warm']:,} transactions in {figures['warm_seconds']:.1f} s"
        f" ({figures['warm'] / figures['warm_seconds']:,.0f}/s); state:"
        + ",".join(f" {n:,} {kind}s" for kind, n in figures["entities"].items())
        + f", {figures['remembered']:,} payments remembered for feedback"
    )
    print(
        f"timed {figures['n']:,} payments (seed {figures['seed']});"
        f" full GC collections meanwhile: {figures['full_gc_collections']}\n"
    )
    print(f"{'µs':22} {'p50':>8} {'p99':>8} {'p99.9':>8} {'max':>9} {'mean':>8}")
    for name, p in (("FraudRiskScorer", fraud), ("AllowAll (baseline)", allow)):
        print(
            f"{name:22} {p['p50']:8.1f} {p['p99']:8.1f} {p['p99.9']:8.1f}"
            f" {p['max']:9.1f} {p['mean']:8.1f}"
        )
    print(
        f"{'ratio':22} {fraud['p50'] / allow['p50']:8.1f} {fraud['p99'] / allow['p99']:8.1f}"
        f" {fraud['p99.9'] / allow['p99.9']:8.1f}"
    )
    verdict = "met" if fraud["p99"] < TARGET_P99_US else "MISSED"
    print(f"\ntarget p99 < {TARGET_P99_US:,} µs: {verdict} ({fraud['p99']:.1f} µs)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
