"""How long a full pass of the cycle collector takes as the fraud engine's state grows.

A pass of the oldest generation stops the whole process for as long as it takes to walk
every tracked object outside the frozen start (`paymesh.adapters.collector`); the fraud
engine's per-entity state is what grows with traffic. This replays the fraud generator's
stream into a `FraudEngine` (rules alone: the model keeps no state), with the start frozen as
`paymesh serve` freezes it, and at a few points counts the tracked objects and times a full
collection (best of three).

    .venv/bin/python benchmarks/gc_passes.py --transactions 240000

Prints, at 1/8, 1/4, 1/2 and all of the stream: entities kept, tracked objects, and the
pass's length; and, at the end, the tracked objects per entity by kind of window.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import time

from paymesh.fraud import FraudEngine
from paymesh.fraud.features import EntityState
from paymesh.fraud.generator import generate, replay_records
from paymesh.fraud.replay import replay


def full_pass_seconds(tries: int = 3) -> float:
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        gc.collect(2)
        best = min(best, time.perf_counter() - started)
    return best


def owned_tracked(root: object) -> int:
    """Tracked objects reachable from `root` through containers and fraud state only (not
    through types, modules or functions, which every object reaches)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or not gc.is_tracked(obj):
            continue
        seen.add(id(obj))
        for ref in gc.get_referents(obj):
            module = type(ref).__module__
            # Containers, and the windows, profiles and the like of the fraud engine.
            owned = type(ref) in (list, tuple, dict, set) or module in ("array", "collections")
            if owned or module.startswith("paymesh.fraud"):
                stack.append(ref)
    return len(seen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=120_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n = args.transactions
    lines = [json.dumps(r) for r in replay_records(generate(n, seed=args.seed), [])]
    gc.collect()
    gc.freeze()  # the imports and the input, as a server's start is frozen
    engine = FraudEngine()
    marks = {n // 8, n // 4, n // 2, n}
    print(f"{'transactions':>12} {'tracked objects':>16} {'full pass ms':>13}")
    for i, _ in enumerate(replay(iter(lines), engine=engine), start=1):
        if i in marks:
            tracked = len(gc.get_objects())
            print(f"{i:>12,} {tracked:>16,} {1000 * full_pass_seconds():>13.1f}", flush=True)
    entities = [o for o in gc.get_objects() if type(o) is EntityState]
    per_window: collections.Counter[str] = collections.Counter()
    for entity in entities:
        per_window["the entity itself"] += 1
        for slot in EntityState.__slots__:
            value = getattr(entity, slot, None)
            if value is not None and gc.is_tracked(value):
                per_window[f"{slot} ({type(value).__name__})"] += owned_tracked(value)
    print(f"{len(entities):,} entities; tracked objects per entity, by what holds them:")
    for name, count in per_window.most_common():
        print(f"  {count / len(entities):5.2f}  {name}")
    print(f"  {sum(per_window.values()) / len(entities):5.2f}  in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
