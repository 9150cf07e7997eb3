"""The cycle collector's pauses: kept short, and measured.

CPython's cycle collector stops the process while it walks every tracked object of the
generation it collects, and its oldest generation holds everything long-lived. In the
embedded server at 100 payments/s such a pass came every 6-7 s and took 66-140 ms, longer as
the heap grew (measured with `gc.callbacks`, issue 18): the event loop's longest stalls, and
with them the p99 of every payment in flight. Most of what each pass walked had been there
since start: modules, functions and types, the fraud model, the rules, the loaded fraud
state.

- `freeze_startup`: once a process has started, a full collection, then `gc.freeze()`: what
  is alive then moves to a permanent generation that no pass walks again. Those objects are
  still freed by reference counting when dropped; only a reference cycle among them is
  never collected, which for what a process builds at start and keeps for its life costs
  nothing. `paymesh serve` and `paymesh worker` do it (`Settings.gc_freeze`), not a test
  process that runs a server among other things.
- `GcPauses`: a `gc.callbacks` entry timing every pass into `paymesh_gc_pause_seconds` by
  generation.
"""

from __future__ import annotations

import gc
import itertools
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["GcPauses", "freeze_startup"]

#: Seconds: a young generation's pass takes tens of microseconds, the oldest one's tens to
#: hundreds of milliseconds.
PAUSE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def freeze_startup() -> int:
    """Collect, then move every object alive to the permanent generation; how many it holds."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GcPauses(Collector):
    """Times the collector's passes while installed (a context manager), exposed as the
    histogram `paymesh_gc_pause_seconds` by generation. The callback runs inside a pass, on
    whichever thread's allocation started it: it only adds to plain lists (no lock, which a
    pass started while that lock was held could wait on forever); the histogram is built
    from them at scrape time."""

    def __init__(self) -> None:
        self._started = 0.0
        self._counts = [[0] * (len(PAUSE_BUCKETS) + 1) for _ in range(3)]
        self._sums = [0.0] * 3

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = info["generation"]
        self._counts[generation][bisect_left(PAUSE_BUCKETS, took)] += 1
        self._sums[generation] += took

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "paymesh_gc_pause_seconds",
            "Passes of the cycle collector, which stops the process while it runs, by "
            "generation (2: the oldest, everything long-lived).",
            labels=["generation"],
        )
        bounds = [*(repr(bound) for bound in PAUSE_BUCKETS), "+Inf"]
        for generation, counts in enumerate(self._counts):
            cumulative = itertools.accumulate(counts)  # the last one is +Inf's
            family.add_metric(
                [str(generation)],
                list(zip(bounds, cumulative, strict=True)),
                self._sums[generation],
            )
        yield family
