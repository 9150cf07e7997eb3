"""How much memory the fraud checkpoint takes while it is saved, over the engine's own.

    python benchmarks/checkpoint_memory.py --customers 200000

A server saves the fraud engine's learned state every five minutes (`FeatureCheckpoint` in
`paymesh.service.fraud_stream`): a snapshot built in steps on the event loop, then written as
one blob. This script fills a `FraudEngine` with `--customers` new customers (each with its own
device and IP: at 200,000 the engine's caps are full, as in a soak with a large population),
then saves one checkpoint into a real SQLite store as the server does (glibc's mmap threshold
pinned at start, the heap trimmed after the save), while a
thread reads the process's RSS every few milliseconds. It prints the snapshot's size, the
RSS before, the highest RSS during the save and after it, and the peak over the engine's
settled RSS: what a soak sampling RSS at the wrong moment sees on top of the steady state.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.fraud_memory import T0, pay, rss_mib  # noqa: E402
from benchmarks.load.workload import Population, parse_mix  # noqa: E402
from paymesh.adapters.heap import heap_releaser, pin_mmap_threshold  # noqa: E402
from paymesh.adapters.sqlite import SqliteStore  # noqa: E402
from paymesh.fraud.scorer import FraudEngine  # noqa: E402
from paymesh.service.fraud_stream import CHECKPOINT, FeatureCheckpoint  # noqa: E402

RATE = 300.0


class Peak:
    """The highest RSS seen by a thread reading it every `every` seconds."""

    def __init__(self, every: float = 0.002) -> None:
        self.every = every
        self.highest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.highest = max(self.highest, rss_mib())
            time.sleep(self.every)

    def __enter__(self) -> Peak:
        self.highest = rss_mib()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.highest = max(self.highest, rss_mib())


def fill(engine: FraudEngine, customers: int, seed: int) -> None:
    population = Population(customers, parse_mix("success"), seed)
    rng = random.Random(seed)
    for n in range(1, customers + 1):
        pay(engine, population.next("success"), n, T0 + n / RATE, rng)


async def save_once(engine: FraudEngine, data_dir: Path) -> tuple[int, float, float, float]:
    store = SqliteStore(data_dir / "paymesh.db")
    await store.open()
    try:
        # As `paymesh serve` builds it: the heap trimmed once a checkpoint is saved.
        checkpoint = FeatureCheckpoint(
            engine, store, lambda: datetime.now(UTC), after_save=heap_releaser()
        )
        gc.collect()
        before = rss_mib()
        started = time.perf_counter()
        with Peak() as peak:
            await checkpoint.save()
        seconds = time.perf_counter() - started
        gc.collect()
        saved = await store.get_blob(CHECKPOINT)
        size = len(saved or b"")
        del saved
        gc.collect()
        return size, before, peak.highest, seconds
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    pin_mmap_threshold()  # as `paymesh serve` does before it allocates anything big
    engine = FraudEngine()
    started = time.perf_counter()
    fill(engine, args.customers, args.seed)
    gc.collect()
    print(
        f"{args.customers:,} new customers observed in {time.perf_counter() - started:.0f} s; "
        f"engine process RSS {rss_mib():.1f} MiB"
    )
    with tempfile.TemporaryDirectory(prefix="paymesh-checkpoint-") as tmp:
        size, before, highest, seconds = asyncio.run(save_once(engine, Path(tmp)))
    after = rss_mib()
    print(f"checkpoint: {size / 2**20:.1f} MiB of snapshot, saved in {seconds:.1f} s")
    print(
        f"RSS before the save {before:.1f} MiB, highest during it {highest:.1f} MiB "
        f"(+{highest - before:.1f} MiB, {highest / size * 2**20 - before / size * 2**20:.2f}x "
        f"the snapshot; +{100 * (highest / before - 1):.1f}% of the RSS), after it {after:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
